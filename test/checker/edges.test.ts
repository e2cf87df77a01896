// Edge cases of the search: several and duplicate initial states, a
// violation in an initial state, a model with no initial state.
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import type { Model } from "../../spec/kernel/model.ts";

/** Counters 0..limit-1 stepping by +1 (mod limit), from the given initial values. */
function counter(inits: number[], limit: number, packed: boolean): Model<number, "inc"> {
  const m: Model<number, "inc"> = {
    name: "Counter",
    init: () => inits,
    actions: () => ["inc"],
    next: (s) => (s + 1) % limit,
    invariants: { BelowLimit: (s) => s < limit, NotSeven: (s) => s !== 7 },
    encode: (s) => Uint8Array.of(s),
    decode: (b) => b[0]!,
  };
  if (!packed) return m;
  return {
    ...m,
    packed: {
      maxSuccessors: 1,
      pack: (s) => s,
      unpack: (x) => x,
      successors: (x, out) => {
        out[0] = (x + 1) % limit;
        return 1;
      },
    },
  };
}

for (const packed of [false, true]) {
  describe(`${packed ? "packed" : "generic"} path`, () => {
    it("counts every initial state as generated, duplicates included, and stores each once", () => {
      const r = check(counter([0, 0, 3], 5, packed));
      expect(r.distinct).toBe(5);
      // 3 initial + one successor for each of the 5 states.
      expect(r.generated).toBe(3 + 5);
      // 0 and 3 at depth 1; 1, 4 at 2; 2 at 3.
      expect(r.depth).toBe(3);
    });

    it("a violating initial state gives a trace of length 0", () => {
      const r = check(counter([2, 7], 10, packed));
      expect(r.violations.map((v) => [v.name, v.length])).toEqual([["NotSeven", 0]]);
      expect(r.violations[0]!.trace.steps).toHaveLength(1);
      expect(r.violations[0]!.trace.steps[0]!.state).toBe(7);
    });

    it("the first violation is the shallowest even when a deeper one is found from an earlier initial state", () => {
      // From 0, 7 is 7 steps away; from 5, 2 steps.
      const r = check(counter([0, 5], 10, packed));
      expect(r.violations.map((v) => [v.name, v.length])).toEqual([["NotSeven", 2]]);
    });

    it("no initial state: nothing to explore, complete", () => {
      const r = check(counter([], 10, packed));
      expect([r.distinct, r.generated, r.depth, r.complete]).toEqual([0, 0, 0, true]);
    });
  });
}
