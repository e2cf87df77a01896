/**
 * Shards running one-phase local transactions (./local.ts) as the world
 * (spec/world/world.ts) runs them. Each effect is one local transaction: it
 * commits and answers; or, with a shard crash left in the budget, the shard
 * dies just before or just after it commits and the client hears
 * UNAVAILABLE; a statement whose client process died may also be rolled
 * back when the server drops the dead connection (nobody hears it).
 *
 * A shard crash is offered only as the outcome of a statement reaching the
 * shard: a crash while nothing is in flight to it changes nothing a role can
 * see until its next statement, which then meets the "crashed before it
 * committed" outcome.
 */
import type { Effect, LocalEffect } from "../kernel/effects.ts";
import { answerLabel } from "../labels.ts";
import type { Action, ShardAnswer, ShardEnv } from "../world/types.ts";
import * as local from "./local.ts";

const isLocal = (fx: Effect): fx is LocalEffect => fx.t.startsWith("local.");


export const localShards: ShardEnv<local.LocalShard> = {
  init: (balances) => local.initLocal(balances),
  owns: isLocal,

  answers(sh, f, budget): ShardAnswer<local.LocalShard>[] {
    const fx = f.fx;
    if (!isLocal(fx)) throw new Error(`local shard: no answer for ${fx.t}`);
    const unavailable = local.unavailable(fx);
    if (!sh.up) return [{ shard: sh, ran: null, result: unavailable, crashes: false, label: "UNAVAILABLE (down)" }];
    const { s: after, r } = local.execute(sh, fx);
    const outs: ShardAnswer<local.LocalShard>[] = [{ shard: after, ran: after, result: r, crashes: false, label: answerLabel(r) }];
    if (f.orphan) outs.push({ shard: sh, ran: null, result: null, crashes: false, label: "rolled back (dead client)" });
    if (budget.shardCrash > 0) {
      if (fx.t !== "local.scan") outs.push({ shard: local.crash(after), ran: after, result: unavailable, crashes: true, label: "committed, then CRASH" });
      outs.push({ shard: local.crash(sh), ran: null, result: unavailable, crashes: true, label: "CRASH before commit" });
    }
    return outs;
  },

  *faults(sh, s): Iterable<Action> {
    if (!sh.up) yield { k: "shardRestart", s };
  },

  fault(sh, a) {
    if (a.k !== "shardRestart") throw new Error(`local shard: no ${a.k} action (crashes are outcomes of statements)`);
    return local.restart(sh);
  },
};
