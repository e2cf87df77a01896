// The layers' contract (docs/architecture.md): spec/ imports only spec/ and
// no node: builtin (pure functions, no I/O); traces/ and conformance/ never
// import runtime/ or checker/; no two top-level folders import each other.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const TOP = ["spec", "checker", "traces", "conformance", "runtime"] as const;
type Top = (typeof TOP)[number];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const IMPORT = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

interface Edge {
  readonly from: Top;
  readonly to: string;
  readonly file: string;
}

/** Every import of a top-level folder's files: the folder it reaches ("node:" for builtins, "npm" for packages). */
export function importsOf(top: Top): Edge[] {
  const edges: Edge[] = [];
  for (const file of filesUnder(join(root, top))) {
    for (const m of readFileSync(file, "utf8").matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      const rel = relative(root, file);
      if (spec.startsWith("node:")) edges.push({ from: top, to: "node:", file: rel });
      else if (!spec.startsWith(".")) edges.push({ from: top, to: "npm", file: rel });
      else edges.push({ from: top, to: relative(root, normalize(join(dirname(file), spec))).split(sep)[0]!, file: rel });
    }
  }
  return edges;
}

const all = TOP.flatMap(importsOf);
const crossing = (from: Top, to: string) => all.filter((e) => e.from === from && e.to === to).map((e) => e.file);

describe("folder boundaries", () => {
  it("spec/ imports only spec/: no other folder, no node: builtin", () => {
    expect(all.filter((e) => e.from === "spec" && e.to !== "spec").map((e) => `${e.file} -> ${e.to}`)).toEqual([]);
  });

  it("traces/ and conformance/ never import runtime/ or checker/", () => {
    const bad = (["traces", "conformance"] as const).flatMap((f) => [...crossing(f, "runtime"), ...crossing(f, "checker")]);
    expect(bad).toEqual([]);
  });

  it("no two top-level folders import each other", () => {
    const cycles: string[] = [];
    for (const a of TOP) for (const b of TOP) if (a < b && crossing(a, b).length > 0 && crossing(b, a).length > 0) cycles.push(`${a} <-> ${b}: ${crossing(a, b)[0]} / ${crossing(b, a)[0]}`);
    expect(cycles).toEqual([]);
  });

  it("the scan sees imports (a guard against a regex that matches nothing)", () => {
    expect(crossing("runtime", "spec").length).toBeGreaterThan(10);
    expect(crossing("checker", "spec").length).toBeGreaterThan(3);
  });
});
