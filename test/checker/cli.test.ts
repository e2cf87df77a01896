// `speccommit check`: exit codes, --json, and messages for user errors.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../checker/cli.ts";
import { parseTrace } from "../../traces/ndjson.ts";

describe("speccommit check", () => {
  let out: string;
  let stdout: string[];
  let stderr: string[];
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), "check-"));
    stdout = [];
    stderr = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void stdout.push(a.join(" ")));
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void stderr.push(a.join(" ")));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(out, { recursive: true, force: true });
  });

  it("--json prints one object with the counts; exit 0 when correct and complete", async () => {
    expect(await main(["TwoPhase", "--set", "RM=4", "--json", "--quiet", "--out", out])).toBe(0);
    expect(stdout).toHaveLength(1);
    const j = JSON.parse(stdout[0]!);
    expect(j).toMatchObject({ model: "TwoPhase", params: { RM: 4 }, distinct: 1568, generated: 8258, depth: 14, complete: true, violations: [] });
    expect(typeof j.seconds).toBe("number");
    expect(typeof j.peakRssMb).toBe("number");
  });

  it("a violation: exit 1, the trace written as NDJSON and SVG", async () => {
    expect(await main(["TwoPhase", "--mutant", "commitWithoutAllPrepared", "--json", "--quiet", "--out", out])).toBe(1);
    const j = JSON.parse(stdout[0]!);
    const file = join(out, "TwoPhase-commitWithoutAllPrepared-TCConsistent.ndjson");
    expect(j.violations).toEqual([{ name: "TCConsistent", kind: "invariant", length: 3, file }]);
    const trace = parseTrace(await readFile(file, "utf8"));
    expect(trace.header.actors).toEqual(["TM", "rm1", "rm2", "rm3"]);
    expect(trace.steps[1]!.sends?.map((m) => m.id)).toEqual(["Commit(rm1)", "Commit(rm2)", "Commit(rm3)"]);
    expect(await readFile(join(out, "TwoPhase-commitWithoutAllPrepared-TCConsistent.svg"), "utf8")).toMatch(/<svg/);
  });

  it("--mutants: exit 0 when every mutant is caught", async () => {
    expect(await main(["--mutants", "TCommit", "--quiet", "--out", out])).toBe(0);
    expect(stdout.join("\n")).toMatch(/mutant commitWithoutAllPrepared: CAUGHT[\s\S]*mutant abortAfterCommit: CAUGHT/);
  });

  it("a limit: exit 3 and INCOMPLETE", async () => {
    expect(await main(["TwoPhase", "--set", "RM=6", "--max-states", "500", "--quiet", "--out", out])).toBe(3);
    expect(stdout.join("\n")).toMatch(/INCOMPLETE: stopped at max states 500/);
  });

  it("user errors: exit 2 with what is allowed", async () => {
    expect(await main(["FourPhase"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/unknown model 'FourPhase'; the models are: TwoPhase, TCommit, Countdown/);
    expect(await main(["TwoPhase", "--set", "rms=3"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/TwoPhase has no parameter 'rms'; its parameters are: RM \(number, default 3\)/);
    expect(await main(["TwoPhase", "--set", "RM=three"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/parameter RM must be a number, got 'three'/);
    expect(await main(["TwoPhase", "--set", "RM=11"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/RM must be an integer from 1 to 10/);
    expect(await main(["TwoPhase", "--mutant", "typo"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/no mutant 'typo'; its mutants are: commitWithoutAllPrepared, abortAfterPrepare, commitAfterAbort/);
    expect(await main(["TwoPhase", "--workers", "0"])).toBe(2);
    expect(await main(["TwoPhase", "--frobnicate"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/unknown option '--frobnicate'/);
  });
});
