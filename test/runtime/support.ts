// Helpers for the runtime's integration tests: a server started in this
// process on a test cluster (test/support/cluster.ts), a keep-alive HTTP
// client, and reads of the shards' state for audits.
import http from "node:http";
import mysql from "mysql2/promise";
import { loadConfig } from "../../runtime/config.ts";
import { addressesOfCluster } from "../../runtime/main.ts";
import { startServer, type RunningServer } from "../../runtime/server.ts";
import { toCents } from "../../runtime/cluster/schema.ts";
import { xaRecover, type TestCluster } from "../support/cluster.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import type { ShardAddress } from "../../runtime/adapters/mysql-pool.ts";
import { preparedBranches } from "../../runtime/bench/audit.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";

/** One op of a transfer's JSON body. */
export interface TransferOp {
  readonly shard_id: string;
  readonly account_id: number;
  readonly delta: number;
}

/** A server on a free port with test-sized settings; `flags` as on the command line. */
export async function serverOn(cluster: TestCluster, flags: string[] = []): Promise<RunningServer> {
  const loaded = loadConfig({ argv: ["--port", "0", "--resolver-interval-ms", "60000", ...authFlags(flags), ...flags], env: {} });
  if (loaded.help) throw new Error("unexpected --help");
  return startServer(loaded.config, addressesOfCluster(cluster.describe()));
}

/** `--auth none` unless the flags configure authentication themselves (these tests are about other things; test/runtime/auth.test.ts is about it). */
export function authFlags(flags: readonly string[]): string[] {
  return flags.some((f) => f.startsWith("--auth") || f.startsWith("--tokens-file")) ? [] : ["--auth", "none"];
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

const agents = new Map<string, http.Agent>();
/** Longer than any request of these tests takes; what counts is the server's hint under it. */
const AGENT_TIMEOUT_MS = 120_000;

/** One request; the body is parsed as JSON when it is JSON. `raw` sends a string as is. */
export function request(base: string, method: string, path: string, opts: { json?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
  const url = new URL(path, base);
  let agent = agents.get(base);
  if (agent === undefined) {
    // A timeout makes node's agent honour the server's `Keep-Alive: timeout=5` hint (it applies the hint only below a
    // set timeout): a pooled socket idle for 4 s is dropped before the server closes it, not reused into a reset.
    agent = new http.Agent({ keepAlive: true, maxSockets: 128, timeout: AGENT_TIMEOUT_MS });
    agents.set(base, agent);
  }
  const payload = opts.raw ?? (opts.json !== undefined ? JSON.stringify(opts.json) : undefined);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        agent,
        headers: {
          ...(payload !== undefined ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          // A JSON body that does not parse (or a HEAD answer's empty one) is a failed request, not a hang.
          try {
            if ((res.headers["content-type"] ?? "").startsWith("application/json") && text !== "") body = JSON.parse(text);
          } catch (e) {
            reject(new Error(`${method} ${path}: ${res.statusCode} with a body that is not JSON: ${(e as Error).message}: ${text.slice(0, 200)}`));
            return;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export async function balance(cluster: TestCluster, shard: string, account: number): Promise<bigint> {
  const conn = await mysql.createConnection(cluster.shard(shard).connectionOptions());
  try {
    const [rows] = await conn.query("SELECT balance FROM accounts WHERE id = ?", [account]);
    return toCents((rows as Array<{ balance: unknown }>)[0]!.balance);
  } finally {
    await conn.end();
  }
}

/** Per shard: history rows (xid -> rows), every balance, and the prepared branches. */
export async function snapshot(cluster: TestCluster): Promise<{ history: Map<string, number>; balances: Map<string, string>; prepared: string[] }> {
  const history = new Map<string, number>();
  const balances = new Map<string, string>();
  const prepared: string[] = [];
  for (const shard of cluster.shards) {
    const conn = await mysql.createConnection(shard.connectionOptions());
    try {
      const [h] = await conn.query("SELECT xid, COUNT(*) AS n FROM history GROUP BY xid");
      for (const r of h as Array<{ xid: string; n: string }>) history.set(`${shard.name}|${r.xid}`, Number(r.n));
      const [b] = await conn.query("SELECT id, balance FROM accounts ORDER BY id");
      for (const r of b as Array<{ id: string; balance: string }>) balances.set(`${shard.name}|${r.id}`, r.balance);
      for (const x of await xaRecover(conn)) prepared.push(`${shard.name}|${x.formatID}|${x.gtrid}|${x.bqual}`);
    } finally {
      await conn.end();
    }
  }
  return { history, balances, prepared };
}

/**
 * A 2PC transfer left in doubt on real shards: a coordinator in a child
 * process (`flags` added to its command line) prepares both branches while
 * etcd is paused (so its decision cannot be written), and is killed -9.
 * `whilePaused` runs before etcd resumes. The decision the dead process had
 * sent may still land once etcd resumes (its request sits in etcd's socket
 * buffer). Answers the transaction id and the shards' addresses.
 */
export async function inDoubtAfterKill9(
  cluster: TestCluster,
  opts: { dir: string; prefix: string; ops: readonly TransferOp[]; flags?: readonly string[]; whilePaused?: (tx: string) => Promise<void> },
): Promise<{ tx: string; shards: readonly ShardAddress[] }> {
  const clusterFile = join(opts.dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
  const shards = addressesOfCluster(cluster.describe()).shards;
  let child: ServerProcess | undefined = await startServerProcess([
    "--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", opts.prefix, "--resolver-interval-ms", "60000", ...(opts.flags ?? []),
  ]);
  process.kill(cluster.etcd.pid, "SIGSTOP");
  try {
    const answer = request(child.url, "POST", "/transfer", { json: { ops: opts.ops, protocol: "2pc" } }).catch((e: Error) => e);
    let prepared: string[] = [];
    const deadline = Date.now() + 20_000;
    while (prepared.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      prepared = await preparedBranches(shards, XID_FORMAT_ID);
    }
    const on = prepared.map((p) => p.split("|")[0]).sort();
    const txs = new Set(prepared.map((p) => p.split("|")[1]));
    if (on.join() !== "shard-a,shard-b" || txs.size !== 1) throw new Error(`expected one transaction prepared on shard-a and shard-b, got ${JSON.stringify(prepared)}`);
    const tx = [...txs][0]!;
    await child.kill9();
    child = undefined;
    // The client lost its answer with the process.
    if (!((await answer) instanceof Error)) throw new Error("the killed coordinator answered");
    await opts.whilePaused?.(tx);
    return { tx, shards };
  } finally {
    await child?.kill9();
    process.kill(cluster.etcd.pid, "SIGCONT");
  }
}
