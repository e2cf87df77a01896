/**
 * The services the interpreter executes effects through (spec/kernel/effects.ts).
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
import type {
  ConnectionId,
  Fence,
  LocalResult,
  LogDeleteResult,
  LogListResult,
  LogPutResult,
  LogRecord,
  Op,
  RecoverResult,
  ShardId,
  TxId,
  XaResult,
} from "../../spec/kernel/effects.ts";

export interface XaExecutor {
  readonly shards: readonly ShardId[];
  /**
   * `fence`: the coordinator's epoch, for a branch checked against its node's fence row; `onePhase`: no XA END, the
   * branch stays ACTIVE for its one-phase commit or rollback to end (spec/kernel/effects.ts xa.exec).
   */
  exec(tx: TxId, shard: ShardId, ops: readonly Op[], guard: boolean, fence?: number, onePhase?: boolean): Promise<XaResult>;
  prepare(tx: TxId, shard: ShardId): Promise<XaResult>;
  /** `onePhase`: XA COMMIT ... ONE PHASE (no prepare; XA END first when a one-phase exec left the branch ACTIVE). */
  commit(tx: TxId, shard: ShardId, onePhase?: boolean): Promise<XaResult>;
  rollback(tx: TxId, shard: ShardId): Promise<XaResult>;
  recover(shard: ShardId): Promise<RecoverResult>;
  /**
   * Parallel commit (spec/kernel/effects.ts XaKillEffect): the connection the branch
   * (tx, shard) runs on, as the shard numbers it, once `exec` answered ok and
   * while the branch's connection lives; null otherwise. The id includes the
   * shard's boot identity (MariaDB numbers connections from 1 again after a
   * restart), so an id from before a restart never names a later connection.
   */
  connectionOf(tx: TxId, shard: ShardId): ConnectionId | null;
  /**
   * KILL CONNECTION `conn` on `shard`; ok only once the connection is gone
   * (no longer in the process list), so no statement sent on it can still
   * run. An unknown id, or one from an earlier boot of the shard, is ok (that
   * connection is already gone). UNAVAILABLE: the shard did not answer.
   */
  kill(shard: ShardId, conn: ConnectionId): Promise<XaResult>;
}

/** The `r` of the local result answering effect kind T (compensate and release share one result shape). */
type LocalR<T extends LocalResult["t"]> = LocalResult extends infer X ? (X extends { t: infer U; r: infer R } ? (T extends U ? R : never) : never) : never;

/**
 * The speculative path's shard statements (spec/kernel/effects.ts LocalEffect,
 * spec/env/local.ts): each method is ONE local transaction (START TRANSACTION
 * ... COMMIT, never XA) on its shard, with the protocol's fields only (the
 * interpreter refuses the mutant-only fields before it calls these).
 */
export interface LocalExecutor {
  readonly shards: readonly ShardId[];
  /** Undo row (tx, shard) inserted, debits guarded, credits held as pending: all or nothing. */
  apply(tx: TxId, shard: ShardId, ops: readonly Op[], branches: readonly ShardId[]): Promise<LocalR<"local.apply">>;
  tombstone(tx: TxId, shard: ShardId): Promise<LocalR<"local.tombstone">>;
  /** Inverse deltas applied and the row retired (state compensated); applied: false when the row was not in state undo. */
  compensate(tx: TxId, shard: ShardId): Promise<LocalR<"local.compensate">>;
  /** Pending credits made spendable and the row retired (state released); applied: false when the row was not in state undo. */
  release(tx: TxId, shard: ShardId, commitTs?: bigint): Promise<LocalR<"local.release">>;
  /** The undo rows still in state undo. */
  scan(shard: ShardId): Promise<LocalR<"local.scan">>;
}

export interface TxlogStore {
  put(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult>;
  list(prefix: string): Promise<LogListResult>;
  /** `ifVersion`: only while the key is at that version (else CAS, nothing deleted). */
  delete(key: string, fence?: Fence, ifVersion?: number): Promise<LogDeleteResult>;
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
