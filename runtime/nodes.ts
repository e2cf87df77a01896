/**
 * Several coordinators over one etcd and one set of shards (docs/architecture.md,
 * "Several coordinators"): a node's name, its namespace, its transaction ids,
 * and the adapters that show a resolver its own node's branches only.
 *
 *   <base>                      node n1's namespace (where a single coordinator always kept its keys)
 *   <base>nodes/<N>/            node N's namespace (N != n1): tx/, speculative/, epoch, ...
 *   <base>idem/                 every node's idempotency claims (one key space: a retry elsewhere finds them)
 *   <base>members/<N>           N exists (written at start, never on a lease)
 *   <base>alive/<N>             N's liveness, on N's lease
 *   <base>owners/<N>            the survivor that took N over, while it has it
 *
 * n1's namespace is the base itself, so a log written before nodes existed
 * is node n1's, unchanged. The keys the resolver parts list (tx/,
 * speculative/, epoch) never begin with nodes/, members/, alive/ or owners/.
 *
 * A transaction id is `<node>.<uuid>`; its xid's gtrid is the id, so an XA
 * RECOVER row names the node that ran the branch. An id without a dot (a
 * UUID, from before nodes) is n1's.
 */
import { randomUUID } from "node:crypto";
import { DECISION_PREFIX, SPECULATIVE_PREFIX, txOfDecisionKey, txOfSpeculativeKey, type ConnectionId, type Op, type RecoverResult, type ShardId, type TxId, type XaResult } from "../spec/kernel/effects.ts";
import type { LocalExecutor, TxlogStore, XaExecutor } from "./adapters/ports.ts";

/** The node whose namespace is the base prefix itself (and whose transaction ids may have no node part). */
export const FIRST_NODE = "n1";

/** Node N's namespace under the base prefix. */
export const nodePrefix = (base: string, node: string): string => (node === FIRST_NODE ? base : `${base}nodes/${node}/`);

/** A new transaction id of `node`: fits an XA gtrid (16 + 1 + 36 <= 64 bytes). */
export const nodeTxId = (node: string): TxId => `${node}.${randomUUID()}`;

/** The node that ran `tx`: the part before the first dot; an id without one is n1's (ids from before nodes). */
export function nodeOfTx(tx: TxId): string {
  const dot = tx.indexOf(".");
  return dot < 0 ? FIRST_NODE : tx.slice(0, dot);
}

export const MEMBERS_PREFIX = "members/";
export const ALIVE_PREFIX = "alive/";
export const OWNERS_PREFIX = "owners/";

/**
 * The XA executor as node `node`'s resolver must see it: XA RECOVER lists that
 * node's branches only. Every other statement goes through unchanged.
 *
 * `beforeSettle` (a survivor's resolver over a node it took over,
 * spec/failover/takeover.ts rule 5): called with the branches XA RECOVER
 * listed, before the resolver sees them; false (some branch is still
 * attached to a live session of the node) makes the listing answer
 * UNAVAILABLE, as a shard that did not answer.
 */
export class NodeXa implements XaExecutor {
  readonly shards: readonly ShardId[];
  constructor(
    private readonly inner: XaExecutor,
    readonly node: string,
    private readonly beforeSettle?: (shard: ShardId, txs: readonly TxId[]) => Promise<boolean>,
  ) {
    this.shards = inner.shards;
  }
  exec(...a: Parameters<XaExecutor["exec"]>): ReturnType<XaExecutor["exec"]> {
    return this.inner.exec(...a);
  }
  prepare(...a: Parameters<XaExecutor["prepare"]>): ReturnType<XaExecutor["prepare"]> {
    return this.inner.prepare(...a);
  }
  commit(...a: Parameters<XaExecutor["commit"]>): ReturnType<XaExecutor["commit"]> {
    return this.inner.commit(...a);
  }
  rollback(...a: Parameters<XaExecutor["rollback"]>): ReturnType<XaExecutor["rollback"]> {
    return this.inner.rollback(...a);
  }
  async recover(shard: ShardId): Promise<RecoverResult> {
    const r = await this.inner.recover(shard);
    if (!r.ok) return r;
    const prepared = r.prepared.filter((x) => nodeOfTx(x.tx) === this.node);
    if (this.beforeSettle !== undefined && !(await this.beforeSettle(shard, prepared.map((x) => x.tx)))) return { ok: false, err: "UNAVAILABLE" };
    return { ok: true, prepared };
  }
  connectionOf(...a: Parameters<XaExecutor["connectionOf"]>): ReturnType<XaExecutor["connectionOf"]> {
    return this.inner.connectionOf(...a);
  }
  kill(...a: Parameters<XaExecutor["kill"]>): ReturnType<XaExecutor["kill"]> {
    return this.inner.kill(...a);
  }
}

/**
 * The local-transaction executor as node `node`'s resolver must see it: a scan lists that node's undo rows only.
 *
 * `beforeSettle` (as NodeXa's, for the speculative path): called with the transactions whose undo rows (state undo)
 * the scan listed, before the resolver sees them; false (some row is still locked by a live session of the node,
 * e.g. its release frozen between its locking read and its COMMIT) makes the scan answer UNAVAILABLE.
 */
export class NodeLocal implements LocalExecutor {
  readonly shards: readonly ShardId[];
  constructor(
    private readonly inner: LocalExecutor,
    readonly node: string,
    private readonly beforeSettle?: (shard: ShardId, txs: readonly TxId[]) => Promise<boolean>,
  ) {
    this.shards = inner.shards;
  }
  apply(...a: Parameters<LocalExecutor["apply"]>): ReturnType<LocalExecutor["apply"]> {
    return this.inner.apply(...a);
  }
  tombstone(...a: Parameters<LocalExecutor["tombstone"]>): ReturnType<LocalExecutor["tombstone"]> {
    return this.inner.tombstone(...a);
  }
  compensate(...a: Parameters<LocalExecutor["compensate"]>): ReturnType<LocalExecutor["compensate"]> {
    return this.inner.compensate(...a);
  }
  release(...a: Parameters<LocalExecutor["release"]>): ReturnType<LocalExecutor["release"]> {
    return this.inner.release(...a);
  }
  async scan(shard: ShardId): ReturnType<LocalExecutor["scan"]> {
    const r = await this.inner.scan(shard);
    if (!r.ok) return r;
    const rows = r.rows.filter((x) => nodeOfTx(x.tx) === this.node);
    if (this.beforeSettle !== undefined && !(await this.beforeSettle(shard, rows.filter((x) => x.branch === shard).map((x) => x.tx)))) return { ok: false, err: "UNAVAILABLE" };
    return { ok: true, rows };
  }
}

/**
 * What is in doubt of a node now, one id per thing: its decision, STAGING and
 * speculative records (tx/, speculative/), its prepared branches, its undo
 * rows, leaving out the transactions `running` names (a coordinator of this
 * process still has them in hand). Null: the log or a shard did not answer.
 */
export async function inDoubtOf(
  deps: { readonly log: TxlogStore; readonly xa: NodeXa; readonly local: NodeLocal; readonly running: (tx: TxId) => boolean },
): Promise<string[] | null> {
  const items: string[] = [];
  for (const [prefix, txOf] of [
    [DECISION_PREFIX, txOfDecisionKey],
    [SPECULATIVE_PREFIX, txOfSpeculativeKey],
  ] as const) {
    const l = await deps.log.list(prefix);
    if (!l.ok) return null;
    for (const e of l.entries) if (!deps.running(txOf(e.key))) items.push(`log:${e.key}`);
  }
  for (const shard of deps.xa.shards) {
    const r = await deps.xa.recover(shard);
    if (!r.ok) return null;
    for (const x of r.prepared) if (!deps.running(x.tx)) items.push(`xa:${x.tx}:${shard}`);
    const u = await deps.local.scan(shard);
    if (!u.ok) return null;
    for (const x of u.rows) if (!deps.running(x.tx)) items.push(`undo:${x.tx}:${x.branch}`);
  }
  return items;
}
