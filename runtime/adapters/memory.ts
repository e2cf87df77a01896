/**
 * In-memory adapters for deterministic simulation: the same interpreter and
 * engine as the server, over the spec's environment models instead of
 * MariaDB and etcd, on virtual time, driven by a seed.
 *
 *   - SimClock: virtual milliseconds and a queue of events; `run()` fires
 *     them in time order and lets every promise chain settle in between, so
 *     a run is a pure function of the seed.
 *   - MemoryTxlog: spec/env/txlog.ts.
 *   - MemoryXa: spec/env/xa.ts shards, each effect executed by
 *     spec/env/executor.ts (the model of what runtime/adapters/xa-mysql.ts
 *     does); where the model allows several outcomes, the seed picks one.
 *
 * Every answer arrives after a random virtual latency, and is applied to the
 * model at that moment (the effect is atomic at its completion). Faults: a
 * shard can be crashed and restarted; the log can be made unavailable
 * (writes then may or may not happen, as the vocabulary says); the
 * coordinator process can crash (MemoryXa.crashProcess): its statements
 * already sent still land, as in the world (spec/world/world.ts), until the
 * shard notices its dead connection, a latency later, and rolls back what it
 * had not prepared.
 */
import type { ConnectionId, LogDeleteResult, LogListResult, LogPutResult, LogRecord, Fence, Op, RecoverResult, ShardId, TxId, XaResult } from "../../spec/kernel/effects.ts";
import * as txlog from "../../spec/env/txlog.ts";
import * as xa from "../../spec/env/xa.ts";
import { connOf, executeXa, type XaEffect } from "../../spec/env/executor.ts";
import type { Clock, TimerHandle, TxlogStore, XaExecutor } from "./ports.ts";

/** A small, fast, seedable generator (mulberry32). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

interface Event {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class SimClock implements Clock {
  private now = 0;
  private seq = 0;
  private readonly queue: Event[] = [];

  now_ms(): number {
    return this.now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const ev: Event = { at: this.now + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    // Sorted insert keeps `run` O(1) per event for the small queues of a simulation.
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1]!.at > ev.at || (this.queue[i - 1]!.at === ev.at && this.queue[i - 1]!.seq > ev.seq))) i--;
    this.queue.splice(i, 0, ev);
    return { id: ev };
  }

  clearTimer(h: TimerHandle): void {
    (h.id as Event).cancelled = true;
  }

  pending(): number {
    return this.queue.filter((e) => !e.cancelled).length;
  }

  /**
   * Fires events in time order until none is left before `until_ms`, or
   * `events_max` fired (a bound, so a livelock ends the run instead of
   * hanging it). Between two events every settled promise runs.
   */
  async run(until_ms = Number.POSITIVE_INFINITY, events_max = 1_000_000): Promise<number> {
    let fired = 0;
    await settle();
    while (this.queue.length > 0 && fired < events_max) {
      const ev = this.queue[0]!;
      if (ev.at > until_ms) break;
      this.queue.shift();
      if (ev.cancelled) continue;
      this.now = ev.at;
      ev.fn();
      fired++;
      await settle();
    }
    if (until_ms !== Number.POSITIVE_INFINITY && this.now < until_ms) this.now = until_ms;
    return fired;
  }
}

const noticeKey = (shard: ShardId, conn: string): string => `${shard}\u0000${conn}`;

/** Lets every promise continuation that is ready run (setImmediate comes after the microtask queue drained). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface Latency {
  readonly min_ms: number;
  readonly max_ms: number;
}

export class MemoryTxlog implements TxlogStore {
  state: txlog.TxlogState = txlog.emptyTxlog;
  /** While false every call answers UNAVAILABLE; a write then happens or not, as the seed says. */
  available = true;

  constructor(
    private readonly clock: SimClock,
    private readonly rng: Rng,
    private readonly latency: Latency = { min_ms: 1, max_ms: 3 },
  ) {}

  private later<T>(fn: () => T): Promise<T> {
    return new Promise((resolve) => this.clock.setTimer(this.rng.int(this.latency.min_ms, this.latency.max_ms), () => resolve(fn())));
  }

  put(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult> {
    return this.later(() => {
      const r = txlog.put(this.state, key, value, ifVersion, fence);
      if (!this.available) {
        if (this.rng.next() < 0.5) this.state = r.s;
        return { ok: false, err: "UNAVAILABLE" } as const;
      }
      this.state = r.s;
      return r.r;
    });
  }

  list(prefix: string): Promise<LogListResult> {
    return this.later(() => (this.available ? { ok: true, entries: txlog.list(this.state, prefix) } : { ok: false, err: "UNAVAILABLE" }));
  }

  delete(key: string, fence?: Fence, ifVersion?: number): Promise<LogDeleteResult> {
    return this.later(() => {
      const r = txlog.del(this.state, key, fence, ifVersion);
      if (!this.available) {
        if (this.rng.next() < 0.5) this.state = r.s;
        return { ok: false, err: "UNAVAILABLE" } as const;
      }
      this.state = r.s;
      return r.r;
    });
  }
}

export class MemoryXa implements XaExecutor {
  readonly shards: readonly ShardId[];
  readonly state = new Map<ShardId, xa.ShardState>();
  /** The coordinator process incarnation: a crash of it leaves every branch connection to be noticed dead (see crashProcess). */
  incarnation = 1;

  constructor(
    balances: ReadonlyMap<ShardId, ReadonlyArray<readonly [number, number]>>,
    private readonly clock: SimClock,
    private readonly rng: Rng,
    private readonly latency: Latency = { min_ms: 1, max_ms: 4 },
  ) {
    this.shards = [...balances.keys()];
    for (const [shard, b] of balances) this.state.set(shard, xa.initShard(b));
  }

  private run(shard: ShardId, fx: XaEffect, conn: xa.ConnId | null): Promise<XaResult | RecoverResult> {
    const incarnation = this.incarnation;
    // The connection the statement travels on: the branch's while it lives (xa.exec opens it), else a fresh one.
    const carrier = conn !== null && (fx.t === "xa.exec" || (this.state.get(shard)?.conns.some((c) => c.id === conn) ?? false)) ? conn : null;
    return new Promise((resolve) =>
      this.clock.setTimer(this.rng.int(this.latency.min_ms, this.latency.max_ms), () => {
        const s = this.state.get(shard);
        // A statement sent before its process died still runs on the server (spec/world/flights.ts, orphaned), unless the
        // server has already dropped the dead connection it came on; a read (RECOVER) of a dead process is answered to nobody.
        const dropped = carrier !== null && this.noticed.has(noticeKey(shard, carrier));
        if (s === undefined || (incarnation !== this.incarnation && (fx.t === "xa.recover" || dropped))) {
          resolve({ ok: false, err: "UNAVAILABLE" });
          return;
        }
        const outcomes = executeXa(s, fx, conn);
        const o = this.rng.pick(outcomes);
        this.state.set(shard, o.shard);
        this.noticeDeadConnections();
        resolve((o.result as { r: XaResult | RecoverResult }).r);
      }),
    );
  }

  private conn(tx: TxId, shard: ShardId): xa.ConnId {
    return connOf(tx, shard, this.incarnation);
  }

  exec(tx: TxId, shard: ShardId, ops: readonly Op[], guard: boolean, _fence?: number, onePhase?: boolean): Promise<XaResult> {
    const fx: XaEffect = { t: "xa.exec", tx, shard, ops, guard, ...(onePhase === true ? { onePhase: true as const } : {}) };
    return this.run(shard, fx, this.conn(tx, shard)) as Promise<XaResult>;
  }
  prepare(tx: TxId, shard: ShardId): Promise<XaResult> {
    return this.run(shard, { t: "xa.prepare", tx, shard }, this.conn(tx, shard)) as Promise<XaResult>;
  }
  commit(tx: TxId, shard: ShardId, onePhase = false): Promise<XaResult> {
    return this.run(shard, { t: "xa.commit", tx, shard, onePhase }, this.conn(tx, shard)) as Promise<XaResult>;
  }
  rollback(tx: TxId, shard: ShardId): Promise<XaResult> {
    return this.run(shard, { t: "xa.rollback", tx, shard }, this.conn(tx, shard)) as Promise<XaResult>;
  }
  recover(shard: ShardId): Promise<RecoverResult> {
    return this.run(shard, { t: "xa.recover", shard }, null) as Promise<RecoverResult>;
  }

  /** The branch's connection while the shard has it (null before exec, once the branch finished, after a crash or a kill). */
  connectionOf(tx: TxId, shard: ShardId): ConnectionId | null {
    const s = this.state.get(shard);
    const conn = this.conn(tx, shard);
    return s !== undefined && s.conns.some((c) => c.id === conn) ? conn : null;
  }

  /** KILL CONNECTION, applied after the latency as every statement; an unknown connection is ok (already gone). */
  kill(shard: ShardId, conn: ConnectionId): Promise<XaResult> {
    return new Promise((resolve) =>
      this.clock.setTimer(this.rng.int(this.latency.min_ms, this.latency.max_ms), () => {
        const s = this.state.get(shard);
        // A down shard answers nothing; a KILL sent before its process died still runs, as every statement.
        if (s === undefined || !s.up) {
          resolve({ ok: false, err: "UNAVAILABLE" });
          return;
        }
        this.state.set(shard, xa.killConnection(s, conn));
        // Nothing sent on a killed connection can still arrive.
        this.noticed.add(noticeKey(shard, conn));
        resolve({ ok: true });
      }),
    );
  }

  /** kill -9 of a shard: connections gone, unprepared branches rolled back, prepared ones kept. */
  crashShard(shard: ShardId): void {
    this.state.set(shard, xa.crash(this.state.get(shard)!));
  }

  restartShard(shard: ShardId): void {
    this.state.set(shard, xa.restart(this.state.get(shard)!));
  }

  /**
   * The coordinator process died: the next incarnation uses new connections.
   * The shards notice the dead process's connections after a latency each
   * (`notice`: unprepared branches roll back); until then its statements
   * already sent may still run on them, as in the world (spec/world/world.ts).
   */
  crashProcess(): void {
    this.incarnation++;
    this.noticeDeadConnections();
  }

  /** The shard drops a dead process's connection (unprepared work rolled back); statements sent on it no longer arrive. */
  notice(shard: ShardId, conn: ConnectionId): void {
    const s = this.state.get(shard);
    if (s !== undefined) this.state.set(shard, xa.disconnect(s, conn));
    this.noticed.add(noticeKey(shard, conn));
  }

  /** Connections a dead incarnation holds, each noticed once, after a latency. */
  private readonly noticing = new Set<string>();
  private readonly noticed = new Set<string>();
  private noticeDeadConnections(): void {
    for (const [shard, s] of this.state) {
      for (const c of s.conns) {
        const key = noticeKey(shard, c.id);
        const at = c.id.lastIndexOf("@");
        if (at < 0 || Number(c.id.slice(at + 1)) >= this.incarnation || this.noticing.has(key)) continue;
        this.noticing.add(key);
        this.clock.setTimer(this.rng.int(this.latency.min_ms, this.latency.max_ms), () => this.notice(shard, c.id));
      }
    }
  }

  /** Sum of committed balances over every shard; a bigint, as every sum of money is (runtime/transfer.ts DELTA_CENTS_MAX says why). */
  total(): bigint {
    let sum = 0n;
    for (const s of this.state.values()) for (const [, c] of s.balances) sum += BigInt(c);
    return sum;
  }

  prepared(): string[] {
    return [...this.state.values()].flatMap((s) => xa.recoverXids(s));
  }
}
