/**
 * `npm run check` (`speccommit suite`): runs every entry of the suite file
 * (checker/suite.config.ts unless `--suite FILE`; an entry's model is a
 * registry name or a model file's path, relative to the suite file), prints one table row per
 * entry, writes the counterexample of every violation (NDJSON + SVG) under
 * out/, and exits 1 if any entry's outcome is not the expected one: a
 * violation in a correct model, a mutant not caught, a run left incomplete,
 * or a count or trace length that differs from the one the entry states.
 */
import { registry } from "./registry.ts";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { existsSync } from "node:fs";
import { tsImport } from "tsx/esm/api";
import { makeDirsSync } from "../traces/dirs.ts";
import { isModelPath, resolveFactory } from "./load.ts";
import type { CheckOptions, CheckResult } from "./result.ts";
import { findFactory, rate, runCheck, UserError, writeCounterexamples, type Params } from "./run.ts";

/**
 * What an entry must produce:
 * - "ok": every reachable state explored, no violation;
 * - "violates NAME": a violation of the invariant or `eventually` property NAME;
 * - "deadlock": a deadlock (set `deadlock: true`);
 * - "mutant caught": any violation at all (for entries with a mutant).
 */
export type Expectation = "ok" | "deadlock" | "mutant caught" | `violates ${string}`;

export interface SuiteEntry {
  model: string;
  params?: Params;
  mutant?: string;
  expect: Expectation;
  workers?: number;
  symmetry?: boolean;
  deadlock?: boolean;
  maxStates?: number;
  maxDepth?: number;
  maxSeconds?: number;
  /** Exact counts the run must report (only those given are compared). */
  counts?: { distinct?: number; generated?: number; depth?: number };
  /** Steps in the shortest counterexample, when one is expected. */
  length?: number;
  /** Check only these properties (see RunSpec.properties). */
  properties?: readonly string[];
}

/** One "mutant caught" entry per mutant the model declares (so a new mutant is in the suite at once). */
export function mutantsOf(model: string, params: Params = {}, extra: Partial<SuiteEntry> = {}): SuiteEntry[] {
  return findFactory(model).mutants.map((mutant) => ({ model, params, mutant, expect: "mutant caught", ...extra }));
}

export interface Verdict {
  entry: SuiteEntry;
  result?: CheckResult;
  pass: boolean;
  /** What happened, for the table's last column. */
  outcome: string;
}

function options(e: SuiteEntry): CheckOptions {
  // Long entries say they are alive (stderr, every 10 s); short ones print nothing but their row.
  const o: CheckOptions = { progress: (line) => process.stderr.write(`  [${e.model} ${config(e)}] ${line}\n`), progressMs: 10_000 };
  if (e.symmetry) o.symmetry = true;
  if (e.deadlock) o.deadlock = true;
  if (e.maxStates !== undefined) o.maxStates = e.maxStates;
  if (e.maxDepth !== undefined) o.maxDepth = e.maxDepth;
  if (e.maxSeconds !== undefined) o.maxSeconds = e.maxSeconds;
  return o;
}

/** Compares a result with what its entry expects; returns the problems (none = pass). */
export function judge(e: SuiteEntry, r: CheckResult): string[] {
  const problems: string[] = [];
  const names = r.violations.map((v) => v.name);
  if (e.expect === "ok") {
    if (names.length > 0) problems.push(`violates ${names.join(", ")}`);
  } else if (e.expect === "mutant caught") {
    if (e.mutant === undefined) problems.push(`"mutant caught" needs a mutant`);
    if (names.length === 0) problems.push("mutant NOT caught");
  } else {
    const want = e.expect === "deadlock" ? "deadlock" : e.expect.slice("violates ".length);
    if (!names.includes(want)) problems.push(names.length === 0 ? `${want} NOT violated` : `violates ${names.join(", ")}, not ${want}`);
  }
  if (!r.complete && names.length === 0) problems.push(`INCOMPLETE (${r.incomplete})`);
  for (const key of ["distinct", "generated", "depth"] as const) {
    const want = e.counts?.[key];
    if (want !== undefined && r[key] !== want) problems.push(`${key} ${r[key]}, expected ${want}`);
  }
  if (e.length !== undefined) {
    const shortest = Math.min(...r.violations.map((v) => v.length));
    if (r.violations.length > 0 && shortest !== e.length) problems.push(`shortest trace ${shortest} steps, expected ${e.length}`);
  }
  return problems;
}

/**
 * `written` holds the counterexample names already used in this run, so a later entry does not overwrite an
 * earlier one's; `suffix` decides it instead (the entries of `--jobs` run in other processes: see suffixed).
 */
export async function runEntry(e: SuiteEntry, out: string, written: Set<string> = new Set(), suffix?: boolean): Promise<Verdict> {
  try {
    const r = await runCheck({
      model: e.model,
      params: e.params ?? {},
      ...(e.mutant ? { mutant: e.mutant } : {}),
      ...(e.properties ? { properties: e.properties } : {}),
      workers: e.workers ?? 1,
      options: options(e),
    });
    const names = r.violations.map((v) => [r.model, r.mutant, v.name].filter(Boolean).join("-"));
    const clash = suffix ?? names.some((n) => written.has(n));
    names.forEach((n) => written.add(n));
    await writeCounterexamples(r, out, clash ? config(e).replace(/[^A-Za-z0-9=]+/g, "_") : undefined);
    const problems = judge(e, r);
    const found = r.violations.map((v) => `${v.name} (${v.length} steps)`).join(", ");
    const outcome =
      problems.length > 0
        ? `FAIL: ${problems.join("; ")}`
        : e.expect === "ok"
          ? "ok"
          : `${e.mutant ? "caught" : "found"} ${found}`;
    return { entry: e, result: r, pass: problems.length === 0, outcome };
  } catch (err) {
    if (err instanceof UserError) return { entry: e, pass: false, outcome: `FAIL: ${err.message}` };
    throw err;
  }
}

function config(e: SuiteEntry): string {
  const parts = Object.entries(e.params ?? {}).map(([k, v]) => `${k}=${v}`);
  if (e.mutant) parts.push(`mutant=${e.mutant}`);
  if ((e.workers ?? 1) > 1) parts.push(`workers=${e.workers}`);
  if (e.symmetry) parts.push("symmetry");
  if (e.deadlock) parts.push("deadlock");
  if (e.properties) parts.push(`only ${e.properties.join(",")}`);
  return parts.join(" ");
}

const COLUMNS: Array<[string, number]> = [
  ["model", 10],
  ["config", 44],
  ["distinct", 10],
  ["generated", 11],
  ["depth", 6],
  ["time", 8],
  ["states/s", 10],
  ["result", 0],
];

function row(cells: string[]): string {
  return cells.map((c, i) => (i < 2 || i === cells.length - 1 ? c.padEnd(COLUMNS[i]![1]) : c.padStart(COLUMNS[i]![1]))).join(" ").trimEnd();
}

export function formatRow(v: Verdict): string {
  const r = v.result;
  return row([
    isModelPath(v.entry.model) ? basename(v.entry.model) : v.entry.model,
    config(v.entry),
    r ? String(r.distinct) : "-",
    r ? String(r.generated) : "-",
    r ? String(r.depth) : "-",
    r ? `${r.seconds.toFixed(2)}s` : "-",
    r ? String(rate(r)) : "-",
    v.outcome,
  ]);
}

/**
 * The entries of a suite file (checker/suite.config.ts when none is given); a model given as a path is
 * relative to the suite file, made absolute here and loaded, so `findFactory` knows every entry's model.
 * Tests that walk the suite read it through this, never by importing suite.config.ts (whose paths are
 * relative to checker/ and whose model files are not loaded yet).
 */
export async function loadSuite(file?: string): Promise<SuiteEntry[]> {
  const url = file ? pathToFileURL(resolve(file)).href : new URL("./suite.config.ts", import.meta.url).href;
  let mod: { suite?: SuiteEntry[] };
  if (file === undefined) mod = (await import(url)) as { suite?: SuiteEntry[] };
  else {
    if (!existsSync(resolve(file))) throw new UserError(`suite file ${file}: no such file (${resolve(file)})`);
    try {
      // tsx's own import, as for model files (load.ts): a .ts file outside any "type": "module" package is TypeScript too.
      mod = (await tsImport(url, import.meta.url)) as { suite?: SuiteEntry[] };
    } catch (e) {
      throw new UserError(`suite file ${file} could not be loaded: ${(e as Error).message}`);
    }
  }
  if (!Array.isArray(mod.suite)) throw new UserError(`${file ?? "checker/suite.config.ts"} must export 'suite', an array of entries`);
  const dir = dirname(fileURLToPath(url));
  const entries = mod.suite.map((e) => (isModelPath(e.model) ? { ...e, model: resolve(dir, e.model) } : e));
  for (const path of new Set(entries.filter((e) => isModelPath(e.model)).map((e) => e.model))) await resolveFactory(path);
  return entries;
}

/** Mutants declared by registered models that no entry of `entries` runs, as "model/mutant". */
export function uncoveredMutants(entries: readonly SuiteEntry[]): string[] {
  const covered = new Set(entries.filter((e) => e.mutant !== undefined).map((e) => `${e.model}/${e.mutant}`));
  return registry.flatMap((f) => f.mutants.map((m) => `${f.name}/${m}`)).filter((k) => !covered.has(k));
}

const USAGE = "usage: speccommit suite [--suite FILE] [--out DIR] [--only TEXT] [--workers N] [--jobs N]";

export async function main(argv: string[]): Promise<number> {
  let file: string | undefined;
  let out = "out";
  let only: string | undefined;
  let workers: number | undefined;
  let jobs = 1;
  let child = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if ((arg === "--suite" || arg === "--out" || arg === "--only") && (argv[i + 1] === undefined || argv[i + 1]!.startsWith("--"))) {
      console.error(`speccommit suite: ${arg} needs a value; ${USAGE}`);
      return 2;
    }
    if (arg === "--suite") file = argv[++i];
    else if (arg === "--out") out = argv[++i]!;
    else if (arg === "--only") only = argv[++i];
    else if (arg === "--workers" || arg === "--jobs") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) {
        console.error(`speccommit suite: ${arg} must be a positive integer, got '${argv[i]}'`);
        return 2;
      }
      if (arg === "--workers") workers = n;
      else jobs = n;
    } else if (arg === JOB_FLAG) child = true;
    else if (arg === "--help" || arg === "-h") {
      console.log(
        `${USAGE}\n\nRuns every entry of checker/suite.config.ts (or FILE); --only keeps entries whose model or config contains TEXT;\n--workers N runs every entry with N worker threads (the same expectations: counts, verdicts, trace lengths) (symmetry-reduced entries included);\n--jobs N runs N entries at once, each in its own process (largest first; each row printed when its entry is done).`,
      );
      return 0;
    } else {
      console.error(`speccommit suite: unknown argument '${arg}'; ${USAGE}`);
      return 2;
    }
  }
  if (child) return serveEntries(file, out);
  try {
    makeDirsSync(out);
  } catch (e) {
    console.error(`speccommit suite: --out ${out}: ${(e as Error).message}`);
    return 2;
  }
  let all: SuiteEntry[];
  try {
    all = await loadSuite(file);
  } catch (e) {
    console.error(`speccommit suite: ${(e as Error).message}`);
    return 2;
  }
  // Every mutant a model declares must be in the suite: a new mutant is never silently unchecked.
  const uncovered = file === undefined && only === undefined ? uncoveredMutants(all) : [];
  // Each entry's place in the suite file (what a --jobs child is sent), then --only.
  let indices = all.map((_, i) => i);
  if (only !== undefined) indices = indices.filter((i) => `${all[i]!.model} ${config(all[i]!)}`.includes(only!));
  // Nothing to run is a mistake (a misspelt --only, an empty suite file), never "all 0 entries as expected".
  if (indices.length === 0) {
    const models = [...new Set(all.map((e) => e.model))].join(", ");
    console.error(only !== undefined ? `speccommit suite: --only '${only}' matches no entry (its text is looked for in "model config"; the models: ${models})` : `speccommit suite: the suite has no entries`);
    return 2;
  }
  // Symmetry-reduced entries too: a protocol model's representatives are chosen by portable ranks (spec/world/symmetry.ts).
  const entries = indices.map((i) => (workers !== undefined ? { ...all[i]!, workers } : all[i]!));
  const started = performance.now();
  console.log(row(COLUMNS.map(([name]) => name)));
  let failed = 0;
  if (jobs > 1 && entries.length > 1) {
    failed = await runJobs(entries, indices, Math.min(jobs, entries.length), file, out);
    if (failed < 0) return 2;
  } else {
    const written = new Set<string>();
    for (const e of entries) {
      const v = await runEntry(e, out, written);
      if (!v.pass) failed++;
      console.log(formatRow(v));
    }
  }
  for (const u of uncovered) {
    failed++;
    console.log(`FAIL: mutant ${u} is declared but no suite entry checks it`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    failed === 0
      ? `\nall ${entries.length} entries as expected in ${seconds} s; counterexamples in ${out}/`
      : `\n${failed} of ${entries.length} entries FAILED (${seconds} s); counterexamples in ${out}/`,
  );
  return failed === 0 ? 0 : 1;
}

/** The hidden flag a `--jobs` child runs with: it reads entry numbers on stdin and answers one JSON line each. */
const JOB_FLAG = "--serve-entries";

/** What the parent sends a child per entry: its index in the suite file, the `--workers` override, the naming rule. */
interface JobRequest {
  i: number;
  workers?: number;
  suffix: boolean;
}

/**
 * A `--jobs` child: loads the same suite file, then runs the entries it is sent, one at a time, writing their
 * counterexamples itself and answering each with its verdict row.
 */
async function serveEntries(file: string | undefined, out: string): Promise<number> {
  const all = await loadSuite(file);
  const { createInterface } = await import("node:readline");
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === "") continue;
    const req = JSON.parse(line) as JobRequest;
    const e = all[req.i];
    if (e === undefined) throw new Error(`suite: no entry ${req.i}`);
    const v = await runEntry(req.workers !== undefined ? { ...e, workers: req.workers } : e, out, undefined, req.suffix);
    process.stdout.write(`${JSON.stringify({ i: req.i, pass: v.pass, row: formatRow(v) })}\n`);
  }
  return 0;
}

/**
 * Which entries name their counterexamples with their configuration under `--jobs`: those after an earlier entry
 * of the same model and mutant (the processes cannot see each other's file names; run one at a time, an entry is
 * suffixed only when a name it writes was written before).
 */
export function suffixed(entries: readonly SuiteEntry[]): boolean[] {
  const seen = new Set<string>();
  return entries.map((e) => {
    const key = `${e.model}\u0000${e.mutant ?? ""}`;
    const before = seen.has(key);
    seen.add(key);
    return before;
  });
}

/**
 * Runs `entries` (`fileIndex`: each one's index in the suite file, which every child loads) in `jobs` child
 * processes (each `speccommit suite --serve-entries`), the largest first (by the distinct states an entry
 * states, mutants last: they stop early) so that the last to finish is a short one;
 * prints each row when its entry is done (so the largest come first). Returns the number that failed
 * (-1 when a child died).
 */
async function runJobs(entries: SuiteEntry[], fileIndex: readonly number[], jobs: number, file: string | undefined, out: string): Promise<number> {
  const { spawn } = await import("node:child_process");
  const { createInterface } = await import("node:readline");
  const suffix = suffixed(entries);
  const cost = (e: SuiteEntry) => (e.expect === "ok" ? (e.counts?.distinct ?? 1e9) : 0);
  const queue = entries.map((_, k) => k).sort((a, b) => cost(entries[b]!) - cost(entries[a]!));
  let failed = 0;
  const bin = fileURLToPath(new URL("../bin/speccommit.js", import.meta.url));
  const args = [bin, "suite", JOB_FLAG, "--out", out, ...(file !== undefined ? ["--suite", resolve(file)] : [])];
  const runOne = (): Promise<void> =>
    new Promise((done, fail) => {
      const p = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
      let current: number | undefined;
      const next = () => {
        current = queue.shift();
        if (current === undefined) {
          p.stdin.end();
          return;
        }
        const req: JobRequest = { i: fileIndex[current]!, suffix: suffix[current]!, ...(entries[current]!.workers !== undefined ? { workers: entries[current]!.workers } : {}) };
        p.stdin.write(`${JSON.stringify(req)}\n`);
      };
      createInterface({ input: p.stdout }).on("line", (line) => {
        const v = JSON.parse(line) as { i: number; pass: boolean; row: string };
        if (!v.pass) failed++;
        console.log(v.row);
        next();
      });
      p.on("exit", (code, signal) => {
        if (current !== undefined) fail(new Error(`suite: the process running ${config(entries[current]!)} exited (${signal ?? code})`));
        else done();
      });
      next();
    });
  try {
    await Promise.all(Array.from({ length: jobs }, runOne));
  } catch (err) {
    console.error(`speccommit suite: ${(err as Error).message}`);
    return -1;
  }
  return failed;
}
