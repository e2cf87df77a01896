/**
 * Read-back as the server does it: the registered protocols' read-back rules
 * (spec/protocols/protocol.ts `ReadBackRule`) composed into the two answers
 * the server gives from durable facts alone, and the property the server
 * model checks them with.
 *
 *   readBack  GET /transactions/:id of a transaction this process does not
 *             remember: the first registered rule that finds something of
 *             it, or null (nothing found).
 *   settle    a transaction known to have run (its protocol and branches),
 *             whose coordinator is gone or answered in_doubt and ended: what
 *             readBack says, else what "nothing found" means for the
 *             protocol that ran it (aborted, or "probe": only its probe makes
 *             it final), aborted only once the reader holds the settle fence
 *             (below; "fence" until then). GET /transactions/:id of a
 *             transaction in memory and a retried idempotency key
 *             (./idempotency.ts) answer from here.
 *
 * The settle fence. A coordinator that died may have left a statement on
 * its way: "nothing found" is not yet "aborted" while that statement may
 * still make the transaction commit (an XA COMMIT ... ONE PHASE of an IDLE
 * branch, which neither XA RECOVER nor the history shows; a decision or
 * STAGING write to the txlog). So "nothing found" becomes aborted only once
 * the reader holds both fences (SETTLE_FENCE), then reads the facts again:
 *   - the log fence: the reader's process holds an epoch taken after the
 *     dead coordinator's (every txlog write of a coordinator carries its
 *     process's epoch as a fence, spec/kernel/effects.ts Fence), so none of
 *     the dead process's writes can land any more;
 *   - the shard fence: on every shard of the transaction, a locking read of
 *     the transaction's history rows has returned. The rows an XA branch
 *     inserted stay locked until that branch ends, so the read waits while
 *     an unprepared branch with writes lives (its connection still open on
 *     the server, a commit possibly on its way) and returns once the branch
 *     committed (its rows are then facts) or was rolled back (the server
 *     dropped the dead session; no commit of it can arrive any more).
 * The server model checks this (settle_sound_in_flight, ./readback-sound.ts)
 * with a mutant that skips the fence (`settle-unfenced`).
 *
 * The runtime gathers the facts through its ports (runtime/durable.ts) and
 * decides nothing.
 */
import type { Outcome, ShardId, TxId } from "../kernel/effects.ts";
import type { DurableFacts, Protocol, ReadBackRule } from "../protocols/protocol.ts";
import { REGISTRY } from "../protocols/registry.ts";
import { protocolRun } from "./coordinator.ts";

/**
 * The registered protocols in the order their rules are read: those that
 * answer before the outcome is final first, since their history rows are
 * written before the outcome is known and prove nothing; a rule that takes
 * history rows as proof of a commit must not see theirs first.
 */
export const READ_BACK_ORDER: readonly Protocol[] = [...REGISTRY.filter((p) => p.speculates), ...REGISTRY.filter((p) => !p.speculates)];

/**
 * Deliberate bugs of the composition, for the checker: "nothing found" of a probed protocol read as aborted
 * (nothing-is-aborted); "nothing found" read as aborted without the settle fence (unfenced).
 */
export type SettleMutant = "nothing-is-aborted" | "unfenced";

/** What a reader does before "nothing found" may mean aborted (see the file comment): the two fences, by name. */
export const SETTLE_FENCE = ["log: an epoch newer than the dead coordinator's", "shards: a locking read of the transaction's history rows returned"] as const;

export interface ReadBackRules {
  /** The rules, in READ_BACK_ORDER. */
  readonly rules: readonly ReadBackRule[];
  /** The rule of a protocol, by name (a mutant may swap one). */
  ruleOf(p: Protocol): ReadBackRule;
  readonly mutant?: SettleMutant;
}

/** The registered rules, with `swap` replacing some (a mutant). */
export function readBackRules(swap?: (p: Protocol) => ReadBackRule | undefined, mutant?: SettleMutant): ReadBackRules {
  const ruleOf = (p: Protocol): ReadBackRule => swap?.(p) ?? p.readBack;
  return { rules: READ_BACK_ORDER.map(ruleOf), ruleOf, mutant };
}

export const REGISTERED_RULES: ReadBackRules = readBackRules();

/** Every txlog key a registered rule reads for `tx`, each once: what the runtime lists. */
export const factKeys = (tx: TxId, r: ReadBackRules = REGISTERED_RULES): string[] => [...new Set(r.rules.flatMap((rule) => [...rule.keys(tx)]))];

/** What the facts say of `tx` whatever protocol ran it; null: nothing of it is found. */
export function readBack(tx: TxId, facts: DurableFacts, r: ReadBackRules = REGISTERED_RULES): Outcome | null {
  for (const rule of r.rules) {
    const o = rule.read(tx, facts);
    if (o !== null) return o;
  }
  return null;
}

/** readBack, with what the rule that answered found (GET /transactions/:id shows it); null: nothing of it is found. */
export function readBackFound(tx: TxId, facts: DurableFacts, r: ReadBackRules = REGISTERED_RULES): { outcome: Outcome; found: Record<string, unknown> } | null {
  for (const rule of r.rules) {
    const outcome = rule.read(tx, facts);
    if (outcome !== null) return { outcome, found: rule.found(tx, facts) };
  }
  return null;
}

/** What is known of a transaction that ran: the protocol its request named (absent: the default) and the shards of its branches. */
export interface RanAs {
  readonly protocol?: string;
  readonly shards: readonly ShardId[];
}

/** The protocol whose coordinator ran it (one branch: the one-phase path). */
export const ranBy = (ran: RanAs): Protocol => protocolRun(ran.protocol, ran.shards.length);

/**
 * The outcome of a transaction known to have run whose coordinator is gone or ended in doubt; "probe": only its
 * protocol's probe can tell; "fence": nothing is found and the reader does not hold the settle fence yet (`fenced`:
 * it does): take the fence (SETTLE_FENCE), gather the facts again and ask again.
 */
export function settle(tx: TxId, facts: DurableFacts, ran: RanAs, r: ReadBackRules = REGISTERED_RULES, fenced = false): Outcome | "probe" | "fence" {
  const o = readBack(tx, facts, r);
  if (o !== null) return o;
  const nothing = r.ruleOf(ranBy(ran)).nothingFound;
  if (nothing === "probe" && r.mutant !== "nothing-is-aborted") return "probe";
  if (!fenced && r.mutant !== "unfenced") return "fence";
  return { status: "aborted", reason: "resolver" };
}
