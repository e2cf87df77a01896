// The victim choice of the cross-shard deadlock detector (spec/deadlock/victims.ts) on hand-made snapshots;
// the `deadlock` model checks every snapshot of up to 4 transactions over 4 shards (checker/suite.config.ts).
import { describe, expect, it } from "vitest";
import { chooseVictims, loneCycles, unbrokenCycle, type TxFacts, type WaitEdge, type WaitSnapshot } from "../../spec/deadlock/victims.ts";

const running: TxFacts = { decided: false, preparedEverywhere: false };
const snap = (edges: Array<[string, string, string]>, facts: Record<string, TxFacts>): WaitSnapshot => ({
  edges: edges.map(([waiter, holder, shard]): WaitEdge => ({ waiter, holder, shard })),
  facts,
});
const victims = (s: WaitSnapshot) => chooseVictims(s).map((v) => v.tx);

describe("chooseVictims", () => {
  it("breaks a 2-way cycle over 2 shards with one victim, the greatest id, and names the cycle", () => {
    const s = snap([["A", "B", "b"], ["B", "A", "a"]], { A: running, B: running });
    expect(chooseVictims(s)).toEqual([{ tx: "B", cycle: ["A", "B"] }]);
  });

  it("breaks 3- and 4-way cycles with one victim each", () => {
    const three = snap([["A", "B", "a"], ["B", "C", "b"], ["C", "A", "c"]], { A: running, B: running, C: running });
    expect(chooseVictims(three)).toEqual([{ tx: "C", cycle: ["A", "B", "C"] }]);
    const four = snap([["A", "B", "a"], ["B", "C", "b"], ["C", "D", "c"], ["D", "A", "d"]], { A: running, B: running, C: running, D: running });
    expect(victims(four)).toEqual(["D"]);
  });

  it("never picks a transaction whose decision is durable, prepared everywhere, or not ours", () => {
    const decided = snap([["A", "B", "b"], ["B", "A", "a"]], { A: running, B: { decided: true, preparedEverywhere: true } });
    expect(victims(decided)).toEqual(["A"]);
    const prepared = snap([["A", "B", "b"], ["B", "A", "a"]], { A: running, B: { decided: false, preparedEverywhere: true } });
    expect(victims(prepared)).toEqual(["A"]);
    const foreign = snap([["A", "X", "b"], ["X", "A", "a"]], { A: running });
    expect(victims(foreign)).toEqual(["A"]);
    const none = snap([["A", "B", "b"], ["B", "A", "a"]], { A: { decided: true, preparedEverywhere: false }, B: { decided: false, preparedEverywhere: true } });
    expect(victims(none)).toEqual([]);
  });

  it("chooses nothing without a cycle (a chain of waits, a hot account)", () => {
    expect(victims(snap([["A", "B", "a"], ["C", "B", "a"], ["B", "D", "b"]], { A: running, B: running, C: running, D: running }))).toEqual([]);
    expect(victims(snap([], {}))).toEqual([]);
  });

  it("breaks two cycles joined by a third with two victims, each needed", () => {
    const s = snap([["A", "B", "a"], ["B", "A", "b"], ["C", "D", "a"], ["D", "C", "b"], ["B", "C", "c"], ["D", "A", "c"]], { A: running, B: running, C: running, D: running });
    const v = victims(s);
    expect(v).toHaveLength(2);
    expect(unbrokenCycle(s, new Set(v))).toBeNull();
    for (const x of v) expect(unbrokenCycle(s, new Set(v.filter((y) => y !== x)))).not.toBeNull();
  });

  it("finds the cycles alone among their transactions (one victim each), not those joined to others", () => {
    const lone = snap([["A", "B", "a"], ["B", "C", "b"], ["C", "A", "c"], ["D", "A", "a"]], { A: running, B: running, C: running, D: running });
    expect(loneCycles(lone)).toEqual([["A", "B", "C"]]);
    const joined = snap([["A", "B", "a"], ["B", "A", "b"], ["C", "D", "a"], ["D", "C", "b"], ["B", "C", "c"], ["D", "A", "c"]], { A: running, B: running, C: running, D: running });
    expect(loneCycles(joined)).toEqual([]);
  });

  it("drops a victim that a later one makes unnecessary", () => {
    // A<->B found first (victim B); then A->C->A; C is chosen, and A alone would have done: the set is pruned to what is needed.
    const s = snap([["A", "B", "a"], ["B", "A", "b"], ["A", "C", "c"], ["C", "A", "a"]], { A: running, B: running, C: running });
    const v = victims(s);
    expect(unbrokenCycle(s, new Set(v))).toBeNull();
    for (const x of v) expect(unbrokenCycle(s, new Set(v.filter((y) => y !== x)))).not.toBeNull();
  });
});
