/**
 * Running one configuration by name: what the CLI, the suite and the
 * benchmark share. Finds the model (in the registry, or in a file: load.ts), parses its parameters,
 * picks the one-thread or the parallel engine, and writes counterexamples
 * (NDJSON + SVG) where asked.
 */
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import type { Model, ModelFactory } from "../spec/kernel/model.ts";
import type { CheckOptions, CheckResult, Violation } from "./result.ts";
import { heapBytes } from "./result.ts";
import { findFactory, resolveFactory, sourceOf } from "./load.ts";
import { check } from "./engine.ts";
import { checkParallel } from "./parallel.ts";
import { writeTrace } from "../traces/ndjson.ts";
import { makeDirsSync } from "../traces/dirs.ts";
import { UserError } from "./errors.ts";
import { toSvg } from "../traces/render.ts";
import { onlyProperties } from "./properties.ts";

export type Params = Record<string, string | number | boolean>;

export { UserError, findFactory, resolveFactory, onlyProperties };

function describeParams(f: ModelFactory): string {
  const list = Object.entries(f.params).map(([k, v]) => `${k} (${typeof v}, default ${v})`);
  return list.length > 0 ? list.join(", ") : "none";
}

/** Parses one `key=value` against the factory's defaults (their types decide the parse). */
function parseValue(f: ModelFactory, key: string, raw: string | number | boolean): string | number | boolean {
  const def = f.params[key];
  if (def === undefined) throw new UserError(`${f.name} has no parameter '${key}'; its parameters are: ${describeParams(f)}`);
  if (typeof def === "number") {
    const v = typeof raw === "number" ? raw : raw === "" ? NaN : Number(raw);
    if (!Number.isFinite(v)) throw new UserError(`${f.name}: parameter ${key} must be a number, got '${raw}'`);
    return v;
  }
  if (typeof def === "boolean") {
    if (raw === true || raw === "true") return true;
    if (raw === false || raw === "false") return false;
    throw new UserError(`${f.name}: parameter ${key} must be true or false, got '${raw}'`);
  }
  return String(raw);
}

/** The factory's defaults overridden by `given` (from `--set` strings or a suite entry). */
export function resolveParams(f: ModelFactory, given: Params | string[] = {}): Params {
  const params: Params = { ...f.params };
  const pairs: Array<[string, string | number | boolean]> = Array.isArray(given)
    ? given.map((kv) => {
        const eq = kv.indexOf("=");
        if (eq <= 0) throw new UserError(`--set expects key=value, got '${kv}'; ${f.name}'s parameters are: ${describeParams(f)}`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      })
    : Object.entries(given);
  for (const [k, v] of pairs) params[k] = parseValue(f, k, v);
  return params;
}

function checkMutant(f: ModelFactory, mutant: string | undefined): void {
  if (mutant !== undefined && !f.mutants.includes(mutant)) {
    throw new UserError(`${f.name} has no mutant '${mutant}'; its mutants are: ${f.mutants.join(", ") || "none"}`);
  }
}

export function buildModel(f: ModelFactory, params: Params, mutant?: string): Model<unknown, unknown> {
  checkMutant(f, mutant);
  try {
    return f.build(params, mutant);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

export interface RunSpec {
  model: string;
  params?: Params | string[];
  mutant?: string;
  /**
   * Check only these properties (invariants, `eventually`, `leadsTo` or `eventuallyAlways` names). The
   * search stops at the first violated state, so a mutant that breaks two
   * properties shows only the one that breaks first; checking one property
   * alone shows that this property catches the mutant by itself.
   */
  properties?: readonly string[];
  workers?: number;
  options?: CheckOptions;
}

/** Checks one configuration with the engine the worker count asks for. */
export async function runCheck(spec: RunSpec): Promise<CheckResult> {
  const f = await resolveFactory(spec.model);
  const params = resolveParams(f, spec.params);
  const model = onlyProperties(buildModel(f, params, spec.mutant), spec.properties);
  const workers = spec.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`--workers must be a positive integer, got ${workers}`);
  const options = spec.options ?? {};
  if (options.symmetry && !model.canonical) throw new UserError(`${f.name} declares no symmetry (Model.canonical); run it without --symmetry`);
  const info = { params, ...(spec.mutant ? { mutant: spec.mutant } : {}) };
  // Workers load a file model from its path, as this thread did.
  const result = workers === 1 ? withHeap(check(model, options, info)) : await checkParallel({ model: sourceOf(f) ?? f.name, params, mutant: spec.mutant, properties: spec.properties, workers, options }, model);
  return rebuildable(result, f.name, spec.mutant);
}

/** The one-thread engine's result with this thread's heap right after the search (its arrays are still uncollected). */
function withHeap(result: CheckResult): CheckResult {
  return { ...result, heapBytes: heapBytes() };
}

/**
 * A counterexample's header names the model as the registry does (the
 * `mixed` model's instances are named after their protocol) and the mutant
 * it was found with, so that conformance can rebuild its roles (docs/traces.md).
 */
function rebuildable(result: CheckResult, model: string, mutant: string | undefined): CheckResult {
  for (const v of result.violations) v.trace = { ...v.trace, header: { ...v.trace.header, model, ...(mutant !== undefined ? { mutant } : {}) } };
  return result;
}

/**
 * Writes each violation's trace as `<model>[-<mutant>]-<violation>[-<tag>].ndjson`
 * and `.svg` in `dir`, and records the NDJSON path in `violation.file`.
 * The suite passes a tag when two of its entries would share a name.
 */
export async function writeCounterexamples(result: CheckResult, dir: string, tag?: string): Promise<void> {
  makeDirsSync(dir);
  for (const v of result.violations) {
    const base = join(dir, [result.model, result.mutant, v.name, tag].filter((p) => p !== undefined).join("-"));
    await writeTrace(`${base}.ndjson`, v.trace);
    v.file = `${base}.ndjson`;
    try {
      await writeFile(`${base}.svg`, await toSvg(v.trace), "utf8");
    } catch (e) {
      process.stderr.write(`warning: could not draw ${base}.svg: ${(e as Error).message}\n`);
    }
  }
}

/** The result without traces, as `--json` prints it. */
export function summary(result: CheckResult): object {
  const { violations, ...rest } = result;
  return {
    ...rest,
    statesPerSecond: rate(result),
    violations: violations.map((v: Violation) => ({ name: v.name, kind: v.kind, length: v.length, ...(v.cycle !== undefined ? { cycle: v.cycle } : {}), file: v.file ?? null })),
  };
}

/** Distinct states per second. */
export function rate(result: CheckResult): number {
  return result.seconds > 0 ? Math.round(result.distinct / result.seconds) : 0;
}
