/**
 * `npm run bench`: the coordinator under a closed-loop load, then the floor
 * (the same transfers straight against the shards, floor.ts), then the audit
 * (audit.ts). docs/benchmarks.md says how to read it.
 *
 *   npm run bench                                  # fresh local cluster + server, 64 clients, 20 s
 *   npm run bench -- --clients 1 --duration 10 --json out/bench-1.json
 *   npm run bench -- --url http://127.0.0.1:8080 --cluster-file .speccommit/cluster.json
 *   npm run bench -- --compare --scenario all     # 2pc vs parallel vs speculative (compare.ts)
 *   npm run bench -- --chaos --duration-s 60      # faults under load, 3 coordinators vs 1 (chaos.ts)
 *
 * Exit status: 0 the audit passed, 1 it failed or the run failed, 2 bad usage.
 * Goals are reported as measured; missing one does not fail the run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import { down, up, type ClusterFile } from "../cluster/cluster.ts";
import { addressesFromClusterFile } from "../main.ts";
import type { ClusterAddresses } from "../server.ts";
import { auditHistory, totalCents, waitSettled } from "./audit.ts";
import { FLOOR_FORMAT_ID, FloorTarget } from "./floor.ts";
import { HttpTarget, UnexpectedAnswer } from "./http-target.ts";
import { CpuTally } from "./cpu.ts";
import { runCompare } from "./compare.ts";
import { mergeLoad, newLedger, type Ledger, type LoadResult } from "./load.ts";
import { parseOptions, UsageError, USAGE, type BenchOptions } from "./options.ts";
import { formatReport, goals, phaseReport, ratioToFloor, type BenchReport } from "./report.ts";
import { round } from "./round.ts";
import { deadlockMain } from "./deadlock.ts";
import { parseVariantOptions, runVariants } from "./variants.ts";
import { formatSnapshotReport, startSnapshotProbe, type SnapshotBenchReport } from "./snapshot.ts";
import { startServerProcess, type ServerProcess } from "./server-process.ts";
import type { PhaseTotals, TransferTarget } from "./target.ts";
import { validateWorkload, type ShardRange, type WorkloadOptions } from "./workload.ts";
import { onInterrupt } from "./cli.ts";

/** Connections per shard for the floor: one per client plus the commits still running, within MariaDB's 200. */
const FLOOR_CONNECTIONS_MAX = 150;

interface Target {
  url: string;
  clusterFile: string;
  /** The server's pid when this run started it. */
  serverPid?: number;
  /** Stops what this run started. */
  cleanup(): Promise<void>;
}

async function startTarget(o: BenchOptions, log: (line: string) => void): Promise<Target> {
  if (o.url !== undefined) return { url: o.url, clusterFile: resolve(o.cluster_file!), cleanup: async () => {} };
  const fresh = o.cluster_dir === undefined;
  const dir = o.cluster_dir ?? mkdtempSync(join(tmpdir(), "speccommit-bench-"));
  const r = await up({ dir, log: (line) => log(`cluster: ${line}`) });
  log(`cluster in ${r.cluster.dir}: ${r.reused.length > 0 ? `reused ${r.reused.join(", ")}` : "started"} (${r.totalMs} ms)`);
  const clusterFile = join(r.cluster.dir, "cluster.json");
  let server: ServerProcess;
  try {
    server = await startServerProcess(["--cluster-file", clusterFile, "--port", "0", ...o.server_args], {
      ...(o.cpu_prof_dir !== undefined ? { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", resolve(o.cpu_prof_dir)] } : {}),
    });
  } catch (e) {
    if (fresh) await down({ dir }).finally(() => rmSync(dir, { recursive: true, force: true }));
    throw e;
  }
  log(`server: ${server.url} (pid ${server.pid}${o.cpu_prof_dir !== undefined ? `, CPU profile to ${resolve(o.cpu_prof_dir)} when it stops` : ""})`);
  return {
    url: server.url,
    clusterFile,
    serverPid: server.pid,
    cleanup: async () => {
      const code = await server.stop();
      if (code !== 0) log(`server exited with ${code}:\n${server.output().slice(-2000)}`);
      if (fresh) {
        await down({ dir });
        rmSync(dir, { recursive: true, force: true });
      } else {
        log(`cluster in ${dir} left running (speccommit cluster down --dir ${dir} stops it)`);
      }
    },
  };
}

function readCluster(clusterFile: string): Partial<ClusterFile> {
  return JSON.parse(readFileSync(clusterFile, "utf8")) as Partial<ClusterFile>;
}

function shardRanges(file: Partial<ClusterFile>, clusterFile: string): ShardRange[] {
  const shards = file.shards;
  if (!Array.isArray(shards) || shards.some((s) => !Number.isSafeInteger(s.firstAccountId) || !Number.isSafeInteger(s.lastAccountId))) {
    throw new UsageError(`${clusterFile}: not a speccommit cluster file (shards with firstAccountId and lastAccountId)`);
  }
  return shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId }));
}

/**
 * The processes whose CPU time a phase reports: the server (when started
 * here), each shard and etcd (only when their command line names their data
 * directory: a pid in an old cluster.json may belong to another process by
 * now), and this benchmark.
 */
function processes(file: Partial<ClusterFile>, serverPid: number | undefined): Map<string, number> {
  const named = (pid: number, dataDir: string) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dataDir);
    } catch {
      return false;
    }
  };
  const pids = new Map<string, number>();
  if (serverPid !== undefined) pids.set("server", serverPid);
  for (const s of file.shards ?? []) if (named(s.pid, s.dataDir)) pids.set(s.name, s.pid);
  if (file.etcd !== undefined && named(file.etcd.pid, file.etcd.dataDir)) pids.set("etcd", file.etcd.pid);
  pids.set("bench", process.pid);
  return pids;
}

/** Set by the first SIGINT/SIGTERM: the load stops, the audit and the cleanup still run (a fresh cluster's servers are detached and would outlive us). */
let interrupted = false;

async function run(o: BenchOptions): Promise<boolean> {
  const log = (line: string) => console.log(line);
  const started_at = new Date().toISOString();
  const loadavg_start = loadavg();
  const target = await startTarget(o, log);
  try {
    const addresses: ClusterAddresses = addressesFromClusterFile(target.clusterFile);
    const cluster = readCluster(target.clusterFile);
    const pids = processes(cluster, target.serverPid);
    if (o.compare) {
      return await runCompare({ options: o, url: target.url, addresses, shards: shardRanges(cluster, target.clusterFile), pids, started_at, loadavg_start, stop: () => interrupted });
    }
    const workload: WorkloadOptions = {
      shards: shardRanges(cluster, target.clusterFile),
      crossShardShare: o.cross_shard_share,
      hotShare: o.hot_share,
      hotAccounts: o.hot_accounts,
      amountCentsMin: o.amount_cents_min,
      amountCentsMax: o.amount_cents_max,
      seed: o.seed,
    };
    try {
      validateWorkload(workload);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const since_us = Date.now() * 1000;
    const before = await totalCents(addresses.shards);
    // The server and the floor take turns, round by round, on the same transfers: a neighbour's load then weighs on both alike.
    const targets: Array<{ target: TransferTarget; ledger: Ledger; cpu: CpuTally; phases: PhaseTotals; duration_s: number; result?: LoadResult }> = [
      {
        target: new HttpTarget({ url: target.url, sockets: o.clients, ...(o.protocol !== undefined ? { protocol: o.protocol } : {}) }),
        ledger: newLedger(),
        cpu: new CpuTally(),
        phases: {},
        duration_s: o.duration_s,
      },
    ];
    if (o.floor_duration_s > 0) {
      targets.push({
        target: new FloorTarget({ shards: addresses.shards, etcd: addresses.etcd, ...(addresses.etcdTls !== undefined ? { etcdTls: addresses.etcdTls } : {}), prefix: `bench-floor-${process.pid}/`, connectionsPerShard: Math.min(FLOOR_CONNECTIONS_MAX, o.clients * 2) }),
        ledger: newLedger(),
        cpu: new CpuTally(),
        phases: {},
        duration_s: o.floor_duration_s,
      });
    }
    const probe = o.snapshots ? startSnapshotProbe(target.url, workload.shards) : null;
    let snapshots: SnapshotBenchReport | null = null;
    try {
      for (let r = 0; r < o.rounds && !interrupted; r++) {
        for (const t of targets) {
          if (probe !== null) probe.active = t === targets[0];
          const name = `${t.target.name}${o.rounds > 1 ? ` ${r + 1}/${o.rounds}` : ""}`;
          const res = await round({
            name,
            target: t.target,
            workload,
            clients: o.clients,
            warmup_s: r === 0 ? o.warmup_s : 0,
            duration_s: t.duration_s / o.rounds,
            streamOffset: r * o.clients,
            ledger: t.ledger,
            pids,
            cpu: t.cpu,
            phases: t.phases,
            stop: () => interrupted,
          });
          t.result = t.result === undefined ? res : mergeLoad(t.result, res);
        }
      }
    } finally {
      snapshots = (await probe?.stop()) ?? null;
      for (const t of targets) await t.target.close();
    }
    // A target that never ran (interrupted before its turn) has no report.
    const reports = targets.flatMap((t) => (t.result === undefined ? [] : [phaseReport(t.result, t.cpu.use(), t.phases)]));
    const ours = reports[0]!;
    const floor = reports[1] ?? null;
    console.log(`audit: waiting up to ${o.settle_timeout_s} s for the resolver to settle every branch`);
    const settled = await waitSettled(addresses.shards, [XID_FORMAT_ID, FLOOR_FORMAT_ID], o.settle_timeout_s * 1000);
    const after = await totalCents(addresses.shards);
    const history = await auditHistory(addresses.shards, targets.map((t) => t.ledger), since_us);
    const ratio = floor !== null ? ratioToFloor(ours, floor) : null;
    const report: BenchReport = {
      started_at,
      machine: { cpus: cpus().length, loadavg_start, loadavg_end: loadavg() },
      options: { ...o, help: undefined, given: undefined, compare: undefined, scenarios: undefined, misspeculate_share: undefined, snapshots: undefined },
      server: ours,
      floor,
      ratio_to_floor: ratio,
      goals: goals(ours, ratio),
      audit: {
        total_before_cents: before.toString(),
        total_after_cents: after.toString(),
        conserved: before === after,
        settled,
        history,
        passed: before === after && settled.settled && history.problems_total === 0,
      },
    };
    console.log(formatReport(report));
    if (snapshots !== null) console.log(formatSnapshotReport(snapshots));
    if (o.json !== undefined) {
      writeFileSync(o.json, `${JSON.stringify(snapshots === null ? report : { ...report, snapshots }, null, 2)}\n`);
      console.log(`results written to ${o.json}`);
    }
    return report.audit.passed;
  } finally {
    await target.cleanup();
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  // Two runs of their own (runtime/bench/variants.ts, deadlock.ts), each with its flags: server configurations in turns, and the deadlock scenario (detector on vs off).
  if (argv.includes("--variant")) return runVariants(parseVariantOptions(argv)).catch((e: unknown) => (console.error(`bench: ${(e as Error).message}`), 2));
  const sc = argv.indexOf("--scenario");
  if (sc >= 0 && argv[sc + 1] === "deadlock" && !argv.includes("--compare")) {
    return deadlockMain([...argv.slice(0, sc), ...argv.slice(sc + 2)]).catch((e: unknown) => (console.error(`bench: ${(e as Error).message}`), 2));
  }
  // --chaos has its own flags and run (chaos.ts).
  if (argv.includes("--chaos")) return (await import("./chaos.ts")).chaosMain(argv.filter((a) => a !== "--chaos"));
  let o: BenchOptions;
  try {
    o = parseOptions(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`bench: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  // The same Ctrl-C twice at once (the terminal's and tsx's relay) is one interrupt (cli.ts onInterrupt).
  onInterrupt(
    (signal) => {
      interrupted = true;
      console.error(`bench: ${signal}: stopping the load; auditing and cleaning up (${signal} again to exit at once)`);
    },
    (signal) => {
      console.error(`bench: ${signal} again, exiting now; servers this run started may still run (speccommit cluster down --dir <dir> stops them)`);
      process.exit(1);
    },
  );
  try {
    return (await run(o)) ? 0 : 1;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`bench: ${e.message}`);
      return 2;
    }
    if (e instanceof UnexpectedAnswer) {
      console.error(`bench: ${e.message}\n(the load stopped there: check --protocol and the server's log)`);
      return 1;
    }
    console.error(`bench: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
