/**
 * The transaction log as a model: a key-value store with compare-and-swap on
 * a per-key version, like etcd's `Txn(If(Version(key) == v), Then(Put))`.
 * A key's version is 1 when created and grows by one with every put; a
 * deleted key is absent again (version 0). Writes are atomic and durable once
 * acknowledged, and the log survives every crash of its clients.
 *
 * What this model leaves to its user (the composition in each protocol's
 * model): an unacknowledged write may or may not have happened. The
 * composition offers both outcomes for an UNAVAILABLE answer.
 */
import type { Fence, LogDeleteResult, LogEntry, LogPutResult, LogRecord } from "../kernel/effects.ts";

export interface TxlogState {
  /** Sorted by key. */
  readonly entries: readonly LogEntry[];
}

export const emptyTxlog: TxlogState = { entries: [] };

export function get(s: TxlogState, key: string): LogEntry | undefined {
  return s.entries.find((e) => e.key === key);
}

const fenceHolds = (s: TxlogState, fence: Fence | undefined): boolean => fence === undefined || (get(s, fence.key)?.version ?? 0) === fence.version;

export function put(s: TxlogState, key: string, value: LogRecord, ifVersion: number, fence?: Fence): { s: TxlogState; r: LogPutResult } {
  if (!fenceHolds(s, fence)) return { s, r: { ok: false, err: "FENCED" } };
  const cur = get(s, key);
  const version = cur?.version ?? 0;
  if (version !== ifVersion) return { s, r: { ok: false, err: "CAS", current: cur?.value ?? null, version } };
  const entry: LogEntry = { key, value, version: version + 1 };
  const entries = cur === undefined ? [...s.entries, entry].sort(byKey) : s.entries.map((e) => (e.key === key ? entry : e));
  return { s: { entries }, r: { ok: true, version: entry.version } };
}

export function list(s: TxlogState, prefix: string): LogEntry[] {
  return s.entries.filter((e) => e.key.startsWith(prefix));
}

/** `ifVersion`: delete only while the key is at that version (else CAS, nothing deleted). */
export function del(s: TxlogState, key: string, fence?: Fence, ifVersion?: number): { s: TxlogState; r: LogDeleteResult } {
  if (!fenceHolds(s, fence)) return { s, r: { ok: false, err: "FENCED" } };
  if (ifVersion !== undefined && (get(s, key)?.version ?? 0) !== ifVersion) return { s, r: { ok: false, err: "CAS" } };
  return { s: get(s, key) === undefined ? s : { entries: s.entries.filter((e) => e.key !== key) }, r: { ok: true } };
}

const byKey = (a: LogEntry, b: LogEntry): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
