// Symmetry reduction must be exact: every state of an orbit (every
// permutation of the RMs) canonicalises to the same bytes, the representative
// is itself in the orbit, and the reduced search finds one state per orbit
// of the reachable states.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { check } from "../../checker/engine.ts";
import { twoPhase, type TwoPhaseView } from "../../spec/reference/twophase.ts";
import { tcommit } from "../../spec/reference/tcommit.ts";
import type { Model } from "../../spec/kernel/model.ts";

/** Every reachable state, by a plain BFS written here (no engine code). */
function reachable<S, A>(m: Model<S, A>): S[] {
  const seen = new Set<string>();
  const queue: S[] = [];
  const add = (s: S) => {
    const k = Buffer.from(m.encode(s)).toString("hex");
    if (!seen.has(k)) {
      seen.add(k);
      queue.push(s);
    }
  };
  for (const s of m.init()) add(s);
  for (let i = 0; i < queue.length; i++) for (const a of m.actions(queue[i]!)) add(m.next(queue[i]!, a));
  return queue;
}

/** Renames the RMs of a TwoPhase view: rm(i+1) becomes rm(p[i]+1). Written from the view, independently of the packing. */
function permuteView(v: TwoPhaseView, p: number[]): TwoPhaseView {
  const rename = (name: string) => name.replace(/rm(\d+)/, (_, d: string) => `rm${p[Number(d) - 1]! + 1}`);
  const rmState: Record<string, string> = {};
  for (const [rm, st] of Object.entries(v.rmState)) rmState[rename(rm)] = st;
  return { rmState, tmState: v.tmState, tmPrepared: v.tmPrepared.map(rename), msgs: v.msgs.map(rename) };
}

/** The packed TwoPhase state with this view, found among the reachable ones (the model is closed under permutation). */
function byView(states: number[], view: (x: number) => TwoPhaseView): Map<string, number> {
  const norm = (v: TwoPhaseView) => JSON.stringify({ ...v, tmPrepared: [...v.tmPrepared].sort(), msgs: [...v.msgs].sort(), rmState: Object.fromEntries(Object.entries(v.rmState).sort()) });
  return new Map(states.map((x) => [norm(view(x)), x]));
}

describe("TwoPhase symmetry", () => {
  const n = 5;
  const m = twoPhase(n);
  const states = reachable(m);
  const index = byView(states, m.view! as (x: number) => TwoPhaseView);
  const norm = (v: TwoPhaseView) => JSON.stringify({ ...v, tmPrepared: [...v.tmPrepared].sort(), msgs: [...v.msgs].sort(), rmState: Object.fromEntries(Object.entries(v.rmState).sort()) });
  const hex = (x: number) => Buffer.from(m.encode(m.canonical!(x))).toString("hex");

  it("every permutation of a reachable state canonicalises to the same bytes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: states.length - 1 }),
        fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: n, maxLength: n }),
        (i, p) => {
          const x = states[i]!;
          const permuted = index.get(norm(permuteView(m.view!(x) as TwoPhaseView, p)));
          expect(permuted).toBeDefined();
          expect(hex(permuted!)).toBe(hex(x));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("the representative is in the state's orbit (same multiset of per-RM facts)", () => {
    const facts = (x: number) => {
      const v = m.view!(x) as TwoPhaseView;
      const perRm = Object.entries(v.rmState).map(([rm, st]) => `${st}/${v.tmPrepared.includes(rm)}/${v.msgs.includes(`Prepared(${rm})`)}`);
      return JSON.stringify({ perRm: perRm.sort(), tm: v.tmState, decision: v.msgs.filter((s) => !s.startsWith("Prepared")) });
    };
    for (const x of states) expect(facts(m.canonical!(x))).toBe(facts(x));
  });

  it("the reduced search stores exactly one state per orbit, fewer than without symmetry", () => {
    const orbits = new Set(states.map(hex)).size;
    const r = check(m, { symmetry: true });
    expect(r.distinct).toBe(orbits);
    expect(r.distinct).toBeLessThan(states.length);
    expect(r.depth).toBe(check(m).depth);
    expect(r.violations).toEqual([]);
  });

  it("RM=7 has 920 orbits (the count the suite states)", () => {
    const m7 = twoPhase(7);
    const all = reachable(m7);
    const orbits = new Set(all.map((x) => Buffer.from(m7.encode(m7.canonical!(x))).toString("hex"))).size;
    expect(orbits).toBe(920);
    expect(check(m7, { symmetry: true }).distinct).toBe(orbits);
  });

  it("a mutant is still caught under symmetry, with a genuine (unreduced) trace of the same length", () => {
    const plain = check(twoPhase(4, "abortAfterPrepare"));
    const reduced = check(twoPhase(4, "abortAfterPrepare"), { symmetry: true });
    expect(reduced.violations.map((v) => [v.name, v.length])).toEqual(plain.violations.map((v) => [v.name, v.length]));
  });
});

describe("TCommit symmetry", () => {
  it("every permutation canonicalises alike; one state per orbit", () => {
    const m = tcommit(5);
    const states = reachable(m);
    const hex = (s: readonly number[]) => Buffer.from(m.encode(m.canonical!(s))).toString("hex");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: states.length - 1 }), fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 5, maxLength: 5 }), (i, p) => {
        const s = states[i]!;
        expect(hex(p.map((j) => s[j]!))).toBe(hex(s));
      }),
    );
    const orbits = new Set(states.map(hex)).size;
    expect(check(m, { symmetry: true }).distinct).toBe(orbits);
    expect(check(tcommit(6), { symmetry: true }).distinct).toBe(new Set(reachable(tcommit(6)).map((s) => hex(s))).size);
  });
});
