/**
 * A shard running ONE-PHASE local transactions (no XA), as the speculative
 * protocol uses it (spec/protocols/speculative, docs/protocols/speculative.md).
 * Pure, immutable, canonical plain data: accounts sorted by id, undo rows
 * sorted by (tx, branch).
 *
 * Every operation below is one local transaction: atomic, and durable once it
 * commits. A crash of the shard loses nothing committed, and an operation
 * that had not committed left nothing behind, so a crash is only `up: false`.
 * A statement whose client died may or may not have committed: that is for
 * the composition to offer (both outcomes), as the 2PC composition does with
 * its orphaned effects.
 *
 * Tables (created by the runtime later; docs/protocols/speculative.md):
 *   accounts(id PK, balance, CHECK balance >= 0)           -- exists today
 *   speculative_pending(account_id PK, cents, CHECK cents >= 0)   -- escrowed credits
 *   speculative_undo(tx, branch, state, inverse JSON, branches JSON, escrow,
 *             PRIMARY KEY (tx, branch))                    -- the write-once key
 *
 * The statements each operation maps to (one START TRANSACTION ... COMMIT):
 *   apply      INSERT INTO speculative_undo VALUES (?, ?, 'undo', ?, ?, 1)  -- 1062: DUPLICATE, ROLLBACK
 *              per debit:  UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance + ? >= 0
 *                          -- 0 rows: INSUFFICIENT_FUNDS, ROLLBACK
 *              per credit: INSERT INTO speculative_pending VALUES (?, ?) ON DUPLICATE KEY UPDATE cents = cents + ?
 *   tombstone  INSERT INTO speculative_undo VALUES (?, ?, 'tombstone', '[]', '[]', 1)
 *              -- 1062: SELECT state FROM speculative_undo WHERE tx = ? AND branch = ?  (DUPLICATE + what holds the key)
 *   compensate SELECT inverse, escrow FROM speculative_undo WHERE tx = ? AND branch = ? AND state = 'undo' FOR UPDATE
 *              -- no row: COMMIT, nothing done
 *              per inverse debit:  UPDATE accounts SET balance = balance + ? WHERE id = ?
 *              per inverse credit: UPDATE speculative_pending SET cents = cents - ? WHERE account_id = ?
 *              UPDATE speculative_undo SET state = 'compensated' WHERE tx = ? AND branch = ?
 *   release    SELECT ... FOR UPDATE as compensate; per credit:
 *              UPDATE speculative_pending SET cents = cents - ? WHERE account_id = ?;
 *              UPDATE accounts SET balance = balance + ? WHERE id = ?;
 *              UPDATE speculative_undo SET state = 'released' WHERE tx = ? AND branch = ?
 *   scan       SELECT tx, branch, state, branches FROM speculative_undo WHERE state = 'undo'
 *   rowsOf     SELECT tx, branch, state, branches FROM speculative_undo WHERE tx = ?
 *
 * Why a finished row is retired (state released / compensated) rather than
 * deleted: the unique key is the branch's write-once log. A deleted row frees
 * the key, and an apply of the same branch that arrives late (a re-sent or
 * duplicated statement) would then apply a second time.
 */
import { byUndoKey, type LocalEffect, type LocalResult, type Op, type ShardId, type TxId, type UndoRowState, type UndoRowView } from "../kernel/effects.ts";

/** [account id, spendable balance, pending (escrowed) credits], in cents. */
export type AccountRow = readonly [number, number, number];

export interface UndoRow {
  readonly tx: TxId;
  readonly branch: ShardId;
  readonly state: UndoRowState;
  /** The inverse of every op of the branch: > 0 gives a debit back, < 0 takes a credit back. */
  readonly inverse: readonly Op[];
  readonly branches: readonly ShardId[];
  /** The credits were held as pending (always, except in the mutant that makes them spendable at once). */
  readonly escrow: boolean;
}

export interface LocalShard {
  readonly up: boolean;
  /** Sorted by account id. */
  readonly accounts: readonly AccountRow[];
  /** Sorted by (tx, branch): the key is unique. */
  readonly undo: readonly UndoRow[];
}

export function initLocal(balances: readonly (readonly [number, number])[]): LocalShard {
  return { up: true, accounts: [...balances].sort((a, b) => a[0] - b[0]).map(([id, cents]) => [id, cents, 0] as const), undo: [] };
}

export const rowOf = (s: LocalShard, tx: TxId, branch: ShardId): UndoRow | undefined => s.undo.find((r) => r.tx === tx && r.branch === branch);
export const rowsOf = (s: LocalShard, tx: TxId): UndoRowView[] => s.undo.filter((r) => r.tx === tx).map(view);
const view = (r: UndoRow): UndoRowView => ({ tx: r.tx, branch: r.branch, state: r.state, branches: r.branches });

const insert = (s: LocalShard, row: UndoRow): LocalShard => ({ ...s, undo: [...s.undo, row].sort(byUndoKey) });
const setState = (s: LocalShard, row: UndoRow, state: UndoRowState): LocalShard => ({
  ...s,
  undo: s.undo.map((r) => (r === row ? { ...r, state } : r)),
});

/** Adds (balance, pending) cents to an account; null when the account does not exist. */
function move(s: LocalShard, account: number, balance: number, pending: number): LocalShard | null {
  const i = s.accounts.findIndex((a) => a[0] === account);
  if (i < 0) return null;
  const [id, b, p] = s.accounts[i]!;
  return { ...s, accounts: s.accounts.map((a, j) => (j === i ? ([id, b + balance, p + pending] as const) : a)) };
}

export type ApplyResult = { ok: true } | { ok: false; err: "INSUFFICIENT_FUNDS" | "DUPLICATE" };

/**
 * Apply a branch: the undo row first (it takes the key), then each op. A debit
 * that would take the balance below zero fails the whole local transaction.
 * `parts` other than "both" exist only for the mutant that writes the undo row
 * in a separate transaction.
 */
export function apply(
  s: LocalShard,
  tx: TxId,
  branch: ShardId,
  ops: readonly Op[],
  branches: readonly ShardId[],
  escrow = true,
  parts: "both" | "write" | "undo" = "both",
): { s: LocalShard; r: ApplyResult } {
  let next = s;
  if (parts !== "write") {
    if (rowOf(s, tx, branch) !== undefined) return { s, r: { ok: false, err: "DUPLICATE" } };
    const inverse = ops.map((op) => ({ account: op.account, delta: -op.delta }));
    next = insert(next, { tx, branch, state: "undo", inverse, branches: [...branches].sort(), escrow });
  }
  if (parts !== "undo") {
    for (const op of ops) {
      const acct = next.accounts.find((a) => a[0] === op.account);
      if (acct === undefined) throw new Error(`local: no account ${op.account} on ${branch}`);
      if (op.delta < 0 && acct[1] + op.delta < 0) return { s, r: { ok: false, err: "INSUFFICIENT_FUNDS" } };
      next = op.delta < 0 || !escrow ? move(next, op.account, op.delta, 0)! : move(next, op.account, 0, op.delta)!;
    }
  }
  return { s: next, r: { ok: true } };
}

export type TombstoneResult = { ok: true } | { ok: false; err: "DUPLICATE"; existing: UndoRowState };

/** Claim the branch's key for "never applied": whichever of the branch and the tombstone commits first wins. */
export function tombstone(s: LocalShard, tx: TxId, branch: ShardId): { s: LocalShard; r: TombstoneResult } {
  const row = rowOf(s, tx, branch);
  if (row !== undefined) return { s, r: { ok: false, err: "DUPLICATE", existing: row.state } };
  return { s: insert(s, { tx, branch, state: "tombstone", inverse: [], branches: [], escrow: true }), r: { ok: true } };
}

/**
 * Undo an applied branch and retire its row, in one local transaction; a
 * no-op when the row is not in state undo, so a compensation applies at most
 * once whoever retries it. `retire: false` is the mutant that leaves the row.
 */
export function compensate(s: LocalShard, tx: TxId, branch: ShardId, retire = true): { s: LocalShard; applied: boolean } {
  const row = rowOf(s, tx, branch);
  if (row === undefined || row.state !== "undo") return { s, applied: false };
  let next = s;
  for (const inv of row.inverse) {
    // An inverse credit comes out of pending (escrow), where it is sure to be: nothing else spends pending.
    next = inv.delta > 0 || !row.escrow ? move(next, inv.account, inv.delta, 0)! : move(next, inv.account, 0, inv.delta)!;
  }
  return { s: retire ? setState(next, rowOf(next, tx, branch)!, "compensated") : next, applied: true };
}

/**
 * The transaction is final: its pending credits become spendable and the row
 * is retired. `row: "delete"` is the mutant that deletes it (the issue's
 * first sketch), which frees the key for a later tombstone.
 */
export function release(s: LocalShard, tx: TxId, branch: ShardId, row: "retire" | "delete" = "retire"): { s: LocalShard; applied: boolean } {
  const r = rowOf(s, tx, branch);
  if (r === undefined || r.state !== "undo") return { s, applied: false };
  let next = s;
  if (r.escrow) for (const inv of r.inverse) if (inv.delta < 0) next = move(next, inv.account, -inv.delta, inv.delta)!;
  if (row === "delete") return { s: { ...next, undo: next.undo.filter((x) => !(x.tx === tx && x.branch === branch)) }, applied: true };
  return { s: setState(next, rowOf(next, tx, branch)!, "released"), applied: true };
}

/** The rows recovery must finish: those still in state undo. */
export const scan = (s: LocalShard): UndoRowView[] => s.undo.filter((r) => r.state === "undo").map(view);

export const crash = (s: LocalShard): LocalShard => ({ ...s, up: false });
export const restart = (s: LocalShard): LocalShard => ({ ...s, up: true });

/** One effect as one local transaction; a shard that is down answers UNAVAILABLE and changes nothing. */
export function execute(s: LocalShard, fx: LocalEffect): { s: LocalShard; r: LocalResult } {
  if (!s.up) return { s, r: unavailable(fx) };
  switch (fx.t) {
    case "local.apply": {
      const o = apply(s, fx.tx, fx.shard, fx.ops, fx.branches, fx.escrow, fx.parts);
      return { s: o.s, r: { t: fx.t, tx: fx.tx, shard: fx.shard, r: o.r } };
    }
    case "local.tombstone": {
      const o = tombstone(s, fx.tx, fx.shard);
      return { s: o.s, r: { t: fx.t, tx: fx.tx, shard: fx.shard, r: o.r } };
    }
    case "local.compensate": {
      const o = compensate(s, fx.tx, fx.shard, fx.retire);
      return { s: o.s, r: { t: fx.t, tx: fx.tx, shard: fx.shard, r: { ok: true, applied: o.applied } } };
    }
    case "local.release": {
      const o = release(s, fx.tx, fx.shard, fx.row);
      return { s: o.s, r: { t: fx.t, tx: fx.tx, shard: fx.shard, r: { ok: true, applied: o.applied } } };
    }
    case "local.scan":
      return { s, r: { t: fx.t, shard: fx.shard, r: { ok: true, rows: scan(s) } } };
  }
}

/** The answer of a statement whose connection or server failed: it may or may not have committed. */
export function unavailable(fx: LocalEffect): LocalResult {
  const r = { ok: false, err: "UNAVAILABLE" } as const;
  return fx.t === "local.scan" ? { t: fx.t, shard: fx.shard, r } : { t: fx.t, tx: fx.tx, shard: fx.shard, r } as LocalResult;
}
