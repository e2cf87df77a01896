// Deterministic simulation of the server's engine: the same interpreter,
// coordinators and resolver as in production, over the spec's environment
// models (runtime/adapters/memory.ts) on virtual time. A failure prints its
// seed; `SEED=<n> npx vitest run test/runtime/simulation.test.ts` replays it.
import { describe, expect, it } from "vitest";
import type { Outcome, ShardId, TxId } from "../../spec/effects.ts";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { Engine } from "../../runtime/engine.ts";
import { replayTrace } from "../../runtime/replay.ts";
import { validateEnvironment } from "../../runtime/validate.ts";
import { branchXid } from "../../spec/env/executor.ts";

const SHARDS: ShardId[] = ["shard-a", "shard-b", "shard-c"];
const ACCOUNTS_PER_SHARD = 6;
const BALANCE_CENTS = 1_000;
const RESOLVER_INTERVAL_MS = 500;

interface World {
  clock: SimClock;
  rng: Rng;
  xa: MemoryXa;
  log: MemoryTxlog;
  engine: Engine;
}

function world(seed: number): World {
  const clock = new SimClock();
  const rng = new Rng(seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS_PER_SHARD }, (_, j) => [i * 100 + j + 1, BALANCE_CENTS] as const)]));
  const xa = new MemoryXa(balances, clock, rng);
  const log = new MemoryTxlog(clock, rng);
  return { clock, rng, xa, log, engine: newEngine(clock, xa, log) };
}

function newEngine(clock: SimClock, xa: MemoryXa, log: MemoryTxlog): Engine {
  return new Engine({
    adapters: { xa, log, clock },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 200, retryDelayMs: 20, maxAttempts: 3 },
    resolver_interval_ms: RESOLVER_INTERVAL_MS,
    in_flight_max: 10_000,
    retain_transactions: 10_000,
    record_traces: true,
  });
}

interface Sent {
  tx: TxId;
  ops: Array<{ shard: ShardId; account: number; delta: number }>;
  outcome: Outcome | null;
}

/** A random transfer: 2 or 3 accounts on random shards, hot accounts likely, amounts that sometimes overdraw. */
function randomTransfer(rng: Rng): Array<{ shard: ShardId; account: number; delta: number }> {
  const n = rng.int(2, 3);
  const picked = new Map<string, { shard: ShardId; account: number }>();
  while (picked.size < n) {
    const si = rng.int(0, SHARDS.length - 1);
    const account = si * 100 + (rng.next() < 0.5 ? 1 : rng.int(1, ACCOUNTS_PER_SHARD));
    picked.set(`${si}:${account}`, { shard: SHARDS[si]!, account });
  }
  const accounts = [...picked.values()];
  const amount = rng.int(1, 1_500);
  const credits = accounts.length - 1;
  return accounts.map((a, i) => ({ ...a, delta: i === 0 ? -amount * credits : amount }));
}

function submit(w: World, sent: Sent[], ops: Sent["ops"]): void {
  const shards = [...new Set(ops.map((o) => o.shard))].sort();
  const branches = shards.map((shard) => ({ shard, ops: ops.filter((o) => o.shard === shard).map(({ account, delta }) => ({ account, delta })) }));
  let started;
  try {
    started = w.engine.submit(branches);
  } catch {
    // Not ready (no epoch) or shutting down: the transfer never started.
    return;
  }
  const s: Sent = { tx: started.tx, ops, outcome: null };
  sent.push(s);
  void started.outcome.then((o) => (s.outcome = o));
}

function historyOf(w: World, tx: TxId, shard: ShardId): Array<[number, number]> {
  return w.xa.state
    .get(shard)!
    .history.filter(([xid]) => xid === branchXid(tx, shard))
    .map(([, account, delta]) => [account, delta]);
}

/** The invariants every run must end with, whatever the faults. */
function audit(w: World, sent: Sent[], seed: number): void {
  const where = `seed ${seed}`;
  expect(w.xa.total(), `${where}: total`).toBe(SHARDS.length * ACCOUNTS_PER_SHARD * BALANCE_CENTS);
  for (const s of w.xa.state.values()) for (const [account, c] of s.balances) expect(c, `${where}: account ${account}`).toBeGreaterThanOrEqual(0);
  expect(w.xa.prepared(), `${where}: branches left prepared`).toEqual([]);
  for (const s of sent) {
    const applied = SHARDS.map((shard) => historyOf(w, s.tx, shard));
    const expected = SHARDS.map((shard) =>
      s.ops
        .filter((o) => o.shard === shard)
        .map((o): [number, number] => [o.account, o.delta])
        .sort((a, b) => a[0] - b[0]),
    );
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
    w.engine = newEngine(w.clock, w.xa, w.log);
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
