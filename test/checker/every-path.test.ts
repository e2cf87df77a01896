// Every engine path x every property kind x a violation: the counterexample is
// rebuilt and rendered (NDJSON text and SVG diagram), names its mutant, and its
// step count is the same word and number in the CLI and in the diagram (issue 9, section 7).
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runCheck, type Params } from "../../checker/run.ts";
import { describeResult, main } from "../../checker/cli.ts";
import type { CheckResult, Violation, ViolationKind } from "../../checker/result.ts";
import { formatTrace, parseTrace } from "../../traces/ndjson.ts";
import { toSvg } from "../../traces/render.ts";

const MODEL = resolve(import.meta.dirname, "fixtures/every-kind.ts");

interface Path {
  name: string;
  params: Params;
  workers: number;
  /** Whether the path checks liveness properties (else the model declares none). */
  liveness: boolean;
}

const paths: Path[] = [
  { name: "generic", params: { packed: false, liveness: false }, workers: 1, liveness: false },
  { name: "packed", params: { packed: true, liveness: false }, workers: 1, liveness: false },
  { name: "workers (generic)", params: { packed: false, liveness: false }, workers: 2, liveness: false },
  { name: "workers (packed)", params: { packed: true, liveness: false }, workers: 2, liveness: false },
  { name: "constraint (generic)", params: { packed: false, liveness: false, constraint: true }, workers: 1, liveness: false },
  { name: "constraint (packed)", params: { packed: true, liveness: false, constraint: true }, workers: 1, liveness: false },
  { name: "liveness (generic)", params: { packed: false, liveness: true }, workers: 1, liveness: true },
  // A packed model with liveness properties runs the generic loop: it crashed rebuilding its traces.
  { name: "liveness (packed model)", params: { packed: true, liveness: true }, workers: 1, liveness: true },
  // Workers for every kind (issue 12): the graph is assembled on the main thread and checked there.
  { name: "workers constraint (generic)", params: { packed: false, liveness: false, constraint: true }, workers: 2, liveness: false },
  { name: "workers constraint (packed)", params: { packed: true, liveness: false, constraint: true }, workers: 2, liveness: false },
  { name: "workers liveness (generic)", params: { packed: false, liveness: true }, workers: 2, liveness: true },
  { name: "workers liveness (packed model)", params: { packed: true, liveness: true }, workers: 2, liveness: true },
  { name: "3 workers liveness (generic)", params: { packed: false, liveness: true }, workers: 3, liveness: true },
];

interface Kind {
  kind: ViolationKind;
  name: string;
  mutant: string;
  deadlock?: boolean;
  /** Steps of the shortest trace (a lasso: of its prefix), and a lasso's cycle. */
  length: number;
  cycle?: number;
  liveness: boolean;
}

const kinds: Kind[] = [
  { kind: "invariant", name: "Bounded", mutant: "overflow", length: 5, liveness: false },
  { kind: "deadlock", name: "deadlock", mutant: "stuck", deadlock: true, length: 3, liveness: false },
  { kind: "eventually", name: "ReachesTop", mutant: "trap", length: 3, liveness: true },
  { kind: "leadsTo", name: "ClimbsToTop", mutant: "unfair", length: 1, cycle: 2, liveness: true },
  { kind: "eventuallyAlways", name: "SettlesAtTop", mutant: "unfair", length: 0, cycle: 2, liveness: true },
];

/** The step count the CLI prints for a violation, as a number (a lasso: prefix + cycle). */
function cliSteps(r: CheckResult, v: Violation): number {
  const line = describeResult(r).split("\n").find((l) => l.includes(`VIOLATION ${v.name} `))!;
  const shortest = /shortest trace (\d+) steps/.exec(line);
  if (shortest) return Number(shortest[1]);
  const lasso = /shortest prefix (\d+) steps, then (?:stutters forever|a (\d+)-step cycle forever)/.exec(line);
  expect(lasso, line).not.toBeNull();
  return Number(lasso![1]) + Number(lasso![2] ?? 0);
}

/** The step count in the diagram's title. */
function diagramSteps(svg: string): number {
  const m = /checker trace, (\d+) steps?/.exec(svg);
  expect(m, "the diagram's title has a step count").not.toBeNull();
  return Number(m![1]);
}

describe("every engine path x every property kind", () => {
  for (const path of paths) {
    for (const k of kinds) {
      if (k.liveness && !path.liveness) continue;
      it(`${path.name}: ${k.kind} (${k.mutant}) is rebuilt, rendered and named`, async () => {
        const r = await runCheck({ model: MODEL, params: path.params, mutant: k.mutant, workers: path.workers, options: { deadlock: !!k.deadlock } });
        const v = r.violations.find((x) => x.name === k.name);
        expect(v, `${k.name} in ${r.violations.map((x) => x.name)}`).toBeDefined();
        expect(v!.kind).toBe(k.kind);
        expect(v!.length).toBe(k.length);
        expect(v!.cycle).toBe(k.cycle);
        // Text: the NDJSON round-trips and carries the mutant and the step count.
        const trace = parseTrace(formatTrace(v!.trace));
        expect(trace.header.mutant).toBe(k.mutant);
        expect(trace.header.violation).toBe(k.name);
        const steps = k.length + (k.cycle ?? 0);
        expect(trace.header.length).toBe(steps);
        // Each inc draws as two rows (counter, observer): rows are not steps.
        const incs = trace.steps.filter((x) => x.actor === "observer").length;
        expect(trace.steps.length - 1).toBe(steps + incs);
        if (k.kind !== "eventuallyAlways") expect(incs).toBeGreaterThan(0);
        // Diagram: titled with the mutant and the same count as the CLI.
        const svg = await toSvg(trace);
        expect(svg).toContain("EveryKind [mutant " + k.mutant + "]");
        expect(diagramSteps(svg)).toBe(steps);
        expect(cliSteps(r, v!)).toBe(steps);
        // A search stopped at its first violating state did not explore everything.
        if (!k.liveness) expect(r.complete).toBe(false);
      });
    }
  }

  it("liveness with a constraint is refused (not silently unchecked), with one worker or two", async () => {
    for (const workers of [1, 2]) await expect(runCheck({ model: MODEL, params: { liveness: true, constraint: true }, workers })).rejects.toThrow(/constraint/);
  });

  it("the correct model has no violation on any path", async () => {
    for (const path of paths) {
      const r = await runCheck({ model: MODEL, params: path.params, workers: path.workers, options: { deadlock: true } });
      expect(r.violations, path.name).toEqual([]);
      expect(r.complete, path.name).toBe(true);
    }
  });
});

describe("speccommit check on the model with every kind", () => {
  let out: string;
  let stdout: string[];
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), "every-"));
    stdout = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void stdout.push(a.join(" ")));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(out, { recursive: true, force: true });
  });

  it("--mutants on a packed model with liveness properties catches every mutant and draws every trace", async () => {
    expect(await main(["--mutants", MODEL, "--deadlock", "--quiet", "--out", out])).toBe(0);
    const text = stdout.join("\n");
    for (const m of ["overflow", "stuck", "trap", "unfair"]) expect(text).toContain(`mutant ${m}: CAUGHT`);
    // The CLI's count is the diagram's count, for every trace written.
    const re = /VIOLATION (\S+) \((\w+)\): (?:shortest trace (\d+) steps|lasso: shortest prefix (\d+) steps, then (?:stutters forever|a (\d+)-step cycle forever)) -> (\S+\.ndjson)/g;
    const found = [...text.matchAll(re)];
    expect(found.length).toBeGreaterThanOrEqual(4);
    for (const f of found) {
      const steps = f[3] !== undefined ? Number(f[3]) : Number(f[4]) + Number(f[5] ?? 0);
      const svg = await readFile(f[6]!.replace(/\.ndjson$/, ".svg"), "utf8");
      expect(diagramSteps(svg), f[0]).toBe(steps);
      const trace = parseTrace(await readFile(f[6]!, "utf8"));
      expect(svg).toContain(`EveryKind [mutant ${trace.header.mutant}]`);
    }
  });

  it("--mutants prints each mutant's own store figure, and the process's peak RSS once", async () => {
    expect(await main(["--mutants", MODEL, "--deadlock", "--quiet", "--out", out])).toBe(0);
    const text = stdout.join("\n");
    expect(text).not.toMatch(/VIOLATION[^\n]*\n[^\n]*peak RSS/);
    expect(text.match(/peak RSS/g)).toHaveLength(1);
    expect(text.match(/state store [\d.]+ MB/g)).toHaveLength(4);
    stdout.length = 0;
    expect(await main(["--mutants", MODEL, "--deadlock", "--quiet", "--json", "--out", out])).toBe(0);
    const j = JSON.parse(stdout[0]!) as { peakRssMb: number; mutants: Array<Record<string, unknown>> };
    expect(typeof j.peakRssMb).toBe("number");
    for (const m of j.mutants) {
      expect(m).not.toHaveProperty("peakRssMb");
      expect(typeof m.storeMb).toBe("number");
    }
  });
});

describe("--max-depth and complete", () => {
  for (const [name, params, workers] of [
    ["generic", { packed: false, liveness: false }, 1],
    ["packed", { packed: true, liveness: false }, 1],
    ["workers", { packed: true, liveness: false }, 2],
  ] as const) {
    it(`${name}: a deadlock at depth N is reported with --max-depth N`, async () => {
      // stuck deadlocks at x = 2, y = 1: three steps, depth 4.
      const r = await runCheck({ model: MODEL, params, mutant: "stuck", workers, options: { deadlock: true, maxDepth: 4 } });
      expect(r.violations.map((v) => [v.kind, v.length])).toEqual([["deadlock", 3]]);
      expect(r.complete).toBe(false);
      expect(r.incomplete).toBeUndefined();
      // One level short, the state is never reached: incomplete, no violation.
      const short = await runCheck({ model: MODEL, params, mutant: "stuck", workers, options: { deadlock: true, maxDepth: 3 } });
      expect(short.violations).toEqual([]);
      expect(short.incomplete).toBe("max depth 3");
    });

    it(`${name}: a limit at which nothing is enabled leaves the search complete, with the same counts`, async () => {
      const full = await runCheck({ model: MODEL, params, workers, options: { deadlock: true } });
      expect(full.depth).toBe(6);
      // Depth 6 holds only (4, 1), which is terminal: nothing beyond it.
      const at6 = await runCheck({ model: MODEL, params, workers, options: { deadlock: true, maxDepth: 6 } });
      expect([at6.distinct, at6.generated, at6.depth, at6.complete]).toEqual([full.distinct, full.generated, full.depth, true]);
      const at5 = await runCheck({ model: MODEL, params, workers, options: { deadlock: true, maxDepth: 5 } });
      expect([at5.complete, at5.incomplete]).toEqual([false, "max depth 5"]);
    });
  }

  it("the CLI says a run stopped at a violation is not complete, and JSON says complete: false", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.join(" ")));
    const out = await mkdtemp(join(tmpdir(), "every-"));
    try {
      expect(await main([MODEL, "--mutant", "overflow", "--quiet", "--out", out])).toBe(1);
      expect(lines.join("\n")).toMatch(/stopped at the first violating state/);
      lines.length = 0;
      expect(await main([MODEL, "--mutant", "overflow", "--quiet", "--json", "--out", out])).toBe(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ complete: false });
    } finally {
      vi.restoreAllMocks();
      await rm(out, { recursive: true, force: true });
    }
  });
});
