// Parallel commit's connection ids and KILL CONNECTION (spec/kernel/effects.ts
// XaKillEffect; runtime/adapters/ports.ts XaExecutor.connectionOf/kill): the
// live executor against a real MariaDB, and the in-memory one over the model.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connOf } from "../../spec/env/executor.ts";
import { MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { parseConnectionId, XaMysql, XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { DATABASE } from "../../runtime/cluster/schema.ts";
import { startTestCluster, xaRecover, type TestCluster } from "../support/cluster.ts";
import { balance, snapshot } from "./support.ts";

let cluster: TestCluster;
let xa: XaMysql;
/** Another process's executor on the same shards (a coordinator's handover, a resolver). */
let other: XaMysql;

const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

const executor = () =>
  new XaMysql({
    shards: cluster.shards.map((s) => s.serverAddress()),
    limits,
  });

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 10_000, lockWaitTimeoutS: 1 });
  xa = executor();
  other = executor();
});

afterAll(async () => {
  xa?.close();
  other?.close();
  await cluster?.stop();
});

/** The shard's sessions, by id. */
async function processIds(shard: string): Promise<Set<number>> {
  const admin = await cluster.shard(shard).connect();
  try {
    const [rows] = await admin.query("SELECT ID FROM information_schema.PROCESSLIST");
    return new Set((rows as Array<{ ID: unknown }>).map((r) => Number(r.ID)));
  } finally {
    admin.destroy();
  }
}

async function currentBoot(shard: string): Promise<string> {
  const admin = await cluster.shard(shard).connect();
  try {
    const [rows] = await admin.query("SELECT UNIX_TIMESTAMP() - VARIABLE_VALUE AS boot FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'");
    return String(Number((rows as Array<{ boot: unknown }>)[0]!.boot));
  } finally {
    admin.destroy();
  }
}

const tid = (conn: string): number => parseConnectionId(conn)!.threadId;

describe("XaMysql: connectionOf and kill", () => {
  it("connectionOf is <boot>:CONNECTION_ID() of the branch's connection once exec succeeded, null before and after", async () => {
    const tx = "k0000000-0000-4000-8000-000000000001";
    expect(xa.connectionOf(tx, "shard-a")).toBeNull();
    expect(await xa.exec(tx, "shard-a", [{ account: 1, delta: -10 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-a");
    expect(conn).toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
    const id = parseConnectionId(conn!)!;
    expect(id.boot).toBe(await currentBoot("shard-a"));
    // The branch's session, as the server numbers it; the owner connection says the same of itself.
    expect((await processIds("shard-a")).has(id.threadId)).toBe(true);
    const owner = (xa as unknown as { branches: Map<string, { conn: { raw: { query(sql: string, cb: (e: unknown, r: unknown) => void): void } } }> }).branches.get(`${tx}|shard-a`)!.conn;
    const [self] = await new Promise<Array<{ id: unknown }>>((resolve, reject) => owner.raw.query("SELECT CONNECTION_ID() AS id", (e, r) => (e ? reject(e) : resolve(r as Array<{ id: unknown }>))));
    expect(Number(self!.id)).toBe(id.threadId);
    expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: true });
    expect(xa.connectionOf(tx, "shard-a")).toBe(conn);
    expect(await xa.commit(tx, "shard-a")).toEqual({ ok: true });
    expect(xa.connectionOf(tx, "shard-a")).toBeNull();
  });

  it("connectionOf is null after a failed exec (the branch's connection is kept for its rollback)", async () => {
    const tx = "k0000000-0000-4000-8000-000000000002";
    expect(await xa.exec(tx, "shard-a", [{ account: 2, delta: -10_001 }], true)).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    expect(xa.connectionOf(tx, "shard-a")).toBeNull();
    expect(await xa.rollback(tx, "shard-a")).toEqual({ ok: true });
  });

  it("kill of an executed (IDLE) branch's connection: gone from the process list, prepare RMFAIL (what any other connection is answered), nothing prepared, balance unchanged", async () => {
    const tx = "k0000000-0000-4000-8000-000000000003";
    expect(await xa.exec(tx, "shard-a", [{ account: 3, delta: -100 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-a")!;
    expect(await xa.kill("shard-a", conn)).toEqual({ ok: true });
    expect((await processIds("shard-a")).has(tid(conn))).toBe(false);
    expect(xa.connectionOf(tx, "shard-a")).toBeNull();
    expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: false, err: "RMFAIL" });
    const admin = await cluster.shard("shard-a").connect();
    expect((await xaRecover(admin)).filter((r) => r.gtrid === tx)).toEqual([]);
    admin.destroy();
    expect(await balance(cluster, "shard-a", 3)).toBe(10_000n);
    expect((await snapshot(cluster)).history.has(`shard-a|${tx}`)).toBe(false);
    // The rollback finds nothing left: the server rolled the branch back with its session.
    expect(await xa.rollback(tx, "shard-a")).toEqual({ ok: false, err: "NOTA" });
    expect(xa.openBranches("shard-a")).toBe(0);
  });

  it("kill by another executor (a handover): the owner's next statement sees its connection lost", async () => {
    const tx = "k0000000-0000-4000-8000-000000000004";
    expect(await xa.exec(tx, "shard-b", [{ account: 101, delta: 100 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-b")!;
    expect(await other.kill("shard-b", conn)).toEqual({ ok: true });
    // RMFAIL when the closed socket was noticed before the prepare was sent (what any other connection is answered),
    // UNAVAILABLE when the prepare found it closed: the model's executor allows both (a fresh connection, a lost one).
    expect([{ ok: false, err: "RMFAIL" }, { ok: false, err: "UNAVAILABLE" }]).toContainEqual(await xa.prepare(tx, "shard-b"));
    expect(xa.connectionOf(tx, "shard-b")).toBeNull();
    expect(await xa.recover("shard-b")).toEqual({ ok: true, prepared: [] });
    expect(await balance(cluster, "shard-b", 101)).toBe(10_000n);
    expect(await xa.rollback(tx, "shard-b")).toEqual({ ok: false, err: "NOTA" });
  });

  it("kill of a prepared branch's connection: still listed by XA RECOVER, then committed once from a fresh connection", async () => {
    const tx = "k0000000-0000-4000-8000-000000000005";
    expect(await xa.exec(tx, "shard-b", [{ account: 102, delta: 70 }], true)).toEqual({ ok: true });
    expect(await xa.prepare(tx, "shard-b")).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-b")!;
    expect(await xa.kill("shard-b", conn)).toEqual({ ok: true });
    expect((await processIds("shard-b")).has(tid(conn))).toBe(false);
    const admin = await cluster.shard("shard-b").connect();
    expect(await xaRecover(admin)).toEqual([{ formatID: XID_FORMAT_ID, gtrid: tx, bqual: "shard-b" }]);
    expect(await xa.commit(tx, "shard-b")).toEqual({ ok: true });
    expect(await xaRecover(admin)).toEqual([]);
    admin.destroy();
    expect(await balance(cluster, "shard-b", 102)).toBe(10_070n);
    expect((await snapshot(cluster)).history.get(`shard-b|${tx}`)).toBe(1);
    expect(await xa.commit(tx, "shard-b")).toEqual({ ok: false, err: "NOTA" });
    expect(await balance(cluster, "shard-b", 102)).toBe(10_070n);
    expect(xa.openBranches("shard-b")).toBe(0);
  });

  it("a prepared branch killed by another executor is rolled back by its owner from a fresh connection", async () => {
    const tx = "k0000000-0000-4000-8000-000000000006";
    expect(await xa.exec(tx, "shard-b", [{ account: 103, delta: -70 }], true)).toEqual({ ok: true });
    expect(await xa.prepare(tx, "shard-b")).toEqual({ ok: true });
    expect(await other.kill("shard-b", xa.connectionOf(tx, "shard-b")!)).toEqual({ ok: true });
    expect(await xa.recover("shard-b")).toEqual({ ok: true, prepared: [{ tx, shard: "shard-b" }] });
    expect(await xa.rollback(tx, "shard-b")).toEqual({ ok: true });
    expect(await xa.recover("shard-b")).toEqual({ ok: true, prepared: [] });
    expect(await balance(cluster, "shard-b", 103)).toBe(10_000n);
  });

  it("kill of an unknown id, or of an id of another boot, is ok and kills nothing; a malformed id is UNAVAILABLE", async () => {
    const tx = "k0000000-0000-4000-8000-000000000007";
    expect(await xa.exec(tx, "shard-a", [{ account: 4, delta: 5 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-a")!;
    const { boot, threadId } = parseConnectionId(conn)!;
    expect(await xa.kill("shard-a", `${boot}:999999`)).toEqual({ ok: true });
    // The same thread id under another boot names a session that died with that boot: the live one is left alone.
    expect(await xa.kill("shard-a", `${Number(boot) - 100}:${threadId}`)).toEqual({ ok: true });
    expect(await other.kill("shard-a", `1:${threadId}`)).toEqual({ ok: true });
    expect((await processIds("shard-a")).has(threadId)).toBe(true);
    expect(xa.connectionOf(tx, "shard-a")).toBe(conn);
    expect(await xa.kill("shard-a", "not-a-connection")).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(await xa.kill("shard-x", conn)).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(await xa.prepare(tx, "shard-a")).toEqual({ ok: true });
    expect(await xa.commit(tx, "shard-a")).toEqual({ ok: true });
    expect(await balance(cluster, "shard-a", 4)).toBe(10_005n);
  });

  it("kill of a finished branch's connection, idle in the executor's own pool: ok, and the pool goes on", async () => {
    const tx = "k0000000-0000-4000-8000-000000000008";
    expect(await xa.exec(tx, "shard-a", [{ account: 5, delta: 5 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-a")!;
    expect(await xa.commit(tx, "shard-a", true)).toEqual({ ok: true });
    expect(await xa.kill("shard-a", conn)).toEqual({ ok: true });
    expect((await processIds("shard-a")).has(tid(conn))).toBe(false);
    const tx2 = "k0000000-0000-4000-8000-000000000009";
    expect(await xa.exec(tx2, "shard-a", [{ account: 5, delta: 5 }], true)).toEqual({ ok: true });
    expect(await xa.commit(tx2, "shard-a", true)).toEqual({ ok: true });
    expect(await balance(cluster, "shard-a", 5)).toBe(10_010n);
  });

  it("a shard that is down answers UNAVAILABLE; after its restart, an id of the old boot is ok and kills nothing", async () => {
    const tx = "k0000000-0000-4000-8000-00000000000a";
    expect(await xa.exec(tx, "shard-b", [{ account: 110, delta: 5 }], true)).toEqual({ ok: true });
    const conn = xa.connectionOf(tx, "shard-b")!;
    const { boot } = parseConnectionId(conn)!;
    // The boot is the start time in seconds: a restart in the same second would keep it (see the report on this).
    while (Date.now() / 1000 < Number(boot) + 1.2) await new Promise((resolve) => setTimeout(resolve, 100));
    const db = cluster.shard("shard-b").db;
    await db.kill9();
    const t0 = Date.now();
    expect(await xa.kill("shard-b", conn)).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(xa.connectionOf(tx, "shard-b")).toBeNull();
    await db.restart();
    expect(await currentBoot("shard-b")).not.toBe(boot);
    // Sessions of the new boot are numbered from 1 again: open a few so the old thread id may well be taken.
    const sessions = await Promise.all(Array.from({ length: 4 }, () => cluster.shard("shard-b").connect()));
    const before = await processIds("shard-b");
    expect(await xa.kill("shard-b", conn)).toEqual({ ok: true });
    const after = await processIds("shard-b");
    for (const id of before) if (sessions.some((s) => s.threadId === id)) expect(after.has(id)).toBe(true);
    for (const s of sessions) s.destroy();
    // The unprepared branch went with the crash (its owner's socket seen closed, or found closed by the prepare).
    expect([{ ok: false, err: "RMFAIL" }, { ok: false, err: "UNAVAILABLE" }]).toContainEqual(await xa.prepare(tx, "shard-b"));
    // (An earlier test's XA ROLLBACK of a prepared branch may come back from kill -9: not durable until the next flush, docs/xa-model.md.)
    const recovered = await xa.recover("shard-b");
    expect(recovered.ok && recovered.prepared.filter((p) => p.tx === tx)).toEqual([]);
    expect(await balance(cluster, "shard-b", 110)).toBe(10_000n);
  });
});

describe("MemoryXa: connectionOf and kill", () => {
  const setup = () => {
    const clock = new SimClock();
    const mem = new MemoryXa(
      new Map([
        ["s1", [[1, 1_000], [2, 1_000]] as const],
        ["s2", [[3, 1_000]] as const],
      ]),
      clock,
      new Rng(7),
    );
    const settle = async <T>(p: Promise<T>): Promise<T> => {
      await clock.run();
      return p;
    };
    return { clock, mem, settle };
  };

  it("connectionOf names the branch's connection while the shard has it", async () => {
    const { mem, settle } = setup();
    expect(mem.connectionOf("t1", "s1")).toBeNull();
    expect(await settle(mem.exec("t1", "s1", [{ account: 1, delta: -5 }], true))).toEqual({ ok: true });
    expect(mem.connectionOf("t1", "s1")).toBe(connOf("t1", "s1", mem.incarnation));
    expect(await settle(mem.commit("t1", "s1", true))).toEqual({ ok: true });
    expect(mem.connectionOf("t1", "s1")).toBeNull();
  });

  it("kill of an IDLE branch's connection rolls it back; of a prepared one leaves it for a commit from a fresh connection", async () => {
    const { mem, settle } = setup();
    expect(await settle(mem.exec("t1", "s1", [{ account: 1, delta: -5 }], true))).toEqual({ ok: true });
    expect(await settle(mem.kill("s1", mem.connectionOf("t1", "s1")!))).toEqual({ ok: true });
    expect(mem.connectionOf("t1", "s1")).toBeNull();
    // The model answers from a fresh connection (RMFAIL); the live executor answers UNAVAILABLE without sending: both "not prepared".
    expect((await settle(mem.prepare("t1", "s1"))).ok).toBe(false);
    expect(mem.prepared()).toEqual([]);

    expect(await settle(mem.exec("t2", "s1", [{ account: 2, delta: 7 }], true))).toEqual({ ok: true });
    expect(await settle(mem.prepare("t2", "s1"))).toEqual({ ok: true });
    expect(await settle(mem.kill("s1", mem.connectionOf("t2", "s1")!))).toEqual({ ok: true });
    expect(await settle(mem.recover("s1"))).toEqual({ ok: true, prepared: [{ tx: "t2", shard: "s1" }] });
    expect(await settle(mem.commit("t2", "s1"))).toEqual({ ok: true });
    expect(mem.total()).toBe(3_007n);
  });

  it("kill of an unknown connection is ok; on a shard that is down it is UNAVAILABLE", async () => {
    const { mem, settle } = setup();
    expect(await settle(mem.kill("s2", "nobody@1"))).toEqual({ ok: true });
    mem.crashShard("s2");
    expect(await settle(mem.kill("s2", "nobody@1"))).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(await settle(mem.kill("s9", "nobody@1"))).toEqual({ ok: false, err: "UNAVAILABLE" });
    mem.restartShard("s2");
    expect(await settle(mem.kill("s2", "nobody@1"))).toEqual({ ok: true });
  });
});
