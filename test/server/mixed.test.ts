/**
 * One resolver for both protocols (spec/server/model.ts, model mixed): the parallel-commit
 * resolver under 2PC coordinators keeps every 2PC property, with the 2PC
 * model's exact size (it treats 2PC's records as the 2PC resolver does), and
 * next to a parallel-commit coordinator each transaction keeps its own
 * protocol's properties; the check can fail: the resolver's mutants are caught.
 */
import { describe, expect, it } from "vitest";
import { mixedFactory, mixedResolverMutants } from "../../spec/server/model.ts";
import { twopcFactory } from "../../spec/protocols/twopc/model.ts";
import { check } from "../../checker/engine.ts";
import { onlyProperties } from "../../checker/run.ts";
import { loadSuite } from "../../checker/suite.ts";

/** The suite as `speccommit suite` reads it (model files resolved and loaded). */
const suite = await loadSuite();

const build = (params: Record<string, string | number | boolean>, mutant?: string) => mixedFactory.build({ ...mixedFactory.params, ...params }, mutant);
const sizeOf = (r: ReturnType<typeof check>) => ({ distinct: r.distinct, generated: r.generated, depth: r.depth, violations: r.violations.map((v) => v.name) });

describe("2PC coordinators under the parallel-commit resolver", () => {
  it("keeps every 2PC property on 2 shards x 1 transfer with a process crash, and explores exactly what the 2PC model does", () => {
    const params = { scenario: "transfer", crash: 1, shardCrash: 0, logFault: 0 };
    const model = build(params);
    expect(Object.keys(model.invariants).sort()).toEqual(Object.keys(twopcFactory.build({ ...twopcFactory.params, ...params }).invariants).sort());
    const r = check(model);
    expect(r.complete).toBe(true);
    expect(sizeOf(r)).toEqual({ ...sizeOf(check(twopcFactory.build({ ...twopcFactory.params, ...params }))), violations: [] });
  }, 60_000);

  it("keeps them with a one-phase transfer racing a cross-shard one, under a process crash", () => {
    const r = check(build({ scenario: "local", crash: 1, shardCrash: 0, timeouts: false }));
    expect(r.complete).toBe(true);
    expect(r.violations).toEqual([]);
  }, 60_000);

  it("catches the resolver that ignores live coordinators (AC4: it presumes a prepared 2PC transaction aborted under its coordinator)", () => {
    const r = check(onlyProperties(build({ scenario: "transfer", crash: 0, shardCrash: 0 }, "ignore-active"), ["AC4_all_yes_commits"]));
    expect(r.violations.map((v) => [v.name, v.length])).toEqual([["AC4_all_yes_commits", 17]]);
  });

  it("does not see missing-is-commit: under 2PC coordinators alone there is no STAGING record for it to misread", () => {
    const r = check(build({ scenario: "transfer", crash: 1, shardCrash: 0 }, "missing-is-commit"));
    expect(r.violations).toEqual([]);
  }, 60_000);
});

describe("a 2PC and a parallel-commit coordinator side by side under one resolver", () => {
  it("keeps each transaction's own properties: one-phase 2PC transfer + parallel cross-shard transfer, under a process crash", () => {
    const model = build({ scenario: "local", coordinators: "mixed", crash: 1, shardCrash: 0, timeouts: false });
    // Both protocols' properties, by name.
    expect(Object.keys(model.invariants)).toEqual(expect.arrayContaining(["committed_reply_is_durable", "committed_reply_is_committed", "implicit_commit_is_final", "AC1_agreement"]));
    const r = check(model);
    expect(r.complete).toBe(true);
    expect(r.violations).toEqual([]);
  }, 60_000);
});

describe("the mixed model's suite entries", () => {
  const entries = suite.filter((e) => e.model === "mixed" && e.mutant !== undefined);

  it("has a suite entry for every mutant it declares", () => {
    expect(mixedResolverMutants.filter((m) => !entries.some((e) => e.mutant === m))).toEqual([]);
  });

  for (const e of entries) {
    it(`catches ${e.mutant} with ${e.expect.replace("violates ", "")} alone`, () => {
      const r = check(onlyProperties(build(e.params ?? {}, e.mutant), e.properties));
      expect(r.violations.map((v) => v.name)).toEqual([e.expect.replace("violates ", "")]);
      if (e.length !== undefined) expect(r.violations[0]!.length).toBe(e.length);
    }, 60_000);
  }
});
