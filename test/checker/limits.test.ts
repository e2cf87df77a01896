// A limit never yields success: the run says INCOMPLETE and which limit.
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import { twoPhase } from "../../spec/reference/twophase.ts";
import { tcommit } from "../../spec/reference/tcommit.ts";

describe("limits", () => {
  it("max states", () => {
    const r = check(twoPhase(6), { maxStates: 1000 });
    expect(r.complete).toBe(false);
    expect(r.incomplete).toBe("max states 1000");
    expect(r.distinct).toBeGreaterThanOrEqual(1000);
    expect(r.distinct).toBeLessThan(50_816);
  });

  it("max states on the generic path", () => {
    const r = check(tcommit(6), { maxStates: 100 });
    expect(r.complete).toBe(false);
    expect(r.incomplete).toBe("max states 100");
  });

  it("max depth: states at that depth are stored and checked, not expanded", () => {
    const r = check(twoPhase(5), { maxDepth: 4 });
    expect(r.complete).toBe(false);
    expect(r.incomplete).toBe("max depth 4");
    expect(r.depth).toBe(4);
  });

  it("a max depth beyond the real depth completes", () => {
    const r = check(twoPhase(3), { maxDepth: 12 });
    expect(r.complete).toBe(true);
    expect(r.distinct).toBe(288);
  });

  it("max seconds", () => {
    const r = check(twoPhase(8), { maxSeconds: 0.05 });
    expect(r.complete).toBe(false);
    expect(r.incomplete).toBe("max seconds 0.05");
    expect(r.distinct).toBeLessThan(1_745_408);
  });

  it("progress lines carry distinct, generated, queue, depth, states/s and RSS", () => {
    const lines: string[] = [];
    check(twoPhase(4), { progress: (l) => lines.push(l), progressMs: 0 });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatch(/distinct=1568 generated=8258 queue=0 depth=14 states\/s=\d+ rss=\d+MB/);
  });
});
