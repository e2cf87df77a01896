/**
 * What every resolver part (./protocol.ts, `ResolverPart`) does the same
 * way, written once: the scan's start, the epoch it takes before its first
 * scan, the listing of its records, and the map from its effects to the
 * actions the server counts. ./xa/resolver.ts and ./speculative/resolver.ts
 * build on it; each says only what it does with the records it listed.
 *
 * A scan tick: ignored unless between scans; the `active` snapshot is kept
 * sorted. A resolver with no epoch yet (a process (re)start) first lists the
 * epoch key and takes the next epoch by CAS on its version; a refused or
 * unanswered CAS or listing ends the scan (the next tick tries again). Then
 * it lists its records (sorted by key) and hands them on. Every other input
 * goes to the resolver's own step.
 */
import { EPOCH_KEY, type Effect, type LogEntry, type Result, type TxId } from "../kernel/effects.ts";
import type { Step } from "../kernel/role.ts";

/** What the scaffolding reads and writes of a resolver's state. */
export interface ScanState {
  readonly phase: string;
  /** This process's epoch once taken; null after a (re)start. */
  readonly epoch: number | null;
  /** The transactions with a live coordinator in this process when the scan started, sorted. */
  readonly active: readonly TxId[];
}

/** A resolver's input: a scan tick with the live coordinators' transactions, or a result. */
export type ScanInput = { readonly t: "scan"; readonly active: readonly TxId[] } | Result;
/** The inputs a resolver's own step sees: every one but the scan tick, the listings and the epoch CAS's answer. */
export type OwnInput = Exclude<ScanInput, { t: "scan" } | { t: "log.list" }>;

export function scan<S extends ScanState>(o: {
  /** The key prefix of the records it lists. */
  readonly prefix: string;
  /** The state between scans: what carries over from `st`. */
  idle(st: S): S;
  /** Its records listed (sorted by key): what the scan does next. */
  listed(st: S, records: readonly LogEntry[]): Step<S, Effect>;
  /** Every other input: the resolver's own. */
  own(st: S, input: OwnInput): Step<S, Effect>;
}): (st: S, input: ScanInput) => Step<S, Effect> {
  const list = (st: S): Step<S, Effect> => ({ st: { ...st, phase: "listing" }, effects: [{ t: "log.list", prefix: o.prefix }] });
  return (st, input) => {
    if (input.t === "scan") {
      if (st.phase !== "idle") return { st, effects: [] };
      const next: S = { ...o.idle(st), active: [...input.active].sort() };
      if (st.epoch === null) return { st: { ...next, phase: "booting" }, effects: [{ t: "log.list", prefix: EPOCH_KEY }] };
      return list(next);
    }
    if (input.t === "log.list") {
      if (!input.r.ok) return st.phase === "booting" || st.phase === "listing" ? { st: o.idle(st), effects: [] } : { st, effects: [] };
      if (st.phase === "booting") {
        const version = input.r.entries.find((e) => e.key === EPOCH_KEY)?.version ?? 0;
        return { st, effects: [{ t: "log.put", key: EPOCH_KEY, value: { kind: "epoch" }, ifVersion: version }] };
      }
      if (st.phase !== "listing") return { st, effects: [] };
      return o.listed(st, [...input.r.entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
    }
    if (input.t === "log.put" && st.phase === "booting" && input.key === EPOCH_KEY) {
      // Another process took the epoch first, or the log did not answer: try again next scan.
      if (!input.r.ok) return { st: o.idle(st), effects: [] };
      return list({ ...st, epoch: input.r.version });
    }
    return o.own(st, input);
  };
}

type Action<T extends Effect["t"]> = string | ((e: Extract<Effect, { t: T }>) => string | null);

/**
 * A resolver part's `actionOf` from its map: per kind of effect, the action's
 * name (or a function of the effect); a record deleted is "forget" for every
 * part; unlisted kinds (reads) are null.
 */
export function actionMap(m: { readonly [T in Effect["t"]]?: Action<T> }): (e: Effect) => string | null {
  const all: typeof m = { "log.delete": "forget", ...m };
  return (e) => {
    const a = all[e.t] as Action<typeof e.t> | undefined;
    return a === undefined ? null : typeof a === "string" ? a : a(e as never);
  };
}
