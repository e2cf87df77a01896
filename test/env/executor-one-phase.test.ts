/**
 * The one-phase exec (spec/env/executor.ts, effects.ts xa.exec `onePhase`): the branch stays ACTIVE after its ops,
 * and its one-phase commit or its rollback sends XA END first. By property: for any ops and any ending, the
 * one-phase exec answers and ends exactly as the plain exec (XA END inside it) does: the same results, the same
 * balances and history, the same connections left; and only its branch is ACTIVE in between.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Op, Result } from "../../spec/kernel/effects.ts";
import { connOf, executeXa, type XaEffect } from "../../spec/env/executor.ts";
import * as xa from "../../spec/env/xa.ts";

const TX = "t1";
const SHARD = "s1";
const conn = connOf(TX, SHARD, 1);

type Ending = "commit" | "rollback" | "crash-then-commit" | "disconnect-then-commit" | "rollback-twice";

function only(s: xa.ShardState, fx: XaEffect): { s: xa.ShardState; r: Result } {
  const outs = executeXa(s, fx, conn);
  expect(outs, JSON.stringify(fx)).toHaveLength(1);
  return { s: outs[0]!.shard, r: outs[0]!.result };
}

/** Runs exec then the ending; the branch's state right after the exec, every result, and the final shard. */
function run(balances: readonly (readonly [number, number])[], ops: readonly Op[], ending: Ending, onePhase: boolean) {
  let s = xa.initShard(balances);
  const exec = only(s, { t: "xa.exec", tx: TX, shard: SHARD, ops, guard: true, ...(onePhase ? { onePhase: true as const } : {}) });
  s = exec.s;
  const afterExec = s.branches.map((b) => b.state);
  const results: Result[] = [exec.r];
  const step = (fx: XaEffect) => {
    const o = only(s, fx);
    s = o.s;
    results.push(o.r);
  };
  const commit: XaEffect = { t: "xa.commit", tx: TX, shard: SHARD, onePhase: true };
  const rollback: XaEffect = { t: "xa.rollback", tx: TX, shard: SHARD };
  const execOk = exec.r.t === "xa.exec" && exec.r.r.ok;
  switch (ending) {
    case "commit":
      // The role commits only an exec that answered ok, and rolls back any other.
      step(execOk ? commit : rollback);
      break;
    case "rollback":
      step(rollback);
      break;
    case "rollback-twice":
      step(rollback);
      step(rollback);
      break;
    case "crash-then-commit":
      s = xa.restart(xa.crash(s));
      step(commit);
      break;
    case "disconnect-then-commit":
      s = xa.disconnect(s, conn);
      step(commit);
      break;
  }
  return { afterExec, results, balances: s.balances, history: s.history, branches: s.branches, conns: s.conns.map((c) => c.id) };
}

const account = fc.integer({ min: 1, max: 4 });
const opsArb = fc.uniqueArray(fc.record({ account, delta: fc.integer({ min: -120, max: 120 }).filter((d) => d !== 0) }), { minLength: 1, maxLength: 3, selector: (o) => o.account });
const balancesArb = fc.tuple(fc.nat(100), fc.nat(100), fc.nat(100), fc.nat(100)).map((b) => b.map((c, i) => [i + 1, c] as const));
const endingArb = fc.constantFrom<Ending>("commit", "rollback", "crash-then-commit", "disconnect-then-commit", "rollback-twice");

describe("one-phase exec (executor model)", () => {
  it("answers and ends as the plain exec does, for any ops and ending; its branch is ACTIVE in between (IDLE without it)", () => {
    fc.assert(
      fc.property(balancesArb, opsArb, endingArb, (balances, ops, ending) => {
        const plain = run(balances, ops, ending, false);
        const one = run(balances, ops, ending, true);
        expect(one.results).toEqual(plain.results);
        expect(one.balances).toEqual(plain.balances);
        expect(one.history).toEqual(plain.history);
        expect(one.branches).toEqual(plain.branches);
        expect(one.conns).toEqual(plain.conns);
        expect(plain.afterExec).toEqual(["IDLE"]);
        expect(one.afterExec).toEqual(["ACTIVE"]);
      }),
      { numRuns: 500 },
    );
  });

  it("a one-phase commit of an ACTIVE branch really commits (the ending is not vacuous)", () => {
    const r = run([[1, 100], [2, 0]], [{ account: 1, delta: -30 }, { account: 2, delta: 30 }], "commit", true);
    expect(r.results.map((x) => (x as { r: { ok: boolean } }).r.ok)).toEqual([true, true]);
    expect(xa.committedBalance({ ...xa.initShard([]), balances: r.balances }, 2)).toBe(30);
  });
});
