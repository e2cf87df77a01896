/**
 * Reading the shards' history rows (runtime/cluster/schema.ts `history`):
 * one row per account a committed branch changed, with the transaction id
 * (the xid column), the delta in integer cents, the row's insertion order on
 * its shard (`seq`) and, once the hlc branch's column is there, the
 * transaction's commit timestamp (`commit_ts`, BIGINT UNSIGNED: HLC =
 * physical_ms * 65536 + logical, carried as a decimal string).
 *
 * What a page shows: the history rows visible to a plain (non-locking) read,
 * newest first by `seq`. For 2PC and parallel commit these are committed
 * branches only (an XA branch's rows are visible once it commits). The
 * speculative path inserts its rows when its branch applies, before the
 * transaction is final, and deletes them if it is compensated: such a row is
 * shown with `final: false` while its undo row is still in state 'undo'.
 *
 * Pagination: the cursor is the `seq` of the last row of the page; the next
 * page is the rows with a smaller `seq`. A row inserted later has a larger
 * `seq`, so a page never repeats or skips a row that existed when the first
 * page was read (a compensated speculative row disappears).
 */
import type { ShardId } from "../spec/kernel/effects.ts";
import type { QueryOutcome } from "./adapters/mysql-pool.ts";
import type { CommittedTx, History } from "../conformance/serializable.ts";

/** What the reader needs of a shard: a read (the server's ShardPool, or a test's connection). */
export interface ShardReads {
  run<T>(sql: string): Promise<QueryOutcome<T>>;
}
import { toCents, DATABASE } from "./cluster/schema.ts";

export const PAGE_LIMIT_DEFAULT = 50;
export const PAGE_LIMIT_MAX = 500;

/** A transaction id as the xid column holds it (a UUID from newTxId, or a test's); anything else is never put into SQL. */
const TX_ID_TEXT = /^[A-Za-z0-9_.:-]{1,160}$/;

export class HistoryUnavailable extends Error {}

export interface HistoryRow {
  readonly tx: string;
  readonly shard_id: ShardId;
  readonly account_id: number;
  readonly delta_cents: string;
  /** The shard's insertion order (the page cursor; the per-account conflict order). */
  readonly seq: string;
  /** HLC commit timestamp as a decimal string; null until the shards have the column (hlc branch) or for rows written before. */
  readonly commit_ts: string | null;
  /** When the branch ran, by the coordinator's clock (ISO 8601); not an order. */
  readonly at: string;
  readonly credential: string | null;
  /** false: a speculative branch whose transaction is not final yet (its debit may still be compensated). */
  readonly final: boolean;
}

/** Parses a page cursor (the seq of the previous page's last row); null: first page. Throws RangeError on garbage. */
export function parseCursor(text: string | null): bigint | null {
  if (text === null || text === "") return null;
  if (!/^\d{1,20}$/.test(text)) throw new RangeError(`cursor ${JSON.stringify(text)} is not one this server gave (a decimal number)`);
  return BigInt(text);
}

/** Parses `limit`: 1..PAGE_LIMIT_MAX, default PAGE_LIMIT_DEFAULT. Throws RangeError. */
export function parseLimit(text: string | null): number {
  if (text === null || text === "") return PAGE_LIMIT_DEFAULT;
  if (!/^\d{1,4}$/.test(text) || Number(text) < 1 || Number(text) > PAGE_LIMIT_MAX) throw new RangeError(`limit ${JSON.stringify(text)} must be an integer from 1 to ${PAGE_LIMIT_MAX}`);
  return Number(text);
}

interface RawRow {
  xid: string;
  account_id: string;
  delta: string;
  seq: string;
  at_us: string;
  credential: string | null;
  commit_ts?: string | null;
}

/**
 * Whether each shard's history has the commit_ts column (added by the hlc
 * branch's upgrade). A shard found without it is asked again after
 * RECHECK_MS, so a server keeps working across that upgrade.
 */
export class HistoryReader {
  private readonly hasCommitTs = new Map<ShardId, { has: boolean; at_ms: number }>();
  private static readonly RECHECK_MS = 10_000;

  constructor(private readonly pool: (shard: ShardId) => ShardReads) {}

  private async commitTs(shard: ShardId): Promise<boolean> {
    const known = this.hasCommitTs.get(shard);
    if (known !== undefined && (known.has || Date.now() - known.at_ms < HistoryReader.RECHECK_MS)) return known.has;
    const r = await this.pool(shard).run<Array<{ n: string | number }>>(
      `SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '${DATABASE}' AND TABLE_NAME = 'history' AND COLUMN_NAME = 'commit_ts'`,
    );
    if (!r.ok) throw new HistoryUnavailable(`${shard} did not answer: ${r.error.message}`);
    const has = Number(r.value[0]?.n ?? 0) > 0;
    this.hasCommitTs.set(shard, { has, at_ms: Date.now() });
    return has;
  }

  private async select(shard: ShardId, where: string, order: string, limit: number | null): Promise<RawRow[]> {
    const ts = (await this.commitTs(shard)) ? ", CAST(commit_ts AS CHAR) AS commit_ts" : "";
    const r = await this.pool(shard).run<RawRow[]>(
      `SELECT xid, account_id, delta, seq, at_us, credential${ts} FROM history WHERE ${where} ORDER BY ${order}${limit === null ? "" : ` LIMIT ${limit}`}`,
    );
    if (!r.ok) throw new HistoryUnavailable(`${shard} did not answer: ${r.error.message}`);
    return r.value;
  }

  /** Speculative transactions among `txs` not final yet on `shard` (an undo row still in state 'undo'). */
  private async notFinal(shard: ShardId, txs: readonly string[]): Promise<Set<string>> {
    const ids = [...new Set(txs)].filter((t) => TX_ID_TEXT.test(t));
    if (ids.length === 0) return new Set();
    const r = await this.pool(shard).run<Array<{ tx: string }>>(`SELECT DISTINCT tx FROM speculative_undo WHERE state = 'undo' AND tx IN (${ids.map((t) => `'${t}'`).join(",")})`);
    if (!r.ok) throw new HistoryUnavailable(`${shard} did not answer: ${r.error.message}`);
    return new Set(r.value.map((x) => x.tx));
  }

  private async rows(shard: ShardId, raw: readonly RawRow[]): Promise<HistoryRow[]> {
    const pending = await this.notFinal(
      shard,
      raw.map((x) => x.xid),
    );
    return raw.map((x) => ({
      tx: x.xid,
      shard_id: shard,
      account_id: Number(x.account_id),
      delta_cents: toCents(x.delta).toString(),
      seq: String(x.seq),
      commit_ts: x.commit_ts === undefined || x.commit_ts === null ? null : String(x.commit_ts),
      at: new Date(Number(BigInt(x.at_us) / 1000n)).toISOString(),
      credential: x.credential,
      final: !pending.has(x.xid),
    }));
  }

  /** One page of an account's history, newest first; `next`: the cursor of the next page, null at the end. */
  async accountPage(shard: ShardId, account: number, limit: number, cursor: bigint | null): Promise<{ rows: HistoryRow[]; next: string | null }> {
    const raw = await this.select(shard, `account_id = ${account}${cursor === null ? "" : ` AND seq < ${cursor}`}`, "seq DESC", limit + 1);
    const more = raw.length > limit;
    const rows = await this.rows(shard, raw.slice(0, limit));
    return { rows, next: more ? rows[rows.length - 1]!.seq : null };
  }

  /** Every history row of the transactions `txs`, on every shard of `shards`. */
  async rowsOf(shards: readonly ShardId[], txs: readonly string[]): Promise<HistoryRow[]> {
    const ids = [...new Set(txs)].filter((t) => TX_ID_TEXT.test(t));
    if (ids.length === 0) return [];
    const out: HistoryRow[] = [];
    for (const shard of shards) {
      const raw = await this.select(shard, `xid IN (${ids.map((t) => `'${t}'`).join(",")})`, "seq", null);
      out.push(...(await this.rows(shard, raw)));
    }
    return out;
  }

  /**
   * Every history row of a shard, in `seq` order, `batch` at a time (the
   * serializability audit after a load test reads them all).
   */
  async *all(shard: ShardId, batch = 5_000): AsyncGenerator<HistoryRow> {
    let after = 0n;
    for (;;) {
      const raw = await this.select(shard, `seq > ${after}`, "seq", batch);
      for (const r of await this.rows(shard, raw)) yield r;
      if (raw.length < batch) return;
      after = BigInt(raw[raw.length - 1]!.seq);
    }
  }
}

/** One transaction as GET /transactions?account= shows it: every row of it on every shard. */
export interface TransactionRows {
  readonly tx: string;
  readonly commit_ts: string | null;
  readonly final: boolean;
  readonly ops: ReadonlyArray<{ shard_id: ShardId; account_id: number; delta_cents: string }>;
}

/** Groups rows by transaction, in the order of `order` (tx ids). */
export function groupByTx(order: readonly string[], rows: readonly HistoryRow[]): TransactionRows[] {
  const by = new Map<string, HistoryRow[]>();
  for (const r of rows) by.set(r.tx, [...(by.get(r.tx) ?? []), r]);
  return order
    .filter((tx) => by.has(tx))
    .map((tx) => {
      const rs = by.get(tx)!;
      const ts = rs.map((r) => r.commit_ts).find((t) => t !== null) ?? null;
      return { tx, commit_ts: ts, final: rs.every((r) => r.final), ops: rs.map((r) => ({ shard_id: r.shard_id, account_id: r.account_id, delta_cents: r.delta_cents })) };
    });
}

/** Every account's balance on a shard, "shard:id" -> cents (the audit's final balances). */
export async function balancesOf(reads: ShardReads, shard: ShardId): Promise<Map<string, bigint>> {
  const r = await reads.run<Array<{ id: string; balance: string }>>("SELECT id, balance FROM accounts");
  if (!r.ok) throw new HistoryUnavailable(`${shard} did not answer: ${r.error.message}`);
  return new Map(r.value.map((x) => [`${shard}:${x.id}`, toCents(x.balance)]));
}

/**
 * The history of a run as conformance/serializable.ts audits it: every row
 * of the shards (of the transactions `only`, when given) grouped by
 * transaction, with the shards' balances now as the final ones. `notFinal`
 * counts rows of speculative transactions not final yet: an audit after
 * quiescence expects none.
 */
export async function historyForAudit(
  reader: HistoryReader,
  reads: (shard: ShardId) => ShardReads,
  shards: readonly ShardId[],
  opts: { seed: ReadonlyMap<string, bigint>; opened?: ReadonlySet<string>; only?: ReadonlySet<string> },
): Promise<{ history: History; notFinal: number }> {
  const byTx = new Map<string, { commit_ts: bigint | null; rows: CommittedTx["rows"][number][] }>();
  let notFinal = 0;
  const final = new Map<string, bigint>();
  for (const shard of shards) {
    for await (const r of reader.all(shard)) {
      if (opts.only !== undefined && !opts.only.has(r.tx)) continue;
      if (!r.final) notFinal++;
      const t = byTx.get(r.tx) ?? { commit_ts: null, rows: [] };
      if (r.commit_ts !== null) t.commit_ts = BigInt(r.commit_ts);
      t.rows.push({ account: `${shard}:${r.account_id}`, delta: BigInt(r.delta_cents), seq: BigInt(r.seq) });
      byTx.set(r.tx, t);
    }
    for (const [k, v] of await balancesOf(reads(shard), shard)) if (opts.seed.has(k) || opts.opened?.has(k) === true) final.set(k, v);
  }
  const txs: CommittedTx[] = [...byTx].map(([tx, t]) => ({ tx, commit_ts: t.commit_ts, rows: t.rows }));
  return { history: { seed: opts.seed, ...(opts.opened !== undefined ? { opened: opts.opened } : {}), txs, final }, notFinal };
}
