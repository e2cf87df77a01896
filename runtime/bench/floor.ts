/**
 * The floor: the least a correct commit of the same transfer costs on
 * these servers, with the same client libraries and no HTTP and no
 * coordinator. Per transfer with two branches or more (2PC, presumed abort):
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
 * A transfer with one branch needs no vote and no decision record, and the
 * server's 2PC role does not make them (spec/protocols/twopc/coordinator.ts):
 * the same round trip, then XA COMMIT ... ONE PHASE, answered once it is done.
 *
 * Its branches use their own formatID so the coordinator's resolver never
 * touches them, and its transaction ids start with "fl-", so the audit checks
 * them like the server's.
 */
import { randomUUID } from "node:crypto";
import type { Etcd3 } from "etcd3";
import mysql, { type Pool, type PoolConnection } from "mysql2/promise";
import type { ShardAddress } from "../adapters/mysql-pool.ts";
import { etcdClient, type EtcdTls } from "../adapters/txlog-etcd.ts";
import type { Outcome, PhaseTotals, TransferTarget } from "./target.ts";
import { branchesOf, type Branch, type Transfer } from "./workload.ts";

/** "SC" + "FL" in ASCII: not the server's formatID (0x53435841). */
export const FLOOR_FORMAT_ID = 0x5343464c;
const ETCD_TIMEOUT_MS = 2_000;
/** MariaDB: lock wait timeout, deadlock victim, XA_RBDEADLOCK. */
const CONFLICT_ERRNOS = new Set([1205, 1213, 1614]);

export interface FloorOptions {
  readonly shards: readonly ShardAddress[];
  readonly etcd: readonly string[];
  /** With https:// etcd URLs (a TLS cluster). */
  readonly etcdTls?: EtcdTls;
  /** etcd key prefix of the decision records; removed by close(). */
  readonly prefix: string;
  /** Connections per shard: a closed loop of C clients needs about C plus the commits in flight. */
  readonly connectionsPerShard: number;
}

type Prepared = { ok: true; conn: PoolConnection } | { ok: false; reason: string };

/** When each step of one branch answered (performance.now()). */
interface BranchTimes {
  exec_done: number;
  prepare_sent: number;
  prepare_done: number;
}

export class FloorTarget implements TransferTarget {
  readonly name = "floor";
  private readonly pools = new Map<string, Pool>();
  private readonly etcd: Etcd3;
  /** Commits after the answer; close() waits for them. Bounded by the clients: each has at most one transfer committing. */
  private readonly committing = new Set<Promise<void>>();
  /** The same phases the server measures (runtime/engine.ts): from the first statement of a kind sent to the last answer. */
  private readonly totals: PhaseTotals = {};

  constructor(private readonly opts: FloorOptions) {
    for (const a of opts.shards) {
      this.pools.set(
        a.name,
        mysql.createPool({
          ...(a.socketPath !== undefined && a.ssl === undefined ? { socketPath: a.socketPath } : { host: a.host, port: a.port }),
          ...(a.ssl !== undefined ? { ssl: { ...a.ssl } } : {}),
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
    // The server's own client settings (no client-side retry or circuit breaker), so the floor's etcd call costs what the server's does.
    this.etcd = etcdClient({
      hosts: opts.etcd,
      prefix: opts.prefix,
      call_timeout_ms: ETCD_TIMEOUT_MS,
      dial_timeout_ms: ETCD_TIMEOUT_MS,
      ...(opts.etcdTls !== undefined ? { tls: opts.etcdTls } : {}),
    });
  }

  async phaseTotals(): Promise<PhaseTotals> {
    return structuredClone(this.totals);
  }

  private note(phase: string, ms: number): void {
    const e = (this.totals[phase] ??= { sum_s: 0, count: 0 });
    e.sum_s += ms / 1000;
    e.count++;
  }

  async transfer(t: Transfer): Promise<Outcome> {
    const t0 = performance.now();
    const tx = `fl-${randomUUID()}`;
    const branches = branchesOf(t);
    if (branches.length === 1) return this.onePhase(tx, branches[0]!, t0);
    const times: BranchTimes[] = branches.map(() => ({ exec_done: NaN, prepare_done: NaN, prepare_sent: NaN }));
    // Prepared branches not finished yet, by index. A failed vote rolls the prepared ones back at once instead of
    // waiting for the other votes: their row locks would otherwise stay held while a slow branch sits out a lock wait.
    const open = new Map<number, PoolConnection>();
    const ending: Array<Promise<void>> = [];
    const end = (i: number, what: "COMMIT" | "ROLLBACK") => {
      const conn = open.get(i);
      if (conn === undefined) return;
      open.delete(i);
      ending.push(this.finish(conn, `XA ${what} ${xid(tx, branches[i]!.shard)}`));
    };
    let reason: string | undefined;
    await Promise.all(
      branches.map(async (b, i) => {
        const v = await this.execAndPrepare(tx, b, times[i]!);
        if (v.ok) open.set(i, v.conn);
        else reason ??= v.reason;
        if (reason !== undefined) for (const j of [...open.keys()]) end(j, "ROLLBACK");
      }),
    );
    if (reason === undefined) {
      this.note("exec", Math.max(...times.map((x) => x.exec_done)) - t0);
      this.note("prepare", Math.max(...times.map((x) => x.prepare_done)) - Math.min(...times.map((x) => x.prepare_sent)));
      const key = `${this.opts.prefix}tx/${tx}`;
      const l0 = performance.now();
      try {
        const r = await this.etcd.if(key, "Version", "==", 0).then(this.etcd.put(key).value("commit")).commit();
        if (!r.succeeded) reason = "log_exists";
      } catch {
        // No resolver reads these records: rolling back is safe even if the write landed.
        reason = "log_unavailable";
      }
      this.note("log", performance.now() - l0);
    }
    const c0 = performance.now();
    for (const i of [...open.keys()]) end(i, reason === undefined ? "COMMIT" : "ROLLBACK");
    const done = Promise.all(ending).then(() => undefined);
    if (reason !== undefined) {
      await done;
      return { kind: "aborted", tx, reason };
    }
    this.note("in_server", performance.now() - t0);
    const committed = done.then(() => this.note("commit", performance.now() - c0));
    this.committing.add(committed);
    void committed.then(() => this.committing.delete(committed));
    return { kind: "committed", tx };
  }

  /** One branch alone: exec, then XA COMMIT ONE PHASE, which is the decision. */
  private async onePhase(tx: string, b: Branch, t0: number): Promise<Outcome> {
    const times: BranchTimes = { exec_done: NaN, prepare_sent: NaN, prepare_done: NaN };
    const v = await this.exec(tx, b, times);
    if (!v.ok) return { kind: "aborted", tx, reason: v.reason };
    this.note("exec", times.exec_done - t0);
    const id = xid(tx, b.shard);
    try {
      await v.conn.query(`XA COMMIT ${id} ONE PHASE`);
    } catch (e) {
      // A lost connection leaves the outcome unknown (the audit then checks all-or-nothing); otherwise the branch is still IDLE.
      if ((e as { fatal?: boolean }).fatal === true) {
        v.conn.destroy();
        return { kind: "unknown", reason: "one-phase commit lost" };
      }
      await this.finish(v.conn, `XA ROLLBACK ${id}`);
      return { kind: "aborted", tx, reason: reasonOf(e) };
    }
    v.conn.release();
    this.note("commit", performance.now() - times.exec_done);
    this.note("in_server", performance.now() - t0);
    return { kind: "committed", tx };
  }

  private async execAndPrepare(tx: string, b: Branch, times: BranchTimes): Promise<Prepared> {
    const v = await this.exec(tx, b, times);
    if (!v.ok) return v;
    const id = xid(tx, b.shard);
    try {
      times.prepare_sent = performance.now();
      await v.conn.query(`XA PREPARE ${id}`);
      times.prepare_done = performance.now();
      return v;
    } catch (e) {
      await this.finish(v.conn, `XA ROLLBACK ${id}`);
      return { ok: false, reason: reasonOf(e) };
    }
  }

  /** XA START, the updates and the history insert, XA END: one round trip. On failure the branch is rolled back and its connection finished. */
  private async exec(tx: string, b: Branch, times: BranchTimes): Promise<Prepared> {
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
      times.exec_done = performance.now();
      const list = results as Array<{ affectedRows?: number }>;
      if (b.ops.some((_, i) => list[1 + i]?.affectedRows !== 1)) {
        await this.finish(conn, `XA ROLLBACK ${id}`);
        return { ok: false, reason: "insufficient_funds" };
      }
      return { ok: true, conn };
    } catch (e) {
      // The branch may be ACTIVE (a statement failed mid-batch) or IDLE; end it, then roll it back, ignoring "wrong state".
      await conn.query(`XA END ${id}`).catch(() => undefined);
      await this.finish(conn, `XA ROLLBACK ${id}`);
      return { ok: false, reason: reasonOf(e) };
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

function reasonOf(e: unknown): string {
  const errno = (e as { errno?: number }).errno;
  return errno !== undefined && CONFLICT_ERRNOS.has(errno) ? "conflict" : "shard_error";
}

function xid(tx: string, shard: string): string {
  return `'${tx}','${shard}',${FLOOR_FORMAT_ID}`;
}
