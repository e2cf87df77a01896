// The failover model's pieces (spec/failover): a node's namespace in both directions, and the world's steps on one path
// (crash, lease, claim, the survivor's resolver taking n2's epoch: the dead node's late write fenced).
import { describe, expect, it } from "vitest";
import { fromNamespace, intoNamespace, mergedEntries } from "../../spec/failover/namespace.ts";
import { failoverFactory, failoverSetup } from "../../spec/failover/model.ts";
import type { FailoverAction, FailoverWorld } from "../../spec/failover/world.ts";
import { resolving } from "../../spec/failover/takeover.ts";
import type { Model } from "../../spec/kernel/model.ts";

const n2 = { node: "n2", owns: (tx: string) => tx === "t1" };

describe("namespace", () => {
  it("a role's keys, prefixes and fences go under its node; owner claims are not its effects", () => {
    expect(intoNamespace(n2, { t: "log.put", key: "tx/t1", value: { kind: "epoch" }, ifVersion: 0, fence: { key: "epoch", version: 3 } })).toEqual({
      t: "log.put",
      key: "n2/tx/t1",
      value: { kind: "epoch" },
      ifVersion: 0,
      fence: { key: "n2/epoch", version: 3 },
    });
    expect(intoNamespace(n2, { t: "log.list", prefix: "tx/" })).toEqual({ t: "log.list", prefix: "n2/tx/" });
    expect(intoNamespace(n2, { t: "log.delete", key: "tx/t1" })).toEqual({ t: "log.delete", key: "n2/tx/t1" });
    expect(intoNamespace(n2, { t: "xa.recover", shard: "s1" })).toEqual({ t: "xa.recover", shard: "s1" });
  });
  it("a role hears its own keys and its own xids only", () => {
    const listed = fromNamespace(n2, { t: "log.list", r: { ok: true, entries: [{ key: "n2/tx/t1", value: { kind: "epoch" }, version: 1 }] } });
    expect(listed).toEqual({ t: "log.list", r: { ok: true, entries: [{ key: "tx/t1", value: { kind: "epoch" }, version: 1 }] } });
    const recovered = fromNamespace(n2, { t: "xa.recover", shard: "s1", r: { ok: true, prepared: [{ tx: "t1", shard: "s1" }, { tx: "t2", shard: "s1" }] } });
    expect(recovered).toEqual({ t: "xa.recover", shard: "s1", r: { ok: true, prepared: [{ tx: "t1", shard: "s1" }] } });
    expect(fromNamespace(n2, { t: "log.put", key: "n2/epoch", r: { ok: true, version: 2 } })).toEqual({ t: "log.put", key: "epoch", r: { ok: true, version: 2 } });
  });
  it("the merged view strips each node's prefix and leaves the claims out", () => {
    const entries = [
      { key: "n1/epoch", value: { kind: "epoch" }, version: 1 },
      { key: "n2/tx/t1", value: { kind: "decision", decision: "commit", branches: ["s1"] }, version: 1 },
      { key: "owners/n2", value: { kind: "owner", node: "n2", owner: "n1" }, version: 1 },
    ] as const;
    expect(mergedEntries(entries, ["n1", "n2"]).map((e) => e.key)).toEqual(["epoch", "tx/t1"]);
  });
});

type W = FailoverWorld<any>;

/** Takes the first enabled action `pick` accepts; fails when there is none. */
function take(m: Model<W, FailoverAction>, w: W, pick: (a: FailoverAction, w: W) => boolean): W {
  const a = [...m.actions(w)].find((x) => pick(x, w));
  if (a === undefined) throw new Error(`no such action among ${JSON.stringify([...m.actions(w)])}`);
  return m.next(w, a);
}
/** Completes the first flight whose effect `fx` accepts, with its first (non-fault) outcome. */
const complete = (m: Model<W, FailoverAction>, w: W, fx: (f: W["flights"][number]) => boolean): W => take(m, w, (a, s) => a.k === "complete" && !a.fault && fx(s.flights[a.i]!));
const isPut = (key: string) => (f: W["flights"][number]) => f.fx.t === "log.put" && f.fx.key === key;

describe("the failover world", () => {
  it("layout: n2 dies and runs t1; the survivor n1 claims n2 and runs a resolver over n2's namespace", () => {
    const { layout } = failoverSetup("2pc", true, 2);
    expect(layout.nodes).toEqual(["n1", "n2", "n3"]);
    expect(layout.txNode).toEqual([1, 0]);
    expect(layout.resolvers).toEqual([
      { host: 0, ns: 0, takeover: null },
      { host: 1, ns: 1, takeover: null },
      { host: 0, ns: 1, takeover: 0 },
      { host: 2, ns: 1, takeover: 1 },
    ]);
  });

  it("a crash while t1's COMMIT is in flight: the lease expires, n1 claims n2, takes n2's epoch, and the late COMMIT is fenced", () => {
    const m = failoverFactory.build({ ...failoverFactory.params }, undefined) as Model<W, FailoverAction>;
    let w = [...m.init()][0]!;
    // No lease runs out and no takeover is watched while n2 is alive.
    expect([...m.actions(w)].some((a) => a.k === "expire" || a.k === "watch")).toBe(false);
    w = take(m, w, (a) => a.k === "scan");
    w = complete(m, w, (f) => f.fx.t === "log.list");
    w = complete(m, w, isPut("n2/epoch"));
    w = take(m, w, (a) => a.k === "request");
    for (const t of ["xa.exec", "xa.exec", "xa.prepare", "xa.prepare"]) w = complete(m, w, (f) => f.fx.t === t);
    expect(w.flights.some(isPut("n2/tx/t1"))).toBe(true);
    w = take(m, w, (a) => a.k === "crash");
    expect(w.flights.find(isPut("n2/tx/t1"))!.orphan).toBe(true);
    w = take(m, w, (a) => a.k === "expire");
    w = take(m, w, (a) => a.k === "watch");
    w = complete(m, w, isPut("owners/n2"));
    expect(resolving(w.takeovers[0]!)).toBe(true);
    w = take(m, w, (a) => a.k === "scan" && a.r === 1);
    w = complete(m, w, (f) => f.fx.t === "log.list");
    w = complete(m, w, isPut("n2/epoch"));
    // n2's epoch is v2 now: the orphaned COMMIT (fenced by v1) can only answer FENCED, and the world drops it.
    expect(w.log.entries.find((e) => e.key === "n2/epoch")!.version).toBe(2);
    expect(w.flights.some(isPut("n2/tx/t1"))).toBe(false);
  });
});
