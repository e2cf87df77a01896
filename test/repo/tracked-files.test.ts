// What git tracks is the project, nothing of one machine: no symbolic link (a checkout's link to another's
// node_modules was once committed by a merge made in a worktree, and checking it out replaced the real
// node_modules with a link to itself), and nothing under node_modules, out/ or .speccommit/.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

describe("tracked files", () => {
  const entries = execFileSync("git", ["ls-files", "-s", "-z"], { cwd: root, encoding: "utf8" })
    .split("\0")
    .filter((l) => l.length > 0)
    .map((l) => ({ mode: l.split(" ")[0]!, path: l.slice(l.indexOf("\t") + 1) }));

  it("lists the project's files", () => {
    expect(entries.length).toBeGreaterThan(100);
    expect(entries.some((e) => e.path === "package.json")).toBe(true);
  });

  it("has no symbolic link and nothing a machine makes (node_modules, out, .speccommit)", () => {
    expect(entries.filter((e) => e.mode === "120000").map((e) => e.path)).toEqual([]);
    expect(entries.filter((e) => /^(node_modules|out|\.speccommit)(\/|$)/.test(e.path)).map((e) => e.path)).toEqual([]);
  });
});
