// OpenTelemetry spans through the real server, against real MariaDB x3 and
// etcd started by the test, exported by the official SDK's OTLP/HTTP exporter
// to a real receiver started by the test (test/support/otlp.ts): the span
// tree of a 2PC, a parallel and a speculative transfer, the caller's W3C
// traceparent continued, the trace id in the transfer's NDJSON trace header.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { parseTrace } from "../../traces/ndjson.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { spanTree, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan, type SpanNode } from "../support/otlp.ts";
import { closeAgents, request, serverOn } from "./support.ts";

const PREFIX = "otel/";
let cluster: TestCluster;
let receiver: OtlpReceiver;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 3, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  receiver = await startOtlpReceiver();
  server = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--otlp-endpoint", receiver.url]);
  url = server.url;
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await receiver?.close();
  await cluster?.stop();
});

const a = (n: number) => n; // shard-a holds 1..100
const b = (n: number) => 100 + n; // shard-b holds 101..200

const transfer = (protocol: string, ops: Array<[string, number, number]>, headers: Record<string, string> = {}) =>
  request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })), protocol }, headers });

/** Waits for the coordinator to finish, then for its spans to be exported; answers the NDJSON trace and the trace's spans. */
async function spansOf(tx: string): Promise<{ trace: ReturnType<typeof parseTrace>; spans: ReceivedSpan[] }> {
  let view = (await request(url, "GET", `/transactions/${tx}`)).body;
  for (let i = 0; i < 200 && !view.done; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    view = (await request(url, "GET", `/transactions/${tx}`)).body;
  }
  expect(view.done).toBe(true);
  const trace = parseTrace((await request(url, "GET", `/transactions/${tx}?format=ndjson`)).body as string);
  await server.tracing!.flush();
  const traceId = trace.header.trace_id!;
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  return { trace, spans: receiver.spans.filter((s) => s.traceId === traceId) };
}

/** The effects the coordinator started, by kind (what the spans must show, one child each). */
function effectKinds(trace: ReturnType<typeof parseTrace>): string[] {
  return trace.steps
    .filter((s) => s.actor === "coordinator")
    .flatMap((s) => (s.effects as Array<{ t: string }>).map((e) => e.t))
    .filter((t) => t !== "reply" && t !== "timer")
    .sort();
}

/** The one root span of a transfer, its attributes, and its children's shape. */
function transferRoot(spans: ReceivedSpan[], tx: string): SpanNode {
  const roots = spanTree(spans).filter((n) => n.span.name === "transfer");
  expect(roots).toHaveLength(1);
  const root = roots[0]!;
  expect(root.span.kind).toBe(2); // SERVER
  expect(root.span.service).toBe("speccommit");
  expect(root.span.attributes["speccommit.tx_id"]).toBe(tx);
  for (const c of root.children) {
    expect(c.children).toEqual([]);
    expect(c.span.startNs).toBeGreaterThanOrEqual(root.span.startNs);
    expect(c.span.endNs).toBeLessThanOrEqual(root.span.endNs);
    expect(c.span.endNs).toBeGreaterThanOrEqual(c.span.startNs);
  }
  return root;
}

describe("OpenTelemetry spans of transfers", () => {
  it("2PC: the caller's traceparent is continued; exec, prepare, the decision write, commit and forget are children; the NDJSON trace names the trace", async () => {
    const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const r = await transfer(
      "2pc",
      [
        ["shard-a", a(1), -100],
        ["shard-b", b(1), 100],
      ],
      { traceparent: `00-${callerTrace}-${callerSpan}-01`, tracestate: "vendor=1" },
    );
    expect(r.status).toBe(200);
    const { trace, spans } = await spansOf(r.body.tx);
    expect(trace.header.trace_id).toBe(callerTrace);
    const root = transferRoot(spans, r.body.tx);
    expect(root.span.parentSpanId).toBe(callerSpan);
    expect(root.span.attributes).toMatchObject({ "speccommit.protocol": "2pc", "speccommit.branches": 2, "speccommit.outcome": "committed" });
    expect(root.span.status).not.toBe(2);
    expect(root.children.map((c) => c.span.name).sort()).toEqual(effectKinds(trace));
    const names = root.children.map((c) => `${c.span.name} ${c.span.attributes["speccommit.shard"] ?? c.span.attributes["speccommit.record"] ?? ""}`.trim());
    // In order: both execs, both prepares, the decision, both commits, then the record is forgotten.
    expect(names.slice(0, 2).sort()).toEqual(["xa.exec shard-a", "xa.exec shard-b"]);
    expect(names.slice(2, 4).sort()).toEqual(["xa.prepare shard-a", "xa.prepare shard-b"]);
    expect(names[4]).toBe("log.put decision commit");
    expect(names.slice(5, 7).sort()).toEqual(["xa.commit shard-a", "xa.commit shard-b"]);
    expect(names[7]).toBe("log.delete");
    for (const c of root.children) expect(c.span.attributes["speccommit.result"]).toBe("ok");
    // The commit phase runs after the reply: the root ends when the coordinator is done, after the last commit.
    expect(root.span.events.map((e) => e.name)).toContain("reply");
    expect(receiver.errors).toEqual([]);
  });

  it("parallel commit: STAGING and the decision are written, with the branches' work; a new trace without traceparent", async () => {
    const r = await transfer("parallel", [
      ["shard-a", a(3), -700],
      ["shard-b", b(3), 700],
    ]);
    expect(r.status).toBe(200);
    const { trace, spans } = await spansOf(r.body.tx);
    const root = transferRoot(spans, r.body.tx);
    expect(root.span.parentSpanId).toBe("");
    expect(root.span.attributes).toMatchObject({ "speccommit.protocol": "parallel", "speccommit.branches": 2, "speccommit.outcome": "committed" });
    expect(root.children.map((c) => c.span.name).sort()).toEqual(effectKinds(trace));
    const records = root.children.filter((c) => c.span.name === "log.put").map((c) => c.span.attributes["speccommit.record"]);
    expect(records).toEqual(["staging", "decision commit"]);
  });

  it("speculative: local applies, no prepare, SPEC_EXECUTING and SPEC_COMMITTED; a mis-speculation is aborted with its compensation", async () => {
    const r = await transfer("speculative", [
      ["shard-a", a(5), -1234],
      ["shard-b", b(5), 1234],
    ]);
    expect(r.status).toBe(200);
    const { trace, spans } = await spansOf(r.body.tx);
    const root = transferRoot(spans, r.body.tx);
    expect(root.span.attributes).toMatchObject({ "speccommit.protocol": "speculative", "speccommit.outcome": "committed" });
    const kinds = root.children.map((c) => c.span.name);
    expect(kinds.sort()).toEqual(effectKinds(trace));
    expect(kinds.filter((k) => k === "local.apply")).toHaveLength(2);
    expect(kinds).not.toContain("xa.prepare");
    const records = root.children.filter((c) => c.span.name === "log.put").map((c) => c.span.attributes["speccommit.record"]);
    expect(records).toEqual(["speculation SPEC_EXECUTING", "speculation SPEC_COMMITTED"]);

    const mis = await transfer("speculative", [
      ["shard-a", a(7), 200_000],
      ["shard-b", b(7), -200_000],
    ]);
    expect(mis.status).toBe(409);
    const m = await spansOf(mis.body.tx);
    const mroot = transferRoot(m.spans, mis.body.tx);
    expect(mroot.span.attributes).toMatchObject({ "speccommit.outcome": "aborted", "speccommit.abort_reason": "insufficient_funds" });
    expect(mroot.span.status).toBe(2); // ERROR
    expect(mroot.children.map((c) => c.span.name).sort()).toEqual(effectKinds(m.trace));
    expect(mroot.children.map((c) => c.span.name)).toContain("local.compensate");
    const failed = mroot.children.filter((c) => c.span.name === "local.apply" && c.span.attributes["speccommit.shard"] === "shard-b");
    expect(failed.map((c) => [c.span.attributes["speccommit.result"], c.span.status])).toEqual([["INSUFFICIENT_FUNDS", 2]]);
  });

  it("an idempotent transfer continues the caller's trace too; its replay starts no new transfer span", async () => {
    const callerTrace = "0af7651916cd43dd8448eb211c80319c";
    const body = { ops: [{ shard_id: "shard-a", account_id: a(13), delta: -5 }, { shard_id: "shard-b", account_id: b(13), delta: 5 }], idempotency_key: "otel-order-1" };
    const headers = { traceparent: `00-${callerTrace}-b7ad6b7169203331-01` };
    const r = await request(url, "POST", "/transfer", { json: body, headers });
    expect(r.status).toBe(200);
    const { trace, spans } = await spansOf(r.body.tx);
    expect(trace.header.trace_id).toBe(callerTrace);
    expect(transferRoot(spans, r.body.tx).span.parentSpanId).toBe("b7ad6b7169203331");
    const again = await request(url, "POST", "/transfer", { json: body, headers });
    expect(again.body).toMatchObject({ tx: r.body.tx, replayed: true });
    await server.tracing!.flush();
    expect(receiver.spans.filter((s) => s.name === "transfer" && s.attributes["speccommit.tx_id"] === r.body.tx)).toHaveLength(1);
  });

  it("a malformed traceparent starts a new trace instead of failing the transfer", async () => {
    const r = await transfer(
      "2pc",
      [
        ["shard-a", a(9), -1],
        ["shard-b", b(9), 1],
      ],
      { traceparent: "00-not-a-trace-01" },
    );
    expect(r.status).toBe(200);
    const { spans } = await spansOf(r.body.tx);
    expect(transferRoot(spans, r.body.tx).span.parentSpanId).toBe("");
  });

  it("a collector that cannot be reached costs the transfers nothing: they commit, the failed export is reported on stderr", async () => {
    const unreachable = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--otlp-endpoint", "http://127.0.0.1:9"]);
    const said = vi.spyOn(console, "error");
    try {
      const r = await request(unreachable.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: a(15), delta: -1 }, { shard_id: "shard-b", account_id: b(15), delta: 1 }] } });
      expect(r.status).toBe(200);
      await unreachable.engine.drain(5_000);
      await unreachable.tracing!.flush();
      expect(said.mock.calls.map((c) => String(c[0])).join("\n")).toMatch(/OpenTelemetry: span export to http:\/\/127\.0\.0\.1:9\/v1\/traces failed \(.+\); \d+ spans dropped/);
    } finally {
      said.mockRestore();
      await unreachable.close(1_000);
    }
  });

  it("off (no --otlp-endpoint, no OTEL_* variables): no tracing, no trace id in the NDJSON header", async () => {
    const off = await serverOn(cluster, ["--etcd-prefix", PREFIX]);
    try {
      expect(off.tracing).toBeUndefined();
      const r = await request(off.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: a(11), delta: -1 }, { shard_id: "shard-b", account_id: b(11), delta: 1 }] } });
      expect(r.status).toBe(200);
      await off.engine.drain(5_000);
      const text = (await request(off.url, "GET", `/transactions/${r.body.tx}?format=ndjson`)).body as string;
      const header = parseTrace(text).header;
      expect(header.tx).toBe(r.body.tx);
      expect(header).not.toHaveProperty("trace_id");
    } finally {
      await off.close(1_000);
    }
  });
});
