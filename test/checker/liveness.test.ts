// Deadlock (with terminal states) and possibility liveness (`eventually`) on
// the Countdown toy model, and on hand-made models where the answer is known.
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import { countdown } from "../../spec/reference/countdown.ts";
import type { Model } from "../../spec/kernel/model.ts";

/** A ring 0 -> 1 -> ... -> n-1 -> 0, plus a side exit from `trap` into a sink state n with no way back. */
function ring(n: number, trap: number | undefined): Model<number, string> {
  return {
    name: "Ring",
    init: () => [0],
    *actions(s) {
      if (s < n) yield "step";
      if (s === trap) yield "fall";
    },
    next: (s, a) => (a === "fall" ? n : (s + 1) % n),
    invariants: {},
    eventually: { BackToZero: { goal: (s) => s === 0 } },
    encode: (s) => Uint8Array.of(s),
    decode: (b) => b[0]!,
  };
}

describe("deadlock", () => {
  it("a state with no action is not a deadlock when the model calls it terminal", () => {
    const r = check(countdown(3), { deadlock: true });
    expect(r.violations).toEqual([]);
    expect(r.distinct).toBe(7);
  });

  it("without terminal(), a state with no action is a deadlock", () => {
    const { terminal: _t, ...noTerminal } = countdown(3);
    const r = check(noTerminal, { deadlock: true });
    expect(r.violations.map((v) => [v.name, v.kind, v.length])).toEqual([["deadlock", "deadlock", 3]]);
  });

  it("the check is off unless asked for", () => {
    expect(check(countdown(3, "noRepair")).violations.map((v) => v.name)).toEqual(["Done"]);
  });

  it("a jam with no repair deadlocks after one step", () => {
    const r = check(countdown(3, "noRepair"), { deadlock: true });
    expect(r.violations.map((v) => [v.name, v.length])).toEqual([["deadlock", 1]]);
    expect(r.violations[0]!.trace.steps.map((s) => s.input)).toEqual(["Init", "jam"]);
  });
});

describe("eventually (AG EF goal over allowed steps)", () => {
  it("passes when every state can still reach the goal without faults", () => {
    const r = check(countdown(4));
    expect(r.violations).toEqual([]);
    expect(r.complete).toBe(true);
  });

  it("fails when a jam can never be undone, with the shortest trace to a stuck state", () => {
    const r = check(countdown(4, "noRepair"));
    expect(r.violations.map((v) => [v.name, v.kind, v.length])).toEqual([["Done", "eventually", 1]]);
  });

  it("disallowed steps do not count as a way to the goal", () => {
    // No repair; the only way out of a jam is another "jam" straight to 0, which Done does not allow.
    const base = countdown(2, "noRepair");
    const m: Model<{ left: number; jammed: boolean }, "tick" | "jam" | "repair"> = {
      ...base,
      *actions(s) {
        yield* base.actions(s);
        if (s.jammed) yield "jam";
      },
      next: (s, a) => (a === "jam" && s.jammed ? { left: 0, jammed: false } : base.next(s, a)),
    };
    expect(check(m).violations.map((v) => [v.name, v.length])).toEqual([["Done", 1]]);
    const everyStepAllowed = check({ ...m, eventually: { Done: { goal: (s) => s.left === 0 } } });
    expect(everyStepAllowed.violations).toEqual([]);
  });

  it("a cycle that always returns to the goal passes; a reachable sink fails at the shortest depth", () => {
    expect(check(ring(5, undefined)).violations).toEqual([]);
    const r = check(ring(5, 2));
    expect(r.violations.map((v) => [v.name, v.length])).toEqual([["BackToZero", 3]]);
    expect(r.violations[0]!.trace.steps.map((s) => s.input)).toEqual(["Init", "step", "step", "fall"]);
  });
});

describe("a model that throws", () => {
  it("is reported with the action, the depth and the state", () => {
    const base = countdown(3);
    const m: Model<{ left: number; jammed: boolean }, "tick" | "jam" | "repair"> = {
      ...base,
      next: (s, a) => {
        if (a === "repair") throw new Error("repair is not implemented");
        return base.next(s, a);
      },
    };
    expect(() => check(m)).toThrow(/Countdown: the model threw on action "repair" .* from a state at depth 2: repair is not implemented\nstate: \{"left":3,"jammed":true\}/);
  });
});
