// runtime/cluster/dirs.ts makeDirsSync, the `mkdir -p` of the cluster's directories: Node 20's recursive mkdir
// never returns for a directory in /proc, and `speccommit cluster up --dir /proc/x` hung; now it is an error.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeDirsSync } from "../../runtime/cluster/dirs.ts";

describe("makeDirsSync", () => {
  const dir = mkdtempSync(join(tmpdir(), "cluster-dirs-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("makes every missing level with the mode given, and accepts one that exists", () => {
    const deep = join(dir, "a", "b");
    makeDirsSync(deep, 0o700);
    expect(statSync(deep).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "a")).mode & 0o777).toBe(0o700);
    makeDirsSync(deep);
    makeDirsSync(dir);
  });

  it("refuses a file in the way and a directory the system will not make (/proc), at once", () => {
    writeFileSync(join(dir, "file"), "x");
    expect(() => makeDirsSync(join(dir, "file"))).toThrow(/exists and is not a directory/);
    expect(() => makeDirsSync(join(dir, "file", "below"))).toThrow(/ENOTDIR/);
    // In a process of its own, with a bound: a mkdir that never returns would block this one.
    const run = spawnSync(process.execPath, ["--import", "tsx", "-e", `import { makeDirsSync } from ${JSON.stringify(join(import.meta.dirname, "..", "..", "runtime", "cluster", "dirs.ts"))}; makeDirsSync("/proc/speccommit-no-such-dir/x");`], { encoding: "utf8", timeout: 20_000 });
    expect(run.error, "the mkdir did not return").toBeUndefined();
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cannot make directory \/proc\/speccommit-no-such-dir/);
  }, 30_000);
});
