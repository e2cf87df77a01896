/**
 * The audit after a run, read straight from the shards (never from the
 * server under test):
 *
 *   - conservation: the sum of every balance (plus pending credits of the
 *     speculative path, shardTotalCents) is what it was before the run
 *     (bigint cents);
 *   - settled: once the resolver has had its time, no XA branch of ours is
 *     left prepared on any shard (XA RECOVER, polled with a bound) and, when
 *     asked, no undo row of the speculative path is left in state 'undo'
 *     (speculative_undo; every speculation released or compensated);
 *   - exactly once: every transfer answered committed has exactly its rows
 *     in the history (one per account, with its delta); one answered aborted
 *     has none; one in doubt has all or none; every other transaction in the
 *     history sums to zero (all-or-nothing) and there are no more of them than
 *     requests whose answer was lost.
 *
 * The history is read from `since_us` on, so the audit assumes nothing else
 * moved money on these shards during the run.
 */
import mysql, { type Connection } from "mysql2/promise";
import type { ShardAddress } from "../adapters/mysql-pool.ts";
import { shardTotalCents } from "../cluster/schema.ts";
import type { Ledger } from "./load.ts";
import { branchesOf, type Transfer } from "./workload.ts";

const SETTLE_POLL_MS = 200;
/** MariaDB: the table does not exist (a cluster created before the speculative path's tables). */
const ER_NO_SUCH_TABLE = 1146;
/** Undo rows named in a report; the rest are counted. */
const UNDO_ROWS_SHOWN = 5;
/** Problems listed in full; the rest are counted. */
const PROBLEMS_SHOWN = 20;

async function connectShard(a: ShardAddress): Promise<Connection> {
  return mysql.createConnection({
    ...(a.socketPath !== undefined && a.ssl === undefined ? { socketPath: a.socketPath } : { host: a.host, port: a.port }),
    ...(a.ssl !== undefined ? { ssl: { ...a.ssl } } : {}),
    user: a.user,
    ...(a.password !== undefined ? { password: a.password } : {}),
    database: a.database,
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: 5_000,
  });
}

async function onEachShard<T>(shards: readonly ShardAddress[], fn: (c: Connection, s: ShardAddress) => Promise<T>): Promise<T[]> {
  return Promise.all(
    shards.map(async (s) => {
      const c = await connectShard(s);
      try {
        return await fn(c, s);
      } finally {
        await c.end();
      }
    }),
  );
}

/** Money on every shard, in cents: every balance plus every pending (escrowed) credit of the speculative path (shardTotalCents). */
export async function totalCents(shards: readonly ShardAddress[]): Promise<bigint> {
  const totals = await onEachShard(shards, (c) => shardTotalCents(c));
  return totals.reduce((a, b) => a + b, 0n);
}

/** Branches with this formatID that a shard lists as prepared, as "shard|gtrid". */
export async function preparedBranches(shards: readonly ShardAddress[], formatId: number): Promise<string[]> {
  const lists = await onEachShard(shards, async (c, s) => {
    const [rows] = await c.query("XA RECOVER");
    return (rows as Array<{ formatID: unknown; gtrid_length: unknown; data: Buffer | string }>)
      .filter((r) => Number(r.formatID) === formatId)
      .map((r) => {
        const data = Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.data, "binary");
        return `${s.name}|${data.subarray(0, Number(r.gtrid_length)).toString("utf8")}`;
      });
  });
  return lists.flat();
}

/**
 * Undo rows of the speculative path still in state 'undo' (applied, neither
 * released nor compensated yet), as "shard|tx|branch", at most `shown` of
 * them per shard, and their count. A shard without the speculative_undo table has
 * none.
 */
export async function undoRows(shards: readonly ShardAddress[], shown = UNDO_ROWS_SHOWN): Promise<{ count: number; rows: string[] }> {
  const per = await onEachShard(shards, async (c, s) => {
    try {
      const [n] = await c.query("SELECT COUNT(*) AS n FROM speculative_undo WHERE state = 'undo'");
      const count = Number((n as Array<{ n: string | number }>)[0]?.n ?? 0);
      if (count === 0) return { count, rows: [] };
      const [rows] = await c.query(`SELECT tx, branch FROM speculative_undo WHERE state = 'undo' LIMIT ${shown}`);
      return { count, rows: (rows as Array<{ tx: string; branch: string }>).map((r) => `${s.name}|${r.tx}|${r.branch}`) };
    } catch (e) {
      if ((e as { errno?: number }).errno === ER_NO_SUCH_TABLE) return { count: 0, rows: [] };
      throw e;
    }
  });
  return { count: per.reduce((a, p) => a + p.count, 0), rows: per.flatMap((p) => p.rows) };
}

export interface Settled {
  readonly settled: boolean;
  readonly waited_ms: number;
  /** Still prepared at the end of the wait ("shard|gtrid"). */
  readonly prepared: readonly string[];
  /** Most prepared branches seen at one poll. */
  readonly prepared_max: number;
  /** With `undo`: undo rows still in state 'undo' at the end of the wait (count, and a few as "shard|tx|branch"). */
  readonly undo_left?: number;
  readonly undo_rows?: readonly string[];
  /** With `undo`: most undo rows in state 'undo' seen at one poll. */
  readonly undo_max?: number;
}

/**
 * Polls XA RECOVER on every shard until no branch with one of these
 * formatIDs is prepared (and, with `undo`, no speculative_undo row is left in state
 * 'undo'), for `timeout_ms` at most. A shard that does not answer counts as
 * unsettled.
 */
export async function waitSettled(shards: readonly ShardAddress[], formatIds: readonly number[], timeout_ms: number, opts: { undo?: boolean } = {}): Promise<Settled> {
  const t0 = performance.now();
  let prepared: string[] = [];
  let prepared_max = 0;
  let undo = { count: 0, rows: [] as string[] };
  let undo_max = 0;
  for (;;) {
    try {
      prepared = (await Promise.all(formatIds.map((f) => preparedBranches(shards, f)))).flat();
    } catch (e) {
      prepared = [`(a shard did not answer XA RECOVER: ${(e as Error).message})`];
    }
    if (opts.undo === true) {
      try {
        undo = await undoRows(shards);
      } catch (e) {
        undo = { count: 1, rows: [`(a shard did not answer the speculative_undo count: ${(e as Error).message})`] };
      }
      undo_max = Math.max(undo_max, undo.count);
    }
    prepared_max = Math.max(prepared_max, prepared.length);
    const waited_ms = Math.round(performance.now() - t0);
    const done = prepared.length === 0 && undo.count === 0;
    if (done || waited_ms >= timeout_ms) {
      return { settled: done, waited_ms, prepared, prepared_max, ...(opts.undo === true ? { undo_left: undo.count, undo_rows: undo.rows, undo_max } : {}) };
    }
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
}

export interface HistoryAudit {
  readonly history_rows: number;
  readonly committed_checked: number;
  readonly aborted_checked: number;
  readonly in_doubt_committed: number;
  readonly in_doubt_rolled_back: number;
  /** Transactions in the history that no answer named: requests whose answer was lost and that did commit. */
  readonly unanswered_applied: number;
  readonly unanswered_max: number;
  readonly problems: readonly string[];
  readonly problems_total: number;
  /** The same checks per ledger, in the order given (e.g. one ledger per protocol); the unanswered check is over all of them together. */
  readonly per_ledger: readonly LedgerAudit[];
}

export interface LedgerAudit {
  readonly name: string;
  readonly committed_checked: number;
  readonly aborted_checked: number;
  readonly in_doubt_committed: number;
  readonly in_doubt_rolled_back: number;
  readonly problems_total: number;
}

/** The history rows a transfer leaves when applied once: "shard|account|delta", sorted. */
function expectedRows(t: Transfer): string[] {
  return branchesOf(t)
    .flatMap((b) => b.ops.map((op) => `${b.shard}|${op.account}|${op.delta}`))
    .sort();
}

/**
 * Checks the history since `since_us` (microseconds since the epoch) against
 * the ledgers of the run. `names` label the ledgers in problems and in
 * `per_ledger` (default: their index).
 */
export async function auditHistory(shards: readonly ShardAddress[], ledgers: readonly Ledger[], since_us: number, names: readonly string[] = []): Promise<HistoryAudit> {
  const byTx = new Map<string, string[]>();
  let history_rows = 0;
  const perShard = await onEachShard(shards, async (c, s) => {
    const [rows] = await c.query("SELECT xid, account_id, delta FROM history WHERE at_us >= ?", [since_us]);
    return (rows as Array<{ xid: string; account_id: string; delta: string }>).map((r) => ({ tx: r.xid, row: `${s.name}|${r.account_id}|${r.delta}` }));
  });
  for (const { tx, row } of perShard.flat()) {
    history_rows++;
    const list = byTx.get(tx) ?? [];
    list.push(row);
    byTx.set(tx, list);
  }
  const problems: string[] = [];
  let problems_total = 0;
  const problem = (p: string) => {
    problems_total++;
    if (problems.length < PROBLEMS_SHOWN) problems.push(p);
  };
  const rowsOf = (tx: string) => (byTx.get(tx) ?? []).slice().sort();
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

  const answered = new Set<string>();
  let committed_checked = 0;
  let aborted_checked = 0;
  let in_doubt_committed = 0;
  let in_doubt_rolled_back = 0;
  let unanswered_max = 0;
  const per_ledger: LedgerAudit[] = [];
  ledgers.forEach((ledger, i) => {
    const name = names[i] ?? String(i);
    const label = names[i] !== undefined ? `${name}: ` : "";
    const at = { committed_checked, aborted_checked, in_doubt_committed, in_doubt_rolled_back, problems_total };
    unanswered_max += ledger.unknown;
    for (const [tx, t] of ledger.committed) {
      answered.add(tx);
      committed_checked++;
      const want = expectedRows(t);
      const got = rowsOf(tx);
      if (!same(got, want)) problem(`${label}committed ${tx}: history has [${got.join(", ")}], expected exactly [${want.join(", ")}]`);
    }
    for (const [tx] of ledger.aborted) {
      answered.add(tx);
      aborted_checked++;
      const got = rowsOf(tx);
      if (got.length > 0) problem(`${label}aborted ${tx}: history has [${got.join(", ")}], expected nothing`);
    }
    for (const [tx, t] of ledger.inDoubt) {
      answered.add(tx);
      const got = rowsOf(tx);
      if (got.length === 0) in_doubt_rolled_back++;
      else if (same(got, expectedRows(t))) in_doubt_committed++;
      else problem(`${label}in doubt ${tx}: history has [${got.join(", ")}], expected all of [${expectedRows(t).join(", ")}] or nothing`);
    }
    per_ledger.push({
      name,
      committed_checked: committed_checked - at.committed_checked,
      aborted_checked: aborted_checked - at.aborted_checked,
      in_doubt_committed: in_doubt_committed - at.in_doubt_committed,
      in_doubt_rolled_back: in_doubt_rolled_back - at.in_doubt_rolled_back,
      problems_total: problems_total - at.problems_total,
    });
  });
  let unanswered_applied = 0;
  for (const [tx, rows] of byTx) {
    if (answered.has(tx)) continue;
    unanswered_applied++;
    const sum = rows.reduce((acc, r) => acc + BigInt(r.slice(r.lastIndexOf("|") + 1)), 0n);
    if (sum !== 0n) problem(`unanswered ${tx}: its history rows sum to ${sum} cents, not 0 (partly applied): [${rows.join(", ")}]`);
  }
  if (unanswered_applied > unanswered_max) {
    problem(`${unanswered_applied} transactions in the history that no answer named, but only ${unanswered_max} requests lost their answer`);
  }
  return { history_rows, committed_checked, aborted_checked, in_doubt_committed, in_doubt_rolled_back, unanswered_applied, unanswered_max, problems, problems_total, per_ledger };
}
