// runtime/bench/shard-cost.ts: its flags are checked, and a short run on a real MariaDB measures every statement form
// (each branch's answers are checked by the tool itself: a failed exec, prepare, commit, stamp, apply or release throws).
import { describe, expect, it } from "vitest";
import { KINDS, measureShardCost, parseShardCostArgs } from "../../runtime/bench/shard-cost.ts";

describe("bench: a shard's CPU per branch", () => {
  it("checks its flags: defaults, bounds, unknown flags", () => {
    expect(parseShardCostArgs([])).toEqual({ branches: 2000, clients: 8, rounds: 2 });
    expect(parseShardCostArgs(["--branches", "500", "--clients", "4", "--rounds", "3", "--json", "x.json"])).toEqual({ branches: 500, clients: 4, rounds: 3, json: "x.json" });
    expect(() => parseShardCostArgs(["--branches", "99"])).toThrow(/--branches: "99" is not allowed; expected an integer from 100 to 1000000/);
    expect(() => parseShardCostArgs(["--clients", "0"])).toThrow(/--clients/);
    expect(() => parseShardCostArgs(["--rounds"])).toThrow(/--rounds: "" is not allowed/);
    expect(() => parseShardCostArgs(["--json"])).toThrow(/--json needs a file/);
    expect(() => parseShardCostArgs(["--duration", "2"])).toThrow(/unknown argument "--duration"/);
  });

  it("measures every kind on a MariaDB it starts: mariadbd's CPU and the client's per branch", { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const r = await measureShardCost({ branches: 100, clients: 2, rounds: 1 }, (l) => lines.push(l));
    expect(r.medians.map((m) => m.kind)).toEqual([...KINDS]);
    expect(r.rounds).toHaveLength(KINDS.length);
    for (const f of r.rounds) {
      expect(f.branches).toBe(100);
      expect(f.per_s).toBeGreaterThan(0);
      expect(f.client_cpu_us).toBeGreaterThan(0);
      expect(f.shard_cpu_us).toBeGreaterThanOrEqual(0);
    }
    // The shard did work across the run (its CPU is read in clock ticks of 10 ms: one kind alone may read 0).
    expect(r.rounds.reduce((x, f) => x + f.shard_cpu_us, 0)).toBeGreaterThan(0);
    expect(lines).toHaveLength(KINDS.length);
  });
});
