// A transfer answered in_doubt while the server still holds it in memory:
// etcd is paused (SIGSTOP) so the coordinator's decision write times out,
// then resumed, and the resolver finishes the transaction. From then on
// GET /transactions/:id says the final outcome, the same one a retry with the
// idempotency key replays and the same one a restarted server reads from the
// durable state: one id, one answer (runtime/durable.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { decisionKey } from "../../spec/kernel/effects.ts";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn, snapshot, type HttpAnswer } from "./support.ts";

const PREFIX = "doubt/";
/** A decision write gives up after 2 attempts of 300 ms: well inside the pause. */
const FLAGS = ["--etcd-prefix", PREFIX, "--etcd-timeout-ms", "300", "--attempts-max", "2", "--retry-delay-ms", "50"];
const SCANS_MAX = 40;

let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, lockWaitTimeoutS: 10 });
  server = await serverOn(cluster, FLAGS);
});

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
});

const ops = (from: number, to: number) => [
  { shard_id: "shard-a", account_id: from, delta: -100 },
  { shard_id: "shard-b", account_id: 100 + to, delta: 100 },
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a transfer answered in_doubt, settled while the server holds it", () => {
  it("GET /transactions/:id, a retry with the key and a restarted server all give the resolver's final outcome", async () => {
    const total = await totalBalance(cluster);
    const key = `doubt-${Date.now()}`;
    // The keyed transfer claims its key while etcd runs, then waits on a row lock until etcd is paused.
    const holder = await cluster.shard("shard-a").connect();
    await holder.query("START TRANSACTION");
    await holder.query("SELECT balance FROM accounts WHERE id = 2 FOR UPDATE");
    const keyed = request(server.url, "POST", "/transfer", { json: { ops: ops(2, 2) }, headers: { "Idempotency-Key": key } });
    for (let i = 0; i < 500 && server.engine.inFlight === 0; i++) await sleep(10);
    expect(server.engine.inFlight).toBe(1);

    let plain: HttpAnswer;
    let keyedAnswer: HttpAnswer;
    process.kill(cluster.etcd.pid, "SIGSTOP");
    try {
      plain = await request(server.url, "POST", "/transfer", { json: { ops: ops(1, 1) } });
      await holder.query("ROLLBACK");
      keyedAnswer = await keyed;
      expect([plain.status, plain.body.status, keyedAnswer.status, keyedAnswer.body.status]).toEqual([202, "in_doubt", 202, "in_doubt"]);
      // Both branches prepared, the log unreachable: nothing can be known yet, and the GET says so.
      const early = await request(server.url, "GET", `/transactions/${plain.body.tx}`);
      expect(early.body).toMatchObject({ status: "in_doubt", done: true, durable_error: expect.stringMatching(/transaction log did not answer/) });
    } finally {
      process.kill(cluster.etcd.pid, "SIGCONT");
    }
    // The plain transfer's COMMIT record lands late, as a put etcd applies after its deadline passed does (the
    // coordinator's own CAS create; a no-op if its put did land). The keyed one's lands or not, as it happened.
    const etcd = cluster.etcdClient();
    const record = PREFIX + decisionKey(plain!.body.tx);
    await etcd.if(record, "Version", "==", 0).then(etcd.put(record).value(JSON.stringify({ kind: "decision", decision: "commit", branches: ["shard-a", "shard-b"] }))).commit();

    // The resolver finishes both (a COMMIT record: commit; none: presumed abort).
    for (let i = 0; i < SCANS_MAX && (await snapshot(cluster)).prepared.length > 0; i++) {
      await server.engine.scanNow();
      await sleep(50);
    }
    const snap = await snapshot(cluster);
    expect(snap.prepared).toEqual([]);
    expect(await totalBalance(cluster)).toBe(total);
    const applied = (tx: string) => [snap.history.get(`shard-a|${tx}`) ?? 0, snap.history.get(`shard-b|${tx}`) ?? 0];

    // A retry with the key, asked first, settles the keyed one on its own: the GET below must then say the same.
    const replay = await request(server.url, "POST", "/transfer", { json: { ops: ops(2, 2) }, headers: { "Idempotency-Key": key } });
    expect(replay.body).toMatchObject({ tx: keyedAnswer!.body.tx, replayed: true });
    expect(["committed", "aborted"]).toContain(replay.body.status);

    const finals = new Map<string, string>();
    for (const tx of [plain!.body.tx as string, keyedAnswer!.body.tx as string]) {
      const view = (await request(server.url, "GET", `/transactions/${tx}`)).body;
      expect(tx === plain!.body.tx ? ["committed"] : ["committed", "aborted"], tx).toContain(view.status);
      expect(view, tx).toMatchObject({ tx, done: true, source: "durable state", reply: { status: "in_doubt" } });
      // What the shards hold agrees: every branch applied, or none.
      expect(applied(tx), tx).toEqual(view.status === "committed" ? [1, 1] : [0, 0]);
      // Asked again, the same answer (kept, not read again).
      expect((await request(server.url, "GET", `/transactions/${tx}`)).body.status).toBe(view.status);
      finals.set(tx, view.status);
      if (tx === keyedAnswer!.body.tx) expect(view.status).toBe(replay.body.status);
    }
    console.log(`in doubt, then settled: ${JSON.stringify(Object.fromEntries(finals))}`);

    // A restarted server on the same log reads the same outcome from durable state
    // (presumed abort keeps no record of an abort: 404, "it has not committed").
    await server.close(1_000);
    const fresh = await serverOn(cluster, [...FLAGS, "--retain-transactions", "0"]);
    server = fresh;
    for (const [tx, status] of finals) {
      const r = await request(fresh.url, "GET", `/transactions/${tx}`);
      if (status === "committed") expect(r.body, tx).toMatchObject({ tx, status: "committed" });
      else expect([r.status, r.body.error], tx).toEqual([404, expect.stringMatching(/has not committed/)]);
    }
  });
});
