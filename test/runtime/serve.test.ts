// `speccommit serve` as a child process, the way the benchmark and the crash
// tests start it: given a cluster.json and port 0, it prints the URL it
// listens on, serves, and exits 0 on SIGTERM after finishing its work. Also:
// a server starts while a shard or etcd is down and serves once they are back.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, xaRecover, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "./support.ts";

const BIN = new URL("../../bin/speccommit.js", import.meta.url).pathname;
const LISTEN_WAIT_MS = 30_000;

let cluster: TestCluster;
let dir: string;
let clusterFile: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
  dir = mkdtempSync(join(tmpdir(), "speccommit-serve-"));
  clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
});

afterAll(async () => {
  closeAgents();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `speccommit serve` and resolves with its URL once it printed the listening line. */
function serve(args: string[]): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--auth", "none", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve did not listen within ${LISTEN_WAIT_MS} ms:\n${out}`));
    }, LISTEN_WAIT_MS);
    child.stdout!.on("data", () => {
      const m = /speccommit: listening on (\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, output: () => out });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${out}`));
    });
  });
}

describe("speccommit serve: as a child process, starting with parts of the cluster down", () => {
  it("connects to a cluster.json on a free port, transfers, and exits 0 on SIGTERM", async () => {
    const { child, url, output } = await serve(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "child/"]);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const r = await request(url, "POST", "/transfer", {
        json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: "-1.00" }, { shard_id: "shard-b", account_id: 101, delta: "1.00" }] },
      });
      expect(r.body).toMatchObject({ status: "committed" });
      expect(output()).toContain(`curl -s -X POST ${url}/transfer`);
      // --auth none (this helper passes it) is said loudly.
      expect(output()).toMatch(/AUTHENTICATION IS OFF \(--auth none\)/);
      expect((await request(url, "GET", "/ready")).status).toBe(200);
    } finally {
      closeAgents();
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(output()).toContain("speccommit: stopped");
  });

  it("on SIGTERM lets a running transfer finish and answer before it exits", async () => {
    const { child, url, output } = await serve(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "child2/"]);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // A row lock held here keeps the transfer in its exec phase while the signal arrives.
    const holder = await cluster.shard("shard-a").connect();
    await holder.query("START TRANSACTION");
    await holder.query("SELECT balance FROM accounts WHERE id = 2 FOR UPDATE");
    const running = request(url, "POST", "/transfer", {
      json: { ops: [{ shard_id: "shard-a", account_id: 2, delta: "-1.00" }, { shard_id: "shard-b", account_id: 102, delta: "1.00" }] },
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await holder.query("ROLLBACK");
    expect((await running).body).toMatchObject({ status: "committed" });
    closeAgents();
    expect(await exited).toBe(0);
    expect(output()).toMatch(/SIGTERM: finishing running transactions[\s\S]*speccommit: stopped/);
  });

  it("on SIGTERM past shutdown_grace_ms gives up a stuck transfer, closes its connections and exits 0", async () => {
    const { child, url } = await serve(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "child3/", "--shutdown-grace-ms", "200"]);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const holder = await cluster.shard("shard-a").connect();
    await holder.query("START TRANSACTION");
    await holder.query("SELECT balance FROM accounts WHERE id = 5 FOR UPDATE");
    const stuck = request(url, "POST", "/transfer", {
      json: { ops: [{ shard_id: "shard-a", account_id: 5, delta: "-1.00" }, { shard_id: "shard-b", account_id: 105, delta: "1.00" }] },
    }).catch((e: Error) => e);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t0 = Date.now();
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    // Well before innodb_lock_wait_timeout (3 s) would have freed the transfer.
    expect(Date.now() - t0).toBeLessThan(2_000);
    await stuck;
    closeAgents();
    await holder.query("ROLLBACK");
    // Its branch was not prepared: the server rolled it back when the connection closed.
    expect(await xaRecover(holder)).toEqual([]);
  });

  it.each([
    [["--port", "99999"], /--port: 99999 is not allowed .*expected an integer from 0 to 65535/],
    [["--resolver-interval-ms", "soon"], /--resolver-interval-ms: "soon" is not allowed/],
    [["--colour", "red"], /unknown option "--colour"/],
    [["--shards", "shard-a=127.0.0.1:1"], /--shards and --etcd go together/],
    [["--cluster-file", "nowhere.json"], /authentication is not configured: give --tokens-file <file> .*or --auth none/],
    [["--cluster-file", "nowhere.json", "--tokens-file", "/nonexistent/tokens"], /ENOENT.*\/nonexistent\/tokens/],
  ])("refuses %j with exit 2 and a message naming the setting", (args, message) => {
    const r = spawnSync(process.execPath, [BIN, "serve", ...args], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it("names the environment variable when that is where a wrong value came from", () => {
    const r = spawnSync(process.execPath, [BIN, "serve"], { encoding: "utf8", timeout: 30_000, env: { ...process.env, SPECCOMMIT_IN_FLIGHT_MAX: "0" } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/SPECCOMMIT_IN_FLIGHT_MAX: 0 is not allowed \(Expected a value between 1 and 100000\)/);
  });

  it("starts while a shard is down, answers 503 for transfers naming it, and serves them once it is back", async () => {
    const shardB = cluster.shard("shard-b").db;
    await shardB.kill9();
    const server = await serverOn(cluster, ["--etcd-prefix", "down/", "--statement-timeout-ms", "1000"]);
    try {
      const body = { ops: [{ shard_id: "shard-a", account_id: 3, delta: "-1.00" }, { shard_id: "shard-b", account_id: 103, delta: "1.00" }] };
      const refused = await request(server.url, "POST", "/transfer", { json: body });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatch(/shard-b did not answer whether its accounts 103 exist/);
      expect((await request(server.url, "GET", "/ready")).status).toBe(503);
      await shardB.restart();
      let r = refused;
      for (let i = 0; i < 50 && r.status === 503; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        r = await request(server.url, "POST", "/transfer", { json: body });
      }
      expect(r.body).toMatchObject({ status: "committed" });
    } finally {
      closeAgents();
      await server.close(1_000);
    }
  });

  it("starts while etcd is down, refuses transfers until it has an epoch, then serves them", async () => {
    await cluster.etcd.kill9();
    const server = await serverOn(cluster, ["--etcd-prefix", "etcd-down/", "--etcd-timeout-ms", "200", "--resolver-interval-ms", "100"]);
    try {
      const body = { ops: [{ shard_id: "shard-a", account_id: 4, delta: "-1.00" }, { shard_id: "shard-b", account_id: 104, delta: "1.00" }] };
      const refused = await request(server.url, "POST", "/transfer", { json: body });
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatch(/no epoch yet/);
      expect((await request(server.url, "GET", "/ready")).body).toMatchObject({ ready: false, etcd: false, epoch: null });
      await cluster.etcd.restart();
      let r = refused;
      for (let i = 0; i < 50 && r.status === 503; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        r = await request(server.url, "POST", "/transfer", { json: body });
      }
      expect(r.body).toMatchObject({ status: "committed" });
    } finally {
      closeAgents();
      await server.close(1_000);
    }
  });
});
