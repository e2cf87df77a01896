// Concluding by hand (POST /admin/transactions/:id/conclude, spec/server/conclude.ts) on a real server over real
// MariaDB and etcd: a committed transaction is never rolled back by hand; one left in doubt by a coordinator
// killed -9 between prepare and decision is handed to the resolver, and the operator hears what the protocol
// decided (presumed abort: a commit asked for is refused with why), every answer counted in the metrics.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conclude, afterScan } from "../../spec/server/conclude.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { preparedBranches } from "../../runtime/bench/audit.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, inDoubtAfterKill9, request, serverOn } from "./support.ts";

const PREFIX = "conclude/";
let cluster: TestCluster;
let server: RunningServer;
let dir: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", PREFIX]);
  dir = mkdtempSync(join(tmpdir(), "speccommit-conclude-"));
});

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const concludeUrl = (tx: string) => `/admin/transactions/${tx}/conclude`;

describe("the verdicts (spec/server/conclude.ts)", () => {
  it("follows durable state: the same direction is final, the other refused, in doubt goes to the resolver, nothing found is unknown", () => {
    expect(conclude({ status: "committed" }, "commit")).toEqual({ t: "final", outcome: "committed" });
    expect(conclude({ status: "committed" }, "rollback")).toMatchObject({ t: "refused", outcome: "committed" });
    expect(conclude({ status: "aborted", reason: "resolver" }, "commit")).toMatchObject({ t: "refused", outcome: "aborted" });
    expect(conclude({ status: "in_doubt" }, "commit")).toEqual({ t: "resolve" });
    expect(conclude(null, "rollback")).toEqual({ t: "unknown" });
    // After a scan, nothing left of a transaction that was in doubt: rolled back and forgotten.
    expect(afterScan(null, "commit")).toEqual({ outcome: { status: "aborted", reason: "resolver" }, matches: false });
    // The mutant the server model catches takes the operator's word.
    expect(conclude({ status: "committed" }, "rollback", "conclude-as-asked")).toEqual({ t: "final", outcome: "aborted" });
  });
});

describe("POST /admin/transactions/:id/conclude", () => {
  it("refuses to roll back a committed transfer, says final to commit, and refuses bad requests", async () => {
    const t = await request(server.url, "POST", "/transfer", {
      json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: 101, delta: 100 }], protocol: "2pc" },
    });
    expect(t.status).toBe(200);
    const tx = String(t.body.tx);
    for (let i = 0; i < 500 && server.engine.inFlight > 0; i++) await sleep(10);
    const before = [await balance(cluster, "shard-a", 1), await balance(cluster, "shard-b", 101)];
    const back = await request(server.url, "POST", concludeUrl(tx), { json: { direction: "rollback" } });
    expect(back.status).toBe(409);
    expect(back.body).toMatchObject({ tx, direction: "rollback", result: "refused", status: "committed" });
    expect(String(back.body.error)).toMatch(/commit is durable/);
    expect([await balance(cluster, "shard-a", 1), await balance(cluster, "shard-b", 101)]).toEqual(before);
    const same = await request(server.url, "POST", concludeUrl(tx), { json: { direction: "commit" } });
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ result: "final", status: "committed" });
    expect((await request(server.url, "POST", concludeUrl(tx), { json: { direction: "sideways" } })).status).toBe(400);
    expect((await request(server.url, "GET", concludeUrl(tx))).status).toBe(405);
    expect((await request(server.url, "POST", concludeUrl("no-such-tx"), { json: { direction: "rollback" } })).status).toBe(404);
  });

  it("a transaction in doubt after kill -9: the resolver concludes it as the protocol says, and the operator hears that", async () => {
    const before = [await balance(cluster, "shard-a", 2), await balance(cluster, "shard-b", 102)];
    const { tx, shards } = await inDoubtAfterKill9(cluster, {
      dir,
      prefix: PREFIX,
      ops: [{ shard_id: "shard-a", account_id: 2, delta: -100 }, { shard_id: "shard-b", account_id: 102, delta: 100 }],
    });
    // Nothing has scanned yet: both branches are still prepared. The decision the dead coordinator had sent may
    // have landed once etcd resumed (then the commit is durable) or not (then the protocol presumes abort).
    const durable = await request(server.url, "GET", `/transactions/${tx}`);
    const committed = durable.status === 200 && durable.body.status === "committed";
    if (!committed) expect(durable.body.status).toBe("in_doubt");
    // Asked for the direction the protocol does not take: refused before anything (committed), or handed to the
    // resolver, which presumes abort, and the answer says so.
    const wrong = await request(server.url, "POST", concludeUrl(tx), { json: { direction: committed ? "rollback" : "commit" } });
    expect(wrong.status, JSON.stringify(wrong.body)).toBe(409);
    expect(wrong.body.result).toBe(committed ? "refused" : "other");
    expect(wrong.body.status).toBe(committed ? "committed" : "aborted");
    if (committed) {
      const right = await request(server.url, "POST", concludeUrl(tx), { json: { direction: "commit" } });
      expect(right.status).toBe(200);
      expect(right.body).toMatchObject({ result: "final", status: "committed" });
    }
    expect(await preparedBranches(shards, XID_FORMAT_ID)).toEqual([]);
    const after = [await balance(cluster, "shard-a", 2), await balance(cluster, "shard-b", 102)];
    expect(after).toEqual(committed ? [before[0]! - 100n, before[1]! + 100n] : before);
    const metrics = String((await request(server.url, "GET", "/metrics")).body);
    // The first test refused one rollback; this one refused another (committed) or was told the other outcome.
    expect(metrics).toMatch(committed ? /speccommit_concludes_total\{direction="rollback",result="refused"\} 2/ : /speccommit_concludes_total\{direction="commit",result="other"\} 1/);
    expect(metrics).toMatch(/speccommit_concludes_total\{direction="commit",result="final"\} [1-9]/);
  }, 120_000);
});
