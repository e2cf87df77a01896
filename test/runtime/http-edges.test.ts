// HTTP conventions at the API edge, against a real server on two MariaDB shards and etcd (found by an audit of the
// API, each a class of answers): every 503 carries Retry-After whatever path answered it (here: etcd paused under an
// idempotent POST /transfer and a GET /transactions/:id the server must read from the log); HEAD answers where GET
// does; a method on a route that does not exist is 404, not 405; a transaction id naming a node that is not a member
// keeps nothing in the server (runtime/server.ts logOf keeps the members' log adapters only).
import http from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "./support.ts";

let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 20 });
  server = await serverOn(cluster, ["--etcd-prefix", "http-edges/", "--etcd-timeout-ms", "500"]);
}, 120_000);

afterAll(async () => {
  try {
    process.kill(cluster.etcd.pid, "SIGCONT");
  } catch {}
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
}, 60_000);

const ops = [
  { shard_id: "shard-a", account_id: 1, delta: -1 },
  { shard_id: "shard-b", account_id: 21, delta: 1 },
];

function raw(method: string, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("HTTP conventions", () => {
  it("every 503 carries Retry-After (etcd paused: an idempotent transfer's claim, a transaction read from the log)", async () => {
    process.kill(cluster.etcd.pid, "SIGSTOP");
    let claim, view;
    try {
      claim = await request(server.url, "POST", "/transfer", { json: { ops }, headers: { "Idempotency-Key": "edges-503" } });
      view = await request(server.url, "GET", "/transactions/n1.00000000-0000-4000-8000-000000000000");
    } finally {
      process.kill(cluster.etcd.pid, "SIGCONT");
    }
    expect([claim.status, view.status]).toEqual([503, 503]);
    expect(Number(claim.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(view.headers["retry-after"])).toBeGreaterThan(0);
  });

  it("HEAD answers where GET does, without a body; a method on a route that does not exist is 404", async () => {
    for (const path of ["/healthz", "/metrics", "/accounts/shard-a/1"]) {
      const [get, head] = [await raw("GET", path), await raw("HEAD", path)];
      expect(head.status, path).toBe(get.status);
      expect(head.headers["content-type"], path).toBe(get.headers["content-type"]);
      expect(head.body, path).toBe("");
    }
    const nope = await request(server.url, "POST", "/no-such-route", { json: {} });
    expect(nope.status).toBe(404);
    const wrong = await request(server.url, "DELETE", "/healthz");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe("GET, HEAD");
  });

  it("transaction ids naming made-up nodes keep nothing in the server", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const heap = () => (gc(), gc(), process.memoryUsage().heapUsed);
    const N = 2_000;
    const hit = async (name: (i: number) => string): Promise<number> => {
      const before = heap();
      for (let i = 0; i < N; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => request(server.url, "GET", `/transactions/${name(i + j)}.00000000-0000-4000-8000-000000000000`)));
      }
      return heap() - before;
    };
    await hit(() => "n9");
    const same = await hit(() => "n9");
    const distinct = await hit((i) => `zz${i}`);
    console.log(`${N} GETs of unknown ids: one node name +${(same / 1e6).toFixed(2)} MB, ${N} names +${(distinct / 1e6).toFixed(2)} MB (${((distinct - same) / N).toFixed(0)} B per name)`);
    // Kept per name before the fix: about 1,100 bytes.
    expect(distinct - same).toBeLessThan(N * 400);
  }, 120_000);
});
