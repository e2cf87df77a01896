// kill -9 of the coordinator (a child process) in the middle of a load of 2PC and parallel-commit transfers on hot
// accounts, with account openings in flight; a new process on the same log takes over. Once its resolver has
// settled everything: the shards' history is serializable and explains every balance (conformance/serializable.ts),
// every answer a client got matches the rows, a transfer whose answer was lost with the process is all or nothing,
// and every opening ends open (its money moved once) or failed (nothing moved), retried with its key.
// Also the opening's crash windows, made by hand: the transfer's id written and the process gone before it ran; the
// transfer committed and the process gone before the row said 'open'.
import mysql from "mysql2/promise";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditAnswers, auditSerializable, type Answer, type Row } from "../../conformance/serializable.ts";
import { historyForAudit, HistoryReader, type ShardReads } from "../../runtime/history.ts";
import { openingFingerprint } from "../../runtime/banking.ts";
import type { QueryOutcome } from "../../runtime/adapters/mysql-pool.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { startTestCluster, totalBalance, xaRecover, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request } from "../runtime/support.ts";
import { serverArgs } from "../crash/support.ts";

const SHARDS = 3;
const ACCOUNTS = 30;
const BALANCE = 3_000;
const PREFIX = "bankcrash/";
let cluster: TestCluster;
let dir: string;
let clusterFile: string;
let server: ServerProcess | undefined;
const pools = new Map<string, mysql.Pool>();

const reads = (shard: string): ShardReads => ({
  async run<T>(sql: string): Promise<QueryOutcome<T>> {
    try {
      const [rows] = await pools.get(shard)!.query(sql);
      return { ok: true, value: rows as T };
    } catch (e) {
      return { ok: false, error: { errno: (e as { errno?: number }).errno, code: "QUERY", fatal: false, message: (e as Error).message } };
    }
  },
});

beforeAll(async () => {
  cluster = await startTestCluster({ shards: SHARDS, accountsPerShard: ACCOUNTS, balanceCents: BALANCE, lockWaitTimeoutS: 1 });
  dir = mkdtempSync(join(tmpdir(), "speccommit-bankcrash-"));
  clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
  for (const s of cluster.shards) pools.set(s.name, s.pool({ connectionLimit: 4 }));
});

afterAll(async () => {
  closeAgents();
  await server?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const seeded = () => new Map(cluster.shards.flatMap((s) => Array.from({ length: ACCOUNTS }, (_, i) => [`${s.name}:${s.firstAccountId + i}`, BigInt(BALANCE)] as const)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function query<T>(shard: string, sql: string): Promise<T> {
  const [rows] = await pools.get(shard)!.query(sql);
  return rows as T;
}

/** Answers of transfers; a request cut by the crash is recorded as in doubt (all or nothing is what may be asked of it). */
async function load(urlOf: () => string, accounts: readonly string[], stop: () => boolean, seed: number): Promise<Answer[]> {
  const answers: Answer[] = [];
  let x = seed;
  const r = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const client = async () => {
    while (!stop()) {
      const from = accounts[Math.floor(r() * accounts.length)]!;
      let to = accounts[Math.floor(r() * accounts.length)]!;
      if (to === from) to = accounts[(accounts.indexOf(from) + 1) % accounts.length]!;
      const cents = 1 + Math.floor(r() * 700);
      const ops = new Map<string, bigint>([
        [from, -BigInt(cents)],
        [to, BigInt(cents)],
      ]);
      const body = { protocol: r() < 0.5 ? "2pc" : "parallel", ops: [...ops].map(([k, d]) => ({ shard_id: k.split(":")[0], account_id: Number(k.split(":")[1]), delta: Number(d) })) };
      try {
        const a = await request(urlOf(), "POST", "/transfer", { json: body });
        if (a.status === 503) await sleep(50);
        else answers.push({ tx: a.body.tx, status: a.body.status, ops });
      } catch {
        await sleep(50); // the process is gone: the transfer's tx id never reached us, so no answer to hold it to
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, client));
  return answers;
}

const openBody = (i: number, funding: string) => ({
  shard_id: cluster.shards[i % SHARDS]!.name,
  account_id: 800 + i,
  opening_balance: 300,
  funding: { shard_id: funding.split(":")[0], account_id: Number(funding.split(":")[1]) },
});

describe("kill -9 of the coordinator under load", () => {
  it("after takeover, the history is serializable, answers match the rows, openings end open or failed", async () => {
    const total = await totalBalance(cluster);
    const hot = [...seeded().keys()].filter((_, i) => i % 5 === 0);
    server = await startServerProcess(serverArgs(clusterFile, PREFIX, 0));
    const port = server.port;
    let url = server.url;
    let stop = false;
    const loading = load(() => url, hot, () => stop, 42);
    // Openings fired at the process that will die: some are cut.
    const openings = Array.from({ length: 6 }, (_, i) =>
      request(url, "POST", "/accounts", { json: openBody(i, hot[i]!), headers: { "Idempotency-Key": `crash-open-${i}` } }).catch(() => null),
    );
    await sleep(1_500);
    await server.kill9();
    await sleep(300);
    server = await startServerProcess(serverArgs(clusterFile, PREFIX, port));
    url = server.url;
    await sleep(2_000);
    stop = true;
    const answers = await loading;
    await Promise.all(openings);
    expect(answers.filter((a) => a.status === "committed").length).toBeGreaterThan(50);

    // Every opening retried with its key: an answer that is final, once the new process settled the first attempt.
    const opened = new Set<string>();
    for (let i = 0; i < 6; i++) {
      let r = await request(url, "POST", "/accounts", { json: openBody(i, hot[i]!), headers: { "Idempotency-Key": `crash-open-${i}` } });
      for (let k = 0; k < 50 && (r.status === 202 || r.status === 503); k++) {
        await sleep(200);
        r = await request(url, "POST", "/accounts", { json: openBody(i, hot[i]!), headers: { "Idempotency-Key": `crash-open-${i}` } });
      }
      expect([200, 201, 409]).toContain(r.status);
      const key = `${openBody(i, hot[i]!).shard_id}:${800 + i}`;
      if (r.body.status === "open") opened.add(key);
      else expect(r.body.status).toBe("failed");
    }

    // Settled: nothing of ours prepared, no decision record left.
    for (let k = 0; k < 100; k++) {
      let prepared = 0;
      for (const s of cluster.shards) prepared += (await xaRecover(pools.get(s.name)!)).length;
      if (prepared === 0) break;
      await sleep(200);
    }
    for (const s of cluster.shards) expect(await xaRecover(pools.get(s.name)!)).toEqual([]);

    const reader = new HistoryReader(reads);
    const { history, notFinal } = await historyForAudit(reader, reads, cluster.shards.map((s) => s.name), { seed: seeded(), opened });
    expect(notFinal).toBe(0);
    expect(auditSerializable(history)).toMatchObject({ ok: true });
    expect(auditAnswers(answers, new Map<string, readonly Row[]>(history.txs.map((t) => [t.tx, t.rows])))).toBeNull();
    // Each opened account got its 300 exactly once (and a failed one nothing).
    for (const a of opened) {
      const credits = history.txs.filter((t) => t.rows.some((r) => r.account === a));
      expect(credits.map((t) => t.rows.find((r) => r.account === a)!.delta)).toEqual([300n]);
    }
    expect(await totalBalance(cluster)).toBe(total);
  }, 240_000);
});

describe("the opening's crash windows, made by hand", () => {
  it("the transfer's id written, the process gone before it ran: the retry settles it aborted (presumed abort), nothing moved, never a second transfer", async () => {
    server ??= await startServerProcess(serverArgs(clusterFile, PREFIX, 0));
    const url = server.url;
    const body = { shard_id: "shard-b", account_id: 950, opening_balance: 100, funding: { shard_id: "shard-a", account_id: 2 } };
    const total = await totalBalance(cluster);
    const before = (await query<Array<{ balance: string }>>("shard-a", "SELECT balance FROM accounts WHERE id = 2"))[0]!.balance;
    // What a first request leaves when its process dies between claiming the opening and submitting the transfer.
    const tx = "00000000-0000-4000-8000-00000000d1ed";
    const fingerprint = openingFingerprint({ shard: "shard-b", account_id: 950, cents: 100n, funding: { shard: "shard-a", account: 2 }, protocol: "2pc" });
    await query("shard-b", `INSERT INTO accounts (id, status, opening_key, opening_request, opening_tx, opening_protocol) VALUES (950, 'opening', 'window-1', '${fingerprint}', '${tx}', '2pc')`);
    const again = await request(url, "POST", "/accounts", { json: body, headers: { "Idempotency-Key": "window-1" } });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ status: "failed", replayed: true, opening_tx: tx, outcome: { status: "aborted" } });
    // Nothing moved, and no transfer ran for it (no history row of any transaction on the account).
    expect((await query<Array<{ balance: string }>>("shard-a", "SELECT balance FROM accounts WHERE id = 2"))[0]!.balance).toBe(before);
    expect((await query<Array<{ balance: string; status: string }>>("shard-b", "SELECT balance, status FROM accounts WHERE id = 950"))[0]).toEqual({ balance: "0", status: "failed" });
    expect(await query<unknown[]>("shard-b", "SELECT * FROM history WHERE account_id = 950")).toEqual([]);
    expect(await totalBalance(cluster)).toBe(total);
    // A retry after that answers the same.
    expect((await request(url, "POST", "/accounts", { json: body, headers: { "Idempotency-Key": "window-1" } })).body.status).toBe("failed");
  }, 60_000);
});

describe("the opening's last crash window", () => {
  it("the transfer committed, the process gone before the row said 'open': the next process marks it open at boot", async () => {
    server ??= await startServerProcess(serverArgs(clusterFile, PREFIX, 0));
    const r = await request(server.url, "POST", "/accounts", {
      json: { shard_id: "shard-c", account_id: 960, opening_balance: 50, funding: { shard_id: "shard-a", account_id: 3 } },
      headers: { "Idempotency-Key": "window-2" },
    });
    expect(r.status).toBe(201);
    // The crash state: the opening committed, the row not updated yet.
    await query("shard-c", "UPDATE accounts SET status = 'opening' WHERE id = 960");
    const port = server.port;
    await server.kill9();
    server = await startServerProcess(serverArgs(clusterFile, PREFIX, port));
    let status = "opening";
    for (let k = 0; k < 50 && status === "opening"; k++) {
      await sleep(100);
      status = (await query<Array<{ status: string }>>("shard-c", "SELECT status FROM accounts WHERE id = 960"))[0]!.status;
    }
    expect(status).toBe("open");
    expect((await query<Array<{ balance: string }>>("shard-c", "SELECT balance FROM accounts WHERE id = 960"))[0]!.balance).toBe("50");
    const t = await request(server.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-c", account_id: 960, delta: -50 }, { shard_id: "shard-a", account_id: 3, delta: 50 }] } });
    expect(t.status).toBe(200);
    // Its key still answers the opening, without a second transfer.
    const again = await request(server.url, "POST", "/accounts", {
      json: { shard_id: "shard-c", account_id: 960, opening_balance: 50, funding: { shard_id: "shard-a", account_id: 3 } },
      headers: { "Idempotency-Key": "window-2" },
    });
    expect(again.body).toMatchObject({ status: "open", replayed: true });
    expect((await query<Array<{ balance: string }>>("shard-c", "SELECT balance FROM accounts WHERE id = 960"))[0]!.balance).toBe("0");
  }, 60_000);
});
