// A retry with the idempotency key of a transfer that already ran is answered as it was, whatever became of its
// accounts since (found by an audit: the retry was checked against today's accounts first and answered 409 "closed"
// with no tx, which tells a client its transfer did not happen: it pays again under a new key). A new transfer into
// the closed account, with a new key or none, is still refused. Real MariaDB shards and etcd.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, serverOn } from "./support.ts";

let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000 });
  server = await serverOn(cluster, ["--etcd-prefix", "idem-closed/"]);
}, 120_000);

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
}, 60_000);

const ops = (pairs: Array<[string, number, number]>) => pairs.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta }));

describe("idempotent retries after an account closed", () => {
  for (const protocol of ["2pc", "parallel", "speculative"] as const) {
    it(`${protocol}: the retry replays the committed answer; a new transfer into the closed account is refused`, async () => {
      const base = { "2pc": 20, parallel: 30, speculative: 40 }[protocol];
      const body = { ops: ops([["shard-b", 100 + base, -700], ["shard-a", base, 700]]), idempotency_key: `closed-${protocol}`, protocol };
      const first = await request(server.url, "POST", "/transfer", { json: body });
      expect(first.status).toBe(200);
      // Empty shard-a:<base> and close it (a speculative credit is spendable once released, just after the answer).
      const empty = { ops: ops([["shard-a", base, -100_700], ["shard-b", 101 + base, 100_700]]) };
      let emptied = await request(server.url, "POST", "/transfer", { json: empty });
      for (let i = 0; i < 50 && emptied.status === 409 && emptied.body?.reason === "insufficient_funds"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        emptied = await request(server.url, "POST", "/transfer", { json: empty });
      }
      expect(emptied.status).toBe(200);
      expect((await request(server.url, "POST", `/accounts/shard-a/${base}/close`)).status).toBe(200);
      const retry = await request(server.url, "POST", "/transfer", { json: body });
      expect(retry.status).toBe(200);
      expect(retry.body).toMatchObject({ tx: first.body.tx, status: "committed", replayed: true });
      const fresh = await request(server.url, "POST", "/transfer", { json: { ...body, idempotency_key: `closed-${protocol}-new` } });
      expect(fresh.status).toBe(409);
      expect(fresh.body.error).toMatch(/closed/);
      const none = await request(server.url, "POST", "/transfer", { json: { ops: body.ops, protocol } });
      expect(none.status).toBe(409);
      expect(await balance(cluster, "shard-a", base)).toBe(0n);
    });
  }
});
