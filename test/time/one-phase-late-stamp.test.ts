// A one-phase commit whose batch (XA COMMIT ONE PHASE + stamp, XaMysql.commitStamped) answers UNAVAILABLE while the
// shard still runs it must not have its timestamp settled at once (found by an audit): the stamp, still running on the
// server, would write it below a safe time already released to a snapshot read. Asserts: no history row ends with a
// commit_ts at or below a safe time released after the commit answered. Real MariaDB; about 5 s.
import { afterAll, beforeAll, expect, it } from "vitest";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { systemClock } from "../../runtime/adapters/ports.ts";
import { HybridClock } from "../../runtime/hlc.ts";
import type { Adapters } from "../../runtime/interpreter.ts";
import { CommitTimestamps, withTimestamps } from "../../runtime/timestamps.ts";
import { safeTime } from "../../spec/time/safe.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
let xa: XaMysql;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 10, balanceCents: 10_000, lockWaitTimeoutS: 2 });
  // A short client-side statement timeout: the batch is given up on while the server still runs it.
  xa = new XaMysql({ shards: cluster.shards.map((s) => s.serverAddress()), limits: { connections_max: 4, waiters_max: 4, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 300 } });
}, 120_000);

afterAll(async () => {
  xa?.close();
  await cluster?.stop();
});

it("a one-phase commit answered UNAVAILABLE never has its rows stamped at or below a released safe time", async () => {
  const shard = cluster.shards[0]!.name;
  const ts = new CommitTimestamps(new HybridClock());
  const wrapped = withTimestamps({ xa, log: {} as Adapters["log"], clock: systemClock } as Adapters, ts, (tx, s, t) => xa.stampHistory(tx, s, t), "n1", (tx, s, one, t) => xa.commitStamped(tx, s, one, t));
  const tx = "n1.a0000000-0000-4000-8000-00000000a201";
  expect(await xa.exec(tx, shard, [{ account: 1, delta: -5 }, { account: 2, delta: 5 }], true)).toEqual({ ok: true });
  // Another session takes the branch's history rows as soon as XA COMMIT releases them, and holds them 800 ms: the
  // stamp UPDATE of the batch waits (within the shard's lock wait timeout), past the client's 300 ms.
  const locker = await cluster.shards[0]!.connect();
  await locker.query("START TRANSACTION");
  const locked = locker.query("SELECT COUNT(*) FROM history WHERE xid = ? FOR UPDATE", [tx]);
  await new Promise((r) => setTimeout(r, 100));
  const r = await wrapped.xa.commit(tx, shard, true);
  await locked;
  // A snapshot read right after the answer: served at the safe time this process computes now.
  const safe = safeTime(ts.view());
  if (safe !== null) ts.release(safe);
  await new Promise((res) => setTimeout(res, 800));
  await locker.query("COMMIT");
  await locker.end();
  await new Promise((res) => setTimeout(res, 500));
  const c = await cluster.shards[0]!.connect();
  const [rows] = await c.query("SELECT CAST(commit_ts AS CHAR) AS ts FROM history WHERE xid = ?", [tx]);
  await c.end();
  const stamps = (rows as Array<{ ts: string | null }>).map((x) => x.ts);
  console.log(`commit answered ${JSON.stringify(r)}; released ${ts.releasedMax}; rows' commit_ts ${JSON.stringify(stamps)}`);
  for (const s of stamps) if (s !== null) expect(BigInt(s), `row stamped at ${s} <= released ${ts.releasedMax} (answer ${JSON.stringify(r)})`).toBeGreaterThan(ts.releasedMax);
}, 60_000);
