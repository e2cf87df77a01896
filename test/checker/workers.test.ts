// Workers for every model and property kind (issue 12): suite entries run with 2 worker threads
// must meet the expectations the suite states for them (the one-thread engine's counts, verdicts
// and shortest trace lengths), and every liveness mutant's lasso is the one-thread engine's own
// (the main thread checks the assembled graph in the one-thread numbering: checker/graph.ts).
// `speccommit suite --workers 2` runs the whole suite so.
import { describe, expect, it } from "vitest";

import { judge, loadSuite, type SuiteEntry } from "../../checker/suite.ts";
import { findFactory, resolveParams, runCheck } from "../../checker/run.ts";

// The suite as `speccommit suite` reads it: model files (PaxosCommit) resolved and loaded.
const suite = await loadSuite();

/** The kind of property an entry expects to be violated, or undefined. */
function expectedKind(e: SuiteEntry): "invariant" | "liveness" | undefined {
  if (!e.expect.startsWith("violates ")) return undefined;
  const name = e.expect.slice("violates ".length);
  const f = findFactory(e.model);
  const m = f.build(resolveParams(f, e.params ?? {}), e.mutant);
  return name in { ...m.eventually, ...m.leadsTo, ...m.eventuallyAlways } ? "liveness" : "invariant";
}

const small = (e: SuiteEntry) => e.expect === "ok" && e.counts?.distinct !== undefined && e.counts.distinct <= 12_000 && !localSymmetry(e);
/** A symmetry-reduced entry of a model with a per-thread encoding (interned ids): its representatives are chosen by portable ranks. */
function localSymmetry(e: SuiteEntry): boolean {
  if (!e.symmetry) return false;
  const f = findFactory(e.model);
  return !!f.build(resolveParams(f, e.params ?? {}), e.mutant).localEncoding;
}
// The liveness entries on one transfer (tens of thousands of states); the larger ones (two conflicting transfers, the
// server's composition) take minutes with 1 and 2 workers: `speccommit suite --workers 2` checks those.
const liveness = suite.filter((e) => expectedKind(e) === "liveness" && (e.length !== undefined || e.mutant !== undefined) && e.params?.scenario === "transfer");
// Per model, its invariant mutant with the shortest trace (a violation found early keeps the test short).
const byLength = (a: SuiteEntry, b: SuiteEntry) => (a.length ?? Infinity) - (b.length ?? Infinity);
const invariantMutants = suite.filter((e) => e.mutant !== undefined && expectedKind(e) === "invariant").sort(byLength);
const firstMutantPerModel = [...new Map(invariantMutants.reverse().map((e) => [e.model, e] as const)).values()];
const label = (e: SuiteEntry) => `${e.model} ${JSON.stringify(e.params ?? {})}${e.mutant ? ` mutant=${e.mutant}` : ""}${e.properties ? ` only ${e.properties.join(",")}` : ""}`;
const run = (e: SuiteEntry, workers: number) =>
  runCheck({
    model: e.model,
    params: e.params ?? {},
    ...(e.mutant ? { mutant: e.mutant } : {}),
    ...(e.properties ? { properties: e.properties } : {}),
    workers,
    options: { ...(e.symmetry ? { symmetry: true } : {}), ...(e.deadlock ? { deadlock: true } : {}) },
  });

describe("suite entries with 2 workers meet their expectations", () => {
  it("selects entries of every kind", () => {
    expect(suite.filter(small).length).toBeGreaterThanOrEqual(10);
    expect(liveness.length).toBeGreaterThanOrEqual(8);
    expect(new Set(liveness.map((e) => e.model)).size).toBeGreaterThanOrEqual(4);
    expect(new Set(firstMutantPerModel.map((e) => e.model)).size).toBeGreaterThanOrEqual(5);
  });

  for (const e of [...suite.filter(small), ...firstMutantPerModel]) {
    it(label(e), async () => {
      const r = await run(e, 2);
      expect(r.workers).toBe(2);
      expect(judge(e, r)).toEqual([]);
    }, 180_000);
  }

  for (const e of liveness) {
    it(`liveness: ${label(e)}: the same lasso as 1 worker`, async () => {
      const [one, two] = [await run(e, 1), await run(e, 2)];
      expect(judge(e, two)).toEqual([]);
      const show = (r: typeof one) => r.violations.map((v) => ({ name: v.name, kind: v.kind, length: v.length, cycle: v.cycle, steps: v.trace.steps.map((s) => s.label) }));
      expect(show(two)).toEqual(show(one));
      expect(two.violations.length).toBeGreaterThan(0);
      expect([two.distinct, two.generated, two.depth]).toEqual([one.distinct, one.generated, one.depth]);
    }, 300_000);
  }
});

describe("symmetry with workers", () => {
  // Representatives are chosen by the collapser's portable ranks (spec/world/symmetry.ts), not by a thread's ids:
  // each worker canonicalises the successors it generates, and an orbit is stored once, by its owner.
  const perThread = suite.filter(localSymmetry).sort((a, b) => (a.counts?.distinct ?? Infinity) - (b.counts?.distinct ?? Infinity));
  it("a protocol model's symmetry-reduced entry runs with 2 workers and the suite's counts (orbits)", async () => {
    expect(perThread.length).toBeGreaterThan(0);
    const e = perThread[0]!;
    const r = await run(e, 2);
    expect(r.workers).toBe(2);
    expect(r.symmetry).toBe(true);
    expect(judge(e, r)).toEqual([]);
  }, 300_000);
  it("a packed reference model's symmetry-reduced entry runs with 2 workers and the suite's counts", async () => {
    const e = suite.find((x) => x.symmetry && !localSymmetry(x) && (x.counts?.distinct ?? Infinity) <= 12_000);
    expect(e).toBeDefined();
    expect(judge(e!, await run(e!, 2))).toEqual([]);
  }, 180_000);
});
