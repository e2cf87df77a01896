// The mutant of spec/time/safe.ts `landing` (a late record always kept at its timestamp): the scenario of
// test/time/landing-scenario.ts then changes a snapshot after it was served. Shows landing.test.ts can fail.
import { describe, expect, it, vi } from "vitest";

vi.mock("../../spec/time/safe.ts", async (orig) => ({ ...(await orig<typeof import("../../spec/time/safe.ts")>()), landing: () => "keep" as const }));

describe("mutant: a late commit record kept at its own timestamp", () => {
  it("commits below a snapshot already served: reading it again gives other balances", async () => {
    const { lateLanding } = await import("./landing-scenario.ts");
    const r = await lateLanding();
    expect(r.stampedAt).toBe(r.chosen);
    expect(r.stampedAt).toBeLessThanOrEqual(r.servedAt);
    expect(r.after).not.toEqual(r.before);
  });
});
