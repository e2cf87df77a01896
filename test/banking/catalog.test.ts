// The account catalog (runtime/accounts.ts) is a bounded cache in front of the shards: counts beyond its bounds
// never stop the server from starting (it threw a plain Error past 1M accounts not open or 2M gapped ids), a miss is
// asked of the shard, and what it remembers stays within its bounds. Real MariaDB (the catalog's reads through a
// root connection standing in for the server's pool; bounds made small so the shard need not hold millions of rows).
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connection } from "mysql2/promise";
import { Accounts } from "../../runtime/accounts.ts";
import type { ShardPool } from "../../runtime/adapters/mysql-pool.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
let conn: Connection;
let pool: ShardPool;
let down = false;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 40 });
  conn = await cluster.shard("shard-a").connect();
  // Gaps (ids 1000..1019) and accounts in every state but open.
  await conn.query("INSERT INTO accounts (id, status) VALUES " + Array.from({ length: 20 }, (_, i) => `(${1_000 + i}, '${["opening", "closed", "failed", "open"][i % 4]}')`).join(","));
  pool = {
    run: async (sql: string) => {
      if (down) return { ok: false, error: { errno: undefined, code: "POOL_UNAVAILABLE", fatal: true, message: "down" } };
      const [rows] = await conn.query(sql);
      return { ok: true, value: rows };
    },
  } as unknown as ShardPool;
}, 120_000);

afterAll(async () => {
  await conn?.end();
  await cluster?.stop();
}, 60_000);

describe("the account catalog", () => {
  it("a shard lacking a table the server uses (a later version's: node_fence) stops the start, naming it and what to run", async () => {
    const checked = {
      run: async (sql: string) => {
        try {
          const [rows] = await conn.query(sql);
          return { ok: true, value: rows };
        } catch (e) {
          const err = e as { errno?: number; code?: string; message: string };
          return { ok: false, error: { errno: err.errno, code: err.code ?? "", fatal: false, message: err.message } };
        }
      },
    } as unknown as ShardPool;
    await conn.query("RENAME TABLE node_fence TO node_fence_gone");
    try {
      await expect(Accounts.load(new Map([["shard-a", checked]]))).rejects.toThrow(/shard-a: cannot read table node_fence .*speccommit cluster up/);
    } finally {
      await conn.query("RENAME TABLE node_fence_gone TO node_fence");
    }
    expect((await Accounts.load(new Map([["shard-a", checked]]))).missing()).toEqual([]);
  });

  it("starts past its bounds, answers from the shard on a miss, and remembers within them", async () => {
    const bounds = { idsMax: 10, statesMax: 3, positivesMax: 7 };
    const a = await Accounts.load(new Map([["shard-a", pool]]), bounds);
    expect(a.missing()).toEqual([]);
    expect(a.statesKept("shard-a")).toBeLessThanOrEqual(3);
    const exists = (id: number) => (id >= 1 && id <= 40) || (id >= 1_000 && id < 1_020);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 990, max: 1_030 })), { minLength: 1, maxLength: 8 }), async (ids) => {
        const found = await a.lookup(ids.map((account) => ({ shard: "shard-a", account })));
        for (const id of ids) {
          expect(found.has(`shard-a:${id}`)).toBe(exists(id));
          expect(await a.exists("shard-a", id)).toBe(exists(id));
          if (exists(id)) expect(a.withFound(found).hasAccount("shard-a", id)).toBe(true);
        }
        expect(a.remembered("shard-a")).toBeLessThanOrEqual(7);
        expect(a.statesKept("shard-a")).toBeLessThanOrEqual(3);
      }),
      { numRuns: 40 },
    );
    // States learned from the shard: a closed one is refused, an open one is not.
    await a.lookup([{ shard: "shard-a", account: 1_001 }, { shard: "shard-a", account: 1_003 }]);
    expect(a.refusal("shard-a", 1_001)).toMatch(/closed/);
    expect(a.refusal("shard-a", 1_003)).toBeNull();
    // A close running here survives a full state map.
    a.setState("shard-a", 7, "closing");
    for (let i = 0; i < 10; i++) a.setState("shard-a", 2_000 + i, "failed");
    expect(a.state("shard-a", 7)).toBe("closing");
    a.close();
  });

  it("a shard that does not answer a miss is a 503, never a 422", async () => {
    const a = await Accounts.load(new Map([["shard-a", pool]]), { idsMax: 10 });
    down = true;
    try {
      await expect(a.lookup([{ shard: "shard-a", account: 1_005 }])).rejects.toMatchObject({ status: 503 });
      await expect(a.exists("shard-a", 1_005)).rejects.toMatchObject({ status: 503 });
    } finally {
      down = false;
      a.close();
    }
  });
});
