/**
 * What a sequence diagram (docs/traces.md) says about an effect, its answer
 * and where it goes. One function each, used by the checker's models when
 * they describe a counterexample step (spec/world/describe.ts) and by the server when it records a
 * live step (runtime/interpreter.ts), so that a live transaction and a
 * counterexample read the same way: `PREPARE shard-b -> ok`,
 * `put COMMIT -> v7`, `KILL shard-a conn 12 -> ok`, `apply shard-b -> ok`.
 *
 * A label names the effect's kind and its target (a shard, a txlog key) and
 * stays short: never a whole value (the step keeps the effect itself). When
 * a whole trace is about one transaction (a live trace; a counterexample
 * with one transfer), its id is left out (`Context.tx`); any other
 * transaction is named.
 */
import { DECISION_PREFIX, EPOCH_KEY, SPECULATIVE_PREFIX, type Effect, type LogRecord, type Outcome, type Result, type TxId } from "./kernel/effects.ts";

export interface Context {
  /** The transaction the whole trace is about: its id is not repeated in labels. */
  readonly tx?: TxId;
}

/** Longer transaction ids (UUIDs) are shown by their first characters, enough to tell a few apart. */
const tx_chars_max = 12;
const tx_chars_shown = 8;

const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

const txText = (tx: TxId): string => (tx.length <= tx_chars_max ? tx : tx.slice(0, tx_chars_shown));

/** The kind of each effect as a diagram names it: XA statements upper case, as written in SQL. */
const kindText: Readonly<Record<Effect["t"], string>> = {
  "xa.exec": "EXEC",
  "xa.prepare": "PREPARE",
  "xa.commit": "COMMIT",
  "xa.rollback": "ROLLBACK",
  "xa.recover": "RECOVER",
  "xa.kill": "KILL",
  "local.apply": "apply",
  "local.tombstone": "tombstone",
  "local.compensate": "compensate",
  "local.release": "release",
  "local.scan": "scan",
  "log.put": "put",
  "log.list": "list",
  "log.delete": "delete",
  reply: "reply",
  timer: "timer",
};

/** A shard, followed by the transaction when the trace is not about that one only: `s1`, `s1 of t2`. */
const branchText = (shard: string, tx: TxId, ctx: Context): string => (tx === ctx.tx ? shard : `${shard} of ${txText(tx)}`);

/** The transaction a txlog key is about (a decision or speculation record); null for the epoch key. */
function keyTx(key: string): { prefix: string; tx: TxId } | null {
  const prefix = [DECISION_PREFIX, SPECULATIVE_PREFIX].find((p) => key.startsWith(p));
  return prefix === undefined ? null : { prefix, tx: key.slice(prefix.length) };
}

/** Whether a key needs naming: not when the record's kind says it (the epoch, the trace's own transaction). */
function keyImplied(key: string, ctx: Context): boolean {
  const k = keyTx(key);
  return k === null ? key === EPOCH_KEY : k.tx === ctx.tx;
}

/** A txlog key; the trace's own transaction's record by its kind alone (`tx record`). */
function keyText(key: string, ctx: Context): string {
  const k = keyTx(key);
  if (k === null) return key;
  return k.tx === ctx.tx ? `${k.prefix.slice(0, -1)} record` : `${k.prefix}${txText(k.tx)}`;
}

/** A txlog record: the decision, STAGING with how many connections it names, a speculation's state, a new epoch. */
function recordText(v: LogRecord): string {
  switch (v.kind) {
    case "decision":
      return v.decision.toUpperCase();
    case "speculation":
      return v.state;
    case "epoch":
      return "new epoch";
    case "owner":
      return `OWNER ${v.owner}`;
    case "claim":
      return v.outcome === undefined ? `CLAIM ${v.tx}` : `CLAIM ${v.tx} ${v.outcome.status}`;
    case "staging": {
      // A branch without its connection cannot be fenced: worth seeing (a checker mutant writes one).
      const missing = v.branches.filter((b) => b.conn === "").length;
      return `STAGING (${count(v.branches.length - missing, "conn")}${missing > 0 ? `, ${missing} missing` : ""})`;
    }
  }
}

function putText(e: Extract<Effect, { t: "log.put" }>, ctx: Context): string {
  const key = keyImplied(e.key, ctx) ? "" : `${keyText(e.key, ctx)} `;
  // Version 0 is "only if absent", the usual create; a replace names the version it expects.
  return `put ${key}${recordText(e.value)}${e.ifVersion > 0 ? ` if v${e.ifVersion}` : ""}`;
}

/** An effect: its kind and target, and what else tells two of them apart (`PREPARE shard-b`, `put COMMIT`). */
export function effectLabel(e: Effect, ctx: Context = {}): string {
  const kind = kindText[e.t];
  switch (e.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.rollback":
    case "local.apply":
    case "local.tombstone":
      return `${kind} ${branchText(e.shard, e.tx, ctx)}${e.t === "xa.exec" && !e.guard ? " (unguarded)" : ""}${e.t === "local.apply" ? applyFlags(e) : ""}`;
    case "xa.commit":
      return `${kind}${e.onePhase === true ? " ONE PHASE" : ""} ${branchText(e.shard, e.tx, ctx)}`;
    case "local.compensate":
      return `${kind} ${branchText(e.shard, e.tx, ctx)}${e.retire ? "" : " (row kept)"}`;
    case "local.release":
      return `${kind} ${branchText(e.shard, e.tx, ctx)}${e.row === "retire" ? "" : " (row deleted)"}`;
    case "xa.recover":
    case "local.scan":
      return `${kind} ${e.shard}`;
    case "xa.kill":
      return `${kind} ${e.shard} conn ${e.conn === "" ? "(none)" : e.conn}`;
    case "log.put":
      return putText(e, ctx);
    case "log.list":
      return `${kind} ${e.prefix}*`;
    case "log.delete":
      return `${kind} ${keyText(e.key, ctx)}`;
    case "reply":
      return `${kind} ${replyLabel(e.outcome)}`;
    case "timer":
      return `${kind} ${e.id}`;
  }
}

/** The fields that exist only for the checker's deliberate bugs, named when they ask for less. */
function applyFlags(e: Extract<Effect, { t: "local.apply" }>): string {
  return `${e.parts === "both" ? "" : ` (${e.parts} only)`}${e.escrow ? "" : " (no escrow)"}`;
}

/** An answer alone, as the arrow back carries it: `ok`, `v7`, `NOTA`, `2 prepared`. */
export function answerLabel(r: Result): string {
  if (r.t === "timeout") return "fires";
  const x = r.r;
  if (!x.ok) {
    if (x.err === "CAS" && !("current" in x)) return "CAS failed (not at its version)";
    if ("current" in x) return `CAS failed (${x.current === null ? "absent" : `holds ${recordText(x.current)} v${x.version}`})`;
    return "existing" in x ? `${x.err} (${x.existing})` : x.err;
  }
  if ("version" in x) return `v${x.version}`;
  if ("prepared" in x) return `${x.prepared.length} prepared`;
  if ("entries" in x) return count(x.entries.length, "record");
  if ("rows" in x) return count(x.rows.length, "undo row");
  if ("applied" in x && !x.applied) return "ok (nothing to do)";
  return "ok";
}

/** A request and its answer in one line: `PREPARE shard-b -> ok`. */
export const exchangeLabel = (effect: string, answer: string): string => `${effect} -> ${answer}`;

/** Whether `x` is a result of the vocabulary (an effect's answer, a timeout), as role inputs are checked before labelling. */
export function isResult(x: unknown): x is Result {
  const r = x as { t?: unknown; r?: unknown; id?: unknown } | null;
  if (typeof r !== "object" || r === null || typeof r.t !== "string") return false;
  if (r.t === "timeout") return typeof r.id === "string";
  return Object.hasOwn(kindText, r.t) && r.t !== "reply" && r.t !== "timer" && typeof r.r === "object" && r.r !== null;
}

/** A result whose request is not known (it was asked before the trace began): kind and target from the result. */
export function resultLabel(r: Result, ctx: Context = {}): string {
  if (r.t === "timeout") return `timeout ${r.id}`;
  const kind = kindText[r.t];
  const target = "tx" in r ? branchText(r.shard, r.tx, ctx) : "shard" in r ? r.shard : "key" in r ? keyText(r.key, ctx) : "";
  return exchangeLabel(target === "" ? kind : `${kind} ${target}`, answerLabel(r));
}

/** What the client is told: `committed`, `aborted (conflict)`, `in_doubt`. */
const replyLabel = (o: Outcome): string => (o.status === "aborted" ? `aborted (${o.reason})` : o.status);

/** The client's step on hearing its answer: `hears committed`. */
export const heardLabel = (o: Outcome): string => `hears ${replyLabel(o)}`;

/** A client request reaching its coordinator: `request (2 branches)`, `request t2 (2 branches)`. */
export function requestLabel(tx: TxId, branches: number, ctx: Context = {}): string {
  return `request${tx === ctx.tx ? "" : ` ${txText(tx)}`} (${count(branches, "branch", "branches")})`;
}

/** Where an effect goes: the lifeline of its shard, the txlog, or the client; null for a timer (nobody else sees it). */
export function targetOf(e: Effect): string | null {
  switch (e.t) {
    case "reply":
      return "client";
    case "timer":
      return null;
    case "log.put":
    case "log.list":
    case "log.delete":
      return "txlog";
    default:
      return e.shard;
  }
}
