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
 *             it final). GET /transactions/:id of a transaction in memory and
 *             a retried idempotency key (./idempotency.ts) answer from here.
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

/** A deliberate bug of the composition, for the checker: "nothing found" of a probed protocol read as aborted. */
export type SettleMutant = "nothing-is-aborted";

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

/** The outcome of a transaction known to have run whose coordinator is gone or ended in doubt; "probe": only its protocol's probe can tell. */
export function settle(tx: TxId, facts: DurableFacts, ran: RanAs, r: ReadBackRules = REGISTERED_RULES): Outcome | "probe" {
  const o = readBack(tx, facts, r);
  if (o !== null) return o;
  const nothing = r.ruleOf(ranBy(ran)).nothingFound;
  if (nothing === "probe" && r.mutant !== "nothing-is-aborted") return "probe";
  return { status: "aborted", reason: "resolver" };
}
