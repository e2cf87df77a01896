// A closed account takes no money, whichever coordinator node a transfer goes through (found by an audit: the
// 'closed' state lived only in the catalog of the process that closed it, and the branches' statements did not check
// it, so a transfer through a second node credited a closed account). Two in-process nodes (n1, n2) over two real
// MariaDB shards and etcd: the account is emptied and closed through n1, then each protocol tries to credit it
// through n2. Every try is refused or aborted, the account stays at zero, money is conserved; a
// transfer between open accounts through n2 still commits (the check refuses only what it must).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, serverOn } from "../runtime/support.ts";

let cluster: TestCluster;
let n1: RunningServer;
let n2: RunningServer;
const FLAGS = ["--etcd-prefix", "closed-nodes/"];

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 2 });
  n1 = await serverOn(cluster, [...FLAGS, "--node", "n1"]);
  n2 = await serverOn(cluster, [...FLAGS, "--node", "n2"]);
}, 120_000);

afterAll(async () => {
  closeAgents();
  await n2?.close(1_000);
  await n1?.close(1_000);
  await cluster?.stop();
}, 60_000);

const transfer = (url: string, ops: Array<[string, number, number]>, protocol: string) =>
  request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })), protocol } });

describe("a closed account takes no money through another node", () => {
  it("closed through n1, credited through n2 under every protocol (cross-shard and one-shard): refused or aborted, nothing moves", async () => {
    expect((await transfer(n1.url, [["shard-a", 7, -100_000], ["shard-b", 107, 100_000]], "2pc")).status).toBe(200);
    expect((await request(n1.url, "POST", "/accounts/shard-a/7/close")).status).toBe(200);
    for (const protocol of ["2pc", "parallel", "speculative"]) {
      // Cross-shard (XA or speculative applies) and one-shard (the one-phase path) credits into the closed account.
      for (const from of [["shard-b", 108], ["shard-a", 8]] as const) {
        const t = await transfer(n2.url, [[from[0], from[1], -500], ["shard-a", 7, 500]], protocol);
        expect(t.status, `${protocol} credit from ${from.join(":")}: ${JSON.stringify(t.body)}`).toBe(409);
        expect(t.body.status, protocol).toBe("aborted");
      }
    }
    // The open accounts around it still move money through n2.
    expect((await transfer(n2.url, [["shard-b", 108, -500], ["shard-a", 8, 500]], "speculative")).status).toBe(200);
    expect((await transfer(n2.url, [["shard-b", 108, -500], ["shard-a", 8, 500]], "2pc")).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
    expect(await balance(cluster, "shard-a", 7)).toBe(0n);
    expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
  });
});
