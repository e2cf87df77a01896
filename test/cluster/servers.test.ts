// Integration tests of the local cluster's servers: real MariaDB and etcd,
// started from scratch in a temporary directory by the test itself.
import { join } from "node:path";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEtcd } from "../../runtime/cluster/etcd.ts";
import { startMariaDb } from "../../runtime/cluster/mariadb.ts";
import { freePort } from "../../runtime/cluster/ports.ts";
import { ER_CONSTRAINT_FAILED, toCents } from "../../runtime/cluster/schema.ts";
import { startTestCluster, totalBalance, xaRecover, type TestCluster } from "../support/cluster.ts";

const ACCOUNTS_PER_SHARD = 1_000;
const BALANCE_CENTS = 100_000;

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: ACCOUNTS_PER_SHARD, balanceCents: BALANCE_CENTS });
});

afterAll(async () => {
  await cluster?.stop();
});

async function balanceOf(conn: mysql.Connection, id: number): Promise<bigint> {
  const [rows] = await conn.query("SELECT balance FROM accounts WHERE id = ?", [id]);
  const row = (rows as Array<{ balance: unknown }>)[0];
  if (row === undefined) throw new Error(`no account ${id}`);
  return toCents(row.balance);
}

describe("a fresh cluster of 2 shards and etcd", () => {
  it("seeds global, disjoint account ids per shard and the expected total", async () => {
    expect(cluster.shards.map((s) => [s.name, s.firstAccountId, s.lastAccountId])).toEqual([
      ["shard-a", 1, 1_000],
      ["shard-b", 1_001, 2_000],
    ]);
    for (const shard of cluster.shards) {
      const conn = await shard.connect();
      const [rows] = await conn.query("SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi, MIN(balance) AS minb, MAX(balance) AS maxb FROM accounts");
      const r = (rows as Array<Record<string, unknown>>)[0];
      expect(r).toEqual({ n: "1000", lo: String(shard.firstAccountId), hi: String(shard.lastAccountId), minb: "100000", maxb: "100000" });
      await conn.end();
    }
    expect(await totalBalance(cluster)).toBe(2n * 1_000n * 100_000n);
    expect(cluster.seededTotalCents).toBe(200_000_000n);
    const described = cluster.describe();
    expect(described.seed).toEqual({ shards: 2, accountsPerShard: ACCOUNTS_PER_SHARD, balanceCents: BALANCE_CENTS });
    expect(described.shards.map((s) => [s.name, s.port, s.pid])).toEqual(cluster.shards.map((s) => [s.name, s.db.port, s.db.pid]));
    expect(described.etcd.clientUrl).toBe(cluster.etcd.clientUrl);
  });

  it("gives each MariaDB its own tmpdir, since a starting mariadbd deletes every #sql file in its tmpdir", async () => {
    const dirs = new Set<string>();
    for (const shard of cluster.shards) {
      const conn = await shard.connect();
      const [rows] = await conn.query("SELECT @@tmpdir AS tmpdir");
      const tmpdir = (rows as Array<{ tmpdir: string }>)[0]?.tmpdir;
      expect(tmpdir).toBe(`${shard.db.dataDir}.tmp`);
      dirs.add(String(tmpdir));
      await conn.end();
    }
    expect(dirs.size).toBe(cluster.shards.length);
  });

  it("returns money as strings, never floats, and refuses an overdraft with the CHECK constraint", async () => {
    const conn = await cluster.shard("shard-a").connect();
    const [rows] = await conn.query("SELECT balance, balance * 1000000000 AS big FROM accounts WHERE id = 1");
    expect(rows).toEqual([{ balance: "100000", big: "100000000000000" }]);
    await expect(conn.query("UPDATE accounts SET balance = balance - 100001 WHERE id = 1")).rejects.toMatchObject({ errno: ER_CONSTRAINT_FAILED });
    expect(await balanceOf(conn, 1)).toBe(100_000n);
    await conn.end();
  });

  it("keeps committed data and a PREPARED XA branch across kill -9 and restart of a shard", async () => {
    const shard = cluster.shard("shard-b");
    const id = shard.firstAccountId;
    const committer = await shard.connect();
    await committer.query("UPDATE accounts SET balance = balance - 500 WHERE id = ?", [id]);

    const owner = await shard.connect();
    await owner.query("XA START 'kill9-gtrid', 'b1'");
    await owner.query("UPDATE accounts SET balance = balance + 500 WHERE id = ?", [id + 1]);
    await owner.query("XA END 'kill9-gtrid', 'b1'");
    await owner.query("XA PREPARE 'kill9-gtrid', 'b1'");

    const unprepared = await shard.connect();
    await unprepared.query("XA START 'kill9-active'");
    await unprepared.query("UPDATE accounts SET balance = balance + 7 WHERE id = ?", [id + 2]);

    const pidBefore = shard.db.pid;
    await shard.db.kill9();
    expect(shard.db.alive()).toBe(false);
    await shard.db.restart();
    expect(shard.db.alive()).toBe(true);
    expect(shard.db.pid).not.toBe(pidBefore);

    const after = await shard.connect();
    expect(await balanceOf(after, id)).toBe(100_000n - 500n);
    expect(await xaRecover(after)).toEqual([{ formatID: 1, gtrid: "kill9-gtrid", bqual: "b1" }]);
    // The ACTIVE branch was rolled back by crash recovery; the prepared one still holds its change invisibly.
    expect(await balanceOf(after, id + 2)).toBe(100_000n);
    expect(await balanceOf(after, id + 1)).toBe(100_000n);
    await after.query("XA COMMIT 'kill9-gtrid', 'b1'");
    expect(await balanceOf(after, id + 1)).toBe(100_000n + 500n);
    expect(await xaRecover(after)).toEqual([]);
    expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
    await after.end();
  });

  it("stops a shard cleanly and restarts it on the same port", async () => {
    const shard = cluster.shard("shard-a");
    const port = shard.db.port;
    await shard.db.stop();
    expect(shard.db.alive()).toBe(false);
    const refused = mysql.createConnection(shard.connectionOptions());
    await expect(refused).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await shard.db.restart();
    expect(shard.db.port).toBe(port);
    const conn = await shard.connect();
    expect(await balanceOf(conn, shard.firstAccountId)).toBe(100_000n);
    await conn.end();
  });

  it("refuses a port another server holds instead of mistaking that server for the new one", async () => {
    const taken = cluster.shard("shard-a").db.port;
    await expect(startMariaDb({ dataDir: join(cluster.dir, "intruder-db"), port: taken })).rejects.toThrow(`port ${taken} is already in use`);
    const peerPort = await freePort();
    await expect(startEtcd({ dataDir: join(cluster.dir, "intruder-etcd"), clientPort: cluster.etcd.clientPort, peerPort })).rejects.toThrow(
      `port ${cluster.etcd.clientPort} or ${peerPort} is already in use`,
    );
  });

  it("keeps an acknowledged etcd key across kill -9 and restart of etcd", async () => {
    const client = cluster.etcdClient();
    await client.put("speccommit/test/decision").value("COMMIT");
    const pidBefore = cluster.etcd.pid;
    await cluster.etcd.kill9();
    expect(cluster.etcd.alive()).toBe(false);
    await cluster.etcd.restart();
    expect(cluster.etcd.pid).not.toBe(pidBefore);
    const fresh = cluster.etcdClient();
    expect(await fresh.get("speccommit/test/decision").string()).toBe("COMMIT");
  });
});
