/**
 * `npm run bench:deadlock`: the `deadlock` scenario. Cross-shard transfers
 * in both directions between a few hot accounts per shard (each transfer
 * debits one shard and credits another, both branches run at once, so two
 * transfers over the same pair in opposite directions lock in opposite
 * order: cross-shard deadlocks no shard sees), against the server with the
 * deadlock detector on (deadlock_interval_ms default) and off (0), in
 * interleaved rounds on one cluster (innodb_lock_wait_timeout 3 s). Prints
 * committed/s, p50/p99 of committed transfers, aborts by reason and the
 * detector's victims for each, the on/off ratios, the load average, and an
 * audit (money conserved, every branch settled). docs/benchmarks.md,
 * "Cross-shard deadlocks".
 *
 *   npm run bench:deadlock -- [--clients 16] [--duration 20] [--rounds 2] [--hot-accounts 4] [--shards 3]
 *   npm run bench -- --scenario deadlock [the same options]
 *
 * The two servers never run at once: each takes the process epoch in etcd,
 * which fences the other.
 */
import { loadavg, cpus, tmpdir } from "node:os";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { down, up } from "../cluster/cluster.ts";
import { addressesFromClusterFile } from "../main.ts";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import { totalCents, waitSettled } from "./audit.ts";
import { HttpTarget } from "./http-target.ts";
import { mergeLoad, newLedger, runLoad, type Ledger, type LoadResult } from "./load.ts";
import { startServerProcess } from "./server-process.ts";
import { BACKOFF_MS } from "./round.ts";
import type { ShardRange, WorkloadOptions } from "./workload.ts";
import { cleanupOnInterrupt, writableFileProblem } from "./cli.ts";

interface Options {
  clients: number;
  duration_s: number;
  warmup_s: number;
  rounds: number;
  hot_accounts: number;
  shards: number;
  interval_ms: number;
  json?: string;
}

const USAGE = `usage: npm run bench:deadlock -- [--clients N (16)] [--duration S per configuration (20)] [--warmup S (2)]
  [--rounds N (2)] [--hot-accounts N per shard (4)] [--shards N (cluster's; 3)] [--interval-ms MS detector on (120)] [--json FILE]`;

function parse(argv: readonly string[]): Options | null {
  const o: Options = { clients: 16, duration_s: 20, warmup_s: 2, rounds: 2, hot_accounts: 4, shards: 3, interval_ms: 120 };
  const ints: Record<string, keyof Options> = {
    "--clients": "clients",
    "--duration": "duration_s",
    "--warmup": "warmup_s",
    "--rounds": "rounds",
    "--hot-accounts": "hot_accounts",
    "--shards": "shards",
    "--interval-ms": "interval_ms",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--help" || a === "-h") return null;
    if (a === "--json") {
      o.json = argv[++i];
      if (o.json === undefined || o.json.startsWith("-")) throw new Error(`bench:deadlock: --json needs a file\n${USAGE}`);
      const problem = writableFileProblem(o.json);
      if (problem !== null) throw new Error(`bench:deadlock: --json ${o.json}: ${problem}\n${USAGE}`);
      continue;
    }
    const key = ints[a];
    if (key === undefined) throw new Error(`bench:deadlock: unknown option ${a}\n${USAGE}`);
    const raw = argv[++i];
    const v = Number(raw);
    const min = key === "warmup_s" ? 0 : 1;
    if (raw === undefined || !/^[0-9]+$/.test(raw) || !Number.isSafeInteger(v) || v < min) throw new Error(`bench:deadlock: ${a}: expected an integer >= ${min} (got ${raw ?? "nothing"})\n${USAGE}`);
    (o as unknown as Record<string, number>)[key] = v;
  }
  if (o.shards < 2) throw new Error("bench:deadlock: --shards must be 2 or more");
  return o;
}

interface Config {
  readonly name: "on" | "off";
  readonly args: string[];
  readonly ledger: Ledger;
  result?: LoadResult;
  victims: number;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} ([0-9.e+]+)$`, "m").exec(text);
  return m === null ? 0 : Number(m[1]);
}

const fmt = (x: number | null, digits = 1): string => (x === null ? "-" : x.toFixed(digits));

export async function deadlockMain(argv: readonly string[]): Promise<number> {
  const o = parse(argv);
  if (o === null) {
    console.log(USAGE);
    return 0;
  }
  const loadavg_start = loadavg();
  const dir = mkdtempSync(join(tmpdir(), "speccommit-bench-deadlock-"));
  const r = await up({ dir, shards: o.shards, log: (line) => console.log(`cluster: ${line}`) });
  const clusterFile = join(r.cluster.dir, "cluster.json");
  const interrupted = cleanupOnInterrupt("bench:deadlock", `the cluster in ${dir}`, () => down({ dir }).finally(() => rmSync(dir, { recursive: true, force: true })));
  try {
    const addresses = addressesFromClusterFile(clusterFile);
    const file = JSON.parse(readFileSync(clusterFile, "utf8")) as { shards: ShardRange[] };
    const workload: WorkloadOptions = {
      shards: file.shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId })),
      crossShardShare: 1,
      hotShare: 1,
      hotAccounts: o.hot_accounts,
      amountCentsMin: 1,
      amountCentsMax: 100,
      seed: 1,
    };
    const before = await totalCents(addresses.shards);
    const configs: Config[] = [
      { name: "on", args: ["--deadlock-interval-ms", String(o.interval_ms)], ledger: newLedger(), victims: 0 },
      { name: "off", args: ["--deadlock-interval-ms", "0"], ledger: newLedger(), victims: 0 },
    ];
    for (let round = 0; round < o.rounds; round++) {
      for (const c of configs) {
        // On a saturated machine a start can miss the 60 s wait for "listening": one more try before giving up.
        const start = () => startServerProcess(["--cluster-file", clusterFile, "--port", "0", ...c.args]);
        const server = await start().catch((e: Error) => {
          console.log(`detector ${c.name}: ${e.message.split("\n")[0]}; starting it again`);
          return start();
        });
        const target = new HttpTarget({ url: server.url, sockets: o.clients });
        try {
          console.log(`detector ${c.name} ${round + 1}/${o.rounds}: ${o.clients} clients, ${o.warmup_s} s warm-up, ${o.duration_s / o.rounds} s measured`);
          const res = await runLoad({
            target,
            workload,
            clients: o.clients,
            warmupMs: o.warmup_s * 1000,
            durationMs: (o.duration_s / o.rounds) * 1000,
            backoffMs: BACKOFF_MS,
            ledger: c.ledger,
            streamOffset: round * o.clients,
          });
          c.result = c.result === undefined ? res : mergeLoad(c.result, res);
          const text = await (await fetch(`${server.url}/metrics`)).text();
          c.victims += metric(text, "speccommit_deadlocks_total");
        } finally {
          await target.close();
          await server.stop();
        }
      }
    }
    const settled = await waitSettled(addresses.shards, [XID_FORMAT_ID], 60_000);
    const after = await totalCents(addresses.shards);
    const rows = configs.map((c) => {
      const res = c.result!;
      const p = res.latency.percentiles([50, 99] as const);
      const aborted = Object.values(res.aborts).reduce((a, b) => a + b, 0);
      // Abort latency next to commit latency: a victim answers when the detector picks it, a lock wait timeout after 3 s.
      const ab = res.latencyAborted.percentiles([50, 99] as const);
      return { name: c.name, committed_per_s: res.committed / (res.measuredMs / 1000), p50_ms: p[50], p99_ms: p[99], aborted, aborts: res.aborts, abort_p50_ms: ab[50], abort_p99_ms: ab[99], victims: c.victims, in_doubt: res.inDoubt };
    });
    const [on, off] = rows as [(typeof rows)[number], (typeof rows)[number]];
    const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);
    const lines = [
      "",
      `deadlock scenario: ${o.shards} shards, cross-shard transfers both ways between ${o.hot_accounts} hot accounts per shard, ${o.clients} clients, ${o.rounds} interleaved rounds, ${o.duration_s} s measured per configuration; innodb_lock_wait_timeout 3 s`,
      `machine: ${cpus().length} cpus, load average ${loadavg_start.map((x) => x.toFixed(2)).join(" ")} at start, ${loadavg().map((x) => x.toFixed(2)).join(" ")} at end`,
      "",
      "| detector | committed/s | p50 ms | p99 ms | aborted | abort p50 ms | abort p99 ms | aborts by reason | victims (speccommit_deadlocks_total) |",
      "|---|---|---|---|---|---|---|---|---|",
      ...rows.map((x) => `| ${x.name} | ${fmt(x.committed_per_s)} | ${fmt(x.p50_ms)} | ${fmt(x.p99_ms)} | ${x.aborted} | ${fmt(x.abort_p50_ms)} | ${fmt(x.abort_p99_ms)} | ${Object.entries(x.aborts).map(([k, v]) => `${k} ${v}`).join(", ") || "-"} | ${x.victims} |`),
      `| on / off | ${fmt(ratio(on.committed_per_s, off.committed_per_s), 2)}x | ${fmt(ratio(on.p50_ms, off.p50_ms), 2)}x | ${fmt(ratio(on.p99_ms, off.p99_ms), 2)}x | ${fmt(ratio(on.aborted, off.aborted), 2)}x | ${fmt(ratio(on.abort_p50_ms, off.abort_p50_ms), 2)}x | ${fmt(ratio(on.abort_p99_ms, off.abort_p99_ms), 2)}x | | |`,
      "",
      `audit: total ${before} -> ${after} cents (${before === after ? "conserved" : "NOT CONSERVED"}), ${settled.settled ? "every branch settled" : "branches left prepared"}`,
    ];
    console.log(lines.join("\n"));
    if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify({ options: o, loadavg_start, loadavg_end: loadavg(), rows, audit: { before: String(before), after: String(after), settled: settled.settled } }, null, 2)}\n`);
    return before === after && settled.settled ? 0 : 1;
  } finally {
    interrupted();
    await down({ dir });
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith("deadlock.ts")) {
  process.exitCode = await deadlockMain(process.argv.slice(2)).catch((e: unknown) => {
    console.error((e as Error).message);
    return 2;
  });
}
