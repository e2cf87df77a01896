// The failover model with the speculative path (spec/failover/model.ts): a node's undo rows are its own (namespace),
// and the survivor settles the dead node's speculation by the speculative rule (probe an unknown branch with a
// tombstone), where the mutant spec-presumed-abort takes it for never applied (2PC's presumed abort).
import { describe, expect, it } from "vitest";
import { fromNamespace } from "../../spec/failover/namespace.ts";
import { failoverFactory, failoverSetup } from "../../spec/failover/model.ts";
import type { FailoverAction, FailoverWorld } from "../../spec/failover/world.ts";
import type { Model, StepInfo } from "../../spec/kernel/model.ts";

type W = FailoverWorld<any, any>;

/** Takes the first enabled action `pick` accepts; fails when there is none. */
function take(m: Model<W, FailoverAction>, w: W, pick: (a: FailoverAction, w: W) => boolean): W {
  const a = [...m.actions(w)].find((x) => pick(x, w));
  if (a === undefined) throw new Error(`no such action among ${JSON.stringify([...m.actions(w)])}`);
  return step(m, w, a);
}
/** Every step taken, as the trace records it (Model.describe). */
let recorded: StepInfo[] = [];
function step(m: Model<W, FailoverAction>, w: W, a: FailoverAction): W {
  const to = m.next(w, a);
  const info = m.describe!(w, a, to);
  recorded.push(...(Array.isArray(info) ? info : [info]));
  return to;
}
const complete = (m: Model<W, FailoverAction>, w: W, fx: (f: W["flights"][number]) => boolean): W => take(m, w, (a, s) => a.k === "complete" && !a.fault && fx(s.flights[a.i]!));

/**
 * n2 applies both branches of t1, answers committed, makes SPEC_EXECUTING durable and releases s1; then it dies with
 * the release of s2 in flight, which is lost (a statement of a dead connection that never ran). The survivor n1 claims
 * n2 and scans until nothing is left to do: its speculative part sees one undo row (s2) and t1's record.
 */
function afterTakeover(mutant?: string): { m: Model<W, FailoverAction>; w: W } {
  const m = failoverFactory.build({ ...failoverFactory.params, protocol: "speculative" }, mutant) as Model<W, FailoverAction>;
  recorded = [];
  let w = [...m.init()][0]!;
  w = take(m, w, (a) => a.k === "scan" && a.r === 0);
  w = complete(m, w, (f) => f.fx.t === "log.list");
  w = complete(m, w, (f) => f.fx.t === "log.put" && f.fx.key === "n2/epoch");
  w = take(m, w, (a) => a.k === "request");
  w = complete(m, w, (f) => f.fx.t === "local.apply" && f.fx.shard === "s1");
  w = complete(m, w, (f) => f.fx.t === "local.apply" && f.fx.shard === "s2");
  expect(w.told[0]?.status).toBe("committed");
  w = complete(m, w, (f) => f.fx.t === "log.put" && f.fx.key === "n2/speculative/t1");
  w = complete(m, w, (f) => f.fx.t === "local.release" && f.fx.shard === "s1");
  w = take(m, w, (a) => a.k === "crash");
  // The orphaned release of s2 never runs: drop it as the shard would a dead connection's statement.
  w = { ...w, flights: w.flights.filter((f) => !(f.orphan && f.fx.t === "local.release")) };
  w = take(m, w, (a) => a.k === "expire");
  w = take(m, w, (a) => a.k === "watch");
  w = complete(m, w, (f) => f.fx.t === "log.put" && f.fx.key === "owners/n2");
  // The survivor's resolver (slot 1) runs until it has nothing left to do: every flight answered (first non-fault
  // outcome; timers last), then another scan, while one is offered.
  for (let i = 0; i < 200; i++) {
    const acts = [...m.actions(w)];
    const next =
      acts.find((a) => a.k === "complete" && !a.fault && w.flights[a.i]!.fx.t !== "timer") ?? acts.find((a) => a.k === "scan" && a.r === 1) ?? acts.find((a) => a.k === "complete" && !a.fault);
    if (next === undefined) return { m, w };
    w = step(m, w, next);
  }
  throw new Error("the survivor's resolver did not settle within 200 steps");
}

const rowsOf = (w: W, tx: string) => w.shards.flatMap((sh: any) => sh.local.undo.filter((r: any) => r.tx === tx).map((r: any) => `${r.branch}:${r.state}`)).sort();

describe("failover with the speculative path", () => {
  it("a node's resolver scans its own undo rows only", () => {
    const n2 = { node: "n2", owns: (tx: string) => tx === "t1" };
    const rows = [
      { tx: "t1", branch: "s1", state: "undo", branches: ["s1", "s2"] },
      { tx: "t2", branch: "s1", state: "undo", branches: ["s1", "s2"] },
    ] as const;
    expect(fromNamespace(n2, { t: "local.scan", shard: "s1", r: { ok: true, rows } } as never)).toEqual({ t: "local.scan", shard: "s1", r: { ok: true, rows: [rows[0]] } });
  });

  it("the survivor probes the released branch with a tombstone, finds it applied, and commits the dead node's speculation", () => {
    const { w } = afterTakeover();
    expect(rowsOf(w, "t1")).toEqual(["s1:released", "s2:released"]);
    expect(w.ghost.terminal[0]).toBe("SPEC_COMMITTED");
    expect(w.log.entries.some((e) => e.key === "n2/speculative/t1")).toBe(false);
    expect(w.log.entries.find((e) => e.key === "n2/epoch")!.version).toBe(2);
  });

  it("the trace names each role as the failover world runs it, and every message received was sent before", () => {
    afterTakeover();
    const actors = new Set(recorded.map((s) => s.actor));
    for (const a of ["resolver(n2)", "resolver(n1 for n2)", "takeover(n1 for n2)", "coordinator", "n2", "txlog", "s1", "s2", "client"]) expect(actors).toContain(a);
    expect(actors).not.toContain("resolver");
    const sent = new Set<string>();
    for (const s of recorded) {
      for (const r of s.receives ?? []) expect(sent.has(r.id), `${s.actor} receives ${r.id}, never sent`).toBe(true);
      for (const m of s.sends ?? []) sent.add(m.id);
    }
    const tombstones = recorded.filter((s) => s.actor === "resolver(n1 for n2)" && (s.effects ?? []).some((e: any) => e.t === "local.tombstone"));
    expect(tombstones.length).toBeGreaterThan(0);
  });

  it("survivorBranches=1: the survivor's transaction is one branch, run by the one-phase path", () => {
    const { scenario, layout } = failoverSetup("speculative", true, 1, "speculative", 1);
    expect(scenario.txs[1]).toMatchObject({ id: "t2", protocol: "2pc", branches: [{ shard: "s2" }] });
    expect(layout.resolvers).toEqual([
      { host: 0, ns: 0, takeover: null },
      { host: 1, ns: 1, takeover: null },
      { host: 0, ns: 1, takeover: 0 },
    ]);
  });

  it("mutant spec-presumed-abort: the survivor takes the released branch for never applied and rolls a committed speculation back", () => {
    const { m, w } = afterTakeover("spec-presumed-abort");
    expect(w.ghost.terminal[0]).toBe("SPEC_ROLLED_BACK");
    expect(rowsOf(w, "t1")).toContain("s2:compensated");
    expect(m.invariants.committed_never_rolled_back!(w)).toBe(false);
  });
});
