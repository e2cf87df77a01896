// An opening answered in_doubt is settled by the server without a client retry: runtime/banking.ts settles openings
// every resolver interval (it did only at boot and on a retry with the key, so an opening whose transfer committed
// left its money in an account refusing every transfer and every close). Real MariaDB x2 and etcd.
// 1. the real case: etcd paused (SIGSTOP) while the opening runs, so its answer is 202 in_doubt; once the resolver
//    settled the transfer, the account is open (committed) or failed (aborted), matching GET /transactions/:id.
// 2. both outcomes on purpose: rows left 'opening' after boot naming a committed transfer, and a transfer id nothing
//    durable knows (presumed abort), become 'open' and 'failed'.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 50, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", "settle/", "--resolver-interval-ms", "300", "--etcd-timeout-ms", "800", "--vote-timeout-ms", "3000"]);
}, 120_000);

afterAll(async () => {
  try {
    process.kill(cluster.etcd.pid, "SIGCONT");
  } catch {}
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
}, 60_000);

async function until<T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const statusOf = async (shard: string, id: number): Promise<string> =>
  (await request(server.url, "GET", `/accounts?shard=${shard}&cursor=${id - 1}&limit=1`)).body.accounts[0].status;

describe("openings settled without a retry", () => {
  it("an opening answered in_doubt (etcd paused) ends open or failed as its transfer did", async () => {
    const body = { shard_id: "shard-b", account_id: 7_777, opening_balance: "10.00", funding: { shard_id: "shard-a", account_id: 1 }, idempotency_key: "doubt-1" };
    process.kill(cluster.etcd.pid, "SIGSTOP");
    let r;
    try {
      r = await request(server.url, "POST", "/accounts", { json: body });
    } finally {
      process.kill(cluster.etcd.pid, "SIGCONT");
    }
    expect(r.status).toBe(202);
    const tx: string = r.body.opening_tx;
    const settled = await until(
      "the resolver to settle the opening transfer",
      async () => {
        const t = await request(server.url, "GET", `/transactions/${tx}`);
        const s = t.body?.status ?? t.body?.outcome?.status;
        return s === "committed" || s === "aborted" ? (s as string) : undefined;
      },
      20_000,
    );
    const want = settled === "committed" ? "open" : "failed";
    expect(await until("the account to settle", async () => ((await statusOf("shard-b", 7_777)) === want ? want : undefined), 10_000)).toBe(want);
  }, 60_000);

  it("rows left 'opening' after boot: a committed transfer makes the account open, one nothing knows failed", async () => {
    // A committed transfer (not an opening's: the row below names it, as a crash between commit and update leaves it).
    const t = await request(server.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: 5, delta: -1 }, { shard_id: "shard-b", account_id: 55, delta: 1 }] } });
    expect(t.status).toBe(200);
    const root = await cluster.shard("shard-b").connect();
    try {
      await root.query("INSERT INTO accounts (id, status, opening_tx, opening_protocol) VALUES (8001, 'opening', ?, ?), (8002, 'opening', ?, ?)", [t.body.tx, t.body.protocol, randomUUID(), t.body.protocol]);
    } finally {
      await root.end();
    }
    expect(await until("8001 open", async () => ((await statusOf("shard-b", 8_001)) === "open" ? true : undefined), 10_000)).toBe(true);
    expect(await until("8002 failed", async () => ((await statusOf("shard-b", 8_002)) === "failed" ? true : undefined), 10_000)).toBe(true);
  }, 60_000);
});
