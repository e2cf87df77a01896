// The takeover role (spec/failover/takeover.ts): its rules step by step, and two survivors racing for one node over the txlog model.
import { describe, expect, it } from "vitest";
import { resolving, takeover, type TakeoverEffect, type TakeoverInput, type TakeoverMutant, type TakeoverState } from "../../spec/failover/takeover.ts";
import * as txlog from "../../spec/env/txlog.ts";
import { ownerKey, type OwnerRecord } from "../../spec/kernel/effects.ts";
import { ProtocolViolation } from "../../spec/kernel/role.ts";

const KEY = ownerKey("n2");
const expired = { t: "lease", node: "n2", alive: false } as const;
const alive = { t: "lease", node: "n2", alive: true } as const;
const claimOf = (owner: string): OwnerRecord => ({ kind: "owner", node: "n2", owner });

/** Runs `inputs` through a fresh role, returning the last state and every effect asked for. */
function run(inputs: readonly TakeoverInput[], self = "n1", mutant?: TakeoverMutant): { st: TakeoverState; effects: TakeoverEffect[] } {
  const role = takeover(self, "n2", mutant);
  let st = role.start();
  const effects: TakeoverEffect[] = [];
  for (const i of inputs) {
    const out = role.step(st, i);
    st = out.st;
    effects.push(...out.effects);
  }
  return { st, effects };
}

describe("takeover rules", () => {
  it("an expired lease is claimed by a CAS create naming us; the create landing means we resolve", () => {
    const a = run([expired]);
    expect(a.effects).toEqual([{ t: "log.put", key: KEY, value: claimOf("n1"), ifVersion: 0 }]);
    expect(resolving(a.st)).toBe(false);
    const b = run([expired, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }]);
    expect(b.st.phase).toBe("owning");
    expect(resolving(b.st)).toBe(true);
  });
  it("an alive node is never claimed", () => {
    expect(run([alive, alive]).effects).toEqual([]);
  });
  it("a compare that fails on our own claim (answer lost, or a restart) is a win at the version found", () => {
    const r = run([expired, { t: "log.put", key: KEY, r: { ok: false, err: "CAS", current: claimOf("n1"), version: 3 } }]);
    expect(r.st).toMatchObject({ phase: "owning", version: 3 });
  });
  it("a compare that fails on another survivor's claim stands by; that survivor's death claims again at its version", () => {
    const lost = run([expired, { t: "log.put", key: KEY, r: { ok: false, err: "CAS", current: claimOf("n3"), version: 2 } }]);
    expect(lost.st).toMatchObject({ phase: "standby", other: { owner: "n3", version: 2 } });
    expect(resolving(lost.st)).toBe(false);
    const role = takeover("n1", "n2");
    expect(role.step(lost.st, { t: "lease", node: "n3", alive: true }).effects).toEqual([]);
    expect(role.step(lost.st, { t: "lease", node: "n4", alive: false }).effects).toEqual([]);
    expect(role.step(lost.st, { t: "lease", node: "n3", alive: false }).effects).toEqual([{ t: "log.put", key: KEY, value: claimOf("n1"), ifVersion: 2 }]);
  });
  it("the node alive again: resolving stops at once and the claim is deleted at our version", () => {
    const r = run([expired, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }, alive]);
    expect(resolving(r.st)).toBe(false);
    expect(r.effects.at(-1)).toEqual({ t: "log.delete", key: KEY, ifVersion: 1 });
    const done = run([expired, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }, alive, { t: "log.delete", key: KEY, r: { ok: true } }]);
    expect(done.st).toMatchObject({ phase: "watching", version: 0 });
  });
  it("a claim that lands after the node came back is given back without resolving", () => {
    const r = run([expired, alive, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }]);
    expect(r.st.phase).toBe("releasing");
    expect(r.effects.at(-1)).toEqual({ t: "log.delete", key: KEY, ifVersion: 1 });
  });
  it("a release with no answer is retried on the next alive observation; a claim with no answer is settled by the next claim's compare", () => {
    const owned = [expired, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }, alive] as const;
    const r = run([...owned, { t: "log.delete", key: KEY, r: { ok: false, err: "UNAVAILABLE" } }, alive]);
    expect(r.effects.at(-1)).toEqual({ t: "log.delete", key: KEY, ifVersion: 1 });
    const c = run([expired, { t: "log.put", key: KEY, r: { ok: false, err: "UNAVAILABLE" } }, expired]);
    expect(c.effects).toHaveLength(2);
    expect(c.effects[1]).toEqual({ t: "log.put", key: KEY, value: claimOf("n1"), ifVersion: 0 });
  });
  it("answers the role never asked for, or for another key, are protocol violations", () => {
    expect(() => run([{ t: "log.put", key: KEY, r: { ok: true, version: 1 } }])).toThrow(ProtocolViolation);
    expect(() => run([expired, { t: "log.put", key: ownerKey("n9"), r: { ok: true, version: 1 } }])).toThrow(ProtocolViolation);
    expect(() => takeover("n1", "n1")).toThrow(ProtocolViolation);
  });
  it("mutant early claims an alive node and keeps resolving it", () => {
    const r = run([alive, { t: "log.put", key: KEY, r: { ok: true, version: 1 } }, alive], "n1", "early");
    expect(resolving(r.st)).toBe(true);
  });
});

/**
 * Two survivors (n1, n3) observe n2 expired and claim it; their writes meet the txlog model in every order.
 * Returns, per interleaving, how many of them resolve n2 at the end.
 */
function race(mutant?: TakeoverMutant): number[] {
  const selves = ["n1", "n3"];
  const roles = selves.map((s) => takeover(s, "n2", mutant));
  const owners: number[] = [];
  const explore = (log: txlog.TxlogState, sts: TakeoverState[], pending: (TakeoverEffect & { by: number })[]) => {
    if (pending.length === 0) {
      owners.push(sts.filter(resolving).length);
      return;
    }
    pending.forEach((p, i) => {
      const rest = pending.filter((_, j) => j !== i);
      let input: TakeoverInput;
      let next = log;
      if (p.t === "log.put") {
        const w = txlog.put(log, p.key, p.value, p.ifVersion, p.fence);
        next = w.s;
        input = { t: "log.put", key: p.key, r: w.r };
      } else {
        const w = txlog.del(log, p.key, p.fence, p.ifVersion);
        next = w.s;
        input = { t: "log.delete", key: p.key, r: w.r };
      }
      const out = roles[p.by]!.step(sts[p.by]!, input);
      explore(next, sts.map((s, j) => (j === p.by ? out.st : s)), [...rest, ...out.effects.map((e) => ({ ...e, by: p.by }))]);
    });
  };
  const firsts = roles.map((r) => r.step(r.start(), expired));
  explore(txlog.emptyTxlog, firsts.map((f) => f.st), firsts.flatMap((f, by) => f.effects.map((e) => ({ ...e, by }))));
  return owners;
}

describe("two survivors race for one node", () => {
  it("in every order exactly one of them resolves it", () => {
    const owners = race();
    expect(owners.length).toBe(2);
    expect(owners.every((n) => n === 1)).toBe(true);
  });
  it("mutant ignore-cas: both resolve it", () => {
    expect(race("ignore-cas").some((n) => n === 2)).toBe(true);
  });
});
