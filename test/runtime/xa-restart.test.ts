// A prepared branch whose owner session died with its shard's restart is finished from a fresh connection without
// killing anyone (found in chaos runs: the executor killed the dead owner's thread id on the new boot of the server,
// where that id can name an unrelated session: killed, or refused with 1095 for ever). A thread id names a session
// only together with the server's boot. Real MariaDB: the branch is prepared, the shard restarted, a session of the
// new boot is opened with the old owner's thread id, then the branch is committed: that session must live.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Connection } from "mysql2/promise";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance } from "./support.ts";

let cluster: TestCluster;
let xa: XaMysql;
const limits = { connections_max: 4, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 10, balanceCents: 10_000 });
  xa = new XaMysql({ shards: cluster.shards.map((s) => s.serverAddress()), limits });
}, 120_000);

afterAll(async () => {
  xa?.close();
  await cluster?.stop();
}, 60_000);

const threadIdOf = async (c: Connection): Promise<number> => Number(((await c.query("SELECT CONNECTION_ID() AS id"))[0] as Array<{ id: unknown }>)[0]!.id);

describe("a branch whose owner died with a shard restart", () => {
  it("is committed from a fresh connection, and the session of the new boot with the old owner's thread id is left alone", async () => {
    const shard = cluster.shards[0]!;
    const tx = "r0000000-0000-4000-8000-000000000001";
    expect(await xa.exec(tx, shard.name, [{ account: 1, delta: -100 }, { account: 2, delta: 100 }], true)).toEqual({ ok: true });
    expect(await xa.prepare(tx, shard.name)).toEqual({ ok: true });
    const ownerId = xa.connectionOf(tx, shard.name);
    expect(ownerId).not.toBeNull();
    const owner = { threadId: Number(ownerId!.split(":")[1]) };
    await cluster.component(shard.name).restart();
    // Sessions of the new boot until one gets the old owner's thread id (ids start again from 1 after a restart).
    let bystander: Connection | undefined;
    for (let i = 0; i < 2_000 && bystander === undefined; i++) {
      const c = await shard.connect();
      const id = await threadIdOf(c);
      if (id === owner.threadId) bystander = c;
      else await c.end();
      if (id > owner.threadId) break;
    }
    expect(bystander, `no session of the new boot got thread id ${owner.threadId}`).toBeDefined();
    // The first commit may meet the owner's dead connection (UNAVAILABLE); the next goes through a fresh one.
    let r = await xa.commit(tx, shard.name);
    for (let i = 0; i < 5 && !r.ok; i++) r = await xa.commit(tx, shard.name);
    expect(r).toEqual({ ok: true });
    expect(await balance(cluster, shard.name, 1)).toBe(10_000n - 100n);
    // The bystander still runs.
    expect(await threadIdOf(bystander!)).toBe(owner.threadId);
    await bystander!.end();
  }, 90_000);
});
