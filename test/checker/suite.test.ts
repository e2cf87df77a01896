// The suite runner gates CI: it must fail whenever an entry's outcome is not
// the expected one, and pass when all are.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { judge, main, runEntry, suffixed, type SuiteEntry } from "../../checker/suite.ts";

const fixture = (name: string) => join(import.meta.dirname, "fixtures", name);

describe("suite runner", () => {
  let out: string;
  let printed: string[];
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), "suite-"));
    printed = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void printed.push(a.join(" ")));
    vi.spyOn(console, "error").mockImplementation(() => undefined);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(out, { recursive: true, force: true });
  });

  it("FAILS (exit 1) when a suite declares a mutant as ok", async () => {
    expect(await main(["--suite", fixture("broken-suite.ts"), "--out", out])).toBe(1);
    expect(printed.join("\n")).toMatch(/mutant=commitWithoutAllPrepared\s.*FAIL: violates TCConsistent/);
    expect(printed.at(-1)).toMatch(/1 of 2 entries FAILED/);
  });

  it("passes (exit 0) a correct suite, printing the table and writing each caught mutant's trace and diagram", async () => {
    expect(await main(["--suite", fixture("good-suite.ts"), "--out", out])).toBe(0);
    expect(printed[0]).toMatch(/^model\s+config\s+distinct\s+generated\s+depth\s+time\s+states\/s\s+result$/);
    expect(printed.join("\n")).toMatch(/mutant=abortAfterPrepare\s.*caught TCConsistent \(9 steps\)/);
    const files = await readdir(out);
    for (const m of ["commitWithoutAllPrepared", "abortAfterPrepare", "commitAfterAbort"]) {
      expect(files).toContain(`TwoPhase-${m}-TCConsistent.ndjson`);
      expect(files).toContain(`TwoPhase-${m}-TCConsistent.svg`);
    }
  });

  // --jobs: entries in child processes (real ones: bin/speccommit.js), the same rows and verdicts.
  const rows = (lines: string[]) => lines.slice(1).filter((l) => !l.startsWith("\n")).map((l) => l.replace(/\s+\d+\.\d+s\s+\d+\s/, " "));
  it("--jobs 2 prints the same rows (in the order the entries finish) and fails the same entries", { timeout: 120_000 }, async () => {
    expect(await main(["--suite", fixture("good-suite.ts"), "--out", out])).toBe(0);
    const one = rows(printed).sort();
    printed.length = 0;
    expect(await main(["--suite", fixture("good-suite.ts"), "--out", join(out, "jobs"), "--jobs", "2"])).toBe(0);
    expect(rows(printed).sort()).toEqual(one);
    expect(printed.at(-1)).toMatch(/all \d+ entries as expected/);
    const files = await readdir(join(out, "jobs"));
    for (const m of ["commitWithoutAllPrepared", "abortAfterPrepare", "commitAfterAbort"]) expect(files).toContain(`TwoPhase-${m}-TCConsistent.svg`);
    printed.length = 0;
    expect(await main(["--suite", fixture("broken-suite.ts"), "--out", out, "--jobs", "2"])).toBe(1);
    expect(printed.join("\n")).toMatch(/mutant=commitWithoutAllPrepared\s.*FAIL: violates TCConsistent/);
    expect(printed.at(-1)).toMatch(/1 of 2 entries FAILED/);
  });

  it("--jobs names a later entry's counterexamples with its configuration when an earlier one has its model and mutant", () => {
    expect(
      suffixed([
        { model: "A", expect: "ok" },
        { model: "A", mutant: "m", expect: "mutant caught" },
        { model: "A", mutant: "m", expect: "mutant caught", params: { N: 2 } },
        { model: "B", mutant: "m", expect: "mutant caught" },
        { model: "A", expect: "ok", params: { N: 2 } },
      ]),
    ).toEqual([false, false, true, false, true]);
  });

  const fails = async (e: SuiteEntry) => (await runEntry(e, out)).pass === false;

  it("fails a count that differs from the stated one", async () => {
    expect(await fails({ model: "TwoPhase", params: { RM: 3 }, expect: "ok", counts: { generated: 1_145 } })).toBe(true);
    expect(await fails({ model: "TwoPhase", params: { RM: 3 }, expect: "ok", counts: { depth: 12 } })).toBe(true);
  });

  it("fails a run left incomplete, even with no violation", async () => {
    expect(await fails({ model: "TwoPhase", params: { RM: 5 }, expect: "ok", maxStates: 100 })).toBe(true);
  });

  it("fails a mutant that is not caught, the wrong violation, and a wrong trace length", async () => {
    expect(await fails({ model: "TwoPhase", params: { RM: 3 }, expect: "mutant caught" })).toBe(true);
    expect(await fails({ model: "TwoPhase", params: { RM: 3 }, mutant: "abortAfterPrepare", expect: "violates TPTypeOK" })).toBe(true);
    expect(await fails({ model: "TwoPhase", params: { RM: 3 }, mutant: "abortAfterPrepare", expect: "mutant caught", length: 8 })).toBe(true);
    expect(await fails({ model: "Countdown", mutant: "noRepair", expect: "deadlock" })).toBe(true);
  });

  it("fails an entry naming an unknown model or parameter, saying what exists", async () => {
    const v = await runEntry({ model: "ThreePhase", expect: "ok" }, out);
    expect(v.pass).toBe(false);
    expect(v.outcome).toMatch(/unknown model 'ThreePhase'; the models are: TwoPhase, TCommit/);
    const w = await runEntry({ model: "TwoPhase", params: { N: 3 }, expect: "ok" }, out);
    expect(w.outcome).toMatch(/TwoPhase has no parameter 'N'; its parameters are: RM \(number, default 3\)/);
  });

  it("judge: 'violates X' accepts an eventually violation by name", () => {
    const r = { model: "M", params: {}, workers: 1, symmetry: false, distinct: 1, generated: 1, depth: 1, seconds: 0, storeMb: 1, peakRssMb: 1, complete: true, violations: [{ name: "Done", kind: "eventually" as const, length: 1, trace: { header: { source: "checker" as const }, steps: [] } }] };
    expect(judge({ model: "M", expect: "violates Done" }, r)).toEqual([]);
    expect(judge({ model: "M", expect: "ok" }, r)).toEqual(["violates Done"]);
  });
});
