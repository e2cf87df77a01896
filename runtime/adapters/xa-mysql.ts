/**
 * The live XA executor: spec/kernel/effects.ts XA effects as MariaDB XA statements
 * over mysql2 (docs/operations.md, "XA branches").
 *
 * xid layout: formatID = XID_FORMAT_ID (fixed, marks the branches as ours in
 * XA RECOVER), gtrid = the transaction id, bqual = the shard id. Both are
 * restricted to [A-Za-z0-9_.:-], at most 64 bytes (MariaDB's limits), so they
 * go into statements as plain quoted literals.
 *
 * One connection per branch, from xa.exec until the branch is finished: a
 * prepared branch's XA COMMIT from another connection answers 1397 while the
 * owner connection lives, which would read as "already finished" and
 * silently skip the commit. So every statement of a branch goes on its owner
 * connection while that lives; once it died, on a fresh connection, but only
 * after making sure the server dropped the dead session (KILL, then wait
 * until it left the process list). Statements of one branch are serialized,
 * so a connection goes back to the pool only when nothing more is queued for
 * its branch.
 *
 * Parallel commit names a branch's connection (connectionOf) and kills it
 * (kill, spec/kernel/effects.ts XaKillEffect). The name is `<boot>:<thread id>`:
 * the server's start time (see PooledConnection.boot) and CONNECTION_ID(),
 * since MariaDB numbers sessions from 1 again after a restart. A branch whose
 * connection was killed, by this process or another, is a branch whose owner
 * died: its XA PREPARE answers RMFAIL unsent (only the owner could prepare
 * it, and the server rolled it back; any other connection is answered 1399),
 * or UNAVAILABLE if the prepare itself found the connection closed; its
 * commit or rollback goes on a fresh connection as above.
 */
import { credentialSql } from "../auth.ts";
import type { ConnectionId, Op, RecoverResult, ShardId, TxId, XaError, XaResult } from "../../spec/kernel/effects.ts";
import type { XaExecutor } from "./ports.ts";
import { nodeOfTx } from "../nodes.ts";
import { FENCE_TABLE, fenceRowInsert, OPEN_BRANCH_TABLE } from "../cluster/schema.ts";
import { checkBatching, DEFAULT_SHARD_BATCH, ShardBatcher, type Batching } from "./shard-batch.ts";
import { hardClose, ShardPool, type PoolLimits, type PoolStats, type PooledConnection, type QueryError, type QueryOutcome, type ShardAddress } from "./mysql-pool.ts";

/** "SC" + "XA" in ASCII: 0x5343_5841, below 2^31 as MariaDB's formatID requires. */
export const XID_FORMAT_ID = 0x53435841;
const XID_PART = /^[A-Za-z0-9_.:-]{1,64}$/;

/** ER_QUERY_INTERRUPTED: the statement was stopped by KILL QUERY. */
const ER_QUERY_INTERRUPTED = 1317;

/** How often and how long to look for a dead owner session in the process list. */
const SESSION_GONE_POLL_MS = 5;

export const MYSQL_XA_ERRORS: Readonly<Record<number, XaError>> = {
  1397: "NOTA",
  1399: "RMFAIL",
  1402: "RBROLLBACK",
  1440: "DUPID",
  1205: "LOCK_TIMEOUT",
  1213: "DEADLOCK",
  // XA_RBDEADLOCK: XA COMMIT of a deadlock victim.
  1614: "DEADLOCK",
  // XAER_INVAL, XAER_OUTSIDE: a statement the branch's state does not allow.
  1398: "RMFAIL",
  1400: "RMFAIL",
};

/**
 * A MySQL error as a vocabulary error, the same mapping as the model's
 * (spec/env/executor.ts). A lost connection, a timeout, or an error this
 * mapping does not know (4025, an unguarded overdraft, included) is
 * UNAVAILABLE: "may or may not have taken effect" is the only claim that is
 * true of all of them.
 */
export function xaErrorOf(e: QueryError): XaError {
  if (e.fatal || e.errno === undefined) return "UNAVAILABLE";
  return MYSQL_XA_ERRORS[e.errno] ?? "UNAVAILABLE";
}

export function xidSql(tx: TxId, shard: ShardId): string {
  if (!XID_PART.test(tx)) throw new Error(`transaction id ${JSON.stringify(tx)} cannot be an XA gtrid (want ${XID_PART.source})`);
  if (!XID_PART.test(shard)) throw new Error(`shard id ${JSON.stringify(shard)} cannot be an XA bqual (want ${XID_PART.source})`);
  return `'${tx}','${shard}',${XID_FORMAT_ID}`;
}

export interface XaStatementObserver {
  /** A statement of this shard failed with this MySQL error number (or code, for client-side errors). */
  onError?(shard: ShardId, code: string): void;
  /**
   * Deferred work sent to this shard as one batch (group commit, shard-batch.ts): `retire`, releases and
   * compensations in one round trip (local-mysql.ts); `stamp`, two-phase branches' commit-timestamp stamps in one
   * UPDATE (this file).
   */
  onShardBatch?(shard: ShardId, work: "retire" | "stamp", jobs: number): void;
}

interface Branch {
  /** The owner connection while it lives; null once it died. */
  conn: PooledConnection | null;
  /** Server session of the last owner, to make sure it is gone before another connection addresses the branch. */
  threadId: number;
  /** The dead owner's session was seen gone from the server. */
  ownerGone: boolean;
  /** xa.exec answered ok: from then on, and while it lives, the owner is named by connectionOf. */
  executed: boolean;
  /** xa.exec's statements are on the owner connection now (the only statement the deadlock detector interrupts). */
  execRunning: boolean;
  /** The deadlock detector chose this branch's transaction and sent KILL QUERY to its blocked statement. */
  victim: boolean;
  /**
   * A one-phase exec left the branch ACTIVE on its owner (no XA END; spec/env/executor.ts): its commit or rollback
   * sends XA END first, in the same round trip. Stays true until the branch is finished (a failed batch may have
   * stopped before or after its XA END).
   */
  active: boolean;
  /**
   * A one-phase exec's history rows, not yet written: they go into its commit's round trip, inside the transaction
   * that commits, with the commit timestamp known by then (one write per row, where an INSERT at exec and an UPDATE
   * stamping it at commit were two). Until then the branch holds its OPEN_BRANCH_TABLE row, inserted by its exec, for
   * the settle fence to wait on (runtime/durable.ts shardFence). Null for a two-phase branch: its rows go in with its
   * exec (a prepared branch cannot write, and its timestamp is known only after its decision).
   */
  history: HistoryRows | null;
}

/** History rows to write: one per op, as the exec would have written them. */
interface HistoryRows {
  readonly ops: readonly Op[];
  readonly at_us: number;
  /** The credential column's SQL (credentialSql). */
  readonly who: string;
}

/**
 * The INSERT of a branch's history rows, stamped with `commitTs` (null: none yet). A branch's ops name each account
 * once (runtime/transfer.ts merges them; doExec checks), so no two of its rows share a key. In a one-phase commit's
 * round trip a failing INSERT (a lock wait timeout on a gap another session holds) is rolled back alone, the branch
 * stays ACTIVE, and the commit answers that error (the coordinator then rolls the branch back).
 */
function historyInsert(tx: TxId, h: HistoryRows, commitTs: bigint | null): string {
  const ts = commitTs === null ? "NULL" : BigInt(commitTs).toString();
  return `INSERT INTO history (xid, account_id, delta, at_us, credential, commit_ts) VALUES ${h.ops.map((op) => `('${tx}',${op.account},${op.delta},${h.at_us},${h.who},${ts})`).join(",")}`;
}

/** The commit of a one-phase branch still ACTIVE, one round trip: its history rows, its open-branch row deleted, XA END, XA COMMIT ONE PHASE. */
function activeCommitSql(tx: TxId, shard: ShardId, h: HistoryRows, commitTs: bigint | null): string {
  const xid = xidSql(tx, shard);
  return `${historyInsert(tx, h, commitTs)};DELETE FROM ${OPEN_BRANCH_TABLE} WHERE tx = '${tx}';XA END ${xid};XA COMMIT ${xid} ONE PHASE`;
}

const UNAVAILABLE: XaResult = { ok: false, err: "UNAVAILABLE" };
const OK: XaResult = { ok: true };

/** A branch connection's name (spec/kernel/effects.ts ConnectionId): `<boot>:<thread id>`. */
export const connectionIdOf = (c: Pick<PooledConnection, "boot" | "threadId">): ConnectionId => `${c.boot}:${c.threadId}`;

/** The parts of a ConnectionId; null when it is not one this executor made. */
export function parseConnectionId(conn: ConnectionId): { boot: string; threadId: number } | null {
  const m = /^([1-9][0-9]*):([1-9][0-9]*)$/.exec(conn);
  if (m === null) return null;
  const threadId = Number(m[2]);
  return Number.isSafeInteger(threadId) ? { boot: m[1]!, threadId } : null;
}

export interface ShardHealth {
  shard: ShardId;
  reachable: boolean;
  latency_ms: number | null;
  error: string | null;
  connections: PoolStats;
  /** Branches owned by live connections of this process. */
  branches_open: number;
}

export interface XaMysqlOptions {
  readonly shards: readonly ShardAddress[];
  readonly limits: PoolLimits;
  readonly observer?: XaStatementObserver;
  /** The credential that started a transaction (runtime/auth.ts TxCredentials), written into its history rows; none: NULL. */
  readonly credentialOf?: (tx: TxId) => string | undefined;
  /**
   * Group commit of the commit-timestamp stamps of two-phase branches (commitStamped's two-phase form, after its XA
   * COMMIT answered ok): those asked for on one shard in one turn (or within batch_wait_ms), at most batch_max, in ONE
   * UPDATE, one autocommit transaction. batch_max 1: the stamp goes in the XA COMMIT's round trip, as its own
   * transaction. stampHistory (a stamp that may have to wait for a branch's locks) is never batched. Default
   * DEFAULT_SHARD_BATCH.
   */
  readonly stampBatching?: Batching;
}

/**
 * A two-phase branch's stamp is batched only when at least this many two-phase commits (its own included) are under
 * way on its shard: a batch costs the coordinator a round trip of its own, and saves the shard one transaction per
 * stamp it holds past the first, so a stamp that would be alone rides in its XA COMMIT's round trip instead.
 */
export const STAMP_BATCH_FROM = 4;

/** A stamp waiting for its shard's next batch. */
interface StampJob {
  readonly tx: TxId;
  readonly ts: bigint;
  readonly resolve: (ok: boolean) => void;
}

export class XaMysql implements XaExecutor {
  readonly shards: readonly ShardId[];
  private readonly pools = new Map<ShardId, ShardPool>();
  private readonly branches = new Map<string, Branch>();
  /** Per-branch serialization: the tail of the chain of statements queued for that branch. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** `shard|node` whose fence row is known to exist (it is made once, before the first fenced branch reads it). */
  private readonly fenceRows = new Set<string>();

  constructor(private readonly opts: XaMysqlOptions) {
    this.shards = opts.shards.map((s) => s.name);
    for (const s of opts.shards) {
      xidSql("t", s.name);
      this.pools.set(s.name, new ShardPool(s, opts.limits));
    }
    this.stamps = new ShardBatcher(checkBatching("stamp", opts.stampBatching ?? DEFAULT_SHARD_BATCH), (shard, jobs) => void this.stampBatch(shard, jobs));
  }

  private readonly stamps: ShardBatcher<StampJob>;
  /** Per shard: two-phase commitStamped calls under way (bounded by the branches in flight). */
  private readonly twoPhaseCommits = new Map<ShardId, number>();
  private stampStats = { batches: 0, stamps: 0 };

  /** What the batched stamp path has sent so far: UPDATEs, and stamps in them. */
  stampBatchStats(): { batches: number; stamps: number } {
    return { ...this.stampStats };
  }

  pool(shard: ShardId): ShardPool {
    const p = this.pools.get(shard);
    if (p === undefined) throw new Error(`unknown shard ${shard}`);
    return p;
  }

  exec(tx: TxId, shard: ShardId, ops: readonly Op[], guard: boolean, fence?: number, onePhase?: boolean): Promise<XaResult> {
    return this.serialized(tx, shard, () => this.doExec(tx, shard, ops, guard, fence, onePhase === true));
  }

  prepare(tx: TxId, shard: ShardId): Promise<XaResult> {
    return this.serialized(tx, shard, async () => {
      const xid = xidSql(tx, shard);
      // Only the owner can prepare: once it died (killed, timed out, lost), the branch is (being) rolled back, and XA
      // PREPARE from any other connection, which holds no branch, answers 1399: RMFAIL, as the model's executor says
      // (spec/env/executor.ts, a fresh connection), without sending it (test/env/xa-executor-model.test.ts).
      return this.onBranch(tx, shard, `XA PREPARE ${xid}`, () => false, { ownerOnly: true });
    });
  }

  commit(tx: TxId, shard: ShardId, onePhase = false): Promise<XaResult> {
    // A failed one-phase commit leaves the branch on its connection (IDLE, or ACTIVE if its XA END failed), for the rollback.
    const finished = (r: XaResult) => r.ok || (!onePhase && (r.err === "NOTA" || r.err === "RBROLLBACK"));
    const xid = xidSql(tx, shard);
    const sql = `XA COMMIT ${xid}${onePhase ? " ONE PHASE" : ""}`;
    return this.serialized(tx, shard, () => {
      // An ACTIVE one-phase branch: its history rows (no timestamp: stamped after, as a plain commit's), XA END, commit.
      const h = onePhase ? this.branches.get(this.key(tx, shard))?.history : undefined;
      return this.onBranch(tx, shard, sql, finished, h !== undefined && h !== null ? { activeSql: activeCommitSql(tx, shard, h, null) } : {});
    });
  }

  /**
   * XA COMMIT and the stamp of its history rows (stampHistory's UPDATE) in one round trip. The stamp runs inside a
   * compound statement whose handler swallows any SQL error of it, so that the batch can fail only by the XA COMMIT
   * (or the connection): `r` is the commit's answer exactly as commit() gives it, and `stamped` says whether the rows
   * were stamped too (false: stamp them with stampHistory, as after a plain commit).
   */
  commitStamped(tx: TxId, shard: ShardId, onePhase: boolean, commitTs: bigint): Promise<{ r: XaResult; stamped: boolean }> {
    if (!XID_PART.test(tx)) return this.commit(tx, shard, onePhase).then((r) => ({ r, stamped: false }));
    const finished = (r: XaResult) => r.ok || (!onePhase && (r.err === "NOTA" || r.err === "RBROLLBACK"));
    const b = this.branches.get(this.key(tx, shard));
    if (onePhase && b !== undefined && b.active && b.history !== null) {
      // The branch is still ACTIVE (a one-phase exec): its history rows go in now, inside the transaction that commits,
      // already stamped, and its open-branch row goes, then XA END and XA COMMIT ONE PHASE, in one round trip.
      // Committed means written and stamped; on the owner's death the batch is sent nowhere else (the branch is rolled
      // back, with nothing of it written).
      const sql = `XA COMMIT ${xidSql(tx, shard)} ONE PHASE`;
      const activeSql = activeCommitSql(tx, shard, b.history, commitTs);
      return this.serialized(tx, shard, () => this.onBranch(tx, shard, sql, finished, { activeSql })).then((r) => ({ r, stamped: r.ok }));
    }
    if (onePhase) return this.commitWithStamp(tx, shard, true, commitTs, finished);
    const inFlight = (this.twoPhaseCommits.get(shard) ?? 0) + 1;
    this.twoPhaseCommits.set(shard, inFlight);
    // Two-phase, stamps batched when others are under way: the XA COMMIT alone on the branch's owner (a prepared
    // branch cannot share another connection), then the stamp in its shard's next batch, one transaction for many
    // branches' rows. Only after XA COMMIT answered ok: the rows are committed, so the batch waits for no branch's locks.
    const committed =
      this.stamps.batching.batch_max > 1 && inFlight >= STAMP_BATCH_FROM
        ? this.commit(tx, shard, false).then(async (r) => ({ r, stamped: r.ok && (await this.stampBatched(tx, shard, commitTs)) }))
        : this.commitWithStamp(tx, shard, false, commitTs, finished);
    return committed.finally(() => this.twoPhaseCommits.set(shard, this.twoPhaseCommits.get(shard)! - 1));
  }

  /** XA COMMIT and, in the same round trip, the stamp in a compound statement that swallows its errors. */
  private commitWithStamp(tx: TxId, shard: ShardId, onePhase: boolean, commitTs: bigint, finished: (r: XaResult) => boolean): Promise<{ r: XaResult; stamped: boolean }> {
    let stamped = false;
    const sql =
      `XA COMMIT ${xidSql(tx, shard)}${onePhase ? " ONE PHASE" : ""};` +
      // READ COMMITTED, as stampHistory: no gap lock past the transaction's rows.
      "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;" +
      "BEGIN NOT ATOMIC DECLARE CONTINUE HANDLER FOR SQLEXCEPTION SET @speccommit_stamped = 0; SET @speccommit_stamped = 1; " +
      `UPDATE history SET commit_ts = ${BigInt(commitTs).toString()} WHERE xid = '${tx}' AND commit_ts IS NULL; END;` +
      "SELECT @speccommit_stamped AS stamped";
    return this.serialized(tx, shard, () =>
      this.onBranch(tx, shard, sql, finished, {
        onValue: (value) => {
          const rows = Array.isArray(value) ? (value[value.length - 1] as Array<{ stamped?: unknown }>) : undefined;
          stamped = Array.isArray(rows) && Number(rows[0]?.stamped) === 1;
        },
      }),
    ).then((r) => ({ r, stamped: r.ok && stamped }));
  }

  /**
   * Stamps the commit timestamp on the history rows of `tx` on `shard` that have none (its committed branch's;
   * runtime/timestamps.ts), in one autocommit UPDATE on a pooled connection. True once done (also when no row
   * was left to stamp).
   */
  async stampHistory(tx: TxId, shard: ShardId, commitTs: bigint): Promise<boolean> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return false;
    if (!XID_PART.test(tx)) return false;
    // READ COMMITTED: no gap lock past the transaction's rows, where a prepared branch's row may hold the next key.
    const r = await pool.run(`SET TRANSACTION ISOLATION LEVEL READ COMMITTED;UPDATE history SET commit_ts = ${BigInt(commitTs).toString()} WHERE xid = '${tx}' AND commit_ts IS NULL`);
    if (!r.ok) this.noteError(shard, r.error);
    return r.ok;
  }

  /**
   * stampHistory in its shard's next batch (group commit; `stampBatching`). Only for a branch already committed: a
   * batch's UPDATE must never wait for a branch's locks (one waiting stamp would hold up, or fail, all the others).
   */
  stampBatched(tx: TxId, shard: ShardId, commitTs: bigint): Promise<boolean> {
    if (!this.pools.has(shard) || !XID_PART.test(tx)) return Promise.resolve(false);
    return new Promise((resolve) => this.stamps.add(shard, { tx, ts: BigInt(commitTs), resolve }));
  }

  /**
   * The stamps of several transactions in ONE autocommit UPDATE (READ COMMITTED, as stampHistory; the rows are
   * locked in primary-key order, so two batches never wait for each other in a cycle). A transaction asked for twice
   * is stamped once, with its first timestamp (the same one: a transaction has one). Stamping is idempotent
   * (`commit_ts IS NULL`), so a failed batch answers false to each, and each caller stamps again on its own
   * (runtime/timestamps.ts: stampHistory; if that fails too, the commit answers UNAVAILABLE and is sent again).
   */
  private async stampBatch(shard: ShardId, jobs: readonly StampJob[]): Promise<void> {
    const pool = this.pools.get(shard)!;
    this.stampStats.batches++;
    this.stampStats.stamps += jobs.length;
    this.opts.observer?.onShardBatch?.(shard, "stamp", jobs.length);
    const ts = new Map<TxId, bigint>();
    for (const j of jobs) if (!ts.has(j.tx)) ts.set(j.tx, j.ts);
    const list = [...ts.keys()].map((tx) => `'${tx}'`).join(",");
    const cases = [...ts].map(([tx, t]) => `WHEN '${tx}' THEN ${t.toString()}`).join(" ");
    let ok = false;
    try {
      const r = await pool.run(`SET TRANSACTION ISOLATION LEVEL READ COMMITTED;UPDATE history SET commit_ts = CASE xid ${cases} END WHERE xid IN (${list}) AND commit_ts IS NULL`);
      if (!r.ok) this.noteError(shard, r.error);
      ok = r.ok;
    } finally {
      for (const j of jobs) j.resolve(ok);
    }
  }

  rollback(tx: TxId, shard: ShardId): Promise<XaResult> {
    const xid = xidSql(tx, shard);
    const finished = (r: XaResult) => r.ok || r.err === "NOTA" || r.err === "RBROLLBACK";
    return this.serialized(tx, shard, async () => {
      const r = await this.onBranch(tx, shard, `XA ROLLBACK ${xid}`, finished, { activeSql: `XA END ${xid};XA ROLLBACK ${xid}` });
      // An ACTIVE branch's XA END refused (rollback-only, or already ended by a failed commit batch): XA ROLLBACK alone.
      const b = this.branches.get(this.key(tx, shard));
      if (!r.ok && r.err === "RMFAIL" && b?.active === true && b.conn !== null && !b.conn.dead) {
        b.active = false;
        return this.onBranch(tx, shard, `XA ROLLBACK ${xid}`, finished);
      }
      return r;
    });
  }

  async recover(shard: ShardId): Promise<RecoverResult> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return { ok: false, err: "UNAVAILABLE" };
    const r = await pool.run<Array<{ formatID: unknown; gtrid_length: unknown; bqual_length: unknown; data: Buffer | string }>>("XA RECOVER");
    if (!r.ok) {
      this.noteError(shard, r.error);
      return { ok: false, err: "UNAVAILABLE" };
    }
    const prepared: Array<{ tx: TxId; shard: ShardId }> = [];
    for (const row of r.value) {
      if (Number(row.formatID) !== XID_FORMAT_ID) continue;
      const data = Buffer.isBuffer(row.data) ? row.data : Buffer.from(row.data, "binary");
      const g = Number(row.gtrid_length);
      const b = Number(row.bqual_length);
      const tx = data.subarray(0, g).toString("utf8");
      const bqual = data.subarray(g, g + b).toString("utf8");
      // A branch of ours whose bqual names another shard came from a different configuration: not ours to settle here.
      if (bqual !== shard) continue;
      prepared.push({ tx, shard });
    }
    return { ok: true, prepared };
  }

  connectionOf(tx: TxId, shard: ShardId): ConnectionId | null {
    const b = this.branches.get(this.key(tx, shard));
    if (b === undefined || !b.executed || b.conn === null || b.conn.dead) return null;
    return connectionIdOf(b.conn);
  }

  /**
   * KILL CONNECTION on another connection, then waits until the session has
   * left the process list (sessionGone). An id of another boot names a
   * session that died with that boot: ok, once a connection of the current
   * boot answered. Never rejects.
   */
  async kill(shard: ShardId, conn: ConnectionId): Promise<XaResult> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return UNAVAILABLE;
    const id = parseConnectionId(conn);
    if (id === null) {
      // Not a name this executor gives: nothing says which session it is, so it cannot be said to be gone.
      console.error(`xa.kill ${shard}: ${JSON.stringify(conn)} is not a connection id (<boot>:<thread id>)`);
      return UNAVAILABLE;
    }
    // A second try when the first connection turned out dead: after a restart the pool may still hold the old boot's.
    for (let attempt = 0; attempt < 2; attempt++) {
      let c = await this.acquire(shard, pool);
      if (c === null) return UNAVAILABLE;
      if (c.boot === id.boot && c.threadId === id.threadId) {
        // The session is idle in this pool (its branch finished): close it, and watch it leave from another one.
        pool.discard(c);
        c = await this.acquire(shard, pool);
        if (c === null) return UNAVAILABLE;
      }
      try {
        if (c.boot !== id.boot) {
          const q = await pool.query(c, "SELECT 1");
          if (q.ok) return OK;
          this.noteError(shard, q.error);
        } else if (await this.sessionGone(pool, c, id.threadId)) {
          this.killed(shard, id.boot, id.threadId);
          return OK;
        }
        if (!c.dead) return UNAVAILABLE;
      } finally {
        pool.release(c);
      }
    }
    return UNAVAILABLE;
  }

  /**
   * The server session of every branch of `shard` this process holds a live
   * owner connection for, by MariaDB thread id (what information_schema's
   * INNODB_TRX.trx_mysql_thread_id names): how the deadlock detector maps a
   * lock wait to our transactions. One pass over the branches.
   */
  branchThreads(shard: ShardId): Map<number, TxId> {
    const out = new Map<number, TxId>();
    for (const [key, b] of this.branches) {
      if (b.conn === null || b.conn.dead || !key.endsWith(`|${shard}`)) continue;
      out.set(b.conn.threadId, key.slice(0, key.length - shard.length - 1));
    }
    return out;
  }

  /**
   * The deadlock detector's abort (runtime/deadlock.ts): KILL QUERY on the
   * blocked xa.exec of branch (tx, shard), whose owner session must still be
   * `threadId`. Only while that branch's exec is running (the statement that
   * waits for row locks; never a PREPARE or COMMIT), once per branch. The
   * exec then answers DEADLOCK_VICTIM and the coordinator aborts by its own
   * rule. False when the branch is not in that state (nothing sent).
   * `run`: where the KILL goes (the detector's own connection, so that an
   * exhausted pool cannot hold it up); default, this shard's pool.
   */
  async interruptExec(tx: TxId, shard: ShardId, threadId: number, run?: (sql: string) => Promise<QueryOutcome<unknown>>): Promise<boolean> {
    const b = this.branches.get(this.key(tx, shard));
    const pool = this.pools.get(shard);
    if (b === undefined || pool === undefined || b.conn === null || b.conn.dead || b.conn.threadId !== threadId || !b.execRunning || b.victim) return false;
    b.victim = true;
    const r = await (run ?? ((sql: string) => pool.run(sql)))(`KILL QUERY ${threadId}`);
    if (!r.ok) this.noteError(shard, r.error);
    return r.ok;
  }

  /** Branches this process holds a live connection for, per shard. */
  openBranches(shard: ShardId): number {
    let n = 0;
    for (const [key, b] of this.branches) if (b.conn !== null && key.endsWith(`|${shard}`)) n++;
    return n;
  }

  async health(shard: ShardId): Promise<ShardHealth> {
    const pool = this.pool(shard);
    const t0 = performance.now();
    const r = await pool.run("SELECT 1");
    return {
      shard,
      reachable: r.ok,
      latency_ms: r.ok ? performance.now() - t0 : null,
      error: r.ok ? null : r.error.message,
      connections: pool.stats(),
      branches_open: this.openBranches(shard),
    };
  }

  /**
   * Closes every connection, those of unfinished branches too: as when the
   * process exits, the server rolls back what is not prepared and keeps what
   * is, for the next resolver. Called once the coordinators have stopped.
   */
  close(): void {
    for (const j of this.stamps.drain()) j.resolve(false);
    for (const p of this.pools.values()) p.close();
    for (const b of this.branches.values()) {
      if (b.conn === null) continue;
      b.conn.dead = true;
      hardClose(b.conn.raw);
      b.conn = null;
    }
  }

  private key(tx: TxId, shard: ShardId): string {
    return `${tx}|${shard}`;
  }

  private serialized(tx: TxId, shard: ShardId, fn: () => Promise<XaResult>): Promise<XaResult> {
    const key = this.key(tx, shard);
    const prev = this.locks.get(key);
    // Nothing queued for the branch (the usual case): the statement starts now, without waiting a turn on a resolved promise.
    const started = prev === undefined ? startNow(fn) : prev.then(fn, fn);
    const run: Promise<XaResult> = started.then(
      (r) => {
        if (this.locks.get(key) === run) this.locks.delete(key);
        return r;
      },
      (e: unknown): XaResult => {
        if (this.locks.get(key) === run) this.locks.delete(key);
        // A bug in this adapter: the branch's fate is unknown to us, which is what UNAVAILABLE says.
        console.error(`xa ${key}: ${(e as Error).stack ?? String(e)}`);
        return { ok: false, err: "UNAVAILABLE" };
      },
    );
    this.locks.set(key, run);
    return run;
  }

  /** A connection, or null (counted as NO_CONNECTION: the shard is down or the pool exhausted past its wait bound). */
  private async acquire(shard: ShardId, pool: ShardPool): Promise<PooledConnection | null> {
    const c = await pool.acquire();
    if (c === null) this.opts.observer?.onError?.(shard, "NO_CONNECTION");
    return c;
  }

  private noteError(shard: ShardId, e: QueryError): void {
    this.opts.observer?.onError?.(shard, e.errno !== undefined ? String(e.errno) : e.code);
  }

  /**
   * Makes node `node`'s fence row on `shard` if it is missing (epoch 0: fences nothing), once per process and shard,
   * so that a fenced branch's locking read locks that row, never a gap other nodes' rows would be inserted into.
   */
  private async ensureFenceRow(shard: ShardId, pool: ShardPool, node: string): Promise<boolean> {
    const k = `${shard}|${node}`;
    if (this.fenceRows.has(k)) return true;
    const r = await pool.run(fenceRowInsert(node));
    if (!r.ok) {
      this.noteError(shard, r.error);
      return false;
    }
    this.fenceRows.add(k);
    return true;
  }

  private async doExec(tx: TxId, shard: ShardId, ops: readonly Op[], guard: boolean, fence: number | undefined, onePhase: boolean): Promise<XaResult> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return { ok: false, err: "UNAVAILABLE" };
    const key = this.key(tx, shard);
    // The same branch twice: the server would refuse the second XA START with 1440.
    if (this.branches.has(key)) return { ok: false, err: "DUPID" };
    const xid = xidSql(tx, shard);
    if (ops.length === 0) throw new Error(`xa.exec ${key} with no ops`);
    if (new Set(ops.map((op) => op.account)).size !== ops.length) throw new Error(`xa.exec ${key}: an account named twice (merge its ops)`);
    if (fence !== undefined && !Number.isSafeInteger(fence)) throw new Error(`xa.exec ${key}: fence ${String(fence)} is not an epoch`);
    const node = fence !== undefined ? nodeOfTx(tx) : "";
    if (fence !== undefined && !(await this.ensureFenceRow(shard, pool, node))) return { ok: false, err: "UNAVAILABLE" };
    const c = await this.acquire(shard, pool);
    if (c === null) return { ok: false, err: "UNAVAILABLE" };
    const branch: Branch = {
      conn: c,
      threadId: c.threadId,
      ownerGone: false,
      executed: false,
      execRunning: true,
      victim: false,
      active: false,
      history: null,
    };
    this.branches.set(key, branch);
    const at_us = Date.now() * 1000;
    const open = openAccountSql(tx);
    const updates = ops.map((op) => {
      assertCents(op, key);
      const cond = guard ? ` AND balance + ${op.delta} >= 0` : "";
      return `UPDATE accounts SET balance = balance + ${op.delta} WHERE id = ${op.account} AND ${open}${cond}`;
    });
    const who = credentialSql(this.opts.credentialOf?.(tx));
    // One phase: the history rows wait for the commit's round trip (Branch.history), and the branch's open-branch row
    // is what it holds locked meanwhile, for the settle fence; two-phase: the rows go in now, and are what it holds.
    const rows: HistoryRows = { ops, at_us, who };
    if (onePhase) branch.history = rows;
    const history = onePhase ? `INSERT INTO ${OPEN_BRANCH_TABLE} (tx) VALUES ('${tx}')` : historyInsert(tx, rows, null);
    // One round trip. A failing statement stops the batch, so the error is the first failure's, as if sent one by one.
    // A fenced branch reads its node's fence row first, shared, and holds that lock until it ends (effects.ts xa.exec).
    const fenceRead = fence !== undefined ? [`SELECT epoch FROM ${FENCE_TABLE} WHERE node = '${node}' LOCK IN SHARE MODE`] : [];
    // One phase: no XA END, the commit's round trip ends the branch (and writes its rows inside it, stamped).
    const sql = [`XA START ${xid}`, ...fenceRead, ...updates, history, ...(onePhase ? [] : [`XA END ${xid}`])].join(";");
    const r = await pool.query<Array<{ affectedRows?: number }>>(c, sql);
    branch.execRunning = false;
    // Every statement ran: a one-phase branch is ACTIVE (also when a guard matched no row or the fence refused it).
    if (r.ok && onePhase) branch.active = true;
    if (!r.ok) {
      this.noteError(shard, r.error);
      if (c.dead) return this.lost(key, c, pool);
      if (xaErrorOf(r.error) === "DUPID") {
        // XA START refused: the xid belongs to another session, and this connection holds no branch.
        this.branches.delete(key);
        pool.release(c);
        return { ok: false, err: "DUPID" };
      }
      // The branch may still be ACTIVE (a statement failed before XA END): end it so that XA ROLLBACK can finish it.
      const end = await pool.query(c, `XA END ${xid}`);
      if (!end.ok && c.dead) this.lost(key, c, pool);
      // Interrupted by the deadlock detector's KILL QUERY (1317): the transaction is the victim of a cross-shard cycle.
      if (branch.victim && r.error.errno === ER_QUERY_INTERRUPTED) return { ok: false, err: "DEADLOCK_VICTIM" };
      return { ok: false, err: xaErrorOf(r.error) };
    }
    const results = r.value;
    if (fence !== undefined) {
      // The row's epoch, a BIGINT: a decimal string (bigNumberStrings), compared exactly.
      const rows = results[1] as unknown as Array<{ epoch: unknown }> | undefined;
      const held = rows?.[0]?.epoch;
      // No row (the table was made again since this process made it): refused, and made again before the next branch.
      if (held === undefined) this.fenceRows.delete(`${shard}|${node}`);
      if (held === undefined || BigInt(String(held)) > BigInt(fence)) return { ok: false, err: "FENCED" };
    }
    const first = 1 + fenceRead.length;
    for (let i = 0; i < ops.length; i++) {
      if (results[first + i]?.affectedRows !== 1) return { ok: false, err: "INSUFFICIENT_FUNDS" };
    }
    branch.executed = true;
    return { ok: true };
  }

  /**
   * Session `threadId` of `boot` was killed and seen gone: if it owned a
   * branch here, the branch's next statement knows at once that its owner
   * died, and need not make sure of it again.
   */
  private killed(shard: ShardId, boot: string, threadId: number): void {
    for (const [key, b] of this.branches) {
      if (b.conn === null || !key.endsWith(`|${shard}`) || b.conn.boot !== boot || b.conn.threadId !== threadId) continue;
      b.conn.dead = true;
      b.ownerGone = true;
    }
  }

  /** The owner connection died: the branch is addressed from fresh connections from now on. */
  private lost(key: string, c: PooledConnection, pool: ShardPool): XaResult {
    const b = this.branches.get(key);
    if (b !== undefined && b.conn === c) b.conn = null;
    pool.discard(c);
    return { ok: false, err: "UNAVAILABLE" };
  }

  /**
   * A statement of an existing branch: on its owner connection while that
   * lives, else on a fresh one. `finished` says whether the branch is over
   * after this result; then its owner connection goes back to the pool.
   * `ownerOnly`: the statement means something only on the owner (XA
   * PREPARE); once the owner died it is RMFAIL without being sent (what any
   * other connection would be answered). `onValue`: the owner's or fresh
   * connection's result, when ok. `activeSql`: what to send instead while a
   * one-phase exec left the branch ACTIVE on its owner (XA END first).
   */
  private async onBranch(
    tx: TxId,
    shard: ShardId,
    sql: string,
    finished: (r: XaResult) => boolean,
    { ownerOnly = false, onValue, activeSql }: { ownerOnly?: boolean; onValue?: (value: unknown) => void; activeSql?: string } = {},
  ): Promise<XaResult> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return { ok: false, err: "UNAVAILABLE" };
    const key = this.key(tx, shard);
    const b = this.branches.get(key);
    if (b !== undefined && b.conn !== null && !b.conn.dead) {
      const c = b.conn;
      const q = await pool.query(c, b.active && activeSql !== undefined ? activeSql : sql);
      if (!q.ok) this.noteError(shard, q.error);
      if (!q.ok && c.dead) return this.lost(key, c, pool);
      if (q.ok) onValue?.(q.value);
      const r: XaResult = q.ok ? { ok: true } : { ok: false, err: xaErrorOf(q.error) };
      if (finished(r)) {
        this.branches.delete(key);
        pool.release(c);
      }
      return r;
    }
    if (b !== undefined && b.conn !== null) {
      // Died while idle between statements (or killed: see kill).
      pool.discard(b.conn);
      b.conn = null;
    }
    if (ownerOnly && b !== undefined) return { ok: false, err: "RMFAIL" };
    const c = await this.acquire(shard, pool);
    if (c === null) return { ok: false, err: "UNAVAILABLE" };
    try {
      if (b !== undefined && !b.ownerGone) {
        if (!(await this.sessionGone(pool, c, b.threadId))) return { ok: false, err: "UNAVAILABLE" };
        b.ownerGone = true;
      }
      const q = await pool.query(c, sql);
      if (!q.ok) this.noteError(shard, q.error);
      if (q.ok) onValue?.(q.value);
      const r: XaResult = q.ok ? { ok: true } : { ok: false, err: xaErrorOf(q.error) };
      if (b !== undefined && finished(r)) this.branches.delete(key);
      return r;
    } finally {
      // XA COMMIT/ROLLBACK/PREPARE of a branch this session does not own never attaches the branch to it.
      pool.release(c);
    }
  }

  /** Makes sure the server dropped session `threadId` (the dead owner of a branch), within the statement timeout. */
  private async sessionGone(pool: ShardPool, c: PooledConnection, threadId: number): Promise<boolean> {
    if (!Number.isSafeInteger(threadId) || threadId <= 0) return false;
    const kill = await pool.query(c, `KILL CONNECTION ${threadId}`);
    // 1094: unknown thread id, i.e. already gone.
    if (!kill.ok && kill.error.errno !== 1094) return false;
    const deadline = performance.now() + pool.limits.statement_timeout_ms;
    while (performance.now() < deadline) {
      const r = await pool.query<Array<{ n: unknown }>>(c, `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ${threadId}`);
      if (!r.ok) return false;
      if (Number(r.value[0]?.n) === 0) return true;
      await new Promise((resolve) => setTimeout(resolve, SESSION_GONE_POLL_MS));
    }
    return false;
  }
}

/** fn's promise, or a rejected one if fn threw before returning it (as `then` would have made of the throw). */
function startNow<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (e) {
    return Promise.reject(e);
  }
}

function assertCents(op: Op, key: string): void {
  if (!Number.isSafeInteger(op.delta) || !Number.isSafeInteger(op.account) || op.account <= 0) {
    throw new Error(`xa.exec ${key}: op ${JSON.stringify(op)} is not (positive integer account, integer cents)`);
  }
}

/**
 * The accounts a branch may change: open ones, and the account that the transaction itself is opening
 * (runtime/banking.ts: its opening transfer credits it while it is 'opening'). The state is checked on the row,
 * under its lock, not only in a process's catalog: another coordinator node may have closed the account, or may be
 * opening it, since this one last looked. A row that does not qualify matches nothing, as an overdraft does, and
 * the branch answers INSUFFICIENT_FUNDS (the statement cannot tell them apart; the reason says "matched no row").
 */
export function openAccountSql(tx: TxId): string {
  return `(status = 'open' OR (status = 'opening' AND opening_tx = '${tx}'))`;
}
