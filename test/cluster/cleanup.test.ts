// A test cluster's servers are children of the test process: they must die
// with it however it ends, even when the test never calls stop().
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { pidAlive, sleep } from "../../runtime/cluster/child.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/abandon-cluster.ts", import.meta.url));
const RUN_TIMEOUT_MS = 60_000;
const GONE_WAIT_MS = 10_000;

interface Abandoned {
  dir: string;
  pids: number[];
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

function runFixture(mode: "exit" | "throw" | "signal"): Promise<Abandoned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, mode], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let started: { dir: string; pids: number[] } | undefined;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`fixture '${mode}' did not end within ${RUN_TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split("\n")[0];
      if (started === undefined && stdout.includes("\n") && line !== undefined) {
        started = JSON.parse(line) as { dir: string; pids: number[] };
        if (mode === "signal") child.kill("SIGTERM");
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (started === undefined) reject(new Error(`fixture '${mode}' ended before starting a cluster (code ${code}); stderr:\n${stderr}`));
      else resolve({ ...started, exit: { code, signal } });
    });
  });
}

async function allGone(pids: number[]): Promise<boolean> {
  const deadline = Date.now() + GONE_WAIT_MS;
  while (Date.now() < deadline) {
    if (pids.every((pid) => !pidAlive(pid))) return true;
    await sleep(20);
  }
  return false;
}

describe("test cluster cleanup", () => {
  it.each([
    ["exit", { code: 7, signal: null }],
    ["throw", { code: 1, signal: null }],
    ["signal", { code: null, signal: "SIGTERM" }],
  ] as const)("kills the servers and removes the directory when the process ends by %s", async (mode, exit) => {
    const abandoned = await runFixture(mode);
    expect(abandoned.exit).toEqual(exit);
    expect(abandoned.pids).toHaveLength(2);
    expect(await allGone(abandoned.pids)).toBe(true);
    expect(existsSync(abandoned.dir)).toBe(false);
  });
});
