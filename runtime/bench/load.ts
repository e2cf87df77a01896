/**
 * The closed loop: `clients` concurrent clients, each sending its next
 * transfer as soon as the previous one is answered, for a warm-up and then a
 * measured period. Figures (throughput, latency, outcomes) count only what
 * started and ended within the measured period; the ledger keeps every
 * transfer of the run, warm-up and stragglers included, for the audit.
 *
 * One run drives one target. Comparing protocols is running this once per
 * target (several times each, interleaved, so that a noisy neighbour hits
 * them alike) and putting the results side by side.
 */
import { Latencies } from "./stats.ts";
import type { Outcome, TransferTarget } from "./target.ts";
import { transferStream, type Transfer, type WorkloadOptions } from "./workload.ts";

/** Transfers per run at most, whatever the duration: bounds the ledger's memory. */
export const TRANSFERS_MAX = 2_000_000;
const PROGRESS_INTERVAL_MS = 1_000;

/** Every transfer of a run by outcome: what the audit checks against the shards. */
export interface Ledger {
  readonly committed: Map<string, Transfer>;
  readonly aborted: Map<string, Transfer>;
  readonly inDoubt: Map<string, Transfer>;
  /** Requests whose answer was lost: each may have run, all-or-nothing. */
  unknown: number;
  /** Requests refused before anything ran. */
  rejected: number;
}

export function newLedger(): Ledger {
  return { committed: new Map(), aborted: new Map(), inDoubt: new Map(), unknown: 0, rejected: 0 };
}

export interface Progress {
  readonly second: number;
  readonly warmup: boolean;
  readonly committedPerS: number;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
  readonly aborted: number;
  /** in doubt + rejected + unknown in that second. */
  readonly errors: number;
}

export interface LoadOptions {
  readonly target: TransferTarget;
  readonly workload: WorkloadOptions;
  readonly clients: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Pause of a client after a rejected or unknown outcome, so that an outage is not a busy loop. */
  readonly backoffMs: number;
  /** Where to record outcomes; a fresh ledger when absent. Share one to audit several runs together. */
  readonly ledger?: Ledger;
  /** Gives each run its own transfer streams (client i uses stream streamOffset + i). */
  readonly streamOffset?: number;
  readonly onProgress?: (p: Progress) => void;
  /** Checked before every transfer: true ends the run early. */
  readonly stop?: () => boolean;
}

export interface LoadResult {
  readonly target: string;
  readonly clients: number;
  readonly measuredMs: number;
  readonly committed: number;
  /** Request to answer, committed transfers of the measured period. */
  readonly latency: Latencies;
  /** The same, split: transfers within one shard, and across two shards or more. */
  readonly latencySingle: Latencies;
  readonly latencyCross: Latencies;
  readonly aborts: Record<string, number>;
  /** Request to answer, transfers answered aborted in the measured period (presumed abort: nothing written for them). */
  readonly latencyAborted: Latencies;
  readonly inDoubt: number;
  readonly rejected: Record<string, number>;
  readonly unknown: Record<string, number>;
  readonly ledger: Ledger;
}

const addCounts = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

/** Two runs of the same target as one (rounds interleaved with other targets); they must share a ledger. */
export function mergeLoad(a: LoadResult, b: LoadResult): LoadResult {
  if (a.target !== b.target || a.clients !== b.clients || a.ledger !== b.ledger) throw new Error("mergeLoad: runs of different targets, client counts or ledgers");
  const latency = new Latencies();
  latency.addAll(a.latency);
  latency.addAll(b.latency);
  const latencySingle = new Latencies();
  latencySingle.addAll(a.latencySingle);
  latencySingle.addAll(b.latencySingle);
  const latencyCross = new Latencies();
  latencyCross.addAll(a.latencyCross);
  latencyCross.addAll(b.latencyCross);
  const latencyAborted = new Latencies();
  latencyAborted.addAll(a.latencyAborted);
  latencyAborted.addAll(b.latencyAborted);
  const aborts = { ...a.aborts };
  addCounts(aborts, b.aborts);
  const rejected = { ...a.rejected };
  addCounts(rejected, b.rejected);
  const unknown = { ...a.unknown };
  addCounts(unknown, b.unknown);
  return {
    target: a.target,
    clients: a.clients,
    measuredMs: a.measuredMs + b.measuredMs,
    committed: a.committed + b.committed,
    latency,
    latencySingle,
    latencyCross,
    aborts,
    latencyAborted,
    inDoubt: a.inDoubt + b.inDoubt,
    rejected,
    unknown,
    ledger: a.ledger,
  };
}

const bump = (r: Record<string, number>, k: string) => (r[k] = (r[k] ?? 0) + 1);

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  if (!(Number.isSafeInteger(o.clients) && o.clients >= 1)) throw new Error(`clients must be an integer >= 1 (got ${o.clients})`);
  const ledger = o.ledger ?? newLedger();
  const latency = new Latencies();
  const latencySingle = new Latencies();
  const latencyCross = new Latencies();
  const aborts: Record<string, number> = {};
  const latencyAborted = new Latencies();
  const rejected: Record<string, number> = {};
  const unknown: Record<string, number> = {};
  let committed = 0;
  let inDoubt = 0;
  let started = 0;
  let failure: Error | undefined;

  const t0 = performance.now();
  const measureFrom = t0 + o.warmupMs;
  const end = measureFrom + o.durationMs;
  let window = { latency: new Latencies(), committed: 0, aborted: 0, errors: 0 };
  let second = 0;
  const ticker = setInterval(() => {
    const w = window;
    window = { latency: new Latencies(), committed: 0, aborted: 0, errors: 0 };
    second++;
    const p = w.latency.percentiles([50, 95, 99]);
    o.onProgress?.({
      second,
      warmup: performance.now() < measureFrom + PROGRESS_INTERVAL_MS / 2,
      committedPerS: w.committed,
      p50_ms: p[50],
      p95_ms: p[95],
      p99_ms: p[99],
      aborted: w.aborted,
      errors: w.errors,
    });
  }, PROGRESS_INTERVAL_MS);

  const record = (out: Outcome, t: Transfer, ms: number, measured: boolean) => {
    switch (out.kind) {
      case "committed":
        ledger.committed.set(out.tx, t);
        window.committed++;
        window.latency.add(ms);
        if (measured) {
          committed++;
          latency.add(ms);
          (t.ops.some((op) => op.shard_id !== t.ops[0]!.shard_id) ? latencyCross : latencySingle).add(ms);
        }
        return;
      case "aborted":
        ledger.aborted.set(out.tx, t);
        window.aborted++;
        if (measured) {
          bump(aborts, out.reason);
          latencyAborted.add(ms);
        }
        return;
      case "in_doubt":
        ledger.inDoubt.set(out.tx, t);
        window.errors++;
        if (measured) inDoubt++;
        return;
      case "rejected":
        ledger.rejected++;
        window.errors++;
        if (measured) bump(rejected, out.reason);
        return;
      case "unknown":
        ledger.unknown++;
        window.errors++;
        if (measured) bump(unknown, out.reason);
        return;
    }
  };

  const client = async (i: number) => {
    const next = transferStream(o.workload, (o.streamOffset ?? 0) + i);
    while (failure === undefined && started < TRANSFERS_MAX && !(o.stop?.() ?? false)) {
      const now = performance.now();
      if (now >= end) return;
      const t = next();
      started++;
      let out: Outcome;
      try {
        out = await o.target.transfer(t);
      } catch (e) {
        failure ??= e as Error;
        return;
      }
      const done = performance.now();
      record(out, t, done - now, now >= measureFrom && done <= end);
      if (out.kind === "rejected" || out.kind === "unknown") await new Promise((r) => setTimeout(r, o.backoffMs));
    }
  };

  try {
    await Promise.all(Array.from({ length: o.clients }, (_, i) => client(i)));
  } finally {
    clearInterval(ticker);
  }
  if (failure !== undefined) throw failure;
  const measuredMs = Math.max(0, Math.min(performance.now(), end) - measureFrom);
  return { target: o.target.name, clients: o.clients, measuredMs, committed, latency, latencySingle, latencyCross, aborts, latencyAborted, inDoubt, rejected, unknown, ledger };
}
