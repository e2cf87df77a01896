/**
 * One round of one target: a warm-up, then a measured period of the closed
 * loop (load.ts), with the CPU of the run's processes and the target's own
 * phase times (GET /metrics for the server) read before and after. Both
 * `npm run bench` (server and floor in turns) and `--compare` (one target
 * per protocol in turns) are sequences of rounds.
 */
import { type CpuTally, sampleCpu } from "./cpu.ts";
import { runLoad, type Ledger, type LoadResult } from "./load.ts";
import { progressLine } from "./report.ts";
import type { PhaseTotals, TransferTarget } from "./target.ts";
import type { WorkloadOptions } from "./workload.ts";

/** A client pauses this long after a refused or lost request, so an outage is not a busy loop. */
export const BACKOFF_MS = 100;

export interface RoundOptions {
  /** Shown in progress lines. */
  readonly name: string;
  readonly target: TransferTarget;
  readonly workload: WorkloadOptions;
  readonly clients: number;
  readonly warmup_s: number;
  readonly duration_s: number;
  /** Client i of this round uses transfer stream streamOffset + i: round r of every target gets the same transfers. */
  readonly streamOffset: number;
  readonly ledger: Ledger;
  readonly pids: ReadonlyMap<string, number>;
  /** CPU and phase times of the round are added to these. */
  readonly cpu: CpuTally;
  readonly phases: PhaseTotals;
  readonly stop: () => boolean;
}

export async function round(o: RoundOptions): Promise<LoadResult> {
  console.log(`${o.name}: ${o.clients} clients, ${o.warmup_s} s warm-up, ${o.duration_s} s measured`);
  // Phase times are an explanation, not a result: a server that stopped answering GET /metrics (Ctrl-C reaches it too) costs only them.
  const phasesBefore = await o.target.phaseTotals().catch(() => null);
  const before = sampleCpu(o.pids);
  const result = await runLoad({
    target: o.target,
    workload: o.workload,
    clients: o.clients,
    warmupMs: o.warmup_s * 1000,
    durationMs: o.duration_s * 1000,
    backoffMs: BACKOFF_MS,
    ledger: o.ledger,
    streamOffset: o.streamOffset,
    onProgress: (p) => console.log(progressLine(o.name, p)),
    stop: o.stop,
  });
  o.cpu.add(before, sampleCpu(o.pids));
  const phasesAfter = await o.target.phaseTotals().catch(() => null);
  if (phasesBefore !== null && phasesAfter !== null) {
    for (const [phase, after] of Object.entries(phasesAfter)) {
      const b = phasesBefore[phase] ?? { sum_s: 0, count: 0 };
      const into = (o.phases[phase] ??= { sum_s: 0, count: 0 });
      into.sum_s += after.sum_s - b.sum_s;
      into.count += after.count - b.count;
    }
  }
  return result;
}
