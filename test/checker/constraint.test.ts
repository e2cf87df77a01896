// TLC's CONSTRAINT (Model.constraint, checker/constraint.ts): counts as TLC
// reports them, on a hand-counted example and, with fast-check, against a
// literal transcription of TLC's algorithm (tlc2.tool.Worker.addElement and
// ModelChecker's DoInitFunctor) on random graphs.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { check } from "../../checker/engine.ts";
import type { Model } from "../../spec/kernel/model.ts";
import { countdown } from "../../spec/reference/countdown.ts";

describe("state constraint", () => {
  it("Countdown N=3 with left >= 2: TLC's counts, worked by hand", () => {
    // (3,F) -tick-> (2,F), -jam-> (3,T); (2,F) -tick-> (1,F) outside, -jam-> (2,T); (3,T) and (2,T) -repair-> back.
    // generated = 1 initial + 2 + 2 + 1 + 1 = 7; distinct = 4 inside; depth 3 ((2,T)); (1,F) is generated, never expanded.
    const { eventually: _e, ...m } = countdown(3);
    const r = check({ ...m, constraint: (s) => s.left >= 2 });
    expect([r.distinct, r.generated, r.depth, r.outside]).toEqual([4, 7, 3, 1]);
    expect(r.violations).toEqual([]);
  });

  it("a state outside is never a deadlock; inside, the same state is", () => {
    const { eventually: _e, terminal: _t, ...m } = countdown(2);
    expect(check(m, { deadlock: true }).violations.map((v) => v.name)).toEqual(["deadlock"]);
    expect(check({ ...m, constraint: (s) => s.left >= 1 }, { deadlock: true }).violations).toEqual([]);
  });

  it("checks invariants outside it, with a shortest trace", () => {
    const { eventually: _e, ...m } = countdown(3);
    const r = check({ ...m, constraint: (s) => s.left >= 2, invariants: { AboveOne: (s) => s.left > 1 } });
    expect(r.violations.map((v) => [v.name, v.length])).toEqual([["AboveOne", 2]]);
    expect(r.violations[0]!.trace.steps.map((s) => s.input)).toEqual(["Init", "tick", "tick"]);
  });

  it("is refused with liveness properties, saying why", () => {
    expect(() => check({ ...countdown(3), constraint: () => true })).toThrow(/not checked with a state constraint/);
  });
});

/** TLC's breadth-first search with a CONSTRAINT, transcribed: what it reports as distinct, generated and depth. */
function tlc(init: number[], succ: (s: number) => number[], inModel: (s: number) => boolean): { distinct: number; generated: number; depth: number } {
  const fpSet = new Set<number>();
  const queue: Array<[number, number]> = [];
  let generated = 0;
  let depth = 0;
  for (const s of init) {
    generated++;
    if (inModel(s) && !fpSet.has(s)) {
      fpSet.add(s);
      queue.push([s, 1]);
      depth = Math.max(depth, 1);
    }
  }
  for (let head = 0; head < queue.length; head++) {
    const [s, level] = queue[head]!;
    for (const t of succ(s)) {
      generated++;
      if (inModel(t) && !fpSet.has(t)) {
        fpSet.add(t);
        queue.push([t, level + 1]);
        depth = Math.max(depth, level + 1);
      }
    }
  }
  return { distinct: fpSet.size, generated, depth };
}

describe("against TLC's algorithm (fast-check)", () => {
  it("distinct, generated and depth agree on random graphs and constraints", () => {
    const arb = fc.integer({ min: 1, max: 12 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        init: fc.uniqueArray(fc.nat(n - 1), { minLength: 1, maxLength: 3 }),
        edges: fc.array(fc.array(fc.nat(n - 1), { maxLength: 4 }), { minLength: n, maxLength: n }),
        inside: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ init, edges, inside }) => {
        const m: Model<number, number> = {
          name: "G",
          init: () => init,
          actions: (s) => edges[s]!.map((_, i) => i),
          next: (s, i) => edges[s]![i]!,
          invariants: {},
          encode: (s) => Uint8Array.of(s),
          decode: (b) => b[0]!,
          constraint: (s) => inside[s]!,
        };
        const r = check(m);
        const want = tlc(init, (s) => edges[s]!, (s) => inside[s]!);
        expect({ distinct: r.distinct, generated: r.generated, depth: r.depth }).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });
});
