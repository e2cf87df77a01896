/**
 * What the load generator drives: anything that runs a transfer and says how
 * it ended. The coordinator over HTTP (http-target.ts, one target per
 * protocol) and the floor (floor.ts) are both targets, so the closed loop
 * (load.ts) measures them the same way, and a comparison of protocols is a
 * list of targets run in turn.
 */
import type { Transfer } from "./workload.ts";

export type Outcome =
  /** Committed: the decision is durable; `tx` must be in the history exactly once. */
  | { readonly kind: "committed"; readonly tx: string }
  /** Aborted for `reason`: nothing of `tx` may be applied anywhere. */
  | { readonly kind: "aborted"; readonly tx: string; readonly reason: string }
  /** The coordinator could not learn its decision; the resolver settles `tx` all-or-nothing. */
  | { readonly kind: "in_doubt"; readonly tx: string }
  /** Refused before anything ran (503 overload/not ready, connection refused): no transaction exists. */
  | { readonly kind: "rejected"; readonly reason: string }
  /** The answer was lost (connection reset mid-request): it may or may not have run, all-or-nothing. */
  | { readonly kind: "unknown"; readonly reason: string };

/**
 * Time spent per phase of the commit (exec, prepare, log, commit, ...) since
 * the target started: total seconds and how many times, as Prometheus keeps
 * them. The difference of two readings gives the mean of each phase over
 * the period between: where a transfer's time goes.
 */
export type PhaseTotals = Record<string, { sum_s: number; count: number }>;

export interface TransferTarget {
  /** Shown in reports: a protocol's name, or floor. */
  readonly name: string;
  transfer(t: Transfer): Promise<Outcome>;
  phaseTotals(): Promise<PhaseTotals>;
  close(): Promise<void>;
}
