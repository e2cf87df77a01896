/**
 * Gathers what durable state holds of a transaction, through the ports: the
 * txlog records at the keys the registered read-back rules name, and per
 * shard its history rows, its prepared branches (XA RECOVER) and its undo
 * rows. It decides nothing: what the facts mean is each protocol's read-back
 * rule (spec/protocols/protocol.ts `ReadBackRule`), composed in
 * spec/server/readback.ts and checked by the server model (`readback_sound`).
 * GET /transactions/:id, the idempotency path and a restarted server all
 * read the outcome through here.
 */
import type { Outcome, TxId, ShardId, UndoRowState } from "../spec/kernel/effects.ts";
import type { DurableFacts } from "../spec/protocols/protocol.ts";
import { factKeys, readBackFound, readBackWithout, REGISTERED_RULES, settle, type RanAs } from "../spec/server/readback.ts";
import type { TxlogStore } from "./adapters/ports.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import { OPEN_BRANCH_TABLE } from "./cluster/schema.ts";
import { fenceNode } from "./detach.ts";
import { nodeOfTx } from "./nodes.ts";

export type { RanAs } from "../spec/server/readback.ts";

export class DurableUnavailable extends Error {}

export const TX_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

const NO_FACTS: DurableFacts = { records: [], history: [], prepared: [], undo: [] };

type Deps = { xa: XaMysql; log: TxlogStore };

/** The facts of `tx`; `shards`: where to look for history rows and prepared branches (all when absent). Throws DurableUnavailable naming what did not answer. */
export async function durableFacts(tx: TxId, deps: Deps, shards: readonly ShardId[] = deps.xa.shards): Promise<DurableFacts> {
  const { facts, missing } = await durableFactsOf(tx, deps, shards);
  if (missing.length > 0) throw new DurableUnavailable(`${missing[0]} did not answer`);
  return facts;
}

/** The facts of `tx` from the txlog (which must answer) and every shard that answers; `missing`: the shards that did not. */
async function durableFactsOf(tx: TxId, deps: Deps, shards: readonly ShardId[]): Promise<{ facts: DurableFacts; missing: ShardId[] }> {
  if (!TX_ID.test(tx)) return { facts: NO_FACTS, missing: [] };
  const records: { key: string; value: DurableFacts["records"][number]["value"] }[] = [];
  for (const key of factKeys(tx)) {
    const listed = await deps.log.list(key);
    if (!listed.ok) throw new DurableUnavailable("the transaction log did not answer");
    const e = listed.entries.find((x) => x.key === key);
    if (e !== undefined) records.push({ key, value: e.value });
  }
  const missing = new Set<ShardId>();
  const history: ShardId[] = [];
  const prepared: ShardId[] = [];
  for (const shard of shards) {
    if (!deps.xa.shards.includes(shard)) continue;
    const h = await deps.xa.pool(shard).run<unknown[]>(`SELECT 1 FROM history WHERE xid = '${tx}' LIMIT 1`);
    const r = h.ok ? await deps.xa.recover(shard) : null;
    if (!h.ok || r === null || !r.ok) {
      missing.add(shard);
      continue;
    }
    if (h.value.length > 0) history.push(shard);
    if (r.prepared.some((x) => x.tx === tx)) prepared.push(shard);
  }
  const undo: { branch: ShardId; state: UndoRowState; branches: ShardId[] }[] = [];
  for (const shard of deps.xa.shards) {
    const r = await deps.xa.pool(shard).run<Array<{ branch: string; state: UndoRowState; branches: string }>>(`SELECT branch, state, branches FROM speculative_undo WHERE tx = '${tx}'`);
    if (!r.ok) {
      missing.add(shard);
      continue;
    }
    for (const row of r.value) undo.push({ branch: row.branch, state: row.state, branches: JSON.parse(row.branches) as ShardId[] });
  }
  // A shard that did not answer one of the reads says nothing: what it said to the others is dropped too.
  const gone = (x: ShardId) => missing.has(x);
  return {
    facts: { records, history: history.filter((x) => !gone(x)), prepared: prepared.filter((x) => !gone(x)), undo: undo.filter((u) => !gone(u.branch)) },
    missing: [...missing],
  };
}

/**
 * What durable state says of `tx` (spec/server/readback.ts `readBackFound`); null when nothing of it is found.
 * With shards down, what `readBackWithout` says (a decision record answers alone; `unanswered` names them).
 * Throws DurableUnavailable when the txlog does not answer, or the shards that did not answer could change it.
 */
export async function durableOutcome(tx: TxId, deps: Deps): Promise<{ outcome: Outcome; found: Record<string, unknown> } | null> {
  const { facts, missing } = await durableFactsOf(tx, deps, deps.xa.shards);
  if (missing.length === 0) return readBackFound(tx, facts);
  const outcome = readBackWithout(tx, facts, missing);
  if (outcome === null) throw new DurableUnavailable(`${missing.join(", ")} did not answer`);
  return { outcome, found: { ...readBackFound(tx, facts)?.found, unanswered: missing } };
}

/**
 * The outcome of a transaction known to have run, whose coordinator is gone
 * or answered in_doubt and ended (spec/server/readback.ts `settle`): "probe"
 * when only its protocol's probe can make it final. When settle asks for the
 * settle fence (nothing found, which is not yet aborted), takes it and asks
 * again with the facts gathered after it: the log fence is this process's
 * epoch (`epoch`: the one the resolver holds; none yet: DurableUnavailable),
 * the shard fence `shardFence`. Throws DurableUnavailable.
 */
export async function settledOutcome(tx: TxId, ran: RanAs, deps: Deps & FenceDeps): Promise<Outcome | "probe"> {
  const first = settle(tx, await durableFacts(tx, deps, ran.shards), ran);
  if (first !== "fence") return first;
  const epoch = deps.epoch();
  if (epoch === null) throw new DurableUnavailable("this process holds no epoch yet, so a write of the transaction's dead coordinator may still land");
  await nodeFence(tx, ran.shards, deps, epoch);
  await shardFence(tx, ran.shards, deps);
  const fenced = settle(tx, await durableFacts(tx, deps, ran.shards), ran, REGISTERED_RULES, true);
  if (fenced === "fence") throw new Error(`settle of ${tx}: asked for the fence again once it was held`);
  return fenced;
}

/** What the settle fence needs of the reader: its epoch of the transaction's node, and whether that node is taken over. */
export interface FenceDeps {
  /** The epoch this process holds of the transaction's node (its own, or the one its resolver took); null: none. */
  readonly epoch: () => number | null;
  /**
   * The node is one this process took over and rule 5 lets it kill that node's sessions (spec/failover/takeover.ts
   * detachBeforeSettle): the sessions holding its fence row are a hung or cut-off node's and are killed
   * (runtime/detach.ts fenceNode). Else (its own node) they are its own branches in flight, and are waited for.
   */
  readonly killFenced?: boolean;
}

/**
 * The node fence (spec/server/readback.ts SETTLE_FENCE): the transaction's node fenced at `epoch` on every shard of
 * it (runtime/detach.ts fenceNode), so that a one-phase branch of an older epoch of that node, not begun or hung
 * between its exec and its commit, can no longer commit (spec/kernel/effects.ts xa.exec `fence`).
 */
async function nodeFence(tx: TxId, shards: readonly ShardId[], deps: Deps & FenceDeps, epoch: number): Promise<void> {
  if (!TX_ID.test(tx)) return;
  const node = nodeOfTx(tx);
  for (const shard of shards) {
    if (!deps.xa.shards.includes(shard)) continue;
    const f = await fenceNode(deps.xa.pool(shard), node, epoch, deps.killFenced === true);
    if (f.outcome === "failed") throw new DurableUnavailable(`node ${node} could not be fenced on ${shard}: ${f.why}`);
    for (const t of f.killed) console.error(`speccommit: settle of ${tx}: killed node ${node}'s session ${t} on ${shard}, which held its fence row (a one-phase branch of a hung or cut-off node)`);
  }
}

/**
 * The shard fence's statements for `tx` on one shard (`tx` a checked id): a
 * locking read of its open-branch row (runtime/cluster/schema.ts
 * OPEN_BRANCH_TABLE, what a one-phase branch holds from its exec to its end)
 * and of its history rows (what a two-phase branch holds from its exec on).
 */
export const shardFenceSql = (tx: TxId): string =>
  `SELECT COUNT(*) AS n FROM ${OPEN_BRANCH_TABLE} WHERE tx = '${tx}' LOCK IN SHARE MODE;SELECT COUNT(*) AS n FROM history WHERE xid = '${tx}' LOCK IN SHARE MODE`;

/**
 * The shard fence (spec/server/readback.ts SETTLE_FENCE): on every shard of
 * `tx`, `shardFenceSql`. Every XA branch with writes holds a row of its own
 * locked from its exec until it ends, a one-phase branch its open-branch row
 * (its history rows are written by its commit), a two-phase branch its
 * history rows, so the reads return only once no unprepared branch of `tx`
 * with writes lives: it committed (its rows are facts now) or it was rolled
 * back (the server dropped its session, so a statement sent on it before its
 * process died has run or never will). A lock wait timeout (the branch's
 * session still open on the server: a process that died without closing its
 * socket) is DurableUnavailable: ask again later.
 */
async function shardFence(tx: TxId, shards: readonly ShardId[], deps: Deps): Promise<void> {
  if (!TX_ID.test(tx)) return;
  for (const shard of shards) {
    if (!deps.xa.shards.includes(shard)) continue;
    const r = await deps.xa.pool(shard).run<unknown[]>(shardFenceSql(tx));
    if (r.ok) continue;
    if (r.error.errno === 1205) throw new DurableUnavailable(`a branch of ${tx} on ${shard} is still open (its session is not gone from the shard yet)`);
    throw new DurableUnavailable(`${shard} did not answer`);
  }
}
