// The shard user of `cluster up` (runtime/cluster/schema.ts createShardUser):
// exactly the grants docs/operations.md lists, refused everything else, and
// the server runs as it (transfers of every protocol commit, the resolver
// finishes a branch left prepared by a dead session, which is XA RECOVER,
// KILL and PROCESSLIST as that user). Real MariaDB and etcd.
import { readFileSync, statSync } from "node:fs";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_WAITS_SQL } from "../../runtime/deadlock.ts";
import { DATABASE, SHARD_TABLES, SHARD_USER, SHARD_USER_GLOBAL_GRANTS, createShardUser } from "../../runtime/cluster/schema.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { startTestCluster, xaRecover, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

const ORPHAN = "00000000-0000-4000-8000-00000000abcd";
let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
  server = await serverOn(cluster, ["--etcd-prefix", "priv/"]);
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

const passwordOf = (shard: string) => {
  const file = cluster.describe().shards.find((s) => s.name === shard)!.passwordFile;
  return readFileSync(file, "utf8").trim();
};

const asShardUser = (shard: string, user = SHARD_USER, password = passwordOf(shard)) =>
  mysql.createConnection({ host: "127.0.0.1", port: cluster.shard(shard).db.port, user, password, database: DATABASE });

/** The privileges a connection holds beyond the documented grants (SHOW GRANTS, parsed): empty for the shard user. */
async function excessPrivileges(conn: mysql.Connection): Promise<string[]> {
  const [rows] = await conn.query("SHOW GRANTS");
  // A column list is compared without backticks and sorted: SHOW GRANTS prints INSERT (`status`, `id`) for INSERT (id, status).
  const normal = (p: string): string => p.trim().replaceAll("`", "").replace(/\(([^)]*)\)/, (_, cols: string) => `(${cols.split(/,\s*/).sort().join(", ")})`);
  const privilegesOf = (text: string): string[] => (text.match(/[A-Z ]+?(?: \([^)]*\))?(?=, |$)/g) ?? []).map(normal).filter((p) => p !== "");
  const allowed = new Map(SHARD_TABLES.map((t) => [t.name, new Set<string>(t.grants.map(normal))]));
  const excess: string[] = [];
  for (const row of rows as Array<Record<string, string>>) {
    const grant = Object.values(row)[0]!;
    const m = /^GRANT (.+) ON (\S+) TO /.exec(grant);
    if (m === null) {
      excess.push(grant);
      continue;
    }
    const [, privs, on] = m as unknown as [string, string, string];
    if (on === "*.*" && privs === "USAGE") continue;
    // The one global privilege, for the deadlock detector's read of the lock waits.
    if (on === "*.*") {
      for (const p of privs.split(", ")) if (!(SHARD_USER_GLOBAL_GRANTS as readonly string[]).includes(p)) excess.push(`${p} ON *.*`);
      if (/WITH GRANT OPTION/.test(grant)) excess.push("GRANT OPTION ON *.*");
      continue;
    }
    const table = /^`speccommit`\.`([a-z_]+)`$/.exec(on)?.[1];
    const ok = table !== undefined ? allowed.get(table) : undefined;
    for (const p of privilegesOf(privs)) if (ok === undefined || !ok.has(p)) excess.push(`${p} ON ${on}`);
    if (/WITH GRANT OPTION/.test(grant)) excess.push(`GRANT OPTION ON ${on}`);
  }
  return excess;
}

describe("the shard user", () => {
  it("has a password file of mode 0600 per shard, and holds exactly the documented grants", async () => {
    for (const s of cluster.describe().shards) {
      expect(s.user).toBe(SHARD_USER);
      expect(statSync(s.passwordFile).mode & 0o777).toBe(0o600);
      const conn = await asShardUser(s.name);
      try {
        expect(await excessPrivileges(conn)).toEqual([]);
        const [rows] = await conn.query("SHOW GRANTS");
        expect((rows as unknown[]).length).toBe(1 + SHARD_TABLES.length);
      } finally {
        await conn.end();
      }
    }
    // Shards have their own passwords.
    expect(passwordOf("shard-a")).not.toBe(passwordOf("shard-b"));
  });

  it("catches an over-granted user (the mutant: ALL on the database)", async () => {
    const root = await cluster.shard("shard-a").connect();
    await root.query("CREATE USER 'mutant'@'127.0.0.1' IDENTIFIED BY 'mutant-pw'");
    await root.query(`GRANT ALL ON ${DATABASE}.* TO 'mutant'@'127.0.0.1'`);
    const conn = await asShardUser("shard-a", "mutant", "mutant-pw");
    try {
      expect((await excessPrivileges(conn)).length).toBeGreaterThan(0);
    } finally {
      await conn.end();
      await root.query("DROP USER 'mutant'@'127.0.0.1'");
      await root.end();
    }
  });

  it("cannot do what the server does not need: DDL, other schemas, other users' sessions, server settings, new accounts", async () => {
    const root = await cluster.shard("shard-a").connect();
    const [idRows] = await root.query("SELECT CONNECTION_ID() AS id");
    const rootThread = Number((idRows as Array<{ id: unknown }>)[0]!.id);
    const conn = await asShardUser("shard-a");
    const refused = [
      "DROP TABLE history",
      "TRUNCATE TABLE history",
      "ALTER TABLE accounts DROP CONSTRAINT balance_not_negative",
      "CREATE TABLE t (a INT)",
      "CREATE DATABASE other",
      "SELECT * FROM mysql.user",
      "INSERT INTO accounts (id, balance) VALUES (999999, 1000000)",
      "DELETE FROM accounts WHERE id = 1",
      "UPDATE history SET delta = 0",
      `GRANT SELECT ON ${DATABASE}.accounts TO '${SHARD_USER}'@'127.0.0.1'`,
      "SET GLOBAL max_connections = 1",
      `KILL CONNECTION ${rootThread}`,
      "CREATE USER 'x'@'%'",
    ];
    try {
      for (const sql of refused) {
        const code = await conn.query(sql).then(
          () => "done",
          (e: { code?: string }) => e.code,
        );
        expect([sql, code]).toEqual([sql, expect.stringMatching(/^ER_(TABLEACCESS|DBACCESS|SPECIFIC_ACCESS|KILL|ACCESS|COLUMNACCESS)_DENIED_ERROR$/)]);
      }
      // What it needs works: read, the branch statements, XA RECOVER, its own sessions in PROCESSLIST; an account
      // inserted without a balance (POST /accounts) starts at 0.
      await conn.query("SELECT balance FROM accounts WHERE id = 1");
      await conn.query("INSERT INTO accounts (id, status) VALUES (999998, 'opening')");
      const [made] = await root.query("SELECT balance FROM accounts WHERE id = 999998");
      expect((made as Array<{ balance: unknown }>)[0]!.balance).toBe("0");
      await root.query("DELETE FROM accounts WHERE id = 999998");
      await conn.query("XA RECOVER");
      const [own] = await conn.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST");
      // The deadlock detector's read of the lock waits (PROCESS, SHARD_USER_GLOBAL_GRANTS).
      await conn.query(LOCK_WAITS_SQL);
      expect(Number((own as Array<{ n: unknown }>)[0]!.n)).toBeGreaterThanOrEqual(1);
    } finally {
      await conn.end();
    }
    // Nothing changed: the root session lives, the table is whole.
    const [rows] = await root.query("SELECT COUNT(*) AS n FROM accounts");
    expect((rows as Array<{ n: unknown }>)[0]!.n).toBe("100");
    await root.end();
  });

  it("is who the server connects as, and the server commits transfers of every protocol and recovers a branch left prepared", async () => {
    for (const protocol of ["2pc", "parallel", "speculative"]) {
      const r = await request(server.url, "POST", "/transfer", {
        json: { protocol, ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: 101, delta: 100 }] },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.status).toBe("committed");
    }
    const root = await cluster.shard("shard-a").connect();
    const [users] = await root.query("SELECT DISTINCT USER AS u FROM information_schema.PROCESSLIST WHERE DB = ? AND USER <> 'root'", [DATABASE]);
    expect((users as Array<{ u: string }>).map((r) => r.u)).toEqual([SHARD_USER]);

    // A branch prepared by a session of the shard user that then dies, with no decision in etcd: the resolver
    // (as the shard user) finds it with XA RECOVER and rolls it back (presumed abort).
    const orphan = await asShardUser("shard-a");
    const xid = `'${ORPHAN}','shard-a',${XID_FORMAT_ID}`;
    await orphan.query(`XA START ${xid}`);
    await orphan.query("UPDATE accounts SET balance = balance - 1 WHERE id = 2");
    await orphan.query(`INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${ORPHAN}', 2, -1, 0)`);
    await orphan.query(`XA END ${xid}`);
    await orphan.query(`XA PREPARE ${xid}`);
    await orphan.end();
    expect((await xaRecover(root)).map((x) => x.gtrid)).toContain(ORPHAN);
    // Presumed abort takes two scans that see the branch without a record.
    for (let i = 0; i < 3; i++) expect(await server.engine.scanNow()).toBe(true);
    expect((await xaRecover(root)).map((x) => x.gtrid)).not.toContain(ORPHAN);
    await root.end();
  });
});

// createShardUser is idempotent and brings an account back to exactly the grants (an extra privilege is revoked).
describe("createShardUser", () => {
  it("revokes a privilege given by hand on the next run", async () => {
    const root = await cluster.shard("shard-b").connect();
    await root.query(`GRANT DROP ON ${DATABASE}.* TO '${SHARD_USER}'@'127.0.0.1'`);
    const before = await asShardUser("shard-b");
    expect(await excessPrivileges(before)).toContain(`DROP ON \`${DATABASE}\`.*`);
    await before.end();
    await createShardUser(root, SHARD_USER, passwordOf("shard-b"));
    const after = await asShardUser("shard-b");
    expect(await excessPrivileges(after)).toEqual([]);
    await after.end();
  });
});
