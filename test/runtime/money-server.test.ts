// Money through the real server, on real MariaDB shards and etcd started by
// the test: the issue's body that used to commit and create a cent, numbers
// JSON.parse would round, and balances at the edge of what a BIGINT holds
// (the bound every credit is held to; every reader takes balances as exact
// decimal strings, so the column's range is what is exact end to end).
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { totalCents } from "../../runtime/bench/audit.ts";
import { BALANCE_CENTS_MAX } from "../../runtime/cluster/schema.ts";
import { addressesOfCluster } from "../../runtime/main.ts";
import { replayTrace } from "../../conformance/replay.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { DELTA_CENTS_MAX } from "../../runtime/transfer.ts";
import { validateEnvironment } from "../../conformance/validate.ts";
import { snapshot, closeAgents, request, serverOn, balance } from "./support.ts";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";

const PROTOCOLS = ["2pc", "parallel", "speculative"] as const;

let cluster: TestCluster;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  // 10,000 accounts per shard, as `npm start` seeds them, so that the issue's body names the same accounts (11 on shard-a, 10011 on shard-b).
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 10_000, balanceCents: 100_000 });
  server = await serverOn(cluster, ["--etcd-prefix", "money/"]);
  url = server.url;
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

async function sql(shard: string, statement: string): Promise<void> {
  const conn = await mysql.createConnection(cluster.shard(shard).connectionOptions());
  try {
    await conn.query(statement);
  } finally {
    await conn.end();
  }
}

/** The issue's body: python3 -c 'A=lambda d:{...,"account_id":11,"delta":d}; [A(10**15)]*10+[{shard-b,10011,1}]+[A(-10**15)]*10'. */
function issueBody(protocol: string): string {
  const a = (d: string) => `{"shard_id":"shard-a","account_id":11,"delta":${d}}`;
  return `{"ops":[${[...Array(10).fill(a("1000000000000000")), '{"shard_id":"shard-b","account_id":10011,"delta":1}', ...Array(10).fill(a("-1000000000000000"))].join(", ")}],"protocol":"${protocol}"}`;
}

describe("a body whose exact sum is not zero", () => {
  it.each(PROTOCOLS)("the issue's body (10 x 10^15, one cent, 10 x -10^15) is refused with 422 and its exact sum, and nothing moves (%s)", async (protocol) => {
    const before = await snapshot(cluster);
    const total = await totalBalance(cluster);
    const r = await request(url, "POST", "/transfer", { raw: issueBody(protocol) });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("the deltas sum to 0.01, not zero: a transfer moves money, it never creates or destroys it");
    expect(await totalBalance(cluster)).toBe(total);
    expect(await snapshot(cluster)).toEqual(before);
  });

  it("an integer JSON.parse would round (2^53 + 1) is refused from the text with 400, naming the number as written", async () => {
    const total = await totalBalance(cluster);
    const r = await request(url, "POST", "/transfer", {
      raw: '{"ops":[{"shard_id":"shard-a","account_id":11,"delta":9007199254740993},{"shard_id":"shard-b","account_id":10011,"delta":-9007199254740992}]}',
    });
    expect(r.status).toBe(400);
    expect(r.body.error).toContain("JSON number 9007199254740993 is beyond 9007199254740991");
    expect(await totalBalance(cluster)).toBe(total);
  });
});

describe("a transfer of the limit", () => {
  it("moves 10^15 cents, one op each way, exactly; its trace replays and validates against the environment models", async () => {
    await sql("shard-a", `UPDATE accounts SET balance = ${DELTA_CENTS_MAX} WHERE id = 31`);
    const total = await totalBalance(cluster);
    const r = await request(url, "POST", "/transfer", {
      json: { ops: [{ shard_id: "shard-a", account_id: 31, delta: -DELTA_CENTS_MAX }, { shard_id: "shard-b", account_id: 10031, delta: "10000000000000.00" }] },
    });
    expect(r.body).toMatchObject({ status: "committed" });
    let view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    for (let i = 0; i < 100 && !view.done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    }
    expect(view.branches.map((b: { ops: unknown }) => b.ops)).toEqual([[{ account: 31, delta: -DELTA_CENTS_MAX }], [{ account: 10031, delta: DELTA_CENTS_MAX }]]);
    expect(replayTrace(view.trace)).toMatchObject({ ok: true });
    expect(validateEnvironment(view.trace)).toMatchObject({ ok: true });
    expect(await balance(cluster, "shard-a", 31)).toBe(0n);
    expect(await balance(cluster, "shard-b", 10031)).toBe(BigInt(DELTA_CENTS_MAX) + 100_000n);
    expect(await totalBalance(cluster)).toBe(total);
  });
});

describe("balances at the edge of a BIGINT", () => {
  it("the bound is a BIGINT's, 2^63 - 1", () => expect(BALANCE_CENTS_MAX).toBe(9_223_372_036_854_775_807n));

  it.each(PROTOCOLS.map((p, i) => [p, 21 + i] as const))(
    "a credit that would take a balance past 2^63 - 1 is refused by the shard and the transfer aborts with nothing applied; the balance reads back exact (%s)",
    async (protocol, account) => {
      const near = BALANCE_CENTS_MAX - 50n;
      await sql("shard-a", `UPDATE accounts SET balance = ${near} WHERE id = ${account}`);
      const total = await totalBalance(cluster);
      const shown = await request(url, "GET", `/accounts/shard-a/${account}`);
      expect(shown.body).toMatchObject({ balance_cents: near.toString(), balance: "92233720368547757.57" });

      const r = await request(url, "POST", "/transfer", {
        json: { ops: [{ shard_id: "shard-b", account_id: 10000 + account, delta: -100 }, { shard_id: "shard-a", account_id: account, delta: 100 }], protocol },
      });
      expect(r.status).toBe(409);
      expect(r.body).toMatchObject({ status: "aborted" });
      // The speculative path compensates an applied branch right after the answer.
      for (let i = 0; i < 100 && (await totalBalance(cluster)) !== total; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await totalBalance(cluster)).toBe(total);
      expect(await balance(cluster, "shard-a", account)).toBe(near);
      expect(await balance(cluster, "shard-b", 10000 + account)).toBe(100_000n);

      // 50 cents still fit: the bound is the column's, to the cent.
      const fits = await request(url, "POST", "/transfer", {
        json: { ops: [{ shard_id: "shard-b", account_id: 10000 + account, delta: -50 }, { shard_id: "shard-a", account_id: account, delta: 50 }], protocol },
      });
      expect(fits.body).toMatchObject({ status: "committed" });
      for (let i = 0; i < 100 && (await balance(cluster, "shard-a", account)) !== BALANCE_CENTS_MAX; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await balance(cluster, "shard-a", account)).toBe(BALANCE_CENTS_MAX);
      expect((await request(url, "GET", `/accounts/shard-a/${account}`)).body).toMatchObject({ balance_cents: BALANCE_CENTS_MAX.toString(), balance: "92233720368547758.07", pending_cents: "0" });
      expect(await totalBalance(cluster)).toBe(total);
      // The benchmark's audit reads the same total over its own connections.
      expect(await totalCents(addressesOfCluster(cluster.describe()).shards)).toBe(total);
    },
  );
});
