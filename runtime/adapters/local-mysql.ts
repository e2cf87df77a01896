/**
 * The live executor of the speculative path's shard statements
 * (spec/kernel/effects.ts LocalEffect): each method is ONE local transaction
 * (START TRANSACTION ... COMMIT, never XA) on its shard, with exactly the
 * statements spec/env/local.ts lists in its header, over the tables of
 * runtime/cluster/schema.ts (accounts, speculative_pending, speculative_undo, history).
 *
 *   apply      ONE round trip when it commits (START TRANSACTION, every
 *              statement and COMMIT in one multi-statement batch; the batch
 *              stops at the first error with the transaction open, and it is
 *              rolled back): the undo row first (it takes the branch's
 *              write-once key: 1062 is DUPLICATE), then the ops in ascending
 *              account order (fewer deadlocks between branches that share
 *              accounts): a debit is a guarded UPDATE inside a compound
 *              statement that SIGNALs when no row matched (INSUFFICIENT_FUNDS,
 *              the whole transaction rolled back), a credit goes into
 *              speculative_pending, guarded in the same way: it SIGNALs when the
 *              balance plus the account's pending credits would be past
 *              BALANCE_CENTS_MAX, since the release that moves the credit
 *              into the balance must not fail later. It answers
 *              UNAVAILABLE, as the spec's vocabulary has no word for it; the
 *              seed's total (at most 2^53 - 1 cents) keeps it out of reach
 *              of anything but a balance set by hand.
 *              The branch's history rows go in the same transaction, as the
 *              XA path writes them (xid = the transaction id; one row per
 *              account, its deltas summed: the key is (xid, account_id)), so
 *              the history audits work unchanged.
 *   tombstone  INSERT of a 'tombstone' row; on 1062 the row that holds the key
 *              is read (locking read, same transaction) for DUPLICATE + existing.
 *   compensate (one round trip when this process applied the branch and so knows
 *              its inverse: the row's state changes first, under its lock, and the
 *              rest runs only if it was 'undo'; otherwise two round trips: the
 *              locking read with START TRANSACTION, then the changes with COMMIT)
 *              SELECT ... FOR UPDATE of the row in state 'undo' (none: nothing
 *              done, applied false); the inverse deltas; the row retired
 *              ('compensated'); the branch's history rows deleted, so an
 *              aborted transfer leaves no history.
 *   release    as compensate, but the pending credits move into the balances
 *              and the row becomes 'released' (the history stays).
 *   scan       the rows in state 'undo'.
 *
 * Errors: a lost connection, a statement timeout, a lock wait timeout (1205),
 * a deadlock (1213) or any error this file does not expect is UNAVAILABLE:
 * "may or may not have committed" is true of all of them (for 1205 and 1213
 * the server rolled the transaction back, which UNAVAILABLE allows). A method
 * never rejects, and ends within the pool's acquire bound plus a few statement
 * timeouts.
 *
 * Ids are restricted as for XA ([A-Za-z0-9_.:-], at most 64 bytes), so they
 * go into statements as plain quoted literals.
 */
import { credentialSql } from "../auth.ts";
import mysql from "mysql2";
import type { LocalResult, Op, ShardId, TxId, UndoRowState, UndoRowView } from "../../spec/kernel/effects.ts";
import type { LocalExecutor } from "./ports.ts";
import { ShardPool, type PoolLimits, type PooledConnection, type QueryError, type ShardAddress } from "./mysql-pool.ts";
import { openAccountSql, type XaStatementObserver } from "./xa-mysql.ts";
import { BALANCE_CENTS_MAX } from "../cluster/schema.ts";
import { checkBatching, DEFAULT_SHARD_BATCH, SHARD_BATCH_MAX, ShardBatcher, type Batching } from "./shard-batch.ts";

/**
 * The result of one kind of local effect. Distributive over LocalResult, so
 * that the member whose `t` is "local.compensate" | "local.release" is found
 * for either (a plain Extract<LocalResult, { t: T }> gives never for them).
 */
export type LocalR<T extends LocalResult["t"]> = LocalResult extends infer X ? (X extends { t: infer U; r: infer R } ? (T extends U ? R : never) : never) : never;

const ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const ER_DUP_ENTRY = 1062;
/** What a debit's guard raises when it matched no row (SIGNAL in the apply batch); not an errno MariaDB itself uses. */
const INSUFFICIENT_FUNDS_ERRNO = 30001;
/** What a credit's guard raises when its release could not fit in the balance column (SIGNAL in the apply batch). */
const BALANCE_LIMIT_ERRNO = 30002;
const UNAVAILABLE = { ok: false, err: "UNAVAILABLE" } as const;
const STATES: ReadonlySet<string> = new Set<UndoRowState>(["undo", "released", "compensated", "tombstone"]);

export interface MysqlLocalOptions {
  readonly shards: readonly ShardAddress[];
  readonly limits: PoolLimits;
  readonly observer?: XaStatementObserver;
  /**
   * Pools to use instead of opening new ones (e.g. those of the XA executor,
   * `XaMysql.pool`), keyed by shard name; not closed by close().
   */
  readonly pools?: ReadonlyMap<ShardId, ShardPool>;
  /** The credential that started a transaction (runtime/auth.ts TxCredentials), written into its history rows; none: NULL. */
  readonly credentialOf?: (tx: TxId) => string | undefined;
  /** Bound on the applied inverses kept for one-round-trip releases (default APPLIED_INVERSES_MAX; 0: none kept). */
  readonly appliedInversesMax?: number;
  /**
   * Group commit of the deferred work (releases and compensations whose inverse this process knows): at most
   * `batch_max` of them per round trip on a shard (1: each alone), waiting up to `batch_wait_ms` for others (0: the
   * end of the event loop's turn). Default DEFAULT_SHARD_BATCH (shard-batch.ts).
   */
  readonly retireBatching?: Batching;
}

/** Releases and compensations per round trip on one shard, at most. */
export const RETIRE_BATCH_MAX = SHARD_BATCH_MAX;

/** Counts of the batched path, for tests and the benchmark: round trips sent, retires in them, retires sent again. */
export interface RetireBatchStats {
  readonly batches: number;
  readonly retires: number;
  readonly requeued: number;
}

/** One release or compensation waiting for its shard's next batch (its inverse known: the one-round-trip form). */
interface RetireJob {
  readonly tx: string;
  readonly shard: string;
  readonly key: string;
  readonly to: "compensated" | "released";
  readonly known: readonly Op[];
  readonly commitTs: bigint | undefined;
  readonly resolve: (r: LocalR<"local.release">) => void;
}

/** A statement failed; carried out of the transaction body to the one place that maps it. */
class SqlFailure {
  constructor(readonly error: QueryError) {}
}

type Q = <T>(sql: string) => Promise<T>;

function checkId(what: string, id: string): string {
  if (!ID.test(id)) throw new Error(`${what} ${JSON.stringify(id)} is not a valid id (want ${ID.source})`);
  return id;
}

function checkOp(op: Op, where: string): void {
  if (!Number.isSafeInteger(op.delta) || !Number.isSafeInteger(op.account) || op.account <= 0) {
    throw new Error(`local.apply ${where}: op ${JSON.stringify(op)} is not (positive integer account, integer cents)`);
  }
}

/** Parses the inverse column as written by apply. */
function parseInverse(text: string): Op[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v)) throw new Error(`speculative_undo.inverse is not a list: ${text}`);
  return v.map((x) => {
    const op = x as Op;
    checkOp(op, "inverse");
    return { account: op.account, delta: op.delta };
  });
}

/** Inverses of branches this process applied, kept for their release or compensation (one round trip); bounded. */
export const APPLIED_INVERSES_MAX = 65_536;

export class MysqlLocal implements LocalExecutor {
  readonly shards: readonly ShardId[];
  private readonly pools = new Map<ShardId, ShardPool>();
  private readonly owned: ShardPool[] = [];
  /**
   * `tx|shard` -> the inverse this process's apply wrote in the branch's undo row (escrow on), once that apply
   * committed. The row's inverse never changes after, so a release or compensation that finds it here needs no read
   * of the row first: one round trip instead of two. Oldest first out past APPLIED_INVERSES_MAX; a miss (another
   * process applied it, or it was dropped) reads the row as before.
   */
  private readonly applied = new Map<string, readonly Op[]>();
  /** Per shard: the retires waiting for the next batch. */
  private readonly retires: ShardBatcher<RetireJob>;
  private batchStats = { batches: 0, retires: 0, requeued: 0 };

  constructor(private readonly opts: MysqlLocalOptions) {
    this.retires = new ShardBatcher(checkBatching("retire", opts.retireBatching ?? DEFAULT_SHARD_BATCH), (shard, jobs) => void this.retireBatch(shard, jobs));
    this.shards = opts.shards.map((s) => checkId("shard id", s.name));
    for (const s of opts.shards) {
      const shared = opts.pools?.get(s.name);
      const pool = shared ?? new ShardPool(s, opts.limits);
      if (shared === undefined) this.owned.push(pool);
      this.pools.set(s.name, pool);
    }
  }

  pool(shard: ShardId): ShardPool {
    const p = this.pools.get(shard);
    if (p === undefined) throw new Error(`unknown shard ${shard}`);
    return p;
  }

  apply(tx: TxId, shard: ShardId, ops: readonly Op[], branches: readonly ShardId[]): Promise<LocalR<"local.apply">> {
    return this.transaction<LocalR<"local.apply">>(`apply ${tx}|${shard}`, shard, async (q) => {
      const t = checkId("transaction id", tx);
      const b = checkId("shard id", shard);
      for (const op of ops) checkOp(op, `${tx}|${shard}`);
      const inverse = ops.map((op) => ({ account: op.account, delta: -op.delta || 0 }));
      const list = [...branches].map((x) => checkId("branch", x)).sort();
      // ONE round trip when it commits: START TRANSACTION (added by `transaction`), the undo row, the ops, the history, COMMIT.
      // The batch stops at the first failing statement, with the transaction still open: `transaction` rolls it back.
      const stmts: string[] = [
        `INSERT INTO speculative_undo (tx, branch, state, inverse, branches, escrow) VALUES ('${t}','${b}','undo',${mysql.escape(JSON.stringify(inverse))},${mysql.escape(JSON.stringify(list))},1)`,
      ];
      // One lock order for every statement of this file: the undo row, then by account, the balance before the pending row.
      // Only debits touch the balance and only credits pending, so the guards' outcome does not depend on the order.
      // Every op checks its account's state on the row (open, or being opened by this transaction: openAccountSql):
      // debits in their guarded update, credits by reading the row in share mode, so that a close (which locks the row
      // FOR UPDATE on whichever node runs it) either waits for this transaction or is seen by it.
      const sorted = ops
        .map((op, i) => ({ op, i }))
        .sort((x, y) => x.op.account - y.op.account || Number(x.op.delta >= 0) - Number(y.op.delta >= 0) || x.i - y.i)
        .map((x) => x.op);
      for (const op of sorted) {
        if (op.delta < 0) {
          // The guarded update; no row matched (too little money, or no such account) raises INSUFFICIENT_FUNDS_ERRNO, which stops the batch before COMMIT.
          stmts.push(
            `BEGIN NOT ATOMIC UPDATE accounts SET balance = balance + ${op.delta} WHERE id = ${op.account} AND ${openAccountSql(t)} AND balance + ${op.delta} >= 0; ` +
              `IF ROW_COUNT() <> 1 THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = ${INSUFFICIENT_FUNDS_ERRNO}, MESSAGE_TEXT = 'insufficient funds'; END IF; END`,
          );
        } else {
          // Written as a difference, which cannot overflow: pending is never negative.
          stmts.push(
            `BEGIN NOT ATOMIC IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = ${op.account} AND ${openAccountSql(t)} LOCK IN SHARE MODE) THEN ` +
              `SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = ${INSUFFICIENT_FUNDS_ERRNO}, MESSAGE_TEXT = 'account not open'; END IF; ` +
              `INSERT INTO speculative_pending (account_id, cents) VALUES (${op.account},${op.delta}) ON DUPLICATE KEY UPDATE cents = cents + ${op.delta}; ` +
              `IF (SELECT balance FROM accounts WHERE id = ${op.account}) > ${BALANCE_CENTS_MAX} - (SELECT cents FROM speculative_pending WHERE account_id = ${op.account}) THEN ` +
              `SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = ${BALANCE_LIMIT_ERRNO}, MESSAGE_TEXT = 'balance limit'; END IF; END`,
          );
        }
      }
      // Each delta is a safe integer (checkOp); a sum of several need not be.
      const perAccount = new Map<number, bigint>();
      for (const op of sorted) perAccount.set(op.account, (perAccount.get(op.account) ?? 0n) + BigInt(op.delta));
      const at_us = Date.now() * 1000;
      const who = credentialSql(this.opts.credentialOf?.(tx));
      if (perAccount.size > 0) stmts.push(`INSERT INTO history (xid, account_id, delta, at_us, credential) VALUES ${[...perAccount].map(([a, d]) => `('${t}',${a},${d},${at_us},${who})`).join(",")}`);
      stmts.push("COMMIT");
      try {
        await q(stmts.join(";"));
      } catch (e) {
        if (!(e instanceof SqlFailure) || e.error.fatal) throw e;
        // The undo row's key is taken (the history's key is the same transaction's, so it cannot be the one taken first).
        if (e.error.errno === ER_DUP_ENTRY) return { commit: false, r: { ok: false, err: "DUPLICATE" } as const };
        if (e.error.errno === INSUFFICIENT_FUNDS_ERRNO) return { commit: false, r: { ok: false, err: "INSUFFICIENT_FUNDS" } as const };
        throw e;
      }
      this.remember(`${t}|${b}`, inverse);
      return { commit: "done", r: { ok: true } as const };
    });
  }

  private remember(key: string, inverse: readonly Op[]): void {
    const max = this.opts.appliedInversesMax ?? APPLIED_INVERSES_MAX;
    if (max <= 0) return;
    while (this.applied.size >= max) this.applied.delete(this.applied.keys().next().value!);
    this.applied.set(key, inverse);
  }

  /** How many applied inverses are kept (for tests of the bound). */
  appliedInverses(): number {
    return this.applied.size;
  }

  tombstone(tx: TxId, shard: ShardId): Promise<LocalR<"local.tombstone">> {
    return this.transaction<LocalR<"local.tombstone">>(`tombstone ${tx}|${shard}`, shard, async (q) => {
      const t = checkId("transaction id", tx);
      const b = checkId("shard id", shard);
      try {
        await q(`INSERT INTO speculative_undo (tx, branch, state, inverse, branches, escrow) VALUES ('${t}','${b}','tombstone','[]','[]',1)`);
        return { commit: true, r: { ok: true } as const };
      } catch (e) {
        if (!(e instanceof SqlFailure) || e.error.fatal || e.error.errno !== ER_DUP_ENTRY) throw e;
      }
      const rows = await q<Array<{ state: string }>>(`SELECT state FROM speculative_undo WHERE tx = '${t}' AND branch = '${b}' LOCK IN SHARE MODE`);
      const state = rows[0]?.state;
      if (state === undefined || !STATES.has(state)) return { commit: false, r: UNAVAILABLE };
      return { commit: true, r: { ok: false, err: "DUPLICATE", existing: state as UndoRowState } as const };
    });
  }

  compensate(tx: TxId, shard: ShardId): Promise<LocalR<"local.compensate">> {
    return this.retire(tx, shard, "compensated");
  }

  /** `commitTs`: the speculation's commit timestamp, stamped on the branch's history rows in the same transaction (runtime/timestamps.ts). */
  release(tx: TxId, shard: ShardId, commitTs?: bigint): Promise<LocalR<"local.release">> {
    return this.retire(tx, shard, "released", commitTs);
  }

  async scan(shard: ShardId): Promise<LocalR<"local.scan">> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return UNAVAILABLE;
    try {
      const r = await pool.run<Array<{ tx: string; branch: string; state: string; branches: string }>>(
        "SELECT tx, branch, state, branches FROM speculative_undo WHERE state = 'undo' ORDER BY tx, branch",
      );
      if (!r.ok) {
        this.noteError(shard, r.error);
        return UNAVAILABLE;
      }
      const rows: UndoRowView[] = r.value.map((x) => ({ tx: x.tx, branch: x.branch, state: x.state as UndoRowState, branches: JSON.parse(x.branches) as ShardId[] }));
      return { ok: true, rows };
    } catch (e) {
      console.error(`local scan ${shard}: ${(e as Error).stack ?? String(e)}`);
      return UNAVAILABLE;
    }
  }

  /** Closes the pools this executor opened (not those it was given). */
  close(): void {
    for (const j of this.retires.drain()) j.resolve(UNAVAILABLE);
    for (const p of this.owned) p.close();
  }

  /** What the batched path has sent so far. */
  retireBatchStats(): RetireBatchStats {
    return { ...this.batchStats };
  }

  /**
   * compensate or release: one transaction, a no-op unless the row is in state 'undo'. With the inverse known (this
   * process applied the branch), one round trip: the row's state changes first, under its lock, and the rest runs
   * only if it was 'undo' (a compound statement); else the row is read FOR UPDATE first, then the changes.
   */
  private retire(tx: TxId, shard: ShardId, to: "compensated" | "released", commitTs?: bigint): Promise<LocalR<"local.release">> {
    const key = `${tx}|${shard}`;
    const known = this.applied.get(key);
    // Batched: the inverse is known (this process applied it, so both ids passed checkId then).
    if (known !== undefined && this.retires.batching.batch_max > 1 && this.pools.has(shard) && ID.test(tx) && ID.test(shard)) {
      return new Promise((resolve) => this.retires.add(shard, { tx, shard, key, to, known, commitTs, resolve }));
    }
    return this.transaction<LocalR<"local.release">>(`${to} ${key}`, shard, async (q) => {
      const t = checkId("transaction id", tx);
      const b = checkId("shard id", shard);
      if (known !== undefined) {
        const results = await q<unknown[]>(`${this.knownRetire(t, b, known, to, commitTs, "@speccommit_retired")};COMMIT;SELECT @speccommit_retired AS retired`);
        const rows = results[results.length - 1] as Array<{ retired?: unknown }> | undefined;
        this.applied.delete(key);
        return { commit: "done", r: { ok: true, applied: Number(rows?.[0]?.retired) === 1 } as const };
      }
      const rows = await q<Array<{ inverse: string; escrow: unknown }>>(
        `SELECT inverse, escrow FROM speculative_undo WHERE tx = '${t}' AND branch = '${b}' AND state = 'undo' FOR UPDATE`,
      );
      const row = rows[0];
      if (row === undefined) return { commit: true, r: { ok: true, applied: false } as const };
      const stmts = [`UPDATE speculative_undo SET state = '${to}' WHERE tx = '${t}' AND branch = '${b}'`, ...this.retireStatements(t, parseInverse(row.inverse), Number(row.escrow) !== 0, to, commitTs)];
      stmts.push("COMMIT");
      await q(stmts.join(";"));
      return { commit: "done", r: { ok: true, applied: true } as const };
    });
  }

  /**
   * Several retires in ONE round trip, each still its own local transaction (START TRANSACTION, the one-round-trip
   * compound statement of `retire`, COMMIT), one after the other on one connection: a batch is a sequence of retires
   * that nothing else interleaves with, one of the interleavings the model checks, and it changes nothing about what
   * fails together (docs/architecture.md, "Batching"). After each COMMIT a session variable counts the retires
   * committed; a batch stops at its first failing statement, so on an error that leaves the connection up, that
   * count says which committed (answered as alone), which failed (UNAVAILABLE, rolled back, as alone) and which
   * were never sent (queued again). A lost connection leaves every retire not known to be committed UNAVAILABLE
   * ("may or may not have committed", which the model offers for any statement whose client died).
   */
  private async retireBatch(shard: ShardId, jobs: readonly RetireJob[]): Promise<void> {
    const pool = this.pools.get(shard)!;
    const c = await pool.acquire();
    if (c === null) {
      this.opts.observer?.onError?.(shard, "NO_CONNECTION");
      for (const j of jobs) j.resolve(UNAVAILABLE);
      return;
    }
    this.batchStats.batches++;
    this.batchStats.retires += jobs.length;
    this.opts.observer?.onShardBatch?.(shard, "retire", jobs.length);
    const parts = ["SET @speccommit_done = 0"];
    jobs.forEach((j, i) => {
      parts.push("START TRANSACTION", this.knownRetire(j.tx, j.shard, j.known, j.to, j.commitTs, `@speccommit_r${i}`), "COMMIT", `SET @speccommit_done = ${i + 1}`);
    });
    const flags = `SELECT @speccommit_done AS done${jobs.map((_, i) => `, @speccommit_r${i} AS r${i}`).join("")}`;
    parts.push(flags);
    let clean = false;
    try {
      const r = await pool.query<unknown[]>(c, parts.join(";"));
      let row: Record<string, unknown> | undefined;
      if (r.ok) {
        row = (r.value[r.value.length - 1] as Array<Record<string, unknown>> | undefined)?.[0];
        clean = true;
      } else {
        this.noteError(shard, r.error);
        if (!c.dead) {
          // The failed retire's transaction is still open: roll it back, then read how far the batch got.
          const after = await pool.query<unknown[]>(c, `ROLLBACK;${flags}`);
          if (after.ok) {
            row = (after.value[after.value.length - 1] as Array<Record<string, unknown>> | undefined)?.[0];
            clean = true;
          }
        }
      }
      const done = row === undefined ? 0 : Number(row.done);
      const again: RetireJob[] = [];
      jobs.forEach((j, i) => {
        if (i < done) {
          this.applied.delete(j.key);
          j.resolve({ ok: true, applied: Number(row![`r${i}`]) === 1 });
        } else if (i > done && row !== undefined) again.push(j);
        else j.resolve(UNAVAILABLE);
      });
      if (again.length > 0) {
        this.batchStats.requeued += again.length;
        for (const j of again) this.retires.add(j.shard, j);
      }
    } catch (e) {
      // A bug: every retire not answered yet is UNAVAILABLE (answering one twice is a no-op).
      console.error(`local retire batch on ${shard}: ${(e as Error).stack ?? String(e)}`);
      for (const j of jobs) j.resolve(UNAVAILABLE);
    } finally {
      await this.done(pool, c, clean);
    }
  }

  /**
   * A retire whose inverse is known, as one compound statement (inside a transaction the caller opens and commits):
   * the undo row's state first, under its lock (then the accounts', as apply takes them), and the rest only if it
   * was 'undo' (ROW_COUNT()); `flag` (a session variable) is set to 1 if it retired the branch, else 0.
   */
  private knownRetire(t: string, b: string, known: readonly Op[], to: "compensated" | "released", commitTs: bigint | undefined, flag: string): string {
    const changes = this.retireStatements(t, known, true, to, commitTs);
    return (
      `BEGIN NOT ATOMIC UPDATE speculative_undo SET state = '${to}' WHERE tx = '${t}' AND branch = '${b}' AND state = 'undo'; ` +
      `IF ROW_COUNT() = 1 THEN ${changes.map((x) => `${x}; `).join("")}SET ${flag} = 1; ELSE SET ${flag} = 0; END IF; END`
    );
  }

  /** What a release or compensation changes besides the undo row's state: balances, pending credits, history. */
  private retireStatements(t: string, inverse: readonly Op[], escrow: boolean, to: "compensated" | "released", commitTs?: bigint): string[] {
    const stmts: string[] = [];
    // The lock order of apply: by account, the balance before the pending row.
    const onBalance = (inv: Op) => inv.delta > 0 || !escrow;
    const sorted = [...inverse].sort((x, y) => x.account - y.account || Number(onBalance(y)) - Number(onBalance(x)));
    for (const inv of sorted) {
      if (inv.delta === 0) continue;
      if (to === "compensated") {
        // A debit given back to the balance; a credit taken back out of pending, where it is sure to be.
        if (onBalance(inv)) stmts.push(`UPDATE accounts SET balance = balance + ${inv.delta} WHERE id = ${inv.account}`);
        else stmts.push(`UPDATE speculative_pending SET cents = cents + ${inv.delta} WHERE account_id = ${inv.account}`);
      } else if (inv.delta < 0 && escrow) {
        stmts.push(`UPDATE accounts SET balance = balance + ${-inv.delta} WHERE id = ${inv.account}`);
        stmts.push(`UPDATE speculative_pending SET cents = cents - ${-inv.delta} WHERE account_id = ${inv.account}`);
      }
    }
    if (to === "released" && commitTs !== undefined && inverse.length > 0) {
      stmts.push(`UPDATE history SET commit_ts = ${BigInt(commitTs).toString()} WHERE xid = '${t}' AND account_id IN (${[...new Set(inverse.map((i) => i.account))].join(",")}) AND commit_ts IS NULL`);
    }
    if (to === "compensated" && inverse.length > 0) {
      stmts.push(`DELETE FROM history WHERE xid = '${t}' AND account_id IN (${[...new Set(inverse.map((i) => i.account))].join(",")})`);
    }
    return stmts;
  }

  /**
   * One local transaction on `shard`: START TRANSACTION, the body, then
   * COMMIT or ROLLBACK as the body says. Any failed statement the body does
   * not handle, a failed COMMIT, or a bug is UNAVAILABLE.
   */
  private async transaction<R extends { readonly ok: boolean }>(
    what: string,
    shard: ShardId,
    /** commit: true / false: COMMIT or ROLLBACK now; "done": the body's last batch ended with its own COMMIT. */
    body: (q: Q) => Promise<{ commit: boolean | "done"; r: R }>,
  ): Promise<R | typeof UNAVAILABLE> {
    const pool = this.pools.get(shard);
    if (pool === undefined) return UNAVAILABLE;
    const c = await pool.acquire();
    if (c === null) {
      this.opts.observer?.onError?.(shard, "NO_CONNECTION");
      return UNAVAILABLE;
    }
    // START TRANSACTION goes in the same round trip as the body's first batch; its result is cut off again.
    let begun = false;
    const q: Q = async <T>(sql: string): Promise<T> => {
      const first = !begun;
      begun = true;
      const r = await pool.query<unknown>(c, first ? `START TRANSACTION;${sql}` : sql);
      if (!r.ok) {
        this.noteError(shard, r.error);
        throw new SqlFailure(r.error);
      }
      if (!first) return r.value as T;
      const rest = (r.value as unknown[]).slice(1);
      return (rest.length === 1 ? rest[0] : rest) as T;
    };
    let ok = false;
    try {
      const out = await body(q);
      if (out.commit !== "done") await q(out.commit ? "COMMIT" : "ROLLBACK");
      ok = true;
      return out.r;
    } catch (e) {
      if (!(e instanceof SqlFailure)) console.error(`local ${what}: ${(e as Error).stack ?? String(e)}`);
      return UNAVAILABLE;
    } finally {
      // Before answering: a failed transaction's locks are gone by the time its caller hears of it.
      await this.done(pool, c, ok);
    }
  }

  /** Back to the pool, with no transaction open on it; a connection that might still hold one is closed. */
  private async done(pool: ShardPool, c: PooledConnection, clean: boolean): Promise<void> {
    if (!clean && !c.dead) {
      const r = await pool.query(c, "ROLLBACK");
      if (!r.ok) c.dead = true;
    }
    if (c.dead) pool.discard(c);
    else pool.release(c);
  }

  private noteError(shard: ShardId, e: QueryError): void {
    this.opts.observer?.onError?.(shard, e.errno !== undefined ? String(e.errno) : e.code);
  }
}
