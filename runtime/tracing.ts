/**
 * OpenTelemetry spans, as the engine sees them (docs/operations.md,
 * "OpenTelemetry"): what the engine calls while a transfer or the resolver
 * runs, and whether tracing is on at all. Nothing here loads the SDK: it is
 * imported (runtime/otel.ts) only when tracing is configured, so a server
 * without it pays one `undefined` check per effect.
 *
 * On when `otlp_endpoint` is set (flag, file or SPECCOMMIT_OTLP_ENDPOINT), or
 * when the standard variables ask for it: OTEL_TRACES_EXPORTER=otlp, or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT set; off
 * when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, whatever else says.
 * The batch processor takes its bounds from the standard OTEL_BSP_* variables
 * (spans waiting for export: OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default; past
 * it new spans are dropped, never buffered without bound).
 */
import type { Effect, Outcome, Result } from "../spec/kernel/effects.ts";

/** The W3C trace context a request carried (`traceparent`, `tracestate` headers). */
export interface TraceParent {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** The spans of one transfer: a root span, a child per effect from its start to its answer. */
export interface TransferSpans {
  /** The W3C trace id (32 hex digits) the root span belongs to (the caller's when a traceparent continued it). */
  readonly traceId: string;
  effect(e: Effect): void;
  result(r: Result): void;
  /** A protocol timer fired. */
  timeout(id: string): void;
  reply(o: Outcome): void;
  /** The coordinator has nothing left to do: open children and the root end. */
  end(o: Outcome): void;
}

/** The resolver's spans: one per scan that acted, a child per action from its start to its answer. */
export interface ResolverSpans {
  /** The resolver's phase after a step; leaving and entering `idle` start and end a scan. */
  phase(phase: string): void;
  /** An effect of the resolver and the action it is (spec/server/resolver.ts `resolverActionOf`), or null. */
  effect(e: Effect, action: string | null): void;
  result(r: Result): void;
}

export interface Tracing {
  readonly url: string;
  transfer(t: { tx: string; protocol: string; branches: number; parent?: TraceParent }): TransferSpans;
  resolver(): ResolverSpans;
  /** Exports what has ended (for tests and shutdown). */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  readonly url: string;
  /** The resource's service.name (OTEL_SERVICE_NAME, else `speccommit`). */
  readonly serviceName: string;
}

/** Where spans go (the full URL of the OTLP/HTTP traces endpoint), or undefined when tracing is off. */
export function otlpTracesUrl(endpoint: string | undefined, env: Readonly<Record<string, string | undefined>>): string | undefined {
  const exporters = (env["OTEL_TRACES_EXPORTER"] ?? "").split(",").map((s) => s.trim().toLowerCase());
  if (env["OTEL_SDK_DISABLED"]?.trim().toLowerCase() === "true" || exporters.includes("none")) return undefined;
  if (endpoint !== undefined) return joinTraces(endpoint);
  const traces = nonEmpty(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
  if (traces !== undefined) return traces;
  const base = nonEmpty(env["OTEL_EXPORTER_OTLP_ENDPOINT"]);
  if (base !== undefined) return joinTraces(base);
  return exporters.includes("otlp") ? "http://localhost:4318/v1/traces" : undefined;
}

/** The signal path appended to a base endpoint, as the OTLP exporter specification says for OTEL_EXPORTER_OTLP_ENDPOINT. */
const joinTraces = (base: string): string => `${base.replace(/\/+$/, "")}/v1/traces`;
const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s.trim() === "" ? undefined : s.trim());

/** Loads the SDK (only now) and starts the exporter. */
export async function startTracing(opts: TracingOptions): Promise<Tracing> {
  const { OtelTracing } = await import("./otel.ts");
  return new OtelTracing(opts);
}
