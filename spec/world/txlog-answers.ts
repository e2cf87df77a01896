/**
 * How the transaction log (spec/env/txlog.ts) answers a flight, faults
 * included: with a log fault left in the budget, a write may answer
 * UNAVAILABLE whether or not it happened, and a read may answer UNAVAILABLE.
 */
import type { Effect, Result } from "../kernel/effects.ts";
import { answerLabel } from "../labels.ts";
import * as txlog from "../env/txlog.ts";
import type { World } from "./types.ts";

export interface Answer<W> {
  readonly world: W;
  /** What the asker hears (null: nobody hears anything). */
  readonly result: Result | null;
  readonly fault: boolean;
  readonly label: string;
}

type LogEffect = Extract<Effect, { t: "log.put" | "log.list" | "log.delete" }>;

export const isLogEffect = (fx: Effect): fx is LogEffect => fx.t === "log.put" || fx.t === "log.list" || fx.t === "log.delete";

/** Every way the log may answer `fx`; `w` no longer holds the flight. */
export function logAnswers<W extends World>(w: W, fx: LogEffect): Answer<W>[] {
  const lost = (world: W): W => ({ ...world, budget: { ...w.budget, logFault: w.budget.logFault - 1 } });
  const faults = w.budget.logFault > 0;
  switch (fx.t) {
    case "log.put": {
      const { s, r } = txlog.put(w.log, fx.key, fx.value, fx.ifVersion, fx.fence);
      const written: W = { ...w, log: s };
      const result: Result = { t: "log.put", key: fx.key, r };
      const outs: Answer<W>[] = [{ world: written, result, fault: false, label: answerLabel(result) }];
      if (!faults) return outs;
      const unavailable: Result = { t: "log.put", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
      outs.push({ world: lost(written), result: unavailable, fault: true, label: "UNAVAILABLE (written)" });
      outs.push({ world: lost(w), result: unavailable, fault: true, label: "UNAVAILABLE (not written)" });
      return outs;
    }
    case "log.list": {
      const entries = txlog.list(w.log, fx.prefix);
      const result: Result = { t: "log.list", r: { ok: true, entries } };
      const outs: Answer<W>[] = [{ world: w, result, fault: false, label: answerLabel(result) }];
      if (faults) outs.push({ world: lost(w), result: { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } }, fault: true, label: "UNAVAILABLE" });
      return outs;
    }
    case "log.delete": {
      const { s, r } = txlog.del(w.log, fx.key, fx.fence, fx.ifVersion);
      const deleted: W = { ...w, log: s };
      const result: Result = { t: "log.delete", key: fx.key, r };
      const outs: Answer<W>[] = [{ world: deleted, result, fault: false, label: answerLabel(result) }];
      if (!faults) return outs;
      const unavailable: Result = { t: "log.delete", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
      outs.push({ world: lost(deleted), result: unavailable, fault: true, label: "UNAVAILABLE (deleted)" });
      outs.push({ world: lost(w), result: unavailable, fault: true, label: "UNAVAILABLE (not deleted)" });
      return outs;
    }
  }
}
