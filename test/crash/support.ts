// What the crash tests share: a 3-shard cluster with a cluster.json for the
// server child process, the transfer mix, a target that counts what is in
// flight, polling, and the server's flags (short timeouts, fast resolver).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ShardAddress } from "../../runtime/adapters/mysql-pool.ts";
import type { Outcome, TransferTarget } from "../../runtime/bench/target.ts";
import type { WorkloadOptions } from "../../runtime/bench/workload.ts";
import { addressesOfCluster } from "../../runtime/main.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

export interface CrashCluster {
  readonly cluster: TestCluster;
  readonly clusterFile: string;
  readonly shards: readonly ShardAddress[];
  readonly workload: WorkloadOptions;
  /** Stops the servers and removes the directories. */
  stop(): Promise<void>;
}

/** 3 shards x 1,000 accounts; half the transfers cross shards, 5% on 50 hot accounts, 0.01 to 5.00. */
export async function startCrashCluster(prefix: string): Promise<CrashCluster> {
  // innodb_lock_wait_timeout 1 s: a transfer stuck behind a row lock of a dead coordinator's branch gives up quickly.
  const cluster = await startTestCluster({ shards: 3, accountsPerShard: 1_000, lockWaitTimeoutS: 1 });
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
  return {
    cluster,
    clusterFile,
    shards: addressesOfCluster(cluster.describe()).shards,
    workload: {
      shards: cluster.shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId })),
      crossShardShare: 0.5,
      hotShare: 0.05,
      hotAccounts: 50,
      amountCentsMin: 1,
      amountCentsMax: 500,
      // Each scenario runs its own transfer streams (its own seed).
      seed: 0,
    },
    stop: async () => {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Counts requests in flight and commits, to show the crash hit a loaded system. */
export class Counting implements TransferTarget {
  readonly name: string;
  inFlight = 0;
  committed = 0;
  constructor(private readonly inner: TransferTarget) {
    this.name = inner.name;
  }
  async transfer(t: Parameters<TransferTarget["transfer"]>[0]): Promise<Outcome> {
    this.inFlight++;
    try {
      const o = await this.inner.transfer(t);
      if (o.kind === "committed") this.committed++;
      return o;
    } finally {
      this.inFlight--;
    }
  }
  phaseTotals(): ReturnType<TransferTarget["phaseTotals"]> {
    return this.inner.phaseTotals();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ok` every `poll_ms` until it holds; throws after `timeout_ms`. */
export async function until(what: string, ok: () => boolean, timeout_ms: number, poll_ms: number): Promise<void> {
  const deadline = performance.now() + timeout_ms;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout_ms} ms waiting for ${what}`);
    await sleep(poll_ms);
  }
}

/** `speccommit serve` flags for a crash test: the cluster file, a prefix, short timeouts, a resolver scan every 250 ms. */
export const serverArgs = (clusterFile: string, prefix: string, port: number): string[] => [
  "--cluster-file", clusterFile,
  "--port", String(port),
  "--etcd-prefix", prefix,
  "--resolver-interval-ms", "250",
  "--etcd-timeout-ms", "500",
  "--statement-timeout-ms", "2000",
  "--retry-delay-ms", "50",
  "--shutdown-grace-ms", "2000",
];
