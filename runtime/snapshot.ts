/**
 * Snapshot reads (docs/operations.md, "Snapshot reads"): balances as of a
 * commit timestamp, all or nothing of every transfer, on every shard.
 *
 *   GET /snapshot?at=<ts>[&accounts=shard:id,...]
 *   GET /accounts/:shard/:id?at=<ts>
 *
 * `at` is a decimal HLC timestamp (spec/time/hlc.ts); absent: now (the HLC
 * issues one). The read first observes `at` (beyond hlc_max_skew_ms ahead:
 * 400), then waits, at most snapshot_wait_ms, until safe time reaches it
 * (spec/time/safe.ts `readable`: the resolver has scanned once since boot
 * and no commit timestamp <= at is pending: every transaction that has or
 * can get one has all its history rows stamped); past the bound 504 (or 503
 * before the first scan). Then each shard is read in one consistent
 * snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT, REPEATABLE READ):
 *
 *   balance at ts = balance + pending credits
 *                   - sum(history.delta where commit_ts IS NULL or commit_ts > ts)
 *
 * which is the seeded balance plus every delta stamped <= ts (the balance and
 * the pending credits hold every visible history row's delta; a row not yet
 * stamped belongs to a transaction whose timestamp is > ts once the wait is
 * over). Exact integer cents in BigInt, as decimal strings.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ShardId } from "../spec/kernel/effects.ts";
import { formatTs, parseTs } from "../spec/time/hlc.ts";
import { readable, safeTime } from "../spec/time/safe.ts";
import { ClockSkewError } from "./hlc.ts";
import type { CommitTimestamps } from "./timestamps.ts";
import type { QueryOutcome, ShardPool } from "./adapters/mysql-pool.ts";
import { formatCents } from "./transfer.ts";

/** The header a client sends a timestamp it has seen in (and a committed transfer's answer carries its commit_ts in). */
export const TIMESTAMP_HEADER = "x-speccommit-timestamp";

/** At most this many accounts named in one read. */
export const SNAPSHOT_ACCOUNTS_MAX = 1_000;

/** A shard's reads: one consistent snapshot, the statements in order, their results. */
export type SnapshotQuery = (shard: ShardId, statements: readonly string[]) => Promise<QueryOutcome<unknown[]>>;

export class SnapshotRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface SnapshotResult {
  readonly at: bigint;
  readonly waited_ms: number;
  /** Per shard: account id -> cents at `at` (only the named accounts, when some were named). */
  readonly balances: ReadonlyMap<ShardId, ReadonlyMap<number, bigint>>;
}

export interface SnapshotOptions {
  readonly wait_ms: number;
  /** Test and benchmark only: serve without waiting for safe time (the `read-no-wait` mutant of spec/time/model.ts). */
  readonly noWait?: boolean;
  /**
   * The other coordinator nodes sharing the shards (runtime/failover.ts), null while not known yet. Safe time is
   * this process's: it knows the commit timestamps its own coordinators and resolvers chose, not those another
   * node may still choose or is still stamping, so a snapshot is served only while this node is the only member.
   */
  readonly otherNodes?: () => readonly string[] | null;
}

/** How often a snapshot waiting for the membership to be read looks again (bounded by wait_ms). */
const MEMBERSHIP_POLL_MS = 20;

export class SnapshotReads {
  constructor(
    private readonly ts: CommitTimestamps,
    private readonly shards: readonly ShardId[],
    private readonly query: SnapshotQuery,
    private readonly opts: SnapshotOptions,
  ) {}

  /** Observes `at` (or issues now) and waits until safe time reaches it; throws SnapshotRefused (400, 503, 504). */
  async waitSafe(at: bigint | null): Promise<{ at: bigint; waited_ms: number }> {
    const t0 = performance.now();
    if (this.opts.otherNodes !== undefined) {
      let others = this.opts.otherNodes();
      while (others === null && performance.now() - t0 < this.opts.wait_ms) {
        await new Promise((res) => setTimeout(res, MEMBERSHIP_POLL_MS));
        others = this.opts.otherNodes();
      }
      if (others === null) throw new SnapshotRefused(503, "no snapshot yet: this node has not read the cluster's membership from etcd");
      if (others.length > 0) {
        throw new SnapshotRefused(
          501,
          `snapshot reads are served only when one coordinator node uses the shards; this cluster also has ${others.join(", ")} (safe time across nodes is not built: docs/operations.md, "Snapshot reads")`,
        );
      }
    }
    let target: bigint;
    if (at === null) target = this.ts.clock.now();
    else {
      try {
        this.ts.clock.observe(at);
      } catch (e) {
        if (e instanceof ClockSkewError) throw new SnapshotRefused(400, e.message);
        throw e;
      }
      target = at;
    }
    const deadline = t0 + this.opts.wait_ms;
    while (this.opts.noWait !== true && !readable(target, this.ts.view())) {
      const left = deadline - performance.now();
      if (left <= 0) {
        const view = this.ts.view();
        const safe = safeTime(view);
        if (safe === null) throw new SnapshotRefused(503, `no snapshot yet: the resolver has not completed a scan since this server started (waited ${this.opts.wait_ms} ms)`);
        throw new SnapshotRefused(
          504,
          `safe time ${formatTs(safe)} did not reach ${formatTs(target)} within snapshot_wait_ms (${this.opts.wait_ms} ms): ${this.ts.pendingCount} commit timestamps pending`,
        );
      }
      await this.ts.changed(Math.min(left, 5));
    }
    return { at: target, waited_ms: performance.now() - t0 };
  }

  /** The balances at `at` (after waitSafe) of the named accounts, or of every account of every shard. */
  async read(at: bigint | null, accounts?: readonly { shard: ShardId; id: number }[]): Promise<SnapshotResult> {
    const w = await this.waitSafe(at);
    const byShard = new Map<ShardId, number[]>();
    for (const a of accounts ?? []) byShard.set(a.shard, [...(byShard.get(a.shard) ?? []), a.id]);
    const shards = accounts === undefined ? this.shards : [...byShard.keys()];
    const balances = new Map<ShardId, Map<number, bigint>>();
    await Promise.all(
      shards.map(async (shard) => {
        const r = await this.query(shard, snapshotStatements(w.at, byShard.get(shard)));
        if (!r.ok) throw new SnapshotRefused(503, `${shard} did not answer the snapshot read: ${r.error.message}`);
        const rows = r.value as Array<{ id: unknown; cents: unknown }>;
        balances.set(shard, new Map(rows.map((x) => [Number(x.id), BigInt(String(x.cents))])));
      }),
    );
    return { at: w.at, waited_ms: w.waited_ms, balances };
  }
}

/** The read of one shard at `at` (after the wait), for some accounts or all. */
export function snapshotStatements(at: bigint, ids?: readonly number[]): string[] {
  const where = ids === undefined ? "" : ` WHERE a.id IN (${ids.map((i) => String(Math.trunc(i))).join(",")})`;
  return [
    `SELECT CAST(a.id AS CHAR) AS id, CAST(a.balance + COALESCE(p.cents, 0) - COALESCE(h.later, 0) AS CHAR) AS cents FROM accounts a ` +
      `LEFT JOIN speculative_pending p ON p.account_id = a.id ` +
      `LEFT JOIN (SELECT account_id, SUM(delta) AS later FROM history WHERE commit_ts IS NULL OR commit_ts > ${at.toString()} GROUP BY account_id) h ON h.account_id = a.id` +
      `${where} ORDER BY a.id`,
  ];
}

/** Parses `shard:id,shard:id`; throws SnapshotRefused(400). */
export function parseAccounts(text: string, shards: readonly ShardId[]): { shard: ShardId; id: number }[] {
  const out: { shard: ShardId; id: number }[] = [];
  for (const part of text.split(",")) {
    const i = part.lastIndexOf(":");
    const shard = part.slice(0, i);
    const idText = part.slice(i + 1);
    if (i <= 0 || !shards.includes(shard)) throw new SnapshotRefused(400, `accounts: ${JSON.stringify(part)} does not name a shard (shards: ${shards.join(", ")}) and an account id as shard:id`);
    if (!/^\d{1,16}$/.test(idText) || Number(idText) > Number.MAX_SAFE_INTEGER) throw new SnapshotRefused(400, `accounts: account id ${JSON.stringify(idText)} is not a positive integer`);
    out.push({ shard, id: Number(idText) });
  }
  if (out.length > SNAPSHOT_ACCOUNTS_MAX) throw new SnapshotRefused(400, `accounts: at most ${SNAPSHOT_ACCOUNTS_MAX} accounts in one read (got ${out.length})`);
  return out;
}

/** Parses ?at= (absent or empty: null, now); throws SnapshotRefused(400). */
export function parseAt(text: string | null): bigint | null {
  if (text === null || text === "") return null;
  const at = parseTs(text);
  if (at === null) throw new SnapshotRefused(400, `at ${JSON.stringify(text)} is not a timestamp: a decimal integer below 2^63 (physical_ms * 65536 + logical), as commit_ts gives`);
  return at;
}

/** Observes a client's X-Speccommit-Timestamp, if it sent one; throws SnapshotRefused(400) when malformed or beyond the skew bound. */
export function observeClientTimestamp(req: IncomingMessage, ts: CommitTimestamps): void {
  const h = req.headers[TIMESTAMP_HEADER];
  if (h === undefined) return;
  const v = parseTs(Array.isArray(h) ? (h[0] ?? "") : h);
  if (v === null) throw new SnapshotRefused(400, `${TIMESTAMP_HEADER}: not a timestamp (a decimal integer below 2^63)`);
  try {
    ts.clock.observe(v);
  } catch (e) {
    if (e instanceof ClockSkewError) throw new SnapshotRefused(400, `${TIMESTAMP_HEADER}: ${e.message}`);
    throw e;
  }
}

type Send = (res: ServerResponse, route: string, status: number, body: unknown, headers?: Record<string, string>) => void;

/**
 * The HTTP hook (runtime/server.ts): answers GET /snapshot and GET /accounts/:shard/:id?at=; false when the request
 * is neither (the server's own routes answer it).
 */
export async function handleSnapshot(reads: SnapshotReads, ts: CommitTimestamps, shards: readonly ShardId[], req: IncomingMessage, res: ServerResponse, url: URL, send: Send): Promise<boolean> {
  const account = /^\/accounts\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  const isSnapshot = url.pathname === "/snapshot";
  if (!isSnapshot && !(account !== null && url.searchParams.has("at"))) return false;
  const route = isSnapshot ? "/snapshot" : "/accounts/:shard/:id?at";
  if (req.method !== "GET") {
    send(res, route, 405, { error: `use GET ${url.pathname}` }, { Allow: "GET" });
    return true;
  }
  try {
    observeClientTimestamp(req, ts);
    const at = parseAt(url.searchParams.get("at"));
    const named = account !== null ? parseAccounts(`${decodeURIComponent(account[1]!)}:${account[2]!}`, shards) : url.searchParams.has("accounts") ? parseAccounts(url.searchParams.get("accounts")!, shards) : undefined;
    const r = await reads.read(at, named);
    const head = { at: formatTs(r.at), waited_ms: Math.round(r.waited_ms * 1000) / 1000 };
    if (named !== undefined) {
      const rows = named.map((a) => {
        const cents = r.balances.get(a.shard)?.get(a.id);
        return cents === undefined ? { shard_id: a.shard, account_id: a.id, found: false } : { shard_id: a.shard, account_id: a.id, balance_cents: cents.toString(), balance: formatCents(cents) };
      });
      if (account !== null) {
        const row = rows[0]!;
        if (!("balance_cents" in row)) send(res, route, 404, { error: `no account ${row.account_id} on ${row.shard_id}` });
        else send(res, route, 200, { ...row, ...head });
        return true;
      }
      send(res, route, 200, { ...head, accounts: rows });
      return true;
    }
    let total = 0n;
    const perShard: Record<string, { total_cents: string; accounts: number }> = {};
    for (const [shard, m] of r.balances) {
      let sum = 0n;
      for (const c of m.values()) sum += c;
      total += sum;
      perShard[shard] = { total_cents: sum.toString(), accounts: m.size };
    }
    send(res, route, 200, { ...head, total_cents: total.toString(), total: formatCents(total), shards: perShard });
  } catch (e) {
    if (!(e instanceof SnapshotRefused)) throw e;
    send(res, route, e.status, { error: e.message }, e.status === 503 || e.status === 504 ? { "Retry-After": "1" } : {});
  }
  return true;
}

/** The snapshot query over the shards' pools: one connection, one consistent snapshot, read only. */
export function mysqlSnapshotQuery(pools: ReadonlyMap<ShardId, ShardPool>): SnapshotQuery {
  return async (shard, statements) => {
    const pool = pools.get(shard);
    if (pool === undefined) return { ok: false, error: { errno: undefined, code: "NO_SHARD", fatal: false, message: `no shard ${shard}` } };
    const c = await pool.acquire();
    if (c === null) return { ok: false, error: { errno: undefined, code: "POOL_UNAVAILABLE", fatal: true, message: `no connection to ${shard}` } };
    const sql = ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", ...statements, "COMMIT"].join(";");
    const r = await pool.query<unknown[]>(c, sql);
    if (!r.ok) {
      // The batch stopped at its first error, maybe with the transaction open: the connection does not go back.
      pool.discard(c);
      return r;
    }
    pool.release(c);
    return { ok: true, value: r.value[2] as unknown[] };
  };
}
