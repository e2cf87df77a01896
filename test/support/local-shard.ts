/**
 * The speculative path's shard as plain data, read from a real MariaDB and
 * derived from the shard model (spec/env/local.ts), so that tests compare
 * the two (test/env/local-model.test.ts, test/env/local-batch.test.ts).
 */
import type { Connection } from "mysql2/promise";
import type { Op } from "../../spec/kernel/effects.ts";
import type * as local from "../../spec/env/local.ts";

/** Small balances (account id, cents) so that overdrafts happen; account 4 starts empty. */
export const SMALL_BALANCES: readonly (readonly [number, number])[] = [
  [1, 100],
  [2, 50],
  [3, 10],
  [4, 0],
];

/** The shard as plain data, comparable with the model's. */
export interface Observed {
  accounts: [number, number, number][];
  undo: { tx: string; branch: string; state: string; inverse: Op[]; branches: string[] }[];
  history: [string, number, number][];
}

/** The (tx, account, delta) history rows the model's shard implies: one per account of each branch applied and not compensated. */
export function expectedHistory(s: local.LocalShard): [string, number, number][] {
  const rows: [string, number, number][] = [];
  for (const r of s.undo) {
    if (r.state !== "undo" && r.state !== "released") continue;
    const per = new Map<number, number>();
    for (const inv of r.inverse) per.set(inv.account, (per.get(inv.account) ?? 0) - inv.delta);
    for (const [a, d] of per) rows.push([r.tx, a, d || 0]);
  }
  return rows.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
}

export function modelView(s: local.LocalShard): Observed {
  return {
    accounts: s.accounts.map(([id, b, p]) => [id, b, p]),
    undo: s.undo.map((r) => ({ tx: r.tx, branch: r.branch, state: r.state, inverse: r.inverse.map((i) => ({ account: i.account, delta: i.delta || 0 })), branches: [...r.branches] })),
    history: expectedHistory(s),
  };
}

export async function realView(admin: Connection): Promise<Observed> {
  const [a] = await admin.query("SELECT a.id, a.balance, COALESCE(p.cents, 0) AS pending FROM accounts a LEFT JOIN speculative_pending p ON p.account_id = a.id ORDER BY a.id");
  const [u] = await admin.query("SELECT tx, branch, state, inverse, branches, escrow FROM speculative_undo ORDER BY tx, branch");
  const [h] = await admin.query("SELECT xid, account_id, delta FROM history ORDER BY xid, account_id");
  const [orphans] = await admin.query("SELECT account_id FROM speculative_pending WHERE account_id NOT IN (SELECT id FROM accounts)");
  if ((orphans as unknown[]).length > 0) throw new Error(`pending credits of accounts that do not exist: ${JSON.stringify(orphans)}`);
  return {
    accounts: (a as { id: string; balance: string; pending: string }[]).map((x) => [Number(x.id), Number(x.balance), Number(x.pending)]),
    undo: (u as { tx: string; branch: string; state: string; inverse: string; branches: string; escrow: unknown }[]).map((x) => {
      if (Number(x.escrow) !== 1) throw new Error(`undo row ${x.tx}|${x.branch} without escrow`);
      return { tx: x.tx, branch: x.branch, state: x.state, inverse: JSON.parse(x.inverse) as Op[], branches: JSON.parse(x.branches) as string[] };
    }),
    history: (h as { xid: string; account_id: string; delta: string }[]).map((x) => [x.xid, Number(x.account_id), Number(x.delta)]),
  };
}

/** Empties the speculative tables and the history, and sets the accounts to `balances` (id, cents). */
export async function resetShard(admin: Connection, balances: readonly (readonly [number, number])[]): Promise<void> {
  await admin.query("DELETE FROM speculative_undo");
  await admin.query("DELETE FROM speculative_pending");
  await admin.query("DELETE FROM history");
  await admin.query("DELETE FROM accounts");
  await admin.query(`INSERT INTO accounts (id, balance) VALUES ${balances.map(([id, b]) => `(${id},${b})`).join(",")}`);
}
