// Deterministic simulation of the engine running parallel commit and the
// speculative path: the same interpreter, coordinators and process resolver
// as in production, over the spec's environment models (MemoryXa,
// MemoryLocal, MemoryTxlog) on virtual time, with a shard crash, a txlog
// outage and a coordinator process crash in the middle of the load. A failure
// prints its seed; `SEED=<n> npx vitest run test/runtime/simulation-protocols.test.ts` replays it.
import { describe, expect, it } from "vitest";
import type { Outcome, ShardId, TxId } from "../../spec/effects.ts";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { MemoryLocal } from "../../runtime/adapters/memory-local.ts";
import { Engine } from "../../runtime/engine.ts";
import { replayTrace } from "../../runtime/replay.ts";
import type { Protocol } from "../../runtime/protocols.ts";
import { Metrics } from "../../runtime/metrics.ts";
import { branchXid } from "../../spec/env/executor.ts";
import { rowOf } from "../../spec/env/local.ts";

const SHARDS: ShardId[] = ["shard-a", "shard-b", "shard-c"];
const ACCOUNTS_PER_SHARD = 6;
const BALANCE_CENTS = 1_000;
const RESOLVER_INTERVAL_MS = 500;
const TRANSFERS = 120;

interface World {
  clock: SimClock;
  rng: Rng;
  xa: MemoryXa;
  local: MemoryLocal;
  log: MemoryTxlog;
  engine: Engine;
}

function world(seed: number): World {
  const clock = new SimClock();
  const rng = new Rng(seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS_PER_SHARD }, (_, j) => [i * 100 + j + 1, BALANCE_CENTS] as const)]));
  const xa = new MemoryXa(balances, clock, rng);
  const local = new MemoryLocal(balances, clock, rng);
  const log = new MemoryTxlog(clock, rng);
  return { clock, rng, xa, local, log, engine: newEngine(clock, xa, local, log) };
}

/** Resolver actions over every engine of this file, by action: the crash runs must make the resolver work. */
const resolverWork = new Map<string, number>();

function newEngine(clock: SimClock, xa: MemoryXa, local: MemoryLocal, log: MemoryTxlog): Engine {
  const metrics = new Metrics();
  const count = metrics.resolverActions.inc.bind(metrics.resolverActions);
  metrics.resolverActions.inc = ((labels: { action: string }) => {
    resolverWork.set(labels.action, (resolverWork.get(labels.action) ?? 0) + 1);
    count(labels);
  }) as typeof metrics.resolverActions.inc;
  return new Engine({
    metrics,
    adapters: { xa, log, clock, local },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 200, retryDelayMs: 20, maxAttempts: 3 },
    resolver_interval_ms: RESOLVER_INTERVAL_MS,
    in_flight_max: 10_000,
    retain_transactions: 10_000,
    record_traces: true,
  });
}

type OpsOf = Array<{ shard: ShardId; account: number; delta: number }>;
interface Sent {
  tx: TxId;
  ops: OpsOf;
  outcome: Outcome | null;
}

/** 2 or 3 accounts on random shards, hot accounts likely, amounts that sometimes overdraw. */
function randomTransfer(rng: Rng): OpsOf {
  const n = rng.int(2, 3);
  const picked = new Map<string, { shard: ShardId; account: number }>();
  while (picked.size < n) {
    const si = rng.int(0, SHARDS.length - 1);
    const account = si * 100 + (rng.next() < 0.5 ? 1 : rng.int(1, ACCOUNTS_PER_SHARD));
    picked.set(`${si}:${account}`, { shard: SHARDS[si]!, account });
  }
  const accounts = [...picked.values()];
  const amount = rng.int(1, 1_500);
  return accounts.map((a, i) => ({ ...a, delta: i === 0 ? -amount * (accounts.length - 1) : amount }));
}

function submit(w: World, protocol: Protocol, sent: Sent[], ops: OpsOf): void {
  const shards = [...new Set(ops.map((o) => o.shard))].sort();
  const branches = shards.map((shard) => ({ shard, ops: ops.filter((o) => o.shard === shard).map(({ account, delta }) => ({ account, delta })) }));
  let started;
  try {
    started = w.engine.submit(branches, protocol);
  } catch {
    return; // not ready or shutting down: the transfer never started
  }
  const s: Sent = { tx: started.tx, ops, outcome: null };
  sent.push(s);
  void started.outcome.then((o) => (s.outcome = o));
}

const TOTAL = SHARDS.length * ACCOUNTS_PER_SHARD * BALANCE_CENTS;

function auditParallel(w: World, sent: Sent[], where: string): void {
  expect(w.xa.total(), `${where}: total`).toBe(TOTAL);
  expect(w.xa.prepared(), `${where}: branches left prepared`).toEqual([]);
  for (const s of sent) {
    const applied = SHARDS.map((shard) =>
      w.xa.state
        .get(shard)!
        .history.filter(([xid]) => xid === branchXid(s.tx, shard))
        .map(([, account, delta]) => [account, delta]),
    );
    const expected = SHARDS.map((shard) =>
      s.ops
        .filter((o) => o.shard === shard)
        .map((o) => [o.account, o.delta])
        .sort((a, b) => a[0]! - b[0]!),
    );
    const none = SHARDS.map(() => []);
    if (s.outcome?.status === "committed") expect(applied, `${where}: committed ${s.tx}`).toEqual(expected);
    else if (s.outcome?.status === "aborted") expect(applied, `${where}: aborted ${s.tx}`).toEqual(none);
    else expect([expected, none], `${where}: ${s.tx} half applied`).toContainEqual(applied);
  }
  expect(w.log.state.entries.filter((e) => e.key.startsWith("tx/")), `${where}: decision or STAGING records left`).toEqual([]);
}

function auditSpeculative(w: World, sent: Sent[], where: string): void {
  expect(w.local.total(), `${where}: total (balances + pending)`).toBe(TOTAL);
  for (const s of w.local.state.values()) {
    for (const [account, balance, pending] of s.accounts) {
      expect(balance, `${where}: account ${account} balance`).toBeGreaterThanOrEqual(0);
      // Every speculation is final: no credit is held back any more.
      expect(pending, `${where}: account ${account} pending`).toBe(0);
    }
  }
  expect(w.local.undoLeft(), `${where}: undo rows left`).toEqual([]);
  for (const s of sent) {
    const shards = [...new Set(s.ops.map((o) => o.shard))];
    const states = shards.map((shard) => rowOf(w.local.state.get(shard)!, s.tx, shard)?.state ?? "none");
    const committed = states.every((x) => x === "released");
    const rolledBack = states.every((x) => x === "tombstone" || x === "compensated" || x === "none") && (s.outcome?.status !== "aborted" || states.some((x) => x !== "none"));
    if (s.outcome?.status === "committed") expect(committed, `${where}: committed ${s.tx}: ${states.join(",")}`).toBe(true);
    else if (s.outcome?.status === "aborted") expect(rolledBack, `${where}: aborted ${s.tx}: ${states.join(",")}`).toBe(true);
    else expect(committed || rolledBack, `${where}: ${s.tx} neither committed nor rolled back: ${states.join(",")}`).toBe(true);
  }
  const open = w.log.state.entries.filter((e) => e.value.kind === "spec" && e.value.state === "SPEC_EXECUTING");
  expect(open, `${where}: SPEC_EXECUTING records left`).toEqual([]);
}

function replayAll(engines: Engine[], sent: Sent[]): number {
  let checked = 0;
  for (const s of sent) {
    const view = engines.map((e) => e.transaction(s.tx)).find((v) => v !== undefined);
    if (view === undefined || view.trace === null) continue;
    checked++;
    const trace = { header: view.trace.header, steps: [...view.trace.steps] };
    expect(replayTrace(trace), `replay ${s.tx}`).toMatchObject({ ok: true });
  }
  return checked;
}

const seeds = process.env.SEED !== undefined ? [Number(process.env.SEED)] : Array.from({ length: 8 }, (_, i) => 2_000 + i);
const PROTOCOLS: Protocol[] = ["parallel", "speculative"];

describe.each(PROTOCOLS)("simulation: %s over the environment models", (protocol) => {
  const audit = protocol === "parallel" ? auditParallel : auditSpeculative;

  it.each(seeds)("seed %i: no faults: atomic, conserved, every trace replays", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 2_000), () => submit(w, protocol, sent, randomTransfer(w.rng)));
    await w.clock.run(10_000);
    expect(sent.length).toBe(TRANSFERS);
    expect(sent.every((s) => s.outcome !== null)).toBe(true);
    const statuses = new Set(sent.map((s) => (s.outcome!.status === "aborted" ? s.outcome!.reason : s.outcome!.status)));
    expect(statuses).toContain("committed");
    expect(statuses).toContain("insufficient_funds");
    // With no fault, nothing is left in doubt.
    expect(statuses).not.toContain("in_doubt");
    audit(w, sent, `${protocol} seed ${seed}`);
    expect(replayAll([w.engine], sent)).toBe(sent.length);
    w.engine.stop();
  });

  it.each(seeds)("seed %i: shard crash, log outage, coordinator crash: the resolver settles everything", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 3_000), () => submit(w, protocol, sent, randomTransfer(w.rng)));
    const victim = SHARDS[seed % SHARDS.length]!;
    w.clock.setTimer(w.rng.int(200, 800), () => (protocol === "parallel" ? w.xa.crashShard(victim) : w.local.crashShard(victim)));
    w.clock.setTimer(w.rng.int(900, 1_300), () => (protocol === "parallel" ? w.xa.restartShard(victim) : w.local.restartShard(victim)));
    w.clock.setTimer(w.rng.int(1_400, 1_700), () => (w.log.available = false));
    w.clock.setTimer(w.rng.int(1_800, 2_100), () => (w.log.available = true));
    await w.clock.run(w.rng.int(2_200, 2_600));
    const crashed = w.engine;
    w.engine.stop();
    w.xa.crashProcess();
    w.engine = newEngine(w.clock, w.xa, w.local, w.log);
    w.engine.startResolver();
    await w.clock.run(30_000);
    audit(w, sent, `${protocol} seed ${seed}`);
    replayAll([crashed, w.engine], sent);
    w.engine.stop();
  });

  it("the crash runs above made the resolver recover this protocol's transactions", () => {
    // Over all seeds (a single one may crash at a quiet moment): parallel's STAGING fences and decisions, the speculative settling.
    const work = protocol === "parallel" ? ["fence", "staging_commit"] : ["tombstone", "release"];
    for (const action of work) expect(resolverWork.get(action) ?? 0, `${action}: ${JSON.stringify([...resolverWork])}`).toBeGreaterThan(0);
  });
});
