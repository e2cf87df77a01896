/**
 * `npm run bench -- --compare`: the three protocols of the server (2pc,
 * parallel, speculative) on the same transfers, one HttpTarget per protocol
 * (the request's "protocol" field), rounds interleaved (2pc parallel
 * speculative 2pc parallel speculative ...) so that a neighbour's load hits
 * them alike. Round r of every protocol sends the same transfer streams.
 *
 * Scenarios (each on the same cluster, one after the other):
 *   uniform       the load flags as given (default: 15% cross-shard, no hot set);
 *   hot           most account draws from a few hot accounts per shard, where
 *                 2PC holds its row locks through the decision (small amounts,
 *                 so that the hot balances do not run dry);
 *   misspeculate  a share of transfers cross shards with an amount above all
 *                 the money of the cluster: the debit branch fails with
 *                 insufficient funds, the credit branch on the other shard
 *                 applies (speculative: applied, then compensated).
 *
 * After every round of every protocol: wait (bounded) until no XA branch of
 * ours is prepared and no speculative_undo row is in state 'undo', then the total
 * (balances + pending credits) must equal the one before that round. After
 * the scenario: the history against one ledger per protocol (exactly once,
 * aborted not applied, in doubt all-or-nothing).
 *
 * Hit rate (speculative): committed / (committed + aborted) among the
 * transfers answered in the measured periods, from the outcomes the clients
 * saw (every speculative abort comes after the branches were sent). The
 * server's speccommit_speculations_total{result} over the same rounds
 * (warm-up included) is printed beside it as a cross-check.
 */
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import type { ClusterAddresses } from "../server.ts";
import { auditHistory, totalCents, waitSettled, type HistoryAudit, type Settled } from "./audit.ts";
import { CpuTally } from "./cpu.ts";
import { counterByLabel, HttpTarget } from "./http-target.ts";
import { mergeLoad, newLedger, type Ledger, type LoadResult } from "./load.ts";
import { UsageError, type BenchOptions, type Scenario } from "./options.ts";
import { phaseReport, type Goal, type PhaseReport } from "./report.ts";
import { round } from "./round.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS, protocolNamed, type ProtocolName } from "../../spec/protocols/registry.ts";
import type { PhaseTotals } from "./target.ts";
import { validateWorkload, type ShardRange, type WorkloadOptions } from "./workload.ts";

/** Every registered protocol, in registry order. */
export const COMPARED = PROTOCOLS;
/** The protocol the others are measured against: the default (2PC). */
export const BASELINE: ProtocolName = DEFAULT_PROTOCOL;
export type Compared = ProtocolName;

/** The hot scenario's defaults when --hot-share / --hot-accounts are not given. */
export const HOT_SHARE_DEFAULT = 0.9;
export const HOT_ACCOUNTS_DEFAULT = 10;
/**
 * The hot scenario's largest amount when --amount-max is not given: 1.00.
 * With the default 100.00, a hot account's balance is a random walk of
 * about 50.00 a step that reaches 0 from 1000.00 within a few hundred
 * steps (a few seconds of load), and the scenario would measure
 * insufficient funds rather than lock contention.
 */
export const HOT_AMOUNT_MAX_DEFAULT = 100;
/** Issue 14: cross-shard transfers of parallel and speculative, p50 and p99 at least 30% below 2pc's. */
const CROSS_SHARD_GOAL_RATIO = 0.7;
/** Issue 14: on the uniform mix, parallel and speculative never worse than 2pc, p50 and p99. */
const MIX_GOAL_RATIO = 1;
const HIT_RATE_GOAL = 0.9;
/** Largest |delta| the server accepts (runtime/transfer.ts DELTA_CENTS_MAX). */
const DELTA_CENTS_MAX = 1_000_000_000_000_000;

export interface CompareDeps {
  readonly options: BenchOptions;
  readonly url: string;
  readonly addresses: ClusterAddresses;
  readonly shards: readonly ShardRange[];
  readonly pids: ReadonlyMap<string, number>;
  readonly started_at: string;
  readonly loadavg_start: number[];
  readonly stop: () => boolean;
}

/** One protocol's round, as audited right after it. */
export interface RoundAudit {
  readonly round: number;
  readonly total_before_cents: string;
  readonly total_after_cents: string;
  readonly conserved: boolean;
  readonly settled: Settled;
}

export interface CompareRow {
  readonly protocol: Compared;
  readonly report: PhaseReport;
  /** aborted / (committed + aborted + in doubt), measured period. */
  readonly abort_rate: number | null;
  /** speculative: committed / (committed + aborted), measured period, from the outcomes; null for the others (printed "-"). */
  readonly hit_rate: number | null;
  /** speculative: the server's speccommit_speculations_total{result}, compensations/<by> and releases/<by> over this protocol's rounds (warm-up included). */
  readonly server_speculations: Record<string, number> | null;
  /** Each figure over 2pc's (1 for 2pc itself; null when 2pc's is 0 or missing). */
  readonly ratio_to_2pc: { committed_per_s: number | null; p50: number | null; p95: number | null; p99: number | null; abort_rate: number | null };
  readonly audit: { readonly rounds: readonly RoundAudit[]; readonly passed: boolean };
}

export interface ScenarioReport {
  readonly scenario: Scenario;
  readonly description: string;
  readonly workload: Omit<WorkloadOptions, "shards"> & { shards: number };
  readonly rounds: number;
  readonly rows: readonly CompareRow[];
  readonly goals: readonly Goal[];
  readonly history: HistoryAudit;
  readonly passed: boolean;
}

export interface CompareReport {
  readonly started_at: string;
  readonly machine: { cpus: number; loadavg_start: number[]; loadavg_end: number[] };
  readonly options: Record<string, unknown>;
  readonly scenarios: readonly ScenarioReport[];
  readonly passed: boolean;
}

const round2 = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round2(a / b));
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** The workload of a scenario: the flags as given, the scenario's own defaults for what they leave unset. */
export function scenarioWorkload(s: Scenario, o: BenchOptions, shards: readonly ShardRange[], totalCentsBefore: bigint): { workload: WorkloadOptions; description: string } {
  const base: WorkloadOptions = {
    shards,
    crossShardShare: o.cross_shard_share,
    hotShare: o.hot_share,
    hotAccounts: o.hot_accounts,
    amountCentsMin: o.amount_cents_min,
    amountCentsMax: o.amount_cents_max,
    seed: o.seed,
  };
  const pct = (x: number) => `${round2(x * 100, 1)}%`;
  const amounts = `amounts ${o.amount_cents_min}..${o.amount_cents_max} cents`;
  switch (s) {
    case "uniform":
      return {
        workload: base,
        description: `${pct(base.crossShardShare)} cross-shard, ${base.hotShare > 0 ? `${pct(base.hotShare)} of draws on ${base.hotAccounts} hot accounts per shard` : "accounts uniform"}, ${amounts}`,
      };
    case "hot": {
      const hotShare = o.given.has("hot_share") ? o.hot_share : HOT_SHARE_DEFAULT;
      const hotAccounts = o.given.has("hot_accounts") ? o.hot_accounts : HOT_ACCOUNTS_DEFAULT;
      const amountCentsMax = o.given.has("amount_cents_max") ? o.amount_cents_max : Math.max(o.amount_cents_min, HOT_AMOUNT_MAX_DEFAULT);
      return {
        workload: { ...base, hotShare, hotAccounts, amountCentsMax },
        description: `${pct(hotShare)} of account draws on the ${hotAccounts} hot accounts of each shard, ${pct(base.crossShardShare)} cross-shard, amounts ${o.amount_cents_min}..${amountCentsMax} cents`,
      };
    }
    case "misspeculate": {
      const failing = totalCentsBefore + 1n;
      if (failing > BigInt(DELTA_CENTS_MAX)) throw new UsageError(`the cluster holds ${totalCentsBefore} cents: a failing transfer's amount would be above the server's limit of ${DELTA_CENTS_MAX}`);
      return {
        workload: { ...base, failingShare: o.misspeculate_share, failingAmountCents: Number(failing) },
        description: `${pct(o.misspeculate_share)} of transfers cross shards with ${failing} cents (all the money of the cluster + 1: the debit fails with insufficient funds, the credit on the other shard applies); the rest as uniform: ${pct(base.crossShardShare)} cross-shard, ${amounts}`,
      };
    }
  }
}

interface Run {
  readonly protocol: Compared;
  readonly target: HttpTarget;
  readonly ledger: Ledger;
  readonly cpu: CpuTally;
  readonly phases: PhaseTotals;
  readonly rounds: RoundAudit[];
  readonly speculations: Record<string, number>;
  result?: LoadResult;
}

/** The server's speculation counters: speccommit_speculations_total by result, speccommit_compensations_total and speccommit_releases_total (as compensations/<by>, releases/<by>). */
async function speculationCounts(t: HttpTarget): Promise<Record<string, number> | null> {
  try {
    const text = await t.metricsText();
    const out: Record<string, number> = { ...counterByLabel(text, "speccommit_speculations_total", "result") };
    for (const [k, v] of Object.entries(counterByLabel(text, "speccommit_compensations_total", "by"))) out[`compensations/${k}`] = v;
    for (const [k, v] of Object.entries(counterByLabel(text, "speccommit_releases_total", "by"))) out[`releases/${k}`] = v;
    return out;
  } catch {
    return null;
  }
}

async function runScenario(d: CompareDeps, s: Scenario): Promise<ScenarioReport> {
  const o = d.options;
  const shards = d.addresses.shards;
  // The previous scenario's tails (XA COMMITs after the answer, releases, the resolver) settle before anything is counted.
  const pre = await waitSettled(shards, [XID_FORMAT_ID], o.settle_timeout_s * 1000, { undo: true });
  if (!pre.settled) console.log(`${s}: the cluster did not settle before the scenario (${pre.prepared.length} prepared, ${pre.undo_left ?? 0} undo rows); measuring anyway`);
  let total = await totalCents(shards);
  const { workload, description } = scenarioWorkload(s, o, d.shards, total);
  try {
    validateWorkload(workload);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  console.log(`\nscenario ${s}: ${description}`);
  const since_us = Date.now() * 1000;
  const runs: Run[] = COMPARED.map((protocol) => ({
    protocol,
    target: new HttpTarget({ url: d.url, sockets: o.clients, protocol }),
    ledger: newLedger(),
    cpu: new CpuTally(),
    phases: {},
    rounds: [],
    speculations: {},
  }));
  try {
    for (let r = 0; r < o.rounds && !d.stop(); r++) {
      for (const run of runs) {
        if (d.stop()) break;
        const name = `${s}/${run.protocol}${o.rounds > 1 ? ` ${r + 1}/${o.rounds}` : ""}`;
        const specBefore = protocolNamed(run.protocol).speculates ? await speculationCounts(run.target) : null;
        const res = await round({
          name,
          target: run.target,
          workload,
          clients: o.clients,
          warmup_s: r === 0 ? o.warmup_s : 0,
          duration_s: o.duration_s / o.rounds,
          streamOffset: r * o.clients,
          ledger: run.ledger,
          pids: d.pids,
          cpu: run.cpu,
          phases: run.phases,
          stop: d.stop,
        });
        run.result = run.result === undefined ? res : mergeLoad(run.result, res);
        // Audit this run: settled (bounded), then the total against the one before it.
        const settled = await waitSettled(shards, [XID_FORMAT_ID], o.settle_timeout_s * 1000, { undo: true });
        const after = await totalCents(shards);
        run.rounds.push({ round: r + 1, total_before_cents: total.toString(), total_after_cents: after.toString(), conserved: after === total, settled });
        if (after !== total || !settled.settled) {
          console.log(`${name}: AUDIT total ${total} -> ${after} cents; ${settled.settled ? "settled" : `not settled after ${settled.waited_ms} ms: ${settled.prepared.length} prepared, ${settled.undo_left} undo rows`}`);
        }
        total = after;
        if (specBefore !== null) {
          const specAfter = await speculationCounts(run.target);
          if (specAfter !== null) for (const [k, v] of Object.entries(specAfter)) run.speculations[k] = (run.speculations[k] ?? 0) + v - (specBefore[k] ?? 0);
        }
      }
    }
  } finally {
    for (const run of runs) await run.target.close();
  }
  const ran = runs.filter((run) => run.result !== undefined);
  const history = await auditHistory(shards, ran.map((run) => run.ledger), since_us, ran.map((run) => run.protocol));
  const reports = ran.map((run) => ({ run, report: phaseReport(run.result!, run.cpu.use(), run.phases) }));
  const abortRate = (p: PhaseReport) => {
    const answered = p.committed + sum(p.aborts) + p.in_doubt;
    return answered === 0 ? null : round2(sum(p.aborts) / answered, 4);
  };
  const base = reports.find((x) => x.run.protocol === BASELINE)?.report ?? null;
  const rows: CompareRow[] = reports.map(({ run, report }) => {
    const aborted = sum(report.aborts);
    const hit_rate = protocolNamed(run.protocol).speculates && report.committed + aborted > 0 ? round2(report.committed / (report.committed + aborted), 4) : null;
    const r2 = (f: (p: PhaseReport) => number | null) => (base === null ? null : ratio(f(report), f(base)));
    return {
      protocol: run.protocol,
      report,
      abort_rate: abortRate(report),
      hit_rate,
      server_speculations: protocolNamed(run.protocol).speculates ? run.speculations : null,
      ratio_to_2pc: {
        committed_per_s: r2((p) => p.committed_per_s),
        p50: r2((p) => p.latency_ms.p50),
        p95: r2((p) => p.latency_ms.p95),
        p99: r2((p) => p.latency_ms.p99),
        abort_rate: r2(abortRate),
      },
      audit: { rounds: run.rounds, passed: run.rounds.every((a) => a.conserved && a.settled.settled) && (history.per_ledger.find((l) => l.name === run.protocol)?.problems_total ?? 1) === 0 },
    };
  });
  const passed = rows.length > 0 && rows.every((row) => row.audit.passed) && history.problems_total === 0;
  return { scenario: s, description, workload: { ...workload, shards: workload.shards.length }, rounds: o.rounds, rows, goals: scenarioGoals(s, o.clients, rows), history, passed };
}

/**
 * The goals of issue 14 that apply to a scenario, for parallel and
 * speculative against 2pc in the same run (uniform: the load flags as
 * given, 15% cross-shard by default, or every transfer with --cross-shard
 * 100): their cross-shard transfers' p50 and p99 at least 30% below 2pc's
 * cross-shard transfers' (by_shards.cross), and the whole mix never worse
 * than 2pc (p50 and p99 at most 1.0x). Speculative hit rate above 90% with
 * no failures injected (uniform and hot). A figure that is missing (no
 * cross-shard transfer committed) is "n/a", never met.
 */
export function scenarioGoals(s: Scenario, clients: number, rows: readonly CompareRow[]): Goal[] {
  const out: Goal[] = [];
  const who = `${clients} client${clients === 1 ? "" : "s"}`;
  const base = rows.find((row) => row.protocol === BASELINE);
  if (s === "uniform" && base !== undefined) {
    for (const row of rows) {
      if (row.protocol === BASELINE) continue;
      for (const p of ["p50", "p99"] as const) {
        const x = ratio(row.report.by_shards.cross[p], base.report.by_shards.cross[p]);
        const ms = row.report.by_shards.cross[p];
        out.push({ goal: `${who}: ${row.protocol} cross-shard ${p} at least 30% below 2pc's (<= ${CROSS_SHARD_GOAL_RATIO}x)`, measured: x === null ? "n/a" : `${x}x (${ms === null ? "-" : fmt(ms)} ms)`, met: x !== null && x <= CROSS_SHARD_GOAL_RATIO });
      }
      for (const p of ["p50", "p99"] as const) {
        const x = row.ratio_to_2pc[p];
        const ms = row.report.latency_ms[p];
        out.push({ goal: `${who}: ${row.protocol} ${p} of the whole mix never worse than 2pc (<= ${MIX_GOAL_RATIO}x)`, measured: x === null ? "n/a" : `${x}x (${ms === null ? "-" : fmt(ms)} ms)`, met: x !== null && x <= MIX_GOAL_RATIO });
      }
    }
  }
  if (s !== "misspeculate") {
    const spec = rows.find((row) => protocolNamed(row.protocol).speculates);
    if (spec !== undefined) {
      out.push({ goal: `${s}: speculative hit rate above 90% with no failures injected`, measured: spec.hit_rate === null ? "n/a" : `${round2(spec.hit_rate * 100, 2)}%`, met: spec.hit_rate !== null && spec.hit_rate > HIT_RATE_GOAL });
    }
  }
  return out;
}

const fmt = (x: number | null) => (x === null ? "-" : x < 10 ? x.toFixed(2) : x < 1000 ? x.toFixed(1) : Math.round(x).toLocaleString("en-US"));
const pctOf = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(x === 0 || x === 1 ? 0 : 2)}`);
const times = (x: number | null) => (x === null ? "" : `${x.toFixed(2)}x`);

export function formatScenario(sr: ScenarioReport, clients: number): string {
  const cell = (value: string, r: number | null) => `${value.padStart(8)} ${times(r).padEnd(6)}`;
  const header = `${"protocol".padEnd(12)} ${"commit/s".padStart(8)} ${"".padEnd(6)} ${"p50 ms".padStart(8)} ${"".padEnd(6)} ${"p95 ms".padStart(8)} ${"".padEnd(6)} ${"p99 ms".padStart(8)} ${"".padEnd(6)} ${"abort %".padStart(8)} ${"".padEnd(6)} ${"hit %".padStart(6)}`;
  const lines = [
    "",
    `== scenario ${sr.scenario} (${clients} client${clients === 1 ? "" : "s"}, ${sr.rounds} round${sr.rounds === 1 ? "" : "s"} per protocol, interleaved): ${sr.description}`,
    header,
    ...sr.rows.map(
      (row) =>
        `${row.protocol.padEnd(12)} ${cell(fmt(row.report.committed_per_s), row.ratio_to_2pc.committed_per_s)} ${cell(fmt(row.report.latency_ms.p50), row.ratio_to_2pc.p50)} ${cell(fmt(row.report.latency_ms.p95), row.ratio_to_2pc.p95)} ${cell(fmt(row.report.latency_ms.p99), row.ratio_to_2pc.p99)} ${cell(pctOf(row.abort_rate), row.ratio_to_2pc.abort_rate)} ${pctOf(row.hit_rate).padStart(6)}`,
    ),
    "(ratios: the protocol's figure over 2pc's; latency: request to answer of committed transfers; abort %: aborted / answered;",
    " hit %: speculative only, committed / (committed + aborted) from the answers; '-' for 2pc and parallel, which do not speculate)",
    ...sr.rows.map((row) => {
      const p = row.report;
      const spec = row.server_speculations !== null ? `; server counters over its rounds (speculations by result, compensations and releases by who ran them): ${JSON.stringify(row.server_speculations)}` : "";
      const al = p.abort_latency_ms;
      return `  ${row.protocol.padEnd(11)} ${p.committed} committed in ${p.measured_s} s; aborts ${JSON.stringify(p.aborts)} (abort latency p50 ${fmt(al.p50)}, p99 ${fmt(al.p99)} ms); in doubt ${p.in_doubt}; refused ${sum(p.rejected)}; lost ${sum(p.lost)}${spec}`;
    }),
    "  by transfer kind (committed; p50 / p95 / p99 ms; ratio of p50 and p99 to 2pc's):",
    ...sr.rows.map((row) => {
      const b = sr.rows.find((x) => x.protocol === BASELINE)?.report.by_shards;
      const k = (name: "single" | "cross") => {
        const x = row.report.by_shards[name];
        const r50 = b === undefined ? null : ratio(x.p50, b[name].p50);
        const r99 = b === undefined ? null : ratio(x.p99, b[name].p99);
        return `${name === "single" ? "one shard" : "cross-shard"} ${x.committed}: ${fmt(x.p50)} / ${fmt(x.p95)} / ${fmt(x.p99)} (${times(r50) || "-"}, ${times(r99) || "-"})`;
      };
      return `    ${row.protocol.padEnd(11)} ${k("single")}; ${k("cross")}`;
    }),
    "  mean ms per phase (server's metrics, warm-up included; apply: speculative local transactions; in_server: request to reply inside the server):",
    ...sr.rows.map(
      (row) =>
        `    ${row.protocol.padEnd(11)} ${Object.entries(row.report.phase_ms_mean)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}; client-side mean ${row.report.latency_mean_ms ?? "-"}`,
    ),
    "  cpu ms per committed transfer:",
    ...sr.rows.map(
      (row) =>
        `    ${row.protocol.padEnd(11)} ${Object.entries(row.report.cpu_ms_per_commit)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}; others ${row.report.cpu.others_cores ?? "?"} cores busy`,
    ),
    ...(sr.goals.length > 0 ? ["  goals:", ...sr.goals.map((g) => `    ${g.met ? "met   " : "MISSED"} ${g.goal}: ${g.measured}`)] : []),
    "  audit, after each protocol's every round (total = balances + pending credits; settled = no XA branch prepared, no speculative_undo row in state 'undo'):",
    ...sr.rows.map((row) => {
      const rs = row.audit.rounds;
      const first = rs[0];
      const waited = Math.max(0, ...rs.map((a) => a.settled.waited_ms));
      const undoMax = Math.max(0, ...rs.map((a) => a.settled.undo_max ?? 0));
      const h = sr.history.per_ledger.find((l) => l.name === row.protocol);
      const total = rs.every((a) => a.conserved) ? `total conserved in ${rs.length} of ${rs.length} rounds (${first?.total_before_cents ?? "?"} cents)` : `total CHANGED: ${rs.filter((a) => !a.conserved).map((a) => `round ${a.round} ${a.total_before_cents} -> ${a.total_after_cents}`).join("; ")}`;
      const settled = rs.every((a) => a.settled.settled)
        ? `settled (at most ${waited} ms after a round; at most ${undoMax} undo rows in state 'undo' seen at one poll, 0 left)`
        : `NOT SETTLED: ${rs.filter((a) => !a.settled.settled).map((a) => `round ${a.round}: ${a.settled.prepared.length} prepared [${a.settled.prepared.slice(0, 3).join(", ")}], ${a.settled.undo_left} undo rows [${(a.settled.undo_rows ?? []).join(", ")}]`).join("; ")}`;
      const hist = h === undefined ? "history: not checked" : `history: ${h.committed_checked} committed exactly once, ${h.aborted_checked} aborted not applied, in doubt ${h.in_doubt_committed} committed + ${h.in_doubt_rolled_back} rolled back, ${h.problems_total} problems`;
      return `    ${row.protocol.padEnd(11)} ${total}; ${settled}; ${hist}: ${row.audit.passed ? "passed" : "FAILED"}`;
    }),
    `    all: ${sr.history.history_rows} history rows; ${sr.history.unanswered_applied} of ${sr.history.unanswered_max} lost answers applied`,
    ...sr.history.problems.map((p) => `    PROBLEM ${p}`),
    ...(sr.history.problems_total > sr.history.problems.length ? [`    ... ${sr.history.problems_total - sr.history.problems.length} more problems`] : []),
    `  audit ${sr.passed ? "passed" : "FAILED"}`,
  ];
  return lines.join("\n");
}

export async function runCompare(d: CompareDeps): Promise<boolean> {
  const o = d.options;
  const scenarios: ScenarioReport[] = [];
  for (const s of o.scenarios) {
    if (d.stop()) break;
    const sr = await runScenario(d, s);
    scenarios.push(sr);
    console.log(formatScenario(sr, o.clients));
  }
  const report: CompareReport = {
    started_at: d.started_at,
    machine: { cpus: cpus().length, loadavg_start: d.loadavg_start, loadavg_end: loadavg() },
    options: { ...o, given: [...o.given], help: undefined, floor_duration_s: undefined },
    scenarios,
    passed: scenarios.length > 0 && scenarios.every((s) => s.passed),
  };
  console.log(
    `\ncompare: ${scenarios.map((s) => `${s.scenario} ${s.passed ? "passed" : "FAILED"}`).join(", ")}; load average ${report.machine.loadavg_start.map((x) => x.toFixed(2)).join(" ")} at start, ${report.machine.loadavg_end.map((x) => x.toFixed(2)).join(" ")} at end, ${report.machine.cpus} cores`,
  );
  if (o.json !== undefined) {
    writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`results written to ${o.json}`);
  }
  return report.passed;
}
