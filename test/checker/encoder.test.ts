/**
 * `speccommit check --encoder json|interned`: the interned collapser
 * (spec/env/collapse.ts) and the canonical-JSON one it replaced, kept as the
 * benchmark's baseline, explore the same states: the same counts and the
 * same shortest counterexample on a protocol model, and the suite's counts.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../checker/cli.ts";
import { useEncoder } from "../../spec/env/collapse.ts";
import { useBaselinePaths } from "../../spec/world/flights.ts";

async function check(args: string[]): Promise<{ code: number; json: Record<string, unknown> }> {
  const out = await mkdtemp(join(tmpdir(), "encoder-"));
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.join(" ")));
  try {
    const code = await main([...args, "--json", "--quiet", "--out", out]);
    return { code, json: JSON.parse(lines[0]!) as Record<string, unknown> };
  } finally {
    vi.restoreAllMocks();
    await rm(out, { recursive: true, force: true });
  }
}

describe("state encoders", () => {
  afterEach(() => {
    useEncoder("interned");
    useBaselinePaths(false);
  });

  it("give the suite's counts on twopc, with either encoder", async () => {
    for (const encoder of ["json", "interned"]) {
      const { code, json } = await check(["twopc", "--set", "scenario=transfer", "--set", "crash=0", "--set", "shardCrash=0", "--encoder", encoder]);
      expect(code).toBe(0);
      expect(json).toMatchObject({ distinct: 536, generated: 1_242, depth: 20, complete: true });
    }
  });

  it("find the same shortest counterexample", async () => {
    const args = ["twopc", "--set", "scenario=transfer", "--set", "crash=0", "--set", "shardCrash=1", "--mutant", "commit-despite-failed-prepare", "--property", "AC1_agreement"];
    const a = await check([...args, "--encoder", "json"]);
    const b = await check([...args, "--encoder", "interned"]);
    expect(a.code).toBe(1);
    expect(b.code).toBe(1);
    expect((b.json.violations as Array<{ length: number }>)[0]!.length).toBe(11);
    expect(b.json).toMatchObject({ distinct: a.json.distinct, generated: a.json.generated, depth: a.json.depth });
  });

  // --before (the benchmark's baseline: the canonical-JSON encoder and the world's old flight handling) explores
  // the same states as now: the suite's counts with crashes and log faults (orphans, fenced writes, re-sorted flights).
  it("--before gives the suite's counts and the same shortest counterexample as now", async () => {
    for (const before of [true, false]) {
      const spec = await check(["speculative", "--set", "scenario=transfer", "--set", "crash=1", "--set", "shardCrash=0", "--set", "logFault=1", ...(before ? ["--before"] : [])]);
      expect(spec.code).toBe(0);
      expect(spec.json).toMatchObject({ distinct: 32_828, generated: 104_932, depth: 40, complete: true });
    }
    const args = ["twopc", "--set", "scenario=transfer", "--set", "crash=1", "--set", "shardCrash=0", "--mutant", "no-epoch-fence", "--property", "AC2_irrevocable"];
    const a = await check([...args, "--before"]);
    const b = await check(args);
    expect([a.code, b.code]).toEqual([1, 1]);
    expect((a.json.violations as Array<{ length: number }>)[0]!.length).toBe(31);
    expect((b.json.violations as Array<{ length: number }>)[0]!.length).toBe(31);
  }, 300_000);

  it("refuses an unknown encoder", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errors.push(a.join(" ")));
    expect(await main(["twopc", "--encoder", "xml", "--quiet"])).toBe(2);
    expect(errors[0]).toMatch(/--encoder expects interned or json, got 'xml'/);
    vi.restoreAllMocks();
  });
});
