/**
 * What the durable state says about a transaction, for a process that did
 * not run it (or no longer remembers it): after a restart, for an
 * idempotency key whose claimant died, for GET /transactions/:id.
 *
 * Read in this order, which is what makes the answer sound:
 *   1. its decision record in the txlog: the decision;
 *   2. else history rows of it on a shard: committed (a COMMIT record is
 *      deleted only after every branch committed, and the rows of a
 *      committed branch are visible);
 *   3. else a branch of it still prepared: in doubt (the resolver will
 *      finish it);
 *   4. else nothing of it exists: it never committed, and never will (a
 *      COMMIT record is only written once every branch is prepared, so with
 *      no branch prepared or committed a late one has nothing to commit; a
 *      prepared branch that appears later, from a statement of a dead
 *      process, has no record and is presumed aborted). Whether it never ran
 *      or was aborted cannot be told apart (presumed abort forgets aborts).
 *
 * Parallel commit: a STAGING record is not a decision; with it, a branch
 * whose prepare is still in flight may yet complete the implicit commit, so
 * the answer is in doubt until the record is decided (by its coordinator or
 * the resolver's fence).
 *
 * The speculative path (docs/protocols/speculative.md) is read first and
 * differently: its history rows are written when a branch applies, before
 * the outcome is known, so they prove nothing. Its terminal record says the
 * outcome; else the branch keys in speculative_undo decide by the protocol's own
 * rule (spec/protocols/speculative/settle.ts `outcomeOfKeys`); else it is in
 * doubt.
 *
 * The same rule settles a transaction this process still holds in memory
 * once its coordinator answered in_doubt and ended (`settledOutcome`), so
 * that one id never has two answers: GET /transactions/:id, the idempotency
 * path and a restarted server all read the outcome from here.
 */
import { decisionKey, decisionOf, speculativeKey, speculativeStateOf, type Outcome, type ShardId, type TxId, type UndoRowState } from "../spec/kernel/effects.ts";
import { outcomeOfKeys } from "../spec/protocols/speculative/settle.ts";
import type { TxlogStore } from "./adapters/ports.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";

export type DurableStatus =
  | { found: "decision"; decision: "commit" | "abort" }
  | { found: "history"; shards: ShardId[] }
  | { found: "prepared"; shards: ShardId[] }
  /** Parallel commit's STAGING record, not decided yet. */
  | { found: "staging" }
  /** A speculation: its outcome, or null while its keys do not decide it yet. */
  | { found: "speculation"; outcome: "commit" | "rollback" | null }
  | { found: "nothing" };

export class DurableUnavailable extends Error {}

const TX_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Throws DurableUnavailable naming what did not answer. `shards`: where to look (all when absent). */
export async function durableStatus(tx: TxId, deps: { xa: XaMysql; log: TxlogStore }, shards: readonly ShardId[] = deps.xa.shards): Promise<DurableStatus> {
  if (!TX_ID.test(tx)) return { found: "nothing" };
  const listed = await deps.log.list(decisionKey(tx));
  if (!listed.ok) throw new DurableUnavailable("the transaction log did not answer");
  const record = listed.entries.find((e) => e.key === decisionKey(tx))?.value;
  const decision = decisionOf(record);
  if (decision !== null) return { found: "decision", decision };
  if (record?.kind === "staging") return { found: "staging" };
  const speculation = await speculationStatus(tx, deps);
  if (speculation !== null) return speculation;
  const withHistory: ShardId[] = [];
  const prepared: ShardId[] = [];
  for (const shard of shards) {
    if (!deps.xa.shards.includes(shard)) continue;
    const h = await deps.xa.pool(shard).run<unknown[]>(`SELECT 1 FROM history WHERE xid = '${tx}' LIMIT 1`);
    if (!h.ok) throw new DurableUnavailable(`${shard} did not answer`);
    if (h.value.length > 0) withHistory.push(shard);
    const r = await deps.xa.recover(shard);
    if (!r.ok) throw new DurableUnavailable(`${shard} did not answer`);
    if (r.prepared.some((x) => x.tx === tx)) prepared.push(shard);
  }
  if (withHistory.length > 0) return { found: "history", shards: withHistory };
  if (prepared.length > 0) return { found: "prepared", shards: prepared };
  return { found: "nothing" };
}

/** What the speculative path's record and keys say of `tx`; null when it never ran speculatively (no record, no row). */
async function speculationStatus(tx: TxId, deps: { xa: XaMysql; log: TxlogStore }): Promise<DurableStatus | null> {
  const listed = await deps.log.list(speculativeKey(tx));
  if (!listed.ok) throw new DurableUnavailable("the transaction log did not answer");
  const state = speculativeStateOf(listed.entries.find((e) => e.key === speculativeKey(tx))?.value);
  if (state === "SPEC_COMMITTED") return { found: "speculation", outcome: "commit" };
  if (state === "SPEC_ROLLED_BACK") return { found: "speculation", outcome: "rollback" };
  const held = new Map<ShardId, UndoRowState>();
  let branches: ShardId[] = [];
  for (const shard of deps.xa.shards) {
    const r = await deps.xa.pool(shard).run<Array<{ branch: string; state: UndoRowState; branches: string }>>(`SELECT branch, state, branches FROM speculative_undo WHERE tx = '${tx}'`);
    if (!r.ok) throw new DurableUnavailable(`${shard} did not answer`);
    for (const row of r.value) {
      held.set(row.branch, row.state);
      if (row.state !== "tombstone") branches = JSON.parse(row.branches) as ShardId[];
    }
  }
  if (state === null && held.size === 0) return null;
  // The record lists the branches; so does every row but a tombstone.
  const rec = listed.entries.find((e) => e.key === speculativeKey(tx))?.value;
  if (rec?.kind === "speculation") branches = [...rec.branches];
  if (branches.length === 0) return { found: "speculation", outcome: [...held.values()].includes("tombstone") ? "rollback" : null };
  return { found: "speculation", outcome: outcomeOfKeys(branches, (b) => held.get(b) ?? null) };
}

/** The outcome a durable status says; null when nothing of the transaction is found (a reader that knows it ran: `settledOutcome`). */
export function outcomeOfStatus(d: DurableStatus): Outcome | null {
  switch (d.found) {
    case "decision":
      return d.decision === "commit" ? { status: "committed" } : { status: "aborted", reason: "resolver" };
    case "history":
      return { status: "committed" };
    case "prepared":
    case "staging":
      return { status: "in_doubt" };
    case "speculation":
      return d.outcome === "commit" ? { status: "committed" } : d.outcome === "rollback" ? { status: "aborted", reason: "resolver" } : { status: "in_doubt" };
    case "nothing":
      return null;
  }
}

/** What is known of a transaction that ran: its protocol (absent: 2pc) and the shards of its branches. */
export interface RanAs {
  readonly protocol?: string;
  readonly shards: readonly ShardId[];
}

/**
 * The outcome of a transaction known to have run, whose coordinator is gone
 * or answered in_doubt and ended, from durable state alone. Nothing found:
 * it never committed and never will (rule 4), so aborted; except for a
 * speculation of several branches, where an apply of its coordinator may
 * still be waiting for a lock and commit later: "probe" (only its
 * protocol's probe, spec/protocols/speculative/probe.ts, makes that final).
 * Throws DurableUnavailable.
 */
export async function settledOutcome(tx: TxId, ran: RanAs, deps: { xa: XaMysql; log: TxlogStore }): Promise<Outcome | "probe"> {
  const outcome = outcomeOfStatus(await durableStatus(tx, deps, ran.shards));
  if (outcome !== null) return outcome;
  if (ran.protocol === "speculative" && ran.shards.length > 1) return "probe";
  return { status: "aborted", reason: "resolver" };
}
