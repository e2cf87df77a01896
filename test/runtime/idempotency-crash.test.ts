// Idempotency keys across kill -9, on real MariaDB and etcd: a server process claims a key (the claim role,
// spec/server/idempotency.ts, through the txlog port) and is killed -9 at some moment after its claim became
// durable, in the middle of its one-phase transfer (one branch: XA COMMIT ... ONE PHASE, no txlog record). A new
// process, asked again with the same key, answers from the claim: stored, or settled from durable state with the
// settle fence (spec/server/readback.ts SETTLE_FENCE). Whatever the moment, the answer is what the shard holds
// (committed exactly when the money moved), a second retry answers the same, and the transfer is never applied
// twice.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotencyEtcdKey } from "../../runtime/idempotency.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, type HttpAnswer } from "./support.ts";

const PREFIX = "idemcrash/";
let cluster: TestCluster;
let dir: string;
let clusterFile: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 20, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  dir = mkdtempSync(join(tmpdir(), "speccommit-idemcrash-"));
  clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
});

afterAll(async () => {
  closeAgents();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const serve = () => startServerProcess(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", PREFIX, "--resolver-interval-ms", "60000"]);

/** POST /transfer with the key until the answer is not 503 (a new process before its epoch, a fence not held yet), bounded. */
async function retry(url: string, ops: unknown, key: string): Promise<HttpAnswer> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await request(url, "POST", "/transfer", { json: { ops }, headers: { "Idempotency-Key": key } });
    if (r.status !== 503 || Date.now() > deadline) return r;
    await sleep(200);
  }
}

describe("an idempotency key whose claimant was killed -9 during its one-phase transfer", () => {
  // Milliseconds between the claim being seen durable and kill -9: before, around and after the transfer.
  it.each([0, 3, 20, 60])("killed %i ms after the claim: the retry answers what the shard holds, once", async (delay) => {
    const a = cluster.shard("shard-a").firstAccountId;
    const from = a + (delay % 10);
    const to = a + 10 + (delay % 10);
    const ops = [
      { shard_id: "shard-a", account_id: from, delta: "-1.25" },
      { shard_id: "shard-a", account_id: to, delta: "1.25" },
    ];
    const before = await balance(cluster, "shard-a", from);
    const key = `crash-${delay}-${Date.now()}`;
    const etcd = cluster.etcdClient();
    let child: ServerProcess | undefined = await serve();
    let next: ServerProcess | undefined;
    try {
      const first = request(child.url, "POST", "/transfer", { json: { ops }, headers: { "Idempotency-Key": key } }).catch((e: Error) => e);
      const deadline = Date.now() + 10_000;
      while ((await etcd.get(PREFIX + idempotencyEtcdKey(key)).string()) === null) {
        if (Date.now() > deadline) throw new Error(`no claim within 10 s:\n${child.output()}`);
        await sleep(1);
      }
      if (delay > 0) await sleep(delay);
      await child.kill9();
      child = undefined;
      const lost = await first;
      next = await serve();
      const r = await retry(next.url, ops, key);
      // 200 committed, 409 aborted (docs/operations.md, the replies of POST /transfer).
      expect([200, 409], JSON.stringify(r.body)).toContain(r.status);
      const moved = (await balance(cluster, "shard-a", from)) !== before;
      expect(r.body.status).toBe(moved ? "committed" : "aborted");
      // The first answer, if it reached the client before the kill, is the same.
      if (!(lost instanceof Error) && (lost.status === 200 || lost.status === 409)) expect(lost.body.status).toBe(r.body.status);
      // Once more: the same answer (stored now), the same transaction, nothing applied twice.
      const again = await retry(next.url, ops, key);
      expect(again.body).toMatchObject({ status: r.body.status, tx: r.body.tx, replayed: true });
      expect(await balance(cluster, "shard-a", from)).toBe(moved ? before - 125n : before);
      expect(JSON.parse((await etcd.get(PREFIX + idempotencyEtcdKey(key)).string())!)).toMatchObject({ kind: "claim", outcome: { status: r.body.status } });
    } finally {
      await child?.kill9();
      await next?.stop();
    }
  }, 90_000);
});
