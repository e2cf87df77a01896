// Three-phase commit (spec/reference/threepc.ts): with crash failures and a
// perfect failure detector, agreement and non-blocking hold (every crash
// placement explored); with a partition, the shortest run that breaks
// agreement is the textbook one, and it is a genuine run of the model.
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import { threePc, type ThreePcAction, type ThreePcState } from "../../spec/reference/threepc.ts";
import type { Model } from "../../spec/kernel/model.ts";

type M = Model<ThreePcState, ThreePcAction>;
const hex = (m: M, s: ThreePcState) => Buffer.from(m.encode(s)).toString("hex");

/** Every reachable state and the successors generated, by a plain search written here (no engine code). */
function plain(m: M): { states: ThreePcState[]; generated: number } {
  const seen = new Set<string>();
  const states: ThreePcState[] = [];
  let generated = 0;
  const add = (s: ThreePcState) => {
    generated++;
    if (!seen.has(hex(m, s))) seen.add(hex(m, s)), states.push(s);
  };
  for (const s of m.init()) add(s);
  for (let i = 0; i < states.length; i++) for (const a of m.actions(states[i]!)) add(m.next(states[i]!, a));
  return { states, generated };
}

describe("ThreePC with a perfect failure detector", () => {
  it.each([
    [3, 2, 442, 1_083],
    [4, 3, 2_987, 9_302],
  ])("N=%i, up to %i crashes: Agreement and NonBlocking hold (%i states, as the suite says)", (n, crashes, distinct, generated) => {
    const m = threePc({ n, crashes, partition: false });
    const p = plain(m);
    expect(p.states.length).toBe(distinct);
    expect(p.generated).toBe(generated);
    expect(p.states.every((s) => m.invariants.Agreement!(s))).toBe(true);
    // Some reachable states have the first coordinator crashed while others are uncertain: termination is exercised.
    expect(p.states.some((s) => s.crashed[0] && s.st.includes(1) && s.lead.some((l, i) => i > 0 && l !== 0))).toBe(true);
    const r = check(m);
    expect(r.complete).toBe(true);
    expect(r.violations).toEqual([]);
    expect(r.distinct).toBe(distinct);
  });

  it("without the termination protocol the survivors block (NonBlocking fails, as 2PC's AC5 does with restart=false)", () => {
    const r = check(threePc({ n: 3, crashes: 2, partition: false, mutant: "noTermination" }));
    expect(r.violations.map((v) => [v.name, v.length])).toEqual([["NonBlocking", 3]]);
  });
});

describe("ThreePC under a network partition", () => {
  it("agreement fails: the shortest run commits on p1's side and aborts on the other", () => {
    const m = threePc({ n: 3, crashes: 0, partition: true });
    const r = check(m);
    const v = r.violations.find((x) => x.name === "Agreement")!;
    expect(v.length).toBe(7);
    const labels = v.trace.steps.map((s) => `${s.actor}: ${s.label}`);
    expect(labels.slice(1)).toEqual([
      "p1: vote yes (uncertain)",
      "p2: vote yes (uncertain)",
      "p3: vote yes (uncertain)",
      "p1: coordinator: all yes, preCommit",
      "p2: PARTITION: {p2, p3} cut off",
      "p1: coordinator: all pre-committed, doCommit",
      "p2: new coordinator (termination): abort",
    ]);
    // A genuine run: each step is an enabled action of the state before it.
    let s = [...m.init()][0]!;
    for (const step of v.trace.steps.slice(1)) {
      const a = [...m.actions(s)].find((x) => hex(m, m.next(s, x)) !== hex(m, s) && m.describe!(s, x, m.next(s, x)) && (m.describe!(s, x, m.next(s, x)) as { label: string }).label === step.label && (m.describe!(s, x, m.next(s, x)) as { actor: string }).actor === step.actor);
      expect(a).toBeDefined();
      s = m.next(s, a!);
    }
    expect(m.invariants.Agreement!(s)).toBe(false);
  });

  it("no partition, same configuration: no violation", () => {
    expect(check(threePc({ n: 3, crashes: 0, partition: false })).violations).toEqual([]);
  });
});
