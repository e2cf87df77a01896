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
import { holdingBack } from "../spec/time/cluster.ts";
import type { ExchangeState } from "./safe-exchange.ts";
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
    /** A shard did not answer (after the wait). */
    readonly shard = false,
  ) {
    super(message);
  }
  /** Counted in the metrics already. */
  counted = false;
}

export interface SnapshotResult {
  readonly at: bigint;
  readonly waited_ms: number;
  /** Per shard: account id -> cents at `at`, of the named accounts (empty when none were named: see `totals`). */
  readonly balances: ReadonlyMap<ShardId, ReadonlyMap<number, bigint>>;
  /** When no account was named: per shard, the total at `at` and the number of accounts, summed by the shard. */
  readonly totals?: ReadonlyMap<ShardId, { readonly cents: bigint; readonly accounts: number }>;
}

export interface SnapshotOptions {
  readonly wait_ms: number;
  /** Test and benchmark only: serve without waiting for safe time (the `read-no-wait` mutant of spec/time/model.ts). */
  readonly noWait?: boolean;
  /**
   * Safe time across the coordinator nodes (runtime/safe-exchange.ts, spec/time/cluster.ts); absent: this process's
   * safe time alone (in-memory tests of one process).
   */
  readonly cluster?: ClusterSafeSource;
  /** Called with each read's outcome and wait (metrics). */
  readonly observe?: (outcome: SnapshotOutcome, waited_s: number) => void;
}

/** What the exchange gives a read: the last bound, and one computed after the call. */
export interface ClusterSafeSource {
  latest(): ExchangeState | null;
  fresh(): Promise<ExchangeState>;
}

/** A read's outcome, as counted in speccommit_snapshot_reads_total{outcome}. */
export type SnapshotOutcome = "served" | "bad_request" | "unavailable" | "timeout" | "shard_error";

const outcomeOf = (status: number): SnapshotOutcome => (status === 400 ? "bad_request" : status === 504 ? "timeout" : "unavailable");

/** A read held back by another node's safe time asks for a new exchange at most this often. */
const OTHERS_PAUSE_MS = 10;

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
    const cluster = this.opts.cluster;
    for (;;) {
      if (this.opts.noWait === true) break;
      const localOk = readable(target, this.ts.view());
      const c = cluster?.latest() ?? null;
      const clusterOk = cluster === undefined || (c !== null && c.safe !== null && c.safe >= target);
      if (localOk && clusterOk) break;
      const left = deadline - performance.now();
      if (left <= 0) throw this.refusal(target, localOk, c);
      if (!localOk || cluster === undefined) await this.ts.changed(Math.min(left, 5));
      else {
        // Held back by another node (this one's part reached): its next publication comes on its own timer; a short
        // pause before the next exchange keeps a waiting read from writing to etcd back to back.
        if (c !== null && c.error === null && c.own !== null && c.own >= target) await new Promise((res) => setTimeout(res, Math.min(left, OTHERS_PAUSE_MS)));
        await Promise.race([cluster.fresh().catch(() => null), new Promise((res) => setTimeout(res, Math.max(0, deadline - performance.now())))]);
      }
    }
    // No commit may land at or below it from now on (runtime/timestamps.ts: a record that lands late is re-stamped above).
    this.ts.release(target);
    return { at: target, waited_ms: performance.now() - t0 };
  }

  /** Why a read waited in vain: 503 when a node (or this one) cannot say, 504 when safe time is merely behind. */
  private refusal(target: bigint, localOk: boolean, c: ExchangeState | null): SnapshotRefused {
    const view = this.ts.view();
    const safe = safeTime(view);
    const waited = `waited ${this.opts.wait_ms} ms`;
    if (safe === null) return new SnapshotRefused(503, `no snapshot yet: the resolver has not completed a scan since this server started (${waited})`);
    if (!localOk) {
      return new SnapshotRefused(504, `safe time ${formatTs(safe)} did not reach ${formatTs(target)} within snapshot_wait_ms (${this.opts.wait_ms} ms): ${this.ts.pendingCount} commit timestamps pending`);
    }
    if (c === null) return new SnapshotRefused(503, `no snapshot yet: this node has not exchanged safe times with the other nodes through etcd (${waited})`);
    if (c.error !== null) return new SnapshotRefused(503, `no snapshot: ${c.error} (${waited})`);
    const back = holdingBack(c, target);
    const why = back.filter((b) => b.state !== "alive" || b.safe === null);
    if (why.length > 0) {
      const text = why.map((b) =>
        b.state === "not_published"
          ? `node ${b.node} is alive and has not published its safe time since it started`
          : b.state === "dead_never_published"
            ? `node ${b.node} is dead (its lease expired), not taken over yet, and never published a safe time`
            : b.state === "dead"
              ? `node ${b.node} is dead (its lease expired) and not taken over yet: its last published safe time ${formatTs(b.safe as bigint)} holds every snapshot back until a survivor owns it`
              : `node ${b.node} gives no safe time`,
      );
      return new SnapshotRefused(503, `no snapshot at ${formatTs(target)}: ${text.join("; ")} (${waited})`);
    }
    const slow = back.map((b) => `${b.node} at ${formatTs(b.safe as bigint)}`).join(", ");
    return new SnapshotRefused(504, `safe time ${c.safe === null ? "none" : formatTs(c.safe)} did not reach ${formatTs(target)} within snapshot_wait_ms (${this.opts.wait_ms} ms): held back by ${slow}`);
  }

  /** The balances at `at` (after waitSafe) of the named accounts, or of every account of every shard. */
  async read(at: bigint | null, accounts?: readonly { shard: ShardId; id: number }[]): Promise<SnapshotResult> {
    const t0 = performance.now();
    try {
      const r = await this.read0(at, accounts);
      this.opts.observe?.("served", r.waited_ms / 1000);
      return r;
    } catch (e) {
      if (e instanceof SnapshotRefused) this.refused(e, (performance.now() - t0) / 1000);
      throw e;
    }
  }

  /** Counts a refusal once (metrics). */
  refused(e: SnapshotRefused, waited_s = 0): void {
    if (e.counted) return;
    e.counted = true;
    this.opts.observe?.(e.shard ? "shard_error" : outcomeOf(e.status), waited_s);
  }

  private async read0(at: bigint | null, accounts?: readonly { shard: ShardId; id: number }[]): Promise<SnapshotResult> {
    const w = await this.waitSafe(at);
    const byShard = new Map<ShardId, number[]>();
    for (const a of accounts ?? []) byShard.set(a.shard, [...(byShard.get(a.shard) ?? []), a.id]);
    const shards = accounts === undefined ? this.shards : [...byShard.keys()];
    const balances = new Map<ShardId, Map<number, bigint>>();
    const totals = new Map<ShardId, { cents: bigint; accounts: number }>();
    await Promise.all(
      shards.map(async (shard) => {
        // A total is summed by the shard (one row), never by holding every account here: memory stays bounded
        // whatever the number of accounts.
        const r = await this.query(shard, accounts === undefined ? totalStatements(w.at) : snapshotStatements(w.at, byShard.get(shard)));
        if (!r.ok) throw new SnapshotRefused(503, `${shard} did not answer the snapshot read: ${r.error.message}`, true);
        if (accounts === undefined) {
          const row = (r.value as Array<{ cents: unknown; n: unknown }>)[0];
          totals.set(shard, { cents: BigInt(String(row?.cents ?? "0")), accounts: Number(row?.n ?? 0) });
          return;
        }
        const rows = r.value as Array<{ id: unknown; cents: unknown }>;
        balances.set(shard, new Map(rows.map((x) => [Number(x.id), BigInt(String(x.cents))])));
      }),
    );
    return { at: w.at, waited_ms: w.waited_ms, balances, ...(accounts === undefined ? { totals } : {}) };
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

/**
 * The total of one shard at `at`: the same sum as snapshotStatements' rows added up (balance + pending credits -
 * history deltas later than `at` or unstamped, over every account), computed by the shard in one row; SUM over
 * BIGINT is an exact DECIMAL in MariaDB, read back as text.
 */
export function totalStatements(at: bigint): string[] {
  return [
    `SELECT CAST((SELECT COALESCE(SUM(balance), 0) FROM accounts) + (SELECT COALESCE(SUM(p.cents), 0) FROM speculative_pending p JOIN accounts a ON a.id = p.account_id) ` +
      `- (SELECT COALESCE(SUM(h.delta), 0) FROM history h JOIN accounts a ON a.id = h.account_id WHERE h.commit_ts IS NULL OR h.commit_ts > ${at.toString()}) AS CHAR) AS cents, ` +
      `CAST((SELECT COUNT(*) FROM accounts) AS CHAR) AS n`,
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
    for (const [shard, t] of r.totals ?? []) {
      total += t.cents;
      perShard[shard] = { total_cents: t.cents.toString(), accounts: t.accounts };
    }
    send(res, route, 200, { ...head, total_cents: total.toString(), total: formatCents(total), shards: perShard });
  } catch (e) {
    if (!(e instanceof SnapshotRefused)) throw e;
    reads.refused(e);
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
