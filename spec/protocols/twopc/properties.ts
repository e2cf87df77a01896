/**
 * The properties of 2PC with presumed abort, checked on every reachable state
 * of the composed model (docs/protocols/2pc.md states each as a formula).
 *
 * Notation, per transaction t and shard s of one of t's branches:
 *   committed(t,s)  the shard's history holds t's rows (XA COMMIT applied);
 *   finished(t,s)   the branch once existed and is gone from the shard;
 *   rolledBack(t,s) finished and not committed;
 *   prepared*(t,s)  the branch was PREPARED at some point (ghost);
 *   decision*(t)    the first decision ever durable in the txlog (ghost).
 */
import type { Fairness } from "../../kernel/model.ts";
import type { Action, Scenario, World } from "./model.ts";
import { branchXid } from "../../env/executor.ts";
import * as txlog from "../../env/txlog.ts";
import { decisionKey, decisionOf } from "../../kernel/effects.ts";

type Pred = (w: World) => boolean;

export function twopcInvariants(sc: Scenario): Record<string, Pred> {
  const branchesOf = (t: number): number[] => sc.txs[t]!.branches.map((b) => sc.shards.indexOf(b.shard));
  const xidOf = (t: number, s: number): string => branchXid(sc.txs[t]!.id, sc.shards[s]!);
  const committed = (w: World, t: number, s: number): boolean => w.shards[s]!.history.some((h) => h[0] === xidOf(t, s));
  const present = (w: World, t: number, s: number): boolean => w.shards[s]!.branches.some((b) => b.xid === xidOf(t, s));
  const rolledBack = (w: World, t: number, s: number): boolean => w.ghost.existed[t]![s]! && !present(w, t, s) && !committed(w, t, s);
  const txs = sc.txs.map((_, t) => t);
  const initialTotal = sc.balances.flat().reduce((sum, [, cents]) => sum + cents, 0);
  const deltaOf = (t: number, s: number): number =>
    sc.txs[t]!.branches.filter((b) => b.shard === sc.shards[s]).flatMap((b) => b.ops).reduce((sum, op) => sum + op.delta, 0);
  const durableCommit = (w: World, t: number): boolean =>
    decisionOf(txlog.get(w.log, decisionKey(sc.txs[t]!.id))?.value) === "commit" || branchesOf(t).every((s) => committed(w, t, s));

  return {
    /** AC1: no branch committed while another branch of the same transaction rolled back. */
    AC1_agreement: (w) =>
      txs.every((t) => !(branchesOf(t).some((s) => committed(w, t, s)) && branchesOf(t).some((s) => rolledBack(w, t, s)))),
    /** AC2: a decision, once durable, is never replaced by the other one. */
    AC2_irrevocable: (w) =>
      txs.every((t) => {
        const rec = decisionOf(txlog.get(w.log, decisionKey(sc.txs[t]!.id))?.value);
        return rec === null || w.ghost.decision[t] === rec;
      }),
    /**
     * AC3: a branch commits only if every branch of its transaction was prepared
     * (a transaction of one branch votes by committing in one phase).
     */
    AC3_commit_needs_all_yes: (w) =>
      txs.every(
        (t) => branchesOf(t).length === 1 || !branchesOf(t).some((s) => committed(w, t, s)) || branchesOf(t).every((s) => w.ghost.prepared[t]![s]!),
      ),
    /** AC4: with no fault and no timeout, a transaction whose branches all prepared is not aborted. */
    AC4_all_yes_commits: (w) =>
      w.ghost.faulty ||
      txs.every((t) => {
        if (!branchesOf(t).every((s) => w.ghost.prepared[t]![s]!)) return true;
        const told = w.told[t];
        return told === null || told === undefined || told.status === "committed";
      }),
    /** The client hears "committed" only once the commit is durable (the record, or every branch committed). */
    committed_reply_is_durable: (w) => txs.every((t) => w.told[t]?.status !== "committed" || durableCommit(w, t)),
    /** The client hears "aborted" only if no branch can ever commit (checked in every later state too). */
    aborted_reply_is_final: (w) =>
      txs.every((t) => w.told[t]?.status !== "aborted" || (w.ghost.decision[t] !== "commit" && !branchesOf(t).some((s) => committed(w, t, s)))),
    /** Banking: balances plus the deltas of branches decided commit but not yet applied never change. */
    money_conserved: (w) => {
      let total = 0;
      for (const sh of w.shards) for (const [, cents] of sh.balances) total += cents;
      for (const t of txs) {
        if (w.ghost.decision[t] !== "commit") continue;
        for (const s of branchesOf(t)) if (!committed(w, t, s)) total += deltaOf(t, s);
      }
      return total === initialTotal;
    },
    /** Banking: no committed balance below zero. */
    no_negative_balance: (w) => w.shards.every((sh) => sh.balances.every(([, cents]) => cents >= 0)),
    /**
     * Banking: a transfer the client was told is committed has every op applied exactly
     * once on every branch that has finished (and no op of any transfer twice).
     */
    applied_exactly_once: (w) =>
      txs.every((t) =>
        branchesOf(t).every((s) => {
          const rows = w.shards[s]!.history.filter((h) => h[0] === xidOf(t, s));
          const ops = sc.txs[t]!.branches.filter((b) => b.shard === sc.shards[s]).flatMap((b) => b.ops);
          if (!ops.every((op) => rows.filter((h) => h[1] === op.account).length <= 1)) return false;
          const finished = w.ghost.existed[t]![s]! && !present(w, t, s);
          return w.told[t]?.status !== "committed" || !finished || rows.length === ops.length;
        }),
      ),
  };
}

/** Every transaction finished: no coordinator left running, no branch left on any shard, no decision record left in the log. */
const finished = (w: World): boolean =>
  w.coords.every((c) => !c.alive || c.st.phase === "done") &&
  w.shards.every((sh) => sh.branches.length === 0) &&
  w.log.entries.every((e) => e.value.kind !== "decision");

export function twopcEventually(_sc: Scenario) {
  return {
    /** AC5 as a possibility: once faults stop, every transaction can still finish. */
    AC5_terminates: {
      goal: finished,
      allowed: (a: Action) => !(a.k === "crash" || a.k === "shardCrash" || (a.k === "complete" && a.fault)),
    },
  };
}

export function twopcLeadsTo(_sc: Scenario, fair: Fairness<World, Action>) {
  return {
    /**
     * AC5 as liveness: every transaction eventually finishes (true ~> finished)
     * under weak fairness of every non-fault step (spec/world/world.ts, fairStep). Unlike
     * AC5_terminates it also fails on a fair cycle that never finishes although
     * it could leave at every turn (a retry loop that never gives up).
     */
    AC5_finishes: { from: () => true, to: finished, fair },
  };
}
