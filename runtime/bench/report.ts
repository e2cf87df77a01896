/**
 * The benchmark's results as data (written with --json) and as text. Latency
 * ratios are ours / floor (1.5 means 50% slower than the floor); the
 * throughput ratio is ours / floor too (0.5 means half the floor's rate).
 */
import type { HistoryAudit, Settled } from "./audit.ts";
import type { CpuUse } from "./cpu.ts";
import type { LoadResult, Progress } from "./load.ts";
import type { PhaseTotals } from "./target.ts";

export interface PhaseReport {
  readonly target: string;
  readonly clients: number;
  readonly measured_s: number;
  readonly committed: number;
  readonly committed_per_s: number;
  /** Request to answer of committed transfers. */
  readonly latency_ms: { p50: number | null; p95: number | null; p99: number | null; p99_9: number | null };
  readonly latency_mean_ms: number | null;
  /** Committed transfers and their latency, split: within one shard (one branch), across shards (two branches or more). */
  readonly by_shards: {
    readonly single: { committed: number; p50: number | null; p95: number | null; p99: number | null };
    readonly cross: { committed: number; p50: number | null; p95: number | null; p99: number | null };
  };
  readonly aborts: Record<string, number>;
  /** Request to answer of transfers answered aborted (presumed abort: the coordinator writes no record for them). */
  readonly abort_latency_ms: { aborted: number; p50: number | null; p99: number | null; mean: number | null };
  readonly in_doubt: number;
  readonly rejected: Record<string, number>;
  readonly lost: Record<string, number>;
  /** CPU use during the phase (warm-up included), per process of the run and for the machine. */
  readonly cpu: CpuUse;
  /** CPU milliseconds per committed transfer, per process. */
  readonly cpu_ms_per_commit: Record<string, number>;
  /**
   * Mean ms per phase during the rounds (warm-up included), as the target
   * measures it, over the transfers that have the phase: exec; prepare and
   * log (decision write), two branches or more; commit (XA COMMIT: ONE PHASE
   * before the answer for one branch, after the answer otherwise);
   * in_server (committed, request to reply inside the server; for the floor,
   * the whole transfer).
   */
  readonly phase_ms_mean: Record<string, number>;
}

export interface Goal {
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean;
}

export interface AuditReport {
  readonly total_before_cents: string;
  readonly total_after_cents: string;
  readonly conserved: boolean;
  readonly settled: Settled;
  readonly history: HistoryAudit;
  readonly passed: boolean;
}

export interface BenchReport {
  readonly started_at: string;
  readonly machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[] };
  readonly options: Record<string, unknown>;
  readonly server: PhaseReport;
  readonly floor: PhaseReport | null;
  readonly ratio_to_floor: { p50: number | null; p99: number | null; committed_per_s: number | null } | null;
  readonly goals: readonly Goal[];
  readonly audit: AuditReport;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

const split = (l: LoadResult["latency"]) => {
  const p = l.percentiles([50, 95, 99]);
  return { committed: l.count, p50: p[50], p95: p[95], p99: p[99] };
};

export function phaseReport(r: LoadResult, cpu: CpuUse, phases: PhaseTotals): PhaseReport {
  const p = r.latency.percentiles([50, 95, 99, 99.9]);
  const measured_s = r.measuredMs / 1000;
  const committed_per_s = measured_s > 0 ? r.committed / measured_s : 0;
  const cpu_ms_per_commit: Record<string, number> = {};
  if (committed_per_s > 0) for (const [name, cores] of Object.entries(cpu.cores)) cpu_ms_per_commit[name] = round((cores * 1000) / committed_per_s, 3);
  return {
    target: r.target,
    clients: r.clients,
    measured_s: round(measured_s),
    committed: r.committed,
    committed_per_s: round(committed_per_s, 1),
    latency_ms: { p50: p[50], p95: p[95], p99: p[99], p99_9: p[99.9] },
    latency_mean_ms: r.latency.mean() === null ? null : round(r.latency.mean()!, 3),
    by_shards: { single: split(r.latencySingle), cross: split(r.latencyCross) },
    aborts: r.aborts,
    abort_latency_ms: abortLatency(r),
    in_doubt: r.inDoubt,
    rejected: r.rejected,
    lost: r.unknown,
    cpu,
    cpu_ms_per_commit,
    phase_ms_mean: Object.fromEntries(Object.entries(phases).filter(([, v]) => v.count > 0).map(([k, v]) => [k, round((v.sum_s * 1000) / v.count, 3)])),
  };
}

function abortLatency(r: LoadResult): PhaseReport["abort_latency_ms"] {
  const p = r.latencyAborted.percentiles([50, 99]);
  const mean = r.latencyAborted.mean();
  return { aborted: r.latencyAborted.count, p50: p[50], p99: p[99], mean: mean === null ? null : round(mean, 3) };
}

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b));

export function ratioToFloor(ours: PhaseReport, floor: PhaseReport): NonNullable<BenchReport["ratio_to_floor"]> {
  return {
    p50: ratio(ours.latency_ms.p50, floor.latency_ms.p50),
    p99: ratio(ours.latency_ms.p99, floor.latency_ms.p99),
    committed_per_s: ratio(ours.committed_per_s, floor.committed_per_s),
  };
}

/** The goals of issue 4 that apply to this run's client count, as measured. */
export function goals(ours: PhaseReport, r: BenchReport["ratio_to_floor"]): Goal[] {
  const out: Goal[] = [];
  const ms = (x: number | null) => (x === null ? "n/a" : `${round(x)} ms`);
  if (ours.clients === 1) {
    out.push({ goal: "1 client: p50 <= 3 ms", measured: ms(ours.latency_ms.p50), met: ours.latency_ms.p50 !== null && ours.latency_ms.p50 <= 3 });
    if (r !== null) out.push({ goal: "1 client: p50 <= 1.5x the floor", measured: `${r.p50}x`, met: r.p50 !== null && r.p50 <= 1.5 });
  }
  // Issue 14: the coordinator's CPU per committed transfer (server process, /proc), throughput and p50 against the floor.
  const cpu = ours.cpu_ms_per_commit["server"];
  if (cpu !== undefined && (ours.clients === 1 || ours.clients === 64)) {
    const max = ours.clients === 1 ? 0.5 : 0.25;
    out.push({ goal: `${ours.clients} client${ours.clients === 1 ? "" : "s"}: coordinator CPU <= ${max} ms per committed transfer`, measured: `${cpu} ms`, met: cpu <= max });
  }
  if (ours.clients === 1 && r !== null) out.push({ goal: "1 client: p50 <= 1.3x the floor (issue 14)", measured: `${r.p50}x`, met: r.p50 !== null && r.p50 <= 1.3 });
  if (ours.clients === 64 && r !== null) out.push({ goal: "64 clients: throughput >= 0.95x the floor (issue 14)", measured: `${r.committed_per_s}x`, met: r.committed_per_s !== null && r.committed_per_s >= 0.95 });
  if (ours.clients === 64) {
    out.push({ goal: "64 clients: >= 2,000 committed/s", measured: `${ours.committed_per_s}/s`, met: ours.committed_per_s >= 2_000 });
    out.push({ goal: "64 clients: p99 <= 25 ms", measured: ms(ours.latency_ms.p99), met: ours.latency_ms.p99 !== null && ours.latency_ms.p99 <= 25 });
  }
  return out;
}

const f = (x: number | null) => (x === null ? "-" : x < 10 ? x.toFixed(2) : x.toFixed(1));

export function progressLine(name: string, p: Progress): string {
  return `[${name.padEnd(6)} ${String(p.second).padStart(3)}s${p.warmup ? " warm-up" : ""}] ${String(p.committedPerS).padStart(6)} tps  p50 ${f(p.p50_ms)}  p95 ${f(p.p95_ms)}  p99 ${f(p.p99_ms)} ms  aborts ${p.aborted}  errors ${p.errors}`;
}

export function formatReport(r: BenchReport): string {
  const row = (p: PhaseReport) =>
    `${p.target.padEnd(16)} ${String(p.committed_per_s).padStart(9)} ${f(p.latency_ms.p50).padStart(7)} ${f(p.latency_ms.p95).padStart(7)} ${f(p.latency_ms.p99).padStart(7)} ${f(p.latency_ms.p99_9).padStart(7)}   ${p.committed} committed in ${p.measured_s} s; aborts ${JSON.stringify(p.aborts)}; in doubt ${p.in_doubt}; refused ${JSON.stringify(p.rejected)}; lost ${JSON.stringify(p.lost)}`;
  const a = r.audit;
  const h = a.history;
  const lines = [
    "",
    `results (${r.server.clients} clients; load average ${r.machine.loadavg_start.map((x) => x.toFixed(2)).join(" ")} at start, ${r.machine.loadavg_end.map((x) => x.toFixed(2)).join(" ")} at end, ${r.machine.cpus} cores)`,
    `${"target".padEnd(16)} ${"commit/s".padStart(9)} ${"p50".padStart(7)} ${"p95".padStart(7)} ${"p99".padStart(7)} ${"p99.9".padStart(7)}   (ms, request to answer, committed transfers)`,
    row(r.server),
    ...(r.floor !== null ? [row(r.floor)] : []),
    "aborts (request to answer of transfers answered aborted, next to committed; presumed abort writes nothing for them):",
    ...[r.server, ...(r.floor !== null ? [r.floor] : [])].map(
      (p) =>
        `  ${p.target.padEnd(8)} aborted ${p.abort_latency_ms.aborted}: p50 ${f(p.abort_latency_ms.p50)} p99 ${f(p.abort_latency_ms.p99)} mean ${f(p.abort_latency_ms.mean)} ms; committed p50 ${f(p.latency_ms.p50)} p99 ${f(p.latency_ms.p99)} mean ${f(p.latency_mean_ms)} ms`,
    ),
    "cpu during each phase (cores busy on average; CPU ms per committed transfer):",
    ...[r.server, ...(r.floor !== null ? [r.floor] : [])].map(
      (p) =>
        `  ${p.target.padEnd(8)} ${Object.entries(p.cpu.cores)
          .map(([k, v]) => `${k} ${v} (${p.cpu_ms_per_commit[k] ?? "-"} ms)`)
          .join(", ")}; others ${p.cpu.others_cores ?? "?"}; machine ${p.cpu.machine_cores ?? "?"} of ${p.cpu.machine_cores_total ?? "?"} cores`,
    ),
    "mean ms per phase, over the transfers that have it (prepare and log: two branches or more; commit: XA COMMIT, ONE PHASE before the answer for one branch, after it otherwise; in_server: request to reply inside the server, for the floor the whole transfer):",
    ...[r.server, ...(r.floor !== null ? [r.floor] : [])].map(
      (p) =>
        `  ${p.target.padEnd(8)} ${Object.entries(p.phase_ms_mean)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}; answer seen by the client (mean) ${p.latency_mean_ms ?? "-"}`,
    ),
    ...(r.ratio_to_floor !== null ? [`ours / floor: p50 ${r.ratio_to_floor.p50}x, p99 ${r.ratio_to_floor.p99}x, throughput ${r.ratio_to_floor.committed_per_s}x`] : []),
    ...(r.goals.length > 0 ? ["goals:", ...r.goals.map((g) => `  ${g.met ? "met   " : "MISSED"} ${g.goal}: ${g.measured}`)] : []),
    "audit:",
    `  total ${a.total_before_cents} cents before, ${a.total_after_cents} after: ${a.conserved ? "conserved" : "CHANGED"}`,
    `  XA branches left prepared: ${a.settled.settled ? `none (settled ${a.settled.waited_ms} ms after the load)` : `${a.settled.prepared.length} after ${a.settled.waited_ms} ms: ${a.settled.prepared.slice(0, 5).join(", ")}`}`,
    `  history: ${h.history_rows} rows; ${h.committed_checked} committed applied exactly once, ${h.aborted_checked} aborted not applied, in doubt ${h.in_doubt_committed} committed + ${h.in_doubt_rolled_back} rolled back, ${h.unanswered_applied} of ${h.unanswered_max} lost answers applied`,
    ...h.problems.map((p) => `  PROBLEM ${p}`),
    ...(h.problems_total > h.problems.length ? [`  ... ${h.problems_total - h.problems.length} more problems`] : []),
    `audit ${a.passed ? "passed" : "FAILED"}`,
  ];
  return lines.join("\n");
}
