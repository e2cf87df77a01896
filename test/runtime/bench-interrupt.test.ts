// Ctrl-C on a benchmark: a terminal sends SIGINT to the whole foreground process group, so tsx (what `npm run
// bench*` runs) and the script both get it, and tsx relays it: the script sees it twice at once. That used to count
// as "again, exit at once" and left the cluster it had brought up (detached MariaDBs and etcd, made to outlive a
// command) running. Here each script runs in a process group of its own, gets SIGINT the way a terminal sends it,
// and every server it printed must be gone once it exits (runtime/bench/cli.ts onInterrupt, cleanupOnInterrupt).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

/** A process is gone: no /proc entry, or a zombie (its parent, the script, has exited). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

async function interrupted(args: string[], startedWhen: RegExp): Promise<{ out: string; pids: number[]; dirs: string[] }> {
  // The user's own command (npm run ...: npm, sh, tsx, then the script), in a process group of its own.
  const child: ChildProcess = spawn("npm", ["run", "--silent", ...args], { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 90_000;
  while (!startedWhen.test(out)) {
    if (Date.now() > deadline) throw new Error(`${args[0]} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  process.kill(-child.pid!, "SIGINT");
  await Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${args[0]} still runs 90 s after SIGINT:\n${out}`)), 90_000))]);
  const pids = [...out.matchAll(/(?:mariadbd pid|etcd: pid) (\d+)/g)].map((m) => Number(m[1]));
  const dirs = [...out.matchAll(/--datadir=(\S+)\/shard-a|the cluster in (\S+)\)/g)].map((m) => (m[1] ?? m[2])!);
  return { out, pids, dirs };
}

describe("Ctrl-C on a benchmark removes what it started", () => {
  it("npm run bench stops its load, audits and stops its cluster; npm run bench:deadlock stops its cluster", async () => {
    const [bench, deadlock] = await Promise.all([
      interrupted(["bench", "--", "--clients", "2", "--duration", "60", "--floor-duration", "0", "--rounds", "1", "--warmup", "0"], /\[server +\d+s\]/),
      interrupted(["bench:deadlock", "--", "--clients", "2", "--duration", "60", "--rounds", "1", "--warmup", "0"], /detector (on|off) 1\/1/),
    ]);
    for (const [name, r] of [["bench", bench], ["bench:deadlock", deadlock]] as const) {
      expect(r.pids.length, `${name}: the servers it started, from its output:\n${r.out}`).toBeGreaterThanOrEqual(4);
      expect(r.out, name).not.toMatch(/again, exiting now/);
      // npm waits for its script, but leave the servers a moment to be reaped.
      for (const until = Date.now() + 20_000; Date.now() < until && !r.pids.every(gone); ) await new Promise((x) => setTimeout(x, 200));
      const left = r.pids.filter((pid) => !gone(pid));
      expect(left, `${name}: servers still running after it exited:\n${r.out}`).toEqual([]);
      for (const d of r.dirs) expect(existsSync(d), `${name}: ${d} left`).toBe(false);
    }
    expect(bench.out).toMatch(/SIGINT: stopping the load; auditing and cleaning up/);
    expect(deadlock.out).toMatch(/SIGINT: cleaning up \(the cluster in /);
  }, 200_000);
});
