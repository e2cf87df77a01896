/**
 * The coordinator as a child process (`speccommit serve`), the way an
 * operator runs it: the benchmark measures it across a process boundary, and
 * the crash tests kill -9 it. The parent waits for the line
 * `speccommit: listening on <url>` (docs/operations.md).
 */
import { spawn, type ChildProcess } from "node:child_process";

const BIN = new URL("../../bin/speccommit.js", import.meta.url).pathname;
const LISTEN_WAIT_MS = 60_000;
const STOP_WAIT_MS = 30_000;
/** Output kept for error messages: the last this many characters. */
const OUTPUT_KEPT_CHARS = 20_000;

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** Everything it printed so far (the tail). */
  output(): string;
  /** SIGKILL, resolves on the exit event. */
  kill9(): Promise<void>;
  /** SIGTERM (finish running transfers), resolves with the exit code; SIGKILL past the bound. */
  stop(): Promise<number | null>;
}

/**
 * Starts `speccommit serve <args>` and resolves once it listens. `nodeArgs`
 * go to node itself (e.g. --cpu-prof). Pass `--port 0` for a free port; a
 * restart passes the port the first run took, so clients keep their URL.
 * Without --auth or --tokens-file in `args` it runs with `--auth none` (the
 * benchmark and the crash tests measure the protocol, not authentication).
 */
export function startServerProcess(args: readonly string[], opts: { nodeArgs?: readonly string[]; cwd?: string; /** Another checkout's bin/speccommit.js (bench variants: before vs after). */ bin?: string; /** Bound on the wait for `listening` (default 60 s). */ listenWaitMs?: number } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.bin ?? BIN, "serve", ...(args.some((a) => a.startsWith("--auth") || a.startsWith("--tokens-file")) ? [] : ["--auth", "none"]), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  let out = "";
  const append = (c: Buffer) => {
    out += c.toString();
    if (out.length > OUTPUT_KEPT_CHARS * 2) out = out.slice(-OUTPUT_KEPT_CHARS);
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // A server this process started never outlives it (an interrupted benchmark exits after its cleanups, or at once).
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));
  let alive = true;
  void exited.then(() => (alive = false));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`speccommit serve did not listen within ${opts.listenWaitMs ?? LISTEN_WAIT_MS} ms:\n${out.slice(-4000)}`));
    }, opts.listenWaitMs ?? LISTEN_WAIT_MS);
    const onData = () => {
      const m = /speccommit: listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      const url = m[1]!;
      resolve(handle(child, url, exited, () => alive, () => out));
    };
    child.stdout!.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`speccommit serve exited with ${code} before listening:\n${out.slice(-4000)}`));
    });
  });
}

function handle(child: ChildProcess, url: string, exited: Promise<number | null>, alive: () => boolean, output: () => string): ServerProcess {
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid!,
    output,
    kill9: async () => {
      if (alive()) child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      if (!alive()) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_WAIT_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
