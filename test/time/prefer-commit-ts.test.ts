// `Prefer: commit-ts` (RFC 7240) on POST /transfer: the answer waits (bounded) until the commit timestamp is durable
// and tells it on every path, the speculative one included, whose answer otherwise tells none (it is decided before
// its SPEC_EXECUTING record is written: docs/protocols/timestamps.md "The timestamp told"). A read at the told
// timestamp sees the transfer (read-your-writes). Real MariaDB shards and etcd.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prefersCommitTs, type RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 50, balanceCents: 100_000 });
  server = await serverOn(cluster, ["--etcd-prefix", "prefer-ts/"]);
}, 120_000);

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
}, 60_000);

const body = (protocol: string, to: number) => ({ protocol, ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: to, delta: 100 }] });

describe("Prefer: commit-ts", () => {
  it("parses the header as RFC 7240 says", () => {
    expect(prefersCommitTs("commit-ts")).toBe(true);
    expect(prefersCommitTs("respond-async, Commit-TS; x=1")).toBe(true);
    expect(prefersCommitTs(["wait=5", "commit-ts"])).toBe(true);
    expect(prefersCommitTs("commit-tsx")).toBe(false);
    expect(prefersCommitTs(undefined)).toBe(false);
  });

  for (const protocol of ["speculative", "2pc", "parallel"]) {
    it(`${protocol}: the answer tells a durable commit timestamp, and a read at it sees the transfer`, async () => {
      const to = { speculative: 51, "2pc": 52, parallel: 53 }[protocol]!;
      const before = await request(server.url, "GET", `/snapshot?accounts=shard-b:${to}`);
      const a = await request(server.url, "POST", "/transfer", { json: body(protocol, to), headers: { Prefer: "commit-ts" } });
      expect(a.status).toBe(200);
      expect(a.headers["preference-applied"]).toBe("commit-ts");
      expect(a.body.commit_ts).toMatch(/^\d+$/);
      const at = await request(server.url, "GET", `/snapshot?at=${a.body.commit_ts}&accounts=shard-b:${to}`);
      expect(at.status).toBe(200);
      expect(BigInt(at.body.accounts[0].balance_cents)).toBe(BigInt(before.body.accounts[0].balance_cents) + 100n);
    });
  }

  it("without it, the speculative answer tells no timestamp (it does not wait for the txlog)", async () => {
    const a = await request(server.url, "POST", "/transfer", { json: body("speculative", 54) });
    expect(a.status).toBe(200);
    expect(a.body.commit_ts).toBeUndefined();
    expect(a.headers["preference-applied"]).toBeUndefined();
  });
});
