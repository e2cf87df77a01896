/**
 * `npm run bench:otel`: what OpenTelemetry tracing costs. The same closed-loop
 * load (load.ts) against the server with tracing off and with tracing on
 * (spans exported over OTLP/HTTP to a sink in this process that reads and
 * counts them, as a collector would take them), in interleaved rounds (off on,
 * on off, off on, ...) on one cluster, each round with a server process of its
 * own (started, warmed up, measured, stopped), so that a neighbour's load
 * weighs on both alike. Prints committed/s, p50 and p99 of each and their
 * ratios on / off, the server's CPU per committed transfer, the spans
 * received, the load average at start and end; then the audit (money
 * conserved, nothing left prepared, exactly once). docs/benchmarks.md.
 *
 *   npm run bench:otel -- --clients 32 --duration 20 --rounds 4 --protocol 2pc
 *
 * Exit status: 0 the audit passed, 1 it failed, 2 bad usage.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import { down, up, type ClusterFile } from "../cluster/cluster.ts";
import { addressesFromClusterFile } from "../main.ts";
import { auditHistory, totalCents, waitSettled } from "./audit.ts";
import { CpuTally } from "./cpu.ts";
import { HttpTarget } from "./http-target.ts";
import { mergeLoad, newLedger, type Ledger, type LoadResult } from "./load.ts";
import { phaseReport, type PhaseReport } from "./report.ts";
import { round } from "./round.ts";
import { startServerProcess } from "./server-process.ts";
import type { PhaseTotals } from "./target.ts";
import type { WorkloadOptions } from "./workload.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS } from "../../spec/protocols/registry.ts";
import { startTracing } from "../tracing.ts";
import { engineOverhead } from "./otel-engine.ts";
import { cleanupOnInterrupt, runScript, UsageError, writableFileProblem } from "./cli.ts";

interface Options {
  clients: number;
  duration_s: number;
  warmup_s: number;
  rounds: number;
  protocol: string;
  cross_shard_share: number;
  json?: string;
  /** Run the servers under node --cpu-prof, profiles written here (one per server). */
  cpu_prof_dir?: string;
  /** The engine alone (otel-engine.ts), this many transfers a round, instead of the servers. */
  engine_transfers?: number;
}

const USAGE = `usage: npm run bench:otel -- [--clients N (32)] [--duration S measured per mode (20)] [--warmup S per round (2)]
       [--rounds N (4)] [--protocol ${PROTOCOLS.join("|")} (${DEFAULT_PROTOCOL})] [--cross-shard P percent (50)] [--json FILE] [--cpu-prof DIR]
       [--engine N: the engine alone over in-memory shards, N transfers a round, CPU per transfer]`;

function parse(argv: readonly string[]): Options {
  const o: Options = { clients: 32, duration_s: 20, warmup_s: 2, rounds: 4, protocol: DEFAULT_PROTOCOL, cross_shard_share: 0.5 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    const n = Number(v);
    const int = (min: number) => {
      if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} ${v}: expected an integer >= ${min}`);
      return n;
    };
    if (flag === "--clients") o.clients = int(1);
    else if (flag === "--duration") o.duration_s = int(1);
    else if (flag === "--warmup") o.warmup_s = int(0);
    else if (flag === "--rounds") o.rounds = int(1);
    else if (flag === "--protocol") {
      if (!(PROTOCOLS as readonly string[]).includes(v)) throw new UsageError(`--protocol ${v}: one of ${PROTOCOLS.join(", ")}`);
      o.protocol = v;
    }
    else if (flag === "--cross-shard") o.cross_shard_share = int(0) / 100;
    else if (flag === "--json") {
      const problem = writableFileProblem(v);
      if (problem !== null) throw new UsageError(`--json ${v}: ${problem}`);
      o.json = v;
    }
    else if (flag === "--cpu-prof") o.cpu_prof_dir = resolve(v);
    else if (flag === "--engine") o.engine_transfers = int(1);
    else throw new UsageError(`unknown option ${flag}`);
  }
  if (o.cross_shard_share > 1) throw new UsageError("--cross-shard: a percent from 0 to 100");
  return o;
}

/** An OTLP/HTTP endpoint that reads every export whole, parses it and counts its spans, then answers as a collector does. */
async function startSink(): Promise<{ url: string; spans: () => number; exports: () => number; close(): Promise<void> }> {
  let spans = 0;
  let exports = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: unknown[] }> }> };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
      exports++;
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    exports: () => exports,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Mode {
  readonly name: "off" | "on";
  readonly ledger: Ledger;
  readonly cpu: CpuTally;
  readonly phases: PhaseTotals;
  result?: LoadResult;
}

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : Math.round((a / b) * 1000) / 1000);

async function measure(o: Options, clusterFile: string, workload: WorkloadOptions, sink: Awaited<ReturnType<typeof startSink>>): Promise<Mode[]> {
  const modes: Mode[] = (["off", "on"] as const).map((name) => ({ name, ledger: newLedger(), cpu: new CpuTally(), phases: {} }));
  for (let r = 0; r < o.rounds; r++) {
    for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
      const args = ["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "bench-otel/", ...(mode.name === "on" ? ["--otlp-endpoint", sink.url] : [])];
      const server = await startServerProcess(args, o.cpu_prof_dir !== undefined ? { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", join(o.cpu_prof_dir, `${mode.name}-${r + 1}`)] } : {});
      const target = new HttpTarget({ url: server.url, sockets: o.clients, protocol: o.protocol });
      try {
        const res = await round({
          name: `tracing ${mode.name} ${r + 1}/${o.rounds}`,
          target,
          workload,
          clients: o.clients,
          warmup_s: o.warmup_s,
          duration_s: o.duration_s / o.rounds,
          streamOffset: r * o.clients,
          ledger: mode.ledger,
          pids: new Map([["server", server.pid], ["bench", process.pid]]),
          cpu: mode.cpu,
          phases: mode.phases,
          stop: () => false,
        });
        mode.result = mode.result === undefined ? res : mergeLoad(mode.result, res);
      } finally {
        await target.close();
        const code = await server.stop();
        if (code !== 0) console.log(`server exited with ${code}:\n${server.output().slice(-2000)}`);
      }
    }
  }
  return modes;
}

async function run(o: Options): Promise<boolean> {
  const started_at = new Date().toISOString();
  const loadavg_start = loadavg();
  const dir = mkdtempSync(join(tmpdir(), "speccommit-bench-otel-"));
  const sink = await startSink();
  const interrupted = cleanupOnInterrupt("bench:otel", `the cluster in ${dir}`, () => down({ dir }).finally(() => rmSync(dir, { recursive: true, force: true })));
  try {
    const started = await up({ dir, log: (line) => console.log(`cluster: ${line}`) });
    const clusterFile = join(started.cluster.dir, "cluster.json");
    const file = JSON.parse(readFileSync(clusterFile, "utf8")) as ClusterFile;
    const shards = addressesFromClusterFile(clusterFile).shards;
    const workload: WorkloadOptions = {
      shards: file.shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId })),
      crossShardShare: o.cross_shard_share,
      hotShare: 0,
      hotAccounts: 100,
      amountCentsMin: 1,
      amountCentsMax: 10_000,
      seed: 1,
    };
    const since_us = Date.now() * 1000;
    const before = await totalCents(shards);
    const modes = await measure(o, clusterFile, workload, sink);
    const settled = await waitSettled(shards, [XID_FORMAT_ID], 30_000);
    const after = await totalCents(shards);
    const history = await auditHistory(shards, modes.map((m) => m.ledger), since_us, modes.map((m) => m.name));
    const reports = modes.map((m) => phaseReport(m.result!, m.cpu.use(), m.phases));
    const [off, on] = reports as [PhaseReport, PhaseReport];
    const report = {
      started_at,
      machine: { cpus: cpus().length, loadavg_start, loadavg_end: loadavg() },
      options: o,
      off,
      on,
      ratio_on_to_off: {
        committed_per_s: ratio(on.committed_per_s, off.committed_per_s),
        p50: ratio(on.latency_ms.p50, off.latency_ms.p50),
        p99: ratio(on.latency_ms.p99, off.latency_ms.p99),
        server_cpu_ms_per_commit: ratio(on.cpu_ms_per_commit["server"] ?? null, off.cpu_ms_per_commit["server"] ?? null),
      },
      // Spans of every transfer the "on" servers ran (warm-ups included) and of their resolvers.
      spans: { received: sink.spans(), exports: sink.exports(), transfers_on: answered(modes[1]!.ledger), per_transfer_on: ratio(sink.spans(), answered(modes[1]!.ledger)) },
      audit: { conserved: before === after, settled, problems: history.problems_total, passed: before === after && settled.settled && history.problems_total === 0 },
    };
    print(report);
    if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    return report.audit.passed;
  } finally {
    interrupted();
    await sink.close();
    await down({ dir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const answered = (l: Ledger): number => l.committed.size + l.aborted.size + l.inDoubt.size;

function print(r: {
  machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[] };
  options: Options;
  off: PhaseReport;
  on: PhaseReport;
  ratio_on_to_off: Record<string, number | null>;
  spans: Record<string, number | null>;
  audit: { conserved: boolean; settled: { settled: boolean }; problems: number; passed: boolean };
}): void {
  const f = (x: number | null | undefined) => (x === null || x === undefined ? "-" : x.toFixed(2));
  const row = (name: string, p: PhaseReport) =>
    `${name.padEnd(12)} ${String(p.committed_per_s).padStart(9)} ${f(p.latency_ms.p50).padStart(8)} ${f(p.latency_ms.p99).padStart(8)} ${f(p.cpu_ms_per_commit["server"]).padStart(12)}   ${p.committed} committed in ${p.measured_s} s; aborts ${JSON.stringify(p.aborts)}; in doubt ${p.in_doubt}`;
  const x = r.ratio_on_to_off;
  console.log(
    [
      "",
      `tracing off vs on (${r.options.protocol}, ${r.options.clients} clients, ${r.options.rounds} rounds interleaved; load average ${r.machine.loadavg_start.map((v) => v.toFixed(2)).join(" ")} at start, ${r.machine.loadavg_end.map((v) => v.toFixed(2)).join(" ")} at end, ${r.machine.cpus} cores)`,
      `${"".padEnd(12)} ${"commit/s".padStart(9)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"server CPU".padStart(12)}   (CPU: ms per committed transfer)`,
      row("tracing off", r.off),
      row("tracing on", r.on),
      `on / off     ${f(x["committed_per_s"]).padStart(9)} ${f(x["p50"]).padStart(8)} ${f(x["p99"]).padStart(8)} ${f(x["server_cpu_ms_per_commit"]).padStart(12)}`,
      `spans received: ${r.spans["received"]} in ${r.spans["exports"]} exports, ${r.spans["per_transfer_on"]} per transfer of the tracing servers (${r.spans["transfers_on"]} transfers)`,
      `audit: ${r.audit.passed ? "passed" : "FAILED"} (money conserved: ${r.audit.conserved}; settled: ${r.audit.settled.settled}; history problems: ${r.audit.problems})`,
    ].join("\n"),
  );
}

export async function main(argv: readonly string[]): Promise<number> {
  const o = parse(argv);
  if (o.engine_transfers !== undefined) {
    const sink = await startSink();
    const tracing = await startTracing({ url: `${sink.url}/v1/traces`, serviceName: "bench" });
    try {
      await engineOverhead({ transfers: o.engine_transfers, rounds: o.rounds, protocol: o.protocol }, tracing, sink.spans);
    } finally {
      await tracing.shutdown();
      await sink.close();
    }
    return 0;
  }
  return (await run(o)) ? 0 : 1;
}

if (process.argv[1]?.endsWith("otel.ts")) await runScript("bench:otel", USAGE, main);
