/**
 * Concluding a transaction by hand (POST /admin/transactions/:id/conclude):
 * an operator asks for a direction, and the answer comes only from what the
 * protocol already decided. Nothing here writes a decision: a transaction
 * whose outcome durable state does not give yet is handed to the resolver
 * (the checked role that presumes abort, decides a STAGING record, settles a
 * speculation), and the operator hears what it did. So a person can hurry
 * the resolver and see why something is stuck, never overrule the protocol:
 * never roll back a transaction whose commit is durable, never commit one
 * with no durable commit.
 *
 *   readBack says committed / aborted, the operator asked the same: "final"
 *     (the resolver still finishes branches left prepared: "scan").
 *   readBack says the other: "refused", with why.
 *   readBack says in_doubt: "resolve": scan now, then read back again and
 *     answer with what the protocol decided (`afterScan`).
 *   nothing of it found: "unknown".
 *
 * The server model checks it (`conclude_sound`, ./readback-sound.ts): in
 * every reachable state, for both directions, a "final" verdict never
 * contradicts what is final about the transaction. Mutant
 * `conclude-as-asked` (the operator's direction taken as the outcome) is
 * caught.
 */
import type { Outcome } from "../kernel/effects.ts";

export type ConcludeDirection = "commit" | "rollback";
export const CONCLUDE_DIRECTIONS: readonly ConcludeDirection[] = ["commit", "rollback"];

export type ConcludeVerdict =
  | { readonly t: "final"; readonly outcome: "committed" | "aborted" }
  | { readonly t: "refused"; readonly outcome: "committed" | "aborted"; readonly why: string }
  | { readonly t: "resolve" }
  | { readonly t: "unknown" };

export type ConcludeMutant = "conclude-as-asked";

const wanted = (d: ConcludeDirection): "committed" | "aborted" => (d === "commit" ? "committed" : "aborted");

/** The verdict for `direction` from what durable state says (spec/server/readback.ts `readBack`; null: nothing found). */
export function conclude(found: Outcome | null, direction: ConcludeDirection, mutant?: ConcludeMutant): ConcludeVerdict {
  if (mutant === "conclude-as-asked") return found === null ? { t: "unknown" } : { t: "final", outcome: wanted(direction) };
  if (found === null) return { t: "unknown" };
  if (found.status === "in_doubt") return { t: "resolve" };
  if (found.status === wanted(direction)) return { t: "final", outcome: found.status };
  return {
    t: "refused",
    outcome: found.status,
    why:
      found.status === "committed"
        ? "its commit is durable: rolling it back would undo money the client was told moved"
        : "it is aborted: its decision (or the protocol's rule for what was never decided) is durable and final",
  };
}

/**
 * After the resolver scanned a transaction that was in doubt: what the
 * operator hears. The protocol's outcome when durable state gives one
 * (`matches`: it is what was asked). Nothing of it left (no record, no
 * history row, nothing prepared, no undo row) after it was in doubt means
 * the resolver rolled it back and forgot it: aborted. Still in doubt: a
 * shard or the log did not answer, or a live coordinator owns it.
 */
export function afterScan(found: Outcome | null, direction: ConcludeDirection): { readonly outcome: Outcome; readonly matches: boolean } {
  const outcome: Outcome = found ?? { status: "aborted", reason: "resolver" };
  return { outcome, matches: outcome.status === wanted(direction) };
}
