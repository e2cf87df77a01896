// --workers N must report exactly what one worker reports.
import { describe, expect, it } from "vitest";
import { runCheck } from "../../checker/run.ts";
import type { CheckResult } from "../../checker/result.ts";
import { checkParallel } from "../../checker/parallel.ts";
import { twoPhase } from "../../spec/reference/twophase.ts";

const counts = (r: CheckResult) => ({ distinct: r.distinct, generated: r.generated, depth: r.depth, complete: r.complete });

describe("parallel engine", () => {
  const cases = [
    { model: "TwoPhase", params: { RM: 5 } },
    { model: "TwoPhase", params: { RM: 6 }, workers: 3 },
    { model: "TCommit", params: { RM: 5 } },
  ];
  for (const c of cases) {
    const workers = c.workers ?? 2;
    it(`${c.model} ${JSON.stringify(c.params)}: ${workers} workers = 1 worker`, async () => {
      const one = await runCheck({ model: c.model, params: c.params });
      const many = await runCheck({ model: c.model, params: c.params, workers });
      expect(many.workers).toBe(workers);
      expect(counts(many)).toEqual(counts(one));
    });
  }

  it("symmetry with 2 workers = symmetry with 1", async () => {
    const one = await runCheck({ model: "TwoPhase", params: { RM: 6 }, options: { symmetry: true } });
    const two = await runCheck({ model: "TwoPhase", params: { RM: 6 }, workers: 2, options: { symmetry: true } });
    expect(counts(two)).toEqual(counts(one));
  });

  it("finds a mutant's violation with the same shortest length as 1 worker, and a trace that replays", async () => {
    for (const mutant of ["abortAfterPrepare", "commitAfterAbort"]) {
      const one = await runCheck({ model: "TwoPhase", params: { RM: 4 }, mutant });
      const two = await runCheck({ model: "TwoPhase", params: { RM: 4 }, mutant, workers: 2 });
      expect(two.violations.map((v) => [v.name, v.length])).toEqual(one.violations.map((v) => [v.name, v.length]));
      expect(two.violations[0]!.trace.steps.length).toBe(two.violations[0]!.length + 1);
    }
  });

  it("reports a deadlock with the same shortest length as 1 worker (generic path)", async () => {
    // TCommit declares no terminal state: once every RM has decided, nothing is enabled.
    // The shortest way there is every RM aborting at once: RM steps.
    const one = await runCheck({ model: "TCommit", params: { RM: 4 }, options: { deadlock: true } });
    const two = await runCheck({ model: "TCommit", params: { RM: 4 }, workers: 2, options: { deadlock: true } });
    expect(one.violations.map((v) => [v.name, v.length])).toEqual([["deadlock", 4]]);
    expect(two.violations.map((v) => [v.name, v.length])).toEqual([["deadlock", 4]]);
  });

  it("checks eventually properties with workers: the same verdict and trace length as 1 worker", async () => {
    for (const mutant of [undefined, "noRepair"]) {
      const one = await runCheck({ model: "Countdown", params: { N: 3 }, ...(mutant ? { mutant } : {}) });
      const two = await runCheck({ model: "Countdown", params: { N: 3 }, ...(mutant ? { mutant } : {}), workers: 2 });
      expect(counts(two)).toEqual(counts(one));
      expect(two.violations.map((v) => [v.name, v.kind, v.length])).toEqual(one.violations.map((v) => [v.name, v.kind, v.length]));
    }
    // The mutant is caught (the comparison above is not between two empty lists).
    const caught = await runCheck({ model: "Countdown", params: { N: 3 }, mutant: "noRepair", workers: 2 });
    expect(caught.violations.map((v) => v.name)).toEqual(["Done"]);
  });

  it("--property with workers checks only that property, as 1 worker does", async () => {
    const one = await runCheck({ model: "TwoPhase", params: { RM: 4 }, mutant: "commitAfterAbort", properties: ["TCConsistent"] });
    const two = await runCheck({ model: "TwoPhase", params: { RM: 4 }, mutant: "commitAfterAbort", properties: ["TCConsistent"], workers: 2 });
    expect(two.violations.map((v) => [v.name, v.length])).toEqual(one.violations.map((v) => [v.name, v.length]));
    expect(two.violations.length).toBe(1);
    // With no invariant left, the mutant's run is complete and clean, in both engines.
    const none = await runCheck({ model: "Countdown", params: { N: 3 }, mutant: "noRepair", properties: [], workers: 2 });
    expect([none.violations.length, none.complete]).toEqual([0, true]);
  });

  it("stops INCOMPLETE at a limit", async () => {
    const r = await runCheck({ model: "TwoPhase", params: { RM: 6 }, workers: 2, options: { maxDepth: 5 } });
    expect(r.complete).toBe(false);
    expect(r.incomplete).toBe("max depth 5");
    expect(r.depth).toBe(5);
  });

  it("a failing worker fails the run instead of leaving its peers waiting", async () => {
    const run = checkParallel({ model: "NoSuchModel", params: {}, workers: 2, options: {} }, twoPhase(3));
    await expect(run).rejects.toThrow(/worker \d failed: unknown model 'NoSuchModel'/);
  });

  it("a model whose encoding is local to its instance (interned ids) gets the same counts with workers (portable.ts)", async () => {
    const params = { scenario: "transfer", crash: 0, shardCrash: 0 };
    const one = await runCheck({ model: "twopc", params });
    const two = await runCheck({ model: "twopc", params, workers: 2 });
    expect(counts(two)).toEqual({ distinct: 536, generated: 1_242, depth: 20, complete: true });
    expect(counts(two)).toEqual(counts(one));
    // A counterexample's states come back from their owners and replay in this thread's own instance.
    const m = { model: "twopc", params, mutant: "reply-before-durable", properties: ["committed_reply_is_durable"] };
    const caught = await runCheck({ ...m, workers: 2 });
    expect(caught.violations.map((v) => [v.name, v.length])).toEqual((await runCheck(m)).violations.map((v) => [v.name, v.length]));
    expect(caught.violations.map((v) => [v.name, v.length])).toEqual([["committed_reply_is_durable", 8]]);
  });
});
