// A real OTLP/HTTP receiver for tests: an HTTP server on a free port that
// takes what an exporter posts to /v1/traces (OTLP JSON, the encoding of
// @opentelemetry/exporter-trace-otlp-http; gzip when the exporter compresses),
// decodes every span and keeps them. It answers as a collector does (200 and
// an empty ExportTraceServiceResponse); anything else gets 415 or 404 and is
// remembered as an error, so that a test sees it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span of its trace. */
  parentSpanId: string;
  name: string;
  /** OTLP's enum: 1 internal, 2 server, 3 client. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  events: Array<{ name: string; attributes: Record<string, string | number | boolean> }>;
  /** OTLP's enum: 0 unset, 1 ok, 2 error. */
  status: number;
  service: string;
}

export interface OtlpReceiver {
  /** The base endpoint (what OTEL_EXPORTER_OTLP_ENDPOINT would say): spans are posted to <url>/v1/traces. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Requests that were not an OTLP JSON trace export. */
  readonly errors: string[];
  /** Export requests received. */
  readonly posts: number;
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };

function attrs(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
  }
  return out;
}

/** Decodes an ExportTraceServiceRequest in OTLP JSON (ids as hex, times as decimal strings or numbers). */
export function decodeExport(body: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const req = body as { resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: any[] }> }> };
  if (!Array.isArray(req.resourceSpans)) throw new Error("not an ExportTraceServiceRequest: no resourceSpans");
  for (const rs of req.resourceSpans) {
    const service = String(attrs(rs.resource?.attributes)["service.name"] ?? "");
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        for (const id of [s.traceId, s.spanId]) if (typeof id !== "string" || !/^[0-9a-f]+$/.test(id)) throw new Error(`span id ${JSON.stringify(id)} is not hex`);
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? "",
          name: s.name,
          kind: s.kind,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          events: (s.events ?? []).map((e: { name: string; attributes?: KeyValue[] }) => ({ name: e.name, attributes: attrs(e.attributes) })),
          status: s.status?.code ?? 0,
          service,
        });
      }
    }
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const errors: string[] = [];
  let posts = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        errors.push(`${req.method} ${req.url}`);
        res.writeHead(404).end();
        return;
      }
      try {
        if (!(req.headers["content-type"] ?? "").startsWith("application/json")) throw new Error(`Content-Type ${req.headers["content-type"]}`);
        let raw = Buffer.concat(chunks);
        if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
        spans.push(...decodeExport(JSON.parse(raw.toString("utf8"))));
        posts++;
      } catch (e) {
        errors.push((e as Error).message);
        res.writeHead(415, { "Content-Type": "application/json" }).end("{}");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    errors,
    get posts() {
      return posts;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The spans of one trace as a tree: each span with its children, roots first (a root is a span whose parent is not in the list). */
export interface SpanNode {
  span: ReceivedSpan;
  children: SpanNode[];
}

export function spanTree(spans: readonly ReceivedSpan[]): SpanNode[] {
  const nodes = new Map(spans.map((s) => [s.spanId, { span: s, children: [] as SpanNode[] }]));
  const roots: SpanNode[] = [];
  for (const n of nodes.values()) {
    const parent = nodes.get(n.span.parentSpanId);
    if (parent === undefined) roots.push(n);
    else parent.children.push(n);
  }
  const byStart = (a: SpanNode, b: SpanNode) => (a.span.startNs < b.span.startNs ? -1 : a.span.startNs > b.span.startNs ? 1 : 0);
  for (const n of nodes.values()) n.children.sort(byStart);
  return roots.sort(byStart);
}
