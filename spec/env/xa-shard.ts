/**
 * XA shards as the world (spec/world/world.ts) runs them: statements through
 * the executor's contract (./executor.ts) over the XA shard model (./xa.ts),
 * KILL CONNECTION, and the shard's own faults: kill -9 with every outcome
 * `xa.crashOutcomes` lists, restart, and the server noticing the connection
 * of a dead client process (it then rolls back the branch's unprepared work).
 */
import type { Effect } from "../kernel/effects.ts";
import { answerLabel } from "../labels.ts";
import type { Action, Flight, ShardAnswer, ShardEnv } from "../world/types.ts";
import { connOf, executeXa, isXaEffect } from "./executor.ts";
import * as xa from "./xa.ts";

/** The connection a flight's statement travels on: a coordinator's branch connection, or null (the resolver's are fresh ones). */
export function branchConnOf(f: Flight): xa.ConnId | null {
  const fx = f.fx;
  if (f.owner < 0 || !(fx.t === "xa.exec" || fx.t === "xa.prepare" || fx.t === "xa.commit" || fx.t === "xa.rollback")) return null;
  return connOf(fx.tx, fx.shard, f.inc);
}

/** A connection opened by a process incarnation that has crashed: the server will notice and drop it. */
const deadConn = (conn: xa.ConnId, process: { readonly inc: number; readonly up: boolean }): boolean =>
  Number(conn.slice(conn.lastIndexOf("@") + 1)) < process.inc || !process.up;

/**
 * xa.crashOutcomes of a shard, computed once per shard object: the world offers a crash per outcome of every
 * expanded state's shards, and the checker hands the same (interned) shard object back for equal shards.
 */
const crashes = new WeakMap<xa.ShardState, readonly xa.ShardState[]>();
function crashOutcomes(sh: xa.ShardState): readonly xa.ShardState[] {
  let out = crashes.get(sh);
  if (out === undefined) crashes.set(sh, (out = xa.crashOutcomes(sh)));
  return out;
}

export const xaShards: ShardEnv<xa.ShardState> = {
  init: (balances) => xa.initShard(balances),
  owns: (fx: Effect) => isXaEffect(fx as never) || fx.t === "xa.kill",

  answers(sh, f): ShardAnswer<xa.ShardState>[] {
    const fx = f.fx;
    if (fx.t === "xa.kill") {
      // KILL CONNECTION: the connection is gone when the answer comes (see XaKillEffect).
      if (!sh.up) {
        const down = { t: "xa.kill", shard: fx.shard, conn: fx.conn, r: { ok: false, err: "UNAVAILABLE" } } as const;
        return [{ shard: sh, ran: null, result: down, crashes: false, label: answerLabel(down) }];
      }
      const killed = xa.killConnection(sh, fx.conn);
      const ok = { t: "xa.kill", shard: fx.shard, conn: fx.conn, r: { ok: true } } as const;
      return [{ shard: killed, ran: killed, result: ok, crashes: false, label: answerLabel(ok), dropOrphansOn: fx.conn }];
    }
    if (!isXaEffect(fx as never)) throw new Error(`XA shard: no answer for ${fx.t}`);
    const conn = branchConnOf(f);
    return executeXa(sh, fx as Parameters<typeof executeXa>[1], conn).map((o) => ({
      shard: o.shard,
      ran: o.shard,
      result: o.result,
      crashes: false,
      label: answerLabel(o.result),
    }));
  },

  *faults(sh, s, budget, process): Iterable<Action> {
    if (sh.up && budget.shardCrash > 0) {
      const n = crashOutcomes(sh).length;
      for (let o = 0; o < n; o++) yield { k: "shardCrash", s, o };
    }
    if (!sh.up) yield { k: "shardRestart", s };
    for (const c of sh.conns) if (deadConn(c.id, process)) yield { k: "notice", s, conn: c.id };
  },

  fault(sh, a) {
    switch (a.k) {
      case "shardCrash":
        return crashOutcomes(sh)[a.o]!;
      case "shardRestart":
        return xa.restart(sh);
      case "notice":
        return xa.disconnect(sh, a.conn);
    }
  },

  connOf: branchConnOf,
};
