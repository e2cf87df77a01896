// `speccommit cluster up|down|status` run as a real child process, the way a
// user runs it: servers it starts are detached and outlive the command.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server } from "node:net";
import { fileURLToPath } from "node:url";
import { Etcd3 } from "etcd3";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { onExitAfterKill, pidAlive, sleep, Supervised } from "../../runtime/cluster/child.ts";
import { down, readClusterFile, type ClusterFile, type ClusterStatus } from "../../runtime/cluster/cluster.ts";
import { DATABASE, shardTotalCents } from "../../runtime/cluster/schema.ts";

const BIN = fileURLToPath(new URL("../../bin/speccommit.js", import.meta.url));
const CLI_TIMEOUT_MS = 90_000;
const PID_GONE_WAIT_MS = 10_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, "cluster", ...args], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitPidGone(pid: number): Promise<void> {
  const deadline = Date.now() + PID_GONE_WAIT_MS;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} still alive after ${PID_GONE_WAIT_MS} ms`);
    await sleep(20);
  }
}

let dir: string;

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port }, () => resolve(server));
  });
}

function clusterFile(): ClusterFile {
  const file = readClusterFile(dir);
  if (file === undefined) throw new Error(`no cluster.json in ${dir}`);
  return file;
}

async function statusJson(): Promise<{ run: Run; status: ClusterStatus }> {
  const run = await cli("status", "--dir", dir, "--json");
  return { run, status: JSON.parse(run.stdout) as ClusterStatus };
}

/** Last resort if this worker dies before afterAll: the CLI's servers are detached and would outlive it. */
function killRecordedServers(): void {
  const file = readClusterFile(dir);
  if (file === undefined) return;
  const servers = [...file.shards.map((s) => Supervised.attach(s.pid, `--datadir=${s.dataDir}`)), Supervised.attach(file.etcd.pid, file.etcd.dataDir)];
  for (const server of servers) server?.signal("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}

let cancelExitKill: () => void;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "speccommit-cli-"));
  cancelExitKill = onExitAfterKill(killRecordedServers);
});

afterAll(async () => {
  // The servers are detached on purpose, so a failed test must stop them here.
  if (readClusterFile(dir) !== undefined) await down({ dir });
  rmSync(dir, { recursive: true, force: true });
  cancelExitKill();
});

describe("speccommit cluster (CLI)", () => {
  it("starts a cluster, then reuses it on a second up", async () => {
    const first = await cli("up", "--dir", dir, "--shards", "2", "--accounts", "100", "--balance-cents=2500");
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("started shard-a, shard-b, etcd");
    const started = clusterFile();
    expect(started.seed).toEqual({ shards: 2, accountsPerShard: 100, balanceCents: 2500 });
    expect(started.shards.map((s) => [s.name, s.firstAccountId, s.lastAccountId])).toEqual([
      ["shard-a", 1, 100],
      ["shard-b", 101, 200],
    ]);

    const { run, status } = await statusJson();
    expect(run.code).toBe(0);
    expect(status.components.map((c) => [c.name, c.state, c.pid, c.port])).toEqual([
      ...started.shards.map((s) => [s.name, "up", s.pid, s.port]),
      ["etcd", "up", started.etcd.pid, started.etcd.clientPort],
    ]);

    const second = await cli("up", "--dir", dir);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain("reused shard-a, shard-b, etcd");
    expect(second.stdout).not.toContain("started");
    const reused = clusterFile();
    expect(reused.shards).toEqual(started.shards);
    expect(reused.etcd).toEqual(started.etcd);

    let total = 0n;
    for (const s of reused.shards) {
      const conn = await mysql.createConnection({ host: "127.0.0.1", port: s.port, user: "root", database: DATABASE, supportBigNumbers: true, bigNumberStrings: true });
      total += await shardTotalCents(conn);
      await conn.end();
    }
    expect(total).toBe(2n * 100n * 2500n);

    const etcd = new Etcd3({ hosts: reused.etcd.clientUrl, dialTimeout: 2_000 });
    await etcd.put("speccommit/cli-test").value("kept");
    etcd.close();
  });

  it("adopts servers running on its data directories when cluster.json is gone (an up killed half-way)", async () => {
    const before = clusterFile();
    rmSync(join(dir, "cluster.json"));
    const run = await cli("up", "--dir", dir, "--shards", "2", "--accounts", "100", "--balance-cents", "2500");
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("reused shard-a, shard-b, etcd");
    const after = clusterFile();
    expect(after.shards).toEqual(before.shards);
    expect(after.etcd).toEqual(before.etcd);
  });

  it("refuses to change the seed parameters of an existing cluster", async () => {
    const run = await cli("up", "--dir", dir, "--shards", "3");
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("created with shards (--shards) 2, not 3");
    expect(run.stderr).toContain(`rm -rf ${dir}`);
  });

  it("restarts only the server that died, on its port, keeping its data", async () => {
    const before = clusterFile();
    const victim = before.shards[1];
    if (victim === undefined) throw new Error("cluster.json lists fewer than 2 shards");
    process.kill(victim.pid, "SIGKILL");
    await waitPidGone(victim.pid);
    const { run: degraded, status } = await statusJson();
    expect(degraded.code).toBe(3);
    expect(status.components.find((c) => c.name === victim.name)?.state).toBe("down");

    const run = await cli("up", "--dir", dir);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("started shard-b; reused shard-a, etcd");
    const after = clusterFile();
    expect(after.shards[1]?.port).toBe(victim.port);
    expect(after.shards[1]?.pid).not.toBe(victim.pid);
    const conn = await mysql.createConnection({ host: "127.0.0.1", port: victim.port, user: "root", database: DATABASE, supportBigNumbers: true, bigNumberStrings: true });
    expect(await shardTotalCents(conn)).toBe(100n * 2500n);
    await conn.end();
  });

  it("stops everything cleanly with down; status then says down", async () => {
    const before = clusterFile();
    const run = await cli("down", "--dir", dir);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("stopped shard-a, shard-b, etcd");
    for (const pid of [...before.shards.map((s) => s.pid), before.etcd.pid]) expect(pidAlive(pid)).toBe(false);
    const { run: statusRun, status } = await statusJson();
    expect(statusRun.code).toBe(3);
    expect(status.components.map((c) => c.state)).toEqual(["down", "down", "down"]);
    const again = await cli("down", "--dir", dir);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("already down: shard-a, shard-b, etcd");
  });

  it("after down, starts a server on a new port when another process took its old one, keeping its data", async () => {
    const before = clusterFile();
    const shardA = before.shards[0];
    if (shardA === undefined) throw new Error("cluster.json lists no shard");
    const blockers = await Promise.all([shardA.port, before.etcd.clientPort].map(listenOn));
    try {
      const run = await cli("up", "--dir", dir);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const after = clusterFile();
      expect(after.shards[0]?.port).not.toBe(shardA.port);
      expect(after.shards[1]?.port).toBe(before.shards[1]?.port);
      expect(after.etcd.clientPort).not.toBe(before.etcd.clientPort);
      expect(after.etcd.peerPort).toBe(before.etcd.peerPort);
      const conn = await mysql.createConnection({ host: "127.0.0.1", port: after.shards[0]?.port ?? 0, user: "root", database: DATABASE, supportBigNumbers: true, bigNumberStrings: true });
      expect(await shardTotalCents(conn)).toBe(100n * 2500n);
      await conn.end();
      const etcd = new Etcd3({ hosts: after.etcd.clientUrl, dialTimeout: 2_000 });
      expect(await etcd.get("speccommit/cli-test").string()).toBe("kept");
      etcd.close();
    } finally {
      await Promise.all(blockers.map((b) => new Promise((resolve) => b.close(resolve))));
    }
    expect((await cli("down", "--dir", dir)).code).toBe(0);
  });

  it("rejects bad flags with a message naming the flag and what is allowed", async () => {
    const cases: Array<[string[], string]> = [
      [["up", "--shards", "0"], "--shards must be an integer from 1 to 26 (got '0')"],
      [["up", "--accounts", "12.5"], "--accounts must be an integer from 1 to 10000000 (got '12.5')"],
      [["up", "--balance-cents", "-1"], "--balance-cents must be an integer from 0 to 1000000000000 (got '-1')"],
      [["up", "--balance-cents", "--dir", "x"], "--balance-cents needs a value"],
      [["up", "--balance-cents=1e3"], "--balance-cents must be an integer from 0 to 1000000000000 (got '1e3')"],
      [["up", "--shard", "2"], "unknown option '--shard' for 'cluster up' (allowed: --dir, --shards, --accounts, --balance-cents, --tls, --etcd-members, --coordinators, --first-port)"],
      [["up", "--etcd-members", "2"], "--etcd-members must be one of 1, 3, 5 (got 2)"],
      [["up", "--first-port", "9000"], "--first-port goes with --coordinators"],
      [["kill"], "cluster kill needs a NAME"],
      [["start", "etcd1", "--json"], "unknown option '--json' for 'cluster start' (allowed: --dir)"],
      [["down", "--json"], "unknown option '--json' for 'cluster down' (allowed: --dir)"],
      [["status", "--dir"], "--dir needs a value"],
      [["restart"], "unknown subcommand 'restart' (allowed: up, down, status, stop, kill, start)"],
    ];
    for (const [args, message] of cases) {
      const run = await cli(...args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toContain(message);
    }
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: speccommit cluster <up|down|status>");
  });

  it("says so when there is no cluster to stop or inspect", async () => {
    const empty = mkdtempSync(join(tmpdir(), "speccommit-empty-"));
    try {
      const stop = await cli("down", "--dir", empty);
      expect(stop.code).toBe(1);
      expect(stop.stderr).toContain(`no cluster in ${empty}`);
      const status = await cli("status", "--dir", empty);
      expect(status.code).toBe(3);
      expect(status.stdout).toContain("speccommit cluster up --dir");
      expect(existsSync(join(empty, "cluster.json"))).toBe(false);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
