// Deterministic simulation of the server's engine: the same interpreter,
// coordinators and resolver as in production, over the spec's environment
// models (runtime/adapters/memory.ts) on virtual time. A failure prints its
// seed; `SEED=<n> npx vitest run test/runtime/simulation.test.ts` replays it.
import { describe, expect, it } from "vitest";
import { Engine } from "../../runtime/engine.ts";
import { replayTrace } from "../../conformance/replay.ts";
import { validateEnvironment } from "../../conformance/validate.ts";
import { expectedHistory, historyOf, newEngine, randomTransfer, RESOLVER_INTERVAL_MS, SHARDS, submit, TOTAL_CENTS, world as simWorld, type Sent, type World } from "./sim.ts";

const world = (seed: number): World => simWorld(seed, { withLocal: false });

/** The invariants every run must end with, whatever the faults. */
function audit(w: World, sent: Sent[], seed: number): void {
  const where = `seed ${seed}`;
  expect(w.xa.total(), `${where}: total`).toBe(TOTAL_CENTS);
  for (const s of w.xa.state.values()) for (const [account, c] of s.balances) expect(c, `${where}: account ${account}`).toBeGreaterThanOrEqual(0);
  expect(w.xa.prepared(), `${where}: branches left prepared`).toEqual([]);
  for (const s of sent) {
    const applied = SHARDS.map((shard) => historyOf(w, s.tx, shard));
    const expected = expectedHistory(s);
    const none = SHARDS.map(() => []);
    // Atomic: all branches or none; and what the client was told is what happened.
    if (s.outcome?.status === "committed") expect(applied, `${where}: committed ${s.tx}`).toEqual(expected);
    else if (s.outcome?.status === "aborted") expect(applied, `${where}: aborted ${s.tx}`).toEqual(none);
    else expect([expected, none], `${where}: ${s.tx} half applied`).toContainEqual(applied);
  }
  expect(w.log.state.entries.filter((e) => e.key.startsWith("tx/")), `${where}: decision records left`).toEqual([]);
}

/** Every recorded trace replays against the role, and every answer in it is one the environment models allow. */
function replayAll(engines: Engine[], sent: Sent[]): void {
  let checked = 0;
  for (const s of sent) {
    const view = engines.map((e) => e.transaction(s.tx)).find((v) => v !== undefined);
    if (view === undefined || view.trace === null) continue;
    checked++;
    const trace = { header: view.trace.header, steps: [...view.trace.steps] };
    expect(replayTrace(trace), `replay ${s.tx}`).toEqual({ ok: true, steps: view.trace.steps.filter((x) => x.actor === "coordinator").length });
    expect(validateEnvironment(trace), `environment answers of ${s.tx}`).toMatchObject({ ok: true });
  }
  expect(checked).toBe(sent.length);
}

const seeds = process.env.SEED !== undefined ? [Number(process.env.SEED)] : Array.from({ length: 12 }, (_, i) => 1_000 + i);

describe("simulation: engine over the XA and txlog models", () => {
  it.each(seeds)("seed %i: no faults, contention and overdrafts: atomic, conserved, every trace replays", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < 150; i++) w.clock.setTimer(w.rng.int(0, 2_000), () => submit(w, sent, randomTransfer(w.rng)));
    await w.clock.run(10_000);
    expect(sent.length).toBe(150);
    expect(sent.every((s) => s.outcome !== null)).toBe(true);
    const statuses = new Set(sent.map((s) => (s.outcome!.status === "aborted" ? s.outcome!.reason : s.outcome!.status)));
    // A run that never aborts or never commits would check nothing interesting.
    expect(statuses).toContain("committed");
    expect(statuses).toContain("insufficient_funds");
    audit(w, sent, seed);
    replayAll([w.engine], sent);
    w.engine.stop();
  });

  it.each(seeds)("seed %i: shard crash, log outage, coordinator crash: the resolver settles everything", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < 150; i++) w.clock.setTimer(w.rng.int(0, 3_000), () => submit(w, sent, randomTransfer(w.rng)));
    const victim = SHARDS[seed % SHARDS.length]!;
    w.clock.setTimer(w.rng.int(200, 800), () => w.xa.crashShard(victim));
    w.clock.setTimer(w.rng.int(900, 1_300), () => w.xa.restartShard(victim));
    w.clock.setTimer(w.rng.int(1_400, 1_700), () => (w.log.available = false));
    w.clock.setTimer(w.rng.int(1_800, 2_100), () => (w.log.available = true));
    // The coordinator process dies mid-load and a new incarnation takes over the same shards and log.
    const crashAt = w.rng.int(2_200, 2_600);
    await w.clock.run(crashAt);
    const crashed = w.engine;
    w.engine.stop();
    w.xa.crashProcess();
    w.engine = newEngine(w);
    w.engine.startResolver();
    await w.clock.run(30_000);
    audit(w, sent, seed);
    replayAll([crashed, w.engine], sent);
    w.engine.stop();
  });

  it("trace validation refuses answers the environment models never give", async () => {
    const w = world(7);
    const scanned = w.engine.scanNow();
    await w.clock.run(100);
    expect(await scanned).toBe(true);
    const started = w.engine.submit([
      { shard: "shard-a", ops: [{ account: 1, delta: -10 }] },
      { shard: "shard-b", ops: [{ account: 101, delta: 10 }] },
    ]);
    await w.clock.run(1_000);
    expect(await started.outcome).toEqual({ status: "committed" });
    const view = w.engine.transaction(started.tx)!;
    const trace = { header: view.trace!.header, steps: [...view.trace!.steps] };
    // exec x2, prepare x2, the COMMIT record, commit x2, forgetting the record.
    expect(validateEnvironment(trace)).toEqual({ ok: true, answers: 8 });
    /** The trace with the answer to the first `t` replaced by `r`. */
    const tampered = (t: string, r: unknown) => {
      const i = trace.steps.findIndex((x) => x.actor === "coordinator" && (x.input as { t: string }).t === t);
      const steps = trace.steps.map((x, j) => (j === i ? { ...x, input: { ...(x.input as object), r } } : x));
      return { at: trace.steps[i]!.step, result: validateEnvironment({ header: trace.header, steps }) };
    };
    for (const [t, r] of [
      ["xa.exec", { ok: false, err: "DUPID" }],
      ["xa.prepare", { ok: false, err: "RBROLLBACK" }],
      ["xa.commit", { ok: false, err: "DUPID" }],
      ["log.put", { ok: true, version: 7 }],
      ["log.put", { ok: false, err: "CAS", current: { kind: "decision", decision: "commit", branches: ["shard-a", "shard-b"] }, version: 1 }],
    ] as const) {
      const { at, result } = tampered(t, r);
      expect(result, `${t} answered ${JSON.stringify(r)}`).toMatchObject({ ok: false, step: at });
    }
    w.engine.stop();
  });
});
