// A decision record that lands after its coordinator gave up is written again above every snapshot served
// (spec/time/safe.ts landing); deterministic in-memory injection (test/time/landing-scenario.ts). The same run
// with `landing` always "keep" (the mutant): test/time/landing-mutant.test.ts.
import { describe, expect, it } from "vitest";
import { landing } from "../../spec/time/safe.ts";
import { lateLanding } from "./landing-scenario.ts";

describe("a commit record that lands late", () => {
  it("is re-stamped above the snapshot served meanwhile: that snapshot reads the same after the transfer committed", async () => {
    const r = await lateLanding();
    expect(r.servedAt).toBeGreaterThanOrEqual(r.chosen);
    expect(r.recordTs).toBeGreaterThan(r.servedAt);
    expect(r.stampedAt).toBe(r.recordTs);
    expect(r.after).toEqual(r.before);
    expect(r.before).toEqual({ a: 1000n, b: 1000n });
  });
  it("landing: keep above what was released, re-stamp at or below it", () => {
    expect(landing(11n, 10n)).toBe("keep");
    expect(landing(10n, 10n)).toBe("restamp");
    expect(landing(3n, 10n)).toBe("restamp");
    expect(landing(0n, -1n)).toBe("keep");
  });
});
