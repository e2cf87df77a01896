/**
 * The properties of the speculative path, checked on every reachable state
 * of the composed model (docs/protocols/speculative.md states each as a
 * formula).
 *
 * Notation, per transaction t and shard s of one of its branches:
 *   row(t,s)     the state of the undo table's row under key (t, s), or none;
 *   applied(t,s) row(t,s) in {undo, released}: the branch's deltas are in place;
 *   delta(t,s,a) the branch's delta on account a (debit < 0, credit > 0);
 *   moved(t,s)   (ghost) cents the transaction's statements added to the
 *                shard's balances plus pending, whatever the rows say;
 *   record(t)    the state of the txlog record spec/<t> now (absent once forgotten);
 *   terminal(t)  (ghost) the terminal record SPEC_COMMITTED / SPEC_ROLLED_BACK
 *                once one was written, kept after the record is forgotten
 *                (deleted): a property that reads the terminal record reads
 *                this, so that "written, then deleted" still counts, and a
 *                branch landing after the rollback is still seen.
 */
import type { Fairness } from "../../kernel/model.ts";
import type { Action, Budget, Scenario, World } from "./model.ts";
import * as txlog from "../../env/txlog.ts";
import { rowOf, type LocalShard } from "../../env/local.ts";
import { speculativeKey, speculativeStateOf, type UndoRowState } from "../../kernel/effects.ts";

type Pred = (w: World) => boolean;
type Shards = World["shards"];

/**
 * A property of the shards alone, computed once per shards object: the checker hands the model one object per
 * distinct value (spec/env/collapse.ts, spec/world/memo.ts), and many states share their shards.
 */
function ofShards(p: (shards: Shards) => boolean): Pred {
  const seen = new WeakMap<Shards, boolean>();
  return (w) => {
    let r = seen.get(w.shards);
    if (r === undefined) seen.set(w.shards, (r = p(w.shards)));
    return r;
  };
}

export function speculativeInvariants(sc: Scenario, budget: Budget): Record<string, Pred> {
  const txs = sc.txs.map((_, t) => t);
  // Per transaction (and shard): its branches' shard indices, ops and net delta, computed once (invariants run on every state found).
  const branches = sc.txs.map((tx) => tx.branches.map((b) => sc.shards.indexOf(b.shard)));
  const ops = sc.txs.map((tx) => sc.shards.map((sh) => tx.branches.filter((b) => b.shard === sh).flatMap((b) => b.ops)));
  const deltas = ops.map((row) => row.map((os) => os.reduce((sum, op) => sum + op.delta, 0)));
  const branchesOf = (t: number): readonly number[] => branches[t]!;
  const rowState = (shards: Shards, t: number, s: number): UndoRowState | null => rowOf(shards[s]!, sc.txs[t]!.id, sc.shards[s]!)?.state ?? null;
  const applied = (shards: Shards, t: number, s: number): boolean => {
    const st = rowState(shards, t, s);
    return st === "undo" || st === "released";
  };
  const dead = (shards: Shards, t: number, s: number): boolean => {
    const st = rowState(shards, t, s);
    return st === "tombstone" || st === "compensated";
  };
  const opsOf = (t: number, s: number) => ops[t]![s]!;
  const deltaOf = (t: number, s: number): number => deltas[t]![s]!;
  const terminal = (w: World, t: number) => w.ghost.terminal[t] ?? null;
  const initial = sc.balances.flat().reduce((sum, [, cents]) => sum + cents, 0);
  const initialOf = (s: number, a: number): number => sc.balances[s]!.find(([id]) => id === a)?.[1] ?? 0;
  const shardSum = (sh: LocalShard, col: 1 | 2): number => sh.accounts.reduce((sum, acct) => sum + acct[col], 0);
  /** Money that left one shard of t and has not reached another yet (or the reverse). */
  const inFlight = (shards: Shards, t: number): number => -branchesOf(t).reduce((sum, s) => sum + (applied(shards, t, s) ? deltaOf(t, s) : 0), 0);
  const rolledBack = (shards: Shards, t: number): boolean => branchesOf(t).some((s) => dead(shards, t, s));

  /** What a reader of account a on shard s sees, per claim, from the rows alone. */
  const expected = (shards: Shards, s: number, a: number) => {
    let balance = initialOf(s, a);
    let pending = 0;
    for (const t of txs) {
      const st = rowState(shards, t, s);
      for (const op of opsOf(t, s)) {
        if (op.account !== a) continue;
        if (op.delta < 0 && (st === "undo" || st === "released")) balance += op.delta;
        if (op.delta > 0 && st === "undo") pending += op.delta;
        if (op.delta > 0 && st === "released") balance += op.delta;
      }
    }
    return { balance, pending };
  };

  return {
    // ofShards: the properties that read the shards alone, computed once per shards object.
    /** No spendable balance (and no pending credit) is ever below zero. */
    no_negative_balance: ofShards((shards) => shards.every((sh) => sh.accounts.every(([, b, p]) => b >= 0 && p >= 0))),
    /** Balances + pending credits + money in flight between the shards of a transaction = the initial total. */
    money_conserved: ofShards(
      (shards) => shards.reduce((sum, sh) => sum + shardSum(sh, 1) + shardSum(sh, 2), 0) + txs.reduce((sum, t) => sum + inFlight(shards, t), 0) === initial,
    ),
    /** Once nothing is in flight and nothing is pending, the balances alone add up to the initial total. */
    balances_conserved_when_settled: ofShards(
      (shards) =>
        txs.some((t) => inFlight(shards, t) !== 0) ||
        shards.some((sh) => shardSum(sh, 2) !== 0) ||
        shards.reduce((sum, sh) => sum + shardSum(sh, 1), 0) === initial,
    ),
    /** The undo row is durable exactly when the write is: what t moved on s is what its row accounts for. */
    undo_durable_with_write: (w) => txs.every((t) => branchesOf(t).every((s) => w.ghost.moved[t]![s] === (applied(w.shards, t, s) ? deltaOf(t, s) : 0))),
    /** No compensation changes a shard twice. */
    compensated_at_most_once: (w) => w.ghost.compensations.every((row) => row.every((n) => n <= 1)),
    /** A rolled-back transaction (some branch's key holds a tombstone) with nothing left to undo moved no money at all. */
    rollback_restores_total: (w) =>
      txs.every(
        (t) => !rolledBack(w.shards, t) || branchesOf(t).some((s) => rowState(w.shards, t, s) === "undo") || branchesOf(t).every((s) => w.ghost.moved[t]![s] === 0),
      ),
    /** A client told "committed" never sees the transaction rolled back. */
    committed_never_rolled_back: (w) => txs.every((t) => w.told[t]?.status !== "committed" || (!rolledBack(w.shards, t) && terminal(w, t) !== "SPEC_ROLLED_BACK")),
    /** A client told "aborted" never sees the transaction committed: some branch's key holds a tombstone, so none can release. */
    aborted_is_final: (w) =>
      txs.every((t) => w.told[t]?.status !== "aborted" || (rolledBack(w.shards, t) && !branchesOf(t).some((s) => rowState(w.shards, t, s) === "released"))),
    /**
     * A terminal record is the truth on the shards, and stays so, deleted or not: committed means
     * every branch released; rolled back means no branch applied, now or later (a late branch landing
     * after the rollback shows here, even once the record is forgotten).
     */
    terminal_record_is_final: (w) =>
      txs.every((t) => {
        const r = terminal(w, t);
        if (r === "SPEC_COMMITTED") return branchesOf(t).every((s) => rowState(w.shards, t, s) === "released");
        if (r === "SPEC_ROLLED_BACK") return !branchesOf(t).some((s) => applied(w.shards, t, s));
        return true;
      }),
    /**
     * With no fault (no crash, shard crash or log fault spent), a speculation is rolled back only
     * for insufficient funds or its own apply timeout: recovery never rolls back a live one.
     */
    no_spurious_rollback: (w) =>
      w.budget.crash !== budget.crash ||
      w.budget.shardCrash !== budget.shardCrash ||
      w.budget.logFault !== budget.logFault ||
      w.told.every((o) => o?.status !== "aborted" || o.reason === "insufficient_funds" || o.reason === "timeout"),
    // Isolation (docs/protocols/speculative.md, "Isolation"): what a reader of one account sees.
    /** ISO1: a debit is in the balance as soon as its branch applied, committed or not; a compensated debit is back. */
    iso_debits_visible_at_once: ofShards((shards) => shards.every((sh, s) => sh.accounts.every(([a, b]) => b === expected(shards, s, a).balance))),
    /** ISO2: a credit is pending (not spendable) while its branch's row is undo, and spendable only once released. */
    iso_credits_pending_until_final: ofShards((shards) => shards.every((sh, s) => sh.accounts.every(([a, , p]) => p === expected(shards, s, a).pending))),
    /** ISO3: a credit is released only when every branch of its transaction applied (the transaction is committed). */
    iso_released_only_when_committed: ofShards((shards) =>
      txs.every((t) => !branchesOf(t).some((s) => rowState(shards, t, s) === "released") || branchesOf(t).every((s) => applied(shards, t, s))),
    ),
  };
}

/**
 * Every speculation ended and is forgotten: every coordinator is done, no
 * undo row is left in state undo, no record is left in the txlog
 * (SPEC_EXECUTING settled, terminal records deleted), and every transaction
 * that moved anything (a row other than a tombstone) had its SPEC_COMMITTED
 * or SPEC_ROLLED_BACK record written before it was forgotten (the ghost
 * `terminal`).
 */
function allEnded(sc: Scenario): (w: World) => boolean {
  const ids = sc.txs.map((t) => t.id);
  const keys = ids.map((tx) => speculativeKey(tx));
  return (w) =>
    w.coords.every((c) => !c.alive || c.st.phase !== "running") &&
    w.shards.every((sh) => sh.undo.every((r) => r.state !== "undo")) &&
    ids.every((tx, t) => {
      if (speculativeStateOf(txlog.get(w.log, keys[t]!)?.value) !== null) return false;
      const left = w.shards.some((sh) => sh.undo.some((r) => r.tx === tx && r.state !== "tombstone"));
      return !left || w.ghost.terminal[t] !== null;
    });
}

export function speculativeEventually(sc: Scenario) {
  return {
    /** As a possibility: once faults stop, every speculation can still end and be forgotten. */
    every_speculation_ends: {
      goal: allEnded(sc),
      allowed: (a: Action) => !(a.k === "crash" || a.k === "logBatch" || (a.k === "complete" && a.fault)),
    },
  };
}

export function speculativeLeadsTo(sc: Scenario, fair: Fairness<World, Action>) {
  return {
    /** As liveness: every speculation eventually ends (true ~> ended), under weak fairness of every non-fault step (model.ts, fairStep). */
    every_speculation_finishes: { from: () => true, to: allEnded(sc), fair },
  };
}
