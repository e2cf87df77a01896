/**
 * The OpenTelemetry SDK behind runtime/tracing.ts: a tracer provider of its
 * own (not registered globally), a batch span processor (bounded by the
 * OTEL_BSP_* variables) and the OTLP/HTTP exporter (JSON; OTEL_EXPORTER_OTLP_*
 * variables such as headers apply). Loaded only when tracing is configured.
 *
 * A transfer is a root span `transfer` (kind SERVER, child of the caller's
 * span when the request carried a W3C traceparent) with one child per effect
 * the coordinator started (named by the effect: `xa.exec`, `xa.prepare`,
 * `log.put`, `xa.commit`, `local.apply`, ...), from the effect's start to its
 * answer. The spans are built from what the interpreter already does: the
 * effects a role asked for and their results, paired as the trace does
 * (spec/kernel/keys.ts). Retries (an effect asked again for the same branch or
 * key), fences (xa.kill, a FENCED answer) and timeouts are span events.
 */
import { defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { Effect, Outcome, Result } from "../spec/kernel/effects.ts";
import { effectKey, resultKey } from "../spec/kernel/keys.ts";
import type { ResolverSpans, TraceParent, Tracing, TracingOptions, TransferSpans } from "./tracing.ts";

const SCOPE = "speccommit";
/** At most one line on stderr about failed exports per this many ms (a collector that is down must not flood the log). */
const EXPORT_FAILURE_REPORT_MS = 10_000;

/**
 * Every time given to the SDK, in ms since the epoch with sub-millisecond digits, from one monotonic clock. Left to
 * itself the SDK starts each span at Date.now() (whole milliseconds) and so a child could seem to end after its
 * parent.
 */
const now = (): number => performance.timeOrigin + performance.now();

export class OtelTracing implements Tracing {
  readonly url: string;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly propagator = new W3CTraceContextPropagator();

  constructor(opts: TracingOptions) {
    this.url = opts.url;
    const exporter = new Reporting(new OTLPTraceExporter({ url: opts.url }), opts.url);
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName }),
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    this.tracer = this.provider.getTracer(SCOPE);
  }

  transfer(t: { tx: string; protocol: string; branches: number; parent?: TraceParent }): TransferSpans {
    const parent = t.parent?.traceparent === undefined ? ROOT_CONTEXT : this.propagator.extract(ROOT_CONTEXT, t.parent, defaultTextMapGetter);
    const root = this.tracer.startSpan(
      "transfer",
      { kind: SpanKind.SERVER, startTime: now(), attributes: { "speccommit.tx_id": t.tx, "speccommit.protocol": t.protocol, "speccommit.branches": t.branches } },
      parent,
    );
    return new OtelTransfer(this.tracer, root);
  }

  resolver(): ResolverSpans {
    return new OtelResolver(this.tracer);
  }

  /** Never rejects: a failed export is said on stderr (Reporting) and its spans are dropped; the server goes on. */
  flush(): Promise<void> {
    return this.provider.forceFlush().catch(() => undefined);
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown().catch(() => undefined);
  }
}

/**
 * The exporter, with failures said on stderr (at most one line per EXPORT_FAILURE_REPORT_MS, with the spans
 * dropped since the last line): the SDK's own diagnostics are off, and a collector that is down or refuses
 * would otherwise lose spans without a word. Transfers never wait for an export.
 */
class Reporting implements SpanExporter {
  private dropped = 0;
  private reportedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly inner: SpanExporter,
    private readonly url: string,
  ) {}

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.inner.export(spans, (r) => {
      if (r.code !== ExportResultCode.SUCCESS) this.failed(spans.length, r.error);
      done(r);
    });
  }

  private failed(spans: number, error: Error | undefined): void {
    this.dropped += spans;
    const at = performance.now();
    if (at - this.reportedAt < EXPORT_FAILURE_REPORT_MS) return;
    this.reportedAt = at;
    console.error(`OpenTelemetry: span export to ${this.url} failed (${error?.message ?? "no reason given"}); ${this.dropped} spans dropped since the last report`);
    this.dropped = 0;
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Children of one parent span, one per effect, ended by the effect's result (first in, first out per pairing key).
 * An effect asked again for a branch or key whose last answer was an error is a retry (attempt 2, 3, ...); asked
 * again after a success it is a new request (parallel commit's STAGING then decision on one key): attempt 1.
 */
class Children {
  private readonly open = new Map<string, Array<{ span: Span; attempt: number }>>();
  /** Pairing keys whose last answer was an error, with that attempt's number. */
  private readonly failed = new Map<string, number>();
  /** The parent's context, made at the first child. */
  private ctx: Context | null = null;

  constructor(
    private readonly tracer: Tracer,
    private readonly parent: () => Span,
  ) {}

  /** Starts the effect's span; answers the attempt number (1 for the first time this branch or key was asked). */
  start(e: Effect, name: string, attributes: Attributes): { span: Span; attempt: number } {
    const key = effectKey(e);
    const attempt = (this.failed.get(key) ?? 0) + 1;
    this.ctx ??= trace.setSpan(ROOT_CONTEXT, this.parent());
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT, startTime: now(), attributes: { ...attributes, ...effectAttributes(e), "speccommit.attempt": attempt } }, this.ctx);
    if (attempt > 1) span.addEvent("retry", { "speccommit.attempt": attempt }, now());
    const list = this.open.get(key);
    if (list === undefined) this.open.set(key, [{ span, attempt }]);
    else list.push({ span, attempt });
    return { span, attempt };
  }

  /** Ends the span the result answers; answers the result's error (null when ok), or undefined when no span waits for it. */
  end(r: Result): string | null | undefined {
    const key = resultKey(r);
    if (key === null) return undefined;
    const list = this.open.get(key);
    const opened = list?.shift();
    if (opened === undefined) return undefined;
    if (list!.length === 0) this.open.delete(key);
    const { span, attempt } = opened;
    const err = errorOf(r);
    if (err === null) this.failed.delete(key);
    else this.failed.set(key, attempt);
    span.setAttribute("speccommit.result", err ?? "ok");
    if (err !== null) span.setStatus({ code: SpanStatusCode.ERROR, message: err });
    span.end(now());
    return err;
  }

  /** Ends every span still waiting (its answer will not be heard). */
  endAll(): void {
    for (const list of this.open.values()) {
      for (const { span } of list) {
        span.setAttribute("speccommit.result", "unanswered");
        span.end(now());
      }
    }
    this.open.clear();
  }
}

class OtelTransfer implements TransferSpans {
  readonly traceId: string;
  private readonly children: Children;
  private ended = false;

  constructor(
    tracer: Tracer,
    private readonly root: Span,
  ) {
    this.traceId = root.spanContext().traceId;
    this.children = new Children(tracer, () => root);
  }

  effect(e: Effect): void {
    if (this.ended || e.t === "reply" || e.t === "timer") return;
    const { attempt } = this.children.start(e, e.t, {});
    if (attempt > 1) this.root.addEvent("retry", { "speccommit.effect": e.t, "speccommit.attempt": attempt, ...targetOf(e) }, now());
    if (e.t === "xa.kill") this.root.addEvent("fence", { "speccommit.shard": e.shard, "speccommit.conn": e.conn }, now());
  }

  result(r: Result): void {
    if (this.ended) return;
    const err = this.children.end(r);
    if (err === "FENCED") this.root.addEvent("fenced", { "speccommit.effect": r.t, ...targetOf(r) }, now());
  }

  timeout(id: string): void {
    if (!this.ended) this.root.addEvent("timeout", { "speccommit.timer": id }, now());
  }

  reply(o: Outcome): void {
    if (this.ended) return;
    this.root.addEvent("reply", outcomeAttributes(o), now());
    this.root.setAttributes(outcomeAttributes(o));
  }

  end(o: Outcome): void {
    if (this.ended) return;
    this.ended = true;
    this.children.endAll();
    this.root.setAttributes(outcomeAttributes(o));
    if (o.status !== "committed") this.root.setStatus({ code: SpanStatusCode.ERROR, message: o.status === "aborted" ? `aborted: ${o.reason}` : "in_doubt" });
    this.root.end(now());
  }
}

/** A scan's span is started at its first action (with the scan's start time), so that scans that find nothing to do export nothing. */
class OtelResolver implements ResolverSpans {
  private scanStarted: number | null = null;
  private scan: Span | null = null;
  private actions = 0;
  private children: Children;

  constructor(private readonly tracer: Tracer) {
    this.children = new Children(tracer, () => this.scanSpan());
  }

  phase(phase: string): void {
    if (phase !== "idle" && this.scanStarted === null) this.scanStarted = now();
    if (phase === "idle" && this.scanStarted !== null) {
      this.children.endAll();
      this.scan?.setAttribute("speccommit.actions", this.actions);
      this.scan?.end(now());
      this.scan = null;
      this.scanStarted = null;
      this.actions = 0;
      this.children = new Children(this.tracer, () => this.scanSpan());
    }
  }

  effect(e: Effect, action: string | null): void {
    if (action === null) return;
    this.actions++;
    this.children.start(e, `resolver ${action}`, { "speccommit.action": action, ...txOf(e) });
    if (e.t === "xa.kill") this.scanSpan().addEvent("fence", { "speccommit.shard": e.shard, "speccommit.conn": e.conn }, now());
  }

  result(r: Result): void {
    if (this.scan === null) return;
    const err = this.children.end(r);
    if (err === "FENCED") this.scan.addEvent("fenced", { "speccommit.effect": r.t, ...targetOf(r) }, now());
  }

  private scanSpan(): Span {
    this.scan ??= this.tracer.startSpan("resolver scan", { kind: SpanKind.INTERNAL, startTime: this.scanStarted ?? now() }, ROOT_CONTEXT);
    return this.scan;
  }
}

function outcomeAttributes(o: Outcome): Attributes {
  return { "speccommit.outcome": o.status, ...(o.status === "aborted" ? { "speccommit.abort_reason": o.reason } : {}) };
}

/** The error of a result, or null when it succeeded. */
function errorOf(r: Result): string | null {
  if (r.t === "timeout") return null;
  const answer = r.r as { ok: boolean; err?: string };
  return answer.ok ? null : (answer.err ?? "error");
}

function targetOf(x: Effect | Result): Attributes {
  const o = x as { shard?: string; key?: string };
  return { ...(o.shard !== undefined ? { "speccommit.shard": o.shard } : {}), ...(o.key !== undefined ? { "speccommit.key": o.key } : {}) };
}

function effectAttributes(e: Effect): Attributes {
  const out: Attributes = targetOf(e);
  if (e.t === "log.put") out["speccommit.record"] = recordOf(e.value);
  if (e.t === "xa.commit" && e.onePhase === true) out["speccommit.one_phase"] = true;
  return out;
}

function recordOf(v: Extract<Effect, { t: "log.put" }>["value"]): string {
  switch (v.kind) {
    case "decision":
      return `decision ${v.decision}`;
    case "speculation":
      return `speculation ${v.state}`;
    default:
      return v.kind;
  }
}

/** The transaction a resolver action is about: its branch's, or its log key's. */
function txOf(e: Effect): Attributes {
  const o = e as { tx?: string; key?: string };
  if (o.tx !== undefined) return { "speccommit.tx_id": o.tx };
  if (o.key !== undefined && o.key.includes("/")) return { "speccommit.tx_id": o.key.slice(o.key.indexOf("/") + 1) };
  return {};
}
