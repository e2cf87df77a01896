/**
 * Idempotency keys as spec: the rules runtime/idempotency.ts interprets. A
 * key is claimed durably before anything runs; only the claimant runs a
 * coordinator and stores the outcome once its coordinator replied. A later
 * request with the key answers by `answerOfClaim`:
 *
 *   - an outcome stored in the claim: that outcome (one key, one answer);
 *   - else the claimant is this process and its coordinator told a final
 *     outcome, or told in_doubt and has not ended: what it told;
 *   - else (the claimant is gone, or its coordinator answered in_doubt and
 *     ended): settle by read-back (./readback.ts `settle`), the rule
 *     GET /transactions/:id follows, so that one id never has two answers.
 *
 * What is stored: a final outcome only (`storable`); in_doubt is left open
 * for a later request to settle.
 *
 * Not done yet (issue 10): the claim/store as a role whose effects go
 * through the txlog port and the traces, checked by a property "one key, one
 * answer" under crashes; runtime/idempotency.ts still writes the claim to
 * etcd itself.
 */
import type { Outcome } from "../kernel/effects.ts";

/** What this process knows of the claimed transaction's coordinator: what it told, and whether it ended in doubt (nothing more will come of it). */
export interface Held {
  readonly told: Outcome;
  readonly endedInDoubt: boolean;
}

export type ClaimAnswer =
  | { readonly from: "stored"; readonly outcome: Outcome }
  | { readonly from: "coordinator"; readonly outcome: Outcome }
  /** Settle by read-back (./readback.ts `settle`), then store it if `storable`. */
  | { readonly from: "read-back" };

/** Where a request with an already claimed key takes its answer from. `held`: undefined when no coordinator of this process ran it. */
export function answerOfClaim(stored: Outcome | undefined, held: Held | undefined): ClaimAnswer {
  if (stored !== undefined) return { from: "stored", outcome: stored };
  if (held !== undefined && (held.told.status !== "in_doubt" || !held.endedInDoubt)) return { from: "coordinator", outcome: held.told };
  return { from: "read-back" };
}

/** A claim stores a final outcome; in_doubt is not an outcome, a later request settles it. */
export const storable = (o: Outcome): boolean => o.status !== "in_doubt";
