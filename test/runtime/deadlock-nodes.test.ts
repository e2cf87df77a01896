// The cross-shard deadlock detector with two coordinator nodes (`--node n1`, `--node n2`, in-process servers over the
// same etcd prefix and four real MariaDB shards): a cycle whose transactions belong to different nodes. Each node knows
// only its own sessions; without the exchange of runtime/deadlock.ts (EtcdPeerSessions), each would see the other's
// sessions on two shards as two unrelated graph nodes, no cycle, and the cycle would last until
// innodb_lock_wait_timeout. With it, exactly one victim is interrupted, by its own node, answered aborted / deadlock;
// the others commit; money is conserved.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { closeAgents, serverOn } from "./support.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { buildCycle, until } from "./deadlock-cycle.ts";
import { parsePeerEntry } from "../../runtime/deadlock.ts";

const LOCK_WAIT_TIMEOUT_S = 10;
const FLAGS = ["--deadlock-interval-ms", "120", "--vote-timeout-ms", "60000", "--statement-timeout-ms", "60000", "--etcd-prefix", "dln/"];
let cluster: TestCluster;
let nodes: RunningServer[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 4, accountsPerShard: 400, lockWaitTimeoutS: LOCK_WAIT_TIMEOUT_S });
  nodes = [await serverOn(cluster, [...FLAGS, "--node", "n1"]), await serverOn(cluster, [...FLAGS, "--node", "n2"])];
  // Each node must know the other is a member before a cycle is built (only then do they exchange sessions).
  await until("both nodes to see each other as members", () => nodes.every((n) => (n.failover.otherMembers()?.length ?? 0) === 1), 20_000);
}, 120_000);

afterAll(async () => {
  for (const n of nodes) await n.close(1_000);
  closeAgents();
  await cluster?.stop();
}, 60_000);

describe("cross-shard deadlocks through two coordinator nodes", () => {
  for (const k of [2, 3, 4]) {
    it(`breaks a ${k}-way cycle whose transactions alternate between n1 and n2: one victim (aborted / deadlock), interrupted by its own node`, async () => {
      const before = nodes.map((n) => n.deadlocks!.stats.victims);
      const r = await buildCycle(cluster, (i) => nodes[i % 2]!.url, k, 10 * k);
      const statuses = r.answers.map((a) => `${a.status} ${a.body?.status}${a.body?.reason !== undefined ? `/${a.body.reason}` : ""}`);
      console.log(`${k}-way over 2 nodes: ${statuses.join(", ")}; cycle to victim's answer ${r.resolution_ms?.toFixed(1)} ms (innodb_lock_wait_timeout ${LOCK_WAIT_TIMEOUT_S} s here)`);
      expect(statuses.filter((s) => s === "409 aborted/deadlock")).toHaveLength(1);
      expect(statuses.filter((s) => s === "200 committed")).toHaveLength(k - 1);
      // The victim was interrupted by the node that coordinates it, and only once across both nodes.
      const victim = r.answers.findIndex((a) => a.body?.status === "aborted");
      const byNode = nodes.map((n, j) => n.deadlocks!.stats.victims - before[j]!);
      expect(byNode.reduce((a, b) => a + b, 0)).toBe(1);
      expect(byNode[victim % 2]).toBe(1);
      // Resolved by the detector, well before the lock wait timeout would have.
      expect(r.resolution_ms!).toBeLessThan(LOCK_WAIT_TIMEOUT_S * 1000 * 0.5);
      await until("every coordinator to finish", () => nodes.every((n) => n.engine.inFlight === 0));
      expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
      expect(nodes.some((n) => n.deadlocks!.stats.peer_sessions > 0)).toBe(true);
    }, 40_000);
  }
});

describe("parsePeerEntry: what another node published is checked field by field", () => {
  it("accepts a well-formed entry and refuses anything else", () => {
    const ok = { at: 1, sessions: [{ shard: "shard-a", thread: 7, tx: "n2.x", facts: { decided: false, preparedEverywhere: false } }, { shard: "shard-b", thread: 9, tx: "n2.y" }] };
    expect(parsePeerEntry(JSON.stringify(ok))).toEqual(ok);
    for (const bad of ["", "null", "[]", '{"at":"1","sessions":[]}', '{"at":1}', '{"at":1,"sessions":[{"shard":"a","thread":1.5,"tx":"t"}]}', '{"at":1,"sessions":[{"shard":"a","thread":1,"tx":"t","facts":{"decided":"no","preparedEverywhere":false}}]}']) {
      expect(parsePeerEntry(bad), bad).toBeNull();
    }
  });
});
