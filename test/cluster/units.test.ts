// The cluster code's pure parts: money conversion, names and ids, seed limits, ports.
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { seedTotalCents, validateSeedParameters } from "../../runtime/cluster/cluster.ts";
import { freePorts } from "../../runtime/cluster/ports.ts";
import { firstAccountId, shardName, toCents } from "../../runtime/cluster/schema.ts";

describe("toCents", () => {
  it("takes integer strings, bigints and safe integers exactly", () => {
    expect(toCents("3000000000")).toBe(3_000_000_000n);
    expect(toCents("-42")).toBe(-42n);
    expect(toCents("9223372036854775807")).toBe(9_223_372_036_854_775_807n);
    expect(toCents("150.000")).toBe(150n);
    expect(toCents(7n)).toBe(7n);
    expect(toCents(12)).toBe(12n);
  });

  it("refuses fractions, floats, unsafe numbers and non-numbers instead of rounding", () => {
    for (const bad of ["1.5", "1e3", "", " 1", 0.5, 2 ** 53, Number.NaN, null, undefined, {}]) {
      expect(() => toCents(bad)).toThrow("not an integer number of cents");
    }
  });
});

describe("shard names and account ids", () => {
  it("names shards shard-a.. and gives each a disjoint global id range", () => {
    expect([0, 1, 2, 25].map(shardName)).toEqual(["shard-a", "shard-b", "shard-c", "shard-z"]);
    expect(() => shardName(26)).toThrow("from 0 to 25");
    expect([0, 1, 2].map((i) => firstAccountId(i, 10_000))).toEqual([1, 10_001, 20_001]);
  });
});

describe("validateSeedParameters", () => {
  it("accepts the defaults and names the parameter, its flag and its range otherwise", () => {
    expect(() => validateSeedParameters({ shards: 3, accountsPerShard: 10_000, balanceCents: 100_000 })).not.toThrow();
    expect(() => validateSeedParameters({ shards: 27, accountsPerShard: 1, balanceCents: 1 })).toThrow("shards (--shards) must be an integer from 1 to 26 (got 27)");
    expect(() => validateSeedParameters({ shards: 1, accountsPerShard: 0, balanceCents: 1 })).toThrow("accountsPerShard (--accounts) must be an integer from 1 to 10000000 (got 0)");
    expect(() => validateSeedParameters({ shards: 1, accountsPerShard: 1, balanceCents: 0.5 })).toThrow("balanceCents (--balance-cents)");
    expect(() => validateSeedParameters({ shards: 26, accountsPerShard: 10_000_000, balanceCents: 1_000_000_000_000 })).toThrow("= 260000000000000000000 cents exceeds 9007199254740991");
  });

  it("allows a seed total of exactly 2^53 - 1 cents and not one more, computed exactly", () => {
    // 2^53 - 1 = 6361 x 69431 x 20394401; 2^53 = 8 x 2^20 x 2^30.
    const atMost = { shards: 1, accountsPerShard: 69_431, balanceCents: 6_361 * 20_394_401 };
    expect(seedTotalCents(atMost)).toBe(2n ** 53n - 1n);
    expect(() => validateSeedParameters(atMost)).not.toThrow();
    expect(() => validateSeedParameters({ shards: 8, accountsPerShard: 2 ** 20, balanceCents: 2 ** 30 })).toThrow("= 9007199254740992 cents exceeds");
  });
});

describe("freePorts", () => {
  it("hands out distinct ports that can be bound on 127.0.0.1", async () => {
    const ports = await freePorts(40);
    expect(new Set(ports).size).toBe(40);
    for (const port of ports.slice(0, 5)) {
      await new Promise<void>((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen({ host: "127.0.0.1", port }, () => server.close(() => resolve()));
      });
    }
  });
});
