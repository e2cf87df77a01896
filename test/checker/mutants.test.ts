// Every mutant of the reference models is caught, with the expected shortest
// counterexample, and every counterexample is a genuine run of the model.
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import { replay, keyOf, stateKeying } from "../../checker/rebuild.ts";
import { findFactory } from "../../checker/run.ts";
import { parseTrace, formatTrace } from "../../traces/ndjson.ts";
import type { Model } from "../../spec/kernel/model.ts";

/**
 * Shortest counterexamples, worked out by hand:
 * - TwoPhase commitWithoutAllPrepared: TMCommit, rm1 aborts, rm2 receives Commit (3).
 * - TwoPhase abortAfterPrepare: 3 prepares + 3 TMRcvPrepared + TMCommit + an RM
 *   receives Commit + another prepared RM aborts (2N + 3 = 9).
 * - TwoPhase commitAfterAbort: 2N to get every RM prepared and received,
 *   TMAbort, TMCommit, one RM receives Commit, another Abort (2N + 4 = 10).
 * - TCommit commitWithoutAllPrepared: rm1 aborts, rm2 prepares, rm2 commits (3).
 * - TCommit abortAfterCommit: all prepare, one commits, one aborts (N + 2 = 5).
 * - Countdown noRepair: the first jam is forever (1).
 */
const expected: Array<{ model: string; params: Record<string, number>; mutant: string; violation: string; length: number }> = [
  { model: "TwoPhase", params: { RM: 3 }, mutant: "commitWithoutAllPrepared", violation: "TCConsistent", length: 3 },
  { model: "TwoPhase", params: { RM: 3 }, mutant: "abortAfterPrepare", violation: "TCConsistent", length: 9 },
  { model: "TwoPhase", params: { RM: 3 }, mutant: "commitAfterAbort", violation: "TCConsistent", length: 10 },
  { model: "TwoPhase", params: { RM: 5 }, mutant: "abortAfterPrepare", violation: "TCConsistent", length: 13 },
  { model: "TCommit", params: { RM: 3 }, mutant: "commitWithoutAllPrepared", violation: "TCConsistent", length: 3 },
  { model: "TCommit", params: { RM: 3 }, mutant: "abortAfterCommit", violation: "TCConsistent", length: 5 },
  { model: "Countdown", params: { N: 3 }, mutant: "noRepair", violation: "Done", length: 1 },
];

/** Each step of the run is an enabled action of the previous state, and the states are consecutive successors. */
function expectGenuineRun<S, A>(m: Model<S, A>, states: S[], actions: A[]): void {
  const init = [...m.init()].map((s) => Buffer.from(m.encode(s)).toString("hex"));
  expect(init).toContain(Buffer.from(m.encode(states[0]!)).toString("hex"));
  actions.forEach((a, i) => {
    const enabled = [...m.actions(states[i]!)].map((x) => JSON.stringify(x));
    expect(enabled).toContain(JSON.stringify(a));
    expect(Buffer.from(m.encode(m.next(states[i]!, a)))).toEqual(Buffer.from(m.encode(states[i + 1]!)));
  });
}

describe("mutants", () => {
  it("every mutant of the reference models has an expected shortest trace here", () => {
    for (const name of ["TwoPhase", "TCommit", "Countdown"]) {
      for (const mutant of findFactory(name).mutants) expect(expected.some((e) => e.model === name && e.mutant === mutant)).toBe(true);
    }
  });

  for (const e of expected) {
    it(`${e.model} ${JSON.stringify(e.params)} ${e.mutant}: ${e.violation} in ${e.length} steps`, () => {
      const f = findFactory(e.model);
      const m = f.build(e.params, e.mutant);
      const r = check(m, {}, { params: e.params, mutant: e.mutant });
      expect(r.violations.map((v) => [v.name, v.length])).toEqual([[e.violation, e.length]]);
      const v = r.violations[0]!;
      // The trace: a header naming the violation, step 0 (the initial state), one step per action here.
      expect(v.trace.header).toMatchObject({ source: "checker", model: e.model, violation: e.violation, params: e.params });
      expect(v.trace.steps.map((s) => s.step)).toEqual(Array.from({ length: e.length + 1 }, (_, i) => i));
      expect(parseTrace(formatTrace(v.trace))).toEqual(v.trace);
      // And the same model without the mutant is fine.
      expect(check(f.build(e.params)).violations).toEqual([]);
    });
  }

  it("rebuilt traces are genuine runs that end in the violating state", () => {
    for (const e of expected.filter((x) => x.violation === "TCConsistent")) {
      const m = findFactory(e.model).build(e.params, e.mutant);
      const r = check(m);
      const last = r.violations[0]!.trace.steps.at(-1)!.state;
      // Re-derive the run from the trace's own states and check each step.
      const states = r.violations[0]!.trace.steps.map((s) => s.state);
      expect(states.at(-1)).toEqual(last);
      const keys = replayKeys(m, r.violations[0]!.length, e);
      const run = replay(m, stateKeying(m, false, !!m.packed), keys);
      expectGenuineRun(m, run.states, run.actions);
      expect(m.invariants[e.violation]!(run.states.at(-1)!)).toBe(false);
      run.states.slice(0, -1).forEach((s) => expect(m.invariants[e.violation]!(s)).toBe(true));
      expect(run.states.map((s) => JSON.stringify(m.view ? m.view(s) : s))).toEqual(states.map((s) => JSON.stringify(s)));
    }
  });
});

/** The keys of the counterexample's states, found by a fresh search (so the test does not trust the engine's chain). */
function replayKeys(m: Model<unknown, unknown>, length: number, e: { violation: string }): Array<number | Uint8Array> {
  let frontier: Array<{ s: unknown; path: unknown[] }> = [...m.init()].map((s) => ({ s, path: [s] }));
  const seen = new Set(frontier.map((f) => String(keyOf(m, false, f.s))));
  for (let d = 0; d <= length; d++) {
    const bad = frontier.find((f) => !m.invariants[e.violation]!(f.s));
    if (bad) return bad.path.map((s) => keyOf(m, false, s));
    const next: typeof frontier = [];
    for (const f of frontier) {
      for (const a of m.actions(f.s)) {
        const t = m.next(f.s, a);
        const k = String(keyOf(m, false, t));
        if (!seen.has(k)) {
          seen.add(k);
          next.push({ s: t, path: [...f.path, t] });
        }
      }
    }
    frontier = next;
  }
  throw new Error("no violation within the expected length");
}
