/**
 * One MariaDB server (one shard) as a plain child process, on 127.0.0.1 only.
 *
 * The flags are the ones measured on the development machine (docs/operations.md, "Server flags and why"): `--no-defaults`
 * first (no my.cnf from the host leaks in), `--user=root` (required as root),
 * no binary log (XA needs none on a single server), durable commits
 * (`innodb_flush_log_at_trx_commit=1`), so a PREPARED XA branch survives
 * kill -9 and InnoDB crash recovery runs on the next start.
 *
 * Everything lives in `dataDir`: the InnoDB files, `error.log`, `mysqld.pid`,
 * `mysqld.sock`, and `mariadbd.out` (stdout/stderr); plus `<dataDir>.tmp`, the
 * instance's own tmpdir. It must not be shared: a starting mariadbd removes
 * leftover `#sql*` files from its tmpdir, which with a shared tmpdir can be
 * another instance's live temporary tables (our reading of the failures:
 * with a shared /tmp, 4 and then 8 of 36 parallel mariadb-install-db runs
 * failed, error 1051/1017 or signal 11 in ha_maria::drop_table, each after
 * "Could not remove temporary table"; with one tmpdir each, none did).
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import mysql from "mysql2/promise";
import { fileSize, pidArgv, sleep, Supervised, tailFile } from "./child.ts";
import { freePort } from "./ports.ts";
import { requireBinary } from "./system.ts";
import { mysqlSslOf, type MysqlSsl } from "./tls.ts";
import { makeDirsSync } from "../../traces/dirs.ts";

const HOST = "127.0.0.1";
const USER = "root";
const INSTALL_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS_DEFAULT = 60_000;
const STOP_TIMEOUT_MS_DEFAULT = 60_000;
const KILL_TIMEOUT_MS = 10_000;
const READY_POLL_MS = 25;
const CONNECT_TIMEOUT_MS = 1_000;
/** Another process may take a free port between our probe and mariadbd's bind. */
const PORT_ATTEMPTS_MAX = 3;

export interface MariaDbOptions {
  dataDir: string;
  /** A free port is chosen when absent. */
  port?: number;
  /** InnoDB buffer pool; 32 MB keeps an instance near 100 MB RSS. */
  bufferPoolMb?: number;
  /** How long a statement waits for a row lock before error 1205. */
  lockWaitTimeoutS?: number;
  maxConnections?: number;
  /** true: own process group, outlives this process (the CLI). false: killed when this process exits (tests). */
  detached?: boolean;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** TLS required on TCP (require_secure_transport): the server's certificate, key and CA. */
  tls?: MariaDbTls;
  /** Addresses it listens on besides 127.0.0.1 (a veth pair's root side, for a coordinator in a network namespace: netns.ts). */
  extraBindAddresses?: readonly string[];
}

export interface MariaDbTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * What a mysql2 connection to a shard needs. BIGINT and DECIMAL values come
 * back as strings (`supportBigNumbers` + `bigNumberStrings`), always, never as
 * JS numbers: read money with `toCents` (schema.ts), never with Number().
 */
export interface ShardConnectionOptions {
  host: string;
  port: number;
  user: string;
  database?: string;
  multipleStatements?: boolean;
  supportBigNumbers: true;
  bigNumberStrings: true;
  connectTimeout: number;
  /** With a TLS shard: verify it by its CA. */
  ssl?: MysqlSsl;
}

export interface MariaDbProcess {
  /** The TLS files the server runs with, when it requires TLS. */
  readonly tls: MariaDbTls | undefined;
  readonly port: number;
  readonly dataDir: string;
  /** Changes on restart. */
  readonly pid: number;
  connectionOptions(extra?: { database?: string; multipleStatements?: boolean }): ShardConnectionOptions;
  /** SIGKILL, then wait for the process to be gone (the child's 'exit' event when we spawned it). */
  kill9(): Promise<void>;
  /** Clean shutdown (SIGTERM), waiting for exit. */
  stop(): Promise<void>;
  /** Starts again on the same port and dataDir, waiting until it accepts connections (crash recovery included). Stops it first if it runs. */
  restart(): Promise<void>;
  alive(): boolean;
}

interface Settings {
  dataDir: string;
  bufferPoolMb: number;
  lockWaitTimeoutS: number;
  maxConnections: number;
  detached: boolean;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  tls: MariaDbTls | undefined;
  extraBindAddresses: readonly string[];
}

function settingsOf(opts: MariaDbOptions): Settings {
  const s: Settings = {
    tls: opts.tls,
    dataDir: resolve(opts.dataDir),
    bufferPoolMb: opts.bufferPoolMb ?? 32,
    lockWaitTimeoutS: opts.lockWaitTimeoutS ?? 3,
    maxConnections: opts.maxConnections ?? 200,
    detached: opts.detached ?? false,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT,
    stopTimeoutMs: opts.stopTimeoutMs ?? STOP_TIMEOUT_MS_DEFAULT,
    extraBindAddresses: opts.extraBindAddresses ?? [],
  };
  for (const [name, v] of [["bufferPoolMb", s.bufferPoolMb], ["lockWaitTimeoutS", s.lockWaitTimeoutS], ["maxConnections", s.maxConnections]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`MariaDB option ${name} must be a positive integer (got ${v})`);
  }
  return s;
}

export const errorLogPath = (dataDir: string) => join(dataDir, "error.log");
export const pidFilePath = (dataDir: string) => join(dataDir, "mysqld.pid");
export const tmpDirPath = (dataDir: string) => `${dataDir}.tmp`;

/** True when dataDir holds an initialised MariaDB (the `mysql` system schema). */
export function isInitialised(dataDir: string): boolean {
  return existsSync(join(dataDir, "mysql"));
}

const INSTALL_FLAGS = [
  "--user=root",
  "--auth-root-authentication-method=normal",
  "--skip-test-db",
  "--skip-name-resolve",
  "--innodb-log-file-size=16M",
  "--innodb-buffer-pool-size=32M",
] as const;

async function installInto(dataDir: string, tmpDir: string): Promise<void> {
  makeDirsSync(tmpDir);
  const bin = requireBinary("mariadb-install-db");
  const args = ["--no-defaults", `--datadir=${dataDir}`, `--tmpdir=${tmpDir}`, ...INSTALL_FLAGS];
  await new Promise<void>((ok, fail) => {
    execFile(bin, args, { timeout: INSTALL_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) fail(new Error(`mariadb-install-db failed for ${dataDir}: ${err.message}\n${`${stdout}\n${stderr}`.trim().split("\n").slice(-25).join("\n")}`));
      else ok();
    });
  });
}

/**
 * A freshly installed data directory, made once per machine and MariaDB
 * build and then copied: mariadb-install-db takes about 0.7 s and a full CPU,
 * copying its 34 MB takes about 0.1 s, which matters to test suites that start
 * many clusters. The directory never ran as a server, so every copy is a
 * fresh install. It is built under a unique name and renamed into place, so
 * a template that exists is complete even when several processes race.
 */
let template: Promise<string> | undefined;

function templateDir(): Promise<string> {
  template ??= (async () => {
    const binary = statSync(requireBinary("mariadbd"));
    const key = createHash("sha256").update(JSON.stringify([binary.size, binary.mtimeMs, INSTALL_FLAGS])).digest("hex").slice(0, 16);
    const dir = join(tmpdir(), `speccommit-mariadb-template-${key}`);
    if (isInitialised(dir)) return dir;
    const staging = `${dir}.${process.pid}.${randomBytes(4).toString("hex")}`;
    try {
      await installInto(staging, `${staging}.tmp`);
      renameSync(staging, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!(code === "ENOTEMPTY" || code === "EEXIST") || !isInitialised(dir)) throw e;
    } finally {
      rmSync(staging, { recursive: true, force: true });
      rmSync(`${staging}.tmp`, { recursive: true, force: true });
    }
    return dir;
  })();
  template.catch(() => {
    template = undefined;
  });
  return template;
}

/**
 * Fills an empty or missing dataDir with a fresh install (a copy of the
 * template), through a sibling staging directory renamed into place, so an
 * interrupted copy never leaves a half-made dataDir that a later start would
 * mistake for a real one.
 */
async function initialise(dataDir: string): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`${dataDir} is not empty but holds no MariaDB data directory (no 'mysql' folder); remove it or choose another directory`);
  }
  const source = await templateDir();
  const staging = `${dataDir}.installing`;
  rmSync(staging, { recursive: true, force: true });
  makeDirsSync(dirname(dataDir));
  cpSync(source, staging, { recursive: true });
  rmSync(dataDir, { recursive: true, force: true });
  renameSync(staging, dataDir);
}

function serverArgs(s: Settings, port: number): string[] {
  const d = s.dataDir;
  return [
    "--no-defaults",
    `--datadir=${d}`,
    `--tmpdir=${tmpDirPath(d)}`,
    "--user=root",
    `--port=${port}`,
    `--bind-address=${[HOST, ...s.extraBindAddresses].join(",")}`,
    `--socket=${join(d, "mysqld.sock")}`,
    `--pid-file=${pidFilePath(d)}`,
    `--log-error=${errorLogPath(d)}`,
    "--skip-name-resolve",
    "--skip-log-bin",
    `--innodb-buffer-pool-size=${s.bufferPoolMb}M`,
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=1",
    `--innodb-lock-wait-timeout=${s.lockWaitTimeoutS}`,
    "--performance-schema=OFF",
    `--max-connections=${s.maxConnections}`,
    ...(s.tls !== undefined
      ? [`--ssl-ca=${s.tls.ca}`, `--ssl-cert=${s.tls.cert}`, `--ssl-key=${s.tls.key}`, "--require-secure-transport=ON"]
      : []),
  ];
}

/** The TLS files a running mariadbd was started with (read from its argv). */
function tlsOfArgv(argv: readonly string[]): MariaDbTls | undefined {
  const value = (flag: string) => argv.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  const [ca, cert, key] = [value("--ssl-ca"), value("--ssl-cert"), value("--ssl-key")];
  return ca !== undefined && cert !== undefined && key !== undefined ? { ca, cert, key } : undefined;
}

function connectionOptionsFor(port: number, extra?: { database?: string; multipleStatements?: boolean }, tls?: MariaDbTls): ShardConnectionOptions {
  return {
    ...(tls !== undefined ? { ssl: mysqlSslOf({ ca: tls.ca }) } : {}),
    host: HOST,
    port,
    user: USER,
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    ...(extra?.database !== undefined ? { database: extra.database } : {}),
    ...(extra?.multipleStatements !== undefined ? { multipleStatements: extra.multipleStatements } : {}),
  };
}

/** One `SELECT 1` over a fresh connection; true on success. */
export async function mariaDbAnswers(port: number, tls?: MariaDbTls): Promise<boolean> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection(connectionOptionsFor(port, undefined, tls));
    await conn.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    conn?.destroy();
  }
}

/**
 * True when the server on `port` answers and is the one on dataDir. Another
 * process may have bound the port between our probe and mariadbd's own bind
 * (then our mariadbd exits with "address in use"); without this check a
 * foreign server that answers would pass for ours.
 */
async function servesDataDir(port: number, dataDir: string, tls: MariaDbTls | undefined): Promise<boolean> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection(connectionOptionsFor(port, undefined, tls));
    const [rows] = await conn.query("SELECT @@datadir AS datadir");
    const served = String((rows as Array<{ datadir: unknown }>)[0]?.datadir ?? "");
    return resolve(served) === dataDir;
  } catch {
    return false;
  } finally {
    conn?.destroy();
  }
}

type LaunchResult = { kind: "ready"; proc: Supervised } | { kind: "port-in-use" };

async function launch(s: Settings, port: number): Promise<LaunchResult> {
  makeDirsSync(tmpDirPath(s.dataDir));
  const logPath = errorLogPath(s.dataDir);
  const logStart = fileSize(logPath);
  const started = Date.now();
  const proc = Supervised.spawn({
    command: requireBinary("mariadbd"),
    args: serverArgs(s, port),
    outputPath: join(s.dataDir, "mariadbd.out"),
    detached: s.detached,
  });
  while (Date.now() - started < s.readyTimeoutMs) {
    if (!proc.alive()) {
      const tail = tailFile(logPath, 25, logStart);
      if (/Address already in use|error: 98/i.test(tail)) return { kind: "port-in-use" };
      const status = proc.status();
      throw new Error(
        `mariadbd (${s.dataDir}, port ${port}) exited before it was ready (code ${status?.code ?? "?"}, signal ${status?.signal ?? "none"}); end of ${logPath}:\n${tail}`,
      );
    }
    if (await servesDataDir(port, s.dataDir, s.tls)) return { kind: "ready", proc };
    await sleep(READY_POLL_MS);
  }
  proc.signal("SIGKILL");
  await proc.waitExit(KILL_TIMEOUT_MS);
  throw new Error(`mariadbd (${s.dataDir}, port ${port}) not ready after ${s.readyTimeoutMs} ms, killed; end of ${logPath}:\n${tailFile(logPath, 25, logStart)}`);
}

class MariaDb implements MariaDbProcess {
  constructor(
    private readonly s: Settings,
    readonly port: number,
    private proc: Supervised,
  ) {}

  get dataDir(): string {
    return this.s.dataDir;
  }

  get tls(): MariaDbTls | undefined {
    return this.s.tls;
  }

  get pid(): number {
    return this.proc.pid;
  }

  connectionOptions(extra?: { database?: string; multipleStatements?: boolean }): ShardConnectionOptions {
    return connectionOptionsFor(this.port, extra, this.s.tls);
  }

  alive(): boolean {
    return this.proc.alive();
  }

  async kill9(): Promise<void> {
    this.proc.signal("SIGKILL");
    if (!(await this.proc.waitExit(KILL_TIMEOUT_MS))) {
      throw new Error(`mariadbd pid ${this.pid} (port ${this.port}) still present ${KILL_TIMEOUT_MS} ms after SIGKILL`);
    }
  }

  async stop(): Promise<void> {
    this.proc.signal("SIGTERM");
    if (await this.proc.waitExit(this.s.stopTimeoutMs)) return;
    await this.kill9();
    throw new Error(`mariadbd pid ${this.pid} (port ${this.port}) did not shut down within ${this.s.stopTimeoutMs} ms; killed with SIGKILL`);
  }

  async restart(): Promise<void> {
    if (this.alive()) await this.stop();
    const result = await launch(this.s, this.port);
    if (result.kind === "port-in-use") {
      throw new Error(`cannot restart mariadbd (${this.dataDir}): port ${this.port} is now taken by another process`);
    }
    this.proc = result.proc;
  }
}

/**
 * Initialises dataDir when it is empty or missing, starts mariadbd and
 * resolves once it accepts a connection. On failure the error carries the end
 * of error.log.
 */
export async function startMariaDb(opts: MariaDbOptions): Promise<MariaDbProcess> {
  const s = settingsOf(opts);
  const already = runningOn(s.dataDir);
  if (already !== undefined) {
    // A second mariadbd on the same files would wait on InnoDB's file lock instead of failing.
    throw new Error(`a mariadbd (pid ${already.pid}) already runs on ${s.dataDir}; stop it first or attach to it (attachMariaDb)`);
  }
  if (!isInitialised(s.dataDir)) await initialise(s.dataDir);
  const attempts = opts.port === undefined ? PORT_ATTEMPTS_MAX : 1;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = opts.port ?? (await freePort());
    const result = await launch(s, port);
    if (result.kind === "ready") return new MariaDb(s, port, result.proc);
  }
  throw new Error(
    opts.port !== undefined
      ? `mariadbd (${s.dataDir}): port ${opts.port} is already in use; choose another or leave it out to get a free one`
      : `mariadbd (${s.dataDir}): every port tried was already in use (${attempts} attempts)`,
  );
}

/**
 * The mariadbd already running on dataDir (found through its pid file, its
 * argv checked, its port read from its argv) and, unless requireAnswer is
 * false, answering; undefined otherwise. Its restart() starts the server
 * with `opts`' settings.
 */
export async function attachMariaDb(opts: Omit<MariaDbOptions, "port"> & { requireAnswer?: boolean }): Promise<MariaDbProcess | undefined> {
  const proc = runningOn(resolve(opts.dataDir));
  if (proc === undefined) return undefined;
  const argv = pidArgv(proc.pid) ?? [];
  // Its restart keeps the TLS it runs with.
  const s = settingsOf({ ...opts, tls: tlsOfArgv(argv) });
  const portArg = argv.find((a) => a.startsWith("--port="));
  const port = Number(portArg?.slice("--port=".length));
  if (!Number.isInteger(port) || port <= 0) return undefined;
  if ((opts.requireAnswer ?? true) && !(await mariaDbAnswers(port, s.tls))) return undefined;
  return new MariaDb(s, port, proc);
}

/** The mariadbd whose pid file is in dataDir, when it runs with that --datadir. */
function runningOn(dataDir: string): Supervised | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFilePath(dataDir), "utf8").trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return Supervised.attach(pid, `--datadir=${dataDir}`);
}
