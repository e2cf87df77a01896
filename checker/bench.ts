/**
 * `npm run bench:checker`: first the project's protocol models (readable
 * object states, collapsed by spec/env/collapse.ts), the three configurations
 * issue 12 measured, with the code paths of before (`speccommit check
 * --before`: the canonical-JSON collapser and the world's old flight
 * handling, kept in the code) and of now, side by side in one run, with the
 * load average and issue 12's 5x goal;
 * then TwoPhase with RM = 7, 8, 9 on our checker (1 and 2 workers) and on
 * SPIN (checker/bench/twophase.pml, full state storage, no partial-order
 * reduction). Each run is a child process so that its time and peak RSS are
 * its own. Counts must equal TLC's (TwoPhase) and each other's (the two
 * encoders); the tables say if any differs.
 *
 * Then the same protocol configurations with 1 and 2 workers (scaling,
 * memory per state).
 *
 *   npm run bench:checker [-- --rm 7,8,9|none] [--workers 1,2] [--protocols all|none|MODEL,...] [--rounds N]
 *                         [--encoders none] [--scaling none] [--scaling-max-distinct N (default 300000)] [--spin auto|off]
 *
 * SPIN and gcc, when missing, are installed for the SPIN column as root
 * (scripts/install-system-deps.sh spin gcc); `--spin off` leaves the column
 * out. `--help` prints the usage; a wrong option is refused (exit 2).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm as removeDir } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync, writeFileSync } from "node:fs";
import { ISSUE_12_BENCH as ISSUE_12, suite } from "./suite.config.ts";
import { runCheckerScript, UserError } from "./errors.ts";
import type { SuiteEntry } from "./suite.ts";
import { twoPhaseFactory } from "../spec/reference/twophase.ts";
import { tcommitFactory } from "../spec/reference/tcommit.ts";
import { countdownFactory } from "../spec/reference/countdown.ts";

const TLC: Record<number, { distinct: number; generated: number; depth: number }> = {
  3: { distinct: 288, generated: 1_146, depth: 11 },
  4: { distinct: 1_568, generated: 8_258, depth: 14 },
  5: { distinct: 8_832, generated: 58_146, depth: 17 },
  6: { distinct: 50_816, generated: 402_306, depth: 20 },
  7: { distinct: 296_448, generated: 2_744_706, depth: 23 },
  8: { distinct: 1_745_408, generated: 18_507_778, depth: 26 },
  9: { distinct: 10_340_352, generated: 123_558_402, depth: 29 },
};

interface Row {
  rm: number;
  engine: string;
  distinct: number;
  generated: number;
  depth: number | undefined;
  wallSeconds: number;
  peakRssMb: number;
  /** Ours: the search's own time and the CPU of every thread over it (`check --json`), and the 1-minute load average after the run. */
  searchSeconds?: number;
  cpuSeconds?: number;
  load?: number;
}

const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs a child to completion, sampling its peak RSS (VmHWM) from /proc while it runs. */
function runChild(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string; seconds: number; peakRssMb: number; code: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let peakKb = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const sample = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, "utf8")
        .then((s) => {
          const m = /VmHWM:\s+(\d+) kB/.exec(s);
          if (m) peakKb = Math.max(peakKb, Number(m[1]));
        })
        .catch(() => undefined);
    }, 50);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(sample);
      resolve({ stdout, stderr, seconds: (performance.now() - started) / 1000, peakRssMb: Math.round(peakKb / 1024), code: code ?? -1 });
    });
  });
}

async function ours(rm: number, workers: number): Promise<Row> {
  const r = await runChild(
    process.execPath,
    ["--max-old-space-size=4096", join(root, "bin/speccommit.js"), "check", "TwoPhase", "--set", `RM=${rm}`, "--workers", String(workers), "--json", "--quiet", "--out", join(tmpdir(), "speccommit-bench-out")],
    root,
  );
  if (r.code !== 0) throw new Error(`speccommit check failed (exit ${r.code}): ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { distinct: number; generated: number; depth: number; peakRssMb: number; seconds: number; cpuSeconds: number };
  return {
    rm,
    engine: `speccommit w=${workers}`,
    distinct: j.distinct,
    generated: j.generated,
    depth: j.depth,
    wallSeconds: r.seconds,
    peakRssMb: Math.max(r.peakRssMb, j.peakRssMb),
    searchSeconds: j.seconds,
    cpuSeconds: j.cpuSeconds,
    load: loadavg()[0]!,
  };
}

function hasTool(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/** Compiles pan for this RM in `dir`; returns the compile time. */
function buildPan(rm: number, dir: string): number {
  const started = performance.now();
  const model = join(root, "checker/bench/twophase.pml");
  const spin = spawnSync("spin", ["-a", `-DRM=${rm}`, model], { cwd: dir, encoding: "utf8" });
  if (spin.status !== 0) throw new Error(`spin -a failed: ${spin.stderr || spin.stdout}`);
  // pan prints its counters with 8 significant digits (%9.8g): 123,558,402 would read 1.235584e+08.
  const pan = join(dir, "pan.c");
  writeFileSync(pan, readFileSync(pan, "utf8").replaceAll("%9.8g", "%12.12g"));
  // Full state storage (no bitstate), no partial-order reduction, safety only.
  const gcc = spawnSync("gcc", ["-O2", "-DNOREDUCE", "-DSAFETY", "-DMEMLIM=8192", "-o", "pan", "pan.c"], { cwd: dir, encoding: "utf8" });
  if (gcc.status !== 0) throw new Error(`gcc pan.c failed: ${gcc.stderr}`);
  return (performance.now() - started) / 1000;
}

async function spin(rm: number, dir: string): Promise<Row> {
  // -E: no invalid-end-state check (TwoPhase never stops); -n: no unreached-code report; -w26: 2^26 hash buckets.
  const r = await runChild(join(dir, "pan"), ["-E", "-n", "-w24"], dir);
  const num = (re: RegExp) => {
    const m = re.exec(r.stdout);
    if (!m) throw new Error(`unexpected pan output:\n${r.stdout}`);
    return Number(m[1]);
  };
  if (/errors: [1-9]/.test(r.stdout)) throw new Error(`pan found an error:\n${r.stdout}`);
  return {
    rm,
    engine: "SPIN 6.5 (pan)",
    distinct: num(/(\d+) states, stored/),
    generated: num(/(\d+) transitions \(= stored\+matched\)/),
    // pan's DFS depth counts the initial state as 0 and is the deepest stack, not the BFS depth: not comparable.
    depth: undefined,
    wallSeconds: r.seconds,
    peakRssMb: r.peakRssMb,
  };
}

export interface ProtocolConfig {
  model: string;
  sets: string[];
  counts: NonNullable<SuiteEntry["counts"]>;
  /** The states/s issue 12 quotes for it (a quiet machine, another day: shown, not a ratio's baseline). */
  issue: number;
}

/** The configurations issue 12 measured (ISSUE_12_BENCH in suite.config.ts), with their suite entries' counts (an entry missing from the suite is an error). */
export function protocolConfigs(): ProtocolConfig[] {
  return ISSUE_12.map((c) => {
    const e = suite.find(
      (x) =>
        x.model === c.model && x.expect === "ok" && x.counts?.distinct !== undefined && !x.mutant && !x.workers && !x.symmetry && !x.properties &&
        Object.entries(c.params).every(([k, v]) => x.params?.[k] === v) && Object.keys(x.params ?? {}).length === Object.keys(c.params).length,
    );
    if (!e) throw new Error(`bench: no suite entry ${c.model} ${JSON.stringify(c.params)} with counts`);
    return { model: c.model, sets: Object.entries(c.params).map(([k, v]) => `${k}=${v}`), counts: e.counts!, issue: c.statesPerSecond };
  });
}

interface EncoderRun {
  distinct: number;
  generated: number;
  depth: number;
  /** The search's own time (start-up excluded), as `check --json` reports it. */
  seconds: number;
  /** The child's CPU time over the search (`cpuSeconds`). */
  cpuSeconds: number;
  peakRssMb: number;
}

/** One check of the model, with the code paths of before (`--before`) or of now. */
async function encoderRun(model: string, sets: string[], before: boolean): Promise<EncoderRun> {
  const args = [join(root, "bin/speccommit.js"), "check", model, ...sets.flatMap((kv) => ["--set", kv]), ...(before ? ["--before"] : []), "--json", "--quiet", "--out", join(tmpdir(), "speccommit-bench-out")];
  const r = await runChild(process.execPath, args, root);
  if (r.code !== 0) throw new Error(`speccommit check ${model} failed (exit ${r.code}): ${r.stderr}`);
  const j = JSON.parse(r.stdout) as EncoderRun;
  return { distinct: j.distinct, generated: j.generated, depth: j.depth, seconds: j.seconds, cpuSeconds: j.cpuSeconds, peakRssMb: Math.max(r.peakRssMb, j.peakRssMb) };
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

/**
 * Each configuration before (`speccommit check --before`: the canonical-JSON encoder and the world's old flight
 * handling, kept in the code) and now, alternating for `rounds` rounds; the table shows each one's best time
 * (the least disturbed by other jobs), the ratio, and now's states/s against issue 12's goal (5x the states/s
 * it quotes). Returns how many configurations gave different counts.
 */
async function protocolBench(configs: ProtocolConfig[], rounds: number): Promise<number> {
  console.log(`Protocol models, one worker: before (speccommit check --before) vs now; best of ${rounds} alternating round(s); time = the search's own`);
  console.log(["model".padEnd(12), "config".padEnd(50), "distinct".padStart(9), "generated".padStart(10), "depth", "before s".padStart(9), "now s".padStart(8), "before st/s".padStart(11), "now st/s".padStart(9), "ratio".padStart(6), "CPU s b/n".padStart(11), "CPU ratio", "RSS MB b/n".padStart(10), "issue st/s".padStart(10), "now/issue".padStart(9), "5x goal", "load 1/5/15 min"].join("  "));
  let bad = 0;
  for (const { model, sets, counts, issue } of configs) {
    const before = await encoderRun(model, sets, true);
    const after = await encoderRun(model, sets, false);
    for (let i = 1; i < rounds; i++) {
      const b = await encoderRun(model, sets, true);
      const a = await encoderRun(model, sets, false);
      before.seconds = Math.min(before.seconds, b.seconds);
      after.seconds = Math.min(after.seconds, a.seconds);
      before.cpuSeconds = Math.min(before.cpuSeconds, b.cpuSeconds);
      after.cpuSeconds = Math.min(after.cpuSeconds, a.cpuSeconds);
    }
    const suiteCounts = (r: EncoderRun) => r.distinct === counts.distinct && (counts.generated === undefined || r.generated === counts.generated) && (counts.depth === undefined || r.depth === counts.depth);
    const same = suiteCounts(before) && suiteCounts(after);
    if (!same) bad++;
    const rate = (r: EncoderRun) => Math.round(r.distinct / r.seconds);
    console.log(
      [
        model.padEnd(12),
        sets.join(" ").padEnd(50),
        String(after.distinct).padStart(9),
        String(after.generated).padStart(10),
        String(after.depth).padStart(5),
        before.seconds.toFixed(2).padStart(9),
        after.seconds.toFixed(2).padStart(8),
        String(rate(before)).padStart(11),
        String(rate(after)).padStart(9),
        `${(before.seconds / after.seconds).toFixed(2)}x`.padStart(6),
        `${before.cpuSeconds.toFixed(1)}/${after.cpuSeconds.toFixed(1)}`.padStart(11),
        `${(before.cpuSeconds / after.cpuSeconds).toFixed(2)}x`.padStart(9),
        `${before.peakRssMb}/${after.peakRssMb}`.padStart(10),
        String(issue).padStart(10),
        `${(rate(after) / issue).toFixed(2)}x`.padStart(9),
        (rate(after) >= 5 * issue ? "met" : "missed").padEnd(7),
        load(),
        same ? "= suite" : `COUNTS DIFFER from the suite's: before ${before.distinct}/${before.generated}/${before.depth}`,
      ].join("  "),
    );
  }
  console.log(
    "ratio: before's time / now's (above 1: now is faster); CPU: the same with the child's CPU time over the search, less disturbed by other jobs; issue st/s: what issue 12 quotes (a quiet machine, not this run: now/issue is indicative only); 5x goal: now's states/s at least 5x the issue's; = suite: both runs' counts are the suite entry's.\n",
  );
  return bad;
}

interface WorkerRun {
  distinct: number;
  generated: number;
  depth: number;
  seconds: number;
  startSeconds: number;
  cpuSeconds: number;
  heapBytes: number;
  peakRssMb: number;
}

async function workerRun(model: string, sets: string[], workers: number): Promise<WorkerRun> {
  const args = [join(root, "bin/speccommit.js"), "check", model, ...sets.flatMap((kv) => ["--set", kv]), "--workers", String(workers), "--json", "--quiet", "--out", join(tmpdir(), "speccommit-bench-out")];
  const r = await runChild(process.execPath, args, root);
  if (r.code !== 0) throw new Error(`speccommit check ${model} --workers ${workers} failed (exit ${r.code}): ${r.stderr}`);
  const j = JSON.parse(r.stdout) as WorkerRun;
  return { distinct: j.distinct, generated: j.generated, depth: j.depth, seconds: j.seconds, startSeconds: j.startSeconds ?? 0, cpuSeconds: j.cpuSeconds, heapBytes: j.heapBytes, peakRssMb: Math.max(r.peakRssMb, j.peakRssMb) };
}

/**
 * Worker scaling on the protocol models: each configuration with 1 and 2
 * workers, alternating for `rounds` rounds, best time of each; states/s of
 * the search (start-up excluded), the ratio, the load average when the pair
 * ran, and memory per state: heap used + external memory of every thread
 * right after the search, divided by distinct (result.ts, heapBytes). Returns
 * how many configurations gave counts other than the suite's.
 */
async function scalingBench(configs: ProtocolConfig[], rounds: number): Promise<number> {
  console.log(`Protocol models, worker scaling: 1 vs 2 workers (interned encoder); best of ${rounds} alternating round(s); time = the search's own; ${cpus().length} CPUs`);
  console.log(["model".padEnd(12), "config".padEnd(62), "distinct".padStart(9), "1w s".padStart(7), "2w s".padStart(7), "2w start s".padStart(10), "1w st/s".padStart(8), "2w st/s".padStart(8), "2w/1w".padStart(6), "2x1w/1w".padStart(8), "CPU s 1w/2w/pair".padStart(16), "B/state 1w/2w".padStart(14), "RSS MB 1w/2w".padStart(12), "load 1/5/15 min"].join("  "));
  let bad = 0;
  for (const { model, sets, counts } of configs) {
    let one: WorkerRun | undefined;
    let two: WorkerRun | undefined;
    /** The machine's own ceiling: two one-worker checks at once, their combined states/s. */
    let pair = 0;
    let pairCpu = Infinity;
    let loads = "";
    for (let i = 0; i < rounds; i++) {
      const a = await workerRun(model, sets, 1);
      const b = await workerRun(model, sets, 2);
      const [c, d] = await Promise.all([workerRun(model, sets, 1), workerRun(model, sets, 1)]);
      loads = load();
      one = one && one.seconds <= a.seconds ? one : a;
      two = two && two.seconds <= b.seconds ? two : b;
      pair = Math.max(pair, (c.distinct + d.distinct) / Math.max(c.seconds, d.seconds));
      pairCpu = Math.min(pairCpu, (c.cpuSeconds + d.cpuSeconds) / 2);
    }
    const suiteCounts = (r: WorkerRun) => r.distinct === counts.distinct && (counts.generated === undefined || r.generated === counts.generated) && (counts.depth === undefined || r.depth === counts.depth);
    const same = suiteCounts(one!) && suiteCounts(two!);
    if (!same) bad++;
    const rate = (r: WorkerRun) => Math.round(r.distinct / r.seconds);
    const perState = (r: WorkerRun) => Math.round(r.heapBytes / r.distinct);
    console.log(
      [
        model.padEnd(12),
        sets.join(" ").padEnd(62),
        String(one!.distinct).padStart(9),
        one!.seconds.toFixed(2).padStart(7),
        two!.seconds.toFixed(2).padStart(7),
        two!.startSeconds.toFixed(2).padStart(10),
        String(rate(one!)).padStart(8),
        String(rate(two!)).padStart(8),
        `${(rate(two!) / rate(one!)).toFixed(2)}x`.padStart(6),
        `${(pair / rate(one!)).toFixed(2)}x`.padStart(8),
        `${one!.cpuSeconds.toFixed(1)}/${two!.cpuSeconds.toFixed(1)}/${pairCpu.toFixed(1)}`.padStart(16),
        `${perState(one!)}/${perState(two!)}`.padStart(14),
        `${one!.peakRssMb}/${two!.peakRssMb}`.padStart(12),
        loads,
        same ? "= suite" : `COUNTS DIFFER from the suite's: 1w ${one!.distinct}/${one!.generated}/${one!.depth}, 2w ${two!.distinct}/${two!.generated}/${two!.depth}`,
      ].join("  "),
    );
  }
  console.log("2w start s: starting the worker threads (tsx, the model), apart from the search's time; 2w/1w: 2 workers' states/s over 1 worker's (the goal on 2 free cores: 1.7x); 2x1w/1w: the machine's ceiling, two one-worker checks run at once, their combined states/s over one alone's; a load average above the CPU count means other jobs shared the cores; CPU s: the child's CPU time over the search, every thread, for 1 worker, 2 workers, and each of the pair of one-worker checks run at once (2w over pair: the parallel engine's own extra work, the machine's slow-down of two busy threads apart); B/state: heap + external bytes per distinct state.\n");
  return bad;
}

export const USAGE = `usage: npm run bench:checker [-- options]
  --rm 7,8,9|none               TwoPhase sizes against TLC's counts and SPIN (default 7,8,9)
  --workers 1,2                 worker counts for TwoPhase (default 1,2)
  --protocols all|none|M,...    protocol models (twopc, speculative, parallel; default all)
  --rounds N                    alternating rounds, best of N (default 1)
  --encoders none               leave out the before/now table of the protocol models
  --scaling none                leave out the worker-scaling table
  --scaling-max-distinct N      largest configuration the scaling table runs (default 300000)
  --spin auto|off               auto: SPIN and gcc installed when missing (as root); off: no SPIN column (default auto)`;

export interface CheckerBenchOptions {
  rms: number[];
  workers: number[];
  protocols: string;
  rounds: number;
  encoders: boolean;
  scaling: boolean;
  scalingMax: number;
  spin: "auto" | "off";
}

/** The command line; a UserError names what is wrong. */
export function parseBenchArgs(argv: readonly string[]): CheckerBenchOptions {
  const o: CheckerBenchOptions = { rms: [7, 8, 9], workers: [1, 2], protocols: "all", rounds: 1, encoders: true, scaling: true, scalingMax: 300_000, spin: "auto" };
  const ints = (flag: string, v: string, min: number, max: number): number[] => {
    const xs = v.split(",").map((x) => (/^[0-9]+$/.test(x) ? Number(x) : NaN));
    if (xs.some((x) => !Number.isSafeInteger(x) || x < min || x > max)) throw new UserError(`${flag} ${v}: expected integers from ${min} to ${max}, separated by commas`);
    return xs;
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new UserError(`${flag} needs a value`);
    if (flag === "--rm") o.rms = v === "none" ? [] : ints(flag, v, 3, 12);
    else if (flag === "--workers") o.workers = ints(flag, v, 1, 64);
    else if (flag === "--protocols") o.protocols = v;
    else if (flag === "--rounds") o.rounds = ints(flag, v, 1, 100)[0]!;
    else if (flag === "--scaling-max-distinct") o.scalingMax = ints(flag, v, 1, 1e12)[0]!;
    else if (flag === "--encoders" || flag === "--scaling") {
      if (v !== "none") throw new UserError(`${flag} ${v}: the only value is none`);
      o[flag === "--encoders" ? "encoders" : "scaling"] = false;
    } else if (flag === "--spin") {
      if (v !== "auto" && v !== "off") throw new UserError(`--spin ${v}: auto or off`);
      o.spin = v;
    } else throw new UserError(`unknown option ${flag}`);
  }
  return o;
}

/** SPIN and gcc on PATH, installed first when missing if we are root (`auto`); false: the SPIN column is left out, and why is printed. */
function ensureSpin(mode: "auto" | "off"): boolean {
  if (mode === "off") {
    console.log("SPIN column left out (--spin off).");
    return false;
  }
  if (hasTool("spin") && hasTool("gcc")) return true;
  const script = join(root, "scripts/install-system-deps.sh");
  if (process.getuid?.() === 0) {
    console.log("installing SPIN and gcc for the SPIN column (scripts/install-system-deps.sh spin gcc) ...");
    const r = spawnSync("bash", [script, "spin", "gcc"], { encoding: "utf8", timeout: 10 * 60_000 });
    if (r.status === 0 && hasTool("spin") && hasTool("gcc")) return true;
    console.log(`SPIN column skipped: the install failed (${(r.stderr || r.stdout || String(r.error ?? "")).trim().split("\n").at(-1)}).`);
    return false;
  }
  console.log(`SPIN column skipped: \`spin\` and \`gcc\` are needed; as root: bash ${script} spin gcc`);
  return false;
}

function fmt(row: Row, spinRow: Row | undefined): string {
  const tlc = TLC[row.rm];
  const exact = tlc && row.distinct === tlc.distinct && row.generated === tlc.generated && (row.depth === undefined || row.depth === tlc.depth);
  const vsSpin = spinRow && row !== spinRow ? `${(spinRow.wallSeconds / row.wallSeconds).toFixed(2)}x` : "";
  return [
    String(row.rm).padStart(2),
    row.engine.padEnd(16),
    String(row.distinct).padStart(10),
    String(row.generated).padStart(11),
    String(row.depth ?? "-").padStart(5),
    row.wallSeconds.toFixed(2).padStart(7),
    String(Math.round(row.distinct / row.wallSeconds)).padStart(10),
    String(row.peakRssMb).padStart(8),
    vsSpin.padStart(8),
    (row.searchSeconds?.toFixed(2) ?? "-").padStart(8),
    (row.cpuSeconds?.toFixed(2) ?? "-").padStart(6),
    (row.load?.toFixed(2) ?? "-").padStart(6),
    exact ? "= TLC" : "DIFFERS FROM TLC",
  ].join("  ");
}

/** TwoPhase for each RM: SPIN (when installed, or installed now: ensureSpin) and ours with each worker count, alternately for `rounds` rounds (a row per run). Returns how many rows' counts differ from TLC's. */
async function twoPhaseBench(rms: number[], workerCounts: number[], rounds: number, spinMode: "auto" | "off"): Promise<number> {
  let bad = 0;
  const withSpin = ensureSpin(spinMode);
  console.log(`TwoPhase benchmark on ${process.platform}/${process.arch}, node ${process.version}; wall = whole child process (startup included)`);
  console.log(["RM", "engine".padEnd(16), "distinct".padStart(10), "generated".padStart(11), "depth", "wall s".padStart(7), "states/s".padStart(10), "RSS MB".padStart(8), "vs SPIN".padStart(8), "search s".padStart(8), "CPU s".padStart(6), "load 1".padStart(6), "counts"].join("  "));
  const dir = await mkdtemp(join(tmpdir(), "speccommit-spin-"));
  try {
    for (const rm of rms) {
      let spinRow: Row | undefined;
      if (withSpin) {
        const compile = buildPan(rm, dir);
        spinRow = await spin(rm, dir);
        const tlc = TLC[rm];
        if (tlc && (spinRow.distinct !== tlc.distinct || spinRow.generated !== tlc.generated)) bad++;
        console.log(`${fmt(spinRow, undefined)}   (spin -a + gcc: ${compile.toFixed(1)} s, not included)`);
      }
      for (let round = 0; round < rounds; round++) {
        for (const w of workerCounts) {
          const row = await ours(rm, w);
          console.log(fmt(row, spinRow));
          const tlc = TLC[rm];
          if (tlc && (row.distinct !== tlc.distinct || row.generated !== tlc.generated || row.depth !== tlc.depth)) bad++;
        }
      }
    }
  } finally {
    await removeDir(dir, { recursive: true, force: true });
  }
  console.log("vs SPIN: SPIN's wall time / ours (above 1: we are faster); search s: the search's own time (worker start-up apart); CPU s: every thread's CPU over the search (2 workers' over 1 worker's: the parallel engine's extra work, what limits its speed-up on 2 free cores); load 1: the 1-minute load average after the run.");
  return bad;
}

export async function main(argv: string[]): Promise<number> {
  const o = parseBenchArgs(argv);
  const all = protocolConfigs();
  const configs = o.protocols === "all" ? all : o.protocols === "none" ? [] : all.filter((c) => o.protocols.split(",").includes(c.model));
  if (o.protocols !== "all" && o.protocols !== "none" && configs.length === 0) throw new UserError(`--protocols ${o.protocols}: none of ${[...new Set(all.map((c) => c.model))].join(", ")}`);
  console.log(`load average at start: ${load()} (1, 5, 15 min) on ${cpus().length} CPUs`);
  let bad = configs.length > 0 && o.encoders ? await protocolBench(configs, o.rounds) : 0;
  // Worker scaling runs each configuration four times (1 worker, 2, and a pair of 1 at once): the largest is left out unless asked.
  const scaled = configs.filter((c) => (c.counts.distinct ?? Infinity) <= o.scalingMax);
  if (scaled.length > 0 && o.scaling) bad += await scalingBench(scaled, o.rounds);
  if (o.rms.length > 0) bad += await twoPhaseBench(o.rms, o.workers, o.rounds, o.spin);
  console.log(`load average at end: ${load()}`);
  return bad === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await runCheckerScript("bench:checker", USAGE, main);
