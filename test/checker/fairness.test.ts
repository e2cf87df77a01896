// Liveness under weak fairness (checker/fairness.ts): leads-to and
// eventually-always on hand-made graphs whose answer is known, the lasso's
// shape and trace, and a property test against the definition (a brute-force
// search for a fair set of states a behaviour can keep visiting).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { check } from "../../checker/engine.ts";
import type { Fairness, Model } from "../../spec/kernel/model.ts";
import type { CheckResult } from "../../checker/result.ts";
import { toDot } from "../../traces/render.ts";
import { formatTrace, parseTrace } from "../../traces/ndjson.ts";

type Edge = readonly [from: number, to: number, action: string];

/** A model whose states are the numbers 0..n-1 and whose steps are the given edges (state 0 initial). */
function graph(edges: readonly Edge[], extra: Partial<Model<number, string>> = {}): Model<number, string> {
  return {
    name: "Graph",
    init: () => [0],
    *actions(s) {
      for (const [from, , a] of edges) if (from === s) yield a;
    },
    next: (s, a) => edges.find(([from, , x]) => from === s && x === a)![1],
    invariants: {},
    encode: (s) => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, s);
      return b;
    },
    decode: (b) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0),
    ...extra,
  };
}

const everyAction: Fairness<number, string> = (_s, a) => a;
const noAction: Fairness<number, string> = () => undefined;

function lasso(r: CheckResult, name: string): { prefix: number; cycle: number; states: unknown[]; loop: number | undefined } {
  const v = r.violations.find((x) => x.name === name);
  if (v === undefined) throw new Error(`${name} not violated: ${JSON.stringify(r.violations.map((x) => x.name))}`);
  return { prefix: v.length, cycle: v.cycle!, states: v.trace.steps.map((s) => s.state), loop: v.trace.header.loop };
}

describe("leads-to under weak fairness", () => {
  // 0 -try-> 1 -fail-> 0, 1 -succeed-> 2: success is possible from every state (AG EF holds), but
  // `succeed` is enabled only in 1, so weak fairness never forces it: a fair behaviour retries forever.
  const retry: Edge[] = [
    [0, 1, "try"],
    [1, 0, "fail"],
    [1, 2, "succeed"],
  ];

  it("finds the retry loop that AG EF cannot see, as a lasso", () => {
    const m = graph(retry, {
      eventually: { Done: { goal: (s) => s === 2 } },
      leadsTo: { Finishes: { from: () => true, to: (s) => s === 2, fair: everyAction } },
    });
    const r = check(m);
    expect(r.violations.map((v) => [v.name, v.kind])).toEqual([["Finishes", "leadsTo"]]);
    const l = lasso(r, "Finishes");
    expect([l.prefix, l.cycle]).toEqual([0, 2]);
    expect(l.states).toEqual([0, 1, 0]);
    expect(l.loop).toBe(0);
  });

  it("passes when the way out is enabled in every state of the loop (weak fairness then forces it)", () => {
    const m = graph([...retry, [0, 2, "succeed"]], { leadsTo: { Finishes: { from: () => true, to: (s) => s === 2, fair: everyAction } } });
    expect(check(m).violations).toEqual([]);
  });

  it("without fairness the first state may stutter forever; a fair step removes that", () => {
    const edges: Edge[] = [[0, 1, "go"]];
    const unfair = check(graph(edges, { leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: noAction } } }));
    expect([lasso(unfair, "Goes").prefix, lasso(unfair, "Goes").cycle, lasso(unfair, "Goes").loop]).toEqual([0, 0, 0]);
    expect(check(graph(edges, { leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: everyAction } } })).violations).toEqual([]);
  });

  it("a step that leaves the state unchanged neither enables nor discharges a fair action", () => {
    const edges: Edge[] = [
      [0, 0, "spin"],
      [0, 1, "go"],
    ];
    const onlySpin: Fairness<number, string> = (_s, a) => (a === "spin" ? "spin" : undefined);
    const r = check(graph(edges, { leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: onlySpin } } }));
    expect(lasso(r, "Goes").cycle).toBe(0);
    expect(check(graph(edges, { leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: everyAction } } })).violations).toEqual([]);
  });

  it("a deadlock outside `to` violates it even under full fairness (it stutters there)", () => {
    const r = check(graph([[0, 1, "go"], [0, 2, "fall"]], { leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: everyAction } } }));
    const l = lasso(r, "Goes");
    expect([l.prefix, l.cycle, l.states]).toEqual([1, 0, [0, 2]]);
  });

  it("only behaviours that pass a `from` state count, and the prefix is a shortest path through one", () => {
    // 0 -> 1 -> 2 -> 3 (from) -> 4 <-> 5 (a fair cycle, never `to`); 0 -> 4 directly skips `from`.
    const edges: Edge[] = [
      [0, 1, "a"],
      [1, 2, "b"],
      [2, 3, "c"],
      [3, 4, "d"],
      [0, 4, "skip"],
      [4, 5, "e"],
      [5, 4, "f"],
      [4, 6, "out"],
    ];
    const r = check(graph(edges, { leadsTo: { P_to_Q: { from: (s) => s === 3, to: (s) => s === 6, fair: everyAction } } }));
    const l = lasso(r, "P_to_Q");
    expect([l.prefix, l.cycle]).toEqual([4, 2]);
    expect(l.states).toEqual([0, 1, 2, 3, 4, 5, 4]);
    // `out` is enabled in 4 only: not continuously, so not forced. Enabled in 5 as well, it is.
    expect(check(graph([...edges, [5, 6, "out"]], { leadsTo: { P_to_Q: { from: (s) => s === 3, to: (s) => s === 6, fair: everyAction } } })).violations).toEqual([]);
    // Never reaching `from` is no violation.
    expect(check(graph(edges, { leadsTo: { P_to_Q: { from: (s) => s === 7, to: (s) => s === 6, fair: everyAction } } })).violations).toEqual([]);
  });

  it("the cycle discharges every fair action enabled all along it (taken, or disabled somewhere)", () => {
    // 0 <-> 1 <-> 2 ring; `x` enabled everywhere as 0->1->2->0 steps; `y` only between 1 and 2.
    const edges: Edge[] = [
      [0, 1, "x"],
      [1, 2, "x"],
      [2, 0, "x"],
      [1, 0, "back"],
      [2, 3, "leave"],
    ];
    const fair: Fairness<number, string> = (_s, a) => (a === "leave" ? undefined : a);
    const r = check(graph(edges, { leadsTo: { Stays: { from: () => true, to: (s) => s === 3, fair } } }));
    const l = lasso(r, "Stays");
    expect(l.prefix).toBe(0);
    // The entry (0) has `x` enabled: the cycle takes an x step; `back` is disabled in 0, so it is discharged there.
    expect(l.states[0]).toBe(0);
    expect(l.states[l.states.length - 1]).toBe(0);
  });
});

describe("eventually-always under weak fairness", () => {
  it("fails on a fair cycle through a bad state, passes once the cycle is left for good", () => {
    const ring: Edge[] = [
      [0, 1, "a"],
      [1, 0, "b"],
    ];
    const r = check(graph(ring, { eventuallyAlways: { SettlesAt0: { holds: (s) => s === 0, fair: everyAction } } }));
    expect(r.violations.map((v) => [v.name, v.kind])).toEqual([["SettlesAt0", "eventuallyAlways"]]);
    expect(lasso(r, "SettlesAt0").states).toEqual([0, 1, 0]);
    const exit = check(graph([...ring, [0, 2, "c"], [1, 2, "c"]], { eventuallyAlways: { Settles: { holds: (s) => s === 2, fair: everyAction } } }));
    expect(exit.violations).toEqual([]);
  });

  it("handles components far deeper than any recursion limit", () => {
    const n = 200_000;
    const m: Model<number, string> = graph([], {
      actions: () => ["step"],
      next: (s) => (s + 1) % n,
      eventuallyAlways: { Never: { holds: () => false, fair: everyAction } },
    });
    const r = check(m);
    expect(r.distinct).toBe(n);
    expect(lasso(r, "Never").cycle).toBe(n);
  });
});

describe("the lasso's trace", () => {
  it("names the step where the cycle starts, survives NDJSON, and draws the way back", () => {
    const m = graph(
      [
        [0, 1, "start"],
        [1, 2, "try"],
        [2, 1, "fail"],
        [2, 3, "succeed"],
      ],
      { leadsTo: { Finishes: { from: () => true, to: (s) => s === 3, fair: everyAction } } },
    );
    const v = check(m).violations[0]!;
    expect([v.length, v.cycle]).toEqual([1, 2]);
    expect(v.trace.header.loop).toBe(1);
    expect(v.trace.steps.map((s) => s.input)).toEqual(["Init", "start", "try", "fail"]);
    expect(parseTrace(formatTrace(v.trace)).header.loop).toBe(1);
    expect(toDot(v.trace)).toContain("cycle: back to step 1, forever");
    expect(() => parseTrace(formatTrace({ ...v.trace, header: { ...v.trace.header, loop: 9 } }))).toThrow(/loop names step 9/);
  });

  it("is refused with symmetry reduction", () => {
    const m = graph([[0, 1, "go"]], { canonical: (s) => s, leadsTo: { Goes: { from: () => true, to: (s) => s === 1, fair: everyAction } } });
    expect(() => check(m, { symmetry: true })).toThrow(/without symmetry reduction/);
  });
});

/**
 * The definition, by brute force on a small graph: a violation exists iff some
 * set X of states (i) is strongly connected using steps between different states
 * (a single state always is: it may stutter), (ii) is fair: every fair action
 * enabled in all of X is taken by a step inside X, (iii) for leads-to lies in ~Q
 * and is reachable from a P & ~Q state through ~Q states, itself reachable.
 */
function bruteForceViolated(n: number, edges: readonly Edge[], P: (s: number) => boolean, Q: (s: number) => boolean): boolean {
  const succ = (s: number) => edges.filter(([f, t]) => f === s && t !== s);
  const reach = (from: number[], ok: (s: number) => boolean): Set<number> => {
    const seen = new Set(from.filter(ok));
    const queue = [...seen];
    while (queue.length > 0) for (const [, t] of succ(queue.shift()!)) if (ok(t) && !seen.has(t)) (seen.add(t), queue.push(t));
    return seen;
  };
  const reachable = reach([0], () => true);
  const afterP = reach([...reachable].filter((s) => P(s) && !Q(s)), (s) => !Q(s));
  for (let mask = 1; mask < 1 << n; mask++) {
    const X = [...Array(n).keys()].filter((s) => (mask >> s) & 1);
    if (!X.every((s) => afterP.has(s))) continue;
    const inX = (s: number) => X.includes(s);
    if (!X.every((s) => X.every((t) => reach([s], inX).has(t)))) continue;
    const actionsIn = new Set(edges.map(([, , a]) => a));
    const fair = [...actionsIn].every((a) => {
      const enabledEverywhere = X.every((s) => edges.some(([f, t, x]) => f === s && t !== s && x === a));
      return !enabledEverywhere || edges.some(([f, t, x]) => x === a && f !== t && inX(f) && inX(t));
    });
    if (fair) return true;
  }
  return false;
}

describe("against the definition (fast-check)", () => {
  const arbGraph = fc.integer({ min: 1, max: 6 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      edges: fc.uniqueArray(fc.tuple(fc.nat(n - 1), fc.nat(n - 1), fc.constantFrom("a", "b", "c")), { selector: ([f, , a]) => `${f}${a}`, maxLength: 3 * n }),
      p: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      q: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
    }),
  );

  it("finds a violation exactly when one exists, and its lasso is a real fair behaviour", () => {
    fc.assert(
      fc.property(arbGraph, ({ n, edges, p, q }) => {
        const P = (s: number) => p[s]!;
        const Q = (s: number) => q[s]!;
        const r = check(graph(edges, { leadsTo: { L: { from: P, to: Q, fair: everyAction } } }));
        const expected = bruteForceViolated(n, edges, P, Q);
        expect(r.violations.length > 0).toBe(expected);
        if (!expected) return;
        const v = r.violations[0]!;
        const states = v.trace.steps.map((s) => s.state as number);
        const loopAt = v.length;
        // A real path, P at or before the cycle with ~Q from there on, and the cycle closes.
        for (let i = 0; i + 1 < states.length; i++) expect(edges.some(([f, t]) => f === states[i] && t === states[i + 1])).toBe(true);
        const trigger = states.findIndex((s, i) => i <= loopAt && P(s) && states.slice(i).every((x) => !Q(x)));
        expect(trigger).toBeGreaterThanOrEqual(0);
        expect(states[states.length - 1]).toBe(states[loopAt]);
        // Fair: every action enabled all along the cycle is taken in it.
        const cycle = states.slice(loopAt);
        const taken = new Set(v.trace.steps.slice(loopAt + 1).map((s) => s.input));
        for (const a of ["a", "b", "c"]) {
          const always = cycle.every((s) => edges.some(([f, t, x]) => f === s && t !== s && x === a));
          if (always) expect(taken.has(a)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });
});
