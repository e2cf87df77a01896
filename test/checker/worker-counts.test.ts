// Workers drop successors they sent to their owner lately (the "sent lately" caches, checker/worker.ts) and
// probe their tables in runs: on random graphs with many shared successors (diamonds), in both stores (packed
// and generic), with 2 and 3 workers, the counts must be one worker's, and a violation's trace as short.
import { resolve } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { runCheck } from "../../checker/run.ts";
import type { CheckResult } from "../../checker/result.ts";
import { randomGraph } from "./fixtures/random-graph.ts";

const MODEL = resolve(import.meta.dirname, "fixtures/random-graph.ts");
const counts = (r: CheckResult) => ({ distinct: r.distinct, generated: r.generated, depth: r.depth, complete: r.complete });

describe("worker counts on random graphs", () => {
  it("2 and 3 workers count what 1 worker counts, packed and generic", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.integer({ min: 1, max: 1 << 30 }), size: fc.integer({ min: 2_000, max: 90_000 }), fanout: fc.integer({ min: 2, max: 9 }), spread: fc.integer({ min: 8, max: 5_000 }), packed: fc.boolean(), workers: fc.constantFrom(2, 3) }),
        async ({ workers, ...params }) => {
          const one = await runCheck({ model: MODEL, params });
          const many = await runCheck({ model: MODEL, params, workers });
          expect(counts(many)).toEqual(counts(one));
          expect(one.generated).toBeGreaterThan(one.distinct);
        },
      ),
      { numRuns: 8 },
    );
  }, 120_000);

  it("a violation deep in a large graph has the same shortest trace with 2 workers", async () => {
    for (const packed of [true, false]) {
      const params = { seed: 7, size: 80_000, fanout: 5, spread: 3_000, packed, bad: 79_999 };
      const one = await runCheck({ model: MODEL, params });
      const two = await runCheck({ model: MODEL, params, workers: 2 });
      expect(one.violations.map((v) => [v.name, v.length])).toEqual([["NotBad", one.violations[0]!.length]]);
      expect(one.violations[0]!.length).toBeGreaterThan(10);
      expect(two.violations.map((v) => [v.name, v.length])).toEqual(one.violations.map((v) => [v.name, v.length]));
      expect(two.violations[0]!.trace.steps.length).toBe(two.violations[0]!.length + 1);
    }
  }, 60_000);

  it("a model that throws fails the run with workers; a violation in the same level wins, as one thread stops there", async () => {
    for (const packed of [true, false]) {
      const params = { seed: 7, size: 80_000, fanout: 5, spread: 3_000, packed, bad: 79_999 };
      // The one-thread search's levels (breadth-first, discovery order): it stops when it meets `bad`, in the
      // middle of expanding level d - 1; the last state of that level is never expanded.
      const model = randomGraph.build(params);
      const levels: number[][] = [[0]];
      const seen = new Set([0]);
      let last = -1;
      for (let d = 0; last < 0; d++) {
        const next: number[] = [];
        for (const n of levels[d]!) {
          for (const a of model.actions({ n })) {
            const m = (model.next({ n }, a) as { n: number }).n;
            if (seen.has(m)) continue;
            seen.add(m);
            next.push(m);
            if (m === params.bad) last = levels[d]!.at(-1)!;
          }
        }
        levels.push(next);
      }
      const throwing = { ...params, throwAt: last };
      const one = await runCheck({ model: MODEL, params: throwing });
      const two = await runCheck({ model: MODEL, params: throwing, workers: 2 });
      expect(one.violations.map((v) => v.name)).toEqual(["NotBad"]);
      expect(two.violations.map((v) => [v.name, v.length])).toEqual(one.violations.map((v) => [v.name, v.length]));
      // A state that throws before any violation: the run fails, with workers as with one thread.
      const early = { ...params, throwAt: levels[3]![0]! };
      await expect(runCheck({ model: MODEL, params: early })).rejects.toThrow(/assertion failed at state/);
      await expect(runCheck({ model: MODEL, params: early, workers: 2 })).rejects.toThrow(/assertion failed at state/);
    }
  }, 60_000);
});
