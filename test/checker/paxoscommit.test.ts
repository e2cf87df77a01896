// PaxosCommit (spec/reference/paxoscommit.ts), loaded by path as the suite
// loads it: the counts the suite states for its smaller configurations,
// re-counted by a plain search written here (no engine code), and its
// symmetry (RMs x acceptors) exact: every renaming of a reachable state
// canonicalises to the same bytes, and the reduced search stores one state
// per orbit.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { check } from "../../checker/engine.ts";
import { resolveFactory } from "../../checker/load.ts";
import type { Model } from "../../spec/kernel/model.ts";
import type { PaxosCommitAction, PaxosCommitState } from "../../spec/reference/paxoscommit.ts";

type M = Model<PaxosCommitState, PaxosCommitAction>;

async function model(params: Record<string, number>, mutant?: string): Promise<M> {
  return (await resolveFactory("spec/reference/paxoscommit.ts")).build(params, mutant) as M;
}

const hex = (m: M, s: PaxosCommitState) => Buffer.from(m.encode(s)).toString("hex");

/** Breadth-first, level by level: distinct states, successors generated (initial states included, as TLC counts), depth. */
function plainSearch(m: M): { states: PaxosCommitState[]; distinct: number; generated: number; depth: number } {
  const seen = new Set<string>();
  let level: PaxosCommitState[] = [];
  const states: PaxosCommitState[] = [];
  let generated = 0;
  for (const s of m.init()) {
    generated++;
    if (!seen.has(hex(m, s))) seen.add(hex(m, s)), level.push(s);
  }
  let depth = 0;
  while (level.length > 0) {
    depth++;
    states.push(...level);
    const nextLevel: PaxosCommitState[] = [];
    for (const s of level)
      for (const a of m.actions(s)) {
        generated++;
        const t = m.next(s, a);
        const k = hex(m, t);
        if (!seen.has(k)) seen.add(k), nextLevel.push(t);
      }
    level = nextLevel;
  }
  return { states, distinct: seen.size, generated, depth };
}

/** Renames RM i to p[i] and acceptor j to q[j], written from the message format, independently of the model's own renaming. */
function rename(s: PaxosCommitState, p: number[], q: number[]): PaxosCommitState {
  const rm = [...s.rm];
  s.rm.forEach((st, i) => (rm[p[i]!] = st));
  const a = s.a.map((row) => [...row]);
  s.a.forEach((row, i) => row.forEach((x, j) => (a[p[i]!]![q[j]!] = x)));
  const msgs = s.msgs.map((k) => {
    const f = k.split(" ");
    if (f[0] === "1a" || f[0] === "2a") f[1] = String(p[Number(f[1])]);
    if (f[0] === "1b") (f[1] = String(p[Number(f[1])])), (f[5] = String(q[Number(f[5])]));
    if (f[0] === "2b") (f[1] = String(q[Number(f[1])])), (f[2] = String(p[Number(f[2])]));
    return f.join(" ");
  });
  return { rm, a, msgs: msgs.sort() };
}

describe("PaxosCommit: the suite's smaller configurations, counted by a plain search", () => {
  it.each([
    [{ RM: 1, acceptors: 3, ballots: 2 }, { distinct: 1_461, generated: 9_936, depth: 15 }],
    [{ RM: 3, acceptors: 3, ballots: 1 }, { distinct: 12_353, generated: 149_641, depth: 17 }],
  ])("%o", async (params, counts) => {
    const m = await model(params);
    const plain = plainSearch(m);
    expect({ distinct: plain.distinct, generated: plain.generated, depth: plain.depth }).toEqual(counts);
    const r = check(m);
    expect({ distinct: r.distinct, generated: r.generated, depth: r.depth }).toEqual(counts);
    expect(r.violations).toEqual([]);
  });
});

describe("PaxosCommit symmetry: RMs and acceptors", () => {
  it("every renaming of a reachable state canonicalises to the same bytes; one state per orbit", async () => {
    const m = await model({ RM: 3, acceptors: 3, ballots: 1 });
    const { states } = plainSearch(m);
    const canon = (s: PaxosCommitState) => hex(m, m.canonical!(s));
    const known = new Set(states.map((s) => hex(m, s)));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: states.length - 1 }),
        fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }),
        fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }),
        (i, p, q) => {
          const s = states[i]!;
          const t = rename(s, p, q);
          expect(known.has(hex(m, t))).toBe(true);
          expect(canon(t)).toBe(canon(s));
        },
      ),
      { numRuns: 500 },
    );
    // The representative is a renaming of the state itself: the same multisets of RM states and messages' kinds.
    for (const s of states.slice(0, 2_000)) expect([...m.canonical!(s).rm].sort()).toEqual([...s.rm].sort());
    const orbits = new Set(states.map(canon)).size;
    expect(orbits).toBe(642);
    const r = check(m, { symmetry: true });
    expect(r.distinct).toBe(orbits);
    expect(r.distinct).toBeLessThan(states.length);
    expect(r.violations).toEqual([]);
  });

  it("a mutant is caught under symmetry with a trace as short as without it", async () => {
    const m = await model({ RM: 2, acceptors: 3, ballots: 2 }, "abortAfterPrepare");
    const plain = check(m);
    const reduced = check(m, { symmetry: true });
    expect(reduced.violations.map((v) => [v.name, v.length])).toEqual(plain.violations.map((v) => [v.name, v.length]));
    expect(plain.violations.map((v) => v.name)).toContain("TCConsistent");
  });
});
