// The deterministic simulation's world, shared by the simulation tests: the
// engine over the spec's environment models (MemoryXa, MemoryLocal,
// MemoryTxlog) on a SimClock, random transfers, and submitting them.
import type { Outcome, ShardId, TxId } from "../../spec/kernel/effects.ts";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { MemoryLocal } from "../../runtime/adapters/memory-local.ts";
import { Engine } from "../../runtime/engine.ts";
import type { Metrics } from "../../runtime/metrics.ts";
import type { Tracing } from "../../runtime/tracing.ts";
import type { ProtocolName } from "../../spec/protocols/registry.ts";
import { branchXid } from "../../spec/env/executor.ts";

export const SHARDS: ShardId[] = ["shard-a", "shard-b", "shard-c"];
export const ACCOUNTS_PER_SHARD = 6;
export const BALANCE_CENTS = 1_000;
export const RESOLVER_INTERVAL_MS = 500;
export const TOTAL_CENTS = BigInt(SHARDS.length * ACCOUNTS_PER_SHARD * BALANCE_CENTS);

export interface World {
  clock: SimClock;
  rng: Rng;
  xa: MemoryXa;
  /** The speculative path's shards; absent: the engine runs without them (2PC and parallel only). */
  local: MemoryLocal | undefined;
  log: MemoryTxlog;
  engine: Engine;
}

/** A fresh world; `withLocal`: also the speculative path's shards (same seed balances, separate state). */
export function world(seed: number, opts: { withLocal: boolean; metrics?: () => Metrics; tracing?: Tracing }): World {
  const clock = new SimClock();
  const rng = new Rng(seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS_PER_SHARD }, (_, j) => [i * 100 + j + 1, BALANCE_CENTS] as const)]));
  const xa = new MemoryXa(balances, clock, rng);
  const local = opts.withLocal ? new MemoryLocal(balances, clock, rng) : undefined;
  const log = new MemoryTxlog(clock, rng);
  const w: World = { clock, rng, xa, local, log, engine: undefined as unknown as Engine };
  w.engine = newEngine(w, opts.metrics?.(), opts.tracing);
  return w;
}

/** A new engine (a new process incarnation) over the world's shards and log. */
export function newEngine(w: Pick<World, "clock" | "xa" | "local" | "log">, metrics?: Metrics, tracing?: Tracing): Engine {
  return new Engine({
    ...(metrics !== undefined ? { metrics } : {}),
    ...(tracing !== undefined ? { tracing } : {}),
    adapters: { xa: w.xa, log: w.log, clock: w.clock, ...(w.local !== undefined ? { local: w.local } : {}) },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 200, retryDelayMs: 20, attemptsMax: 3 },
    resolver_interval_ms: RESOLVER_INTERVAL_MS,
    in_flight_max: 10_000,
    retain_transactions: 10_000,
    record_traces: true,
  });
}

export type Ops = Array<{ shard: ShardId; account: number; delta: number }>;

export interface Sent {
  tx: TxId;
  ops: Ops;
  outcome: Outcome | null;
}

/** A random transfer: 2 or 3 accounts on random shards, hot accounts likely, amounts that sometimes overdraw. */
export function randomTransfer(rng: Rng): Ops {
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

/** Submits `ops` as one transfer; one the engine refuses (not ready, shutting down) never started and is not recorded. */
export function submit(w: World, sent: Sent[], ops: Ops, protocol: ProtocolName = "2pc"): void {
  const shards = [...new Set(ops.map((o) => o.shard))].sort();
  const branches = shards.map((shard) => ({ shard, ops: ops.filter((o) => o.shard === shard).map(({ account, delta }) => ({ account, delta })) }));
  let started;
  try {
    started = w.engine.submit(branches, protocol);
  } catch {
    return;
  }
  const s: Sent = { tx: started.tx, ops, outcome: null };
  sent.push(s);
  void started.outcome.then((o) => (s.outcome = o));
}

/** The XA history rows of `tx` on `shard`, as [account, delta]. */
export function historyOf(w: World, tx: TxId, shard: ShardId): Array<[number, number]> {
  return w.xa.state
    .get(shard)!
    .history.filter(([xid]) => xid === branchXid(tx, shard))
    .map(([, account, delta]) => [account, delta]);
}

/** What each shard should hold of `s` once applied: its ops per shard, sorted by account. */
export function expectedHistory(s: Sent): Array<Array<[number, number]>> {
  return SHARDS.map((shard) =>
    s.ops
      .filter((o) => o.shard === shard)
      .map((o): [number, number] => [o.account, o.delta])
      .sort((a, b) => a[0] - b[0]),
  );
}
