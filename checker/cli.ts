/**
 * `speccommit check`: model-check one configuration, or every mutant of a
 * model. Exit status: 0 all good; 1 a violation (or, with --mutants, a mutant
 * not caught); 2 a usage error; 3 a limit left the search incomplete.
 */
import { registry } from "./registry.ts";
import type { CheckOptions, CheckResult } from "./result.ts";
import { useEncoder, type Encoder } from "../spec/env/collapse.ts";
import { useBaselinePaths } from "../spec/world/flights.ts";
import { rate, resolveFactory, resolveParams, runCheck, summary, UserError, writeCounterexamples } from "./run.ts";
import { makeDirsSync } from "../traces/dirs.ts";

const USAGE = `usage:
  speccommit check <model> [--set key=value ...] [options]
  speccommit check --mutants <model> [--set key=value ...] [options]

<model> is a name (below) or the path of a module exporting a ModelFactory or a Model (./my-model.ts).

options:
  --set key=value   a model parameter (repeatable)
  --mutant NAME     check one deliberate bug of the model
  --property NAME   check only this property (invariant, eventually, leadsTo, eventuallyAlways; repeatable)
  --workers N       worker threads (default 1); same counts as 1
  --symmetry        symmetry reduction (models that declare it)
  --deadlock        report states with no enabled action (unless terminal)
  --max-states N    stop, INCOMPLETE, after N distinct states
  --max-depth N     do not expand states at depth N (initial states: depth 1; their deadlocks are reported)
  --max-seconds N   stop, INCOMPLETE, after N seconds
  --encoder E       how collapsed states (the protocol models) are encoded: interned (default) or
                    json, the canonical-JSON baseline kept for benchmarks; same states, same counts
  --before          the code paths before issue 12's optimisations, kept as the benchmark's baseline
                    (npm run bench:checker): the world's old flight handling and, unless --encoder
                    is given, --encoder json; same states, same counts
  --json            print one JSON object on stdout
  --out DIR         where counterexamples go (default out/)
  --quiet           no progress lines on stderr`;

interface Args {
  model?: string;
  mutants: boolean;
  mutant?: string;
  properties?: string[];
  sets: string[];
  workers: number;
  options: CheckOptions;
  json: boolean;
  out: string;
  quiet: boolean;
  encoder: Encoder | undefined;
  before: boolean;
}

function positiveNumber(flag: string, raw: string | undefined): number {
  const v = Number(raw);
  if (raw === undefined || !Number.isFinite(v) || v <= 0) throw new UserError(`${flag} expects a positive number, got '${raw ?? ""}'`);
  return v;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { mutants: false, sets: [], workers: 1, options: {}, json: false, out: "out", quiet: false, encoder: undefined, before: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UserError(`${arg} expects a value`);
      return v;
    };
    switch (arg) {
      case "--set":
        a.sets.push(value());
        break;
      case "--mutants":
        a.mutants = true;
        break;
      case "--property":
        a.properties = [...(a.properties ?? []), value()];
        break;
      case "--mutant":
        a.mutant = value();
        break;
      case "--workers":
        a.workers = positiveNumber(arg, value());
        if (!Number.isInteger(a.workers)) throw new UserError(`--workers expects a whole number, got ${a.workers}`);
        break;
      case "--symmetry":
        a.options.symmetry = true;
        break;
      case "--deadlock":
        a.options.deadlock = true;
        break;
      case "--max-states":
        a.options.maxStates = positiveNumber(arg, value());
        break;
      case "--max-depth":
        a.options.maxDepth = positiveNumber(arg, value());
        break;
      case "--max-seconds":
        a.options.maxSeconds = positiveNumber(arg, value());
        break;
      case "--json":
        a.json = true;
        break;
      case "--encoder": {
        const e = value();
        if (e !== "interned" && e !== "json") throw new UserError(`--encoder expects interned or json, got '${e}'`);
        a.encoder = e;
        break;
      }
      case "--before":
        a.before = true;
        break;
      case "--out":
        a.out = value();
        break;
      case "--quiet":
        a.quiet = true;
        break;
      default:
        if (arg.startsWith("--set=")) a.sets.push(arg.slice(6));
        else if (arg.startsWith("-")) throw new UserError(`unknown option '${arg}'`);
        else if (a.model === undefined) a.model = arg;
        else throw new UserError(`unexpected argument '${arg}' (one model at a time; parameters go with --set key=value)`);
    }
  }
  if (a.model === undefined) {
    throw new UserError(`which model? the models are: ${registry.map((f) => f.name).join(", ")}; or give the path of a model file (./my-model.ts)`);
  }
  if (a.mutants && a.mutant !== undefined) throw new UserError("--mutants runs every mutant; do not combine it with --mutant");
  return a;
}

function paramText(params: Record<string, unknown>): string {
  return Object.entries(params).map(([k, v]) => `${k}=${v}`).join(" ");
}

/**
 * One run's summary. `rss: false` leaves out the process's peak RSS, which
 * covers every run the process made (`--mutants` prints it once, at the
 * end); the store figure is this run's own.
 */
export function describeResult(r: CheckResult, rss = true): string {
  const name = `${r.model}${r.mutant ? `[${r.mutant}]` : ""} ${paramText(r.params)}`.trim();
  const how = [r.workers > 1 ? `${r.workers} workers` : "", r.symmetry ? "symmetry" : ""].filter(Boolean).join(", ");
  const lines = [
    `${name}${how ? ` (${how})` : ""}: ${r.distinct} distinct states, ${r.generated} generated, depth ${r.depth}, ` +
      `${r.seconds.toFixed(2)} s (${rate(r)} states/s${r.startSeconds !== undefined ? `; + ${r.startSeconds.toFixed(2)} s starting the workers` : ""}), state store ${r.storeMb} MB${rss ? `, peak RSS ${r.peakRssMb} MB` : ""}`,
  ];
  for (const v of r.violations) {
    const trace = v.cycle === undefined ? `shortest trace ${v.length} steps` : `lasso: shortest prefix ${v.length} steps, then ${v.cycle === 0 ? "stutters forever" : `a ${v.cycle}-step cycle forever`}`;
    lines.push(`  VIOLATION ${v.name} (${v.kind}): ${trace}${v.file ? ` -> ${v.file} (+ .svg)` : ""}`);
  }
  if (r.fingerprintCollision !== undefined) {
    lines.push(`  fingerprints: 64 bits; chance that two states shared one (TLC's optimistic estimate, distinct x (generated - distinct) / 2^64): ${r.fingerprintCollision.toExponential(1)}`);
  }
  if (r.outside !== undefined) lines.push(`  constraint: ${r.outside} more distinct states outside it (invariants checked, not expanded, not in the count)`);
  if (r.incomplete !== undefined) lines.push(`  INCOMPLETE: stopped at ${r.incomplete}; nothing is proven beyond what was explored`);
  else if (!r.complete) lines.push("  stopped at the first violating state: the counts are of the states explored until then");
  else if (r.violations.length === 0) lines.push("  OK: every reachable state explored, no violation");
  return lines.join("\n");
}

/** A mutant's JSON summary without the process-wide peak RSS (printed once for all of them). */
function perMutant(r: CheckResult): object {
  const { peakRssMb: _process, ...own } = summary(r) as { peakRssMb: number };
  return own;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(`${USAGE}\n\nmodels:\n${registry.map((f) => `  ${f.name.padEnd(12)} ${f.description}`).join("\n")}`);
    return 0;
  }
  try {
    const args = parseArgs(argv);
    // --before implies the canonical-JSON encoder unless --encoder says otherwise (--before --encoder interned: the world's old paths alone).
    useEncoder(args.encoder ?? (args.before ? "json" : "interned"));
    useBaselinePaths(args.before);
    const factory = await resolveFactory(args.model!);
    // Validate every parameter before any work starts, and make --out now: a directory that cannot be made is told
    // before the search, not after it.
    resolveParams(factory, args.sets);
    try {
      makeDirsSync(args.out);
    } catch (e) {
      throw new UserError(`--out ${args.out}: ${(e as Error).message}`);
    }
    const progress = args.quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
    const options: CheckOptions = { ...args.options, ...(progress ? { progress } : {}) };
    if (args.mutants) {
      if (factory.mutants.length === 0) throw new UserError(`${factory.name} has no mutants`);
      let missed = 0;
      const results: CheckResult[] = [];
      for (const mutant of factory.mutants) {
        const r = await runCheck({ model: args.model!, params: args.sets, mutant, workers: args.workers, options, ...(args.properties ? { properties: args.properties } : {}) });
        await writeCounterexamples(r, args.out);
        results.push(r);
        const caught = r.violations.length > 0;
        if (!caught) missed++;
        if (!args.json) {
          console.log(describeResult(r, false));
          console.log(caught ? `  mutant ${mutant}: CAUGHT` : `  mutant ${mutant}: NOT CAUGHT`);
        }
      }
      const peak = results.reduce((m, r) => Math.max(m, r.peakRssMb), 0);
      if (args.json) console.log(JSON.stringify({ model: factory.name, peakRssMb: peak, mutants: results.map(perMutant) }));
      else console.log(`peak RSS of this process over all ${results.length} mutants: ${peak} MB (each mutant's own memory is its state store above)`);
      return missed > 0 ? 1 : 0;
    }
    const r = await runCheck({ model: args.model!, params: args.sets, mutant: args.mutant, workers: args.workers, options, ...(args.properties ? { properties: args.properties } : {}) });
    await writeCounterexamples(r, args.out);
    console.log(args.json ? JSON.stringify(summary(r)) : describeResult(r));
    if (r.violations.length > 0) return 1;
    return r.complete ? 0 : 3;
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`speccommit check: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
