// traces/ndjson.ts makeDirs, the `mkdir -p` behind every --out: Node 20's recursive mkdir never returns for a
// directory in /proc (mkdir answers ENOENT under a parent that exists), and `speccommit check --out /proc/x` hung
// before printing anything. Now such a directory is an error naming it, and the CLI says so before the search.
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { makeDirs } from "../../traces/ndjson.ts";
import { main as check } from "../../checker/cli.ts";
import { main as suite } from "../../checker/suite.ts";

describe("makeDirs", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "make-dirs-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("makes every missing level, and accepts one that exists", async () => {
    const deep = join(dir, "a", "b", "c");
    await makeDirs(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await makeDirs(deep);
    await makeDirs(dir);
  });

  it("refuses a file in the way, and a directory the system will not make (/proc), at once", async () => {
    await writeFile(join(dir, "file"), "x");
    await expect(makeDirs(join(dir, "file"))).rejects.toThrow(/exists and is not a directory/);
    await expect(makeDirs(join(dir, "file", "below"))).rejects.toThrow(/ENOTDIR/);
    await expect(makeDirs("/proc/speccommit-no-such-dir/x")).rejects.toThrow(/cannot make directory \/proc\/speccommit-no-such-dir/);
  }, 5_000);

  it("check and suite refuse such an --out before they search (exit 2)", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errors.push(a.join(" ")));
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      expect(await check(["Countdown", "--out", "/proc/speccommit-x", "--quiet"])).toBe(2);
      expect(await suite(["--only", "Countdown", "--out", "/proc/speccommit-x"])).toBe(2);
    } finally {
      vi.restoreAllMocks();
    }
    expect(errors.join("\n")).toMatch(/speccommit check: --out \/proc\/speccommit-x: cannot make directory/);
    expect(errors.join("\n")).toMatch(/speccommit suite: --out \/proc\/speccommit-x: cannot make directory/);
  }, 5_000);
});
