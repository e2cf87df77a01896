/**
 * What the durable state says about a transaction, for a process that did
 * not run it (or no longer remembers it): after a restart, for an
 * idempotency key whose claimant died, for GET /transactions/:id.
 *
 * Read in this order, which is what makes the answer sound:
 *   1. its decision record in the txlog: the decision;
 *   2. else history rows of it on a shard: committed (a COMMIT record is
 *      deleted only after every branch committed, and the rows of a
 *      committed branch are visible);
 *   3. else a branch of it still prepared: in doubt (the resolver will
 *      finish it);
 *   4. else nothing of it exists: it never committed, and never will (a
 *      COMMIT record is only written once every branch is prepared, so with
 *      no branch prepared or committed a late one has nothing to commit; a
 *      prepared branch that appears later, from a statement of a dead
 *      process, has no record and is presumed aborted). Whether it never ran
 *      or was aborted cannot be told apart (presumed abort forgets aborts).
 */
import { decisionKey, decisionOf, type ShardId, type TxId } from "../spec/effects.ts";
import type { TxlogStore } from "./adapters/ports.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";

export type DurableStatus =
  | { found: "decision"; decision: "commit" | "abort" }
  | { found: "history"; shards: ShardId[] }
  | { found: "prepared"; shards: ShardId[] }
  | { found: "nothing" };

export class DurableUnavailable extends Error {}

const TX_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Throws DurableUnavailable naming what did not answer. `shards`: where to look (all when absent). */
export async function durableStatus(tx: TxId, deps: { xa: XaMysql; log: TxlogStore }, shards: readonly ShardId[] = deps.xa.shards): Promise<DurableStatus> {
  if (!TX_ID.test(tx)) return { found: "nothing" };
  const listed = await deps.log.list(decisionKey(tx));
  if (!listed.ok) throw new DurableUnavailable("the transaction log did not answer");
  const decision = decisionOf(listed.entries.find((e) => e.key === decisionKey(tx))?.value);
  if (decision !== null) return { found: "decision", decision };
  const withHistory: ShardId[] = [];
  const prepared: ShardId[] = [];
  for (const shard of shards) {
    if (!deps.xa.shards.includes(shard)) continue;
    const h = await deps.xa.pool(shard).run<unknown[]>(`SELECT 1 FROM history WHERE xid = '${tx}' LIMIT 1`);
    if (!h.ok) throw new DurableUnavailable(`${shard} did not answer`);
    if (h.value.length > 0) withHistory.push(shard);
    const r = await deps.xa.recover(shard);
    if (!r.ok) throw new DurableUnavailable(`${shard} did not answer`);
    if (r.prepared.some((x) => x.tx === tx)) prepared.push(shard);
  }
  if (withHistory.length > 0) return { found: "history", shards: withHistory };
  if (prepared.length > 0) return { found: "prepared", shards: prepared };
  return { found: "nothing" };
}
