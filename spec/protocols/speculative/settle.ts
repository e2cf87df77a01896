/**
 * Settling one speculation: the part of the protocol that the coordinator and
 * the resolver share (docs/protocols/speculative.md, "Settling").
 *
 * The outcome is decided by the shards' unique keys alone, never by a vote or
 * a log record: a branch whose key holds an undo row is applied, one whose
 * key holds a tombstone never will be. So
 *   - commit   <=> every branch is applied (no tombstone can then be inserted);
 *   - rollback <=> some branch's key holds a tombstone (it can then never apply).
 * A branch whose state is not known is probed by inserting a tombstone: the
 * insert either wins (the branch is dead) or fails on the key and says what
 * holds it. That is the write-once log of Cornus (Guo et al., VLDB 2022).
 *
 * Once decided: write SPEC_EXECUTING (if no record exists), and once it is
 * durable release (commit) or compensate (rollback) every applied branch, so
 * that a speculation stays findable by recovery while it is not final (its
 * undo rows, or else its record); then write SPEC_COMMITTED /
 * SPEC_ROLLED_BACK; once that is durable, forget the record (a fenced
 * log.delete, as 2PC forgets its decision): the resolver lists the whole
 * spec/ prefix on every scan, so a record kept forever would make every scan
 * list every speculation ever made. None of these writes is on the client's
 * path.
 *
 * The keys decide, the record is only for findability. A terminal record is
 * written only when every branch is final, and final is stable, so deleting
 * it (or any later record of the same transaction) loses nothing. Hence:
 *   - a terminal put whose compare finds the key absent: the record was
 *     written terminal and forgotten by another settler; every branch is
 *     final in my view too (I only put the end then): nothing left to do;
 *   - a compare that finds a terminal record (another settler's, or mine whose
 *     answer was lost): forget it (deleting twice is harmless);
 *   - a settler whose delete fails for good leaves a terminal record: the
 *     resolver deletes every terminal record it lists.
 *
 * Pure data in, data out; the owner (coordinator or resolver) routes results
 * here and chooses how often a failed statement is retried.
 */
import { speculativeKey, speculativeStateOf, type AbortReason, type Fence, type Outcome, type Effect, type Result, type ShardId, type TxId, type UndoRowState } from "../../kernel/effects.ts";

export type Known =
  /** The coordinator's apply is in flight: its answer will say. */
  | "pending"
  /** Not known: probe it with a tombstone. */
  | "unknown"
  | "probing"
  /** The key holds the branch's undo row (or its released row). */
  | "applied"
  /** The key holds a tombstone (or a compensated row): the branch will never apply. */
  | "dead"
  /** Release or compensation sent. */
  | "finishing"
  /** Nothing left to do on this branch. */
  | "final";

export interface SettleBranch {
  readonly shard: ShardId;
  readonly k: Known;
}

/**
 * The txlog record as this settler knows it: absent, SPEC_EXECUTING being put / durable, the
 * terminal record being put / durable ("final"), being deleted, or forgotten (deleted after
 * the terminal record was durable: the settlement is over).
 */
export type RecordState = "absent" | "putting" | "durable" | "putting-final" | "final" | "deleting" | "forgotten";

export interface Settlement {
  readonly tx: TxId;
  readonly branches: readonly SettleBranch[];
  readonly outcome: "commit" | "rollback" | null;
  readonly record: RecordState;
  /** The record's version once durable (the terminal put's compare). */
  readonly version: number;
  /** Failed statements retried so far; the owner's `attemptsMax` bounds it. */
  readonly retries: number;
  /** A retry is due when the owner's timer fires. */
  readonly waiting: boolean;
  /** Out of retries (or fenced): the resolver finishes the rest. */
  readonly gaveUp: boolean;
}

/** Deliberate bugs that live in settling, for the checker to catch. */
export type SettleMutant = "rollback-without-tombstone" | "compensate-keeps-row" | "release-deletes-row" | "delete-before-final";

export interface SettleOptions {
  readonly attemptsMax: number;
  /** Delay before a failed statement is sent again. */
  readonly retryDelayMs: number;
  readonly fence: Fence;
  readonly mutant?: SettleMutant;
}

export const settleTimer = (tx: TxId): string => `settle:${tx}`;

export function newSettlement(tx: TxId, branches: readonly SettleBranch[], record: RecordState, version: number): Settlement {
  return { tx, branches, outcome: null, record, version, retries: 0, waiting: false, gaveUp: false };
}

const applied = (k: Known): boolean => k === "applied";

function decide(s: Settlement): Settlement {
  if (s.outcome !== null) return s;
  if (s.branches.some((b) => b.k === "dead")) return { ...s, outcome: "rollback" };
  if (s.branches.every((b) => applied(b.k))) return { ...s, outcome: "commit" };
  return s;
}

const outstanding = (s: Settlement): boolean =>
  s.branches.some((b) => b.k === "probing" || b.k === "finishing") || s.record === "putting" || s.record === "putting-final" || s.record === "deleting";

/** Nothing more will happen: the record forgotten, or given up with no answer outstanding. */
export const settled = (s: Settlement): boolean => s.record === "forgotten" || (s.gaveUp && !outstanding(s));

const forget = (s: Settlement, o: SettleOptions): Effect => ({ t: "log.delete", key: speculativeKey(s.tx), fence: o.fence });

/** Ask for every step that can go now. */
export function drive(s0: Settlement, o: SettleOptions): { s: Settlement; effects: Effect[] } {
  let s = decide(s0);
  if (s.waiting || s.gaveUp || s.record === "forgotten" || s.record === "deleting") return { s, effects: [] };
  // The terminal record is durable: every branch is final, so the record has nothing left to keep findable.
  if (s.record === "final") return { s: { ...s, record: "deleting" }, effects: [forget(s, o)] };
  const effects: Effect[] = [];
  const terminal = s.outcome === "commit" ? "SPEC_COMMITTED" : "SPEC_ROLLED_BACK";
  // Written once the outcome is known, before any row leaves state undo: not on the client's path,
  // and not racing the applies (a speculation that was never decided is findable by its undo rows).
  if (s.record === "absent" && s.outcome !== null) {
    effects.push({ t: "log.put", key: speculativeKey(s.tx), value: { kind: "speculation", state: "SPEC_EXECUTING", branches: s.branches.map((b) => b.shard) }, ifVersion: 0, fence: o.fence });
    s = { ...s, record: "putting" };
  }
  const branches = s.branches.map((b): SettleBranch => {
    if (b.k === "unknown" && s.outcome !== "commit") {
      // The mutant takes "no answer" for "never applied": a late branch can then still land.
      if (o.mutant === "rollback-without-tombstone") return { ...b, k: "dead" };
      effects.push({ t: "local.tombstone", tx: s.tx, shard: b.shard });
      return { ...b, k: "probing" };
    }
    if (b.k === "dead" && s.outcome === "rollback") return { ...b, k: "final" };
    if (b.k === "applied" && s.outcome !== null && s.record === "durable") {
      effects.push(
        s.outcome === "commit"
          ? { t: "local.release", tx: s.tx, shard: b.shard, row: o.mutant === "release-deletes-row" ? "delete" : "retire" }
          : { t: "local.compensate", tx: s.tx, shard: b.shard, retire: o.mutant !== "compensate-keeps-row" },
      );
      return { ...b, k: "finishing" };
    }
    return b;
  });
  const decided = s.outcome;
  s = decide({ ...s, branches });
  // A branch this pass found dead (only the mutant does) decides a rollback: one more pass acts on it.
  if (s.outcome !== decided) {
    const more = drive(s, o);
    return { s: more.s, effects: [...effects, ...more.effects] };
  }
  if (s.outcome !== null && s.record === "durable" && s.branches.every((b) => b.k === "final")) {
    effects.push({ t: "log.put", key: speculativeKey(s.tx), value: { kind: "speculation", state: terminal, branches: s.branches.map((b) => b.shard) }, ifVersion: s.version, fence: o.fence });
    s = { ...s, record: "putting-final" };
  }
  return { s, effects };
}

/** A statement failed to answer: retry after the owner's timer, or give up. */
function failed(s: Settlement, o: SettleOptions, revert: (s: Settlement) => Settlement): { s: Settlement; effects: Effect[] } {
  const back = revert(s);
  if (s.retries + 1 >= o.attemptsMax) return { s: { ...back, gaveUp: true }, effects: [] };
  return { s: { ...back, retries: s.retries + 1, waiting: true }, effects: [{ t: "timer", id: settleTimer(s.tx), ms: o.retryDelayMs }] };
}

const setK = (s: Settlement, shard: ShardId, k: Known): Settlement => ({ ...s, branches: s.branches.map((b) => (b.shard === shard ? { ...b, k } : b)) });
const kOf = (s: Settlement, shard: ShardId): Known | undefined => s.branches.find((b) => b.shard === shard)?.k;

/** Take in one result about this settlement's transaction; results that are not awaited change nothing. */
export function onResult(s: Settlement, r: Result, o: SettleOptions): { s: Settlement; effects: Effect[] } {
  const then = (next: Settlement) => drive(next, o);
  switch (r.t) {
    case "local.tombstone": {
      if (kOf(s, r.shard) !== "probing") return { s, effects: [] };
      if (r.r.ok) return then(setK(s, r.shard, "dead"));
      if (r.r.err === "DUPLICATE") {
        const e = r.r.existing;
        return then(setK(s, r.shard, e === "undo" ? "applied" : e === "released" ? "applied" : "dead"));
      }
      return failed(s, o, (x) => setK(x, r.shard, "unknown"));
    }
    case "local.release":
    case "local.compensate": {
      if (kOf(s, r.shard) !== "finishing") return { s, effects: [] };
      if (r.r.ok) return then(setK(s, r.shard, "final"));
      return failed(s, o, (x) => setK(x, r.shard, "applied"));
    }
    case "log.put": {
      if (r.key !== speculativeKey(s.tx)) return { s, effects: [] };
      if (s.record !== "putting" && s.record !== "putting-final") return { s, effects: [] };
      const res = r.r;
      if (res.ok) {
        const out = then({ ...s, record: s.record === "putting" ? "durable" : "final", version: res.version });
        // The mutant forgets the record as soon as SPEC_EXECUTING is durable, before any branch is final.
        if (o.mutant === "delete-before-final" && s.record === "putting") return { s: out.s, effects: [forget(s, o), ...out.effects] };
        return out;
      }
      if (res.err === "CAS") {
        const state = speculativeStateOf(res.current);
        // The end is written (by another settler, or by me with the answer lost): every branch was final then. Forget it.
        if (state === "SPEC_COMMITTED" || state === "SPEC_ROLLED_BACK") return then({ ...s, record: "final", version: res.version });
        if (state === "SPEC_EXECUTING") return then({ ...s, record: "durable", version: res.version });
        // Absent under my terminal put: written terminal and forgotten by another settler. Every branch is
        // final (I put the end only then), so nothing is left to do; writing the record again would only
        // make another settler forget it again.
        if (s.record === "putting-final") return { s: { ...s, record: "forgotten" }, effects: [] };
        return then({ ...s, record: "absent" });
      }
      // A newer process owns the log: this one must not write again.
      if (res.err === "FENCED") return { s: { ...s, record: s.record === "putting" ? "absent" : "durable", gaveUp: true }, effects: [] };
      return failed(s, o, (x) => ({ ...x, record: x.record === "putting" ? "absent" : "durable" }));
    }
    case "log.delete": {
      if (r.key !== speculativeKey(s.tx) || s.record !== "deleting") return { s, effects: [] };
      if (r.r.ok) return { s: { ...s, record: "forgotten" }, effects: [] };
      // A newer process owns the log; its resolver deletes the terminal record it lists.
      if (r.r.err === "FENCED") return { s: { ...s, record: "final", gaveUp: true }, effects: [] };
      return failed(s, o, (x) => ({ ...x, record: "final" }));
    }
    case "timeout":
      if (r.id !== settleTimer(s.tx) || !s.waiting) return { s, effects: [] };
      return then({ ...s, waiting: false });
    default:
      return { s, effects: [] };
  }
}

/**
 * The outcome the keys of a speculation say, from what holds each branch's
 * key (null: nothing yet): the decision rule above, for a reader that did not
 * settle it (runtime/durable.ts, after a restart). null while it is not
 * decided: some key is empty and none holds a tombstone or a compensated row.
 */
export function outcomeOfKeys(branches: readonly ShardId[], held: (branch: ShardId) => UndoRowState | null): "commit" | "rollback" | null {
  const states = branches.map(held);
  if (states.some((s) => s === "tombstone" || s === "compensated")) return "rollback";
  if (states.every((s) => s === "undo" || s === "released")) return "commit";
  return null;
}

/**
 * What a settler that has a client (the coordinator, a probe) tells it: the
 * outcome once the keys decide it, in doubt if it gave up before they did,
 * null while neither.
 */
export function answerOf(s: Settlement, reason: AbortReason): Outcome | null {
  if (s.outcome === "commit") return { status: "committed" };
  if (s.outcome === "rollback") return { status: "aborted", reason };
  // Gave up before the outcome was known: only recovery can finish it now.
  if (settled(s)) return { status: "in_doubt" };
  return null;
}
