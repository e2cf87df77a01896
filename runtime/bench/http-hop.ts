/**
 * `npx tsx runtime/bench/http-hop.ts [--clients N] [--duration S]`: what one HTTP hop costs on this machine, the
 * part of a coordinator's latency and CPU that no protocol can remove. A child node process answers every
 * POST /transfer at once (the body read and parsed, a fixed committed answer, no shard, no etcd); the benchmark's
 * own client (http-target.ts, keep-alive sockets) drives it in a closed loop, as `npm run bench` drives the server.
 * Prints requests/s, p50/p99 and the child's CPU per request, with the load average. docs/benchmarks.md ("What
 * the 1-client goal leaves the coordinator") sets it beside the floor's p50.
 */
import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { once } from "node:events";
import { HttpTarget } from "./http-target.ts";
import { sampleCpu } from "./cpu.ts";
import { Latencies } from "./stats.ts";
import type { Transfer } from "./workload.ts";
import { runScript, UsageError } from "./cli.ts";

const USAGE = "usage: npx tsx runtime/bench/http-hop.ts [--clients N (1-1024, default 1)] [--duration S (1-600, default 5)] [--warmup S (0-60, default 1)]";

export interface HopOptions {
  readonly clients: number;
  readonly duration_s: number;
  readonly warmup_s: number;
}

export function parseHopArgs(argv: readonly string[]): HopOptions {
  const o = { clients: 1, duration_s: 5, warmup_s: 1 };
  const bounds: Record<string, [keyof typeof o, number, number]> = {
    "--clients": ["clients", 1, 1024],
    "--duration": ["duration_s", 1, 600],
    "--warmup": ["warmup_s", 0, 60],
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const b = bounds[flag];
    if (b === undefined) throw new UsageError(`unknown flag ${flag}`);
    const raw = argv[++i];
    const n = Number(raw);
    if (raw === undefined || !/^[0-9]+$/.test(raw) || n < b[1] || n > b[2]) throw new UsageError(`${flag}: expected an integer from ${b[1]} to ${b[2]} (got ${raw ?? "nothing"})`);
    o[b[0]] = n;
  }
  return o;
}

/** The child: reads and parses each body (as any server must), answers a fixed committed transfer. */
const ECHO = `
const http = require("node:http");
const answer = JSON.stringify({ tx: "00000000-0000-4000-8000-000000000000", status: "committed" });
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    JSON.parse(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(answer) });
    res.end(answer);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => console.log(String(server.address().port)));
`;

export interface HopResult {
  readonly clients: number;
  readonly requests: number;
  readonly per_s: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly child_cpu_ms_per_request: number | null;
  readonly load_start: readonly number[];
  readonly load_end: readonly number[];
}

export async function measureHop(o: HopOptions): Promise<HopResult> {
  const child = spawn(process.execPath, ["-e", ECHO], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [line] = (await once(child.stdout!, "data")) as [Buffer];
    const port = Number(line.toString("utf8").trim());
    if (!Number.isInteger(port) || port <= 0) throw new Error(`the echo server printed no port: ${line.toString("utf8")}`);
    const target = new HttpTarget({ url: `http://127.0.0.1:${port}`, sockets: o.clients });
    const transfer: Transfer = {
      ops: [
        { shard_id: "shard-a", account_id: 1, delta: -100 },
        { shard_id: "shard-a", account_id: 2, delta: 100 },
      ],
    };
    const lat = new Latencies();
    const load_start = loadavg();
    let measuring = false;
    let stop = false;
    const pids = new Map([["echo", child.pid!]]);
    const client = async () => {
      while (!stop) {
        const t0 = performance.now();
        const out = await target.transfer(transfer);
        if (out.kind !== "committed") throw new Error(`the echo server answered ${JSON.stringify(out)}`);
        if (measuring) lat.add(performance.now() - t0);
      }
    };
    const clients = Array.from({ length: o.clients }, client);
    await new Promise((r) => setTimeout(r, o.warmup_s * 1000));
    const a = sampleCpu(pids);
    measuring = true;
    await new Promise((r) => setTimeout(r, o.duration_s * 1000));
    measuring = false;
    const b = sampleCpu(pids);
    stop = true;
    await Promise.all(clients);
    const n = lat.count;
    const cpu = a.procs.get("echo") !== undefined && b.procs.get("echo") !== undefined ? (b.procs.get("echo")! - a.procs.get("echo")!) * 1000 : null;
    const p = lat.percentiles([50, 99] as const);
    return {
      clients: o.clients,
      requests: n,
      per_s: n / o.duration_s,
      p50_ms: p[50],
      p99_ms: p[99],
      child_cpu_ms_per_request: cpu === null || n === 0 ? null : cpu / n,
      load_start,
      load_end: loadavg(),
    };
  } finally {
    child.kill("SIGKILL");
  }
}

async function main(argv: string[]): Promise<void> {
  const o = parseHopArgs(argv);
  const r = await measureHop(o);
  const f = (x: number | null, d = 3) => (x === null ? "-" : x.toFixed(d));
  console.log(`http hop (${r.clients} client${r.clients === 1 ? "" : "s"}, ${o.duration_s} s; load average ${r.load_start.map((x) => x.toFixed(2)).join(" ")} at start, ${r.load_end.map((x) => x.toFixed(2)).join(" ")} at end, 2 cores)`);
  console.log(`  ${r.requests} requests, ${r.per_s.toFixed(1)}/s, p50 ${f(r.p50_ms)} ms, p99 ${f(r.p99_ms)} ms, echo process CPU ${f(r.child_cpu_ms_per_request)} ms per request`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runScript("http-hop", USAGE, main);
