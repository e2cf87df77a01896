// deadlock_interval_ms (runtime/config.ts): 0 turns the detector off; otherwise it may not go below
// DEADLOCK_INTERVAL_MS_MIN, since InnoDB's lock-wait tables, read more often than every 100 ms, never change.
import { describe, expect, it } from "vitest";
import { DEADLOCK_INTERVAL_MS_MIN, loadConfig } from "../../runtime/config.ts";

const interval = (argv: string[]) => {
  const r = loadConfig({ argv: ["--auth", "none", ...argv], env: {} });
  if (r.help) throw new Error("unexpected --help");
  return r.config.deadlock_interval_ms;
};

describe("deadlock_interval_ms", () => {
  it("is 120 by default, 0 turns it off, any value from the floor up is taken", () => {
    expect(interval([])).toBe(120);
    expect(interval(["--deadlock-interval-ms", "0"])).toBe(0);
    expect(interval(["--deadlock-interval-ms", String(DEADLOCK_INTERVAL_MS_MIN)])).toBe(DEADLOCK_INTERVAL_MS_MIN);
    expect(DEADLOCK_INTERVAL_MS_MIN).toBeGreaterThan(100);
  });

  it("refuses an interval below the floor (InnoDB's 100 ms cache), naming the setting", () => {
    expect(() => interval(["--deadlock-interval-ms", "50"])).toThrow(/--deadlock-interval-ms: 50 is not allowed/);
    expect(() => interval(["--deadlock-interval-ms", String(DEADLOCK_INTERVAL_MS_MIN - 1)])).toThrow(/deadlock-interval-ms/);
  });
});
