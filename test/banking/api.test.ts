// The banking API against real MariaDB x2 and etcd: opening accounts (money moved, never minted; idempotent),
// closing at zero only, listing, history and transactions pages, and the 4xx of bad input.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, serverOn } from "../runtime/support.ts";

let cluster: TestCluster;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", "bank/"]);
  url = server.url;
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

const open = (body: Record<string, unknown>, key?: string) => request(url, "POST", "/accounts", { json: body, ...(key !== undefined ? { headers: { "Idempotency-Key": key } } : {}) });
const transfer = (ops: Array<[string, number, number]>) =>
  request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })) } });

describe("POST /accounts", () => {
  it("opens an account by moving its opening balance from the funding account, once per key", async () => {
    const total = await totalBalance(cluster);
    const fundingBefore = await balance(cluster, "shard-a", 1);
    const body = { shard_id: "shard-b", account_id: 5_000, opening_balance: "12.34", funding: { shard_id: "shard-a", account_id: 1 } };
    const r = await open(body, "open-5000");
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ shard_id: "shard-b", account_id: 5_000, status: "open", opening_balance_cents: "1234", outcome: { status: "committed" } });
    expect(await balance(cluster, "shard-b", 5_000)).toBe(1234n);
    expect(await balance(cluster, "shard-a", 1)).toBe(fundingBefore - 1234n);
    expect(await totalBalance(cluster)).toBe(total);
    // The same key again: the same account, nothing moved twice.
    const again = await open(body, "open-5000");
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ account_id: 5_000, status: "open", replayed: true });
    expect(await balance(cluster, "shard-a", 1)).toBe(fundingBefore - 1234n);
    // The same key with another request: refused.
    const other = await open({ ...body, opening_balance: "12.35" }, "open-5000");
    expect(other.status).toBe(409);
    expect(other.body.error).toMatch(/another request/);
    // The new account takes transfers.
    expect((await transfer([["shard-b", 5_000, -234], ["shard-a", 2, 234]])).status).toBe(200);
    expect(await balance(cluster, "shard-b", 5_000)).toBe(1000n);
  });

  it("allocates an id when none is given, and refuses an id that exists", async () => {
    const r = await open({ shard_id: "shard-a", opening_balance: 500, funding: { shard_id: "shard-b", account_id: 101 } }, "alloc-1");
    expect(r.status).toBe(201);
    expect(r.body.account_id).toBeGreaterThan(5_000);
    const dup = await open({ shard_id: "shard-a", account_id: 3, opening_balance: 1, funding: { shard_id: "shard-b", account_id: 101 } }, "dup-3");
    expect(dup.status).toBe(409);
    expect(dup.body.error).toMatch(/exists/);
  });

  it("an opening the funding account cannot pay aborts: the account is 'failed', takes no transfer, and nothing moved", async () => {
    const total = await totalBalance(cluster);
    const r = await open({ shard_id: "shard-a", account_id: 7_000, opening_balance: "5000.00", funding: { shard_id: "shard-b", account_id: 102 } }, "too-much");
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ status: "failed", outcome: { status: "aborted" } });
    expect(await balance(cluster, "shard-a", 7_000)).toBe(0n);
    expect(await totalBalance(cluster)).toBe(total);
    const t = await transfer([["shard-a", 7_000, 1], ["shard-a", 4, -1]]);
    expect(t.status).toBe(409);
    expect(t.body.error).toMatch(/never opened/);
    // Replayed with its key: the same answer, not a second attempt.
    const again = await open({ shard_id: "shard-a", account_id: 7_000, opening_balance: "5000.00", funding: { shard_id: "shard-b", account_id: 102 } }, "too-much");
    expect(again.status).toBe(409);
    expect(again.body.status).toBe("failed");
  });

  it("refuses bad input with a 4xx that says why", async () => {
    const f = { shard_id: "shard-a", account_id: 1 };
    expect((await open({ shard_id: "shard-a", opening_balance: 1, funding: f })).status).toBe(400); // no key
    expect((await request(url, "POST", "/accounts", { raw: '{"shard_id":"shard-a","opening_balance":1.5,"funding":{"shard_id":"shard-a","account_id":1}}', headers: { "Idempotency-Key": "k1" } })).status).toBe(400);
    expect((await open({ shard_id: "shard-a", opening_balance: "1.234", funding: f }, "k2")).body.error).toMatch(/at most two decimals/);
    expect((await open({ shard_id: "shard-z", opening_balance: 1, funding: f }, "k3")).status).toBe(422);
    expect((await open({ shard_id: "shard-a", opening_balance: "-1", funding: f }, "k4")).status).toBe(422);
    expect((await open({ shard_id: "shard-a", opening_balance: 100 }, "k5")).status).toBe(422); // no funding
    expect((await open({ shard_id: "shard-a", opening_balance: 1, funding: { shard_id: "shard-a", account_id: 99_999 } }, "k6")).status).toBe(422);
    expect((await open({ shard_id: "shard-a", opening_balance: 1, funding: f, protocol: "speculative" }, "k7")).status).toBe(400);
    expect((await open({ shard_id: "shard-a", opening_balance: 1, funding: f, extra: 1 }, "k8")).status).toBe(400);
  });
});

describe("POST /accounts/:shard/:id/close", () => {
  it("closes only at zero; a closed account refuses transfers with 409", async () => {
    const r = await open({ shard_id: "shard-a", account_id: 8_000, opening_balance: 300, funding: { shard_id: "shard-b", account_id: 103 } }, "to-close");
    expect(r.status).toBe(201);
    const notEmpty = await request(url, "POST", "/accounts/shard-a/8000/close");
    expect(notEmpty.status).toBe(409);
    expect(notEmpty.body.error).toMatch(/holds 3\.00/);
    expect((await transfer([["shard-a", 8_000, -300], ["shard-b", 103, 300]])).status).toBe(200);
    const closed = await request(url, "POST", "/accounts/shard-a/8000/close");
    expect(closed.status).toBe(200);
    expect(closed.body).toEqual({ shard_id: "shard-a", account_id: 8_000, status: "closed" });
    expect((await request(url, "POST", "/accounts/shard-a/8000/close")).body.replayed).toBe(true);
    const t = await transfer([["shard-a", 8_000, 1], ["shard-a", 5, -1]]);
    expect(t.status).toBe(409);
    expect(t.body.error).toMatch(/closed/);
    expect((await request(url, "POST", "/accounts/shard-a/99999/close")).status).toBe(404);
    expect((await request(url, "POST", "/accounts/shard-a/abc/close")).status).toBe(400);
    expect((await request(url, "GET", "/accounts/shard-a/1/close")).status).toBe(405);
  });

  it("a close waits for a transfer in flight on the account, then judges the balance it left", async () => {
    // The transfer is held in flight by a lock on its other account (shard-b:150, taken here): its branch on the
    // account to close has run. A close that did not wait would judge the balance before the transfer: it would refuse
    // shard-a:6 (1000.00 before the transfer empties it), and close shard-a:16 before its credit lands.
    const order: string[] = [];
    const held = async (ops: Array<[string, number, number]>, close: string, lockOn: number) => {
      const root = await cluster.shard("shard-b").connect();
      await root.query("START TRANSACTION");
      await root.query(`SELECT balance FROM accounts WHERE id = ${lockOn} FOR UPDATE`);
      const t = transfer(ops).then((r) => (order.push("transfer"), r));
      await new Promise((r) => setTimeout(r, 300));
      const c = request(url, "POST", close).then((r) => (order.push("close"), r));
      await new Promise((r) => setTimeout(r, 300));
      await root.query("ROLLBACK");
      await root.end();
      return Promise.all([t, c]);
    };
    // Emptied by the transfer in flight: closed once it committed (a close that did not wait refuses 1000.00).
    order.length = 0;
    const [t1, c1] = await held([["shard-a", 6, -100_000], ["shard-b", 150, 100_000]], "/accounts/shard-a/6/close", 150);
    expect(t1.status).toBe(200);
    expect(c1.status).toBe(200);
    expect(order).toEqual(["transfer", "close"]);
    expect(await balance(cluster, "shard-a", 6)).toBe(0n);
    // Credited by the transfer in flight: refused once it committed (a close that did not wait closes it at 0).
    expect((await transfer([["shard-a", 16, -100_000], ["shard-b", 151, 100_000]])).status).toBe(200);
    order.length = 0;
    const [t2, c2] = await held([["shard-a", 16, 100], ["shard-b", 152, -100]], "/accounts/shard-a/16/close", 152);
    expect(t2.status).toBe(200);
    expect(c2.status).toBe(409);
    expect(order).toEqual(["transfer", "close"]);
    expect(await balance(cluster, "shard-a", 16)).toBe(100n);
  });
});

describe("GET /accounts, history, transactions", () => {
  it("lists a shard's accounts in pages with a stable cursor", async () => {
    const seen: number[] = [];
    let cursor: string | null = "";
    for (let i = 0; i < 20 && cursor !== null; i++) {
      const r: { status: number; body: any } = await request(url, "GET", `/accounts?shard=shard-b&limit=40${cursor === "" ? "" : `&cursor=${cursor}`}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.accounts.map((a: { account_id: number }) => a.account_id));
      cursor = r.body.next_cursor;
    }
    expect(seen).toEqual([...seen].sort((x, y) => x - y));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain(5_000);
    expect(seen.length).toBe(101);
    expect((await request(url, "GET", "/accounts?shard=shard-b&limit=0")).status).toBe(400);
    expect((await request(url, "GET", "/accounts?shard=shard-b&limit=501")).status).toBe(400);
    expect((await request(url, "GET", "/accounts")).status).toBe(400);
    expect((await request(url, "GET", "/accounts?shard=nope")).status).toBe(422);
  });

  it("pages an account's history newest first, each row with its delta, transaction and commit_ts", async () => {
    const txs: string[] = [];
    for (let i = 1; i <= 7; i++) txs.push((await transfer([["shard-a", 10, -i], ["shard-b", 110, i]])).body.tx);
    const rows: any[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; body: any } = await request(url, "GET", `/accounts/shard-a/10/history?limit=3${cursor === null ? "" : `&cursor=${cursor}`}`);
      expect(r.status).toBe(200);
      expect(r.body.rows.length).toBeLessThanOrEqual(3);
      rows.push(...r.body.rows);
      cursor = r.body.next_cursor;
    } while (cursor !== null);
    expect(rows.map((r) => r.tx)).toEqual([...txs].reverse());
    expect(rows.map((r) => r.delta_cents)).toEqual(["-7", "-6", "-5", "-4", "-3", "-2", "-1"]);
    for (const r of rows) expect(r.final).toBe(true);
    const seqs = rows.map((r) => BigInt(r.seq));
    expect(seqs).toEqual([...seqs].sort((x, y) => (x > y ? -1 : 1)));
    // Commit timestamps (HLC, decimal strings), stamped just after the commit: once all 7 are, newest first here too,
    // as the later transfer on the account committed later (over every row: a check over none could not fail).
    let stampedRows: any[] = [];
    for (let i = 0; i < 50; i++) {
      stampedRows = (await request(url, "GET", "/accounts/shard-a/10/history?limit=7")).body.rows;
      if (stampedRows.every((r: { commit_ts: string | null }) => r.commit_ts !== null)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stampedRows.map((r) => r.tx)).toEqual([...txs].reverse());
    for (const r of stampedRows) expect(r.commit_ts).toMatch(/^\d+$/);
    const stamped = stampedRows.map((r) => BigInt(r.commit_ts));
    expect(stamped.length).toBe(7);
    expect(new Set(stamped).size).toBe(7);
    expect(stamped).toEqual([...stamped].sort((x, y) => (x > y ? -1 : 1)));

    const t = await request(url, "GET", "/transactions?account=shard-a:10&limit=2");
    expect(t.status).toBe(200);
    expect(t.body.transactions.map((x: { tx: string }) => x.tx)).toEqual([txs[6], txs[5]]);
    expect(t.body.transactions[0].ops).toEqual(
      expect.arrayContaining([
        { shard_id: "shard-a", account_id: 10, delta_cents: "-7" },
        { shard_id: "shard-b", account_id: 110, delta_cents: "7" },
      ]),
    );
    expect((await request(url, "GET", "/transactions?account=shard-a")).status).toBe(400);
    expect((await request(url, "GET", "/accounts/shard-a/10/history?cursor=x")).status).toBe(400);
    expect((await request(url, "GET", "/accounts/shard-a/99999/history")).status).toBe(404);
  });
});
