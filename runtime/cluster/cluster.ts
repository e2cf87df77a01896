/**
 * The local cluster: one MariaDB per shard and one etcd, on free loopback
 * ports, with every byte of data under one directory:
 *
 *   <dir>/cluster.json   what runs where (written by `up`, read by down/status/the server)
 *   <dir>/shard-a/       MariaDB data directory of shard-a (error.log, mysqld.pid inside)
 *   <dir>/shard-a.tmp/   shard-a's own tmpdir (mariadb.ts says why it is not shared)
 *   <dir>/shard-b/ ...
 *   <dir>/etcd/          etcd data directory (etcd.log, etcd.pid inside)
 *   <dir>/tls/           with --tls: the local CA and certificates (tls.ts)
 *   <dir>/shard-a.password  the password of shard-a's user `speccommit` (mode 0600, made on first `up`)
 *
 * `up` reuses what already runs and starts what does not (same ports when
 * they are still free), so it is safe to repeat. Servers started by `up` are
 * detached: they outlive the command that started them until `down`.
 *
 * `startEphemeralCluster` is the test variant: a fresh temporary directory,
 * servers that are children of the calling process and die with it.
 */
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import mysql from "mysql2/promise";
import { onExitAfterKill, pidAlive, sleep } from "./child.ts";
import { attachEtcd, etcdHealthy, startEtcd, type EtcdProcess } from "./etcd.ts";
import { attachMariaDb, mariaDbAnswers, startMariaDb, type MariaDbProcess } from "./mariadb.ts";
import { portAnswers, reservePort } from "./ports.ts";
import { accountCount, createSchema, createShardUser, firstAccountId, SHARD_COUNT_MAX, SHARD_USER, seed, shardName } from "./schema.ts";
import { ensureSystemPackages } from "./system.ts";
import { ensureCertificates, type TlsFiles } from "./tls.ts";

export const DEFAULT_DIR = ".speccommit";
export const DEFAULTS = { shards: 3, accountsPerShard: 10_000, balanceCents: 100_000 } as const;
export const LIMITS = {
  shards: { min: 1, max: SHARD_COUNT_MAX },
  accountsPerShard: { min: 1, max: 10_000_000 },
  balanceCents: { min: 0, max: 1_000_000_000_000 },
} as const;
/** The CLI flag of each seed parameter, so that library errors also make sense at the command line. */
export const SEED_FLAGS = { shards: "--shards", accountsPerShard: "--accounts", balanceCents: "--balance-cents" } as const;
const ANSWER_WAIT_MS = 60_000;
const ANSWER_POLL_MS = 100;

export interface SeedParameters {
  shards: number;
  accountsPerShard: number;
  balanceCents: number;
}

export interface ShardRecord {
  name: string;
  port: number;
  pid: number;
  dataDir: string;
  firstAccountId: number;
  lastAccountId: number;
  /** The least-privilege user the server connects as (schema.ts createShardUser), and the file holding its password. */
  user: string;
  passwordFile: string;
}

export interface EtcdRecord {
  clientUrl: string;
  clientPort: number;
  peerPort: number;
  pid: number;
  dataDir: string;
}

/** The content of <dir>/cluster.json. */
export interface ClusterFile {
  version: 1;
  dir: string;
  seed: SeedParameters;
  shards: ShardRecord[];
  etcd: EtcdRecord;
  /** Present when the cluster requires TLS (`up --tls`): the CA, the servers' and the client's certificates and keys. */
  tls?: TlsFiles;
  updatedAt: string;
}

export const clusterFilePath = (dir: string) => join(resolve(dir), "cluster.json");

/** Throws a message naming the parameter and its allowed range when a seed parameter is out of range. */
export function validateSeedParameters(p: SeedParameters): void {
  for (const key of ["shards", "accountsPerShard", "balanceCents"] as const) {
    const { min, max } = LIMITS[key];
    const v = p[key];
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${key} (${SEED_FLAGS[key]}) must be an integer from ${min} to ${max} (got ${v})`);
  }
  const total = seedTotalCents(p);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`shards x accountsPerShard x balanceCents = ${total} cents exceeds ${Number.MAX_SAFE_INTEGER}; lower one of them`);
  }
}

/**
 * The money a seed creates, in cents. validateSeedParameters keeps it at most
 * 2^53 - 1: transfers conserve it and balances are never negative, so a
 * balance holds at most this total plus the credits in flight, far (1024 x)
 * below what a BIGINT column holds.
 */
export function seedTotalCents(p: SeedParameters): bigint {
  return BigInt(p.shards) * BigInt(p.accountsPerShard) * BigInt(p.balanceCents);
}

export function readClusterFile(dir: string): ClusterFile | undefined {
  const path = clusterFilePath(dir);
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}); stop any servers it names and remove ${resolve(dir)} to start over`);
  }
  const file = parsed as Partial<ClusterFile>;
  if (file.version !== 1 || !Array.isArray(file.shards) || file.etcd === undefined || file.seed === undefined) {
    throw new Error(`${path} is not a speccommit cluster file (version 1); remove ${resolve(dir)} to start over`);
  }
  return file as ClusterFile;
}

function writeClusterFile(file: ClusterFile): void {
  const path = clusterFilePath(file.dir);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`);
  renameSync(tmp, path);
}

export const shardPasswordPath = (dir: string, name: string) => join(resolve(dir), `${name}.password`);

/**
 * The password of a shard's user: read from its file, or made (32 random
 * bytes, base64url) and written with mode 0600 when the file does not exist.
 */
function shardPassword(dir: string, name: string): string {
  const path = shardPasswordPath(dir, name);
  if (existsSync(path)) return readFileSync(path, "utf8").replace(/\r?\n$/, "");
  const password = randomBytes(32).toString("base64url");
  writeFileSync(path, `${password}\n`, { mode: 0o600, flag: "wx" });
  return password;
}

/** Creates the schema and the shard user and, when the shard holds no account yet, seeds it. */
async function prepareShard(db: MariaDbProcess, index: number, p: SeedParameters, dir: string): Promise<"seeded" | "kept"> {
  const conn = await mysql.createConnection(db.connectionOptions());
  try {
    await createSchema(conn);
    await createShardUser(conn, SHARD_USER, shardPassword(dir, shardName(index)), { requireSsl: db.tls !== undefined });
    if ((await accountCount(conn)) > 0) return "kept";
    await seed(conn, { accounts: p.accountsPerShard, balanceCents: p.balanceCents, firstId: firstAccountId(index, p.accountsPerShard) });
    return "seeded";
  } finally {
    await conn.end();
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(ANSWER_POLL_MS);
  }
  return false;
}

/** Runs every task; if any fails, undoes the successful ones with `undo` and rethrows the first failure. */
async function allOrUndo<T>(tasks: Array<Promise<T>>, undo: (t: T) => Promise<void>): Promise<T[]> {
  const settled = await Promise.allSettled(tasks);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed === undefined) return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  await Promise.allSettled(settled.flatMap((r) => (r.status === "fulfilled" ? [undo(r.value)] : [])));
  throw failed.reason;
}

function shardRecord(name: string, index: number, db: MariaDbProcess, p: SeedParameters, dir: string): ShardRecord {
  const first = firstAccountId(index, p.accountsPerShard);
  return {
    name,
    port: db.port,
    pid: db.pid,
    dataDir: db.dataDir,
    firstAccountId: first,
    lastAccountId: first + p.accountsPerShard - 1,
    user: SHARD_USER,
    passwordFile: shardPasswordPath(dir, name),
  };
}

function etcdRecord(e: EtcdProcess): EtcdRecord {
  return { clientUrl: e.clientUrl, clientPort: e.clientPort, peerPort: e.peerPort, pid: e.pid, dataDir: e.dataDir };
}

export interface UpOptions {
  dir?: string;
  /** Absent: the value recorded in cluster.json, else the default. */
  shards?: number;
  accountsPerShard?: number;
  balanceCents?: number;
  /**
   * Require TLS (MariaDB require_secure_transport, etcd client certificates),
   * with a local CA made in <dir>/tls. Absent: what the cluster was made with.
   */
  tls?: boolean;
  /** Progress lines (what is started, reused, seeded, how long it took). */
  log?: (line: string) => void;
}

export interface UpResult {
  cluster: ClusterFile;
  /** Components that were already running and answering. */
  reused: string[];
  /** Components started by this call, with the time until each answered. */
  started: Array<{ name: string; ms: number }>;
  seeded: string[];
  totalMs: number;
}

/** A lock file so that two `up` on one directory never start two servers on one data directory. */
function lockDir(dir: string): () => void {
  const path = join(dir, "up.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
        throw new Error(`another 'speccommit cluster up' (pid ${holder}) is working on ${dir}; wait for it to finish`);
      }
      unlinkSync(path);
    }
  }
  throw new Error(`could not take the lock ${path}`);
}

function seedParametersFor(opts: UpOptions, recorded: ClusterFile | undefined, dir: string): SeedParameters {
  const wanted: SeedParameters = {
    shards: opts.shards ?? recorded?.seed.shards ?? DEFAULTS.shards,
    accountsPerShard: opts.accountsPerShard ?? recorded?.seed.accountsPerShard ?? DEFAULTS.accountsPerShard,
    balanceCents: opts.balanceCents ?? recorded?.seed.balanceCents ?? DEFAULTS.balanceCents,
  };
  validateSeedParameters(wanted);
  if (recorded !== undefined) {
    for (const key of ["shards", "accountsPerShard", "balanceCents"] as const) {
      if (wanted[key] !== recorded.seed[key]) {
        throw new Error(
          `the cluster in ${dir} was created with ${key} (${SEED_FLAGS[key]}) ${recorded.seed[key]}, not ${wanted[key]}; ` +
            `to re-create it: speccommit cluster down --dir ${dir} && rm -rf ${dir}`,
        );
      }
    }
  }
  return wanted;
}

/**
 * Brings the cluster in `dir` up: installs MariaDB/etcd if missing (as root),
 * reuses running servers, starts the others, creates the schema, seeds on
 * first start, writes cluster.json.
 */
export async function up(opts: UpOptions = {}): Promise<UpResult> {
  const t0 = Date.now();
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const log = opts.log ?? (() => {});
  const recorded = readClusterFile(dir);
  const p = seedParametersFor(opts, recorded, dir);
  await ensureSystemPackages(log);
  mkdirSync(dir, { recursive: true });
  const unlock = lockDir(dir);
  try {
    const tls = opts.tls === true || (opts.tls === undefined && recorded?.tls !== undefined) ? await ensureCertificates(dir) : undefined;
    const sameTls = (name: string, runs: boolean) => {
      if (runs !== (tls !== undefined)) {
        throw new Error(`${name} runs ${runs ? "with" : "without"} TLS; to ${tls !== undefined ? "turn TLS on" : "turn it off"}: speccommit cluster down --dir ${dir}, then up${tls !== undefined ? " --tls" : ""} again`);
      }
    };
    recorded?.shards.forEach((s) => reservePort(s.port));
    if (recorded !== undefined) {
      reservePort(recorded.etcd.clientPort);
      reservePort(recorded.etcd.peerPort);
    }
    const reused: string[] = [];
    const started: Array<{ name: string; ms: number }> = [];
    const startedHere = new Set<MariaDbProcess | EtcdProcess>();

    const bringShard = async (index: number): Promise<MariaDbProcess> => {
      const name = shardName(index);
      const dataDir = join(dir, name);
      const was = recorded?.shards[index];
      const running = await attachMariaDb({ dataDir, detached: true, requireAnswer: false });
      if (running !== undefined) {
        if (!(await waitUntil(() => mariaDbAnswers(running.port, running.tls), ANSWER_WAIT_MS))) {
          throw new Error(`${name}: mariadbd pid ${running.pid} runs but does not answer on port ${running.port}; see ${join(dataDir, "error.log")}, then: speccommit cluster down --dir ${dir}`);
        }
        sameTls(name, running.tls !== undefined);
        reused.push(name);
        return running;
      }
      const port = was !== undefined && !(await portAnswers(was.port)) ? was.port : undefined;
      const t = Date.now();
      const db = await startMariaDb({ dataDir, detached: true, ...(port !== undefined ? { port } : {}), ...(tls !== undefined ? { tls } : {}) });
      startedHere.add(db);
      started.push({ name, ms: Date.now() - t });
      log(`${name}: mariadbd pid ${db.pid} on 127.0.0.1:${db.port} (${Date.now() - t} ms)`);
      return db;
    };

    const bringEtcd = async (): Promise<EtcdProcess> => {
      const dataDir = join(dir, "etcd");
      const was = recorded?.etcd;
      const running = await attachEtcd({ dataDir, detached: true, requireAnswer: false });
      if (running !== undefined) {
        if (!(await waitUntil(() => etcdHealthy(running.clientPort, running.tls), ANSWER_WAIT_MS))) {
          throw new Error(`etcd pid ${running.pid} runs but is not healthy on port ${running.clientPort}; see ${join(dataDir, "etcd.log")}, then: speccommit cluster down --dir ${dir}`);
        }
        sameTls("etcd", running.tls !== undefined);
        reused.push("etcd");
        return running;
      }
      // etcd keeps its member's peer URL in its data: a restart must use the same peer port. The client port may move.
      const clientPort = was !== undefined && !(await portAnswers(was.clientPort)) ? was.clientPort : undefined;
      if (was !== undefined && (await portAnswers(was.peerPort))) {
        throw new Error(`etcd's peer port ${was.peerPort}, recorded in its data, is taken by another process; free it, or reset the cluster: speccommit cluster down --dir ${dir} && rm -rf ${dir}`);
      }
      const t = Date.now();
      const etcd = await startEtcd({
        dataDir,
        detached: true,
        ...(clientPort !== undefined ? { clientPort } : {}),
        ...(was !== undefined ? { peerPort: was.peerPort } : {}),
        ...(tls !== undefined ? { tls } : {}),
      });
      startedHere.add(etcd);
      started.push({ name: "etcd", ms: Date.now() - t });
      log(`etcd: pid ${etcd.pid} at ${etcd.clientUrl} (${Date.now() - t} ms)`);
      return etcd;
    };

    const stopIfStartedHere = async (proc: MariaDbProcess | EtcdProcess) => {
      if (startedHere.has(proc)) await proc.stop();
    };
    const procs = await allOrUndo<MariaDbProcess | EtcdProcess>(
      [bringEtcd(), ...Array.from({ length: p.shards }, (_, i) => bringShard(i))],
      stopIfStartedHere,
    );
    const etcd = procs[0] as EtcdProcess;
    const dbs = procs.slice(1) as MariaDbProcess[];

    const seeded: string[] = [];
    let cluster: ClusterFile;
    try {
      await Promise.all(
        dbs.map(async (db, i) => {
          const t = Date.now();
          if ((await prepareShard(db, i, p, dir)) === "seeded") {
            seeded.push(shardName(i));
            log(`${shardName(i)}: seeded ${p.accountsPerShard} accounts x ${p.balanceCents} cents (${Date.now() - t} ms)`);
          }
        }),
      );
      cluster = {
        version: 1,
        dir,
        seed: p,
        shards: dbs.map((db, i) => shardRecord(shardName(i), i, db, p, dir)),
        etcd: etcdRecord(etcd),
        ...(tls !== undefined ? { tls } : {}),
        updatedAt: new Date().toISOString(),
      };
      writeClusterFile(cluster);
    } catch (e) {
      // Without a cluster.json nothing could find these servers again to stop them.
      await Promise.allSettled(procs.map(stopIfStartedHere));
      throw e;
    }
    const order = [...cluster.shards.map((s) => s.name), "etcd"];
    const rank = (name: string) => order.indexOf(name);
    reused.sort((a, b) => rank(a) - rank(b));
    started.sort((a, b) => rank(a.name) - rank(b.name));
    seeded.sort((a, b) => rank(a) - rank(b));
    return { cluster, reused, started, seeded, totalMs: Date.now() - t0 };
  } finally {
    unlock();
  }
}

export interface ComponentStatus {
  name: string;
  /** up: process alive and answering; starting: alive, not answering; down: no process. */
  state: "up" | "starting" | "down";
  pid: number | null;
  port: number;
  dataDir: string;
}

export interface ClusterStatus {
  dir: string;
  /** False when no cluster.json exists in dir (nothing was ever started there). */
  exists: boolean;
  components: ComponentStatus[];
}

async function shardStatus(s: ShardRecord): Promise<ComponentStatus> {
  const running = await attachMariaDb({ dataDir: s.dataDir, requireAnswer: false });
  const state = running === undefined ? "down" : (await mariaDbAnswers(running.port, running.tls)) ? "up" : "starting";
  return { name: s.name, state, pid: running?.pid ?? null, port: running?.port ?? s.port, dataDir: s.dataDir };
}

async function etcdStatus(e: EtcdRecord): Promise<ComponentStatus> {
  const running = await attachEtcd({ dataDir: e.dataDir, requireAnswer: false });
  const state = running === undefined ? "down" : (await etcdHealthy(running.clientPort, running.tls)) ? "up" : "starting";
  return { name: "etcd", state, pid: running?.pid ?? null, port: running?.clientPort ?? e.clientPort, dataDir: e.dataDir };
}

export async function status(opts: { dir?: string } = {}): Promise<ClusterStatus> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const file = readClusterFile(dir);
  if (file === undefined) return { dir, exists: false, components: [] };
  const components = await Promise.all([...file.shards.map(shardStatus), etcdStatus(file.etcd)]);
  return { dir, exists: true, components };
}

export interface DownResult {
  dir: string;
  stopped: string[];
  alreadyDown: string[];
}

/** Stops every server of the cluster in `dir` cleanly (SIGTERM), waiting until each has exited. Data stays. */
export async function down(opts: { dir?: string; log?: (line: string) => void } = {}): Promise<DownResult> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const log = opts.log ?? (() => {});
  const file = readClusterFile(dir);
  if (file === undefined) throw new Error(`no cluster in ${dir} (no cluster.json); nothing to stop`);
  const stopped: string[] = [];
  const alreadyDown: string[] = [];
  const stopOne = async (name: string, proc: MariaDbProcess | EtcdProcess | undefined) => {
    if (proc === undefined) {
      alreadyDown.push(name);
      return;
    }
    const t = Date.now();
    await proc.stop();
    stopped.push(name);
    log(`${name}: pid ${proc.pid} stopped (${Date.now() - t} ms)`);
  };
  const results = await Promise.allSettled([
    ...file.shards.map(async (s) => stopOne(s.name, await attachMariaDb({ dataDir: s.dataDir, requireAnswer: false }))),
    (async () => stopOne("etcd", await attachEtcd({ dataDir: file.etcd.dataDir, requireAnswer: false })))(),
  ]);
  const failures = results.flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error).message ?? r.reason)] : []));
  if (failures.length > 0) throw new Error(`cluster down in ${dir} failed:\n${failures.join("\n")}`);
  const order = [...file.shards.map((s) => s.name), "etcd"];
  const rank = (name: string) => order.indexOf(name);
  stopped.sort((a, b) => rank(a) - rank(b));
  alreadyDown.sort((a, b) => rank(a) - rank(b));
  return { dir, stopped, alreadyDown };
}

export interface EphemeralShard {
  name: string;
  firstAccountId: number;
  lastAccountId: number;
  db: MariaDbProcess;
}

export interface EphemeralCluster {
  dir: string;
  seed: SeedParameters;
  shards: EphemeralShard[];
  etcd: EtcdProcess;
  /** The same description `up` writes to cluster.json (current pids), so code that takes a cluster.json takes this too. */
  describe(): ClusterFile;
  /** Kills every server (SIGKILL, waiting for exit) and removes dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface EphemeralOptions extends Partial<SeedParameters> {
  /** Parent of the temporary directory; os.tmpdir() by default. */
  parentDir?: string;
  /** Passed to every MariaDB. */
  lockWaitTimeoutS?: number;
  bufferPoolMb?: number;
  /** Keep the directory after stop() (to read the logs of a failed test). */
  keepDir?: boolean;
  /** As `up --tls`: TLS required by every server, a local CA in <dir>/tls. */
  tls?: boolean;
}

/**
 * A fresh cluster in a new temporary directory, for tests. Its servers are
 * children of this process: stop() kills them, and so does this process's
 * exit, even when a test fails before stop().
 */
export async function startEphemeralCluster(opts: EphemeralOptions = {}): Promise<EphemeralCluster> {
  const p: SeedParameters = {
    shards: opts.shards ?? DEFAULTS.shards,
    accountsPerShard: opts.accountsPerShard ?? DEFAULTS.accountsPerShard,
    balanceCents: opts.balanceCents ?? DEFAULTS.balanceCents,
  };
  validateSeedParameters(p);
  const parent = opts.parentDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, "speccommit-cluster-"));
  const removeDirNow = () => {
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const cancelExitRemoval = onExitAfterKill(removeDirNow);
  const removeDir = () => {
    cancelExitRemoval();
    removeDirNow();
  };
  const kill = (proc: MariaDbProcess | EtcdProcess) => proc.kill9();
  try {
    const tls = opts.tls === true ? await ensureCertificates(dir) : undefined;
    const procs = await allOrUndo<MariaDbProcess | EtcdProcess>(
      [
        startEtcd({ dataDir: join(dir, "etcd"), ...(tls !== undefined ? { tls } : {}) }),
        ...Array.from({ length: p.shards }, (_, i) =>
          startMariaDb({
            dataDir: join(dir, shardName(i)),
            ...(tls !== undefined ? { tls } : {}),
            ...(opts.lockWaitTimeoutS !== undefined ? { lockWaitTimeoutS: opts.lockWaitTimeoutS } : {}),
            ...(opts.bufferPoolMb !== undefined ? { bufferPoolMb: opts.bufferPoolMb } : {}),
          }),
        ),
      ],
      kill,
    );
    const etcd = procs[0] as EtcdProcess;
    const dbs = procs.slice(1) as MariaDbProcess[];
    const stop = async () => {
      await Promise.allSettled([...dbs.map(kill), kill(etcd)]);
      removeDir();
    };
    try {
      await Promise.all(dbs.map((db, i) => prepareShard(db, i, p, dir)));
    } catch (e) {
      await stop();
      throw e;
    }
    return {
      dir,
      seed: p,
      shards: dbs.map((db, i) => {
        const r = shardRecord(shardName(i), i, db, p, dir);
        return { name: r.name, firstAccountId: r.firstAccountId, lastAccountId: r.lastAccountId, db };
      }),
      etcd,
      describe: () => ({
        version: 1,
        dir,
        seed: p,
        shards: dbs.map((db, i) => shardRecord(shardName(i), i, db, p, dir)),
        etcd: etcdRecord(etcd),
        ...(tls !== undefined ? { tls } : {}),
        updatedAt: new Date().toISOString(),
      }),
      stop,
    };
  } catch (e) {
    removeDir();
    throw e;
  }
}
