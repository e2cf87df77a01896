/**
 * The cross-shard deadlock detector (docs/deadlock.md, docs/operations.md
 * "Cross-shard deadlocks").
 *
 * Every `deadlock_interval_ms` it asks each shard, in one query on its own
 * connection, which InnoDB transaction waits for which
 * (information_schema.INNODB_LOCK_WAITS joined to INNODB_TRX for the sessions'
 * thread ids), maps the sessions to this process's branches through the
 * thread ids the XA executor knows (XaMysql.branchThreads), builds the global
 * wait-for graph, and asks the spec (spec/deadlock/victims.ts chooseVictims)
 * for the victims, given each transaction's facts from its coordinator
 * (spec/deadlock/facts.ts). It decides nothing itself. A victim is aborted
 * through its own coordinator: KILL QUERY on its blocked xa.exec
 * (XaMysql.interruptExec), whose statement then answers DEADLOCK_VICTIM, and
 * the coordinator aborts by its protocol's rule, answering
 * `aborted` / `deadlock`.
 *
 * Bounded: one query per shard per tick, never two ticks at once, at most
 * WAIT_ROWS_MAX rows per shard; only the last tick's graph is kept.
 *
 * InnoDB serves INNODB_TRX and INNODB_LOCK_WAITS from a cache that it
 * refreshes only when the previous read is more than 100 ms old: a reader
 * polling faster (this detector, or anyone else reading those tables on the
 * shard) sees the same frozen waits for ever. Hence the interval's floor
 * (config.ts DEADLOCK_INTERVAL_MS_MIN) and the advice, in
 * docs/operations.md, not to poll those tables elsewhere.
 */
import type { ShardId, TxId } from "../spec/kernel/effects.ts";
import { chooseVictims, type TxFacts, type Victim, type WaitEdge, type WaitSnapshot } from "../spec/deadlock/victims.ts";
import { ShardPool, type PoolLimits, type QueryOutcome, type ShardAddress } from "./adapters/mysql-pool.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { Metrics } from "./metrics.ts";

/** Lock waits read per shard and tick; past it the rest are left for the next tick (and counted as truncated). */
export const WAIT_ROWS_MAX = 10_000;

/** Who waits for whom on one shard, by session (MariaDB 10.11 has INNODB_LOCK_WAITS; reading it needs PROCESS). */
export const LOCK_WAITS_SQL =
  "SELECT r.trx_mysql_thread_id AS waiter, b.trx_mysql_thread_id AS holder " +
  "FROM information_schema.INNODB_LOCK_WAITS w " +
  "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id " +
  `JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id LIMIT ${WAIT_ROWS_MAX}`;

export interface DeadlockDetectorOptions {
  readonly xa: XaMysql;
  /** The shards as the server reaches them: the detector opens one connection of its own to each. */
  readonly shards: readonly ShardAddress[];
  readonly limits: PoolLimits;
  readonly interval_ms: number;
  /** The facts of a transaction whose coordinator runs here (Engine.deadlockFacts); undefined: not ours, never a victim. */
  factsOf(tx: TxId): TxFacts | undefined;
  readonly metrics?: Metrics;
}

export interface DetectorStats {
  ticks: number;
  /** Victims chosen and interrupted. */
  victims: number;
  /** Ticks in which a shard did not answer (its waits were missing from that tick's graph). */
  shard_errors: number;
  /** The last tick's duration, ms. */
  last_tick_ms: number;
}

/** A session of a shard this process does not know: a node no one may abort (its own shard sees its cycles). */
const foreign = (shard: ShardId, thread: number): TxId => `${shard}#${thread}`;

export class DeadlockDetector {
  private readonly pools = new Map<ShardId, ShardPool>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<Victim[]> | null = null;
  readonly stats: DetectorStats = { ticks: 0, victims: 0, shard_errors: 0, last_tick_ms: 0 };
  /** The last tick's graph when it had a wait (replaced each tick: one snapshot kept). */
  last: WaitSnapshot | null = null;
  /** Called with each victim interrupted (tests and the bench measure with it). */
  onVictim: ((v: Victim, at_ms: number) => void) | null = null;

  constructor(private readonly opts: DeadlockDetectorOptions) {
    // One connection per shard: a pool exhausted by blocked branches must not keep the detector from reading or killing.
    for (const s of opts.shards) this.pools.set(s.name, new ShardPool(s, { ...opts.limits, connections_max: 1, waiters_max: 2 }));
  }

  start(): void {
    if (this.timer !== null || this.opts.interval_ms <= 0) return;
    this.timer = setInterval(() => void this.tick(), this.opts.interval_ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.pools.values()) p.close();
  }

  /** One round: read every shard, choose, interrupt. A tick asked for while one runs returns that one. */
  tick(): Promise<Victim[]> {
    this.ticking ??= this.round().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async round(): Promise<Victim[]> {
    const t0 = performance.now();
    const shards = [...this.pools.keys()];
    const reads = await Promise.all(shards.map((s) => this.pools.get(s)!.run<Array<{ waiter: unknown; holder: unknown }>>(LOCK_WAITS_SQL)));
    const edges: WaitEdge[] = [];
    const facts: Record<TxId, TxFacts> = {};
    /** Per victim candidate, its blocked sessions: (shard, thread). */
    const blocked = new Map<TxId, Array<{ shard: ShardId; thread: number }>>();
    reads.forEach((r, i) => {
      const shard = shards[i]!;
      if (!r.ok) {
        this.stats.shard_errors++;
        return;
      }
      if (r.value.length === 0) return;
      const ours = this.opts.xa.branchThreads(shard);
      const name = (thread: number): TxId => ours.get(thread) ?? foreign(shard, thread);
      for (const row of r.value) {
        const w = Number(row.waiter);
        const h = Number(row.holder);
        if (!Number.isSafeInteger(w) || !Number.isSafeInteger(h)) continue;
        const waiter = name(w);
        const holder = name(h);
        edges.push({ shard, waiter, holder });
        if (ours.has(w)) {
          const list = blocked.get(waiter) ?? [];
          if (!list.some((x) => x.shard === shard)) list.push({ shard, thread: w });
          blocked.set(waiter, list);
        }
        for (const tx of [waiter, holder]) {
          if (facts[tx] !== undefined) continue;
          const f = this.opts.factsOf(tx);
          if (f !== undefined) facts[tx] = f;
        }
      }
    });
    if (edges.length > 0) this.last = { edges, facts };
    const victims = edges.length === 0 ? [] : chooseVictims({ edges, facts });
    const interrupted: Victim[] = [];
    for (const v of victims) {
      let any = false;
      for (const b of blocked.get(v.tx) ?? []) {
        const pool = this.pools.get(b.shard)!;
        const run = (sql: string): Promise<QueryOutcome<unknown>> => pool.run(sql);
        if (await this.opts.xa.interruptExec(v.tx, b.shard, b.thread, run)) any = true;
      }
      if (!any) continue;
      interrupted.push(v);
      this.stats.victims++;
      this.opts.metrics?.deadlocks.inc();
      this.opts.metrics?.deadlockCycleLength.observe(v.cycle.length);
      this.onVictim?.(v, performance.now());
    }
    this.stats.ticks++;
    this.stats.last_tick_ms = performance.now() - t0;
    return interrupted;
  }
}
