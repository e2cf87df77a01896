/**
 * Diagrams of recorded live transactions: every box says, in a short label,
 * which branch it is about (never the role's raw JSON, never cut before the
 * shard's name), so that two branches' answers are told apart.
 *
 * Twice: traces a real server recorded against MariaDB x3 and etcd started by
 * the test (2PC, parallel commit, the speculative path, an abort), fetched as
 * a user does (GET /transactions/:id?format=ndjson); and, for the answers a
 * healthy cluster rarely gives (crashed shards, an unavailable txlog, a
 * coordinator crash), many transactions of the deterministic simulation over
 * the in-memory environment models.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { ProtocolName as Protocol } from "../../spec/protocols/registry.ts";
import { parseTrace } from "../../traces/ndjson.ts";
import { toDot } from "../../traces/render.ts";
import type { Trace } from "../../spec/kernel/trace.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";
import { newEngine, randomTransfer, RESOLVER_INTERVAL_MS, submit, world, type Sent } from "../runtime/sim.ts";

/** The shard a step is about: its own lifeline, or the shard of the result a coordinator step takes. */
function shardOf(trace: Trace, step: Trace["steps"][number]): string | null {
  const shards = (trace.header.actors ?? []).filter((a) => a.startsWith("shard-"));
  if (shards.includes(step.actor)) return step.actor;
  const input = step.input as { shard?: unknown } | null;
  return typeof input === "object" && input !== null && typeof input.shard === "string" ? input.shard : null;
}

/** Every box of the trace's diagram, as the DOT draws it: its whole label, no JSON, the shard named. */
function expectReadableBoxes(trace: Trace): void {
  const dot = toDot(trace);
  // A folded run (traces/render.ts) is one box per row of its block, "  xN" after the label: N steps each.
  const boxes = [...dot.matchAll(/^ {2}a\d+_\d+ \[pos="[^"]*", shape=box, [^\n]*?label="(\d+)\. ([^"]*?)(?: {2}x(\d+))?"/gm)].map((m) => ({
    step: Number(m[1]),
    text: `${m[1]}. ${m[2]}`,
    times: m[3] === undefined ? 1 : Number(m[3]),
  }));
  expect(boxes.reduce((n, b) => n + b.times, 0), "one box per step, or per folded run").toBe(trace.steps.length);
  const row = (step: number) => trace.steps.findIndex((s) => s.step === step);
  for (const { step: n, text } of boxes) {
    const step = trace.steps[row(n)]!;
    const where = `${trace.header.model} step ${step.step} (${step.actor}): ${text}`;
    expect(text, where).not.toMatch(/[{}]|\\"/);
    expect(text.endsWith("..."), `${where}: cut`).toBe(false);
    const shard = shardOf(trace, step);
    if (shard !== null) expect(text.split(" "), where).toContain(shard);
  }
  for (const { step, text } of boxes) expect(text, "the recorded label, whole").toBe(`${step}. ${trace.steps[row(step)]!.label}`);
}

describe("a real server's traces", () => {
  let cluster: TestCluster;
  let server: RunningServer;

  beforeAll(async () => {
    cluster = await startTestCluster({ shards: 3, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
    server = await serverOn(cluster, ["--etcd-prefix", "live-diagrams/"]);
  });

  afterAll(async () => {
    closeAgents();
    await server?.close(2_000);
    await cluster?.stop();
  });

  /** One transfer, then its recorded trace once the coordinator is done. */
  async function traced(protocol: Protocol, debit_cents: number): Promise<Trace> {
    const ops = [
      { shard_id: "shard-a", account_id: 1, delta: -debit_cents },
      { shard_id: "shard-b", account_id: 101, delta: debit_cents - 100 },
      { shard_id: "shard-c", account_id: 201, delta: 100 },
    ];
    const r = await request(server.url, "POST", "/transfer", { json: { ops, protocol } });
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(500);
    for (let i = 0; i < 250; i++) {
      if ((await request(server.url, "GET", `/transactions/${r.body.tx}`)).body.done) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const nd = await request(server.url, "GET", `/transactions/${r.body.tx}?format=ndjson`);
    expect(nd.status).toBe(200);
    return parseTrace(nd.body as string);
  }

  it.each(["2pc", "parallel", "speculative"] as const)("%s: a committed transfer over three shards", async (protocol) => {
    const trace = await traced(protocol, 700);
    expectReadableBoxes(trace);
    // Each branch's answers are told apart: the coordinator heard one labelled answer per shard and kind.
    const heard = trace.steps.filter((s) => s.actor === "coordinator" && shardOf(trace, s) !== null).map((s) => s.label);
    expect(new Set(heard).size).toBe(heard.length);
  });

  it("2pc: an abort (insufficient funds) names the branch that refused and the ones rolled back", async () => {
    const trace = await traced("2pc", 100_000_000);
    expectReadableBoxes(trace);
    const labels = trace.steps.map((s) => s.label);
    expect(labels).toContain("EXEC shard-a -> INSUFFICIENT_FUNDS");
    expect(labels.some((l) => l?.startsWith("ROLLBACK shard-b"))).toBe(true);
  });
});

describe("simulated traces, faults included", () => {
  it("every box of every transaction names its branch and carries no JSON, whatever the environment answered", async () => {
    /** The answers the runs met, so that the test shows it saw the faults it is about. */
    const answers = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom<Protocol>("2pc", "parallel", "speculative"), async (seed, protocol) => {
        const w = world(seed, { withLocal: true });
        w.engine.startResolver();
        await w.clock.run(RESOLVER_INTERVAL_MS);
        const sent: Sent[] = [];
        for (let i = 0; i < 12; i++) w.clock.setTimer(w.rng.int(0, 600), () => submit(w, sent, randomTransfer(w.rng), protocol));
        const victim = "shard-b";
        w.clock.setTimer(w.rng.int(50, 300), () => {
          w.xa.crashShard(victim);
          w.local!.crashShard(victim);
        });
        w.clock.setTimer(w.rng.int(350, 500), () => {
          w.xa.restartShard(victim);
          w.local!.restartShard(victim);
        });
        w.clock.setTimer(w.rng.int(100, 400), () => (w.log.available = false));
        w.clock.setTimer(w.rng.int(450, 700), () => (w.log.available = true));
        await w.clock.run(w.rng.int(300, 700));
        const engines = [w.engine];
        w.engine.stop();
        w.xa.crashProcess();
        w.engine = newEngine(w);
        engines.push(w.engine);
        w.engine.startResolver();
        await w.clock.run(10_000);
        for (const s of sent) {
          for (const e of engines) {
            const view = e.transaction(s.tx);
            if (view?.trace === null || view?.trace === undefined) continue;
            expectReadableBoxes({ header: view.trace.header, steps: [...view.trace.steps] });
            for (const step of view.trace.steps) answers.add(step.label?.split(" -> ")[1] ?? "");
          }
        }
        w.engine.stop();
      }),
      { numRuns: 30 },
    );
    for (const a of ["ok", "UNAVAILABLE", "INSUFFICIENT_FUNDS", "v1"]) expect(answers).toContain(a);
  });
});
