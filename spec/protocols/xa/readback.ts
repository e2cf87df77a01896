/**
 * The read-back rule of the XA protocols (2PC and parallel commit share one
 * decision key per transaction): what durable facts say of a transaction's
 * outcome, for a process that did not run it or no longer remembers it.
 *
 * Read in this order, which is what makes the answer sound:
 *   1. its decision record in the txlog: the decision;
 *   2. a STAGING record (parallel commit), not a decision: a branch whose
 *      prepare is still in flight may yet complete the implicit commit, so in
 *      doubt until the record is decided (by its coordinator or the
 *      resolver's fence);
 *   3. else history rows of it on a shard: committed (a COMMIT record is
 *      deleted only after every branch committed, and the rows of a
 *      committed branch are visible);
 *   4. else a branch of it still prepared: in doubt (the resolver will
 *      finish it);
 *   5. else nothing of it: null. For a transaction known to have run by an
 *      XA protocol, nothing found means aborted (`nothingFound`): a COMMIT
 *      record is only written once every branch is prepared, so with no
 *      branch prepared or committed a late one has nothing to commit; a
 *      prepared branch that appears later, from a statement of a dead
 *      process, has no record and is presumed aborted. Whether it never ran
 *      or was aborted cannot be told apart (presumed abort forgets aborts).
 *
 * The server model checks the rule (spec/server/readback.ts, property
 * `readback_sound`); `staging-is-commit` is the mutant it catches.
 */
import { decisionKey, decisionOf, type Outcome, type TxId } from "../../kernel/effects.ts";
import { recordAt, type DurableFacts, type ReadBackRule } from "../protocol.ts";

/** A deliberate bug for the checker: a STAGING record read as a commit decision. */
export type XaReadBackMutant = "staging-is-commit";
export const xaReadBackMutants = ["staging-is-commit"] as const satisfies readonly XaReadBackMutant[];

export function xaReadBack(mutant?: XaReadBackMutant): ReadBackRule {
  return {
    keys: (tx: TxId) => [decisionKey(tx)],
    read(tx: TxId, facts: DurableFacts): Outcome | null {
      const record = recordAt(facts, decisionKey(tx));
      const decision = decisionOf(record);
      if (decision !== null) return decision === "commit" ? { status: "committed" } : { status: "aborted", reason: "resolver" };
      if (record?.kind === "staging") return mutant === "staging-is-commit" ? { status: "committed" } : { status: "in_doubt" };
      if (facts.history.length > 0) return { status: "committed" };
      if (facts.prepared.length > 0) return { status: "in_doubt" };
      return null;
    },
    found(tx: TxId, facts: DurableFacts): Record<string, unknown> {
      const record = recordAt(facts, decisionKey(tx));
      const decision = decisionOf(record);
      if (decision !== null) return { decision_record: decision };
      if (record?.kind === "staging") return { staging_record: true };
      return facts.history.length > 0 ? { shards: facts.history } : { prepared_on: facts.prepared };
    },
    nothingFound: "aborted",
  };
}

/** The rule 2PC and parallel commit declare. */
export const XA_READ_BACK: ReadBackRule = xaReadBack();
