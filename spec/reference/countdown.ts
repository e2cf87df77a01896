/**
 * A toy model for the checker's documentation and tests (docs/checker.md):
 * a countdown from N to 0 that a fault can jam and a repair can unjam.
 *
 * It exercises every kind of property: an invariant (InRange), the deadlock
 * check with a terminal state (0 is where it is meant to stop), and
 * possibility liveness: once faults stop (no more "jam"), 0 can still be
 * reached. The mutant "noRepair" removes the repair, so a jam is forever:
 * caught as a deadlock and as a violation of `Done`.
 */
import type { Model, ModelFactory } from "../kernel/model.ts";

export interface CountdownState {
  left: number;
  jammed: boolean;
}
export type CountdownAction = "tick" | "jam" | "repair";

export function countdown(n: number, mutant?: "noRepair"): Model<CountdownState, CountdownAction> {
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new Error(`Countdown: N must be an integer from 0 to 255, got ${n}`);
  return {
    name: "Countdown",
    init: () => [{ left: n, jammed: false }],
    *actions(s) {
      if (s.left > 0 && !s.jammed) yield "tick";
      if (s.left > 0 && !s.jammed) yield "jam";
      if (s.jammed && mutant !== "noRepair") yield "repair";
    },
    next: (s, a) =>
      a === "tick" ? { left: s.left - 1, jammed: false } : { left: s.left, jammed: a === "jam" },
    invariants: { InRange: (s) => s.left >= 0 && s.left <= n },
    eventually: { Done: { goal: (s) => s.left === 0, allowed: (a) => a !== "jam" } },
    terminal: (s) => s.left === 0,
    encode: (s) => Uint8Array.of(s.left, s.jammed ? 1 : 0),
    decode: (b) => ({ left: b[0]!, jammed: b[1] === 1 }),
    describe: (_from, a) => ({ actor: a === "tick" ? "clock" : "environment", label: a }),
    actors: () => ["clock", "environment"],
  };
}

export const countdownFactory: ModelFactory = {
  name: "Countdown",
  description: "Toy model: a countdown from N that faults can jam (documentation and engine tests)",
  params: { N: 3 },
  mutants: ["noRepair"],
  build: (params, mutant) => countdown(Number(params.N), mutant as "noRepair" | undefined),
};
