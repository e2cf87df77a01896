/**
 * `npm run bench -- --variant NAME=ARGS ...`: the same transfers against
 * several server configurations in interleaved rounds on one fresh cluster,
 * one server process at a time (each takes the process epoch in etcd, which
 * fences the one before). A variant is a name, the server arguments it adds
 * (`batch=--txlog-batch-max 64`), and optionally another checkout to run the
 * server from (`--variant-bin before=/path/to/checkout`, e.g. a git worktree of
 * an older commit: "before vs after" in one run). For every client count
 * (`--clients 64,256`) and variant: committed/s, p50/p99 of committed
 * transfers, the abort latency (p50/p99 of transfers answered aborted, by
 * reason), the server's CPU ms per committed transfer (/proc, warm-up
 * included, over every transfer it committed in the round), ratios to the
 * first variant, the load average; then an audit (money conserved, every
 * branch settled). docs/benchmarks.md says what each run measured.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { down, up } from "../cluster/cluster.ts";
import { addressesFromClusterFile } from "../main.ts";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import { totalCents, waitSettled } from "./audit.ts";
import { sampleCpu } from "./cpu.ts";
import { HttpTarget } from "./http-target.ts";
import { mergeLoad, newLedger, runLoad, type Ledger, type LoadResult } from "./load.ts";
import { BACKOFF_MS } from "./round.ts";
import { startServerProcess } from "./server-process.ts";
import type { ShardRange, WorkloadOptions } from "./workload.ts";
import { cleanupOnInterrupt } from "./cli.ts";

/** A server start on a saturated shared machine (load average 30) took over a minute: this run waits longer. */
const LISTEN_WAIT_MS = 180_000;

export interface VariantOptions {
  clients: number[];
  duration_s: number;
  warmup_s: number;
  rounds: number;
  cross_shard_share: number;
  hot_share: number;
  hot_accounts: number;
  protocol?: string;
  variants: Array<{ name: string; args: string[]; bin?: string; nodeArgs?: string[] }>;
  /** Server arguments every variant gets. */
  server_args: string[];
  json?: string;
}

export const VARIANT_USAGE = `usage: npm run bench -- --variant NAME=ARGS [--variant NAME=ARGS ...] [--variant-bin NAME=CHECKOUT] [--variant-node NAME=NODE_ARGS]
  [--clients N[,N...] (64)] [--duration S per variant and client count (20)] [--warmup S (3)] [--rounds N (4)]
  [--cross-shard P (15)] [--hot-share P (0)] [--hot-accounts N (100)] [--protocol NAME] [--server-arg ARG] [--json FILE]
  ARGS: server arguments separated by spaces ("" for none); CHECKOUT: a checkout whose bin/speccommit.js runs that variant`;

export function parseVariantOptions(argv: readonly string[]): VariantOptions {
  const o: VariantOptions = { clients: [64], duration_s: 20, warmup_s: 3, rounds: 4, cross_shard_share: 0.15, hot_share: 0, hot_accounts: 100, variants: [], server_args: [] };
  const bins = new Map<string, string>();
  const nodeArgs = new Map<string, string[]>();
  const num = (flag: string, text: string | undefined, min: number, max: number): number => {
    const v = Number(text);
    if (text === undefined || !Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${flag}: ${JSON.stringify(text)} is not an integer from ${min} to ${max}\n${VARIANT_USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const text = argv[++i];
    const pair = () => {
      const eq = text?.indexOf("=") ?? -1;
      if (text === undefined || eq < 1) throw new Error(`${flag}: expected NAME=VALUE, got ${JSON.stringify(text)}\n${VARIANT_USAGE}`);
      return [text.slice(0, eq), text.slice(eq + 1)] as const;
    };
    switch (flag) {
      case "--variant": {
        const [name, args] = pair();
        if (o.variants.some((v) => v.name === name)) throw new Error(`--variant: ${name} given twice`);
        o.variants.push({ name, args: args.split(" ").filter((a) => a !== "") });
        break;
      }
      case "--variant-bin": {
        const [name, dir] = pair();
        bins.set(name, join(dir, "bin", "speccommit.js"));
        break;
      }
      case "--variant-node": {
        const [name, args] = pair();
        nodeArgs.set(name, args.split(" ").filter((a) => a !== ""));
        break;
      }
      case "--clients":
        o.clients = (text ?? "").split(",").map((c) => num(flag, c, 1, 10_000));
        break;
      case "--duration":
        o.duration_s = num(flag, text, 1, 86_400);
        break;
      case "--warmup":
        o.warmup_s = num(flag, text, 0, 3_600);
        break;
      case "--rounds":
        o.rounds = num(flag, text, 1, 100);
        break;
      case "--cross-shard":
        o.cross_shard_share = num(flag, text, 0, 100) / 100;
        break;
      case "--hot-share":
        o.hot_share = num(flag, text, 0, 100) / 100;
        break;
      case "--hot-accounts":
        o.hot_accounts = num(flag, text, 1, 1_000_000);
        break;
      case "--protocol":
        o.protocol = text;
        break;
      case "--server-arg":
        o.server_args.push(text ?? "");
        break;
      case "--json":
        o.json = text;
        break;
      default:
        throw new Error(`unknown option ${flag} with --variant\n${VARIANT_USAGE}`);
    }
  }
  if (o.variants.length < 1) throw new Error(`at least one --variant\n${VARIANT_USAGE}`);
  for (const [name, bin] of bins) {
    const v = o.variants.find((x) => x.name === name);
    if (v === undefined) throw new Error(`--variant-bin ${name}: no --variant ${name}`);
    v.bin = bin;
  }
  for (const [name, args] of nodeArgs) {
    const v = o.variants.find((x) => x.name === name);
    if (v === undefined) throw new Error(`--variant-node ${name}: no --variant ${name}`);
    v.nodeArgs = args;
  }
  return o;
}

interface Cell {
  readonly variant: string;
  readonly clients: number;
  readonly ledger: Ledger;
  result?: LoadResult;
  cpu_s: number;
  /** Commits over the whole rounds (warm-up included), for CPU per commit. */
  commits_all: number;
}

const fmt = (x: number | null | undefined, d = 1): string => (x === null || x === undefined ? "-" : x.toFixed(d));
const ratio = (a: number | null | undefined, b: number | null | undefined): string => (a == null || b == null || b === 0 ? "-" : `${(a / b).toFixed(2)}x`);

export function cellRow(c: Cell): Record<string, unknown> {
  const r = c.result!;
  const p = r.latency.percentiles([50, 99] as const);
  const a = r.latencyAborted.percentiles([50, 99] as const);
  return {
    variant: c.variant,
    clients: c.clients,
    committed_per_s: r.committed / (r.measuredMs / 1000),
    p50_ms: p[50],
    p99_ms: p[99],
    aborted: r.latencyAborted.count,
    aborts: r.aborts,
    abort_p50_ms: a[50],
    abort_p99_ms: a[99],
    in_doubt: r.inDoubt,
    errors: Object.values(r.rejected).reduce((x, y) => x + y, 0) + Object.values(r.unknown).reduce((x, y) => x + y, 0),
    server_cpu_ms_per_commit: c.commits_all > 0 ? (1000 * c.cpu_s) / c.commits_all : null,
  };
}

export async function runVariants(o: VariantOptions): Promise<number> {
  const loadavg_start = loadavg();
  const started_at = new Date().toISOString();
  const dir = mkdtempSync(join(tmpdir(), "speccommit-bench-variants-"));
  const r = await up({ dir, log: (line) => console.log(`cluster: ${line}`) });
  const clusterFile = join(r.cluster.dir, "cluster.json");
  const interrupted = cleanupOnInterrupt("bench", `the cluster in ${dir}`, () => down({ dir }).finally(() => rmSync(dir, { recursive: true, force: true })));
  try {
    const addresses = addressesFromClusterFile(clusterFile);
    const file = JSON.parse(readFileSync(clusterFile, "utf8")) as { shards: ShardRange[] };
    const workload: WorkloadOptions = {
      shards: file.shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId })),
      crossShardShare: o.cross_shard_share,
      hotShare: o.hot_share,
      hotAccounts: o.hot_accounts,
      amountCentsMin: 1,
      amountCentsMax: 10_000,
      seed: 1,
    };
    const before = await totalCents(addresses.shards);
    const cells: Cell[] = [];
    for (const clients of o.clients) {
      const row = o.variants.map((v) => ({ variant: v.name, clients, ledger: newLedger(), cpu_s: 0, commits_all: 0 }) as Cell);
      cells.push(...row);
      for (let round = 0; round < o.rounds; round++) {
        for (const [k, v] of o.variants.entries()) {
          const c = row[k]!;
          const start = () => startServerProcess(["--cluster-file", clusterFile, "--port", "0", ...o.server_args, ...v.args], { listenWaitMs: LISTEN_WAIT_MS, ...(v.bin !== undefined ? { bin: v.bin } : {}), ...(v.nodeArgs !== undefined ? { nodeArgs: v.nodeArgs } : {}) });
          const server = await start().catch((e: Error) => {
            console.log(`${v.name}: ${e.message.split("\n")[0]}; starting it again`);
            return start();
          });
          const target = new HttpTarget({ url: server.url, sockets: clients, ...(o.protocol !== undefined ? { protocol: o.protocol } : {}) });
          try {
            console.log(`${v.name} ${clients} clients ${round + 1}/${o.rounds}: ${o.warmup_s} s warm-up, ${o.duration_s / o.rounds} s measured`);
            const pids = new Map([["server", server.pid]]);
            const cpu0 = sampleCpu(pids);
            const committed0 = c.ledger.committed.size;
            const res = await runLoad({
              target,
              workload,
              clients,
              warmupMs: o.warmup_s * 1000,
              durationMs: (o.duration_s / o.rounds) * 1000,
              backoffMs: BACKOFF_MS,
              ledger: c.ledger,
              streamOffset: (round * o.clients.length + o.clients.indexOf(clients)) * clients,
            });
            const cpu1 = sampleCpu(pids);
            c.cpu_s += (cpu1.procs.get("server") ?? 0) - (cpu0.procs.get("server") ?? 0);
            c.commits_all += c.ledger.committed.size - committed0;
            c.result = c.result === undefined ? res : mergeLoad(c.result, res);
          } finally {
            await target.close();
            await server.stop();
          }
        }
      }
    }
    const settled = await waitSettled(addresses.shards, [XID_FORMAT_ID], 60_000);
    const after = await totalCents(addresses.shards);
    const rows = cells.map(cellRow);
    const loadavg_end = loadavg();
    const lines = [
      "",
      `variants: ${o.variants.map((v) => `${v.name} (${[v.bin !== undefined ? `from ${v.bin}` : "", ...(v.nodeArgs ?? []).map((a) => `node ${a}`), ...v.args].filter((x) => x !== "").join(" ") || "defaults"})`).join(", ")}; ${o.rounds} interleaved rounds, ${o.duration_s} s measured per variant and client count; ${Math.round(o.cross_shard_share * 100)}% cross-shard, ${Math.round(o.hot_share * 100)}% hot draws${o.protocol !== undefined ? `, protocol ${o.protocol}` : ""}`,
      `machine: ${cpus().length} cpus, load average ${loadavg_start.map((x) => x.toFixed(2)).join(" ")} at start, ${loadavg_end.map((x) => x.toFixed(2)).join(" ")} at end`,
      "",
      "| clients | variant | committed/s | p50 ms | p99 ms | aborted | abort p50 ms | abort p99 ms | server CPU ms / commit | committed/s, p50, p99, CPU vs first |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ];
    for (const x of rows) {
      const base = rows.find((y) => y.clients === x.clients)!;
      const n = (k: string) => x[k] as number | null;
      const b = (k: string) => base[k] as number | null;
      lines.push(
        `| ${x.clients} | ${x.variant} | ${fmt(n("committed_per_s"))} | ${fmt(n("p50_ms"), 2)} | ${fmt(n("p99_ms"), 2)} | ${x.aborted as number} | ${fmt(n("abort_p50_ms"), 2)} | ${fmt(n("abort_p99_ms"), 2)} | ${fmt(n("server_cpu_ms_per_commit"), 3)} | ${x === base ? "-" : [ratio(n("committed_per_s"), b("committed_per_s")), ratio(n("p50_ms"), b("p50_ms")), ratio(n("p99_ms"), b("p99_ms")), ratio(n("server_cpu_ms_per_commit"), b("server_cpu_ms_per_commit"))].join(", ")} |`,
      );
    }
    const ok = before === after && settled.settled;
    lines.push("", `audit: total ${before} -> ${after} cents (${before === after ? "conserved" : "NOT CONSERVED"}), ${settled.settled ? "every branch settled" : "branches left prepared"}`);
    console.log(lines.join("\n"));
    if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify({ started_at, options: o, loadavg_start, loadavg_end, rows, audit: { before: String(before), after: String(after), settled: settled.settled, passed: ok } }, null, 2)}\n`);
    return ok ? 0 : 1;
  } finally {
    interrupted();
    await down({ dir });
    rmSync(dir, { recursive: true, force: true });
  }
}
