/**
 * Two-phase commit with presumed abort, over XA (Gray 1978; Mohan, Lindsay &
 * Obermarck, "Transaction management in the R* distributed database
 * management system", TODS 1986, section 3: presumed abort).
 *
 * One coordinator per transaction:
 *   1. xa.exec every branch in parallel (XA START, guarded updates, XA END);
 *      each branch is prepared as soon as it has executed;
 *   2. all prepared: write the COMMIT decision to the txlog by CAS (create
 *      only if absent); any branch failed or the vote timed out: abort, with
 *      no log write (presumed abort: no record means abort);
 *   3. answer the client once the decision is durable (commit) or certain
 *      (abort: this coordinator is the only writer of a COMMIT record);
 *   4. xa.commit / xa.rollback every branch, retrying a bounded number of
 *      times, then leave the rest to the resolver;
 *   5. delete the decision record once every branch is finished.
 *
 * A transaction with a single branch needs no vote: XA COMMIT ... ONE PHASE
 * once it has executed, no prepare, no decision record (Gray & Reuter 1993,
 * 10.4.5, the one-participant case). Only `ok` then means committed; a
 * connection lost during that commit leaves the outcome unknown to the
 * coordinator, which answers "in doubt" (the shard's history tells).
 *
 * The role is pure: see spec/kernel/role.ts for the effect ordering contract.
 */
import { cannotArrive, type Role, type Step } from "../../kernel/role.ts";
import { decisionKey, decisionOf, EPOCH_KEY, type AbortReason, type Effect, type BranchSpec, type Fence, type LogPutResult, type Result, type ShardId, type TxId } from "../../kernel/effects.ts";
import { abortReason, branchOf, finished, LOG_TIMER, phase2, reply, setBranch, VOTE_TIMER, xaCoordinatorDefaults, type XaCoordinatorOptions } from "../xa/branches.ts";

export type BranchStatus =
  | "executing"
  | "preparing"
  | "prepared"
  | "failed"
  | "committing"
  | "committed"
  | "rolling_back"
  | "rolled_back"
  /** The last commit or rollback failed; a retry timer is set. */
  | "retry_wait"
  /** Out of attempts: the resolver finishes this branch (from the COMMIT record, or by presumed abort). */
  | "abandoned";

export interface BranchState {
  readonly shard: ShardId;
  readonly status: BranchStatus;
  /** Commit or rollback attempts made so far (bounded by `attemptsMax`). */
  readonly attempts: number;
  /** XA PREPARE was sent: the branch may be prepared, so only a rollback or the resolver ends it. */
  readonly prepareSent: boolean;
}

export type Phase = "idle" | "voting" | "one_phase" | "logging" | "committing" | "aborting" | "forgetting" | "done";

export interface CoordinatorState {
  readonly phase: Phase;
  readonly tx: TxId;
  readonly branches: readonly BranchState[];
  /** Attempts at the current txlog write (decision put or delete). */
  readonly logAttempts: number;
  readonly replied: boolean;
  readonly reason: AbortReason | null;
  /** The process epoch this coordinator writes under (see EpochRecord). */
  readonly epoch: number;
  /** Mutant retry-on-conflict only: the request, to run it again. */
  readonly request?: readonly BranchSpec[];
}

export type CoordinatorInput =
  | { readonly t: "request"; readonly tx: TxId; readonly branches: readonly BranchSpec[]; readonly epoch: number }
  | Result;

/**
 * Deliberate bugs, each of which the model checker must catch
 * (spec/protocols/twopc/model.ts lists which property catches which).
 */
export const coordinatorMutants = [
  "reply-before-durable",
  "commit-before-durable",
  "commit-despite-failed-prepare",
  "no-funds-check",
  "nota-retries-forever",
  "forget-before-commit",
  "timeout-keeps-voting",
  "no-epoch-fence",
  "one-phase-lost-is-commit",
  // On a lock conflict, roll back and run the whole transaction again, with no bound: two
  // conflicting transfers can take turns blocking each other forever, although at every turn
  // one of them could get both locks (a fair cycle that AG EF does not see; AC5_finishes does).
  "retry-on-conflict",
] as const;
export type CoordinatorMutant = (typeof coordinatorMutants)[number];

export type CoordinatorOptions = XaCoordinatorOptions<CoordinatorMutant>;

export const defaultCoordinatorOptions: CoordinatorOptions = xaCoordinatorDefaults;

type Out = Step<CoordinatorState, Effect>;

export function coordinator(opts: CoordinatorOptions = defaultCoordinatorOptions): Role<CoordinatorState, CoordinatorInput, Effect> {
  const mutant = opts.mutant;

  const start = (): CoordinatorState => ({ phase: "idle", tx: "", branches: [], logAttempts: 0, replied: false, reason: null, epoch: 0 });
  const fence = (st: CoordinatorState): Fence | undefined => (mutant === "no-epoch-fence" ? undefined : { key: EPOCH_KEY, version: st.epoch });
  const forget = (st: CoordinatorState): Effect => ({ t: "log.delete", key: decisionKey(st.tx), fence: fence(st) });

  const putDecision = (st: CoordinatorState): Effect => ({
    t: "log.put",
    key: decisionKey(st.tx),
    value: { kind: "decision", decision: "commit", branches: st.branches.map((b) => b.shard) },
    ifVersion: 0,
    fence: fence(st),
  });

  /**
   * Once every branch is finished (and so nothing is in flight): forget the
   * decision (commit), or stop (abort, or a branch left to the resolver, which
   * then also removes the record).
   */
  function maybeFinished(st: CoordinatorState, effects: Effect[]): Out {
    if (!st.branches.every(finished)) return { st, effects };
    if (st.phase === "committing" && st.branches.every((b) => b.status === "committed")) {
      return { st: { ...st, phase: "forgetting", logAttempts: 1 }, effects: [...effects, forget(st)] };
    }
    if (mutant === "retry-on-conflict" && st.phase === "aborting" && st.reason === "conflict" && st.request) {
      const again = begin(st.tx, st.epoch, st.request);
      return { st: again.st, effects: [...effects, ...again.effects] };
    }
    if (st.phase === "aborting" || st.phase === "committing") return { st: { ...st, phase: "done" }, effects };
    return { st, effects };
  }

  const p2 = phase2<CoordinatorState>({
    attemptsMax: opts.attemptsMax,
    retryDelayMs: opts.retryDelayMs,
    maybeFinished,
    notaRetriesForever: mutant === "nota-retries-forever",
    commitsEarly: mutant === "commit-before-durable",
    silentAbort: (reason) => mutant === "retry-on-conflict" && reason === "conflict",
  });

  /** Every branch is prepared: make the decision durable, then commit. */
  function decideCommit(st: CoordinatorState): Out {
    const logging: CoordinatorState = { ...st, phase: "logging", logAttempts: 1 };
    if (mutant === "reply-before-durable") {
      const r = reply<CoordinatorState>(logging, { status: "committed" });
      return { st: r.st, effects: [...r.fx, putDecision(st)] };
    }
    if (mutant === "commit-before-durable") {
      const c = p2.commitAll({ ...logging, phase: "logging" });
      return { st: { ...c.st, phase: "logging" }, effects: [putDecision(st), ...c.effects] };
    }
    return { st: logging, effects: [putDecision(st)] };
  }

  /** The decision is durable: answer the client and commit every branch. */
  function onDurable(st: CoordinatorState): Out {
    const r = reply<CoordinatorState>({ ...st, phase: "committing", logAttempts: 0 }, { status: "committed" });
    const c = p2.commitAll(r.st);
    const effects = [...r.fx, ...c.effects];
    if (mutant === "forget-before-commit") effects.push(forget(st));
    return maybeFinished(c.st, effects);
  }

  /** Execute every branch, under the vote timer. */
  function begin(tx: TxId, epoch: number, branches: readonly BranchSpec[]): Out {
    const next: CoordinatorState = {
      ...start(),
      phase: "voting",
      tx,
      epoch,
      branches: branches.map((b) => ({ shard: b.shard, status: "executing", attempts: 0, prepareSent: false })),
      ...(mutant === "retry-on-conflict" ? { request: branches } : {}),
    };
    const guard = mutant !== "no-funds-check";
    return {
      st: next,
      // One branch commits ONE PHASE (onExec), with no record: it is fenced on its shard instead (effects.ts xa.exec
      // `fence`), and its exec leaves it ACTIVE for the commit to end (`onePhase`).
      effects: [...branches.map((b): Effect => ({ t: "xa.exec", tx, shard: b.shard, ops: b.ops, guard, ...(branches.length === 1 ? { fence: epoch, onePhase: true as const } : {}) })), { t: "timer", id: VOTE_TIMER, ms: opts.voteTimeoutMs }],
    };
  }

  function onRequest(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "request" }>): Out {
    if (st.phase !== "idle") return { st, effects: [] };
    return begin(input.tx, input.epoch, input.branches);
  }

  function onExec(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "xa.exec" }>): Out {
    const b = branchOf(st, input.shard);
    if (b === undefined || b.status !== "executing") return { st, effects: [] };
    if (st.phase === "aborting") return p2.rollBackLate(st, input.shard);
    if (!input.r.ok) return p2.abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), abortReason(input.r.err));
    if (st.branches.length === 1) {
      const next = setBranch<CoordinatorState>({ ...st, phase: "one_phase" }, input.shard, { status: "committing", attempts: 1 });
      return { st: next, effects: [{ t: "xa.commit", tx: st.tx, shard: input.shard, onePhase: true }] };
    }
    return { st: setBranch<CoordinatorState>(st, input.shard, { status: "preparing", prepareSent: true }), effects: [{ t: "xa.prepare", tx: st.tx, shard: input.shard }] };
  }

  function onPrepare(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "xa.prepare" }>): Out {
    const b = branchOf(st, input.shard);
    if (b === undefined || b.status !== "preparing") return { st, effects: [] };
    if (st.phase === "aborting") return p2.rollBackLate(st, input.shard);
    const ok = input.r.ok || mutant === "commit-despite-failed-prepare";
    if (!ok) return p2.abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), abortReason(input.r.ok ? "RMFAIL" : input.r.err));
    const next = setBranch<CoordinatorState>(st, input.shard, { status: "prepared" });
    if (next.branches.every((x) => x.status === "prepared")) return decideCommit(next);
    return { st: next, effects: [] };
  }

  function onTimeout(st: CoordinatorState, id: string): Out {
    if (id === VOTE_TIMER) {
      if (st.phase !== "voting") return { st, effects: [] };
      if (mutant === "timeout-keeps-voting") {
        const r = reply<CoordinatorState>(st, { status: "aborted", reason: "timeout" });
        return { st: r.st, effects: r.fx };
      }
      return p2.abort(st, "timeout");
    }
    if (id === LOG_TIMER) {
      if (st.phase === "logging") return { st, effects: [putDecision(st)] };
      if (st.phase === "forgetting") return { st, effects: [forget(st)] };
      return { st, effects: [] };
    }
    return p2.onRetryTimer(st, id.slice("retry:".length));
  }

  function onDecisionPut(st: CoordinatorState, r: LogPutResult): Out {
    if (st.phase !== "logging") return { st, effects: [] };
    if (r.ok) return onDurable(st);
    if (r.err === "CAS") {
      // Our own earlier write whose answer was lost, or the resolver's presumed-abort record.
      if (decisionOf(r.current) === "commit") return onDurable(st);
      if (decisionOf(r.current) === "abort") return p2.abort(st, "resolver");
    }
    // A newer process owns the log (this one is stale and must not decide), or, out of attempts, the record
    // may or may not exist: only the resolver can finish this transaction now.
    const inDoubt = (s: CoordinatorState): Out => {
      const rep = reply<CoordinatorState>({ ...s, phase: "done" }, { status: "in_doubt" });
      return { st: rep.st, effects: rep.fx };
    };
    if (r.err === "FENCED") return inDoubt(st);
    return p2.retryLog(st, inDoubt);
  }

  /** XA COMMIT ... ONE PHASE answered: only `ok` means committed; a lost connection leaves the outcome unknown. */
  function onOnePhaseCommit(st: CoordinatorState, input: Extract<CoordinatorInput, { t: "xa.commit" }>): Out {
    // (The mutant takes a lost connection during the commit for success.)
    if (input.r.ok || (mutant === "one-phase-lost-is-commit" && input.r.err === "UNAVAILABLE")) {
      const r = reply<CoordinatorState>({ ...setBranch<CoordinatorState>(st, input.shard, { status: "committed" }), phase: "done" }, { status: "committed" });
      return { st: r.st, effects: r.fx };
    }
    if (input.r.err === "UNAVAILABLE") {
      // Committed or rolled back with its connection: the coordinator cannot tell which.
      const r = reply<CoordinatorState>({ ...setBranch<CoordinatorState>(st, input.shard, { status: "abandoned" }), phase: "done" }, { status: "in_doubt" });
      return { st: r.st, effects: r.fx };
    }
    return p2.abort(setBranch<CoordinatorState>(st, input.shard, { status: "failed" }), abortReason(input.r.err));
  }

  function step(st: CoordinatorState, input: CoordinatorInput): Out {
    switch (input.t) {
      case "request":
        return onRequest(st, input);
      case "xa.exec":
        return onExec(st, input);
      case "xa.prepare":
        return onPrepare(st, input);
      case "timeout":
        return onTimeout(st, input.id);
      case "log.put":
        return onDecisionPut(st, input.r);
      case "xa.commit": {
        const b = branchOf(st, input.shard);
        if (b === undefined || b.status !== "committing") return { st, effects: [] };
        return st.phase === "one_phase" ? onOnePhaseCommit(st, input) : p2.onCommit(st, input);
      }
      case "xa.rollback":
        return p2.onRollback(st, input);
      case "log.delete":
        return p2.onForget(st, input);
      case "xa.recover":
      case "log.list":
      case "xa.kill":
      case "local.apply":
      case "local.tombstone":
      case "local.compensate":
      case "local.release":
      case "local.scan":
        return cannotArrive("2PC coordinator", input);
    }
  }

  return { start, step };
}

/** The coordinator has nothing more to do for its transaction (the resolver may still have). */
export const coordinatorDone = (st: CoordinatorState): boolean => st.phase === "done";
