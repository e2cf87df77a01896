/**
 * The services the interpreter executes effects through (spec/effects.ts).
 * Each has a live implementation (MariaDB XA, etcd) and an in-memory one
 * built on the spec's environment models (spec/env/), so the same
 * interpreter runs against real servers and in deterministic simulation.
 *
 * These are plain interfaces passed by the server (and the simulation) to
 * the engine, rather than Effect services resolved through a Context/Layer:
 * every transaction goes through them several times, and a direct call keeps
 * the per-effect cost at a function call.
 *
 * Contract shared by every implementation: a method never rejects. Every
 * failure, a timeout included, comes back as the result the vocabulary
 * defines for it (UNAVAILABLE: the request may or may not have taken effect),
 * and every call ends within a bounded time.
 */
import type { Fence, LogDeleteResult, LogListResult, LogPutResult, LogRecord, Op, RecoverResult, ShardId, TxId, XaResult } from "../../spec/effects.ts";

export interface XaExecutor {
  readonly shards: readonly ShardId[];
  exec(tx: TxId, shard: ShardId, ops: readonly Op[], guard: boolean): Promise<XaResult>;
  prepare(tx: TxId, shard: ShardId): Promise<XaResult>;
  /** `onePhase`: XA COMMIT ... ONE PHASE (an IDLE branch, no prepare). */
  commit(tx: TxId, shard: ShardId, onePhase?: boolean): Promise<XaResult>;
  rollback(tx: TxId, shard: ShardId): Promise<XaResult>;
  recover(shard: ShardId): Promise<RecoverResult>;
}

export interface TxlogStore {
  put(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult>;
  list(prefix: string): Promise<LogListResult>;
  delete(key: string, fence?: Fence): Promise<LogDeleteResult>;
}

/** Time and timers, so that a simulation can run the interpreter on virtual time. */
export interface Clock {
  /** Milliseconds, monotonic, arbitrary origin. */
  now_ms(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

export type TimerHandle = { readonly id: unknown };

export const systemClock: Clock = {
  now_ms: () => performance.now(),
  setTimer: (ms, fn) => {
    const t = setTimeout(fn, ms);
    // A pending protocol timer must not keep a finished process alive.
    t.unref();
    return { id: t };
  },
  clearTimer: (h) => clearTimeout(h.id as NodeJS.Timeout),
};
