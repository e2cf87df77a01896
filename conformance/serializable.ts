/**
 * The banking invariants over a history of committed transfers (issue 16),
 * checked after a load test against the real shards (test/banking/) and by
 * property on generated histories with corruptions it must catch
 * (test/banking/serializable.test.ts). Pure: the caller reads the shards.
 *
 * Input: the seed balances, the accounts opened since (at 0: an opening
 * moves money into them by a transfer), every committed transaction's
 * history rows (account, delta in cents, the row's `seq` on its shard, the
 * transaction's commit timestamp when the shards have one), and the final
 * balances. Accounts are named "shard:id".
 *
 * `auditSerializable` (2PC and parallel commit), in order:
 *  1. each transaction moves money, never creates it: its deltas sum to 0;
 *  2. money conserved: the final total is the seed total;
 *  3. the conflict order: per account, the rows in `seq` order (a branch
 *     inserts its history rows after its UPDATEs, under the rows' locks held
 *     to its commit, so the later of two transfers on an account has the
 *     larger seq). Two rows of one account with one seq are an error;
 *  4. each conflict between two transactions with commit timestamps goes
 *     forward in timestamp (T before U on an account implies ts(T) < ts(U));
 *     a serial order that explains it: by commit timestamp when every
 *     transaction has one, else a topological
 *     order of the conflict graph (and a cycle is a history no serial
 *     order explains: not conflict-serializable);
 *  5. replay from the seed in that order: no balance ever below zero, and
 *     every final balance equal to the replayed one (a lost update, a row of
 *     an uncommitted transfer, a missing row all show here).
 *
 * `auditSpeculative` checks the speculative path's weaker isolation as
 * docs/protocols/speculative.md states it, not serializability: debits are
 * visible (and take effect) when the branch applies, credits only when the
 * transaction is final; a rolled-back transaction leaves no row; updates are
 * guarded increments. What a history can show of that after quiescence:
 * 1, 2 and 5 with each account's rows in seq order and each row taking
 * effect at its seq. A credit is released after its row was inserted, so the
 * balance a debit met was at most this replay's: the replay staying >= 0 is
 * a necessary condition of "no balance below zero", and its final balances
 * must equal the shards' (no lost update). There is no check of a global
 * order: the path promises none (no cross-shard snapshot, dirty reads of
 * debits).
 *
 * `auditAnswers`: what the clients were told against the rows: a committed
 * transfer has exactly its ops as rows, an aborted one none, one in doubt
 * all or none (atomicity, durability before acknowledgement).
 */

export interface Row {
  /** "shard:id". */
  readonly account: string;
  readonly delta: bigint;
  /** The row's insertion order on its shard (history.seq). */
  readonly seq: bigint;
}

export interface CommittedTx {
  readonly tx: string;
  /** HLC commit timestamp (history.commit_ts); null when the shards have none. */
  readonly commit_ts: bigint | null;
  readonly rows: readonly Row[];
}

export interface History {
  /** Balances before the first transfer. */
  readonly seed: ReadonlyMap<string, bigint>;
  /** Accounts opened during the run: they start at 0. */
  readonly opened?: ReadonlySet<string>;
  readonly txs: readonly CommittedTx[];
  /** Balances after the last transfer (every account of seed and opened). */
  readonly final: ReadonlyMap<string, bigint>;
}

export type Violation =
  | { readonly kind: "mint"; readonly tx: string; readonly sum: bigint }
  | { readonly kind: "total"; readonly seed: bigint; readonly final: bigint }
  | { readonly kind: "unknown_account"; readonly account: string }
  | { readonly kind: "same_seq"; readonly account: string; readonly seq: bigint }
  | { readonly kind: "cycle"; readonly txs: readonly string[] }
  | { readonly kind: "ts_against_conflict"; readonly account: string; readonly before: string; readonly after: string }
  | { readonly kind: "negative"; readonly account: string; readonly tx: string; readonly balance: bigint }
  | { readonly kind: "final"; readonly account: string; readonly replayed: bigint; readonly final: bigint };

export type Verdict =
  | { readonly ok: true; readonly order: readonly string[]; readonly by: "commit_ts" | "conflict" | "seq"; readonly txs: number; readonly rows: number }
  | { readonly ok: false; readonly violation: Violation };

const fail = (violation: Violation): Verdict => ({ ok: false, violation });

/** 1 and 2, and every account known. */
function moneyChecks(h: History): Violation | null {
  for (const t of h.txs) {
    const sum = t.rows.reduce((s, r) => s + r.delta, 0n);
    if (sum !== 0n) return { kind: "mint", tx: t.tx, sum };
    for (const r of t.rows) if (!h.seed.has(r.account) && h.opened?.has(r.account) !== true) return { kind: "unknown_account", account: r.account };
  }
  for (const a of h.final.keys()) if (!h.seed.has(a) && h.opened?.has(a) !== true) return { kind: "unknown_account", account: a };
  const seed = [...h.seed.values()].reduce((s, v) => s + v, 0n);
  const final = [...h.final.values()].reduce((s, v) => s + v, 0n);
  return seed === final ? null : { kind: "total", seed, final };
}

/** Per account, its rows' transactions in seq order. */
function perAccount(h: History): Map<string, Array<{ tx: string; seq: bigint; delta: bigint }>> | Violation {
  const by = new Map<string, Array<{ tx: string; seq: bigint; delta: bigint }>>();
  for (const t of h.txs) for (const r of t.rows) by.set(r.account, [...(by.get(r.account) ?? []), { tx: t.tx, seq: r.seq, delta: r.delta }]);
  for (const [account, rows] of by) {
    rows.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    for (let i = 1; i < rows.length; i++) if (rows[i]!.seq === rows[i - 1]!.seq) return { kind: "same_seq", account, seq: rows[i]!.seq };
  }
  return by;
}

/** The conflict edges: consecutive transactions on each account (the rest follows by transitivity). */
function edges(by: ReadonlyMap<string, ReadonlyArray<{ tx: string }>>): Array<{ account: string; from: string; to: string }> {
  const out: Array<{ account: string; from: string; to: string }> = [];
  for (const [account, rows] of by) for (let i = 1; i < rows.length; i++) if (rows[i - 1]!.tx !== rows[i]!.tx) out.push({ account, from: rows[i - 1]!.tx, to: rows[i]!.tx });
  return out;
}

/** A topological order of the conflict graph (Kahn, ties by transaction id), or one cycle of it. */
function topological(txs: readonly string[], es: ReturnType<typeof edges>): { order: string[] } | { cycle: string[] } {
  const out = new Map<string, Set<string>>(txs.map((t) => [t, new Set<string>()]));
  const indeg = new Map<string, number>(txs.map((t) => [t, 0]));
  for (const e of es) {
    if (out.get(e.from)!.has(e.to)) continue;
    out.get(e.from)!.add(e.to);
    indeg.set(e.to, indeg.get(e.to)! + 1);
  }
  const ready = txs.filter((t) => indeg.get(t) === 0).sort();
  const order: string[] = [];
  while (ready.length > 0) {
    const t = ready.shift()!;
    order.push(t);
    for (const u of out.get(t)!) {
      indeg.set(u, indeg.get(u)! - 1);
      if (indeg.get(u) === 0) ready.push(u);
    }
  }
  if (order.length === txs.length) return { order };
  return { cycle: findCycle(txs.filter((t) => indeg.get(t)! > 0), out) };
}

/** A cycle among `left` (every one of which has a predecessor among them). */
function findCycle(left: readonly string[], out: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const inLeft = new Set(left);
  const pred = new Map<string, string>();
  for (const t of left) for (const u of out.get(t)!) if (inLeft.has(u)) pred.set(u, t);
  const seen: string[] = [];
  let t = left[0]!;
  while (!seen.includes(t)) {
    seen.push(t);
    t = pred.get(t)!;
  }
  return [...seen.slice(seen.indexOf(t)).reverse(), t];
}

/** 5: replay `order` from the seed. */
function replay(h: History, order: readonly string[]): Violation | null {
  const bal = new Map<string, bigint>(h.seed);
  for (const a of h.opened ?? []) if (!bal.has(a)) bal.set(a, 0n);
  const byTx = new Map(h.txs.map((t) => [t.tx, t]));
  for (const tx of order) {
    for (const r of byTx.get(tx)!.rows) bal.set(r.account, bal.get(r.account)! + r.delta);
    for (const r of byTx.get(tx)!.rows) if (bal.get(r.account)! < 0n) return { kind: "negative", account: r.account, tx, balance: bal.get(r.account)! };
  }
  for (const [account, replayed] of bal) {
    const final = h.final.get(account) ?? 0n;
    if (final !== replayed) return { kind: "final", account, replayed, final };
  }
  for (const [account, final] of h.final) if (!bal.has(account)) return { kind: "final", account, replayed: 0n, final };
  return null;
}

const rowCount = (h: History) => h.txs.reduce((n, t) => n + t.rows.length, 0);

/** 2PC and parallel commit: the committed history is explained by one serial order (see the file's comment). */
export function auditSerializable(h: History): Verdict {
  const money = moneyChecks(h);
  if (money !== null) return fail(money);
  const by = perAccount(h);
  if (!(by instanceof Map)) return fail(by);
  const es = edges(by);
  const ids = h.txs.map((t) => t.tx);
  let order: string[];
  let how: "commit_ts" | "conflict";
  // Every conflict between two stamped transactions goes forward in timestamp, stamped all or not.
  const ts = new Map(h.txs.filter((t) => t.commit_ts !== null).map((t) => [t.tx, t.commit_ts!]));
  for (const e of es) if (ts.has(e.from) && ts.has(e.to) && !(ts.get(e.from)! < ts.get(e.to)!)) return fail({ kind: "ts_against_conflict", account: e.account, before: e.from, after: e.to });
  if (h.txs.length > 0 && ts.size === h.txs.length) {
    order = [...ids].sort((a, b) => (ts.get(a)! < ts.get(b)! ? -1 : ts.get(a)! > ts.get(b)! ? 1 : a < b ? -1 : 1));
    how = "commit_ts";
  } else {
    const topo = topological(ids, es);
    if ("cycle" in topo) return fail({ kind: "cycle", txs: topo.cycle });
    order = topo.order;
    how = "conflict";
  }
  const r = replay(h, order);
  return r !== null ? fail(r) : { ok: true, order, by: how, txs: h.txs.length, rows: rowCount(h) };
}

/** The speculative path: money, no lost update, and per account no balance below zero with rows taking effect at their seq. */
export function auditSpeculative(h: History): Verdict {
  const money = moneyChecks(h);
  if (money !== null) return fail(money);
  const by = perAccount(h);
  if (!(by instanceof Map)) return fail(by);
  const bal = new Map<string, bigint>(h.seed);
  for (const [account, rows] of by) {
    let b = bal.get(account) ?? 0n;
    for (const r of rows) {
      b += r.delta;
      if (b < 0n) return fail({ kind: "negative", account, tx: r.tx, balance: b });
    }
    bal.set(account, b);
  }
  for (const a of h.opened ?? []) if (!bal.has(a)) bal.set(a, 0n);
  for (const [account, replayed] of bal) {
    const final = h.final.get(account) ?? 0n;
    if (final !== replayed) return fail({ kind: "final", account, replayed, final });
  }
  return { ok: true, order: [], by: "seq", txs: h.txs.length, rows: rowCount(h) };
}

export interface Answer {
  readonly tx: string;
  readonly status: "committed" | "aborted" | "in_doubt";
  /** The transfer's ops as sent (net per account), "shard:id" -> cents. */
  readonly ops: ReadonlyMap<string, bigint>;
}

export type AnswerViolation =
  | { readonly kind: "committed_rows"; readonly tx: string; readonly why: string }
  | { readonly kind: "aborted_has_rows"; readonly tx: string }
  | { readonly kind: "partial"; readonly tx: string };

/** What each client heard against the rows found (every transaction of the run, `rowsOf` its rows). */
export function auditAnswers(answers: readonly Answer[], rowsOf: ReadonlyMap<string, readonly Row[]>): AnswerViolation | null {
  for (const a of answers) {
    const rows = rowsOf.get(a.tx) ?? [];
    const got = new Map(rows.map((r) => [r.account, r.delta]));
    const all = got.size === a.ops.size && [...a.ops].every(([k, d]) => got.get(k) === d);
    if (a.status === "committed" && !all) return { kind: "committed_rows", tx: a.tx, why: `${rows.length} rows for ${a.ops.size} ops, or other deltas` };
    if (a.status === "aborted" && rows.length > 0) return { kind: "aborted_has_rows", tx: a.tx };
    if (a.status === "in_doubt" && rows.length > 0 && !all) return { kind: "partial", tx: a.tx };
  }
  return null;
}
