// A replayed answer names the protocol its transaction ran with (found by an audit: it named the protocol the
// replaying node would have chosen). Two coordinator nodes over one cluster with different --protocol defaults; a
// body that names no protocol runs with the default of the node it reaches, and its retry through the other node
// is the same transfer (the fingerprint takes the registry's default for a body that names none). Every pair of
// defaults is tried, the first request through either node. Real MariaDB shards and etcd.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { PROTOCOLS } from "../../spec/protocols/registry.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "./support.ts";

let cluster: TestCluster;
/** Per protocol, a node whose default it is (all on one etcd prefix: one cluster of coordinators). */
const nodes = new Map<string, RunningServer>();

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000 });
  let i = 1;
  for (const p of PROTOCOLS) nodes.set(p, await serverOn(cluster, ["--etcd-prefix", "idem-protocol/", "--node", `n${i++}`, "--protocol", p]));
}, 180_000);

afterAll(async () => {
  closeAgents();
  for (const n of nodes.values()) await n.close(1_000);
  await cluster?.stop();
}, 60_000);

describe("a replay names the protocol its transaction ran with", () => {
  it("whatever node replays it and whatever that node's default", async () => {
    let k = 0;
    for (const first of PROTOCOLS) {
      for (const second of PROTOCOLS) {
        k++;
        const body = {
          ops: [
            { shard_id: "shard-a", account_id: k, delta: -3 },
            { shard_id: "shard-b", account_id: 100 + k, delta: 3 },
          ],
          idempotency_key: `proto-${first}-${second}`,
        };
        const a = await request(nodes.get(first)!.url, "POST", "/transfer", { json: body });
        expect(a.status, JSON.stringify(a.body)).toBe(200);
        expect(a.body).toMatchObject({ protocol: first, replayed: false });
        const b = await request(nodes.get(second)!.url, "POST", "/transfer", { json: body });
        expect(b.status, JSON.stringify(b.body)).toBe(200);
        expect(b.body, `${first} then ${second}`).toMatchObject({ tx: a.body.tx, protocol: first, replayed: true });
      }
    }
  }, 120_000);
});
