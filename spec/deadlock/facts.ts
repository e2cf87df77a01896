/**
 * What the detector may know of a transaction this process coordinates, from
 * its coordinator's state (spec/server/coordinator.ts): the facts the victim
 * choice (./victims.ts) is given. Conservative: whatever might already have
 * a durable commit decision counts as decided.
 *
 * - XA family (2PC, parallel commit): until the coordinator leaves `voting`
 *   (or while it is `aborting`) no commit decision was written; after, one may
 *   be durable. Prepared everywhere: every branch answered XA PREPARE ok.
 * - Any other path (the one-phase path, the speculative path): the detector
 *   never aborts it (reported as decided): its branches are one-phase local
 *   transactions that never hold a lock on one shard while waiting on another.
 */
import type { ServerCoordinatorState } from "../server/coordinator.ts";
import type { TxFacts } from "./victims.ts";
import { protocolNamed } from "../protocols/registry.ts";

const XA_UNDECIDED = new Set(["idle", "voting", "aborting"]);
const PREPARED = new Set(["prepared", "committing", "committed", "retry_wait"]);

export function factsOfCoordinator(st: ServerCoordinatorState): TxFacts {
  // The XA family: the registered protocols whose coordinators run XA branches (Protocol.needs).
  if (st.protocol === null || st.path !== "many" || protocolNamed(st.protocol).needs !== "xa") return { decided: true, preparedEverywhere: false };
  const branches = (st.inner as { branches?: ReadonlyArray<{ status: string }> }).branches ?? [];
  return {
    decided: !XA_UNDECIDED.has(st.phase),
    preparedEverywhere: branches.length > 0 && branches.every((b) => PREPARED.has(b.status)),
  };
}
