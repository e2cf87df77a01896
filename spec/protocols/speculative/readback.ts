/**
 * The read-back rule of the speculative path (docs/protocols/speculative.md):
 * what durable facts say of a speculation's outcome.
 *
 * Its history rows are written when a branch applies, before the outcome is
 * known, so they prove nothing (the composition, spec/server/readback.ts,
 * reads the rules of protocols that answer before the outcome is final
 * first). Its terminal record says the outcome; else the branch keys in the
 * undo table decide by the protocol's own rule (./settle.ts `outcomeOfKeys`);
 * else it is in doubt. With no record and no row, nothing of it is found:
 * an apply of its coordinator may still be waiting for a lock and commit
 * later, so only the probe (./probe.ts) makes that final (`nothingFound`).
 */
import { speculativeKey, speculativeStateOf, type Outcome, type ShardId, type TxId, type UndoRowState } from "../../kernel/effects.ts";
import { recordAt, type DurableFacts, type ReadBackRule } from "../protocol.ts";
import { outcomeOfKeys } from "./settle.ts";

const committed: Outcome = { status: "committed" };
const aborted: Outcome = { status: "aborted", reason: "resolver" };

function read(tx: TxId, facts: DurableFacts): Outcome | null {
  const rec = recordAt(facts, speculativeKey(tx));
  const state = speculativeStateOf(rec);
  if (state === "SPEC_COMMITTED") return committed;
  if (state === "SPEC_ROLLED_BACK") return aborted;
  if (state === null && facts.undo.length === 0) return null;
  const held = new Map<ShardId, UndoRowState>();
  let branches: readonly ShardId[] = [];
  for (const row of facts.undo) {
    held.set(row.branch, row.state);
    // The record lists the branches; so does every row but a tombstone.
    if (row.state !== "tombstone") branches = row.branches;
  }
  if (rec?.kind === "speculation") branches = rec.branches;
  if (branches.length === 0) return [...held.values()].includes("tombstone") ? aborted : { status: "in_doubt" };
  const o = outcomeOfKeys(branches, (b) => held.get(b) ?? null);
  return o === "commit" ? committed : o === "rollback" ? aborted : { status: "in_doubt" };
}

/** The speculation's outcome as its keys and record say it: commit, rollback, or undecided. */
function found(tx: TxId, facts: DurableFacts): Record<string, unknown> {
  const o = read(tx, facts);
  return { speculation: o === null || o.status === "in_doubt" ? "undecided" : o.status === "committed" ? "commit" : "rollback" };
}

export const SPECULATIVE_READ_BACK: ReadBackRule = { keys: (tx) => [speculativeKey(tx)], read, found, nothingFound: "probe" };
