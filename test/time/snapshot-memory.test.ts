// GET /snapshot (no accounts=) must not hold every account in the server (found by an audit: it read every
// account's balance into a Map and summed in JS, about 260 bytes per account, unbounded). The total is summed by each
// shard (runtime/snapshot.ts totalStatements): here over 2 x 100,000 accounts the server's heap, sampled every 2 ms
// while the read runs, must rise by less than 8 MB, and the total must be exact (the seeded total, with speculative
// credits pending and unstamped history rows counted as the per-account formula counts them: checked against a
// named-accounts read of the same accounts). Real MariaDB and etcd.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

const ACCOUNTS = 100_000;
let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: ACCOUNTS, balanceCents: 100 });
  server = await serverOn(cluster, ["--etcd-prefix", "snapmem/"]);
}, 180_000);

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
}, 60_000);

describe("GET /snapshot over many accounts", () => {
  it("sums on the shards: bounded memory in the server, the exact total", async () => {
    const a = cluster.shards[0]!;
    const b = cluster.shards[1]!;
    // Some committed transfers of every protocol, so the history has rows to subtract past the read's timestamp.
    for (const protocol of ["2pc", "parallel", "speculative"]) {
      const t = await request(server.url, "POST", "/transfer", { json: { protocol, ops: [{ shard_id: a.name, account_id: a.firstAccountId + 5, delta: -30 }, { shard_id: b.name, account_id: b.firstAccountId + 7, delta: 30 }] } });
      expect(t.status).toBe(200);
    }
    await request(server.url, "GET", "/snapshot"); // warm up
    let peak = 0;
    const base = process.memoryUsage().heapUsed;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed - base)), 2);
    const r = await request(server.url, "GET", "/snapshot");
    clearInterval(sampler);
    console.log(`GET /snapshot over ${2 * ACCOUNTS} accounts: ${r.status}, heap rose by up to ${(peak / 1e6).toFixed(1)} MB while it ran`);
    expect(r.status).toBe(200);
    expect(r.body.total_cents).toBe(String(cluster.seededTotalCents));
    expect(r.body.shards[a.name]).toEqual({ total_cents: String(BigInt(ACCOUNTS) * 100n - 30n * 3n), accounts: ACCOUNTS });
    expect(peak).toBeLessThan(8e6);
    // The two accounts the transfers touched, read by name at the same timestamp, agree with the totals' formula.
    const named = await request(server.url, "GET", `/snapshot?at=${r.body.at}&accounts=${a.name}:${a.firstAccountId + 5},${b.name}:${b.firstAccountId + 7}`);
    expect(named.body.accounts.map((x: { balance_cents: string }) => x.balance_cents)).toEqual(["10", "190"]);
  }, 120_000);
});
