/**
 * Detaching a hung or cut-off node's prepared branches from its live shard
 * sessions, so that a survivor's resolver can settle them
 * (spec/failover/takeover.ts, rule 5 `detachBeforeSettle`, says when; this
 * file only does it).
 *
 * How a branch's session is found, with no identity of the node's sessions
 * on the shard: every two-phase XA branch inserts its history rows in its
 * exec (`history.xid` = the transaction id) and a prepared branch holds them
 * locked. A locking read of those rows (LOCK IN SHARE MODE, bounded by
 * innodb_lock_wait_timeout = 1 s for that statement) waits for the branch,
 * and information_schema.INNODB_LOCK_WAITS joined to INNODB_TRX names the
 * session the blocking transaction is attached to
 * (`trx_mysql_thread_id`), 0 once it is detached (measured on MariaDB 10.11:
 * test/failover/detach.test.ts). That session is killed (KILL CONNECTION),
 * and awaited until it left information_schema.PROCESSLIST. The branch then
 * stays prepared, detached, and XA COMMIT / ROLLBACK from any session apply.
 *
 * Only the X lock of the branch's own insert blocks a shared read of its
 * history rows (the commit timestamp's UPDATE comes after the branch
 * committed, when it is no longer listed by XA RECOVER), so the holder found
 * is the branch's session; the wait read must be the probe's own, on a
 * history row of that xid (INNODB_LOCKS' lock_table and lock_data), since
 * the view may be older. InnoDB refreshes those tables only when they were
 * last read more than 100 ms ago (runtime/deadlock.ts): the waits are read
 * every WAITS_POLL_MS (250), so that this reader alone never keeps the view
 * frozen; several deadlock detectors polling the same shard every 120 ms
 * can (docs/operations.md, "Cross-shard deadlocks": run one), and a branch
 * not detached within BRANCH_WAIT_MS is tried again on the next scan.
 *
 * Everything is bounded: BRANCH_WAIT_MS per branch, PARALLEL branches of a
 * shard at a time, and the cache of branches known detached (a detached
 * branch never attaches again: XA COMMIT/ROLLBACK from another session do not
 * attach it, and XA START of its xid answers DUPID) keeps at most what XA
 * RECOVER listed last.
 */
import type { ShardId, TxId } from "../spec/kernel/effects.ts";
import type { PooledConnection, ShardPool } from "./adapters/mysql-pool.ts";
import { DATABASE, FENCE_TABLE, fenceRowInsert } from "./cluster/schema.ts";

const WAITS_POLL_MS = 250;
const BRANCH_WAIT_MS = 8_000;
const SESSION_GONE_MS = 5_000;
const PARALLEL = 8;
/** ER_NO_SUCH_THREAD: the session is already gone. */
const ER_NO_SUCH_THREAD = 1094;
const XID = /^[A-Za-z0-9_.:-]{1,64}$/;

export type BranchDetach =
  /** Its session was killed and is gone: the branch is detached. */
  | { tx: TxId; outcome: "killed"; thread: number }
  /** It was detached already (its holder is session 0), or no longer locks anything (finished meanwhile). */
  | { tx: TxId; outcome: "detached" }
  /** No history row of it: nothing to find its session by (no branch of ours writes none). */
  | { tx: TxId; outcome: "no-rows" }
  /** The shard did not answer, or the session did not go within the bounds. */
  | { tx: TxId; outcome: "failed"; why: string };

/**
 * The rows a probe reads: an XA branch's history rows, or (the speculative
 * path) the undo row of a transaction on this shard, which a frozen node's
 * release, compensate or tombstone holds locked (FOR UPDATE, then the
 * changes and COMMIT in a second round trip) when it froze between the two:
 * speculative branches are local transactions, never prepared, so nothing
 * else names that session. Killing it rolls that local transaction back;
 * the undo row's key still decides (spec/protocols/speculative/settle.ts).
 */
export type DetachTarget = "history" | "speculative_undo";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Kills session `thread` and waits (bounded) until it left the process list; null once gone, else why not. */
async function killAndWait(pool: ShardPool, thread: number): Promise<string | null> {
  const kill = await pool.run(`KILL CONNECTION ${thread}`);
  // 1095 (not owner): MariaDB lets a session kill only its own account's sessions, unless it holds CONNECTION ADMIN.
  if (!kill.ok && kill.error.errno !== ER_NO_SUCH_THREAD) return `KILL CONNECTION ${thread}: ${kill.error.errno ?? kill.error.code} ${kill.error.message}`;
  const deadline = performance.now() + SESSION_GONE_MS;
  while (performance.now() < deadline) {
    const r = await pool.run<Array<{ n: unknown }>>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ${thread}`);
    if (r.ok && Number(r.value[0]?.n) === 0) return null;
    await sleep(20);
  }
  return `session ${thread} did not go within ${SESSION_GONE_MS} ms of KILL CONNECTION`;
}

/**
 * The sessions (thread ids; 0: a detached branch) holding the locks session `requester` waits for on rows of
 * `table` (whose key begins with `keyPrefix`, as INNODB_LOCKS' lock_data writes it, when given); a string: why
 * the lock waits could not be read. From InnoDB's lock-wait tables (see the file's comment on their refresh).
 */
async function blockersOf(pool: ShardPool, requester: number, table: string, keyPrefix?: string): Promise<number[] | string> {
  const onKey = keyPrefix === undefined ? "" : ` AND LEFT(l.lock_data, ${keyPrefix.length}) = '${keyPrefix.replaceAll("'", "''")}'`;
  const w = await pool.run<Array<{ holder: unknown }>>(
    "SELECT DISTINCT b.trx_mysql_thread_id AS holder FROM information_schema.INNODB_LOCK_WAITS w " +
      "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id " +
      "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id " +
      "JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id " +
      `WHERE r.trx_mysql_thread_id = ${requester} AND l.lock_table = '\`${DATABASE}\`.\`${table}\`'${onKey}`,
  );
  if (!w.ok) return `reading the lock waits: ${w.error.message}`;
  return w.value.map((row) => Number(row.holder)).filter((h) => Number.isSafeInteger(h) && h >= 0);
}

/**
 * Detaches one prepared branch `tx` of this shard (see the file's comment).
 * `onlyLook` (diagnostics): finds the holder, kills nothing; an attached
 * branch is then "failed" with the holder's session and client address.
 */
export async function detachBranch(pool: ShardPool, tx: TxId, onlyLook = false, on: DetachTarget = "history"): Promise<BranchDetach> {
  if (!XID.test(tx)) return { tx, outcome: "failed", why: `${JSON.stringify(tx)} is not a transaction id` };
  const deadline = performance.now() + BRANCH_WAIT_MS;
  let killed: number | null = null;
  while (performance.now() < deadline) {
    const c: PooledConnection | null = await pool.acquire();
    if (c === null) return { tx, outcome: "failed", why: "no connection to the shard" };
    let done = false;
    const read = pool
      .query<Array<{ n: unknown }>>(c, `SET STATEMENT innodb_lock_wait_timeout = 1 FOR SELECT COUNT(*) AS n FROM ${on} WHERE ${on === "history" ? "xid" : "tx"} = '${tx}' LOCK IN SHARE MODE`)
      .finally(() => void (done = true));
    try {
      let holder: number | null = null;
      while (!done && holder === null && performance.now() < deadline) {
        await sleep(WAITS_POLL_MS);
        if (done) break;
        // The wait must be this probe's: on a row of `tx` in that table (the view may be an older one, of another use of this session).
        // Both keys begin with the transaction id: history (xid, account_id), speculative_undo (tx, branch).
        const w = await blockersOf(pool, c.threadId, on, `'${tx}',`);
        if (typeof w === "string") return { tx, outcome: "failed", why: w };
        if (w.length > 0) holder = w[0]!;
      }
      if (holder === 0) return killed !== null ? { tx, outcome: "killed", thread: killed } : { tx, outcome: "detached" };
      if (holder !== null && Number.isSafeInteger(holder) && holder > 0) {
        if (onlyLook) {
          const p = await pool.run<Array<{ HOST: unknown; COMMAND: unknown; TIME: unknown }>>(`SELECT HOST, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID = ${holder}`);
          const row = p.ok ? p.value[0] : undefined;
          return { tx, outcome: "failed", why: `attached to session ${holder}${row !== undefined ? ` from ${String(row.HOST)} (${String(row.COMMAND)}, ${String(row.TIME)} s)` : ""}` };
        }
        const why = await killAndWait(pool, holder);
        if (why !== null) return { tx, outcome: "failed", why };
        killed = holder;
        continue;
      }
      if (!done) continue;
      const r = await read;
      // 1205: the wait timed out between two reads of the waits; look again.
      if (!r.ok) {
        if (r.error.errno === 1205) continue;
        return { tx, outcome: "failed", why: r.error.message };
      }
      if (Number(r.value[0]?.n) === 0) return { tx, outcome: "no-rows" };
      return killed !== null ? { tx, outcome: "killed", thread: killed } : { tx, outcome: "detached" };
    } finally {
      // A read still waiting (on a detached branch's locks) is stopped; its connection is not given back mid-statement.
      if (!done) {
        await pool.run(`KILL QUERY ${c.threadId}`);
        await read.catch(() => undefined);
      }
      pool.release(c);
    }
  }
  return { tx, outcome: "failed", why: `not detached within ${BRANCH_WAIT_MS} ms` };
}

/**
 * Detaches the branches of one shard, PARALLEL at a time, skipping those
 * known detached; remembers those now detached (among `txs` only).
 */
export class Detacher {
  private readonly known = new Map<ShardId, Set<TxId>>();

  constructor(
    private readonly poolOf: (shard: ShardId) => ShardPool | undefined,
    private readonly onKilled: (shard: ShardId, d: Extract<BranchDetach, { outcome: "killed" }>) => void,
    private readonly on: DetachTarget = "history",
  ) {}

  /** True when every listed branch of `shard` is detached (or has no row to find it by); false: some could not be, now. */
  async detach(shard: ShardId, txs: readonly TxId[]): Promise<{ complete: boolean; results: BranchDetach[] }> {
    const pool = this.poolOf(shard);
    if (pool === undefined) return { complete: txs.length === 0, results: [] };
    const before = this.known.get(shard) ?? new Set<TxId>();
    const known = new Set([...before].filter((t) => txs.includes(t)));
    this.known.set(shard, known);
    const todo = txs.filter((t) => !known.has(t));
    const results: BranchDetach[] = [];
    for (let i = 0; i < todo.length; i += PARALLEL) {
      results.push(...(await Promise.all(todo.slice(i, i + PARALLEL).map((t) => detachBranch(pool, t, false, this.on)))));
    }
    for (const r of results) {
      if (r.outcome === "failed") continue;
      known.add(r.tx);
      if (r.outcome === "killed") this.onKilled(shard, r);
    }
    return { complete: results.every((r) => r.outcome !== "failed"), results };
  }
}

/** A node name as a fence row holds it (the prefix of its transaction ids, runtime/nodes.ts). */
const NODE = /^[A-Za-z0-9_-]{1,64}$/;

export type FenceWrite =
  /** The row holds `epoch` or newer; `killed`: the sessions killed on the way. */
  | { outcome: "fenced"; killed: number[] }
  | { outcome: "failed"; why: string };

/**
 * Fences node `node` on this shard at `epoch` (spec/server/readback.ts
 * SETTLE_FENCE, the node fence): raises its fence row (FENCE_TABLE) to
 * `epoch`, never lowers it. The write takes the row's X lock, so it waits
 * for every one-phase branch of the node that read the row (shared, held
 * until the branch ends); once it returned, no branch of an older epoch of
 * the node can commit here (a later one reads the new epoch: FENCED).
 *
 * `kill` (the node is taken over: spec/failover/takeover.ts rule 5): the
 * sessions holding the row are a hung or cut-off node's, frozen with a
 * branch between its exec and its commit; they are found as detachBranch
 * finds a branch's (the lock waits of this write) and killed, which rolls
 * their unprepared branches back. Bounded by BRANCH_WAIT_MS.
 *
 * Without `kill` (this process's own node: the holders are its own branches
 * in flight) the write never queues: a waiting X lock would hold up every
 * new one-phase branch of the node on this shard behind it. It takes the
 * row's X lock with NOWAIT, tried again every OWN_RETRY_MS while the node's
 * branches hold it, and is "failed" after OWN_WAIT_MS (ask again later).
 *
 * Once per shard, node and epoch in this process (the read-back's fence and
 * rule 5's share it: runtime/durable.ts, runtime/failover.ts): a row this
 * process raised to `epoch` or beyond is fenced already (rows are never
 * lowered).
 */
export async function fenceNode(pool: ShardPool, node: string, epoch: number, kill: boolean): Promise<FenceWrite> {
  if (!NODE.test(node)) return { outcome: "failed", why: `${JSON.stringify(node)} is not a node name` };
  if (!Number.isSafeInteger(epoch) || epoch < 0) return { outcome: "failed", why: `${String(epoch)} is not an epoch` };
  let done = fencedAt.get(pool);
  if (done === undefined) fencedAt.set(pool, (done = new Map()));
  if ((done.get(node) ?? -1) >= epoch) return { outcome: "fenced", killed: [] };
  const f = kill ? await fenceTakenOver(pool, node, epoch) : await fenceOwnNode(pool, node, epoch);
  // Bounded: one entry per node this process fenced on this shard.
  if (f.outcome === "fenced") done.set(node, epoch);
  return f;
}

/** Per shard (its pool), node → the epoch this process raised its fence row to. */
const fencedAt = new WeakMap<ShardPool, Map<string, number>>();

/** fenceNode with `kill`: the write queues, and the sessions it waits for are killed. */
async function fenceTakenOver(pool: ShardPool, node: string, epoch: number): Promise<FenceWrite> {
  const deadline = performance.now() + BRANCH_WAIT_MS;
  const killed: number[] = [];
  while (performance.now() < deadline) {
    const c: PooledConnection | null = await pool.acquire();
    if (c === null) return { outcome: "failed", why: "no connection to the shard" };
    let done = false;
    const write = pool
      .query(c, `SET STATEMENT innodb_lock_wait_timeout = 1 FOR INSERT INTO ${FENCE_TABLE} (node, epoch) VALUES ('${node}', ${epoch}) ON DUPLICATE KEY UPDATE epoch = GREATEST(epoch, VALUES(epoch))`)
      .finally(() => void (done = true));
    try {
      while (!done && performance.now() < deadline) {
        await sleep(WAITS_POLL_MS);
        if (done) continue;
        const w = await blockersOf(pool, c.threadId, FENCE_TABLE);
        if (typeof w === "string") return { outcome: "failed", why: w };
        for (const holder of w) {
          if (holder <= 0 || killed.includes(holder)) continue;
          const why = await killAndWait(pool, holder);
          if (why !== null) return { outcome: "failed", why };
          killed.push(holder);
        }
      }
      if (!done) break;
      const r = await write;
      if (r.ok) return { outcome: "fenced", killed };
      if (r.error.errno !== 1205) return { outcome: "failed", why: r.error.message };
    } finally {
      if (!done) {
        await pool.run(`KILL QUERY ${c.threadId}`);
        await write.catch(() => undefined);
      }
      pool.release(c);
    }
  }
  return { outcome: "failed", why: `node ${node} not fenced within ${BRANCH_WAIT_MS} ms` };
}

const OWN_WAIT_MS = 1_000;
const OWN_RETRY_MS = 20;

/** fenceNode without `kill`: X lock with NOWAIT (never queued ahead of the node's new branches), retried, bounded. */
async function fenceOwnNode(pool: ShardPool, node: string, epoch: number): Promise<FenceWrite> {
  // The row exists before it is locked (a NOWAIT read of a missing row would lock a gap, not the row).
  const made = await pool.run(fenceRowInsert(node));
  if (!made.ok) return { outcome: "failed", why: made.error.message };
  const deadline = performance.now() + OWN_WAIT_MS;
  for (;;) {
    const c: PooledConnection | null = await pool.acquire();
    if (c === null) return { outcome: "failed", why: "no connection to the shard" };
    try {
      const r = await pool.query(
        c,
        `START TRANSACTION; SELECT epoch FROM ${FENCE_TABLE} WHERE node = '${node}' FOR UPDATE NOWAIT; ` +
          `UPDATE ${FENCE_TABLE} SET epoch = GREATEST(epoch, ${epoch}) WHERE node = '${node}'; COMMIT`,
      );
      if (r.ok) return { outcome: "fenced", killed: [] };
      // The batch stopped at the failing statement: the transaction is still open on this connection.
      await pool.query(c, "ROLLBACK");
      if (r.error.errno !== 1205) return { outcome: "failed", why: r.error.message };
    } finally {
      pool.release(c);
    }
    if (performance.now() >= deadline) return { outcome: "failed", why: `node ${node}'s fence row is held by its live branches (${OWN_WAIT_MS} ms)` };
    await sleep(OWN_RETRY_MS);
  }
}
