/**
 * The floor: the least a correct two-phase commit of the same transfer
 * costs on these servers, with no HTTP and no coordinator. Per transfer:
 *
 *   1. on every shard of the transfer, in parallel, on a connection of its
 *      own: one round trip with XA START, the same guarded UPDATEs and
 *      history INSERT the server sends (runtime/adapters/xa-mysql.ts), XA END;
 *      then XA PREPARE;
 *   2. one etcd write of the COMMIT decision (a create-if-absent, as a
 *      decision must be: it is the one write that a presumed-abort resolver
 *      races with);
 *   3. answered here: that is where the server answers too (the decision is
 *      durable); then XA COMMIT on every branch, off the measured path, as the
 *      server does.
 *
 * Its branches use their own formatID so the coordinator's resolver never
 * touches them, and its transaction ids start with "fl-", so the audit checks
 * them like the server's.
 */
import { randomUUID } from "node:crypto";
import { Etcd3 } from "etcd3";
import mysql, { type Pool, type PoolConnection } from "mysql2/promise";
import type { ShardAddress } from "../adapters/mysql-pool.ts";
import type { Outcome, TransferTarget } from "./target.ts";
import { branchesOf, type Branch, type Transfer } from "./workload.ts";

/** "SC" + "FL" in ASCII: not the server's formatID (0x53435841). */
export const FLOOR_FORMAT_ID = 0x5343464c;
const ETCD_TIMEOUT_MS = 2_000;
/** MariaDB: lock wait timeout, deadlock victim. */
const CONFLICT_ERRNOS = new Set([1205, 1213]);

export interface FloorOptions {
  readonly shards: readonly ShardAddress[];
  readonly etcd: readonly string[];
  /** etcd key prefix of the decision records; removed by close(). */
  readonly prefix: string;
  /** Connections per shard: a closed loop of C clients needs about C plus the commits in flight. */
  readonly connectionsPerShard: number;
}

type Prepared = { ok: true; conn: PoolConnection } | { ok: false; reason: string };

export class FloorTarget implements TransferTarget {
  readonly name = "floor";
  private readonly pools = new Map<string, Pool>();
  private readonly etcd: Etcd3;
  /** Commits after the answer; close() waits for them. Bounded by the clients: each has at most one transfer committing. */
  private readonly committing = new Set<Promise<void>>();

  constructor(private readonly opts: FloorOptions) {
    for (const a of opts.shards) {
      this.pools.set(
        a.name,
        mysql.createPool({
          ...(a.socketPath !== undefined ? { socketPath: a.socketPath } : { host: a.host, port: a.port }),
          user: a.user,
          ...(a.password !== undefined ? { password: a.password } : {}),
          database: a.database,
          multipleStatements: true,
          supportBigNumbers: true,
          bigNumberStrings: true,
          connectionLimit: opts.connectionsPerShard,
        }),
      );
    }
    this.etcd = new Etcd3({
      hosts: [...opts.etcd],
      dialTimeout: ETCD_TIMEOUT_MS,
      defaultCallOptions: () => ({ deadline: Date.now() + ETCD_TIMEOUT_MS }),
    });
  }

  async transfer(t: Transfer): Promise<Outcome> {
    const tx = `fl-${randomUUID()}`;
    const branches = branchesOf(t);
    const voted = await Promise.all(branches.map((b) => this.execAndPrepare(tx, b)));
    const failed = voted.find((v): v is { ok: false; reason: string } => !v.ok);
    let reason = failed?.reason;
    if (reason === undefined) {
      const key = `${this.opts.prefix}tx/${tx}`;
      try {
        const r = await this.etcd.if(key, "Version", "==", 0).then(this.etcd.put(key).value("commit")).commit();
        if (!r.succeeded) reason = "log_exists";
      } catch {
        // No resolver reads these records: rolling back is safe even if the write landed.
        reason = "log_unavailable";
      }
    }
    const finish = reason === undefined ? "COMMIT" : "ROLLBACK";
    const done = Promise.all(
      voted.map(async (v, i) => {
        if (!v.ok) return;
        await this.finish(v.conn, `XA ${finish} ${xid(tx, branches[i]!.shard)}`);
      }),
    ).then(() => undefined);
    if (reason !== undefined) {
      await done;
      return { kind: "aborted", tx, reason };
    }
    this.committing.add(done);
    void done.then(() => this.committing.delete(done));
    return { kind: "committed", tx };
  }

  private async execAndPrepare(tx: string, b: Branch): Promise<Prepared> {
    const pool = this.pools.get(b.shard);
    if (pool === undefined) throw new Error(`floor: no shard ${b.shard}`);
    const id = xid(tx, b.shard);
    const at_us = Date.now() * 1000;
    const updates = b.ops.map((op) => `UPDATE accounts SET balance = balance + ${op.delta} WHERE id = ${op.account} AND balance + ${op.delta} >= 0`);
    const history = `INSERT INTO history (xid, account_id, delta, at_us) VALUES ${b.ops.map((op) => `('${tx}',${op.account},${op.delta},${at_us})`).join(",")}`;
    let conn: PoolConnection;
    try {
      conn = await pool.getConnection();
    } catch {
      return { ok: false, reason: "shard_unavailable" };
    }
    try {
      const [results] = await conn.query([`XA START ${id}`, ...updates, history, `XA END ${id}`].join(";"));
      const list = results as Array<{ affectedRows?: number }>;
      if (b.ops.some((_, i) => list[1 + i]?.affectedRows !== 1)) {
        await this.finish(conn, `XA ROLLBACK ${id}`);
        return { ok: false, reason: "insufficient_funds" };
      }
      await conn.query(`XA PREPARE ${id}`);
      return { ok: true, conn };
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      // The branch may be ACTIVE (a statement failed mid-batch) or IDLE; end it, then roll it back, ignoring "wrong state".
      await conn.query(`XA END ${id}`).catch(() => undefined);
      await this.finish(conn, `XA ROLLBACK ${id}`);
      return { ok: false, reason: errno !== undefined && CONFLICT_ERRNOS.has(errno) ? "conflict" : "shard_error" };
    }
  }

  /** The branch's last statement: its connection goes back to the pool, or is dropped if the statement failed (the server then rolls back what is not prepared). */
  private async finish(conn: PoolConnection, sql: string): Promise<void> {
    try {
      await conn.query(sql);
      conn.release();
    } catch {
      conn.destroy();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.committing]);
    try {
      await this.etcd.delete().prefix(this.opts.prefix);
    } finally {
      this.etcd.close();
      await Promise.all([...this.pools.values()].map((p) => p.end()));
    }
  }
}

function xid(tx: string, shard: string): string {
  return `'${tx}','${shard}',${FLOOR_FORMAT_ID}`;
}
