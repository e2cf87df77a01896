// Membership shrinks (spec/failover/forget.ts; found by an audit: members/<node> was never deleted, so a node that
// ran once was watched, owned and waited for by every other node for ever: snapshots held back, a resolver per dead
// node, a deadlock-detector turn wasted). Two in-process nodes over real MariaDB and etcd:
//   - n2 stopped cleanly with nothing in doubt leaves the members at once; n1 keeps serving snapshots, owns nothing;
//   - n3 whose lease is abandoned (a process that hangs or died) is taken over by n1, which settles it (nothing was
//     in doubt), then forgets it: members/n3 and owners/n3 deleted, no resolver left for it; n3 back registers again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

const PREFIX = "leave/";
const FLAGS = ["--etcd-prefix", PREFIX, "--lease-ttl-ms", "2000", "--resolver-interval-ms", "300"];
let cluster: TestCluster;
let n1: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 20 });
  n1 = await serverOn(cluster, [...FLAGS, "--node", "n1"]);
}, 120_000);

afterAll(async () => {
  closeAgents();
  await n1?.close(1_000);
  await cluster?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const members = async (): Promise<string[]> => (await cluster.etcdClient().getAll().prefix(`${PREFIX}members/`).keys()).map((k) => k.slice(`${PREFIX}members/`.length)).sort();
const owners = async (): Promise<string[]> => (await cluster.etcdClient().getAll().prefix(`${PREFIX}owners/`).keys()).sort();

async function until(what: string, cond: () => Promise<boolean> | boolean, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("nodes leave the members", () => {
  it("a clean stop with nothing in doubt leaves at once; snapshots on the other node are served", async () => {
    const n2 = await serverOn(cluster, [...FLAGS, "--node", "n2"]);
    await until("n1 to see n2", () => (n1.failover.otherMembers() ?? []).includes("n2"), 10_000);
    expect(await members()).toEqual(["n1", "n2"]);
    await n2.close(1_000);
    expect(await members()).toEqual(["n1"]);
    await until("n1 to see n2 gone", () => (n1.failover.otherMembers() ?? ["?"]).length === 0, 10_000);
    const snap = await request(n1.url, "GET", "/snapshot");
    expect(snap.status).toBe(200);
    expect(n1.failover.owning).toEqual([]);
  }, 60_000);

  it("a dead node is taken over, settled, then forgotten (members and claim deleted); back, it registers again", async () => {
    const n3 = await serverOn(cluster, [...FLAGS, "--node", "n3"]);
    await until("n1 to see n3", () => (n1.failover.otherMembers() ?? []).includes("n3"), 10_000);
    const t = await request(n3.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: -5 }, { shard_id: "shard-b", account_id: 21, delta: 5 }] } });
    expect(t.status).toBe(200);
    // As a process that hangs: its lease is no longer kept alive and expires; then it is gone.
    n3.failover.abandonLease();
    await n3.close(1_000).catch(() => undefined);
    // What a node killed -9 leaves of its deadlock detector (a clean stop deletes it): deleted when it is forgotten.
    await cluster.etcdClient().put(`${PREFIX}deadlock/n3`).value(JSON.stringify({ at: Date.now(), sessions: [] }));
    await until("n1 to forget n3", async () => !(await members()).includes("n3"), 30_000);
    expect(await owners()).toEqual([]);
    expect(await cluster.etcdClient().get(`${PREFIX}deadlock/n3`).string()).toBeNull();
    await until("n1 to drop its resolver of n3", () => n1.failover.owning.length === 0 && !(n1.failover.otherMembers() ?? ["n3"]).includes("n3"), 10_000);
    expect((await request(n1.url, "GET", "/snapshot")).status).toBe(200);
    // Back (a new process with the same name): a member again, watched again.
    const back = await serverOn(cluster, [...FLAGS, "--node", "n3"]);
    try {
      expect(await members()).toEqual(["n1", "n3"]);
      await until("n1 to see n3 again", () => (n1.failover.otherMembers() ?? []).includes("n3"), 10_000);
    } finally {
      await back.close(1_000);
    }
  }, 90_000);
});
