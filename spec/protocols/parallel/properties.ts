/**
 * The properties of parallel commit, checked on every reachable state of the
 * composed model (docs/protocols/parallel-commit.md states each as a formula).
 *
 * Notation, per transaction t and shard s of one of t's branches:
 *   committed(t,s)  the shard's history holds t's rows (XA COMMIT applied);
 *   present(t,s)    the branch is on the shard (any state);
 *   rolledBack(t,s) the branch once existed, is gone and not committed;
 *   prepared*(t,s)  the branch was PREPARED at some point (ghost);
 *   decision*(t)    the first COMMIT or ABORT record ever durable (ghost);
 *   IC(t)           the implicit commit condition: the record at t's
 *                   decision key is STAGING and every branch of t is
 *                   PREPARED on its shard, both in the same state;
 *   implicit*(t)    IC(t) held in some state so far (ghost);
 *   commit*(t)      implicit*(t) or decision*(t) = commit: t is committed.
 */
import type { Fairness } from "../../kernel/model.ts";
import type { Action, Scenario, World } from "./model.ts";
import { branchXid } from "../../env/executor.ts";
import * as txlog from "../../env/txlog.ts";
import { decisionKey, decisionOf } from "../../kernel/effects.ts";
import { xaBanking, xaEventually, xaFacts, xaLeadsTo, xaQuiet } from "../xa/properties.ts";

type Pred = (w: World) => boolean;

/** IC(t), on one state: used by the model to keep implicit* and by the properties. */
export function implicitlyCommitted(sc: Scenario, w: Pick<World, "log" | "shards">, t: number): boolean {
  if (txlog.get(w.log, decisionKey(sc.txs[t]!.id))?.value.kind !== "staging") return false;
  return sc.txs[t]!.branches.every((b) => {
    const s = sc.shards.indexOf(b.shard);
    const xid = branchXid(sc.txs[t]!.id, b.shard);
    return w.shards[s]!.branches.some((x) => x.xid === xid && x.state === "PREPARED");
  });
}

export function parallelInvariants(sc: Scenario): Record<string, Pred> {
  const { branchesOf, committed, rolledBack, txs } = xaFacts(sc);
  const implicit = (w: World, t: number): boolean => w.ghost.implicit?.[t] === true;
  const commitStar = (w: World, t: number): boolean => implicit(w, t) || w.ghost.decision[t] === "commit";

  return {
    /** AC1: no branch committed while another branch of the same transaction rolled back. */
    AC1_agreement: (w) => txs.every((t) => !(branchesOf(t).some((s) => committed(w, t, s)) && branchesOf(t).some((s) => rolledBack(w, t, s)))),
    /** AC2: a durable decision is never replaced by the other one, and an implicitly committed transaction never gets an ABORT record. */
    AC2_irrevocable: (w) =>
      txs.every((t) => {
        const rec = decisionOf(txlog.get(w.log, decisionKey(sc.txs[t]!.id))?.value);
        return (rec === null || w.ghost.decision[t] === rec) && !(implicit(w, t) && w.ghost.decision[t] === "abort");
      }),
    /** AC3: a branch commits only if every branch of its transaction was prepared. */
    AC3_commit_needs_all_yes: (w) =>
      txs.every((t) => !branchesOf(t).some((s) => committed(w, t, s)) || branchesOf(t).every((s) => w.ghost.prepared[t]![s]!)),
    /** AC4: with no fault and no timeout, a transaction whose branches all prepared is not aborted. */
    AC4_all_yes_commits: (w) =>
      w.ghost.faulty ||
      txs.every((t) => !branchesOf(t).every((s) => w.ghost.prepared[t]![s]!) || w.told[t] === null || w.told[t]!.status === "committed"),
    /** The fence: once the implicit commit condition held, no branch of the transaction is ever rolled back. */
    implicit_commit_is_final: (w) => txs.every((t) => !implicit(w, t) || !branchesOf(t).some((s) => rolledBack(w, t, s))),
    /** The client hears "committed" only if the transaction is committed: IC held, or a COMMIT record was durable. */
    committed_reply_is_committed: (w) => txs.every((t) => w.told[t]?.status !== "committed" || commitStar(w, t)),
    /** The client hears "aborted" only if no branch can ever commit (checked in every later state too). */
    aborted_reply_is_final: (w) =>
      txs.every((t) => w.told[t]?.status !== "aborted" || (!commitStar(w, t) && !branchesOf(t).some((s) => committed(w, t, s)))),
    /** Banking (../xa/properties.ts): with commit*(t) both for the deltas owed and for the ops promised. */
    ...xaBanking(sc, commitStar, commitStar),
  };
}

/** Every transaction finished: no coordinator left running, no branch left on any shard, no STAGING, COMMIT or ABORT record left in the log. */
const finished = (w: World): boolean => xaQuiet(w) && w.log.entries.every((e) => e.value.kind === "epoch");

export function parallelEventually(_sc: Scenario) {
  return xaEventually(finished);
}

/** AC5_finishes (../xa/properties.ts, xaLeadsTo): AC5 under weak fairness. */
export function parallelLeadsTo(_sc: Scenario, fair: Fairness<World, Action>) {
  return xaLeadsTo(finished, fair);
}
