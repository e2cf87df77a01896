/**
 * Coordinator processes (`speccommit serve`) started by the cluster manager:
 * coord1, coord2, ... on consecutive ports (8080.. by default, free ports in
 * tests), all on one cluster file (the same shards and etcd log), each with
 * its output in <dir>/<name>.log. `cluster up --coordinators N` starts them
 * detached and records them in cluster.json; `cluster stop|kill|start
 * coordN` acts on one; tests get non-detached children (killed when the test
 * process exits).
 *
 * A coordinator is ready when its output has the line
 * `speccommit: listening on <url>` (docs/operations.md).
 */
import { join, resolve } from "node:path";
import { fileSize, pidArgv, sleep, Supervised, tailFile } from "./child.ts";
import { readFileSync } from "node:fs";
import { findBinary } from "./system.ts";

const BIN = new URL("../../bin/speccommit.js", import.meta.url).pathname;
const LISTEN_WAIT_MS = 60_000;
const STOP_WAIT_MS = 30_000;
const KILL_WAIT_MS = 10_000;
const POLL_MS = 50;
export const COORDINATORS_MAX = 9;
export const FIRST_PORT_DEFAULT = 8080;

/** What cluster.json records of a coordinator: enough to signal it, check it, and start it again the same way. */
export interface CoordinatorRecord {
  /** coord1, coord2, ... */
  name: string;
  port: number;
  pid: number;
  /** `speccommit serve` arguments (after `serve`). */
  args: string[];
  /** Its stdout and stderr. */
  outputPath: string;
  /** Runs inside this network namespace (`ip netns exec`; netns.ts), reached at `host`. */
  netns?: string;
  /** Where it listens (its --host); absent: 127.0.0.1. */
  host?: string;
}

export interface CoordinatorProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Changes on restart. */
  readonly pid: number;
  readonly record: CoordinatorRecord;
  alive(): boolean;
  /** SIGKILL, waiting for exit. */
  kill9(): Promise<void>;
  /** SIGTERM (it finishes running transfers), SIGKILL past the bound. */
  stop(): Promise<void>;
  /** Starts it again with the same arguments on the same port (stopping it first if it runs), waiting until it listens. */
  restart(): Promise<void>;
  /** The tail of its output. */
  output(lines?: number): string;
}

export const coordinatorName = (i: number) => `coord${i + 1}`;

/**
 * `serve` arguments of coordinator i: the cluster file, its port, no
 * authentication (the cluster manager's processes listen on loopback only),
 * and `extra` (timeouts, prefix).
 */
export function coordinatorArgs(clusterFile: string, port: number, extra: readonly string[] = []): string[] {
  return ["--cluster-file", resolve(clusterFile), "--port", String(port), ...(extra.some((a) => a.startsWith("--auth")) ? [] : ["--auth", "none"]), ...extra];
}

async function spawnAndListen(record: Omit<CoordinatorRecord, "pid">, detached: boolean): Promise<{ proc: Supervised; url: string }> {
  const from = fileSize(record.outputPath);
  const argv = [process.execPath, BIN, "serve", ...record.args];
  const [command, ...args] = record.netns !== undefined ? [findBinary("ip") ?? "ip", "netns", "exec", record.netns, ...argv] : argv;
  const proc = Supervised.spawn({ command: command!, args, outputPath: record.outputPath, detached });
  const deadline = Date.now() + LISTEN_WAIT_MS;
  while (Date.now() < deadline) {
    let text = "";
    try {
      text = readFileSync(record.outputPath).subarray(from).toString("utf8");
    } catch {
      // Not written yet.
    }
    const m = /speccommit: listening on (https?:\/\/\S+)/.exec(text);
    if (m !== null) return { proc, url: m[1]! };
    if (!proc.alive()) throw new Error(`${record.name} (speccommit serve) exited before listening (code ${proc.status()?.code ?? "?"}); end of ${record.outputPath}:\n${tailFile(record.outputPath, 30, from)}`);
    await sleep(POLL_MS);
  }
  proc.signal("SIGKILL");
  await proc.waitExit(KILL_WAIT_MS);
  throw new Error(`${record.name} (speccommit serve) did not listen within ${LISTEN_WAIT_MS} ms, killed; end of ${record.outputPath}:\n${tailFile(record.outputPath, 30, from)}`);
}

class Coordinator implements CoordinatorProcess {
  constructor(
    private readonly spec: Omit<CoordinatorRecord, "pid">,
    private proc: Supervised,
    readonly url: string,
    private readonly detached: boolean,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  get port(): number {
    return this.spec.port;
  }
  get pid(): number {
    return this.proc.pid;
  }
  get record(): CoordinatorRecord {
    return { ...this.spec, pid: this.proc.pid };
  }
  alive(): boolean {
    return this.proc.alive();
  }
  output(lines = 30): string {
    return tailFile(this.spec.outputPath, lines);
  }
  async kill9(): Promise<void> {
    this.proc.signal("SIGKILL");
    if (!(await this.proc.waitExit(KILL_WAIT_MS))) throw new Error(`${this.name} pid ${this.pid} still present ${KILL_WAIT_MS} ms after SIGKILL`);
  }
  async stop(): Promise<void> {
    this.proc.signal("SIGTERM");
    if (await this.proc.waitExit(STOP_WAIT_MS)) return;
    await this.kill9();
    throw new Error(`${this.name} pid ${this.pid} did not stop within ${STOP_WAIT_MS} ms of SIGTERM; killed with SIGKILL`);
  }
  async restart(): Promise<void> {
    if (this.alive()) await this.stop();
    this.proc = (await spawnAndListen(this.spec, this.detached)).proc;
  }
}

export interface StartCoordinatorOptions {
  name: string;
  /** Where its output goes: <dir>/<name>.log. */
  dir: string;
  args: string[];
  port: number;
  /** true: outlives this process (the CLI); false: killed when this process exits (tests). */
  detached: boolean;
  /** Inside this network namespace, listening on `host` (give `--host` in args too). */
  netns?: string;
  host?: string;
}

/** Starts one coordinator and resolves once it listens. */
export async function startCoordinator(o: StartCoordinatorOptions): Promise<CoordinatorProcess> {
  const spec = {
    name: o.name,
    port: o.port,
    args: o.args,
    outputPath: join(resolve(o.dir), `${o.name}.log`),
    ...(o.netns !== undefined ? { netns: o.netns } : {}),
    ...(o.host !== undefined ? { host: o.host } : {}),
  };
  const { proc, url } = await spawnAndListen(spec, o.detached);
  return new Coordinator(spec, proc, url, o.detached);
}

/**
 * The coordinator a cluster.json records, when its pid still runs `serve`
 * with the recorded arguments (a reused pid is never taken for it).
 */
export function attachCoordinator(r: CoordinatorRecord, detached = true): CoordinatorProcess | undefined {
  const argv = pidArgv(r.pid);
  if (argv === undefined || !argv.includes("serve") || !r.args.every((a) => argv.includes(a))) return undefined;
  const proc = Supervised.attach(r.pid, "serve");
  if (proc === undefined) return undefined;
  const { pid: _pid, ...spec } = r;
  return new Coordinator(spec, proc, `http://${r.host ?? "127.0.0.1"}:${r.port}`, detached);
}

/** Starts the coordinator a record describes (after a stop or a kill), with the same arguments. */
export async function startRecordedCoordinator(r: CoordinatorRecord, detached = true): Promise<CoordinatorProcess> {
  const { pid: _pid, ...spec } = r;
  const { proc, url } = await spawnAndListen(spec, detached);
  return new Coordinator(spec, proc, url, detached);
}

/** True when GET /health answers (any status): the coordinator listens. */
export async function coordinatorAnswers(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}
