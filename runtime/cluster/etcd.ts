/**
 * One etcd member (the transaction log) as a plain child process on
 * 127.0.0.1, with the flags measured on the development machine (docs/operations.md, "Server flags and why"). Short
 * heartbeat and election timeouts make a single member leader at once after
 * a start or a kill -9; every acknowledged write is fsynced, so it survives
 * kill -9.
 *
 * A member of a cluster of several (`cluster up --etcd-members 3`) gets its
 * own name and the whole `--initial-cluster` (every member's peer URL), and
 * longer timings (MEMBER_TIMINGS): with several voters a 250 ms election
 * timeout on a loaded 2-core machine makes leaders flap.
 *
 * Layout of `dataDir`: etcd's own `member/` folder, `etcd.log` (zap log),
 * `etcd.out` (stdout/stderr) and `etcd.pid` (written by us: etcd writes none).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { dirname, join, resolve } from "node:path";
import { fileSize, pidArgv, sleep, Supervised, tailFile } from "./child.ts";
import { freePort } from "./ports.ts";
import { requireBinary } from "./system.ts";
import { tlsFilesIn, type TlsFiles } from "./tls.ts";
import { makeDirsSync } from "../../traces/dirs.ts";

const HOST = "127.0.0.1";
/** The member name of a single-member etcd (kept: a data directory remembers it). */
const MEMBER_NAME = "n1";
/** Heartbeat and election timeout (ms): one member alone, and a member of several. */
const SINGLE_TIMINGS = { heartbeatMs: 50, electionMs: 250 } as const;
export const MEMBER_TIMINGS = { heartbeatMs: 100, electionMs: 1_000 } as const;
const READY_TIMEOUT_MS_DEFAULT = 30_000;
const STOP_TIMEOUT_MS_DEFAULT = 30_000;
const KILL_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 25;
const HEALTH_REQUEST_TIMEOUT_MS = 1_000;
/** Another process may take a free port between our probe and etcd's bind. */
const PORT_ATTEMPTS_MAX = 3;

export interface EtcdOptions {
  dataDir: string;
  /** Free ports are chosen when absent. */
  clientPort?: number;
  peerPort?: number;
  /** true: own process group, outlives this process (the CLI). false: killed when this process exits (tests). */
  detached?: boolean;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  /**
   * Clients over TLS only, with a client certificate signed by `ca`
   * (--client-cert-auth). The peer URL stays plain: one member, on loopback,
   * talking to nobody.
   */
  tls?: TlsFiles;
  /** Member name (default n1, the single member). */
  name?: string;
  /** The address it listens on and advertises (client and peer); default 127.0.0.1. */
  host?: string;
  /** Runs inside this network namespace (`ip netns exec`; runtime/cluster/netns.ts); `host` must be an address of it. */
  netns?: { ns: string; exec(argv: readonly string[]): { command: string; args: string[] } };
  /**
   * Every member as name=peerURL, comma-separated (etcd's --initial-cluster);
   * absent: this member alone. Needs clientPort and peerPort.
   */
  initialCluster?: string;
}

export interface EtcdProcess {
  /** The TLS files, when clients must use TLS. */
  readonly tls: TlsFiles | undefined;
  /** http(s)://127.0.0.1:<clientPort>, what etcd3's `hosts` option takes. */
  readonly clientUrl: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** The member's name (n1 when alone). */
  readonly name: string;
  /** Changes on restart. */
  readonly pid: number;
  /** SIGKILL, then wait for the process to be gone (the child's 'exit' event when we spawned it). */
  kill9(): Promise<void>;
  /** Clean shutdown (SIGTERM), waiting for exit. */
  stop(): Promise<void>;
  /** Starts again on the same ports and dataDir, waiting until healthy. Stops it first if it runs. */
  restart(): Promise<void>;
  alive(): boolean;
}

interface Settings {
  dataDir: string;
  detached: boolean;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  tls: TlsFiles | undefined;
  name: string;
  initialCluster: string | undefined;
  host: string;
  netns: EtcdOptions["netns"];
}

export const etcdLogPath = (dataDir: string) => join(dataDir, "etcd.log");
export const etcdPidPath = (dataDir: string) => join(dataDir, "etcd.pid");
const clientUrlOf = (port: number, tls?: TlsFiles, host: string = HOST) => `${tls !== undefined ? "https" : "http"}://${host}:${port}`;

/** A member's peer URL (what --initial-cluster lists). */
export const peerUrlOf = (peerPort: number, host: string = HOST) => `http://${host}:${peerPort}`;

function serverArgs(s: Settings, clientPort: number, peerPort: number): string[] {
  const { dataDir, tls } = s;
  const client = clientUrlOf(clientPort, tls, s.host);
  const peer = peerUrlOf(peerPort, s.host);
  const timings = s.initialCluster !== undefined ? MEMBER_TIMINGS : SINGLE_TIMINGS;
  return [
    "--name", s.name,
    "--data-dir", dataDir,
    "--listen-client-urls", client,
    "--advertise-client-urls", client,
    "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer,
    "--initial-cluster", s.initialCluster ?? `${s.name}=${peer}`,
    "--initial-cluster-state", "new",
    `--heartbeat-interval=${timings.heartbeatMs}`,
    `--election-timeout=${timings.electionMs}`,
    "--logger", "zap",
    "--log-outputs", etcdLogPath(dataDir),
    ...(tls !== undefined ? ["--cert-file", tls.cert, "--key-file", tls.key, "--client-cert-auth", "--trusted-ca-file", tls.ca] : []),
  ];
}

/** The TLS files of a running etcd, from its argv (the client certificate lies next to the server's). */
function tlsOfArgv(argv: readonly string[]): TlsFiles | undefined {
  const i = argv.indexOf("--cert-file");
  const cert = i >= 0 ? argv[i + 1] : undefined;
  return cert !== undefined ? tlsFilesIn(dirname(cert)) : undefined;
}

/** A JSON request to etcd's client port, over TLS with the client certificate when `tls`; null on any failure. */
async function etcdJson(clientPort: number, path: string, tls: TlsFiles | undefined, body?: string, host: string = HOST): Promise<unknown> {
  const url = `${clientUrlOf(clientPort, tls, host)}${path}`;
  const method = body !== undefined ? "POST" : "GET";
  if (tls === undefined) {
    const res = await fetch(url, { method, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(HEALTH_REQUEST_TIMEOUT_MS) });
    return res.ok ? res.json() : null;
  }
  return new Promise((ok) => {
    const req = httpsRequest(
      url,
      {
        method,
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.clientCert),
        key: readFileSync(tls.clientKey),
        timeout: HEALTH_REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            ok(res.statusCode === 200 ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : null);
          } catch {
            ok(null);
          }
        });
        res.on("error", () => ok(null));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => ok(null));
    req.end(body);
  });
}

/** True when GET /health answers {"health":"true"} (a leader exists and the member serves). */
export async function etcdHealthy(clientPort: number, tls?: TlsFiles, host: string = HOST): Promise<boolean> {
  try {
    const body = (await etcdJson(clientPort, "/health", tls, undefined, host)) as { health?: unknown } | null;
    return body?.health === "true" || body?.health === true;
  } catch {
    return false;
  }
}

/**
 * True when the member serving clientPort advertises our peer URL. Another
 * process may have bound the port between our probe and etcd's own bind;
 * without this check a foreign etcd that is healthy would pass for ours.
 */
async function servesPeerPort(clientPort: number, peerPort: number, tls: TlsFiles | undefined, host: string = HOST): Promise<boolean> {
  try {
    const body = (await etcdJson(clientPort, "/v3/cluster/member/list", tls, "{}", host)) as { header?: { member_id?: string }; members?: Array<{ ID?: string; peerURLs?: string[] }> } | null;
    const self = body?.members?.find((m) => m.ID === body.header?.member_id);
    return self?.peerURLs?.includes(`http://${host}:${peerPort}`) ?? false;
  } catch {
    return false;
  }
}

type LaunchResult = { kind: "ready"; proc: Supervised } | { kind: "port-in-use" };

async function launch(s: Settings, clientPort: number, peerPort: number): Promise<LaunchResult> {
  makeDirsSync(s.dataDir, 0o700);
  const logPath = etcdLogPath(s.dataDir);
  const outPath = join(s.dataDir, "etcd.out");
  const logStart = fileSize(logPath);
  const outStart = fileSize(outPath);
  const started = Date.now();
  const argv = [requireBinary("etcd"), ...serverArgs(s, clientPort, peerPort)];
  const { command, args } = s.netns !== undefined ? s.netns.exec(argv) : { command: argv[0]!, args: argv.slice(1) };
  const proc = Supervised.spawn({ command, args, outputPath: outPath, detached: s.detached });
  writeFileSync(etcdPidPath(s.dataDir), `${proc.pid}\n`);
  const tails = () => `end of ${logPath}:\n${tailFile(logPath, 25, logStart)}\nend of ${outPath}:\n${tailFile(outPath, 10, outStart)}`;
  while (Date.now() - started < s.readyTimeoutMs) {
    if (!proc.alive()) {
      const text = tails();
      if (/address already in use/i.test(text)) return { kind: "port-in-use" };
      const status = proc.status();
      throw new Error(`etcd (${s.dataDir}, client port ${clientPort}) exited before it was healthy (code ${status?.code ?? "?"}, signal ${status?.signal ?? "none"}); ${text}`);
    }
    if ((await etcdHealthy(clientPort, s.tls, s.host)) && (await servesPeerPort(clientPort, peerPort, s.tls, s.host))) return { kind: "ready", proc };
    await sleep(READY_POLL_MS);
  }
  proc.signal("SIGKILL");
  await proc.waitExit(KILL_TIMEOUT_MS);
  throw new Error(`etcd (${s.dataDir}, client port ${clientPort}) not healthy after ${s.readyTimeoutMs} ms, killed; ${tails()}`);
}

class Etcd implements EtcdProcess {
  constructor(
    private readonly s: Settings,
    readonly clientPort: number,
    readonly peerPort: number,
    private proc: Supervised,
  ) {}

  get clientUrl(): string {
    return clientUrlOf(this.clientPort, this.s.tls, this.s.host);
  }

  get tls(): TlsFiles | undefined {
    return this.s.tls;
  }

  get dataDir(): string {
    return this.s.dataDir;
  }

  get name(): string {
    return this.s.name;
  }

  get pid(): number {
    return this.proc.pid;
  }

  alive(): boolean {
    return this.proc.alive();
  }

  async kill9(): Promise<void> {
    this.proc.signal("SIGKILL");
    if (!(await this.proc.waitExit(KILL_TIMEOUT_MS))) {
      throw new Error(`etcd pid ${this.pid} (client port ${this.clientPort}) still present ${KILL_TIMEOUT_MS} ms after SIGKILL`);
    }
  }

  async stop(): Promise<void> {
    this.proc.signal("SIGTERM");
    if (await this.proc.waitExit(this.s.stopTimeoutMs)) return;
    await this.kill9();
    throw new Error(`etcd pid ${this.pid} (client port ${this.clientPort}) did not shut down within ${this.s.stopTimeoutMs} ms; killed with SIGKILL`);
  }

  async restart(): Promise<void> {
    if (this.alive()) await this.stop();
    const result = await launch(this.s, this.clientPort, this.peerPort);
    if (result.kind === "port-in-use") {
      throw new Error(`cannot restart etcd (${this.dataDir}): port ${this.clientPort} or ${this.peerPort} is now taken by another process`);
    }
    this.proc = result.proc;
  }
}

function settingsOf(opts: EtcdOptions): Settings {
  return {
    dataDir: resolve(opts.dataDir),
    detached: opts.detached ?? false,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT,
    stopTimeoutMs: opts.stopTimeoutMs ?? STOP_TIMEOUT_MS_DEFAULT,
    tls: opts.tls,
    name: opts.name ?? MEMBER_NAME,
    initialCluster: opts.initialCluster,
    host: opts.host ?? HOST,
    netns: opts.netns,
  };
}

/** Starts etcd on dataDir (created when missing) and resolves once /health says healthy. */
export async function startEtcd(opts: EtcdOptions): Promise<EtcdProcess> {
  const s = settingsOf(opts);
  const already = runningOn(s.dataDir);
  if (already !== undefined) {
    throw new Error(`an etcd (pid ${already.pid}) already runs on ${s.dataDir}; stop it first or attach to it (attachEtcd)`);
  }
  const fixed = opts.clientPort !== undefined && opts.peerPort !== undefined;
  if (s.initialCluster !== undefined && !fixed) throw new Error(`etcd member ${s.name}: initialCluster needs clientPort and peerPort`);
  const attempts = fixed ? 1 : PORT_ATTEMPTS_MAX;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const clientPort = opts.clientPort ?? (await freePort());
    const peerPort = opts.peerPort ?? (await freePort());
    const result = await launch(s, clientPort, peerPort);
    if (result.kind === "ready") return new Etcd(s, clientPort, peerPort, result.proc);
  }
  throw new Error(
    fixed
      ? `etcd (${s.dataDir}): port ${opts.clientPort} or ${opts.peerPort} is already in use; choose others or leave them out to get free ones`
      : `etcd (${s.dataDir}): every port tried was already in use (${attempts} attempts)`,
  );
}

/**
 * The etcd already running on dataDir (found through etcd.pid, its argv
 * checked, its ports read from its argv) and, unless requireAnswer is false,
 * healthy; undefined otherwise.
 */
export async function attachEtcd(opts: Omit<EtcdOptions, "clientPort" | "peerPort"> & { requireAnswer?: boolean }): Promise<EtcdProcess | undefined> {
  const proc = runningOn(resolve(opts.dataDir));
  if (proc === undefined) return undefined;
  const argv = pidArgv(proc.pid) ?? [];
  // Its restart keeps the TLS, the name and the members it runs with.
  const flag = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const name = flag("--name");
  const initialCluster = flag("--initial-cluster");
  const several = initialCluster !== undefined && initialCluster.includes(",");
  const s = settingsOf({ ...opts, tls: tlsOfArgv(argv), ...(name !== undefined ? { name } : {}), ...(several ? { initialCluster } : {}) });
  const portOf = (flag: string) => {
    const url = argv[argv.indexOf(flag) + 1];
    return url === undefined || !argv.includes(flag) ? Number.NaN : Number(new URL(url).port);
  };
  const clientPort = portOf("--listen-client-urls");
  const peerPort = portOf("--listen-peer-urls");
  if (!Number.isInteger(clientPort) || !Number.isInteger(peerPort)) return undefined;
  if ((opts.requireAnswer ?? true) && !(await etcdHealthy(clientPort, s.tls))) return undefined;
  return new Etcd(s, clientPort, peerPort, proc);
}

/** The etcd whose pid file is in dataDir, when it runs with that --data-dir. */
function runningOn(dataDir: string): Supervised | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(etcdPidPath(dataDir), "utf8").trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return Supervised.attach(pid, dataDir);
}
