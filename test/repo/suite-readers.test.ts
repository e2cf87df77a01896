// Tests that walk the checker suite read it through checker/suite.ts loadSuite(), as `speccommit suite`
// does: suite.config.ts names model files relative to checker/ (PaxosCommit), and only loadSuite makes
// those paths absolute and loads them. Two tests that imported suite.config.ts directly broke when the
// first model file joined the suite ("model file ../spec/reference/paxoscommit.ts is not loaded yet").
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? testFiles(p) : /\.(ts|mts)$/.test(name) ? [p] : [];
  });
}

const IMPORTS_CONFIG = /from\s+["'][./]*checker\/suite\.config(\.ts)?["']/;

describe("suite readers", () => {
  it("no test imports checker/suite.config.ts directly (loadSuite resolves and loads its model files)", () => {
    const offenders = testFiles(join(root, "test"))
      .filter((f) => f !== import.meta.filename && IMPORTS_CONFIG.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });

  it("the pattern sees a direct import", () => {
    expect(IMPORTS_CONFIG.test('import { suite } from "../../checker/suite.config.ts";')).toBe(true);
    expect(IMPORTS_CONFIG.test('import { loadSuite } from "../../checker/suite.ts";')).toBe(false);
  });
});
