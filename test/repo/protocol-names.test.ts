// A protocol has one home (issue 10, "Guard rails"): its name and its modules
// appear only in its folder spec/protocols/<name>/ and in the registry
// (spec/protocols/registry.ts); every other place reaches a protocol through
// the registry's declared `Protocol` values. This test scans runtime/, spec/
// (outside spec/protocols/), conformance/, traces/ and checker/ for a
// protocol's name as a string literal and for imports of a protocol's folder.
//
// KNOWN lists the files that still break the rule, each with why; the test
// fails on any other offender, and on a KNOWN file that no longer offends
// (so the list only shrinks).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { PROTOCOLS } from "../../spec/protocols/registry.ts";

const root = join(import.meta.dirname, "..", "..");
const SCANNED = ["runtime", "spec", "conformance", "traces", "checker"];
/** The protocols' own places: their folders (shared xa/ included), the contract and the registry. */
const HOME = /^spec\/protocols\//;

const KNOWN: Record<string, string> = {
  "spec/server/model.ts":
    "the server and mixed models' scenarios name the protocol of each transaction (two transactions of different protocols, by design), and the model imports the XA and speculative ghosts, timers and scan reductions to build one world of every protocol; owned by another helper (idempotency and read-back), so it stays until the ghost and reduction are declared in the Protocol value",
  "spec/failover/model.ts":
    "the failover model composes the server's roles over XA shards (or XA and local shards, with a speculative transaction) as spec/server/model.ts does, and imports the XA ghost, vote and apply timers, scan quietness and AC5 statement, the 2PC coordinator settings and the speculative resolver (for its spec-presumed-abort mutant) from their folders for the same reason; it names no protocol (its scenario takes the protocol as a parameter, checked against the registry)",
  "checker/suite.config.ts":
    "suite entries name checker models (model: \"parallel\", \"speculative\"), which are named as their protocols: a suite is a table of names, read by a person; owned by the checker helper",
};

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** The source without comments (line and block), strings kept. */
const stripComments = (src: string): string => src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");

const IMPORT = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

/** What in `src` (the file `file`, relative to the root) names a protocol outside its home. */
export function offencesIn(file: string, src: string, names: readonly string[] = PROTOCOLS): string[] {
  const out: string[] = [];
  const code = stripComments(src);
  for (const m of code.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    if (!spec.startsWith(".")) continue;
    const target = relative(root, normalize(join(root, dirname(file), spec))).split(sep).join("/");
    if (/^spec\/protocols\/[^/]+\//.test(target)) out.push(`imports ${target}`);
  }
  for (const name of names) {
    const lit = new RegExp(`(["'\`])${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\1`, "g");
    for (const _ of code.matchAll(lit)) out.push(`names ${JSON.stringify(name)}`);
  }
  return [...new Set(out)];
}

function offenders(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const top of SCANNED) {
    for (const abs of filesUnder(join(root, top))) {
      const file = relative(root, abs).split(sep).join("/");
      if (HOME.test(file)) continue;
      const o = offencesIn(file, readFileSync(abs, "utf8"));
      if (o.length > 0) found.set(file, o);
    }
  }
  return found;
}

describe("protocol names live in their folder and the registry", () => {
  const found = offenders();

  it("no file outside spec/protocols/ names a protocol or imports its folder (but the KNOWN ones)", () => {
    const unexpected = [...found].filter(([f]) => KNOWN[f] === undefined).map(([f, o]) => `${f}: ${o.join(", ")}`);
    expect(unexpected).toEqual([]);
  });

  it("every KNOWN file still offends (fix one: take it off the list)", () => {
    expect(Object.keys(KNOWN).filter((f) => !found.has(f))).toEqual([]);
  });

  it("the scanner catches a literal and an import, and ignores comments and other strings", () => {
    const fixture = [
      `import { x } from "../spec/protocols/speculative/probe.ts";`,
      `const p = r.protocol ?? "2pc";`,
      `// "parallel" in a comment`,
      `/* import { y } from "../spec/protocols/xa/resolver.ts"; */`,
      `const s = "2pc+speculative";`,
    ].join("\n");
    expect(offencesIn("runtime/fixture.ts", fixture)).toEqual(["imports spec/protocols/speculative/probe.ts", 'names "2pc"']);
    expect(offencesIn("runtime/fixture.ts", `const ok = DEFAULT_PROTOCOL;`)).toEqual([]);
  });

  it("runtime/durable.ts and runtime/idempotency.ts name no protocol", () => {
    expect(found.get("runtime/durable.ts")).toBeUndefined();
    expect(found.get("runtime/idempotency.ts")).toBeUndefined();
  });
});
