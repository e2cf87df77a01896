/**
 * A server process we started or found running: signal it, tell whether it
 * lives, wait (bounded) until it is gone.
 *
 * Two ways to own one:
 * - spawned by this process: liveness and exit come from the ChildProcess
 *   'exit' event. `kill -0` is no use here: a killed mariadbd stays a zombie
 *   for 1-2 s, and `kill -0` succeeds on a zombie (measured on the development machine).
 * - attached by pid (a server an earlier `speccommit cluster up` left running):
 *   we are not its parent, so we read /proc/<pid>/stat and count a zombie as
 *   dead, and we check /proc/<pid>/cmdline before signalling so that a stale
 *   pid file never makes us kill an unrelated process that reused the pid.
 *
 * Non-detached children (tests) are killed with SIGKILL when this process
 * exits or is interrupted, so a failing test never leaks a server. Detached
 * children (the CLI) have their own process group and outlive us on purpose.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";

const POLL_MS = 20;

export interface SpawnSpec {
  command: string;
  args: readonly string[];
  /** stdout and stderr are appended here. */
  outputPath: string;
  /** true: own process group, unref'd, survives this process. */
  detached: boolean;
}

export type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** Process state letter from /proc (R, S, D, Z, ...), or undefined when the pid is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is parenthesised and may contain spaces; the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && state !== "Z" && state !== "X";
}

/** The process's argv, or undefined when it is gone or unreadable. */
export function pidArgv(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a.length > 0);
  } catch {
    return undefined;
  }
}

const cleanupOnExit = new Set<Supervised>();
const afterKillOnExit = new Set<() => void>();
let cleanupInstalled = false;

function killAllOnExit(): void {
  for (const p of cleanupOnExit) {
    if (p.alive()) p.signal("SIGKILL");
  }
  cleanupOnExit.clear();
  for (const fn of afterKillOnExit) {
    try {
      fn();
    } catch {
      // Exit cleanup is best effort: one failure must not stop the others.
    }
  }
  afterKillOnExit.clear();
}

/**
 * Runs `fn` (synchronous) when this process exits or is interrupted, after
 * the non-detached children are killed: removing a test's temporary
 * directory, for instance. Returns a function that cancels it.
 */
export function onExitAfterKill(fn: () => void): () => void {
  installCleanup();
  afterKillOnExit.add(fn);
  return () => afterKillOnExit.delete(fn);
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once("exit", killAllOnExit);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      killAllOnExit();
      // Our listener replaced the default action; raise again so the process still dies of it.
      process.kill(process.pid, sig);
    });
  }
}

export class Supervised {
  private exitStatus: ExitStatus | undefined;
  private readonly exited: Promise<ExitStatus> | undefined;

  private constructor(
    readonly pid: number,
    private readonly child: ChildProcess | undefined,
    /** An argument the process's argv must hold (its data directory flag) before we signal an attached pid. */
    private readonly argvMarker: string,
  ) {
    if (child !== undefined) {
      this.exited = new Promise((resolve) => {
        child.once("exit", (code, signal) => {
          this.exitStatus = { code, signal };
          cleanupOnExit.delete(this);
          resolve(this.exitStatus);
        });
      });
    }
  }

  static spawn(spec: SpawnSpec): Supervised {
    const out = openSync(spec.outputPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(spec.command, [...spec.args], { detached: spec.detached, stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    // Without a listener, a spawn or signal failure ('error' event) would crash the whole process;
    // a failed spawn is reported below (no pid), a failed signal shows as a process that stays alive.
    child.on("error", () => {});
    if (child.pid === undefined) {
      throw new Error(`could not start ${spec.command}: is it installed and executable?`);
    }
    const p = new Supervised(child.pid, child, spec.command);
    if (spec.detached) {
      child.unref();
    } else {
      installCleanup();
      cleanupOnExit.add(p);
    }
    return p;
  }

  /** A running process we did not spawn; undefined unless it lives and `argvMarker` is one of its arguments. */
  static attach(pid: number, argvMarker: string): Supervised | undefined {
    if (!pidAlive(pid)) return undefined;
    const argv = pidArgv(pid);
    if (argv === undefined || !argv.includes(argvMarker)) return undefined;
    return new Supervised(pid, undefined, argvMarker);
  }

  /** Exit status once a spawned child has exited; undefined while it runs or when attached. */
  status(): ExitStatus | undefined {
    return this.exitStatus;
  }

  alive(): boolean {
    if (this.child !== undefined) return this.exitStatus === undefined;
    return pidAlive(this.pid) && (pidArgv(this.pid) ?? []).includes(this.argvMarker);
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive()) return;
    try {
      process.kill(this.pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  }

  /** Resolves true once the process is gone, false if it still runs after timeoutMs. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    if (this.exited !== undefined) {
      if (this.exitStatus !== undefined) return true;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const result = await Promise.race([this.exited.then(() => true as const), timeout]);
      clearTimeout(timer);
      return result;
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!pidAlive(this.pid)) return true;
      await sleep(POLL_MS);
    }
    return !pidAlive(this.pid);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last `lines` lines of a text file, or a note that it could not be read. */
export function tailFile(path: string, lines = 25, fromByte = 0): string {
  try {
    const text = readFileSync(path).subarray(fromByte).toString("utf8");
    return text.split("\n").slice(-lines - 1).join("\n").trimEnd();
  } catch (e) {
    return `(${path} unreadable: ${(e as Error).message})`;
  }
}

/** Size of a file in bytes, 0 when it does not exist: marks where a new run's log output starts. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
