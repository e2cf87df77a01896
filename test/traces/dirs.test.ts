// traces/dirs.ts makeDirsSync, the `mkdir -p` behind the checker's --out and the cluster's directories: Node 20's
// recursive mkdir never returns for a directory in /proc (mkdir answers ENOENT under a parent that exists), and
// `speccommit check --out /proc/x` and `speccommit cluster up --dir /proc/x` hung. Now such a directory is an error
// naming it. Every case that could hang runs in a process of its own, with a bound.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeDirsSync } from "../../traces/dirs.ts";

const root = join(import.meta.dirname, "..", "..");
const bounded = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", timeout: 20_000 });

describe("makeDirsSync", () => {
  const dir = mkdtempSync(join(tmpdir(), "make-dirs-"));
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
    const run = bounded(["--import", "tsx", "-e", `import { makeDirsSync } from ${JSON.stringify(join(root, "traces", "dirs.ts"))}; makeDirsSync("/proc/speccommit-no-such-dir/x");`]);
    expect(run.error, "the mkdir did not return").toBeUndefined();
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cannot make directory \/proc\/speccommit-no-such-dir/);
  }, 30_000);

  it("check and suite refuse such an --out before they search (exit 2)", () => {
    const bin = join(root, "bin", "speccommit.js");
    const checked = bounded([bin, "check", "Countdown", "--out", "/proc/speccommit-x", "--quiet"]);
    expect([checked.error, checked.status]).toEqual([undefined, 2]);
    expect(checked.stderr).toMatch(/speccommit check: --out \/proc\/speccommit-x: cannot make directory/);
    const suite = bounded([bin, "suite", "--only", "Countdown", "--out", "/proc/speccommit-x"]);
    expect([suite.error, suite.status]).toEqual([undefined, 2]);
    expect(suite.stderr).toMatch(/speccommit suite: --out \/proc\/speccommit-x: cannot make directory/);
  }, 60_000);
});
