/**
 * What a long run leaves behind (docs/operations.md, "Bounds"): a fresh
 * cluster, `speccommit serve` as a child process, N transfers each with its
 * own idempotency key from C clients in a closed loop, and every `--every`
 * transfers the server's resident memory (VmRSS from /proc) and etcd's
 * database (Maintenance.Status: dbSize is the file, dbSizeInUse the pages
 * holding data) with the number of keys under the server's prefix. The last
 * line is measured after compacting etcd to its current revision: what the
 * keys themselves take.
 *
 *   npx tsx runtime/bench/growth.ts [--transfers 20000] [--clients 32] [--every 2000] [--server-arg ARG ...] [--node-arg ARG ...]
 *
 * The server's V8 heap (from its /metrics) is printed too: `heap` is what the
 * heap holds, live or garbage not yet collected, of `of` MB it has taken.
 *
 *   node --expose-gc --import tsx runtime/bench/growth.ts --in-process [...]
 *
 * runs the server in this process instead and prints its live heap: what is
 * left after a full collection, i.e. what the server keeps (RSS is then that
 * of server and load together).
 *
 * Run the same file in a checkout of another commit to compare.
 */
import http from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import { Etcd3 } from "etcd3";
import { startEphemeralCluster, type EphemeralCluster } from "../cluster/cluster.ts";
import { loadConfig } from "../config.ts";
import { addressesOfCluster } from "../main.ts";
import { startServer } from "../server.ts";
import { startServerProcess } from "./server-process.ts";
import { runScript, UsageError } from "./cli.ts";

const PREFIX = "growth/";
const ACCOUNTS_PER_SHARD = 10_000;
const SHARDS = ["shard-a", "shard-b", "shard-c"] as const;
/** After the last transfer: the commit phases and forgetting finish, the server's heap settles. */
const SETTLE_MS = 5_000;

interface Options {
  transfers: number;
  clients: number;
  every: number;
  serverArgs: string[];
  nodeArgs: string[];
  inProcess: boolean;
}

const USAGE = `usage: npx tsx runtime/bench/growth.ts [--transfers N (20000)] [--clients N (32)] [--every N (2000)] [--server-arg ARG ...] [--node-arg ARG ...] [--in-process]`;

function parse(argv: readonly string[]): Options {
  const o: Options = { transfers: 20_000, clients: 32, every: 2_000, serverArgs: [], nodeArgs: [], inProcess: false };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--in-process") {
      o.inProcess = true;
      i--;
      continue;
    }
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    const n = Number(value);
    if (flag === "--server-arg") o.serverArgs.push(value);
    else if (flag === "--node-arg") o.nodeArgs.push(value);
    else if ((flag === "--transfers" || flag === "--clients" || flag === "--every") && Number.isInteger(n) && n > 0) o[flag.slice(2) as "transfers" | "clients" | "every"] = n;
    else throw new UsageError(`unknown flag or bad value: ${flag} ${value}`);
  }
  return o;
}

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
};

/** The V8 heap's used and total bytes, in MB, from the server's Prometheus text. */
async function heapMb(url: string): Promise<{ used: number; total: number }> {
  const text = await (await fetch(new URL("/metrics", url))).text();
  const of = (name: string) => Number(new RegExp(`nodejs_heap_size_${name}_bytes (\\d+)`).exec(text)?.[1] ?? Number.NaN) / 1048576;
  return { used: of("used"), total: of("total") };
}

interface Target {
  readonly url: string;
  /** The memory figures of one sample line. */
  memory(): Promise<string>;
  stop(): Promise<unknown>;
}

async function childServer(o: Options, cluster: EphemeralCluster): Promise<Target> {
  const clusterFile = join(cluster.dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
  const server = await startServerProcess(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", PREFIX, ...o.serverArgs], { nodeArgs: o.nodeArgs });
  return {
    url: server.url,
    memory: async () => {
      const heap = await heapMb(server.url);
      return `rss ${rssMb(server.pid).toFixed(1).padStart(6)} MB  heap ${heap.used.toFixed(0).padStart(4)} of ${heap.total.toFixed(0).padStart(4)} MB`;
    },
    stop: () => server.stop(),
  };
}

async function inProcessServer(o: Options, cluster: EphemeralCluster): Promise<Target> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("--in-process needs a full collection before each sample: run node --expose-gc --import tsx runtime/bench/growth.ts --in-process");
  const loaded = loadConfig({ argv: ["--port", "0", "--auth", "none", "--etcd-prefix", PREFIX, ...o.serverArgs], env: {} });
  if (loaded.help) throw new Error("--server-arg --help: not a server to measure");
  const server = await startServer(loaded.config, addressesOfCluster(cluster.describe()));
  return {
    url: server.url,
    memory: async () => {
      gc();
      gc();
      const m = process.memoryUsage();
      const r = server.engine.retained;
      return `rss ${(m.rss / 1048576).toFixed(1).padStart(6)} MB (with the load)  live heap ${(m.heapUsed / 1048576).toFixed(1).padStart(6)} MB  retained ${r.transactions} (${(r.bytes / 1048576).toFixed(1)} MB estimated)`;
    },
    stop: () => server.close(2_000),
  };
}

/** Connections open to the shards, from /admin/shards (the bench's server has no admin token). */
async function shardConnections(url: string): Promise<number> {
  const body = (await (await fetch(new URL("/admin/shards", url))).json()) as { shards: Array<{ connections: { open: number } }> };
  return body.shards.reduce((n, s) => n + s.connections.open, 0);
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(" ");

function post(agent: http.Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: "/transfer", method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A one-cent transfer between two random accounts of two random shards, under its own key. */
function transferBody(n: number): string {
  const pick = () => Math.floor(Math.random() * SHARDS.length);
  const from = pick();
  const to = (from + 1 + Math.floor(Math.random() * (SHARDS.length - 1))) % SHARDS.length;
  const account = (shard: number) => shard * ACCOUNTS_PER_SHARD + 1 + Math.floor(Math.random() * ACCOUNTS_PER_SHARD);
  return JSON.stringify({
    ops: [
      { shard_id: SHARDS[from], account_id: account(from), delta: -1 },
      { shard_id: SHARDS[to], account_id: account(to), delta: 1 },
    ],
    idempotency_key: `growth-${process.pid}-${n}`,
  });
}

async function main(argv: string[]): Promise<void> {
  const o = parse(argv);
  console.log(`growth: ${o.transfers} keyed transfers, ${o.clients} clients; load average at start ${load()}`);
  const cluster = await startEphemeralCluster({ shards: SHARDS.length, accountsPerShard: ACCOUNTS_PER_SHARD });
  const etcd = new Etcd3({ hosts: [cluster.etcd.clientUrl] });
  const server = await (o.inProcess ? inProcessServer : childServer)(o, cluster);
  try {
    const url = new URL(server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients });
    const codes = new Map<number, number>();
    const t0 = Date.now();
    const sample = async (done: number) => {
      const st = await etcd.maintenance.status();
      const keys = (await etcd.getAll().prefix(PREFIX).keys()).length;
      const mb = (x: string) => (Number(x) / 1048576).toFixed(1);
      console.log(
        `${String(done).padStart(7)} transfers  ${await server.memory()}  shard connections ${await shardConnections(server.url)}  etcd db ${mb(st.dbSize).padStart(6)} MB (in use ${mb(st.dbSizeInUse)} MB)  keys ${keys}  revision ${st.header.revision}  ${((Date.now() - t0) / 1000).toFixed(0)} s`,
      );
    };
    await sample(0);
    let next = 0;
    let done = 0;
    const client = async () => {
      while (next < o.transfers) {
        const n = next++;
        const code = await post(agent, url, transferBody(n));
        codes.set(code, (codes.get(code) ?? 0) + 1);
        const d = ++done;
        if (d % o.every === 0) await sample(d);
      }
    };
    await Promise.all(Array.from({ length: o.clients }, client));
    agent.destroy();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await sample(done);
    // What the keys themselves take: etcd compacted to its current revision (no history left), then measured.
    await etcd.kv.compact({ revision: (await etcd.maintenance.status()).header.revision, physical: true });
    await sample(done);
    console.log(`answers by status: ${JSON.stringify(Object.fromEntries(codes))}; load average at end ${load()}`);
  } finally {
    await server.stop();
    etcd.close();
    await cluster.stop();
  }
}

await runScript("growth", USAGE, main);
