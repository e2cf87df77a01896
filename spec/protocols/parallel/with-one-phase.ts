/**
 * Parallel commit as the server runs it: a transaction with ONE branch takes
 * 2PC's one-phase path (../twopc/coordinator.ts: xa.exec, then XA COMMIT ...
 * ONE PHASE; no prepare and no txlog record), every other transaction is
 * parallel commit (./coordinator.ts).
 *
 * Why: with one branch there is no one to agree with, so parallel commit's
 * STAGING record, prepare and COMMITTED record are pure cost (2PC skips them
 * the same way). Both paths are checked: the one-phase path by the 2PC model's
 * `local` scenario, and under the resolver the server runs (the parallel one)
 * by the mixed model (spec/protocols/mixed); multi-branch transactions by the
 * parallel model. The choice is made once, from the request, and never
 * changes, so the two paths never share a transaction.
 *
 * The role is pure: see spec/role.ts.
 */
import type { Role, Step } from "../../role.ts";
import type { ParallelEffect, ParallelResult } from "../../effects.ts";
import * as parallel from "./coordinator.ts";
import * as twopc from "../twopc/coordinator.ts";

export type OnePhaseOrParallelState =
  | { readonly phase: "idle"; readonly path: null }
  | { readonly phase: twopc.CoordinatorState["phase"]; readonly path: "one_phase"; readonly inner: twopc.CoordinatorState }
  | { readonly phase: parallel.CoordinatorState["phase"]; readonly path: "parallel"; readonly inner: parallel.CoordinatorState };

export type OnePhaseOrParallelInput = parallel.CoordinatorInput;

export interface OnePhaseOrParallelOptions {
  readonly voteTimeoutMs: number;
  readonly retryDelayMs: number;
  readonly maxAttempts: number;
}

type Out = Step<OnePhaseOrParallelState, ParallelEffect>;

export function coordinator(opts: OnePhaseOrParallelOptions): Role<OnePhaseOrParallelState, OnePhaseOrParallelInput, ParallelEffect> {
  const one = twopc.coordinator(opts);
  const many = parallel.coordinator(opts);
  const start = (): OnePhaseOrParallelState => ({ phase: "idle", path: null });

  function step(st: OnePhaseOrParallelState, input: OnePhaseOrParallelInput): Out {
    if (st.path === null) {
      if (input.t !== "request") return { st, effects: [] };
      if (input.branches.length === 1) {
        const out = one.step(one.start(), input);
        return { st: { phase: out.st.phase, path: "one_phase", inner: out.st }, effects: out.effects };
      }
      const out = many.step(many.start(), input);
      return { st: { phase: out.st.phase, path: "parallel", inner: out.st }, effects: out.effects };
    }
    if (st.path === "one_phase") {
      // 2PC's role hears the shared vocabulary; an xa.exec answer's connection id means nothing to it.
      if (input.t === "xa.kill") return { st, effects: [] };
      const out = one.step(st.inner, input as twopc.CoordinatorInput);
      return { st: { phase: out.st.phase, path: "one_phase", inner: out.st }, effects: out.effects };
    }
    const out = many.step(st.inner, input);
    return { st: { phase: out.st.phase, path: "parallel", inner: out.st }, effects: out.effects };
  }

  return { start, step };
}

export const coordinatorDone = (st: OnePhaseOrParallelState): boolean =>
  st.path === "one_phase" ? twopc.coordinatorDone(st.inner) : st.path === "parallel" ? parallel.coordinatorDone(st.inner) : false;
