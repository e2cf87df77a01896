/**
 * Shards that run both XA branches and one-phase local transactions, as the
 * server's shards do (one MariaDB each): the server model (spec/server/model.ts)
 * runs 2PC, parallel commit and the speculative path side by side on them.
 * Each shard is the pair of its XA state (./xa-shard.ts) and its local state
 * (./local-shard.ts); an effect goes to the part that speaks it.
 *
 * What the pair leaves out, stated: the two parts keep their own copy of the
 * accounts, so a 2PC branch and a speculative apply never meet on a row (no
 * lock wait between them, no shared balance). The server model's scenarios
 * give each protocol its own accounts, where that is exactly what happens;
 * locks between protocols are MariaDB's, checked by the XA model and its
 * model-based test, not by the protocol models.
 *
 * Faults are the shard's, whichever part meets them: kill -9 takes both parts
 * down (the XA part with every outcome `xa.crashOutcomes` lists when it is
 * the crash action; with every rollback flushed when a local statement's
 * answer is the crash), and a restart brings both back.
 */
import type { Effect } from "../kernel/effects.ts";
import type { Action, ShardAnswer, ShardEnv } from "../world/types.ts";
import * as local from "./local.ts";
import { localShards } from "./local-shard.ts";
import * as xa from "./xa.ts";
import { xaShards } from "./xa-shard.ts";

export interface BothShard {
  readonly xa: xa.ShardState;
  readonly local: local.LocalShard;
}

export const bothShards: ShardEnv<BothShard> = {
  init: (balances) => ({ xa: xaShards.init(balances), local: localShards.init(balances) }),
  owns: (fx: Effect) => xaShards.owns(fx) || localShards.owns(fx),

  answers(sh, f, budget): ShardAnswer<BothShard>[] {
    if (xaShards.owns(f.fx)) {
      return xaShards.answers(sh.xa, f, budget).map((o) => ({ ...o, shard: { ...sh, xa: o.shard }, ran: o.ran === null ? null : { ...sh, xa: o.ran } }));
    }
    return localShards.answers(sh.local, f, budget).map((o) => ({
      ...o,
      // A crash outcome of a local statement is the whole shard's crash.
      shard: { xa: o.crashes ? xa.crash(sh.xa) : sh.xa, local: o.shard },
      ran: o.ran === null ? null : { ...sh, local: o.ran },
    }));
  },

  *faults(sh, s, budget, process): Iterable<Action> {
    yield* xaShards.faults(sh.xa, s, budget, process);
  },

  fault(sh, a) {
    const x = xaShards.fault(sh.xa, a);
    if (a.k === "shardCrash") return { xa: x, local: local.crash(sh.local) };
    if (a.k === "shardRestart") return { xa: x, local: local.restart(sh.local) };
    return { ...sh, xa: x };
  },

  connOf: xaShards.connOf,
};
