/**
 * Finding a model by what the user typed: a name in the registry
 * (registry.ts), or the path of a module that exports one (`speccommit check
 * ./my-model.ts`), so that a model can be checked without editing the
 * registry, as an installed package's users must. Worker threads load a
 * file model from the same path (parallel.ts passes it on).
 *
 * A model file exports a ModelFactory or a Model: the default export if it
 * is one, else the one export that is a factory, else the one that is a
 * model. A bare Model becomes a factory with no parameters and no mutants.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { tsImport } from "tsx/esm/api";
import type { Model, ModelFactory } from "../spec/kernel/model.ts";
import { registry } from "./registry.ts";
import { UserError } from "./errors.ts";

/** Loaded files by absolute path, and the path each factory came from. */
const loaded = new Map<string, ModelFactory>();
const sources = new WeakMap<ModelFactory, string>();

/** A path rather than a name: it has a directory part or a module extension. */
export function isModelPath(ref: string): boolean {
  return ref.includes("/") || ref.includes("\\") || /\.(ts|mts|js|mjs)$/.test(ref);
}

/** The absolute path a factory was loaded from; undefined for registry models. */
export function sourceOf(f: ModelFactory): string | undefined {
  return sources.get(f);
}

const registryNames = () => registry.map((f) => f.name).join(", ");

/** A registry model by name (case-insensitive), or a file model already loaded by `resolveFactory`. */
export function findFactory(ref: string): ModelFactory {
  if (isModelPath(ref)) {
    const f = loaded.get(resolve(ref));
    if (f === undefined) throw new UserError(`model file ${ref} is not loaded yet (checker/load.ts resolveFactory loads it)`);
    return f;
  }
  const found = registry.find((f) => f.name === ref) ?? registry.find((f) => f.name.toLowerCase() === ref.toLowerCase());
  if (!found) throw new UserError(`unknown model '${ref}'; the models are: ${registryNames()}; or give the path of a model file (./my-model.ts)`);
  return found;
}

/** A registry model by name, or the model a file exports (loaded once per path). */
export async function resolveFactory(ref: string): Promise<ModelFactory> {
  if (!isModelPath(ref)) return findFactory(ref);
  const path = resolve(ref);
  const known = loaded.get(path);
  if (known) return known;
  if (!existsSync(path)) throw new UserError(`model file ${ref}: no such file (${path})`);
  let mod: Record<string, unknown>;
  try {
    // tsx's own import: a .ts file outside any "type": "module" package is TypeScript too.
    mod = (await tsImport(pathToFileURL(path).href, import.meta.url)) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`model file ${ref} could not be loaded: ${(e as Error).message}`);
  }
  // A file outside any "type": "module" package loads as CommonJS: its exports come wrapped in `default`.
  const inner = mod.default as Record<string, unknown> | undefined;
  const f = factoryIn(inner !== null && typeof inner === "object" && inner.__esModule === true ? inner : mod, ref);
  loaded.set(path, f);
  sources.set(f, path);
  return f;
}

function isFactory(x: unknown): x is ModelFactory {
  const f = x as ModelFactory;
  return typeof x === "object" && x !== null && typeof f.name === "string" && typeof f.build === "function" && typeof f.params === "object" && Array.isArray(f.mutants);
}

function isModel(x: unknown): x is Model<unknown, unknown> {
  const m = x as Model<unknown, unknown>;
  return (
    typeof x === "object" &&
    x !== null &&
    typeof m.name === "string" &&
    ["init", "actions", "next", "encode", "decode"].every((k) => typeof (m as unknown as Record<string, unknown>)[k] === "function") &&
    typeof m.invariants === "object"
  );
}

function factoryIn(mod: Record<string, unknown>, ref: string): ModelFactory {
  const pick = <T>(test: (x: unknown) => x is T): T | undefined => {
    if (test(mod.default)) return mod.default;
    const hits = Object.entries(mod).filter(([k, v]) => k !== "default" && k !== "__esModule" && test(v));
    if (hits.length > 1) throw new UserError(`model file ${ref} exports several (${hits.map(([k]) => k).join(", ")}); export the one to check as default`);
    return hits[0]?.[1] as T | undefined;
  };
  const factory = pick(isFactory);
  if (factory) return factory;
  const model = pick(isModel);
  if (model) return { name: model.name, description: `the model exported by ${ref}`, params: {}, mutants: [], build: () => model };
  const names = Object.keys(mod).filter((k) => k !== "__esModule").join(", ") || "nothing";
  throw new UserError(
    `model file ${ref} exports no ModelFactory (name, description, params, mutants, build) and no Model (name, init, actions, next, invariants, encode, decode); it exports: ${names}`,
  );
}
