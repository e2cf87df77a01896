/**
 * How the transaction log (spec/env/txlog.ts) answers a flight, faults
 * included: with a log fault left in the budget, a write may answer
 * UNAVAILABLE whether or not it happened, and a read may answer UNAVAILABLE.
 */
import type { Effect, Result } from "../kernel/effects.ts";
import { answerLabel } from "../labels.ts";
import * as txlog from "../env/txlog.ts";
import type { BatchAction, Flight, LogBatchOutcome, World } from "./types.ts";

export interface Answer<W> {
  readonly world: W;
  /** What the asker hears (null: nobody hears anything). */
  readonly result: Result | null;
  readonly fault: boolean;
  readonly label: string;
}

export type LogEffect = Extract<Effect, { t: "log.put" | "log.list" | "log.delete" }>;

export const isLogEffect = (fx: Effect): fx is LogEffect => fx.t === "log.put" || fx.t === "log.list" || fx.t === "log.delete";

/** One way the log may answer a flight: the log after it, what the asker hears, and whether it spends a log fault. */
export interface LogOutcome {
  readonly log: txlog.TxlogState;
  readonly result: Result;
  readonly fault: boolean;
  readonly label: string;
}

/** Every way log `log` may answer `fx` (`faults`: a log fault is left in the budget): a pure function of its arguments. */
export function logOutcomes(log: txlog.TxlogState, fx: LogEffect, faults: boolean): LogOutcome[] {
  switch (fx.t) {
    case "log.put": {
      const { s, r } = txlog.put(log, fx.key, fx.value, fx.ifVersion, fx.fence);
      const result: Result = { t: "log.put", key: fx.key, r };
      const outs: LogOutcome[] = [{ log: s, result, fault: false, label: answerLabel(result) }];
      if (!faults) return outs;
      const unavailable: Result = { t: "log.put", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
      outs.push({ log: s, result: unavailable, fault: true, label: "UNAVAILABLE (written)" });
      outs.push({ log, result: unavailable, fault: true, label: "UNAVAILABLE (not written)" });
      return outs;
    }
    case "log.list": {
      const entries = txlog.list(log, fx.prefix);
      const result: Result = { t: "log.list", r: { ok: true, entries } };
      const outs: LogOutcome[] = [{ log, result, fault: false, label: answerLabel(result) }];
      if (faults) outs.push({ log, result: { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } }, fault: true, label: "UNAVAILABLE" });
      return outs;
    }
    case "log.delete": {
      const { s, r } = txlog.del(log, fx.key, fx.fence, fx.ifVersion);
      const result: Result = { t: "log.delete", key: fx.key, r };
      const outs: LogOutcome[] = [{ log: s, result, fault: false, label: answerLabel(result) }];
      if (!faults) return outs;
      const unavailable: Result = { t: "log.delete", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
      outs.push({ log: s, result: unavailable, fault: true, label: "UNAVAILABLE (deleted)" });
      outs.push({ log, result: unavailable, fault: true, label: "UNAVAILABLE (not deleted)" });
      return outs;
    }
  }
}

/**
 * Every way the log may answer `fx`; `w` no longer holds the flight. `outcomes`: logOutcomes, or a memoised copy
 * of it (./memo.ts); `spend`: the budget with one log fault less.
 */
export function logAnswers<W extends World>(
  w: W,
  fx: LogEffect,
  outcomes: (log: txlog.TxlogState, fx: LogEffect, faults: boolean) => readonly LogOutcome[] = logOutcomes,
  spend: (b: W["budget"]) => W["budget"] = (b) => ({ ...b, logFault: b.logFault - 1 }),
): Answer<W>[] {
  return outcomes(w.log, fx, w.budget.logFault > 0).map((o) => {
    const world: W = o.log === w.log ? w : { ...w, log: o.log };
    return { world: o.fault ? { ...world, budget: spend(w.budget) } : world, result: o.result, fault: o.fault, label: o.label };
  });
}

/** A log write (put or delete), the kind group commit batches. */
export const isLogWrite = (fx: Effect): fx is Extract<Effect, { t: "log.put" | "log.delete" }> => fx.t === "log.put" || fx.t === "log.delete";

/**
 * Group commit's candidates in `flights`: every set of two or more log writes in flight whose askers are alive and
 * distinct (one etcd transaction carries the writes of one process; a role's own writes of one step are one flight
 * each, and the interleavings of one asker's answers are the plain `complete` actions'), identical flights once.
 * Their indices, ascending.
 */
export function batchCandidates(flights: readonly Flight[], key: (f: Flight) => string): number[][] {
  const idx: number[] = [];
  const owners = new Set<number>();
  for (let i = 0; i < flights.length; i++) {
    const f = flights[i]!;
    if (f.orphan || !isLogWrite(f.fx) || owners.has(f.owner)) continue;
    if (i > 0 && key(flights[i - 1]!) === key(f)) continue;
    owners.add(f.owner);
    idx.push(i);
  }
  const out: number[][] = [];
  for (let mask = 1; mask < 1 << idx.length; mask++) {
    const set = idx.filter((_, b) => (mask & (1 << b)) !== 0);
    if (set.length >= 2) out.push(set);
  }
  return out;
}

/**
 * One write of a batch that fails as a unit (LogBatchOutcome): the world after it and what its asker hears.
 * `first`: the batch's first write (the one the wrong adapter of `acked-unwritten` does send).
 */
export function batchWrite<W extends World>(w: W, fx: Extract<Effect, { t: "log.put" | "log.delete" }>, o: LogBatchOutcome, first: boolean): { world: W; result: Result } {
  const applied = fx.t === "log.put" ? txlog.put(w.log, fx.key, fx.value, fx.ifVersion, fx.fence) : txlog.del(w.log, fx.key, fx.fence, fx.ifVersion);
  const unavailable = { ok: false, err: "UNAVAILABLE" } as const;
  switch (o) {
    case "written":
      return { world: { ...w, log: applied.s }, result: { t: fx.t, key: fx.key, r: unavailable } as Result };
    case "lost":
      return { world: w, result: { t: fx.t, key: fx.key, r: unavailable } as Result };
    case "acked-unwritten":
      return { world: first ? { ...w, log: applied.s } : w, result: { t: fx.t, key: fx.key, r: applied.r } as Result };
  }
}

/** The ways a batch may fail as a unit under WorldConfig.logBatch. */
export const batchOutcomesOf = (mode: "on" | "acked-unwritten"): readonly LogBatchOutcome[] => (mode === "on" ? ["written", "lost"] : ["written", "lost", "acked-unwritten"]);

function batchWriteAt(w: World, a: BatchAction, j: number): Extract<Effect, { t: "log.put" | "log.delete" }> {
  const fx = w.flights[a.flights[j]!]!.fx;
  if (!isLogWrite(fx)) throw new Error(`a log batch holds only writes, not ${fx.t}`);
  return fx;
}

/** What the asker of the `k`-th write of batch `a` hears (the log as the writes before it left it; roles do not write the log). */
export function batchResult<W extends World>(w: W, a: BatchAction, k: number): Result {
  let nw = w;
  for (let j = 0; ; j++) {
    const out = batchWrite(nw, batchWriteAt(w, a, j), a.o, j === 0);
    if (j === k) return out.result;
    nw = out.world;
  }
}

/** A batch of log writes fails as a unit (one log fault): each write as `a.o` says, and each asker hears its answer (`deliver`), in flight order. */
export function applyBatch<W extends World>(w: W, a: BatchAction, deliver: (w: W, owner: number, r: Result) => W): W {
  let nw: W = { ...w, flights: w.flights.filter((_, j) => !a.flights.includes(j)), budget: { ...w.budget, logFault: w.budget.logFault - 1 } };
  a.flights.forEach((i, k) => {
    const out = batchWrite(nw, batchWriteAt(w, a, k), a.o, k === 0);
    nw = deliver(out.world, w.flights[i]!.owner, out.result);
  });
  return nw;
}
