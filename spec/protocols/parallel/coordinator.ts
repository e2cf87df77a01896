/**
 * Parallel commit over XA: the commit point is a condition on durable state,
 * not a log write (CockroachDB, "Parallel Commits: Transactional Consensus in
 * One Round-Trip", 2019; Cornus, VLDB 2022, for prepared state as the log).
 *
 * One coordinator per transaction:
 *   1. xa.exec every branch in parallel; each answer brings the branch's
 *      connection id, and the branch is prepared at once on that connection;
 *   2. once every branch has executed, write the STAGING record (branches and
 *      their connection ids) at the decision key, by CAS (create only if
 *      absent), in parallel with the prepares still running;
 *   3. the transaction is COMMITTED as soon as the STAGING record is durable
 *      and every branch is prepared (the implicit commit condition): the
 *      client is answered then, one log round trip sooner than 2PC;
 *   4. then, off the client's path: the COMMITTED record (CAS over the
 *      STAGING version), XA COMMIT of every branch, and the record deleted;
 *   5. a branch that definitely failed (exec error, prepare refused) can
 *      never prepare, so abort is certain at once: answer, roll back, delete
 *      the STAGING record if it was written;
 *   6. a prepare whose outcome is unknown (UNAVAILABLE) once STAGING may be
 *      durable, or a log write that cannot be made: hand the transaction to
 *      the resolver (./resolver.ts), which fences the branches' connections
 *      (KILL) before it decides; the client hears in_doubt.
 *
 * XA COMMIT waits for the COMMITTED record: a committed branch disappears
 * from XA RECOVER, and a recovery that still saw STAGING would take it for a
 * branch that never prepared (the mutant commit-before-record).
 *
 * The coordinator never opens a second connection for a branch, and never
 * re-sends XA PREPARE: that is what lets a KILL of the recorded connection
 * settle for good whether the branch can still prepare.
 *
 * The role is pure: see spec/kernel/role.ts for the effect ordering contract.
 */
import { cannotArrive, type Role, type Step } from "../../kernel/role.ts";
import { abortReason, branchOf, finished, LOG_TIMER, phase2, reply, setBranch, VOTE_TIMER, xaCoordinatorDefaults, type XaCoordinatorOptions } from "../xa/branches.ts";
import {
  decisionKey,
  decisionOf,
  EPOCH_KEY,
  type AbortReason,
  type BranchSpec,
  type ConnectionId,
  type Fence,
  type LogPutResult,
  type Effect,
  type Result,
  type ShardId,
  type TxId,
} from "../../kernel/effects.ts";

export type BranchStatus =
  | "executing"
  | "preparing"
  | "prepared"
  | "failed"
  /** XA PREPARE answered UNAVAILABLE: the branch may or may not be prepared. */
  | "unknown"
  | "committing"
  | "committed"
  | "rolling_back"
  | "rolled_back"
  /** The last commit or rollback failed; a retry timer is set. */
  | "retry_wait"
  /** Out of attempts: the resolver finishes this branch. */
  | "abandoned";

export interface BranchState {
  readonly shard: ShardId;
  readonly status: BranchStatus;
  /** The connection the branch runs on, once xa.exec succeeded. */
  readonly conn: ConnectionId | null;
  /** Commit or rollback attempts made so far (bounded by `attemptsMax`). */
  readonly attempts: number;
  /** XA PREPARE was sent: the branch may be prepared, so only a rollback or the resolver ends it. */
  readonly prepareSent: boolean;
}

/**
 * voting: branches executing and preparing, STAGING on its way;
 * recording: implicitly committed, the COMMITTED record on its way;
 * committing / aborting: XA COMMIT / XA ROLLBACK of the branches;
 * forgetting: the record is being deleted.
 */
export type Phase = "idle" | "voting" | "recording" | "committing" | "aborting" | "forgetting" | "done";

/** The STAGING write: not sent; sent (or to be retried); durable; or given up with its fate unknown. */
export type Staging = "unsent" | "sent" | "durable" | "unknown";

export interface CoordinatorState {
  readonly phase: Phase;
  readonly tx: TxId;
  readonly branches: readonly BranchState[];
  readonly staging: Staging;
  /** The decision key's version once STAGING is durable (what the COMMITTED CAS expects). */
  readonly stagingVersion: number;
  /** Attempts at the current txlog write. */
  readonly logAttempts: number;
  readonly replied: boolean;
  readonly reason: AbortReason | null;
  /** The process epoch this coordinator writes under (see EpochRecord). */
  readonly epoch: number;
}

export type CoordinatorInput = { readonly t: "request"; readonly tx: TxId; readonly branches: readonly BranchSpec[]; readonly epoch: number } | Result;

/** Deliberate bugs, each of which the model checker must catch (./model.ts lists which property catches which). */
export const coordinatorMutants = [
  "reply-before-staging",
  "staging-without-conns",
  "commit-before-record",
  "record-before-prepared",
  "commit-before-staging",
  "timeout-after-staging",
  "no-funds-check",
] as const;
export type CoordinatorMutant = (typeof coordinatorMutants)[number];

export type CoordinatorOptions = XaCoordinatorOptions<CoordinatorMutant>;

export const defaultCoordinatorOptions: CoordinatorOptions = xaCoordinatorDefaults;

type Out = Step<CoordinatorState, Effect>;

export function coordinator(opts: CoordinatorOptions = defaultCoordinatorOptions): Role<CoordinatorState, CoordinatorInput, Effect> {
  const mutant = opts.mutant;

  const start = (): CoordinatorState => ({
    phase: "idle",
    tx: "",
    branches: [],
    staging: "unsent",
    stagingVersion: 0,
    logAttempts: 0,
    replied: false,
    reason: null,
    epoch: 0,
  });
  const fence = (st: CoordinatorState): Fence => ({ key: EPOCH_KEY, version: st.epoch });
  const forget = (st: CoordinatorState): Effect => ({ t: "log.delete", key: decisionKey(st.tx), fence: fence(st) });
  const putStaging = (st: CoordinatorState): Effect => ({
    t: "log.put",
    key: decisionKey(st.tx),
    value: { kind: "staging", branches: st.branches.map((b) => ({ shard: b.shard, conn: mutant === "staging-without-conns" ? "" : b.conn! })) },
    ifVersion: 0,
    fence: fence(st),
  });
  const putCommitted = (st: CoordinatorState): Effect => ({
    t: "log.put",
    key: decisionKey(st.tx),
    value: { kind: "decision", decision: "commit", branches: st.branches.map((b) => b.shard) },
    ifVersion: st.stagingVersion,
    fence: fence(st),
  });


  /** The implicit commit condition, as far as this coordinator has heard: STAGING durable and every branch prepared. */
  function maybeCommitted(st: CoordinatorState): Out {
    const allPrepared = st.branches.every((b) => b.status === "prepared");
    let next = st;
    const effects: Effect[] = [];
    if (allPrepared && mutant === "reply-before-staging") {
      const r = reply<CoordinatorState>(next, { status: "committed" });
      next = r.st;
      effects.push(...r.fx);
    }
    if (allPrepared && st.staging !== "durable" && mutant === "commit-before-staging") {
      const c = commitAll(next);
      return { st: c.st, effects: [...effects, ...c.effects] };
    }
    const early = mutant === "record-before-prepared" && !st.branches.some((b) => b.status === "failed" || b.status === "unknown");
    if (st.staging === "durable" && (allPrepared || early)) {
      const c = onImplicitCommit(next);
      return { st: c.st, effects: [...effects, ...c.effects] };
    }
    return { st: next, effects };
  }

  /** Committed: tell the client, then make the decision explicit. */
  function onImplicitCommit(st: CoordinatorState): Out {
    const r = reply<CoordinatorState>({ ...st, phase: "recording", logAttempts: 1 }, { status: "committed" });
    const effects = [...r.fx, putCommitted(st)];
    if (mutant === "commit-before-record") {
      const c = commitAll(r.st);
      return { st: { ...c.st, phase: "recording" }, effects: [...effects, ...c.effects] };
    }
    return { st: r.st, effects };
  }

  /**
   * Leave the transaction to the resolver: answer in_doubt (unless already
   * answered) and kill this coordinator's connections, so that its prepared
   * branches can be finished from any connection and its unprepared ones die.
   */
  function handover(st: CoordinatorState): Out {
    const r = reply<CoordinatorState>({ ...st, phase: "done" }, { status: "in_doubt" });
    const kills = st.branches
      .filter((b) => b.conn !== null && b.status !== "committed" && b.status !== "rolled_back")
      .map((b): Effect => ({ t: "xa.kill", shard: b.shard, conn: b.conn! }));
    return { st: r.st, effects: [...r.fx, ...kills] };
  }

  /** Once every branch is finished: forget the record (when one may exist), or stop. */
  function maybeFinished(st: CoordinatorState, effects: Effect[]): Out {
    if (!st.branches.every(finished)) return { st, effects };
    if (st.phase === "committing") {
      if (st.branches.every((b) => b.status === "committed")) return { st: { ...st, phase: "forgetting", logAttempts: 1 }, effects: [...effects, forget(st)] };
      return { st: { ...st, phase: "done" }, effects };
    }
    if (st.phase === "aborting") {
      // A STAGING write still on its way could land after a delete: wait for its answer.
      if (st.staging === "sent") return { st, effects };
      if (st.staging === "unsent") return { st: { ...st, phase: "done" }, effects };
      return { st: { ...st, phase: "forgetting", logAttempts: 1 }, effects: [...effects, forget(st)] };
    }
    return { st, effects };
  }

  const p2 = phase2<CoordinatorState>({ attemptsMax: opts.attemptsMax, retryDelayMs: opts.retryDelayMs, maybeFinished, commitsEarly: mutant === "commit-before-staging" || mutant === "commit-before-record" });
  const { commitAll, abort, retryLog } = p2;

  /** The answer to the STAGING write (while voting, or aborting after it was sent). */
  function onStaging(st: CoordinatorState, r: LogPutResult): Out {
    const durable = (version: number): Out => {
      const next: CoordinatorState = { ...st, staging: "durable", stagingVersion: version, logAttempts: 0 };
      return next.phase === "voting" ? maybeCommitted(next) : maybeFinished(next, []);
    };
    const lost = (s: CoordinatorState): Out => {
      const next: CoordinatorState = { ...s, staging: "unknown" };
      return next.phase === "voting" ? handover(next) : maybeFinished(next, []);
    };
    if (r.ok) return durable(r.version);
    if (r.err === "CAS") {
      // Only this coordinator writes STAGING for its transaction: an earlier attempt of ours, whose answer was lost.
      if (r.current?.kind === "staging") return durable(r.version);
      // The resolver presumed abort (it creates ABORT only where no record is): STAGING can never be written now.
      if (decisionOf(r.current) === "abort") {
        const next: CoordinatorState = { ...st, staging: "unknown" };
        return next.phase === "voting" ? abort(next, "resolver") : maybeFinished(next, []);
      }
      return lost(st);
    }
    if (r.err === "FENCED") return lost(st);
    return retryLog(st, lost);
  }

  /** The answer to the COMMITTED write. */
  function onCommitted(st: CoordinatorState, r: LogPutResult): Out {
    const ours = r.ok || (r.err === "CAS" && decisionOf(r.current) === "commit");
    if (ours) {
      const c = commitAll({ ...st, phase: "committing", logAttempts: 0 });
      return maybeFinished(c.st, c.effects);
    }
    // The transaction is committed whatever happens to this write: the resolver finds STAGING with every branch prepared.
    if (!r.ok && r.err === "UNAVAILABLE") return retryLog(st, handover);
    return handover(st);
  }

  function onRequest(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "request" }>): Out {
    if (st.phase !== "idle") return { st, effects: [] };
    const next: CoordinatorState = {
      ...start(),
      phase: "voting",
      tx: input.tx,
      epoch: input.epoch,
      branches: input.branches.map((b) => ({ shard: b.shard, status: "executing", conn: null, attempts: 0, prepareSent: false })),
    };
    const guard = mutant !== "no-funds-check";
    return {
      st: next,
      effects: [...input.branches.map((b): Effect => ({ t: "xa.exec", tx: input.tx, shard: b.shard, ops: b.ops, guard })), { t: "timer", id: VOTE_TIMER, ms: opts.voteTimeoutMs }],
    };
  }

  function onExec(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "xa.exec" }>): Out {
    const b = branchOf(st, input.shard);
    if (b === undefined || b.status !== "executing") return { st, effects: [] };
    if (st.phase === "aborting") return p2.rollBackLate(st, input.shard);
    if (st.phase !== "voting") return { st, effects: [] };
    if (!input.r.ok || input.conn === null) return abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), abortReason(input.r.ok ? "UNAVAILABLE" : input.r.err));
    const next = setBranch<CoordinatorState>(st, input.shard, { status: "preparing", prepareSent: true, conn: input.conn });
    const effects: Effect[] = [{ t: "xa.prepare", tx: st.tx, shard: input.shard }];
    // Every connection id is known: STAGING goes out while the prepares run.
    if (next.branches.every((x) => x.conn !== null)) return { st: { ...next, staging: "sent", logAttempts: 1 }, effects: [...effects, putStaging(next)] };
    return { st: next, effects };
  }

  function onPrepare(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "xa.prepare" }>): Out {
    const b = branchOf(st, input.shard);
    if (b === undefined || b.status !== "preparing") return { st, effects: [] };
    if (st.phase === "aborting") return p2.rollBackLate(st, input.shard);
    if (st.phase !== "voting") return { st, effects: [] };
    if (input.r.ok) return maybeCommitted(setBranch<CoordinatorState>(st, input.shard, { status: "prepared" }));
    if (input.r.err !== "UNAVAILABLE") return abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), abortReason(input.r.err));
    // Maybe prepared. Without STAGING nothing can commit: abort is still certain.
    if (st.staging === "unsent") return abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), "shard_unavailable");
    return handover(setBranch<CoordinatorState>(st, input.shard, { status: "unknown" }));
  }

  function onTimeout(st: CoordinatorState, id: string): Out {
    if (id === VOTE_TIMER) {
      // Once STAGING is sent, every prepare and the log write answer within their own timeouts.
      if (st.phase !== "voting" || (st.staging !== "unsent" && mutant !== "timeout-after-staging")) return { st, effects: [] };
      return abort(st, "timeout");
    }
    if (id === LOG_TIMER) {
      if ((st.phase === "voting" || st.phase === "aborting") && st.staging === "sent") return { st, effects: [putStaging(st)] };
      if (st.phase === "recording") return { st, effects: [putCommitted(st)] };
      if (st.phase === "forgetting") return { st, effects: [forget(st)] };
      return { st, effects: [] };
    }
    return p2.onRetryTimer(st, id.slice("retry:".length));
  }

  function onRecordPut(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "log.put" }>): Out {
    if (input.key !== decisionKey(st.tx)) return { st, effects: [] };
    if ((st.phase === "voting" || st.phase === "aborting") && st.staging === "sent") return onStaging(st, input.r);
    if (st.phase === "recording") return onCommitted(st, input.r);
    return { st, effects: [] };
  }

  function step(st: CoordinatorState, input: CoordinatorInput): Out {
    switch (input.t) {
      case "request":
        return onRequest(st, input);
      case "xa.exec":
        return onExec(st, input);
      case "xa.prepare":
        return onPrepare(st, input);
      case "log.put":
        return onRecordPut(st, input);
      case "timeout":
        return onTimeout(st, input.id);
      case "xa.commit": {
        const b = branchOf(st, input.shard);
        if (b === undefined || b.status !== "committing") return { st, effects: [] };
        return p2.onCommit(st, input);
      }
      case "xa.rollback":
        return p2.onRollback(st, input);
      case "log.delete":
        return p2.onForget(st, input);
      case "xa.kill":
        // The kills of a handover: nothing waits for them (the resolver fences again before it decides).
        return { st, effects: [] };
      case "xa.recover":
      case "log.list":
      case "local.apply":
      case "local.tombstone":
      case "local.compensate":
      case "local.release":
      case "local.scan":
        return cannotArrive("parallel-commit coordinator", input);
    }
  }

  return { start, step };
}

/** The coordinator has nothing more to do for its transaction (the resolver may still have). */
export const coordinatorDone = (st: CoordinatorState): boolean => st.phase === "done";
