// The package as a user installs it: `npm ci` accepts the committed lockfile
// (CI runs it on a clean clone), and the code `npm start` and the CLI run
// imports only runtime dependencies, so `npm ci --omit=dev` is enough to run it.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builtinModules } from "node:module";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Every file under `dir` whose name ends with one of `exts`. */
function filesUnder(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(p);
  }
  return out;
}

/** The npm package a bare import specifier names ("@scope/name/sub" -> "@scope/name"), or null for node: and relative ones. */
function packageOf(spec: string): string | null {
  if (spec.startsWith(".") || spec.startsWith("node:") || builtinModules.includes(spec)) return null;
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

describe("packaging", () => {
  it("imports of shipped code name runtime dependencies only", () => {
    const shipped = ["bin", "runtime", "spec", "checker", "traces"].flatMap((d) => filesUnder(join(root, d), [".ts", ".js", ".mjs"]));
    const missing: string[] = [];
    for (const file of shipped) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
        const name = packageOf(m[1] ?? m[2]!);
        if (name !== null && !(name in pkg.dependencies)) missing.push(`${file.slice(root.length + 1)}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("npm ci accepts the committed lockfile", () => {
    const dir = mkdtempSync(join(tmpdir(), "speccommit-lock-"));
    try {
      cpSync(join(root, "package.json"), join(dir, "package.json"));
      cpSync(join(root, "package-lock.json"), join(dir, "package-lock.json"));
      // --dry-run checks that package.json and the lockfile agree (what fails on a stale lockfile) without installing.
      execFileSync("npm", ["ci", "--dry-run", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: dir, stdio: "pipe", timeout: 120_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
