/**
 * Settling one speculation on demand, for a reader that must know its
 * outcome now and found nothing of it: the idempotency path after a restart
 * (runtime/idempotency.ts), whose client retries a key whose coordinator is
 * gone. Reading is not enough there: an apply of the dead coordinator may
 * still be waiting for a lock on its shard and commit later, so "no undo row,
 * no record" does not mean "never". The protocol's answer is the probe
 * settle.ts already uses: a tombstone on every branch key. Whichever of the
 * apply and the tombstone commits first wins, so once every key is held the
 * outcome is final, and this role answers it.
 *
 * It is exactly the settling the coordinator and the resolver do (settle.ts,
 * started from "every branch unknown"): any number of settlers reach the
 * same outcome from the same keys, so running it beside the resolver is
 * safe. After the answer it finishes the settlement (record, compensation or
 * release, terminal record, forget) like any settler.
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import type { Role, Step } from "../../kernel/role.ts";
import { EPOCH_KEY, type ShardId, type Effect, type Result, type TxId } from "../../kernel/effects.ts";
import { answerOf, drive, newSettlement, onResult, settled, type Settlement, type SettleOptions } from "./settle.ts";

export interface ProbeState {
  readonly phase: "idle" | "running" | "done";
  readonly tx: TxId;
  readonly epoch: number;
  readonly settle: Settlement | null;
  readonly replied: boolean;
}

export type ProbeInput = { readonly t: "probe"; readonly tx: TxId; readonly branches: readonly ShardId[]; readonly epoch: number } | Result;

export interface ProbeOptions {
  readonly attemptsMax: number;
  readonly retryDelayMs: number;
}

type Out = Step<ProbeState, Effect>;

export function prober(opts: ProbeOptions): Role<ProbeState, ProbeInput, Effect> {
  const start = (): ProbeState => ({ phase: "idle", tx: "", epoch: 0, settle: null, replied: false });
  const settleOpts = (st: ProbeState): SettleOptions => ({ attemptsMax: opts.attemptsMax, retryDelayMs: opts.retryDelayMs, fence: { key: EPOCH_KEY, version: st.epoch } });

  function after(st0: ProbeState, out: { s: Settlement; effects: Effect[] }): Out {
    const answer = st0.replied ? null : answerOf(out.s, "resolver");
    const effects: Effect[] = answer === null ? out.effects : [{ t: "reply", tx: st0.tx, outcome: answer }, ...out.effects];
    return { st: { ...st0, settle: out.s, replied: st0.replied || answer !== null, phase: settled(out.s) ? "done" : st0.phase }, effects };
  }

  function step(st: ProbeState, input: ProbeInput): Out {
    if (input.t === "probe") {
      if (st.phase !== "idle") return { st, effects: [] };
      const running: ProbeState = { ...start(), phase: "running", tx: input.tx, epoch: input.epoch };
      const s = newSettlement(input.tx, [...input.branches].sort().map((shard) => ({ shard, k: "unknown" as const })), "absent", 0);
      return after(running, drive(s, settleOpts(running)));
    }
    if (st.phase !== "running" || st.settle === null) return { st, effects: [] };
    return after(st, onResult(st.settle, input, settleOpts(st)));
  }

  return { start, step };
}

export const probeDone = (st: ProbeState): boolean => st.phase === "done";
