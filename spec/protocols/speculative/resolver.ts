/**
 * The resolver of the speculative path: it finishes the speculations a dead
 * or give-up coordinator left behind. On every scan tick:
 *
 *   1. list the speculation records in the txlog (SPEC_*);
 *   2. then scan every shard, one after the other, for undo rows still in
 *      state undo;
 *   3. every transaction with a SPEC_EXECUTING record or an undo row, no
 *      terminal record, and no live coordinator in this process, that the
 *      previous scan already found so, is settled (./settle.ts) exactly as
 *      its coordinator would have: tombstone each branch not seen applied,
 *      then release or compensate, then the terminal record, then forget
 *      the record (fenced log.delete). Its branches are those the record or
 *      the undo row lists (every undo row lists every branch of its
 *      transaction);
 *   4. every terminal record (SPEC_COMMITTED / SPEC_ROLLED_BACK) of a
 *      transaction with no live coordinator is deleted, fenced, at once: a
 *      settler that wrote it and could not delete it (out of retries,
 *      fenced, crashed) left it behind. Its branches are all final (the
 *      terminal record is written only then, and final is stable), so
 *      deleting it loses nothing, and without it the spec/ listing would
 *      grow with every speculation ever made.
 *
 * Why "the previous scan already found it": the `active` set is taken when a
 * scan starts, so a transaction that starts during a scan is not in it. Its
 * coordinator is live, and the scan would settle the transaction under it.
 * That would be safe (both decide from the same unique keys, see settle.ts)
 * but a needless rollback race; waiting one scan means the transaction was
 * older than a whole scan, so this scan's `active` covers it if its
 * coordinator still runs (2PC's resolver waits the same way).
 *
 * Before its first scan the resolver takes a new process epoch (a CAS on the
 * epoch key), as 2PC's does; every txlog write of this process is fenced
 * with it. A statement that fails is not retried in a loop: the next scan
 * starts again from what the shards and the log say.
 *
 * Why a speculation is always found while it is not final: its undo rows
 * stay in state undo until it is settled, and no row leaves that state
 * before SPEC_EXECUTING is durable (settle.ts), and the record is deleted
 * only after the terminal record, i.e. once every branch is final. A
 * speculation that left neither (every apply lost, the record never
 * written) moved no money.
 */
import type { ResolverPart } from "../protocol.ts";
import { actionMap, scan, type OwnInput } from "../scan.ts";
import type { Role, Step } from "../../kernel/role.ts";
import { byUndoKey, EPOCH_KEY, SPECULATIVE_PREFIX, speculativeStateOf, txOfSpeculativeKey, type LogEntry, type Effect, type Result, type ShardId, type TxId, type UndoRowView } from "../../kernel/effects.ts";
import { drive, newSettlement, onResult, settled, type Settlement, type SettleMutant, type SettleOptions } from "./settle.ts";

/** Settles a transaction at its first sighting, without waiting a scan (so it races live coordinators). */
export type ResolverMutant = "settle-at-first-sight";

export interface ResolverOptions {
  readonly shards: readonly ShardId[];
  readonly mutant?: SettleMutant | ResolverMutant;
}

export interface ResolverState {
  readonly phase: "idle" | "booting" | "listing" | "scanning" | "settling";
  readonly epoch: number | null;
  readonly active: readonly TxId[];
  readonly records: readonly LogEntry[];
  /** Undo rows seen in state undo, per shard scanned so far in this scan. */
  readonly scanned: readonly ShardId[];
  /** Sorted by (tx, branch). */
  readonly rows: readonly UndoRowView[];
  readonly settles: readonly Settlement[];
  /** Transactions the last finished scan would have settled: this scan may. */
  readonly suspects: readonly TxId[];
}

export type ResolverInput = { readonly t: "scan"; readonly active: readonly TxId[] } | Result;

type Out = Step<ResolverState, Effect>;

export const epochOf = (st: ResolverState): number | null => st.epoch;

export function resolver(opts: ResolverOptions): Role<ResolverState, ResolverInput, Effect> {
  const start = (): ResolverState => ({ phase: "idle", epoch: null, active: [], records: [], scanned: [], rows: [], settles: [], suspects: [] });
  const idle = (st: ResolverState): ResolverState => ({ ...start(), epoch: st.epoch, suspects: st.suspects });
  // No retry loop in a scan: the next scan starts again from what the shards and the log say.
  const settleMutant = opts.mutant === "settle-at-first-sight" ? undefined : opts.mutant;
  const settleOpts = (st: ResolverState): SettleOptions => ({ attemptsMax: 1, retryDelayMs: 0, fence: { key: EPOCH_KEY, version: st.epoch ?? 0 }, mutant: settleMutant });

  /** The speculation records listed: scan the shards' undo rows, one after the other. */
  const step = scan<ResolverState>({ prefix: SPECULATIVE_PREFIX, idle, listed: (st, records) => scanNext({ ...st, records }), own });

  function scanNext(st: ResolverState): Out {
    const shard = opts.shards.find((s) => !st.scanned.includes(s));
    if (shard !== undefined) return { st: { ...st, phase: "scanning" }, effects: [{ t: "local.scan", shard }] };
    return plan(st);
  }

  /** Every shard scanned: settle each unfinished speculation of no live coordinator. */
  function plan(st: ResolverState): Out {
    const found = new Map<TxId, { branches: readonly ShardId[]; version: number | null }>();
    for (const e of st.records) {
      const state = speculativeStateOf(e.value);
      if (state === "SPEC_EXECUTING" && e.value.kind === "speculation") found.set(txOfSpeculativeKey(e.key), { branches: e.value.branches, version: e.version });
    }
    const terminal = st.records.filter((e) => e.value.kind === "speculation" && speculativeStateOf(e.value) !== "SPEC_EXECUTING");
    const final = new Set(terminal.map((e) => txOfSpeculativeKey(e.key)));
    for (const r of st.rows) if (!found.has(r.tx) && !final.has(r.tx)) found.set(r.tx, { branches: r.branches, version: null });
    const effects: Effect[] = [];
    const settles: Settlement[] = [];
    const suspects: TxId[] = [];
    // Leftover terminal records: every branch is final, only the record is left to forget (no need to
    // wait a scan: deleting it is safe under any settler; a live coordinator forgets its own).
    for (const e of terminal) {
      const tx = txOfSpeculativeKey(e.key);
      if (st.active.includes(tx) || e.value.kind !== "speculation") continue;
      const out = drive(newSettlement(tx, e.value.branches.map((shard) => ({ shard, k: "final" as const })), "final", e.version), settleOpts(st));
      effects.push(...out.effects);
      if (!settled(out.s)) settles.push(out.s);
    }
    for (const [tx, f] of [...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (st.active.includes(tx)) continue;
      if (!st.suspects.includes(tx) && opts.mutant !== "settle-at-first-sight") {
        suspects.push(tx);
        continue;
      }
      const branches = [...f.branches].sort().map((shard) => ({ shard, k: st.rows.some((r) => r.tx === tx && r.branch === shard) ? ("applied" as const) : ("unknown" as const) }));
      const out = drive(newSettlement(tx, branches, f.version === null ? "absent" : "durable", f.version ?? 0), settleOpts(st));
      effects.push(...out.effects);
      if (!settled(out.s)) settles.push(out.s);
    }
    const next = { ...st, suspects };
    if (settles.length === 0) return { st: idle(next), effects };
    return { st: { ...next, phase: "settling", settles }, effects };
  }

  function own(st: ResolverState, input: OwnInput): Out {
    switch (input.t) {
      case "local.scan": {
        if (st.phase !== "scanning") return { st, effects: [] };
        // A shard that did not answer is scanned again next time; its branches are probed meanwhile.
        // Kept sorted by (tx, branch), as a shard keeps its undo rows, not in the order the shards were scanned: the
        // rows are a set (nothing here depends on their order), and a set has one order, the one symmetry
        // reduction (spec/world/symmetry.ts) restores after renaming the transactions.
        const rows = input.r.ok ? [...st.rows, ...input.r.rows].sort(byUndoKey) : st.rows;
        return scanNext({ ...st, scanned: [...st.scanned, input.shard], rows });
      }
      case "log.put":
        return route(st, specKeyTx(input.key), input);
      case "log.delete":
        return route(st, specKeyTx(input.key), input);
      case "local.tombstone":
      case "local.compensate":
      case "local.release":
        return route(st, input.tx, input);
      default:
        return { st, effects: [] };
    }
  }

  const specKeyTx = (key: string): TxId | null => (key.startsWith(SPECULATIVE_PREFIX) ? txOfSpeculativeKey(key) : null);

  function route(st: ResolverState, tx: TxId | null, input: Result): Out {
    if (st.phase !== "settling" || tx === null) return { st, effects: [] };
    const s = st.settles.find((x) => x.tx === tx);
    if (s === undefined) return { st, effects: [] };
    const out = onResult(s, input, settleOpts(st));
    // A fenced write: this process is stale; drop everything and start over at the next scan.
    if ((input.t === "log.put" || input.t === "log.delete") && !input.r.ok && input.r.err === "FENCED") return { st: start(), effects: [] };
    const settles = st.settles.map((x) => (x.tx === tx ? out.s : x)).filter((x) => !settled(x));
    return { st: settles.length === 0 ? idle(st) : { ...st, settles }, effects: out.effects };
  }

  return { start, step };
}

/** The process resolver's part for the speculative path (spec/server/resolver.ts). */
export const speculativeResolverPart: ResolverPart = {
  name: "speculative",
  needs: "local",
  role: (shards) => resolver({ shards }),
  actionOf: actionMap({
    "local.tombstone": "tombstone",
    "local.compensate": "compensate",
    "local.release": "release",
    "log.put": (e) => (e.value.kind === "speculation" ? `record_${e.value.state.toLowerCase()}` : null),
  }),
};
