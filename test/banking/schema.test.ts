// The banking schema on a shard made by an earlier version: `createSchema` (what `cluster up` runs) brings the
// accounts and history tables to their new shape, keeping the rows (history rows get a seq each), and the shard user
// gets its new grants; the server then opens accounts and pages history on it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSchema, createShardUser, DATABASE, SHARD_USER } from "../../runtime/cluster/schema.ts";
import { readFileSync } from "node:fs";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

let cluster: TestCluster;
let server: RunningServer | undefined;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 10, balanceCents: 1_000 });
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

const columns = async (conn: Awaited<ReturnType<TestCluster["shards"][number]["connect"]>>, table: string) => {
  const [rows] = await conn.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", [DATABASE, table]);
  return (rows as Array<{ c: string }>).map((r) => r.c);
};

describe("upgrade of a shard made before the banking API", () => {
  it("adds the columns and keys, keeps the rows, numbers the old history rows, and the server works on it", async () => {
    for (const shard of cluster.shards) {
      const root = await shard.connect();
      // The shape of the earlier version (and a history row written by it).
      await root.query("INSERT INTO history (xid, account_id, delta, at_us) VALUES ('old-tx', ?, 5, 1)", [shard.firstAccountId]);
      await root.query("ALTER TABLE history DROP INDEX history_account_seq, DROP COLUMN seq");
      await root.query("ALTER TABLE accounts DROP INDEX accounts_opening_key, DROP COLUMN status, DROP COLUMN opening_key, DROP COLUMN opening_tx, DROP COLUMN opening_request, DROP COLUMN opening_protocol, ALTER COLUMN balance DROP DEFAULT");
      expect(await columns(root, "accounts")).toEqual(["id", "balance"]);
      await createSchema(root);
      await createSchema(root); // idempotent
      expect(await columns(root, "accounts")).toEqual(["id", "balance", "status", "opening_key", "opening_tx", "opening_request", "opening_protocol"]);
      expect(await columns(root, "history")).toContain("seq");
      const [old] = await root.query("SELECT seq FROM history WHERE xid = 'old-tx'");
      expect(BigInt((old as Array<{ seq: string }>)[0]!.seq)).toBeGreaterThan(0n);
      const [states] = await root.query("SELECT DISTINCT status FROM accounts");
      expect(states).toEqual([{ status: "open" }]);
      const password = readFileSync(cluster.describe().shards.find((s) => s.name === shard.name)!.passwordFile, "utf8").trim();
      await createShardUser(root, SHARD_USER, password);
      await root.end();
    }
    server = await serverOn(cluster, ["--etcd-prefix", "upgrade/"]);
    const a = cluster.shards[0]!;
    const b = cluster.shards[1]!;
    const r = await request(server.url, "POST", "/accounts", {
      json: { shard_id: b.name, account_id: 77, opening_balance: 10, funding: { shard_id: a.name, account_id: a.firstAccountId } },
      headers: { "Idempotency-Key": "after-upgrade" },
    });
    expect(r.status).toBe(201);
    const h = await request(server.url, "GET", `/accounts/${a.name}/${a.firstAccountId}/history`);
    expect(h.body.rows.map((x: { tx: string }) => x.tx)).toEqual([r.body.opening_tx, "old-tx"]);
  }, 60_000);

  it("moves opening_key to a NO PAD collation, keeping the keys: 'k' and 'k ' are two keys after", async () => {
    const shard = cluster.shards[0]!;
    const root = await shard.connect();
    try {
      // The earlier shape: utf8mb4_bin, PAD SPACE.
      await root.query("ALTER TABLE accounts MODIFY COLUMN opening_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL");
      await root.query("INSERT INTO accounts (id, status, opening_key) VALUES (501, 'open', 'pad-k'), (502, 'open', 'pad-j ')");
      await expect(root.query("INSERT INTO accounts (id, status, opening_key) VALUES (503, 'open', 'pad-k ')")).rejects.toThrow(/Duplicate/);
      await createSchema(root);
      await createSchema(root); // idempotent
      const [col] = await root.query("SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'opening_key'", [DATABASE]);
      expect((col as Array<{ c: string }>)[0]!.c).toBe("utf8mb4_nopad_bin");
      const [kept] = await root.query("SELECT id, opening_key AS k FROM accounts WHERE id IN (501, 502) ORDER BY id");
      expect(kept).toEqual([{ id: "501", k: "pad-k" }, { id: "502", k: "pad-j " }]);
      await root.query("INSERT INTO accounts (id, status, opening_key) VALUES (503, 'open', 'pad-k ')");
      const [one] = await root.query("SELECT id FROM accounts WHERE opening_key = 'pad-k'");
      expect(one).toEqual([{ id: "501" }]);
    } finally {
      await root.end();
    }
  }, 60_000);
});
