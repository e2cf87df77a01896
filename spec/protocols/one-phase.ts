/**
 * A multi-branch protocol as the server runs it: a transaction with ONE
 * branch takes 2PC's one-phase path (./twopc/coordinator.ts: xa.exec, then
 * XA COMMIT ... ONE PHASE; no prepare, no txlog record, nothing to undo),
 * every other transaction the given coordinator (parallel commit, the
 * speculative path).
 *
 * Why: with one branch there is no one to agree with and nothing to undo.
 * Parallel commit's STAGING record, prepare and COMMITTED record, and the
 * speculative path's undo row, escrow, records and release, are pure cost
 * there (2PC skips its own the same way). Both paths are checked roles: the
 * one-phase path by the 2PC model's `local` scenario, and under the
 * resolver the server runs by the mixed model (spec/protocols/mixed); the
 * multi-branch ones by their own models. The choice is made once, from the
 * request, and never changes, so the two paths never share a transaction.
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import type { Role, Step } from "../kernel/role.ts";
import type { BranchSpec, Effect, Result, TxId } from "../kernel/effects.ts";
import * as twopc from "./twopc/coordinator.ts";

/** The inputs 2PC's coordinator speaks: the shared vocabulary's results (not a kill's, not a local transaction's). */
const TWOPC_INPUTS: ReadonlySet<string> = new Set<Result["t"]>(["xa.exec", "xa.prepare", "xa.commit", "xa.rollback", "xa.recover", "log.put", "log.list", "log.delete", "timeout"]);
const isTwopcInput = (i: { readonly t: string }): i is twopc.CoordinatorInput => TWOPC_INPUTS.has(i.t);

export interface OnePhaseOptions {
  readonly voteTimeoutMs: number;
  readonly retryDelayMs: number;
  readonly maxAttempts: number;
}

export type WithOnePhaseState<S extends { readonly phase: string }> =
  | { readonly phase: "idle"; readonly path: null }
  | { readonly phase: twopc.CoordinatorState["phase"]; readonly path: "one_phase"; readonly inner: twopc.CoordinatorState }
  | { readonly phase: S["phase"]; readonly path: "many"; readonly inner: S };

type Request = { readonly t: "request"; readonly tx: TxId; readonly branches: readonly BranchSpec[]; readonly epoch: number };

/** `many` for transactions of two branches or more, 2PC's one-phase path for one; `manyDone` is `many`'s own done predicate. */
export function withOnePhase<S extends { readonly phase: string }, In extends { readonly t: string }, Fx>(
  opts: OnePhaseOptions,
  many: Role<S, In, Fx>,
  manyDone: (st: S) => boolean,
): { role: Role<WithOnePhaseState<S>, In, Fx | Effect>; done: (st: WithOnePhaseState<S>) => boolean } {
  const one = twopc.coordinator(opts);
  const start = (): WithOnePhaseState<S> => ({ phase: "idle", path: null });

  function step(st: WithOnePhaseState<S>, input: In): Step<WithOnePhaseState<S>, Fx | Effect> {
    if (st.path === null) {
      if (input.t !== "request") return { st, effects: [] };
      if ((input as unknown as Request).branches.length === 1) {
        const out = one.step(one.start(), input as unknown as Request);
        return { st: { phase: out.st.phase, path: "one_phase", inner: out.st }, effects: out.effects };
      }
      const out = many.step(many.start(), input);
      return { st: { phase: out.st.phase, path: "many", inner: out.st }, effects: out.effects };
    }
    if (st.path === "one_phase") {
      // 2PC's role hears only the shared vocabulary (an exec's connection id means nothing to it); anything else is not for it.
      if (!isTwopcInput(input)) return { st, effects: [] };
      const out = one.step(st.inner, input);
      return { st: { phase: out.st.phase, path: "one_phase", inner: out.st }, effects: out.effects };
    }
    const out = many.step(st.inner, input);
    return { st: { phase: out.st.phase, path: "many", inner: out.st }, effects: out.effects };
  }

  return { role: { start, step }, done: doneWithOnePhase(manyDone) };
}

/** The done predicate of withOnePhase(_, many, manyDone): the path's own. */
export const doneWithOnePhase =
  <S extends { readonly phase: string }>(manyDone: (st: S) => boolean) =>
  (st: WithOnePhaseState<S>): boolean =>
    st.path === "one_phase" ? twopc.coordinatorDone(st.inner) : st.path === "many" ? manyDone(st.inner) : false;
