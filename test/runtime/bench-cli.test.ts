// Every benchmark script answers --help with its usage (exit 0) and an unknown option with a one-line error and
// its usage (exit 2), before it starts anything and without a stack trace (runtime/bench/cli.ts; checker/bench.ts,
// which may not import runtime/, the same by hand). The list of
// scripts is checked against the files: a new script that reads its command line must be added here.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

/** Each script, and the arguments that come before the option under test (a sub-command's own usage). */
const SCRIPTS: ReadonlyArray<{ file: string; before?: readonly string[] }> = [
  { file: "runtime/bench/main.ts" },
  { file: "runtime/bench/main.ts", before: ["--chaos"] },
  { file: "runtime/bench/main.ts", before: ["--scenario", "deadlock"] },
  { file: "runtime/bench/deadlock.ts" },
  { file: "runtime/bench/otel.ts" },
  { file: "runtime/bench/netsim.ts" },
  { file: "runtime/bench/growth.ts" },
  { file: "runtime/bench/retain-cost.ts" },
  { file: "runtime/bench/decode-cost.ts" },
  { file: "runtime/bench/http-hop.ts" },
  { file: "runtime/bench/shard-cost.ts" },
  { file: "runtime/bench/flame.ts" },
  { file: "checker/bench.ts" },
  { file: "checker/order-bench.ts" },
];

function run(file: string, args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", join(root, file), ...args], { cwd: root, timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
    });
  });
}

/** A stack trace's frame line ("    at f (file:1:2)"). */
const STACK = /^\s+at .+[:(]/m;

describe("benchmark scripts' command line", () => {
  it("lists every script that reads a command line", () => {
    const dir = join(root, "runtime", "bench");
    const reading = [
      ...readdirSync(dir)
        .filter((f) => f.endsWith(".ts") && f !== "cli.ts")
        .map((f) => `runtime/bench/${f}`),
      ...readdirSync(join(root, "checker"))
        .filter((f) => f.endsWith("bench.ts"))
        .map((f) => `checker/${f}`),
    ]
      .filter((f) => /process\.argv|runScript\(/.test(readFileSync(join(root, f), "utf8")));
    expect(reading.length).toBeGreaterThan(5);
    expect(reading.filter((f) => !SCRIPTS.some((s) => s.file === f))).toEqual([]);
  });

  it("--help prints the usage and exits 0; an unknown option is refused with exit 2, the usage, and no stack trace", async () => {
    const results = await Promise.all(
      SCRIPTS.flatMap(({ file, before = [] }) => [
        run(file, [...before, "--help"]).then((r) => ({ file, before, arg: "--help", ...r })),
        run(file, [...before, "--no-such-option", "1"]).then((r) => ({ file, before, arg: "--no-such-option", ...r })),
      ]),
    );
    for (const r of results) {
      const what = `${r.file} ${[...r.before, r.arg].join(" ")}: exit ${r.code}, stdout ${JSON.stringify(r.out.slice(0, 200))}, stderr ${JSON.stringify(r.err.slice(0, 300))}`;
      if (r.arg === "--help") {
        expect(r.code, what).toBe(0);
        expect(r.out, what).toMatch(/usage/i);
      } else {
        expect(r.code, what).toBe(2);
        expect(r.err, what).toMatch(/--no-such-option/);
        expect(r.err, what).toMatch(/usage|--help/i);
      }
      expect(r.err, what).not.toMatch(STACK);
    }
  }, 120_000);
});
