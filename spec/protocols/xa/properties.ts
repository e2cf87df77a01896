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
  const xidOf = (t: number, s: number): string => branchXid(sc.txs[t]!.id, sc.shards[s]!);
  const committed = (w: W, t: number, s: number): boolean => w.shards[s]!.history.some((h) => h[0] === xidOf(t, s));
  const present = (w: W, t: number, s: number): boolean => w.shards[s]!.branches.some((b) => b.xid === xidOf(t, s));
  return {
    branchesOf: (t: number): number[] => sc.txs[t]!.branches.map((b) => sc.shards.indexOf(b.shard)),
    xidOf,
    committed,
    present,
    rolledBack: (w: W, t: number, s: number): boolean => w.ghost.existed[t]![s]! && !present(w, t, s) && !committed(w, t, s),
    txs: sc.txs.map((_, t) => t),
    opsOf: (t: number, s: number) => sc.txs[t]!.branches.filter((b) => b.shard === sc.shards[s]).flatMap((b) => b.ops),
  };
}

/**
 * The banking invariants. `owed(w, t)`: t's unapplied deltas count in the
 * total; `promised(w, t)`: every op of t must be applied once its branch has
 * finished.
 */
export function xaBanking<V extends W>(sc: Scenario, owed: (w: V, t: number) => boolean, promised: (w: V, t: number) => boolean) {
  const { branchesOf, xidOf, committed, present, txs, opsOf } = xaFacts(sc);
  const initialTotal = sc.balances.flat().reduce((sum, [, cents]) => sum + cents, 0);
  return {
    /** Banking: balances plus the deltas of committed transactions' branches not yet applied never change. */
    money_conserved: (w: V): boolean => {
      let total = 0;
      for (const sh of w.shards) for (const [, cents] of sh.balances) total += cents;
      for (const t of txs) {
        if (!owed(w, t)) continue;
        for (const s of branchesOf(t)) if (!committed(w, t, s)) total += opsOf(t, s).reduce((sum, op) => sum + op.delta, 0);
      }
      return total === initialTotal;
    },
    /** Banking: no committed balance below zero. */
    no_negative_balance: (w: V): boolean => w.shards.every((sh) => sh.balances.every(([, cents]) => cents >= 0)),
    /** Banking: no op applied twice; every op of a committed transaction applied once its branch has finished. */
    applied_exactly_once: (w: V): boolean =>
      txs.every((t) =>
        branchesOf(t).every((s) => {
          const rows = w.shards[s]!.history.filter((h) => h[0] === xidOf(t, s));
          const ops = opsOf(t, s);
          if (!ops.every((op) => rows.filter((h) => h[1] === op.account).length <= 1)) return false;
          const finished = w.ghost.existed[t]![s]! && !present(w, t, s);
          return !promised(w, t) || !finished || rows.length === ops.length;
        }),
      ),
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
