/**
 * The coordinator of the speculative path with undo (docs/protocols/speculative.md).
 *
 * One coordinator per transaction:
 *   1. send every branch at once as one local transaction per shard
 *      (local.apply: debits guarded, credits escrowed as pending, undo row
 *      under the unique key (tx, branch));
 *   2. every branch answered ok: the transaction is committed (every key
 *      holds an undo row, so no tombstone can ever be inserted): answer the
 *      client at once. One round trip to the shards, no txlog write waited for;
 *   3. a branch failed, or did not answer in time: settle it (./settle.ts):
 *      tombstone each branch not known applied; a tombstone that wins decides
 *      the rollback (answer "aborted"), a key found holding the branch's undo
 *      row means it applied after all;
 *   4. after the answer: put SPEC_EXECUTING in the txlog (fenced by the
 *      process epoch), and once it is durable release every branch (commit)
 *      or compensate it (rollback), then write SPEC_COMMITTED /
 *      SPEC_ROLLED_BACK, and once that is durable forget the record (fenced
 *      log.delete). The coordinator is done when the record is forgotten,
 *      or when it gives up (the resolver finishes, or deletes a terminal
 *      record left behind).
 *
 * The role is pure: see spec/kernel/role.ts for the effect ordering contract.
 */
import type { Role, Step } from "../../kernel/role.ts";
import { EPOCH_KEY, type AbortReason, type BranchSpec, type Outcome, type Effect, type Result, type TxId } from "../../kernel/effects.ts";
import { answerOf, drive, newSettlement, onResult, settled, type Settlement, type SettleMutant, type SettleOptions } from "./settle.ts";

export type CoordinatorMutant =
  | SettleMutant
  /** Credits spendable at once (no escrow). */
  | "spendable-credits"
  /** The undo row written in a second local transaction after the write. */
  | "undo-separate"
  /** Answer "committed" as soon as one branch committed. */
  | "reply-early"
  /** Release a branch's credits as soon as it applied, before the transaction is final. */
  | "release-early";

export interface CoordinatorOptions {
  /** How long the applies may take before the coordinator settles the missing ones (the server's vote_timeout_ms: the first phase of every protocol). */
  readonly voteTimeoutMs: number;
  /** Retries of a failed tombstone, release, compensation or log write before leaving it to the resolver. */
  readonly attemptsMax: number;
  readonly retryDelayMs: number;
  readonly mutant?: CoordinatorMutant;
}

export const defaultCoordinatorOptions: CoordinatorOptions = { voteTimeoutMs: 2_000, attemptsMax: 4, retryDelayMs: 200 };

export interface CoordinatorState {
  readonly phase: "idle" | "running" | "done";
  readonly tx: TxId;
  readonly epoch: number;
  readonly settle: Settlement | null;
  readonly replied: boolean;
  readonly reason: AbortReason | null;
  /** The branches as requested (the undo-separate mutant sends their ops a second time). */
  readonly request: readonly BranchSpec[];
  /** Mutant undo-separate only: branches whose second (undo) transaction was sent. */
  readonly undoSent: readonly string[];
}

export type CoordinatorInput =
  | { readonly t: "request"; readonly tx: TxId; readonly branches: readonly BranchSpec[]; readonly epoch: number }
  | Result;

export const APPLY_TIMER = "apply";

type Out = Step<CoordinatorState, Effect>;

export function coordinator(opts: CoordinatorOptions = defaultCoordinatorOptions): Role<CoordinatorState, CoordinatorInput, Effect> {
  const mutant = opts.mutant;
  const start = (): CoordinatorState => ({ phase: "idle", tx: "", epoch: 0, settle: null, replied: false, reason: null, request: [], undoSent: [] });
  const settleOpts = (st: CoordinatorState): SettleOptions => ({
    attemptsMax: opts.attemptsMax,
    retryDelayMs: opts.retryDelayMs,
    fence: { key: EPOCH_KEY, version: st.epoch },
    mutant: mutant === "rollback-without-tombstone" || mutant === "compensate-keeps-row" || mutant === "release-deletes-row" || mutant === "delete-before-final" ? mutant : undefined,
  });

  const reply = (st: CoordinatorState, outcome: Outcome): Out =>
    st.replied ? { st, effects: [] } : { st: { ...st, replied: true }, effects: [{ t: "reply", tx: st.tx, outcome }] };

  /** Hand the settlement's new state back; answer the client as soon as the outcome is known. */
  function after(st0: CoordinatorState, out: { s: Settlement; effects: Effect[] }): Out {
    const answer = answerOf(out.s, st0.reason ?? "resolver");
    const r = answer === null ? { st: st0, effects: [] } : reply(st0, answer);
    const st: CoordinatorState = { ...r.st, settle: out.s, ...(settled(out.s) ? { phase: "done" as const } : {}) };
    return { st, effects: [...r.effects, ...out.effects] };
  }

  function step(st: CoordinatorState, input: CoordinatorInput): Out {
    if (input.t === "request") {
      if (st.phase !== "idle") return { st, effects: [] };
      const shards = input.branches.map((b) => b.shard);
      const running: CoordinatorState = {
        ...start(),
        phase: "running",
        tx: input.tx,
        epoch: input.epoch,
        request: input.branches,
        settle: newSettlement(input.tx, shards.map((shard) => ({ shard, k: "pending" })), "absent", 0),
      };
      const applies = input.branches.map(
        (b): Effect => ({
          t: "local.apply",
          tx: input.tx,
          shard: b.shard,
          ops: b.ops,
          branches: shards,
          escrow: mutant !== "spendable-credits",
          parts: mutant === "undo-separate" ? "write" : "both",
        }),
      );
      const out = drive(running.settle!, settleOpts(running));
      return { st: { ...running, settle: out.s }, effects: [...applies, ...out.effects, { t: "timer", id: APPLY_TIMER, ms: opts.voteTimeoutMs }] };
    }
    if (st.phase !== "running" || st.settle === null) return { st, effects: [] };
    const s = st.settle;
    const o = settleOpts(st);

    if (input.t === "local.apply") {
      const b = s.branches.find((x) => x.shard === input.shard);
      if (b === undefined || b.k !== "pending") return { st, effects: [] };
      if (input.r.ok && mutant === "undo-separate" && !st.undoSent.includes(input.shard)) {
        const ops = st.request.find((x) => x.shard === input.shard)?.ops ?? [];
        const undo: Effect = { t: "local.apply", tx: st.tx, shard: input.shard, ops, branches: s.branches.map((x) => x.shard), escrow: true, parts: "undo" };
        return { st: { ...st, undoSent: [...st.undoSent, input.shard].sort() }, effects: [undo] };
      }
      const k = input.r.ok ? "applied" : "unknown";
      const reason: AbortReason | null =
        st.reason ?? (input.r.ok ? null : input.r.err === "INSUFFICIENT_FUNDS" ? "insufficient_funds" : input.r.err === "DUPLICATE" ? "resolver" : "shard_unavailable");
      const next: CoordinatorState = { ...st, reason, settle: { ...s, branches: s.branches.map((x) => (x.shard === input.shard ? { ...x, k } : x)) } };
      if (input.r.ok && mutant === "reply-early") {
        const r = reply(next, { status: "committed" });
        const out = after(r.st, drive(r.st.settle!, o));
        return { st: out.st, effects: [...r.effects, ...out.effects] };
      }
      const out = after(next, drive(next.settle!, o));
      if (input.r.ok && mutant === "release-early") return { st: out.st, effects: [...out.effects, { t: "local.release", tx: st.tx, shard: input.shard, row: "retire" }] };
      return out;
    }
    if (input.t === "timeout" && input.id === APPLY_TIMER) {
      if (!s.branches.some((b) => b.k === "pending")) return { st, effects: [] };
      const next: CoordinatorState = { ...st, reason: st.reason ?? "timeout", settle: { ...s, branches: s.branches.map((b) => (b.k === "pending" ? { ...b, k: "unknown" } : b)) } };
      return after(next, drive(next.settle!, o));
    }
    return after(st, onResult(s, input, o));
  }

  return { start, step };
}

/** The coordinator has nothing more to do for its transaction (the resolver may still have). */
export const coordinatorDone = (st: CoordinatorState): boolean => st.phase === "done";
