/**
 * What the XA coordinators (2PC, ./twopc/coordinator.ts; parallel commit,
 * ./parallel/coordinator.ts) do alike once the outcome is known: the
 * per-branch bookkeeping, the reply, and phase two. Commit or roll back every
 * branch, retry a failed statement a bounded number of times after a delay,
 * then leave the branch to the resolver ("abandoned"); forget the record once
 * every branch committed. When the coordinator is finished is each
 * protocol's own (`maybeFinished`).
 *
 * 1397 (NOTA) and 1402 (RBROLLBACK) on XA COMMIT or ROLLBACK mean the branch
 * is already finished. An XA ROLLBACK that answers UNAVAILABLE closed its
 * connection: a branch that was never sent XA PREPARE died with it; one that
 * may be prepared survives it, so the rollback is retried.
 */
import { assert, type Step } from "../../kernel/role.ts";
import {
  finishedOnCommit,
  finishedOnRollback,
  type AbortReason,
  type Effect,
  type Result,
  type Outcome,
  type ShardId,
  type TxId,
  type XaError,
} from "../../kernel/effects.ts";

export const VOTE_TIMER = "vote";
export const LOG_TIMER = "log";
export const retryTimer = (shard: ShardId): string => `retry:${shard}`;

export interface XaBranch {
  readonly shard: ShardId;
  readonly status: string;
  /** Commit or rollback attempts made so far (bounded by `attemptsMax`). */
  readonly attempts: number;
  /** XA PREPARE was sent: the branch may be prepared, so only a rollback or the resolver ends it. */
  readonly prepareSent: boolean;
}

export interface XaCoordinator<B extends XaBranch = XaBranch> {
  readonly phase: string;
  readonly tx: TxId;
  readonly branches: readonly B[];
  /** Attempts at the current txlog write. */
  readonly logAttempts: number;
  readonly replied: boolean;
  readonly reason: AbortReason | null;
}

export const setBranch = <S extends XaCoordinator>(st: S, shard: ShardId, b: Partial<S["branches"][number]>): S => ({
  ...st,
  branches: st.branches.map((x) => (x.shard === shard ? { ...x, ...b } : x)),
});

export const branchOf = <S extends XaCoordinator>(st: S, shard: ShardId): S["branches"][number] | undefined => st.branches.find((b) => b.shard === shard);

/** The client's answer, once: a second reply is never sent. */
export const reply = <S extends XaCoordinator>(st: S, outcome: Outcome): { st: S; fx: Effect[] } =>
  st.replied ? { st, fx: [] } : { st: { ...st, replied: true }, fx: [{ t: "reply", tx: st.tx, outcome }] };

/** Why a branch's failure aborts the transaction, as the client hears it (FENCED: a survivor's resolver read it as aborted). */
export const abortReason = (err: XaError): AbortReason =>
  err === "INSUFFICIENT_FUNDS" ? "insufficient_funds" : err === "LOCK_TIMEOUT" || err === "DEADLOCK" ? "conflict" : err === "DEADLOCK_VICTIM" ? "deadlock" : err === "FENCED" ? "resolver" : "shard_unavailable";

/** The settings of an XA coordinator (2PC, parallel commit), with its protocol's mutants. */
export interface XaCoordinatorOptions<M extends string> {
  /** How long executing and preparing the branches may take before the coordinator aborts (parallel commit: only while STAGING is unsent). */
  readonly voteTimeoutMs: number;
  /** Delay before retrying a failed commit, rollback or log write. */
  readonly retryDelayMs: number;
  /** Attempts per commit, rollback or log write before leaving the work to the resolver. */
  readonly attemptsMax: number;
  readonly mutant?: M;
}

export const xaCoordinatorDefaults = { voteTimeoutMs: 5_000, retryDelayMs: 200, attemptsMax: 5 } as const;

export const finished = (b: XaBranch): boolean => b.status === "committed" || b.status === "rolled_back" || b.status === "abandoned";

export interface Phase2Options<S extends XaCoordinator> {
  readonly attemptsMax: number;
  readonly retryDelayMs: number;
  /** The protocol's own "is this coordinator done" (and what it does then). */
  maybeFinished(st: S, effects: Effect[]): Step<S, Effect>;
  /** Mutant only: NOTA and RBROLLBACK on XA COMMIT are not taken for "finished", and retried for ever. */
  readonly notaRetriesForever?: boolean;
  /** Mutant only: XA COMMIT may go out before the decision is durable (the assertion against it is off). */
  readonly commitsEarly?: boolean;
  /** Mutant only: an abort for this reason is not answered (the coordinator runs the transaction again). */
  silentAbort?(reason: AbortReason): boolean;
}

export function phase2<S extends XaCoordinator>(opts: Phase2Options<S>) {
  type Out = Step<S, Effect>;
  const noop = (st: S): Out => ({ st, effects: [] });

  /** XA COMMIT of every prepared branch: only once the decision is durable (phase "committing"). */
  function commitAll(st: S): Out {
    assert(st.phase === "committing" || opts.commitsEarly === true, () => `coordinator of ${st.tx}: XA COMMIT before the decision is durable (phase ${st.phase})`);
    const effects: Effect[] = [];
    let next = st;
    for (const b of st.branches) {
      if (b.status === "prepared" || b.status === "retry_wait") {
        next = setBranch(next, b.shard, { status: "committing", attempts: b.attempts + 1 } as Partial<S["branches"][number]>);
        effects.push({ t: "xa.commit", tx: st.tx, shard: b.shard });
      }
    }
    return { st: next, effects };
  }

  /** Abort: answer the client, then roll back every branch that may hold work (one with a statement in flight: when it answers). */
  function abort(st: S, reason: AbortReason): Out {
    const aborting: S = { ...st, phase: "aborting", reason };
    const r = opts.silentAbort?.(reason) === true ? { st: aborting, fx: [] } : reply<S>(aborting, { status: "aborted", reason });
    const effects: Effect[] = [...r.fx];
    let next = r.st;
    for (const b of next.branches) {
      if (b.status === "prepared" || b.status === "failed") {
        next = setBranch(next, b.shard, { status: "rolling_back", attempts: 1 } as Partial<S["branches"][number]>);
        effects.push({ t: "xa.rollback", tx: st.tx, shard: b.shard });
      }
    }
    return opts.maybeFinished(next, effects);
  }

  /** An exec or prepare answered after the coordinator decided to abort: whatever it did, roll the branch back. */
  function rollBackLate(st: S, shard: ShardId): Out {
    return { st: setBranch(st, shard, { status: "rolling_back", attempts: 1 } as Partial<S["branches"][number]>), effects: [{ t: "xa.rollback", tx: st.tx, shard }] };
  }

  /** A commit or rollback of one branch failed: retry later, or leave it to the resolver. */
  function retryOrGiveUp(st: S, shard: ShardId, err: XaError): Out {
    const b = branchOf(st, shard)!;
    const unbounded = opts.notaRetriesForever === true && (err === "NOTA" || err === "RBROLLBACK");
    if (b.attempts >= opts.attemptsMax && !unbounded) return opts.maybeFinished(setBranch(st, shard, { status: "abandoned" } as Partial<S["branches"][number]>), []);
    return { st: setBranch(st, shard, { status: "retry_wait" } as Partial<S["branches"][number]>), effects: [{ t: "timer", id: retryTimer(shard), ms: opts.retryDelayMs }] };
  }

  function onCommit(st: S, input: Extract<Result, { t: "xa.commit" }>): Out {
    const done = input.r.ok || (finishedOnCommit(input.r.err) && opts.notaRetriesForever !== true);
    if (done) return opts.maybeFinished(setBranch(st, input.shard, { status: "committed" } as Partial<S["branches"][number]>), []);
    return retryOrGiveUp(st, input.shard, input.r.ok ? "RMFAIL" : input.r.err);
  }

  function onRollback(st: S, input: Extract<Result, { t: "xa.rollback" }>): Out {
    const b = branchOf(st, input.shard);
    if (b === undefined || b.status !== "rolling_back") return noop(st);
    const gone = input.r.ok || finishedOnRollback(input.r.err) || (input.r.err === "UNAVAILABLE" && !b.prepareSent);
    if (gone) return opts.maybeFinished(setBranch(st, input.shard, { status: "rolled_back" } as Partial<S["branches"][number]>), []);
    return retryOrGiveUp(st, input.shard, input.r.err);
  }

  /** The retry timer of a branch fired: send its commit or rollback again. */
  function onRetryTimer(st: S, shard: ShardId): Out {
    const b = branchOf(st, shard);
    if (b === undefined || b.status !== "retry_wait") return noop(st);
    // Capped so that a retry loop is a cycle in the state graph, not an infinite chain.
    const next = setBranch(st, shard, { attempts: Math.min(b.attempts + 1, opts.attemptsMax) } as Partial<S["branches"][number]>);
    if (st.phase === "committing") return { st: setBranch(next, shard, { status: "committing" } as Partial<S["branches"][number]>), effects: [{ t: "xa.commit", tx: st.tx, shard }] };
    if (st.phase === "aborting") return { st: setBranch(next, shard, { status: "rolling_back" } as Partial<S["branches"][number]>), effects: [{ t: "xa.rollback", tx: st.tx, shard }] };
    return noop(st);
  }

  /** A txlog write did not answer: retry it after a delay, or, out of attempts, give up with `giveUp`. */
  function retryLog(st: S, giveUp: (st: S) => Out): Out {
    if (st.logAttempts >= opts.attemptsMax) return giveUp(st);
    return { st: { ...st, logAttempts: st.logAttempts + 1 }, effects: [{ t: "timer", id: LOG_TIMER, ms: opts.retryDelayMs }] };
  }

  /** The answer to forgetting the record: done, or retry the delete (a fenced one is someone else's to finish). */
  function onForget(st: S, input: Extract<Result, { t: "log.delete" }>): Out {
    if (st.phase !== "forgetting") return noop(st);
    const done = (s: S): Out => ({ st: { ...s, phase: "done" }, effects: [] });
    if (input.r.ok || input.r.err === "FENCED") return done(st);
    return retryLog(st, done);
  }

  return { commitAll, abort, rollBackLate, retryOrGiveUp, retryLog, onCommit, onRollback, onRetryTimer, onForget };
}
