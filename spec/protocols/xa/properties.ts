/**
 * What the XA protocols' properties (../twopc/properties.ts,
 * ../parallel/properties.ts) say alike: the facts they are written in, the
 * banking invariants (each protocol says when a transaction counts as
 * committed), and AC5 as a possibility and as liveness (each protocol says
 * when every transaction is finished).
 *
 * Notation, per transaction t and shard s of one of t's branches:
 *   committed(t,s)  the shard's history holds t's rows (XA COMMIT applied);
 *   present(t,s)    the branch is on the shard (any state);
 *   rolledBack(t,s) the branch once existed, is gone and not committed.
 */
import type { Fairness } from "../../kernel/model.ts";
import { branchXid } from "../../env/executor.ts";
import type { Action, Scenario } from "../../world/types.ts";
import type { XaWorld } from "./world.ts";

type W = XaWorld<{ readonly phase: string }, unknown>;

/** The per-transaction, per-shard facts the XA properties are written in. */
export function xaFacts(sc: Scenario) {
  // Computed once per scenario: invariants run on every state found, and these were rebuilt on each call.
  const xids = sc.txs.map((tx) => sc.shards.map((sh) => branchXid(tx.id, sh)));
  const branches = sc.txs.map((tx) => tx.branches.map((b) => sc.shards.indexOf(b.shard)));
  const ops = sc.txs.map((tx) => sc.shards.map((sh) => tx.branches.filter((b) => b.shard === sh).flatMap((b) => b.ops)));
  const xidOf = (t: number, s: number): string => xids[t]![s]!;
  const committed = (w: W, t: number, s: number): boolean => hasRow(w.shards[s]!.history, xids[t]![s]!);
  const present = (w: W, t: number, s: number): boolean => hasBranch(w.shards[s]!.branches, xids[t]![s]!);
  return {
    branchesOf: (t: number): readonly number[] => branches[t]!,
    xidOf,
    committed,
    present,
    rolledBack: (w: W, t: number, s: number): boolean => w.ghost.existed[t]![s]! && !present(w, t, s) && !committed(w, t, s),
    txs: sc.txs.map((_, t) => t),
    opsOf: (t: number, s: number) => ops[t]![s]!,
  };
}

/** Whether a shard's history holds a row of branch `xid` (a loop: no closure per call). */
function hasRow(history: W["shards"][number]["history"], xid: string): boolean {
  for (let i = 0; i < history.length; i++) if (history[i]![0] === xid) return true;
  return false;
}

function hasBranch(branches: W["shards"][number]["branches"], xid: string): boolean {
  for (let i = 0; i < branches.length; i++) if (branches[i]!.xid === xid) return true;
  return false;
}

/**
 * The banking invariants. `owed(w, t)`: t's unapplied deltas count in the
 * total; `promised(w, t)`: every op of t must be applied once its branch has
 * finished.
 */
export function xaBanking<V extends W>(sc: Scenario, owed: (w: V, t: number) => boolean, promised: (w: V, t: number) => boolean) {
  const { branchesOf, xidOf, committed, present, txs, opsOf } = xaFacts(sc);
  const initialTotal = sc.balances.flat().reduce((sum, [, cents]) => sum + cents, 0);
  const deltas = txs.map((t) => sc.shards.map((_, s) => opsOf(t, s).reduce((sum, op) => sum + op.delta, 0)));
  return {
    /** Banking: balances plus the deltas of committed transactions' branches not yet applied never change. */
    money_conserved: (w: V): boolean => {
      let total = 0;
      for (const sh of w.shards) for (const [, cents] of sh.balances) total += cents;
      for (const t of txs) {
        if (!owed(w, t)) continue;
        for (const s of branchesOf(t)) if (!committed(w, t, s)) total += deltas[t]![s]!;
      }
      return total === initialTotal;
    },
    /** Banking: no committed balance below zero. */
    no_negative_balance: (w: V): boolean => w.shards.every((sh) => sh.balances.every(([, cents]) => cents >= 0)),
    /** Banking: no op applied twice; every op of a committed transaction applied once its branch has finished. */
    applied_exactly_once: (w: V): boolean => {
      for (const t of txs) {
        for (const s of branchesOf(t)) {
          const history = w.shards[s]!.history;
          const xid = xidOf(t, s);
          const ops = opsOf(t, s);
          // rows: t's rows on s; each op's account at most once among them.
          let rows = 0;
          for (const h of history) if (h[0] === xid) rows++;
          for (const op of ops) {
            let n = 0;
            for (const h of history) if (h[0] === xid && h[1] === op.account) n++;
            if (n > 1) return false;
          }
          const finished = w.ghost.existed[t]![s]! && !present(w, t, s);
          if (promised(w, t) && finished && rows !== ops.length) return false;
        }
      }
      return true;
    },
  };
}

/** Every coordinator finished and no branch left on any shard (each protocol adds what its log must hold then). */
export const xaQuiet = (w: W): boolean => w.coords.every((c) => !c.alive || c.st.phase === "done") && w.shards.every((sh) => sh.branches.length === 0);

/** AC5 as a possibility: once faults stop, every transaction can still finish. */
export const xaEventually = <V>(finished: (w: V) => boolean) => ({
  AC5_terminates: {
    goal: finished,
    allowed: (a: Action) => !(a.k === "crash" || a.k === "shardCrash" || a.k === "logBatch" || (a.k === "complete" && a.fault)),
  },
});

/**
 * AC5 as liveness: every transaction eventually finishes (true ~> finished)
 * under weak fairness of every non-fault step (spec/world/world.ts, fairStep).
 * Unlike AC5_terminates it also fails on a fair cycle that never finishes
 * although it could leave at every turn (a retry loop that never gives up).
 */
export const xaLeadsTo = <V>(finished: (w: V) => boolean, fair: Fairness<V, Action>) => ({
  AC5_finishes: { from: () => true, to: finished, fair },
});
