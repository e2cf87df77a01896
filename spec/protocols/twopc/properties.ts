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
import * as txlog from "../../env/txlog.ts";
import { decisionKey, decisionOf } from "../../kernel/effects.ts";
import { xaBanking, xaEventually, xaFacts, xaLeadsTo, xaQuiet } from "../xa/properties.ts";

type Pred = (w: World) => boolean;

export function twopcInvariants(sc: Scenario): Record<string, Pred> {
  const { branchesOf, committed, rolledBack, txs } = xaFacts(sc);
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
    /**
     * Banking: money is conserved counting the deltas of branches decided commit but not yet
     * applied; no balance below zero; a transfer the client was told is committed has every op
     * applied exactly once on every branch that has finished (and no op of any transfer twice).
     */
    ...xaBanking(
      sc,
      (w, t) => w.ghost.decision[t] === "commit",
      (w, t) => w.told[t]?.status === "committed",
    ),
  };
}

/** Every transaction finished: no coordinator left running, no branch left on any shard, no decision record left in the log. */
const finished = (w: World): boolean => xaQuiet(w) && w.log.entries.every((e) => e.value.kind !== "decision");

export function twopcEventually(_sc: Scenario) {
  return xaEventually(finished);
}

/** AC5_finishes (../xa/properties.ts, xaLeadsTo): AC5 under weak fairness. */
export function twopcLeadsTo(_sc: Scenario, fair: Fairness<World, Action>) {
  return xaLeadsTo(finished, fair);
}
