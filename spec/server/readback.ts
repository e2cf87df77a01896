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
 *   - the node fence: on every shard of the transaction, the fence row of
 *     the transaction's node raised to the reader's epoch. A one-phase
 *     branch (no record: no log fence stops it) reads that row, shared,
 *     before its writes and holds it until it ends, and gives up (FENCED)
 *     when the row is newer than its coordinator's epoch
 *     (spec/kernel/effects.ts xa.exec `fence`). The write waits for every
 *     branch that read the row, so once it returned, a one-phase branch of
 *     the dead coordinator committed (its rows are facts) or never will,
 *     also when that coordinator is not dead but hung or cut off, or had not
 *     sent its exec yet;
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
import type { LogRecord, Outcome, ShardId, TxId, UndoRowState } from "../kernel/effects.ts";
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
export const SETTLE_FENCE = [
  "log: an epoch newer than the dead coordinator's",
  "node: its fence row raised to that epoch on every shard of the transaction",
  "shards: a locking read of the transaction's open-branch row and history rows returned",
] as const;

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

/** The most shards readBackWithout answers without (each one multiplies the completions it reads). */
export const UNANSWERED_MAX = 2;

const UNDO_STATES: readonly UndoRowState[] = ["undo", "released", "compensated", "tombstone"];

/** The branch lists a record names. */
const branchesOf = (v: LogRecord): readonly ShardId[] | null =>
  v.kind === "decision" || v.kind === "speculation" ? v.branches : v.kind === "staging" ? v.branches.map((b) => b.shard) : null;

/** What one shard that did not answer may hold of `tx`: history rows or not, a prepared branch or not, its undo row (absent, or in any state, naming any branch list found). */
function shardOptions(facts: DurableFacts, undoPossible: boolean): { history: boolean; prepared: boolean; undo: { state: UndoRowState; branches: readonly ShardId[] } | null }[] {
  const lists = new Map<string, readonly ShardId[]>();
  for (const b of [...facts.records.map((x) => branchesOf(x.value)), ...facts.undo.map((u) => u.branches)]) if (b !== null) lists.set(JSON.stringify(b), b);
  const undos = [null, ...(undoPossible ? UNDO_STATES.flatMap((state) => [...lists.values()].map((branches) => ({ state, branches }))) : [])];
  return [false, true].flatMap((history) => [false, true].flatMap((prepared) => undos.map((undo) => ({ history, prepared, undo }))));
}

/**
 * readBack when the shards in `missing` did not answer (`facts` holds what the others and the txlog said): the
 * outcome readBack gives for EVERY way those shards may be (shardOptions), when that is one final outcome; null
 * otherwise (ask again once they answer). Sound by construction: the true facts are among the completions read,
 * so the answer is readBack's on them, which readback_sound checks. Which completions are possible: only a
 * transaction with a txlog record can be decided without a shard (with none, the completion "nothing there" says
 * nothing); its records name the protocols that write them (Protocol.records), so undo rows are read only if one of
 * those runs on local-transaction shards, with the branch lists the records and rows found name (a speculation's
 * record names its branches, as its rows do). So a decision record answers GET /transactions/:id alone.
 */
export function readBackWithout(tx: TxId, facts: DurableFacts, missing: readonly ShardId[], r: ReadBackRules = REGISTERED_RULES): Outcome | null {
  if (missing.length === 0) return readBack(tx, facts, r);
  if (facts.records.length === 0 || missing.length > UNANSWERED_MAX) return null;
  const kinds = new Set<string>(facts.records.map((x) => x.value.kind));
  const undoPossible = REGISTRY.some((p) => p.needs === "local" && p.records.some((k) => kinds.has(k)));
  const options = shardOptions(facts, undoPossible);
  let completions: DurableFacts[] = [facts];
  for (const shard of missing) {
    completions = completions.flatMap((f) =>
      options.map((o) => ({
        records: f.records,
        history: o.history ? [...f.history, shard] : f.history,
        prepared: o.prepared ? [...f.prepared, shard] : f.prepared,
        undo: o.undo === null ? f.undo : [...f.undo, { branch: shard, ...o.undo }],
      })),
    );
  }
  let answer: Outcome | null = null;
  for (const f of completions) {
    const o = readBack(tx, f, r);
    if (o === null || o.status === "in_doubt" || (answer !== null && o.status !== answer.status)) return null;
    answer ??= o;
  }
  return answer;
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
