// Models a user writes in their own file (checker/load.ts): `speccommit check
// ./model.ts`, with worker threads loading the same file, and `speccommit
// suite --suite ./suite.ts` whose entries name the file, all without the
// registry. The files are written to a fresh temporary directory.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as check } from "../../checker/cli.ts";
import { main as suite } from "../../checker/suite.ts";

// A user's model: no import from the project (type annotations only, erased when loaded).
const countdownFile = `
interface S { left: number; jammed: boolean }
type A = "tick" | "jam" | "repair";
export const countdownFactory = {
  name: "MyCountdown",
  description: "a countdown that faults can jam",
  params: { N: 3 },
  mutants: ["noRepair"],
  build(params: Record<string, unknown>, mutant?: string) {
    const n = Number(params.N);
    return {
      name: "MyCountdown",
      init: (): S[] => [{ left: n, jammed: false }],
      *actions(s: S): Iterable<A> {
        if (s.left > 0 && !s.jammed) yield "tick";
        if (s.left > 0 && !s.jammed) yield "jam";
        if (s.jammed && mutant !== "noRepair") yield "repair";
      },
      next: (s: S, a: A): S => (a === "tick" ? { left: s.left - 1, jammed: false } : { left: s.left, jammed: a === "jam" }),
      invariants: { InRange: (s: S) => s.left >= 0 && s.left <= n },
      terminal: (s: S) => s.left === 0,
      encode: (s: S) => Uint8Array.of(s.left, s.jammed ? 1 : 0),
      decode: (b: Uint8Array): S => ({ left: b[0]!, jammed: b[1] === 1 }),
    };
  },
};
`;

// A bare Model as the default export, with a state constraint.
const modelFile = `
export default {
  name: "Counter",
  init: () => [0],
  actions: (s: number) => ["inc", "dec"],
  next: (s: number, a: string) => (a === "inc" ? s + 1 : s - 1),
  invariants: {},
  constraint: (s: number) => Math.abs(s) < 3,
  encode: (s: number) => Uint8Array.of(s + 128),
  decode: (b: Uint8Array) => b[0]! - 128,
};
`;

const suiteFile = `
export const suite = [
  { model: "./countdown.ts", params: { N: 3 }, deadlock: true, expect: "ok", counts: { distinct: 7, generated: 10, depth: 4 } },
  { model: "./countdown.ts", params: { N: 5 }, workers: 2, expect: "ok", counts: { distinct: 11, generated: 16, depth: 6 } },
  { model: "./countdown.ts", params: { N: 3 }, mutant: "noRepair", deadlock: true, expect: "deadlock", length: 1 },
];
`;

describe("models from a file", () => {
  let dir: string;
  let stdout: string[];
  let stderr: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "user-model-"));
    await writeFile(join(dir, "countdown.ts"), countdownFile);
    await writeFile(join(dir, "counter.ts"), modelFile);
    await writeFile(join(dir, "suite.ts"), suiteFile);
    await writeFile(join(dir, "wrong-suite.ts"), suiteFile.replace('"deadlock", length: 1', '"ok"'));
    await writeFile(join(dir, "nothing.ts"), "export const answer = 42;\n");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    stdout = [];
    stderr = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void stdout.push(a.join(" ")));
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void stderr.push(a.join(" ")));
  });
  afterEach(() => vi.restoreAllMocks());

  const json = () => JSON.parse(stdout[stdout.length - 1]!);

  it("check ./model.ts: a factory, its parameters and mutants; the same counts with two workers", async () => {
    const file = join(dir, "countdown.ts");
    expect(await check([file, "--set", "N=6", "--deadlock", "--json", "--quiet", "--out", dir])).toBe(0);
    expect(json()).toMatchObject({ model: "MyCountdown", params: { N: 6 }, distinct: 13, generated: 19, depth: 7, workers: 1 });
    expect(await check([file, "--set", "N=6", "--workers", "2", "--json", "--quiet", "--out", dir])).toBe(0);
    expect(json()).toMatchObject({ model: "MyCountdown", distinct: 13, generated: 19, depth: 7, workers: 2 });
    expect(await check(["--mutants", file, "--deadlock", "--workers", "2", "--json", "--quiet", "--out", dir])).toBe(0);
    expect(json().mutants.map((m: { mutant: string; violations: unknown[] }) => [m.mutant, m.violations.length])).toEqual([["noRepair", 1]]);
  });

  it("a bare Model as the default export, with a constraint; the same counts with workers", async () => {
    const file = join(dir, "counter.ts");
    expect(await check([file, "--json", "--quiet", "--out", dir])).toBe(0);
    // -2..2 inside; -3 and 3 generated, stored, not expanded: TLC's distinct is 5.
    expect(json()).toMatchObject({ model: "Counter", distinct: 5, outside: 2, generated: 11, depth: 3 });
    expect(await check([file, "--workers", "2", "--json", "--quiet", "--out", dir])).toBe(0);
    expect(json()).toMatchObject({ model: "Counter", distinct: 5, outside: 2, generated: 11, depth: 3, workers: 2 });
  });

  it("a file with no model, or no file: exit 2 and what to export", async () => {
    expect(await check([join(dir, "nothing.ts"), "--quiet"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/exports no ModelFactory .* it exports: answer/);
    expect(await check([join(dir, "missing.ts"), "--quiet"])).toBe(2);
    expect(stderr.join("\n")).toMatch(/no such file/);
  });

  it("suite --suite ./suite.ts: entries name the file relative to the suite; a wrong expectation fails", async () => {
    expect(await suite(["--suite", join(dir, "suite.ts"), "--out", dir])).toBe(0);
    expect(stdout.join("\n")).toMatch(/all 3 entries as expected/);
    expect(await suite(["--suite", join(dir, "wrong-suite.ts"), "--out", dir])).toBe(1);
    expect(stdout.join("\n")).toMatch(/1 of 3 entries FAILED/);
  });
});

// The same files through the real command line, a process of its own: vitest transforms every .ts it imports, which
// hid that `suite --suite FILE` could not load a suite file outside a "type": "module" package (plain import(), where
// model files went through tsx's own tsImport). The directory is a fresh temporary one, outside the project.
describe("a user's files through the real command line (node bin/speccommit.js)", () => {
  let dir: string;
  const bin = join(import.meta.dirname, "..", "..", "bin", "speccommit.js");
  const run = (args: string[]) =>
    new Promise<{ code: number; out: string; err: string }>((done) => {
      execFile(process.execPath, [bin, ...args], { cwd: dir, timeout: 60_000 }, (e, out, err) => done({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err }));
    });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "user-cli-"));
    await writeFile(join(dir, "countdown.ts"), countdownFile);
    await writeFile(join(dir, "suite.ts"), suiteFile);
    await writeFile(join(dir, "empty-suite.ts"), "export const suite = [];\n");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("check ./model.ts; suite --suite ./suite.ts, one process and --jobs 2; nothing to run is exit 2", async () => {
    const checked = await run(["check", "./countdown.ts", "--set", "N=6", "--deadlock", "--json", "--quiet", "--out", dir]);
    expect(checked.code, checked.err).toBe(0);
    expect(JSON.parse(checked.out)).toMatchObject({ model: "MyCountdown", distinct: 13, generated: 19, depth: 7 });
    for (const extra of [[], ["--jobs", "2"]]) {
      const r = await run(["suite", "--suite", "./suite.ts", "--out", dir, ...extra]);
      expect(r.code, `${extra.join(" ")}: ${r.err}`).toBe(0);
      expect(r.out).toMatch(/all 3 entries as expected/);
    }
    const none = await run(["suite", "--suite", "./suite.ts", "--out", dir, "--only", "NoSuchModel"]);
    expect([none.code, none.err]).toEqual([2, expect.stringMatching(/--only 'NoSuchModel' matches no entry/)]);
    const empty = await run(["suite", "--suite", "./empty-suite.ts", "--out", dir]);
    expect([empty.code, empty.err]).toEqual([2, expect.stringMatching(/the suite has no entries/)]);
    const missing = await run(["suite", "--suite", "./missing.ts", "--out", dir]);
    expect([missing.code, missing.err]).toEqual([2, expect.stringMatching(/suite file \.\/missing\.ts: no such file/)]);
  }, 120_000);
});
