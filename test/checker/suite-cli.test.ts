// `speccommit suite` refuses to run nothing: an --only that matches no entry (a misspelt model or config) or an
// empty suite file exits 2 with a message, where it printed "all 0 entries as expected" and exited 0 (a CI step
// with a typo would pass). Options that need a value say so.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../checker/suite.ts";

const fixture = (name: string) => join(import.meta.dirname, "fixtures", name);

describe("speccommit suite: nothing to run is an error", () => {
  let out: string;
  let errors: string[];
  beforeEach(async () => {
    out = await mkdtemp(join(tmpdir(), "speccommit-suite-cli-"));
    errors = [];
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errors.push(a.join(" ")));
    vi.spyOn(console, "log").mockImplementation(() => undefined);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(out, { recursive: true, force: true });
  });

  it("an --only that matches no entry exits 2 and names the models", async () => {
    expect(await main(["--suite", fixture("good-suite.ts"), "--out", out, "--only", "no-such-model"])).toBe(2);
    expect(errors.join("\n")).toMatch(/--only 'no-such-model' matches no entry .*the models: /);
  });

  it("an --only that matches runs those entries", async () => {
    expect(await main(["--suite", fixture("good-suite.ts"), "--out", out, "--only", "Countdown"])).toBe(0);
    expect(errors).toEqual([]);
  });

  it("a suite file with no entries exits 2", async () => {
    const empty = join(out, "empty-suite.ts");
    await writeFile(empty, "export const suite = [];\n");
    expect(await main(["--suite", empty, "--out", out])).toBe(2);
    expect(errors.join("\n")).toMatch(/the suite has no entries/);
  });

  it("--only, --out and --suite need a value", async () => {
    for (const flag of ["--only", "--out", "--suite"]) {
      errors = [];
      expect(await main([flag]), flag).toBe(2);
      expect(await main([flag, "--jobs", "2"]), flag).toBe(2);
      expect(errors.join("\n")).toMatch(new RegExp(`${flag} needs a value`));
    }
  });
});
