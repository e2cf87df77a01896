// The live adapters alone against a real MariaDB and etcd: what each effect
// does to the servers and what it answers, including the paths a crash
// takes (a dead owner connection, a shard that is down, a stale epoch).
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { claimKey, EPOCH_KEY, type ClaimRecord } from "../../spec/kernel/effects.ts";
import { RetentionLeases } from "../../runtime/retention.ts";
import { Idempotency, idempotencyEtcdKey } from "../../runtime/idempotency.ts";
import { newTxId, NotReady, Overloaded, ShuttingDown, type Engine } from "../../runtime/engine.ts";
import type { TransferRequest } from "../../runtime/transfer.ts";
import { etcdClient, TxlogEtcd } from "../../runtime/adapters/txlog-etcd.ts";
import { XaMysql, XID_FORMAT_ID, xaErrorOf } from "../../runtime/adapters/xa-mysql.ts";
import { DATABASE, OPEN_BRANCH_TABLE } from "../../runtime/cluster/schema.ts";
import { shardFenceSql } from "../../runtime/durable.ts";
import { startTestCluster, xaRecover, type TestCluster } from "../support/cluster.ts";
import { balance, snapshot } from "./support.ts";

let cluster: TestCluster;
let xa: XaMysql;

const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 10_000, lockWaitTimeoutS: 1 });
  xa = new XaMysql({
    shards: cluster.shards.map((s) => s.serverAddress()),
    limits,
  });
});

afterAll(async () => {
  xa?.close();
  await cluster?.stop();
});

describe("XA executor (mysql2)", () => {
  // The settle fence's shard half (runtime/durable.ts shardFence) is a locking read, from another connection, of the
  // transaction's open-branch row and history rows: it returns only once no unprepared branch of the transaction with
  // writes lives, because every such branch holds one of them locked from its exec until it ends (a one-phase branch
  // its open-branch row, its history rows being written by its commit; a two-phase branch its history rows). A branch
  // that held neither (the one-phase path writing its rows only in its commit's round trip, with no open-branch row:
  // tried once) would let the fence read "nothing" while the commit may still run on the server, and a settle would
  // answer aborted for a transfer that then commits. So: between exec and the end, the fence waits.
  it("every branch not yet ended holds a row the shard fence reads locked from its exec on (one-phase ACTIVE, two-phase IDLE and before prepare): the fence's locking read waits for it", async () => {
    const probe = await mysql.createConnection(cluster.shards[0]!.connectionOptions({ multipleStatements: true }));
    await probe.query("SET SESSION innodb_lock_wait_timeout = 1");
    const fenceRead = async (tx: string): Promise<number[]> => {
      const [sets] = await probe.query(shardFenceSql(tx));
      return (sets as unknown as Array<Array<{ n: unknown }>>).map((rows) => Number(rows[0]!.n));
    };
    try {
      for (const [i, onePhase] of [true, false].entries()) {
        const tx = `a0000000-0000-4000-8000-00000000f00${i}`;
        const ops = [{ account: 21 + 2 * i, delta: -5 }, { account: 22 + 2 * i, delta: 5 }];
        expect(await xa.exec(tx, "shard-a", ops, true, onePhase ? 0 : undefined, onePhase || undefined)).toEqual({ ok: true });
        await expect(fenceRead(tx), onePhase ? "one-phase, ACTIVE" : "two-phase, IDLE").rejects.toMatchObject({ errno: 1205 });
        if (onePhase) expect(await xa.commitStamped(tx, "shard-a", true, 77n)).toEqual({ r: { ok: true }, stamped: true });
        else {
          expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: true });
          expect(await xa.commitStamped(tx, "shard-a", false, 78n)).toEqual({ r: { ok: true }, stamped: true });
        }
        // Ended: no open-branch row left, both history rows there.
        expect(await fenceRead(tx)).toEqual([0, 2]);
      }
    } finally {
      await probe.end();
    }
  });

  it("exec, prepare, commit: the branch's changes and history row are committed, and the connection is reused", async () => {
    const tx = "a0000000-0000-4000-8000-000000000001";
    expect(await xa.exec(tx, "shard-a", [{ account: 1, delta: -250 }, { account: 2, delta: 250 }], true)).toEqual({ ok: true });
    expect(xa.openBranches("shard-a")).toBe(1);
    expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: true });
    expect(await xa.recover("shard-a")).toEqual({ ok: true, prepared: [{ tx, shard: "shard-a" }] });
    expect(await xa.commit(tx, "shard-a")).toEqual({ ok: true });
    expect(xa.openBranches("shard-a")).toBe(0);
    expect(await balance(cluster, "shard-a", 1)).toBe(10_000n - 250n);
    expect((await snapshot(cluster)).history.get(`shard-a|${tx}`)).toBe(2);
    // A second commit finds nothing to do: 1397 on a fresh connection.
    expect(await xa.commit(tx, "shard-a")).toEqual({ ok: false, err: "NOTA" });
    expect(xa.pool("shard-a").stats()).toMatchObject({ in_use: 0 });
  });

  it("commitStamped: XA COMMIT and the stamp of the history rows in one round trip; a commit that fails stamps nothing and answers as commit() does", async () => {
    const commitTsOf = async (shard: string, tx: string): Promise<Array<string | null>> => {
      const c = await cluster.shards.find((x) => x.name === shard)!.connect();
      try {
        const [rows] = await c.query("SELECT CAST(commit_ts AS CHAR) AS ts FROM history WHERE xid = ? ORDER BY account_id", [tx]);
        return (rows as Array<{ ts: string | null }>).map((r) => r.ts);
      } finally {
        await c.end();
      }
    };
    // Two-phase: exec, prepare, commit + stamp.
    const tx = "a0000000-0000-4000-8000-0000000000c1";
    expect(await xa.exec(tx, "shard-a", [{ account: 61, delta: -5 }, { account: 62, delta: 5 }], true)).toEqual({ ok: true });
    expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: true });
    expect(await xa.commitStamped(tx, "shard-a", false, 4242n)).toEqual({ r: { ok: true }, stamped: true });
    expect(await commitTsOf("shard-a", tx)).toEqual(["4242", "4242"]);
    expect(xa.openBranches("shard-a")).toBe(0);
    // Again: NOTA (finished), nothing stamped over what is there.
    expect(await xa.commitStamped(tx, "shard-a", false, 9999n)).toEqual({ r: { ok: false, err: "NOTA" }, stamped: false });
    expect(await commitTsOf("shard-a", tx)).toEqual(["4242", "4242"]);
    // One phase.
    const one = "a0000000-0000-4000-8000-0000000000c2";
    expect(await xa.exec(one, "shard-b", [{ account: 161, delta: -5 }, { account: 162, delta: 5 }], true)).toEqual({ ok: true });
    expect(await xa.commitStamped(one, "shard-b", true, 4343n)).toEqual({ r: { ok: true }, stamped: true });
    expect(await commitTsOf("shard-b", one)).toEqual(["4343", "4343"]);
    // A one-phase commit that fails (the branch was rolled back meanwhile: nothing to commit) stamps nothing.
    const gone = "a0000000-0000-4000-8000-0000000000c3";
    expect(await xa.exec(gone, "shard-b", [{ account: 163, delta: -5 }], true)).toEqual({ ok: true });
    expect(await xa.rollback(gone, "shard-b")).toEqual({ ok: true });
    const r = await xa.commitStamped(gone, "shard-b", true, 4444n);
    expect(r.stamped).toBe(false);
    expect(r.r.ok).toBe(false);
    expect(await commitTsOf("shard-b", gone)).toEqual([]);
    expect(xa.pool("shard-a").stats()).toMatchObject({ in_use: 0 });
  });

  it("a one-phase exec leaves its branch ACTIVE: the commit stamps the rows inside the transaction it commits (XA END first), a rollback ends it too, and a dead owner's branch is gone", async () => {
    const rowsOf = async (shard: string, tx: string): Promise<Array<{ account: number; ts: string | null }>> => {
      const c = await cluster.shards.find((x) => x.name === shard)!.connect();
      try {
        const [rows] = await c.query("SELECT account_id AS account, CAST(commit_ts AS CHAR) AS ts FROM history WHERE xid = ? ORDER BY account_id", [tx]);
        return (rows as Array<{ account: number | string; ts: string | null }>).map((r) => ({ account: Number(r.account), ts: r.ts }));
      } finally {
        await c.end();
      }
    };
    // ACTIVE: XA PREPARE (which needs IDLE) is refused, and the branch is still there for its one-phase commit.
    const probe = "a0000000-0000-4000-8000-0000000000d1";
    expect(await xa.exec(probe, "shard-a", [{ account: 71, delta: -7 }, { account: 72, delta: 7 }], true, undefined, true)).toEqual({ ok: true });
    expect(await xa.prepare(probe, "shard-a")).toEqual({ ok: false, err: "RMFAIL" });
    expect(await xa.commitStamped(probe, "shard-a", true, 5151n)).toEqual({ r: { ok: true }, stamped: true });
    expect(await rowsOf("shard-a", probe)).toEqual([
      { account: 71, ts: "5151" },
      { account: 72, ts: "5151" },
    ]);
    expect(await balance(cluster, "shard-a", 71)).toBe(10_000n - 7n);
    expect(xa.openBranches("shard-a")).toBe(0);
    // A plain one-phase commit of an ACTIVE branch (no timestamps) ends it first too.
    const plain = "a0000000-0000-4000-8000-0000000000d2";
    expect(await xa.exec(plain, "shard-a", [{ account: 73, delta: -3 }], true, undefined, true)).toEqual({ ok: true });
    expect(await xa.commit(plain, "shard-a", true)).toEqual({ ok: true });
    expect(await rowsOf("shard-a", plain)).toEqual([{ account: 73, ts: null }]);
    // An overdraft leaves the branch ACTIVE too (a guard that matched no row is no SQL error): the rollback ends it.
    const poor = "a0000000-0000-4000-8000-0000000000d3";
    expect(await xa.exec(poor, "shard-a", [{ account: 74, delta: -10_001 }], true, undefined, true)).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    expect(await xa.rollback(poor, "shard-a")).toEqual({ ok: true });
    expect(await rowsOf("shard-a", poor)).toEqual([]);
    expect(await balance(cluster, "shard-a", 74)).toBe(10_000n);
    // A rolled-back ACTIVE branch after a successful exec.
    const undone = "a0000000-0000-4000-8000-0000000000d4";
    expect(await xa.exec(undone, "shard-a", [{ account: 75, delta: 9 }], true, undefined, true)).toEqual({ ok: true });
    expect(await xa.rollback(undone, "shard-a")).toEqual({ ok: true });
    expect(await rowsOf("shard-a", undone)).toEqual([]);
    expect(xa.openBranches("shard-a")).toBe(0);
    // The owner dies before the commit: the server rolled the ACTIVE branch back with it; the commit finds nothing.
    const orphan = "a0000000-0000-4000-8000-0000000000d5";
    expect(await xa.exec(orphan, "shard-a", [{ account: 76, delta: 11 }], true, undefined, true)).toEqual({ ok: true });
    const admin = await cluster.shard("shard-a").connect();
    try {
      const [rows] = await admin.query("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", [DATABASE]);
      for (const r of rows as Array<{ ID: string }>) await admin.query(`KILL CONNECTION ${r.ID}`).catch(() => undefined);
      const r = await xa.commitStamped(orphan, "shard-a", true, 5252n);
      expect(r.stamped).toBe(false);
      expect(r.r.ok).toBe(false);
      expect(await rowsOf("shard-a", orphan)).toEqual([]);
      expect(await balance(cluster, "shard-a", 76)).toBe(10_000n);
      expect(await xaRecover(admin)).toEqual([]);
      // Every branch above ended (committed, rolled back, or with its dead owner): no open-branch row is left of any.
      const [left] = await admin.query(`SELECT tx FROM ${OPEN_BRANCH_TABLE}`);
      expect(left).toEqual([]);
    } finally {
      await admin.end();
    }
    expect(xa.pool("shard-a").stats()).toMatchObject({ in_use: 0 });
  });

  it("a one-phase commit whose history INSERT waits past the lock wait timeout answers LOCK_TIMEOUT with nothing written; the branch stays ACTIVE and its rollback (or a commit again) ends it", async () => {
    const count = async (c: mysql.Connection, sql: string, tx: string) => Number(((await c.query(sql, [tx]))[0] as Array<{ n: unknown }>)[0]!.n);
    const holder = await cluster.shard("shard-b").connect();
    try {
      for (const then of ["rollback", "commit"] as const) {
        const tx = then === "rollback" ? "a0000000-0000-4000-8000-0000000000e1" : "a0000000-0000-4000-8000-0000000000e2";
        const account = then === "rollback" ? 131 : 132;
        expect(await xa.exec(tx, "shard-b", [{ account, delta: -4 }], true, 0, true)).toEqual({ ok: true });
        // A locking read of the transaction's (absent) history rows, REPEATABLE READ: a gap lock where they would go.
        await holder.query("START TRANSACTION");
        await holder.query("SELECT * FROM history WHERE xid = ? FOR UPDATE", [tx]);
        expect(await xa.commitStamped(tx, "shard-b", true, 6161n)).toEqual({ r: { ok: false, err: "LOCK_TIMEOUT" }, stamped: false });
        await holder.query("COMMIT");
        expect(xa.openBranches("shard-b")).toBe(1);
        if (then === "rollback") {
          expect(await xa.rollback(tx, "shard-b")).toEqual({ ok: true });
          expect(await balance(cluster, "shard-b", account)).toBe(10_000n);
          expect(await count(holder, "SELECT COUNT(*) AS n FROM history WHERE xid = ?", tx)).toBe(0);
        } else {
          expect(await xa.commitStamped(tx, "shard-b", true, 6262n)).toEqual({ r: { ok: true }, stamped: true });
          expect(await balance(cluster, "shard-b", account)).toBe(10_000n - 4n);
          expect(await count(holder, "SELECT COUNT(*) AS n FROM history WHERE xid = ? AND commit_ts = 6262", tx)).toBe(1);
        }
        expect(await count(holder, `SELECT COUNT(*) AS n FROM ${OPEN_BRANCH_TABLE} WHERE tx = ?`, tx)).toBe(0);
        expect(xa.openBranches("shard-b")).toBe(0);
      }
    } finally {
      await holder.end();
    }
  });

  it("an account named twice in one branch's ops is an adapter bug: nothing is sent, UNAVAILABLE, the reason logged (the engine merges ops per account)", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      expect(await xa.exec("a0000000-0000-4000-8000-0000000000e3", "shard-b", [{ account: 133, delta: -1 }, { account: 133, delta: 1 }], true, 0, true)).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(logged.mock.calls.some((c) => /account named twice/.test(String(c[0])))).toBe(true);
    } finally {
      logged.mockRestore();
    }
    expect(xa.openBranches("shard-b")).toBe(0);
    expect(xa.pool("shard-b").stats()).toMatchObject({ in_use: 0 });
  });

  it("an overdraft is INSUFFICIENT_FUNDS and rolls back cleanly from IDLE", async () => {
    const tx = "a0000000-0000-4000-8000-000000000002";
    expect(await xa.exec(tx, "shard-a", [{ account: 3, delta: -10_001 }], true)).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    expect(await xa.rollback(tx, "shard-a")).toEqual({ ok: true });
    expect(await balance(cluster, "shard-a", 3)).toBe(10_000n);
    expect((await snapshot(cluster)).history.has(`shard-a|${tx}`)).toBe(false);
  });

  it("a row locked elsewhere is LOCK_TIMEOUT after innodb_lock_wait_timeout, and the branch rolls back", async () => {
    const holder = await cluster.shard("shard-b").connect();
    await holder.query("START TRANSACTION");
    await holder.query("SELECT balance FROM accounts WHERE id = 101 FOR UPDATE");
    const tx = "a0000000-0000-4000-8000-000000000003";
    expect(await xa.exec(tx, "shard-b", [{ account: 101, delta: 5 }], true)).toEqual({ ok: false, err: "LOCK_TIMEOUT" });
    await holder.query("ROLLBACK");
    expect(await xa.rollback(tx, "shard-b")).toEqual({ ok: true });
    expect(await xaRecover(holder)).toEqual([]);
  });

  it("a deadlock victim is DEADLOCK and its branch rolls back", async () => {
    // The holder changes many rows, so InnoDB picks the branch (one row) as the victim.
    const holder = await cluster.shard("shard-b").connect();
    await holder.query("START TRANSACTION");
    await holder.query("UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN 150 AND 199");
    await holder.query("UPDATE accounts SET balance = balance + 1 WHERE id = 112");
    const tx = "a0000000-0000-4000-8000-000000000006";
    const exec = xa.exec(tx, "shard-b", [{ account: 111, delta: 1 }, { account: 112, delta: -1 }], true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Closes the cycle: the holder wants the branch's row 111 while the branch waits for row 112.
    const closing = holder.query("UPDATE accounts SET balance = balance + 1 WHERE id = 111");
    expect(await exec).toEqual({ ok: false, err: "DEADLOCK" });
    await closing;
    await holder.query("ROLLBACK");
    expect(await xa.rollback(tx, "shard-b")).toEqual({ ok: true });
    expect(await balance(cluster, "shard-b", 111)).toBe(10_000n);
  });

  it("a statement past the timeout is UNAVAILABLE; the branch is then finished from a fresh connection once the old session is gone", async () => {
    const impatient = new XaMysql({
      shards: [{ name: "shard-b", host: "127.0.0.1", port: cluster.shard("shard-b").db.port, user: "root", database: DATABASE }],
      limits: { ...limits, statement_timeout_ms: 300 },
    });
    const holder = await cluster.shard("shard-b").connect();
    await holder.query("START TRANSACTION");
    await holder.query("SELECT balance FROM accounts WHERE id = 120 FOR UPDATE");
    const tx = "a0000000-0000-4000-8000-000000000007";
    const t0 = Date.now();
    expect(await impatient.exec(tx, "shard-b", [{ account: 120, delta: 5 }], true)).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(Date.now() - t0).toBeLessThan(900);
    // The server still runs the abandoned statement (it waits for the lock); the rollback kills that session first.
    expect(await impatient.rollback(tx, "shard-b")).toEqual({ ok: false, err: "NOTA" });
    await holder.query("ROLLBACK");
    expect(await xaRecover(holder)).toEqual([]);
    expect(await balance(cluster, "shard-b", 120)).toBe(10_000n);
    impatient.close();
  });

  it("commits a prepared branch whose owner connection died, from a fresh connection once the dead session is gone", async () => {
    const tx = "a0000000-0000-4000-8000-000000000004";
    expect(await xa.exec(tx, "shard-b", [{ account: 102, delta: 70 }], true)).toEqual({ ok: true });
    expect(await xa.prepare(tx, "shard-b")).toEqual({ ok: true });
    // Kill the executor's sessions from outside, the owner's among them, as a network cut would.
    const admin = await cluster.shard("shard-b").connect();
    const [rows] = await admin.query("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", [DATABASE]);
    expect((rows as unknown[]).length).toBeGreaterThanOrEqual(1);
    for (const r of rows as Array<{ ID: string }>) await admin.query(`KILL CONNECTION ${r.ID}`).catch(() => undefined);
    // The prepared branch survived its connection; from another connection it is committed once the dead session is gone.
    expect(await xaRecover(admin)).toEqual([{ formatID: XID_FORMAT_ID, gtrid: tx, bqual: "shard-b" }]);
    expect(await xa.commit(tx, "shard-b")).toEqual({ ok: true });
    expect(xa.openBranches("shard-b")).toBe(0);
    expect(await balance(cluster, "shard-b", 102)).toBe(10_070n);
    expect(await xaRecover(admin)).toEqual([]);
  });

  it("recover keeps only our formatID and maps gtrid/bqual back to tx and shard", async () => {
    const conn = await mysql.createConnection(cluster.shard("shard-a").connectionOptions());
    await conn.query("XA START 'foreign-tx','x',1");
    await conn.query("XA END 'foreign-tx','x',1");
    await conn.query("XA PREPARE 'foreign-tx','x',1");
    const ours = await mysql.createConnection(cluster.shard("shard-a").connectionOptions());
    await ours.query(`XA START 'ours-1','shard-a',${XID_FORMAT_ID}`);
    await ours.query(`XA END 'ours-1','shard-a',${XID_FORMAT_ID}`);
    await ours.query(`XA PREPARE 'ours-1','shard-a',${XID_FORMAT_ID}`);
    expect(await xa.recover("shard-a")).toEqual({ ok: true, prepared: [{ tx: "ours-1", shard: "shard-a" }] });
    await ours.end();
    await conn.end();
    const cleanup = await cluster.shard("shard-a").connect();
    // Read-only branches answer 1402 to ROLLBACK too, and are gone after it; or they went with their session already
    // (1397: a read-only branch is not kept once its session ended, depending on when the server processed the end).
    expect([1397, 1402]).toContain(await cleanup.query("XA ROLLBACK 'foreign-tx','x',1").catch((e: { errno: number }) => e.errno));
    // A prepared branch that changed nothing answers 1402 to COMMIT (or is gone, 1397): finished either way.
    expect([{ ok: false, err: "RBROLLBACK" }, { ok: false, err: "NOTA" }]).toContainEqual(await xa.commit("ours-1", "shard-a"));
  });

  it("a shard that is down answers UNAVAILABLE within the bounds", async () => {
    const down = new XaMysql({ shards: [{ name: "shard-x", host: "127.0.0.1", port: 1, user: "root", database: DATABASE }], limits });
    const t0 = Date.now();
    expect(await down.exec("a0000000-0000-4000-8000-000000000005", "shard-x", [{ account: 1, delta: 1 }], true)).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(await down.recover("shard-x")).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(Date.now() - t0).toBeLessThan(5_000);
    down.close();
  });

  it("maps MySQL errors as the model does; unknown codes and lost connections are UNAVAILABLE", () => {
    const e = (errno: number, fatal = false) => xaErrorOf({ errno, code: "X", fatal, message: "" });
    expect([1397, 1399, 1398, 1400, 1402, 1440, 1205, 1213, 1614].map((n) => e(n))).toEqual([
      "NOTA",
      "RMFAIL",
      "RMFAIL",
      "RMFAIL",
      "RBROLLBACK",
      "DUPID",
      "LOCK_TIMEOUT",
      "DEADLOCK",
      "DEADLOCK",
    ]);
    expect(e(4025)).toBe("UNAVAILABLE");
    expect(e(1397, true)).toBe("UNAVAILABLE");
  });
});

describe("txlog (etcd)", () => {
  it("put is a CAS on the version, with a fence on the epoch key; records read back are decoded", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "adapt/", call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
    const log = new TxlogEtcd(client, "adapt/");
    try {
      const rec = { kind: "decision", decision: "commit", branches: ["shard-a"] } as const;
      expect(await log.put(EPOCH_KEY, { kind: "epoch" }, 0)).toEqual({ ok: true, version: 1 });
      expect(await log.put("tx/1", rec, 0, { key: EPOCH_KEY, version: 1 })).toEqual({ ok: true, version: 1 });
      expect(await log.put("tx/1", { ...rec, decision: "abort" }, 0)).toEqual({ ok: false, err: "CAS", current: rec, version: 1 });
      expect(await log.put("tx/2", rec, 1)).toEqual({ ok: false, err: "CAS", current: null, version: 0 });
      // A newer epoch fences the old writer out; nothing is written.
      expect(await log.put(EPOCH_KEY, { kind: "epoch" }, 1)).toEqual({ ok: true, version: 2 });
      expect(await log.put("tx/3", rec, 0, { key: EPOCH_KEY, version: 1 })).toEqual({ ok: false, err: "FENCED" });
      expect(await log.delete("tx/1", { key: EPOCH_KEY, version: 1 })).toEqual({ ok: false, err: "FENCED" });
      expect(await log.list("tx/")).toEqual({ ok: true, entries: [{ key: "tx/1", value: rec, version: 1 }] });
      expect(await log.delete("tx/1", { key: EPOCH_KEY, version: 2 })).toEqual({ ok: true });
      expect(await log.list("tx/")).toEqual({ ok: true, entries: [] });
      // A record this code did not write: the list refuses to act on it.
      await client.put("adapt/tx/bad").value('{"kind":"decision","decision":"maybe","branches":[]}');
      expect(await log.list("tx/")).toEqual({ ok: false, err: "UNAVAILABLE" });
    } finally {
      client.close();
    }
  });

  it("a delete with ifVersion (the claim role giving a key back) deletes only at that version, under its fence; as the txlog model does", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "cdel/", call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
    const log = new TxlogEtcd(client, "cdel/");
    try {
      const rec = { kind: "decision", decision: "commit", branches: ["shard-a"] } as const;
      expect(await log.put(EPOCH_KEY, { kind: "epoch" }, 0)).toEqual({ ok: true, version: 1 });
      expect(await log.put("idem/1", rec, 0)).toEqual({ ok: true, version: 1 });
      expect(await log.put("idem/1", rec, 1)).toEqual({ ok: true, version: 2 });
      // Not at the version named: nothing deleted (a delete without ifVersion in the same flush is not held back by it).
      expect(await Promise.all([log.delete("idem/1", undefined, 1), log.delete("idem/absent")])).toEqual([{ ok: false, err: "CAS" }, { ok: true }]);
      expect(await log.delete("idem/2", undefined, 1)).toEqual({ ok: false, err: "CAS" });
      expect(await log.delete("idem/1", { key: EPOCH_KEY, version: 7 }, 2)).toEqual({ ok: false, err: "FENCED" });
      expect(await log.list("idem/")).toEqual({ ok: true, entries: [{ key: "idem/1", value: rec, version: 2 }] });
      expect(await log.delete("idem/1", { key: EPOCH_KEY, version: 1 }, 2)).toEqual({ ok: true });
      expect(await log.list("idem/")).toEqual({ ok: true, entries: [] });
    } finally {
      client.close();
    }
  });

  it("the engine refuses a claimed transfer (overloaded, shutting down, not ready): the claim role gives the key back through the port, and the retry runs it", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "giveback/", call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
    const log = new TxlogEtcd(client, "giveback/");
    const submitted: string[] = [];
    let refuse: Error | null = new Overloaded("1 transaction in flight (in_flight_max 1)");
    // The engine's side of the seam only: submit refuses, then runs (the outcome comes back at once).
    const engine = {
      recordsTraces: false,
      now_ms: () => 0,
      newTx: () => newTxId(),
      submit: (_branches: unknown, _protocol: unknown, tx: string) => {
        if (refuse !== null) throw refuse;
        submitted.push(tx);
        return { tx, outcome: Promise.resolve({ status: "committed" }) };
      },
    } as unknown as Engine;
    const idem = new Idempotency({ ns: log.ns, engine, xa, log, retention_ms: 3_600_000 });
    const request: TransferRequest = { branches: [{ shard: "shard-a", ops: [{ account: 1, delta: -1 }] }], protocol: "2pc", protocol_in_body: null };
    const key = idempotencyEtcdKey("giveback-1");
    try {
      for (const e of [new Overloaded("busy"), new ShuttingDown("closing"), new NotReady("no epoch")]) {
        refuse = e;
        await expect(idem.run("giveback-1", request)).rejects.toBe(e);
        expect(await log.list(key)).toEqual({ ok: true, entries: [] });
      }
      refuse = null;
      const r = await idem.run("giveback-1", request);
      expect(r).toMatchObject({ outcome: { status: "committed" }, replayed: false });
      expect(submitted).toEqual([r.tx]);
      const listed = await log.list(key);
      expect(listed.ok && listed.entries.map((e) => [e.value, e.version])).toEqual([[expect.objectContaining({ tx: r.tx, outcome: { status: "committed" } }), 2]]);
    } finally {
      log.claimLeases?.forget();
      client.close();
    }
  });

  it("claim records (the idempotency claim role's writes): a claim without outcome on the retention lease of now, a stored outcome keeps it; a claim of an older server (no kind) reads as a claim", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "claims/", call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
    const log = new TxlogEtcd(client, "claims/");
    let now = 0;
    log.claimLeases = new RetentionLeases(log.ns, 3_600_000, () => now);
    const leaseOf = async (key: string) => (await client.get(`claims/${key}`).exec()).kvs[0]?.lease;
    try {
      const key = claimKey("k1");
      const claim: ClaimRecord = { kind: "claim", tx: "t1", fingerprint: "f", shards: ["shard-a"] };
      expect(await log.put(key, claim, 0)).toEqual({ ok: true, version: 1 });
      const first = await leaseOf(key);
      expect(Number(first)).toBeGreaterThan(0);
      // Written again without outcome a bucket later (in doubt): onto the lease of now.
      now += 3_600_000;
      expect(await log.put(key, claim, 1)).toEqual({ ok: true, version: 2 });
      const renewed = await leaseOf(key);
      expect(Number(renewed)).toBeGreaterThan(0);
      expect(renewed).not.toBe(first);
      // The outcome stored keeps the claim's lease; a second store on the old version is refused.
      const stored: ClaimRecord = { ...claim, outcome: { status: "committed" } };
      expect(await log.put(key, stored, 2)).toEqual({ ok: true, version: 3 });
      expect(await leaseOf(key)).toBe(renewed);
      expect(await log.put(key, { ...claim, outcome: { status: "aborted", reason: "resolver" } }, 2)).toEqual({ ok: false, err: "CAS", current: stored, version: 3 });
      await client.put(`claims/${claimKey("old")}`).value(JSON.stringify({ tx: "t0", fingerprint: "g", shards: ["shard-b"] }));
      expect(await log.list(claimKey("old"))).toEqual({ ok: true, entries: [{ key: claimKey("old"), value: { kind: "claim", tx: "t0", fingerprint: "g", shards: ["shard-b"] }, version: 1 }] });
    } finally {
      client.close();
    }
  });

  it("batches writes of one event-loop turn into one etcd transaction, each with its own CAS, fence and answer", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "batch/", call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
    const log = new TxlogEtcd(client, "batch/");
    try {
      const rec = (d: "commit" | "abort") => ({ kind: "decision", decision: d, branches: ["shard-a"] }) as const;
      expect(await log.put(EPOCH_KEY, { kind: "epoch" }, 0)).toEqual({ ok: true, version: 1 });
      expect(await log.put("tx/existing", rec("abort"), 0)).toEqual({ ok: true, version: 1 });
      expect(await log.put("tx/gone", rec("abort"), 0)).toEqual({ ok: true, version: 1 });
      const revBefore = Number((await client.get("batch/epoch").exec()).header.revision);
      const fence = { key: EPOCH_KEY, version: 1 };
      // Same turn: 20 creates, a CAS that fails, a delete, and two writes to one key (which must not share a batch).
      const answers = await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => log.put(`tx/n${i}`, rec("commit"), 0, fence)),
        log.put("tx/existing", rec("commit"), 0, fence),
        log.delete("tx/gone", fence),
        log.put("tx/twice", rec("commit"), 0, fence),
        log.put("tx/twice", rec("abort"), 0, fence),
      ]);
      expect(answers.slice(0, 20)).toEqual(Array.from({ length: 20 }, () => ({ ok: true, version: 1 })));
      expect(answers[20]).toEqual({ ok: false, err: "CAS", current: rec("abort"), version: 1 });
      expect(answers[21]).toEqual({ ok: true });
      // Concurrent writes to one key are unordered, as any two concurrent effects: exactly one create wins.
      const twice = answers.slice(22);
      expect(twice).toContainEqual({ ok: true, version: 1 });
      expect(twice.filter((a) => !a.ok)).toHaveLength(1);
      // Everything went in two etcd transactions (at most two revisions; one if the lone write lost its CAS), not 22.
      const revAfter = Number((await client.get("batch/epoch").exec()).header.revision);
      expect([1, 2]).toContain(revAfter - revBefore);
      const listed = await log.list("tx/");
      expect(listed.ok && listed.entries.map((e) => e.key).sort()).toEqual(["tx/existing", "tx/twice", ...Array.from({ length: 20 }, (_, i) => `tx/n${i}`)].sort());
      // A stale fence fails the whole batch, and nothing of it is written.
      expect(await log.put(EPOCH_KEY, { kind: "epoch" }, 1)).toEqual({ ok: true, version: 2 });
      const stale = await Promise.all([log.put("tx/s1", rec("commit"), 0, fence), log.put("tx/s2", rec("commit"), 0, fence), log.delete("tx/n1", fence)]);
      // (One transaction with a failed compare writes nothing.)
      expect(stale).toEqual([{ ok: false, err: "FENCED" }, { ok: false, err: "FENCED" }, { ok: false, err: "FENCED" }]);
      const after = await log.list("tx/");
      expect(after.ok && after.entries.length).toBe(22);
    } finally {
      client.close();
    }
  });

  it("group commit: batch_max bounds the writes per etcd transaction (1: one each), batch_wait_ms gathers writes of later turns", async () => {
    const rec = { kind: "decision", decision: "commit", branches: ["shard-a"] } as const;
    const revisionsFor = async (prefix: string, batching: { batch_max: number; batch_wait_ms: number }, n: number, spread: boolean) => {
      const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix, call_timeout_ms: 2_000, dial_timeout_ms: 2_000 });
      const log = new TxlogEtcd(client, prefix, {}, batching);
      try {
        const rev = async () => Number((await client.get("x").exec()).header.revision);
        const before = await rev();
        const puts: Array<Promise<unknown>> = [];
        for (let i = 0; i < n; i++) {
          puts.push(log.put(`tx/${i}`, rec, 0));
          // Spread over turns of the event loop: only a wait gathers them.
          if (spread) await new Promise((r) => setImmediate(r));
        }
        const answers = await Promise.all(puts);
        expect(answers).toEqual(Array.from({ length: n }, () => ({ ok: true, version: 1 })));
        return (await rev()) - before;
      } finally {
        client.close();
      }
    };
    // Off: one etcd transaction (one revision) per write.
    expect(await revisionsFor("gc-off/", { batch_max: 1, batch_wait_ms: 0 }, 10, false)).toBe(10);
    // batch_max 4: 10 writes of one turn in ceil(10 / 4) transactions.
    expect(await revisionsFor("gc-4/", { batch_max: 4, batch_wait_ms: 0 }, 10, false)).toBe(3);
    // Writes of 10 turns: without a wait they do not share; with one (and a full batch sent at once) they do.
    expect(await revisionsFor("gc-nowait/", { batch_max: 64, batch_wait_ms: 0 }, 10, true)).toBe(10);
    expect(await revisionsFor("gc-wait/", { batch_max: 5, batch_wait_ms: 50 }, 10, true)).toBe(2);
    expect(() => new TxlogEtcd(etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "x/", call_timeout_ms: 1, dial_timeout_ms: 1 }), "x/", {}, { batch_max: 65, batch_wait_ms: 0 })).toThrow(/batch_max 65/);
  });

  it("answers UNAVAILABLE while etcd is down and works again right after it restarted (no client-side breaker)", async () => {
    const client = etcdClient({ hosts: [cluster.etcd.clientUrl], prefix: "restart/", call_timeout_ms: 500, dial_timeout_ms: 500 });
    const log = new TxlogEtcd(client, "restart/");
    try {
      expect(await log.put("tx/a", { kind: "epoch" }, 0)).toEqual({ ok: true, version: 1 });
      await cluster.etcd.kill9();
      for (let i = 0; i < 4; i++) expect(await log.put("tx/b", { kind: "epoch" }, 0)).toEqual({ ok: false, err: "UNAVAILABLE" });
      await cluster.etcd.restart();
      const t0 = Date.now();
      let r = await log.put("tx/b", { kind: "epoch" }, 0);
      while (!r.ok && Date.now() - t0 < 3_000) r = await log.put("tx/b", { kind: "epoch" }, 0);
      expect(r.ok).toBe(true);
      expect(Date.now() - t0).toBeLessThan(3_000);
    } finally {
      client.close();
    }
  });

  it("an unreachable etcd answers UNAVAILABLE within the deadline", async () => {
    const client = etcdClient({ hosts: ["http://127.0.0.1:1"], prefix: "x/", call_timeout_ms: 300, dial_timeout_ms: 300 });
    const log = new TxlogEtcd(client, "x/");
    const t0 = Date.now();
    expect(await log.put("tx/1", { kind: "epoch" }, 0)).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(Date.now() - t0).toBeLessThan(5_000);
    client.close();
  });
});
