// kill -9 in the middle of load, with the real servers: the coordinator
// (a child process), one MariaDB shard, etcd. After the restart and once the
// resolver has settled: no branch of ours prepared, the total unchanged,
// every transfer answered committed applied exactly once, none answered
// aborted applied at all, every other one all-or-nothing (runtime/bench/audit.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ShardAddress } from "../../runtime/adapters/mysql-pool.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { auditHistory, preparedBranches, totalCents, waitSettled } from "../../runtime/bench/audit.ts";
import { HttpTarget } from "../../runtime/bench/http-target.ts";
import { runLoad, type LoadResult } from "../../runtime/bench/load.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import type { TransferTarget } from "../../runtime/bench/target.ts";
import type { WorkloadOptions } from "../../runtime/bench/workload.ts";
import type { TestCluster } from "../support/cluster.ts";
import { Counting, serverArgs as crashServerArgs, startCrashCluster, until as untilEvery, type CrashCluster } from "./support.ts";

const CLIENTS = 200;
/** Commits before the crash: the load is in full swing. */
const COMMITTED_BEFORE_CRASH = 300;
/** Commits after the restart: service is back, and the recovered system takes load. */
const COMMITTED_AFTER_RESTART = 200;
const PHASE_WAIT_MS = 30_000;
/** Hard bound on the load of one scenario, whatever happens. */
const LOAD_MAX_MS = 60_000;
const SETTLE_WAIT_MS = 30_000;
const DOWN_MS = 500;
const POLL_MS = 20;

let crash: CrashCluster;
let cluster: TestCluster;
let clusterFile: string;
let shards: readonly ShardAddress[];
let workload: WorkloadOptions;

beforeAll(async () => {
  crash = await startCrashCluster("speccommit-crash-");
  ({ cluster, clusterFile, shards, workload } = crash);
});

afterAll(async () => {
  await crash?.stop();
});

const until = (what: string, ok: () => boolean, timeout_ms: number) => untilEvery(what, ok, timeout_ms, POLL_MS);
const serverArgs = (prefix: string, port: number) => crashServerArgs(clusterFile, prefix, port);

/**
 * Runs the load, waits for COMMITTED_BEFORE_CRASH commits, calls `crash`
 * (kill -9 something and bring it back; it may replace the server), waits
 * for COMMITTED_AFTER_RESTART more, stops the load, lets the resolver
 * settle, and audits.
 */
/** Our prepared branches on the shards that answer (one may be the one just killed): what the resolver will have to settle. */
async function orphans(): Promise<number> {
  const counts = await Promise.all(shards.map((s) => preparedBranches([s], XID_FORMAT_ID).then((l) => l.length, () => 0)));
  return counts.reduce((a, b) => a + b, 0);
}

/** The sum of a metric's series whose labels include every pair of `labels`, in a Prometheus text page. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

type Crash = (server: ServerProcess, afterKill: () => Promise<void>) => Promise<ServerProcess>;

/**
 * Evidence that the kill hit work in progress, from the outcomes and the
 * running server's metrics; a scenario whose crash interrupted nothing
 * would prove nothing about recovery.
 */
type Interrupted = (result: LoadResult, metrics: string) => { what: string; count: number };

async function scenario(name: string, seed: number, crash: Crash, interrupted: Interrupted): Promise<void> {
  const prefix = `crash-${name}/`;
  const since_us = Date.now() * 1000;
  const before = await totalCents(shards);
  let server = await startServerProcess(serverArgs(prefix, 0));
  let stopped = false;
  try {
    await loadCrashAudit();
    stopped = true;
    expect(await server.stop()).toBe(0);
  } finally {
    if (!stopped) await server.kill9();
  }

  async function loadCrashAudit(): Promise<void> {
    const target = new Counting(new HttpTarget({ url: server.url, sockets: CLIENTS }));
    let stop = false;
    const t0 = performance.now();
    const load: Promise<LoadResult> = runLoad({
      target,
      workload: { ...workload, seed },
      clients: CLIENTS,
      warmupMs: 0,
      durationMs: LOAD_MAX_MS,
      backoffMs: 50,
      stop: () => stop,
    });
    let result: LoadResult;
    let inFlightAtCrash = 0;
    let orphansAtKill = 0;
    try {
      await until(`${COMMITTED_BEFORE_CRASH} commits before the crash`, () => target.committed >= COMMITTED_BEFORE_CRASH, PHASE_WAIT_MS);
      inFlightAtCrash = target.inFlight;
      server = await crash(server, async () => {
        orphansAtKill = await orphans();
      });
      const committedAtRestart = target.committed;
      await until(`${COMMITTED_AFTER_RESTART} commits after the restart`, () => target.committed >= committedAtRestart + COMMITTED_AFTER_RESTART, PHASE_WAIT_MS);
    } finally {
      stop = true;
      result = await load;
      await target.close();
    }
    const loadMs = Math.round(performance.now() - t0);
    const settled = await waitSettled(shards, [XID_FORMAT_ID], SETTLE_WAIT_MS);
    const after = await totalCents(shards);
    const history = await auditHistory(shards, [result.ledger], since_us);
    const l = result.ledger;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const actions = ["commit", "rollback", "presume_abort", "forget"].map((a) => `${a} ${metricSum(metrics, "speccommit_resolver_actions_total", { action: a })}`).join(", ");
    const hit = interrupted(result, metrics);
    console.log(
      [
        `crash ${name}: ${loadMs} ms of load by ${CLIENTS} clients, ${inFlightAtCrash} transfers in flight at the kill, ${orphansAtKill} of our branches prepared just after it`,
        `  answers: ${l.committed.size} committed, ${l.aborted.size} aborted ${JSON.stringify(result.aborts)}, ${l.inDoubt.size} in doubt, ${l.unknown} lost ${JSON.stringify(result.unknown)}, ${l.rejected} refused ${JSON.stringify(result.rejected)}`,
        `  settled: ${settled.settled} ${settled.waited_ms} ms after the load (then ${settled.prepared_max} branches prepared); resolver actions of the running server: ${actions}`,
        `  total: ${before} cents before, ${after} after`,
        `  history: ${history.history_rows} rows; ${history.committed_checked} committed applied exactly once, ${history.aborted_checked} aborted not applied, in doubt ${history.in_doubt_committed} committed + ${history.in_doubt_rolled_back} rolled back, ${history.unanswered_applied} of ${history.unanswered_max} lost answers applied (all-or-nothing)`,
        `  interrupted: ${hit.count} ${hit.what}`,
        ...history.problems.map((p) => `  PROBLEM ${p}`),
      ].join("\n"),
    );
    expect(inFlightAtCrash).toBeGreaterThanOrEqual(CLIENTS / 2);
    expect(settled).toMatchObject({ settled: true, prepared: [] });
    expect(after).toBe(before);
    expect(history.problems_total).toBe(0);
    expect(history.committed_checked).toBeGreaterThanOrEqual(COMMITTED_BEFORE_CRASH + COMMITTED_AFTER_RESTART);
    expect(hit.count).toBeGreaterThan(0);
  }
}

describe("kill -9 mid-load, restart: resolved, conserved, exactly once", () => {
  it("the coordinator server", async () => {
    await scenario("coordinator", 1, async (server, afterKill) => {
      await server.kill9();
      await afterKill();
      await new Promise((r) => setTimeout(r, DOWN_MS));
      // Same port: the clients keep their URL.
      return startServerProcess(serverArgs("crash-coordinator/", server.port));
    }, (r) => ({ what: "answers lost to the kill (connection reset)", count: r.unknown["ECONNRESET"] ?? 0 }));
  }, 150_000);

  it("one shard", async () => {
    const db = cluster.shard("shard-b").db;
    await scenario("shard", 2, async (server, afterKill) => {
      await db.kill9();
      await afterKill();
      await new Promise((r) => setTimeout(r, DOWN_MS));
      await db.restart();
      return server;
    }, (_r, m) => ({ what: "failed statements on shard-b (speccommit_shard_errors_total)", count: metricSum(m, "speccommit_shard_errors_total", { shard: "shard-b" }) }));
  }, 150_000);

  it("etcd", async () => {
    await scenario("etcd", 3, async (server, afterKill) => {
      await cluster.etcd.kill9();
      await afterKill();
      await new Promise((r) => setTimeout(r, DOWN_MS));
      await cluster.etcd.restart();
      return server;
    }, (_r, m) => ({
      what: "failed etcd writes and partial resolver scans",
      count: metricSum(m, "speccommit_txlog_write_duration_seconds_count", { result: "error" }) + metricSum(m, "speccommit_resolver_scans_total", { result: "partial" }),
    }));
  }, 150_000);
});
