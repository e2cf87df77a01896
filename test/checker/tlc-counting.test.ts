// The worked example of docs/checker.md, "How TLC counts generated states":
// the successors TLC produces in three PaxosCommit states, counted by the
// model that enumerates witnesses as TLC does (spec/reference/paxoscommit.ts),
// which is loaded by path as a user's model is.
import { describe, expect, it } from "vitest";
import { resolveFactory } from "../../checker/load.ts";
import type { Model } from "../../spec/kernel/model.ts";
import type { PaxosCommitAction, PaxosCommitState } from "../../spec/reference/paxoscommit.ts";

async function model(): Promise<Model<PaxosCommitState, PaxosCommitAction>> {
  const f = await resolveFactory("spec/reference/paxoscommit.ts");
  return f.build({}) as Model<PaxosCommitState, PaxosCommitAction>;
}

const key = (m: Model<PaxosCommitState, PaxosCommitAction>, s: PaxosCommitState) => Buffer.from(m.encode(s)).toString("hex");

function successors(m: Model<PaxosCommitState, PaxosCommitAction>, s: PaxosCommitState) {
  const acts = [...m.actions(s)];
  const keys = acts.map((a) => key(m, m.next(s, a)));
  return { generated: acts.length, distinct: new Set(keys).size, itself: keys.filter((k) => k === key(m, s)).length, names: acts.map((a) => a.name) };
}

describe("TLC's generated states, PaxosCommit (docs/checker.md)", () => {
  it("the initial state: 6 successors, all different", async () => {
    const m = await model();
    const init = [...m.init()][0]!;
    expect(successors(m, init)).toMatchObject({ generated: 6, distinct: 6, itself: 0 });
  });

  it("after Phase1a(1, r1): 9 successors, one of them the state itself (the same message sent again)", async () => {
    const m = await model();
    const init = [...m.init()][0]!;
    const s = m.next(init, [...m.actions(init)].find((a) => a.name === "Phase1a(1, r1)")!);
    const r = successors(m, s);
    expect(r).toMatchObject({ generated: 9, distinct: 9, itself: 1 });
    expect(r.names.filter((n) => n.startsWith("Phase1b"))).toHaveLength(3);
  });

  it("every phase 2b 'prepared' of ballot 0 sent: Decide alone gives 3 x 3 = 9 successors, one state", async () => {
    const m = await model();
    const s: PaxosCommitState = {
      rm: ["prepared", "prepared"],
      a: [0, 1].map(() => [0, 1, 2].map(() => ({ mbal: 0, bal: 0, val: "prepared" as const }))),
      msgs: [
        ...[0, 1].map((r) => `2a ${r} 0 prepared`),
        ...[0, 1, 2].flatMap((c) => [0, 1].map((r) => `2b ${c} ${r} 0 prepared`)),
      ].sort(),
    };
    const decide = [...m.actions(s)].filter((a) => a.name.startsWith("Decide"));
    expect(decide).toHaveLength(9);
    expect(new Set(decide.map((a) => key(m, m.next(s, a)))).size).toBe(1);
  });
});
