/**
 * The local cluster: one MariaDB per shard and one etcd, on free loopback
 * ports, with every byte of data under one directory:
 *
 *   <dir>/cluster.json   what runs where (written by `up`, read by down/status/the server)
 *   <dir>/shard-a/       MariaDB data directory of shard-a (error.log, mysqld.pid inside)
 *   <dir>/shard-a.tmp/   shard-a's own tmpdir (mariadb.ts says why it is not shared)
 *   <dir>/shard-b/ ...
 *   <dir>/etcd/          etcd data directory (etcd.log, etcd.pid inside)
 *   <dir>/etcd1/ ...     with --etcd-members 3: one data directory per member (etcd1, etcd2, etcd3)
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
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import mysql from "mysql2/promise";
import { onExitAfterKill, pidAlive, sleep } from "./child.ts";
import { attachEtcd, etcdHealthy, peerUrlOf, startEtcd, type EtcdProcess } from "./etcd.ts";
import { attachCoordinator, coordinatorAnswers, coordinatorArgs, coordinatorName, COORDINATORS_MAX, FIRST_PORT_DEFAULT, startCoordinator, startRecordedCoordinator, type CoordinatorProcess, type CoordinatorRecord } from "./coordinators.ts";
import { attachMariaDb, mariaDbAnswers, startMariaDb, type MariaDbProcess } from "./mariadb.ts";
import { freePort, portAnswers, reservePort } from "./ports.ts";
import { accountCount, createSchema, createShardUser, firstAccountId, SHARD_COUNT_MAX, SHARD_USER, seed, shardName } from "./schema.ts";
import { ensureSystemPackages } from "./system.ts";
import { ensureCertificates, type TlsFiles } from "./tls.ts";
import type { PartitionLink } from "./netns.ts";
import { makeDirsSync } from "../../traces/dirs.ts";

export const DEFAULT_DIR = ".speccommit";
export const DEFAULTS = { shards: 3, accountsPerShard: 10_000, balanceCents: 100_000 } as const;
/** etcd members: one (the quick start) or a cluster of 3 or 5 (odd: a majority survives (n-1)/2 failures). */
export const ETCD_MEMBER_COUNTS = [1, 3, 5] as const;
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
  /** etcd (the single member), or etcd1, etcd2, ... in a cluster of several; absent in files written before members had names. */
  name?: string;
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
  /** The first etcd member (every member when there is one). */
  etcd: EtcdRecord;
  /** With several etcd members (`up --etcd-members 3`): every member, `etcd` first. */
  etcdMembers?: EtcdRecord[];
  /** Coordinators started by the cluster manager (`up --coordinators N`, coordinators.ts), by name coord1, coord2, ... */
  coordinators?: CoordinatorRecord[];
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
async function prepareShard(db: MariaDbProcess, index: number, p: SeedParameters, dir: string, extraUserHosts: readonly string[] = []): Promise<"seeded" | "kept"> {
  const conn = await mysql.createConnection(db.connectionOptions());
  try {
    await createSchema(conn);
    await createShardUser(conn, SHARD_USER, shardPassword(dir, shardName(index)), { requireSsl: db.tls !== undefined, extraHosts: extraUserHosts });
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

function etcdRecord(e: EtcdProcess, name: string): EtcdRecord {
  return { name, clientUrl: e.clientUrl, clientPort: e.clientPort, peerPort: e.peerPort, pid: e.pid, dataDir: e.dataDir };
}

/** Every etcd member of a cluster file (`etcd` alone in a single-member cluster). */
export function etcdMembersOf(file: Pick<ClusterFile, "etcd" | "etcdMembers">): EtcdRecord[] {
  return file.etcdMembers ?? [{ ...file.etcd, name: file.etcd.name ?? "etcd" }];
}

/** What one etcd member is started with: its names, data directory and ports, and every member's peer URL. */
export interface EtcdMemberPlan {
  /** etcd, or etcd1, etcd2, ... (the cluster manager's name). */
  name: string;
  /** The member name etcd knows (n1 for the single member, as before members had names). */
  memberName: string;
  dataDir: string;
  clientPort: number | undefined;
  peerPort: number | undefined;
  /** With several members: name=peerURL of each. */
  initialCluster: string | undefined;
  /** Where it listens (default 127.0.0.1) and the network namespace it runs in (a chaos run's partition: netns.ts). */
  host?: string;
  netns?: PartitionLink;
}

/**
 * The etcd members of a cluster in `dir`: one (data directory <dir>/etcd,
 * free ports) or `count` (data directories <dir>/etcdN; ports fixed up front,
 * since every member lists every peer URL). A recorded cluster keeps its ports.
 */
export async function planEtcdMembers(dir: string, count: number, recorded?: readonly EtcdRecord[], placement?: (i: number) => { host: string; netns?: PartitionLink }): Promise<EtcdMemberPlan[]> {
  if (!(ETCD_MEMBER_COUNTS as readonly number[]).includes(count)) throw new Error(`etcd members (--etcd-members) must be one of ${ETCD_MEMBER_COUNTS.join(", ")} (got ${count})`);
  if (count === 1) {
    const was = recorded?.[0];
    return [{ name: "etcd", memberName: "n1", dataDir: join(dir, "etcd"), clientPort: was?.clientPort, peerPort: was?.peerPort, initialCluster: undefined }];
  }
  const plans: EtcdMemberPlan[] = [];
  for (let i = 0; i < count; i++) {
    const name = `etcd${i + 1}`;
    const was = recorded?.[i];
    plans.push({ name, memberName: name, dataDir: join(dir, name), clientPort: was?.clientPort ?? (await freePort()), peerPort: was?.peerPort ?? (await freePort()), initialCluster: undefined, ...(placement?.(i) ?? {}) });
  }
  const initialCluster = plans.map((m) => `${m.memberName}=${peerUrlOf(m.peerPort!, m.host)}`).join(",");
  return plans.map((m) => ({ ...m, initialCluster }));
}

/** Starts one planned member (not attached: see up); a member of several waits until the cluster has a leader. */
export function startEtcdMember(m: EtcdMemberPlan, opts: { detached: boolean; tls: TlsFiles | undefined }): Promise<EtcdProcess> {
  return startEtcd({
    dataDir: m.dataDir,
    detached: opts.detached,
    name: m.memberName,
    ...(m.clientPort !== undefined ? { clientPort: m.clientPort } : {}),
    ...(m.peerPort !== undefined ? { peerPort: m.peerPort } : {}),
    ...(m.initialCluster !== undefined ? { initialCluster: m.initialCluster } : {}),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    ...(m.host !== undefined ? { host: m.host } : {}),
    ...(m.netns !== undefined ? { netns: m.netns } : {}),
  });
}

/** cluster.json's etcd fields from the running members, in plan order. */
function etcdFields(members: readonly EtcdProcess[], plans: readonly EtcdMemberPlan[]): Pick<ClusterFile, "etcd" | "etcdMembers"> {
  const records = members.map((e, i) => etcdRecord(e, plans[i]!.name));
  return { etcd: records[0]!, ...(records.length > 1 ? { etcdMembers: records } : {}) };
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
  /** etcd members: 1 (default) or 3 or 5 (ETCD_MEMBER_COUNTS). Absent: what the cluster was made with. */
  etcdMembers?: number;
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
  makeDirsSync(dir);
  const unlock = lockDir(dir);
  try {
    const tls = opts.tls === true || (opts.tls === undefined && recorded?.tls !== undefined) ? await ensureCertificates(dir) : undefined;
    const sameTls = (name: string, runs: boolean) => {
      if (runs !== (tls !== undefined)) {
        throw new Error(`${name} runs ${runs ? "with" : "without"} TLS; to ${tls !== undefined ? "turn TLS on" : "turn it off"}: speccommit cluster down --dir ${dir}, then up${tls !== undefined ? " --tls" : ""} again`);
      }
    };
    recorded?.shards.forEach((s) => reservePort(s.port));
    const recordedMembers = recorded !== undefined ? etcdMembersOf(recorded) : undefined;
    for (const m of recordedMembers ?? []) {
      reservePort(m.clientPort);
      reservePort(m.peerPort);
    }
    const memberCount = opts.etcdMembers ?? recordedMembers?.length ?? 1;
    if (recordedMembers !== undefined && recordedMembers.length !== memberCount) {
      throw new Error(`the cluster in ${dir} was created with ${recordedMembers.length} etcd member(s), not ${memberCount}; to re-create it: speccommit cluster down --dir ${dir} && rm -rf ${dir}`);
    }
    const plans = await planEtcdMembers(dir, memberCount, recordedMembers);
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

    const bringEtcd = async (plan: EtcdMemberPlan): Promise<EtcdProcess> => {
      const dataDir = plan.dataDir;
      const was = recordedMembers?.[plans.indexOf(plan)];
      const label = plan.name;
      const running = await attachEtcd({ dataDir, detached: true, requireAnswer: false });
      if (running !== undefined) {
        if (!(await waitUntil(() => etcdHealthy(running.clientPort, running.tls), ANSWER_WAIT_MS))) {
          throw new Error(`${label} pid ${running.pid} runs but is not healthy on port ${running.clientPort}; see ${join(dataDir, "etcd.log")}, then: speccommit cluster down --dir ${dir}`);
        }
        sameTls(label, running.tls !== undefined);
        reused.push(label);
        return running;
      }
      if (plan.initialCluster !== undefined) {
        // A member of several: every peer lists its ports, so they cannot move.
        for (const port of [plan.clientPort!, plan.peerPort!]) {
          if (await portAnswers(port)) throw new Error(`${label}'s port ${port}, known to the other members, is taken by another process; free it, or reset the cluster: speccommit cluster down --dir ${dir} && rm -rf ${dir}`);
        }
        const t = Date.now();
        const member = await startEtcdMember(plan, { detached: true, tls });
        startedHere.add(member);
        started.push({ name: label, ms: Date.now() - t });
        log(`${label}: pid ${member.pid} at ${member.clientUrl} (${Date.now() - t} ms)`);
        return member;
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
      [...plans.map(bringEtcd), ...Array.from({ length: p.shards }, (_, i) => bringShard(i))],
      stopIfStartedHere,
    );
    const members = procs.slice(0, plans.length) as EtcdProcess[];
    const dbs = procs.slice(plans.length) as MariaDbProcess[];

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
        ...etcdFields(members, plans),
        ...(recorded?.coordinators !== undefined ? { coordinators: recorded.coordinators } : {}),
        ...(tls !== undefined ? { tls } : {}),
        updatedAt: new Date().toISOString(),
      };
      writeClusterFile(cluster);
    } catch (e) {
      // Without a cluster.json nothing could find these servers again to stop them.
      await Promise.allSettled(procs.map(stopIfStartedHere));
      throw e;
    }
    const order = [...cluster.shards.map((s) => s.name), ...plans.map((m) => m.name)];
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
  return { name: e.name ?? "etcd", state, pid: running?.pid ?? null, port: running?.clientPort ?? e.clientPort, dataDir: e.dataDir };
}

async function coordinatorStatus(c: CoordinatorRecord): Promise<ComponentStatus> {
  const running = attachCoordinator(c);
  const state = running === undefined ? "down" : (await coordinatorAnswers(c.port)) ? "up" : "starting";
  return { name: c.name, state, pid: running?.pid ?? null, port: c.port, dataDir: c.outputPath };
}

export async function status(opts: { dir?: string } = {}): Promise<ClusterStatus> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const file = readClusterFile(dir);
  if (file === undefined) return { dir, exists: false, components: [] };
  const components = await Promise.all([...file.shards.map(shardStatus), ...etcdMembersOf(file).map(etcdStatus), ...(file.coordinators ?? []).map(coordinatorStatus)]);
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
  const stopOne = async (name: string, proc: { stop(): Promise<unknown>; readonly pid: number } | undefined) => {
    if (proc === undefined) {
      alreadyDown.push(name);
      return;
    }
    const t = Date.now();
    await proc.stop();
    stopped.push(name);
    log(`${name}: pid ${proc.pid} stopped (${Date.now() - t} ms)`);
  };
  // Coordinators first: they finish their transfers while the shards and the log still answer.
  const first = await Promise.allSettled((file.coordinators ?? []).map(async (c) => stopOne(c.name, attachCoordinator(c))));
  const results = first.concat(await Promise.allSettled([
    ...file.shards.map(async (s) => stopOne(s.name, await attachMariaDb({ dataDir: s.dataDir, requireAnswer: false }))),
    ...etcdMembersOf(file).map(async (m) => stopOne(m.name ?? "etcd", await attachEtcd({ dataDir: m.dataDir, requireAnswer: false }))),
  ]));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error).message ?? r.reason)] : []));
  if (failures.length > 0) throw new Error(`cluster down in ${dir} failed:\n${failures.join("\n")}`);
  const order = [...file.shards.map((s) => s.name), ...etcdMembersOf(file).map((m) => m.name ?? "etcd"), ...(file.coordinators ?? []).map((c) => c.name)];
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
  /** The first etcd member. */
  etcd: EtcdProcess;
  /** Every etcd member (etcd first). */
  etcdMembers: EtcdProcess[];
  /** Coordinators started by startCoordinators, coord1 first. */
  coordinators: CoordinatorProcess[];
  /** The same description `up` writes to cluster.json (current pids), so code that takes a cluster.json takes this too. */
  describe(): ClusterFile;
  /**
   * Writes describe() to <dir>/cluster.json and starts `count` coordinators
   * on it (free ports), each with `serveArgs(i)`; resolves once all listen.
   */
  startCoordinators(count: number, serveArgs: (i: number) => readonly string[], inside?: (i: number) => boolean): Promise<CoordinatorProcess[]>;
  /** One server by name (etcd / etcd1.., shard-a.. or shard1.., coord1..), to kill, stop or start alone. */
  component(name: string): ClusterComponent;
  /** Kills every server (SIGKILL, waiting for exit) and removes dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** One server of a cluster, by name. */
export interface ClusterComponent {
  readonly name: string;
  readonly kind: ComponentKind;
  readonly pid: number;
  alive(): boolean;
  kill9(): Promise<void>;
  /** SIGTERM, waiting for exit. */
  stop(): Promise<void>;
  /** Starts it again on its data directory and ports (stopping it first if it runs), waiting until it answers. */
  restart(): Promise<void>;
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
  /** As `up --etcd-members`: 1 (default), 3 or 5. */
  etcdMembers?: number;
  /**
   * A network namespace joined by a veth pair (netns.ts) for a real
   * partition: etcd member `etcdMember` (0-based) runs inside it on nsIp, the
   * other members listen on rootIp, the shards also bind rootIp and their
   * user has an account for the pair's /30; startCoordinators puts the
   * coordinators its `inside` names there, and has every coordinator reach
   * the shards over TCP at rootIp (one account for all).
   */
  partition?: { link: PartitionLink; etcdMember: number };
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
  makeDirsSync(parent);
  const dir = mkdtempSync(join(parent, "speccommit-cluster-"));
  const removeDirNow = () => {
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const cancelExitRemoval = onExitAfterKill(removeDirNow);
  const removeDir = () => {
    cancelExitRemoval();
    removeDirNow();
  };
  const kill = (proc: { kill9(): Promise<void> }) => proc.kill9();
  try {
    const tls = opts.tls === true ? await ensureCertificates(dir) : undefined;
    const part = opts.partition;
    const plans = await planEtcdMembers(dir, opts.etcdMembers ?? 1, undefined, part === undefined ? undefined : (i) => (i === part.etcdMember ? { host: part.link.nsIp, netns: part.link } : { host: part.link.rootIp }));
    const procs = await allOrUndo<MariaDbProcess | EtcdProcess>(
      [
        ...plans.map((m) => startEtcdMember(m, { detached: false, tls })),
        ...Array.from({ length: p.shards }, (_, i) =>
          startMariaDb({
            dataDir: join(dir, shardName(i)),
            ...(tls !== undefined ? { tls } : {}),
            ...(opts.lockWaitTimeoutS !== undefined ? { lockWaitTimeoutS: opts.lockWaitTimeoutS } : {}),
            ...(opts.bufferPoolMb !== undefined ? { bufferPoolMb: opts.bufferPoolMb } : {}),
            ...(part !== undefined ? { extraBindAddresses: [part.link.rootIp] } : {}),
          }),
        ),
      ],
      kill,
    );
    const members = procs.slice(0, plans.length) as EtcdProcess[];
    const etcd = members[0]!;
    const dbs = procs.slice(plans.length) as MariaDbProcess[];
    const coordinators: CoordinatorProcess[] = [];
    const stop = async () => {
      await Promise.allSettled(coordinators.map(kill));
      await Promise.allSettled([...dbs.map(kill), ...members.map(kill)]);
      removeDir();
    };
    const describe = (): ClusterFile => ({
      version: 1,
      dir,
      seed: p,
      shards: dbs.map((db, i) => shardRecord(shardName(i), i, db, p, dir)),
      ...etcdFields(members, plans),
      ...(coordinators.length > 0 ? { coordinators: coordinators.map((c) => c.record) } : {}),
      ...(tls !== undefined ? { tls } : {}),
      updatedAt: new Date().toISOString(),
    });
    try {
      await Promise.all(dbs.map((db, i) => prepareShard(db, i, p, dir, part !== undefined ? [part.link.subnet] : [])));
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
      etcdMembers: members,
      coordinators,
      describe,
      startCoordinators: async (count, serveArgs, inside) => {
        writeClusterFile(describe());
        // With a partition, every coordinator reaches the shards over TCP at the veth pair's root side (unix sockets are files:
        // they would cross the namespace), all through one account, 'speccommit'@'<the pair's /30>': MariaDB lets a session
        // KILL only the sessions of its own account (else 1095), and a survivor must kill a cut-off node's (takeover.ts rule 5).
        const insideFile = join(dir, "cluster-tcp.json");
        if (part !== undefined) {
          const d = describe();
          writeFileSync(insideFile, `${JSON.stringify({ ...d, shards: d.shards.map(({ dataDir: _d, ...s }) => ({ ...s, host: part.link.rootIp })) }, null, 2)}\n`);
        }
        const started = await allOrUndo(
          Array.from({ length: count }, async (_, i) => {
            const port = await freePort();
            if (part !== undefined && inside?.(i) === true) {
              const host = part.link.nsIp;
              return startCoordinator({ name: coordinatorName(i), dir, port, detached: false, netns: part.link.ns, host, args: coordinatorArgs(insideFile, port, [...serveArgs(i), "--host", host]) });
            }
            return startCoordinator({ name: coordinatorName(i), dir, port, detached: false, args: coordinatorArgs(part !== undefined ? insideFile : clusterFilePath(dir), port, serveArgs(i)) });
          }),
          kill,
        );
        coordinators.push(...started);
        return started;
      },
      component: (name) => componentOf(describe(), name, dbs, members, coordinators),
      stop,
    };
  } catch (e) {
    removeDir();
    throw e;
  }
}

/** A component of a cluster by name: etcd / etcd1.., shard-a.. (or shard1..), coord1.. */
export type ComponentKind = "etcd" | "shard" | "coordinator";

/** Resolves a name given at the command line: shardN is the Nth shard (shard1 = shard-a). */
export function componentNamed(file: ClusterFile, name: string): { kind: ComponentKind; name: string } {
  const alias = /^shard(\d+)$/.exec(name);
  const shard = alias !== null ? file.shards[Number(alias[1]) - 1] : file.shards.find((s) => s.name === name);
  if (shard !== undefined) return { kind: "shard", name: shard.name };
  const member = etcdMembersOf(file).find((m) => (m.name ?? "etcd") === name);
  if (member !== undefined) return { kind: "etcd", name: member.name ?? "etcd" };
  if ((file.coordinators ?? []).some((c) => c.name === name)) return { kind: "coordinator", name };
  const known = [...file.shards.map((s) => s.name), ...etcdMembersOf(file).map((m) => m.name ?? "etcd"), ...(file.coordinators ?? []).map((c) => c.name)];
  throw new Error(`no component '${name}' in ${file.dir} (known: ${known.join(", ")}; shardN also names the Nth shard)`);
}

export type ControlAction = "stop" | "kill" | "start";

export interface ControlResult {
  name: string;
  action: ControlAction;
  /** What it did: stopped (SIGTERM), killed (SIGKILL), started, or nothing (already in that state). */
  done: "stopped" | "killed" | "started" | "already down" | "already up";
  pid: number | null;
  ms: number;
}

/**
 * Stops (SIGTERM), kills (SIGKILL) or starts one component of the cluster in
 * `dir` by name, leaving the others alone. A start reuses the recorded data
 * directory and ports (an etcd member rejoins its cluster; a shard keeps its
 * data); cluster.json is updated with the new pid.
 */
export async function control(opts: { dir?: string; action: ControlAction; name: string }): Promise<ControlResult> {
  const t0 = Date.now();
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const file = readClusterFile(dir);
  if (file === undefined) throw new Error(`no cluster in ${dir} (no cluster.json); start one with: speccommit cluster up --dir ${dir}`);
  const { kind, name } = componentNamed(file, opts.name);
  const running = await attachByName(file, kind, name);
  const result = (done: ControlResult["done"], pid: number | null): ControlResult => ({ name, action: opts.action, done, pid, ms: Date.now() - t0 });
  if (opts.action !== "start") {
    if (running === undefined) return result("already down", null);
    if (opts.action === "kill") await running.kill9();
    else await running.stop();
    return result(opts.action === "kill" ? "killed" : "stopped", running.pid);
  }
  if (running !== undefined) return result("already up", running.pid);
  const pid = await startByName(file, kind, name);
  return result("started", pid);
}

interface Controllable {
  readonly pid: number;
  kill9(): Promise<void>;
  stop(): Promise<unknown>;
}

async function attachByName(file: ClusterFile, kind: ComponentKind, name: string): Promise<Controllable | undefined> {
  if (kind === "shard") return attachMariaDb({ dataDir: file.shards.find((s) => s.name === name)!.dataDir, detached: true, requireAnswer: false });
  if (kind === "etcd") return attachEtcd({ dataDir: etcdMembersOf(file).find((m) => (m.name ?? "etcd") === name)!.dataDir, detached: true, requireAnswer: false });
  return attachCoordinator(file.coordinators!.find((c) => c.name === name)!);
}

/** Starts a stopped component as it was recorded, then writes its new pid into cluster.json. */
async function startByName(file: ClusterFile, kind: ComponentKind, name: string): Promise<number> {
  const unlock = lockDir(file.dir);
  try {
    const tls = file.tls;
    let pid: number;
    if (kind === "shard") {
      const r = file.shards.find((s) => s.name === name)!;
      const db = await startMariaDb({ dataDir: r.dataDir, port: r.port, detached: true, ...(tls !== undefined ? { tls } : {}) });
      r.pid = pid = db.pid;
    } else if (kind === "etcd") {
      const members = etcdMembersOf(file);
      const i = members.findIndex((m) => (m.name ?? "etcd") === name);
      const plan = (await planEtcdMembers(file.dir, members.length, members))[i]!;
      const e = await startEtcdMember(plan, { detached: true, tls });
      pid = e.pid;
      members[i]!.pid = pid;
      if (i === 0) file.etcd.pid = pid;
      if (file.etcdMembers !== undefined) file.etcdMembers = members;
    } else {
      const r = file.coordinators!.find((c) => c.name === name)!;
      r.pid = pid = (await startRecordedCoordinator(r)).pid;
    }
    writeClusterFile({ ...file, updatedAt: new Date().toISOString() });
    return pid;
  } finally {
    unlock();
  }
}

/**
 * Starts `count` coordinators on the cluster in `dir` (coord1 on firstPort,
 * coord2 on firstPort + 1, ...), detached, and records them in cluster.json;
 * ones already running are kept.
 */
export async function upCoordinators(opts: { dir?: string; count: number; firstPort?: number; serveArgs?: readonly string[]; log?: (line: string) => void }): Promise<CoordinatorRecord[]> {
  const dir = resolve(opts.dir ?? DEFAULT_DIR);
  const log = opts.log ?? (() => {});
  if (!Number.isSafeInteger(opts.count) || opts.count < 1 || opts.count > COORDINATORS_MAX) throw new Error(`coordinators (--coordinators) must be an integer from 1 to ${COORDINATORS_MAX} (got ${opts.count})`);
  const file = readClusterFile(dir);
  if (file === undefined) throw new Error(`no cluster in ${dir}; start one first: speccommit cluster up --dir ${dir}`);
  const firstPort = opts.firstPort ?? FIRST_PORT_DEFAULT;
  const records: CoordinatorRecord[] = [];
  for (let i = 0; i < opts.count; i++) {
    const name = coordinatorName(i);
    const was = file.coordinators?.find((c) => c.name === name);
    const running = was !== undefined ? attachCoordinator(was) : undefined;
    if (running !== undefined) {
      records.push(running.record);
      log(`${name}: reused pid ${running.pid} on ${running.url}`);
      continue;
    }
    const port = firstPort + i;
    const c = await startCoordinator({ name, dir, port, detached: true, args: coordinatorArgs(clusterFilePath(dir), port, coordinatorNodeArgs(i, opts.serveArgs ?? [])) });
    log(`${name}: pid ${c.pid} on ${c.url}`);
    records.push(c.record);
  }
  const latest = readClusterFile(dir)!;
  writeClusterFile({ ...latest, coordinators: records, updatedAt: new Date().toISOString() });
  return records;
}

/** The `serve` arguments that give coordinator i its identity (`--node n<i+1>`), then `extra` (which may not name another node). */
export function coordinatorNodeArgs(i: number, extra: readonly string[]): string[] {
  if (extra.some((a) => a === "--node" || a.startsWith("--node="))) throw new Error("--node is given to each coordinator by the cluster manager (n1, n2, ...); leave it out");
  return ["--node", `n${i + 1}`, ...extra];
}

export { startCoordinator, type CoordinatorProcess, type CoordinatorRecord };

function componentOf(file: ClusterFile, name: string, dbs: readonly MariaDbProcess[], members: readonly EtcdProcess[], coordinators: readonly CoordinatorProcess[]): ClusterComponent {
  const found = componentNamed(file, name);
  let proc: MariaDbProcess | EtcdProcess | CoordinatorProcess;
  if (found.kind === "shard") proc = dbs[file.shards.findIndex((s) => s.name === found.name)]!;
  else if (found.kind === "etcd") proc = members[etcdMembersOf(file).findIndex((m) => (m.name ?? "etcd") === found.name)]!;
  else proc = coordinators.find((c) => c.name === found.name)!;
  return {
    name: found.name,
    kind: found.kind,
    get pid() {
      return proc.pid;
    },
    alive: () => proc.alive(),
    kill9: () => proc.kill9(),
    stop: async () => {
      await proc.stop();
    },
    restart: () => proc.restart(),
  };
}
