// Rule 5 in the failover model (spec/failover/model.ts, knob `hang`; spec/failover/takeover.ts detachBeforeSettle): on one
// path, n2 hangs with t1's branch prepared on s1 and attached to its open session. The survivor's XA ROLLBACK of it answers
// NOTA (MariaDB 10.11: 1397) and the branch keeps its locks; the survivor may detach it (KILL) only once it owns n2 and
// its resolver holds n2's new epoch; after the kill the same XA ROLLBACK applies. Deterministic, in-memory (the model's
// own XA shard), no database.
import { describe, expect, it } from "vitest";
import { failoverFactory } from "../../spec/failover/model.ts";
import type { FailoverAction, FailoverWorld } from "../../spec/failover/world.ts";
import { resolving } from "../../spec/failover/takeover.ts";
import { executeXa } from "../../spec/env/executor.ts";
import type { Model } from "../../spec/kernel/model.ts";

type W = FailoverWorld<any, any>;
type M = Model<W, FailoverAction>;

function take(m: M, w: W, pick: (a: FailoverAction, w: W) => boolean): W {
  const a = [...m.actions(w)].find((x) => pick(x, w));
  if (a === undefined) throw new Error(`no such action among ${JSON.stringify([...m.actions(w)])}`);
  return m.next(w, a);
}
const complete = (m: M, w: W, fx: (f: W["flights"][number]) => boolean): W => take(m, w, (a, s) => a.k === "complete" && !a.fault && fx(s.flights[a.i]!));
const offered = (m: M, w: W, k: FailoverAction["k"]): FailoverAction[] => [...m.actions(w)].filter((a) => a.k === k);
/** The survivor's XA ROLLBACK of t1's branch on s1, from a fresh connection: the shard's answer. */
const rollbackS1 = (w: W) => executeXa(w.shards[0], { t: "xa.rollback", tx: "t1", shard: "s1" }, null)[0]!.result as { r: { ok: boolean; err?: string } };

describe("failover model, hang (rule 5)", () => {
  it("a hung node's prepared branch stays attached (NOTA to others) until the survivor, owning n2 behind a durable fence, kills its session", () => {
    const m = failoverFactory.build({ ...failoverFactory.params, protocol: "2pc", hang: true }) as M;
    let w = [...m.init()][0]!;
    // n2's own resolver takes its epoch; t1 runs until its s1 branch is prepared.
    w = take(m, w, (a) => a.k === "scan" && a.r === 0);
    while (w.resolvers[0]!.epoch === null) w = complete(m, w, (f) => f.owner === -1);
    w = take(m, w, (a) => a.k === "request");
    w = complete(m, w, (f) => f.fx.t === "xa.exec" && f.fx.shard === "s1");
    w = complete(m, w, (f) => f.fx.t === "xa.prepare" && f.fx.shard === "s1");
    expect(offered(m, w, "crash")).toEqual([]);
    w = take(m, w, (a) => a.k === "hang");
    // Frozen: none of n2's flights completes, its sessions are not dropped (no `notice`), the shard keeps the branch attached.
    expect([...m.actions(w)].filter((a) => a.k === "complete" && w.flights[a.i]!.owner === 0)).toEqual([]);
    expect(offered(m, w, "notice")).toEqual([]);
    const s1Branch = (x: W): { owner: string | null; state: string } | undefined => x.shards[0].branches.find((b: { xid: string }) => b.xid.includes("t1"));
    expect(s1Branch(w)?.owner).not.toBeNull();
    expect(rollbackS1(w).r).toEqual({ ok: false, err: "NOTA" });
    // Lease expires, n1 claims n2: owning, but no fence yet, so no detach.
    w = take(m, w, (a) => a.k === "expire");
    w = take(m, w, (a) => a.k === "watch");
    w = complete(m, w, (f) => f.fx.t === "log.put" && f.fx.key === "owners/n2");
    expect(resolving(w.takeovers[0]!)).toBe(true);
    expect(offered(m, w, "detach")).toEqual([]);
    // The survivor's resolver over n2 takes n2's new epoch: now the detach is offered, for the session holding t1's s1 branch.
    w = take(m, w, (a) => a.k === "scan" && a.r === 1);
    while (w.resolvers[1]!.epoch === null) w = complete(m, w, (f) => f.owner === -2);
    const detach = offered(m, w, "detach");
    expect(detach).toEqual([{ k: "detach", x: 0, s: 0, conn: s1Branch(w)!.owner }]);
    w = m.next(w, detach[0]!);
    expect(s1Branch(w)?.owner).toBeNull();
    expect(s1Branch(w)?.state).toBe("PREPARED");
    expect(rollbackS1(w).r).toEqual({ ok: true });
  });

  it("hang is a knob: off by default, and refused with the speculative path (XA shards only)", () => {
    expect(failoverFactory.params.hang).toBe(false);
    expect(() => failoverFactory.build({ ...failoverFactory.params, protocol: "speculative", hang: true })).toThrow(/hang/);
  });
});
