/**
 * Helpers for integration tests that need real MariaDB shards and etcd.
 *
 * `startTestCluster` starts a fresh cluster in a new temporary directory; its
 * servers are children of the test process (killed on exit even if a test
 * fails before `stop()`). Call `stop()` in afterAll: it closes the pools and
 * etcd clients made through the handles, kills the servers and removes the
 * directory.
 *
 *   const cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
 *   const pool = cluster.shards[0]!.pool();
 *   expect(await totalBalance(cluster)).toBe(200n * 100_000n);
 *   await cluster.stop();
 *
 * Money comes back as bigint cents (see runtime/cluster/schema.ts).
 */
import { readFileSync } from "node:fs";
import { Etcd3 } from "etcd3";
import mysql, { type Connection, type Pool, type PoolConnection } from "mysql2/promise";
import { seedTotalCents, startEphemeralCluster, type ClusterComponent, type ClusterFile, type CoordinatorProcess, type EphemeralOptions, type SeedParameters } from "../../runtime/cluster/cluster.ts";
import type { EtcdProcess } from "../../runtime/cluster/etcd.ts";
import type { MariaDbProcess, ShardConnectionOptions } from "../../runtime/cluster/mariadb.ts";
import type { ShardAddress } from "../../runtime/adapters/mysql-pool.ts";
import { DATABASE, SHARD_USER, shardTotalCents } from "../../runtime/cluster/schema.ts";

const POOL_CONNECTIONS_DEFAULT = 16;
const ETCD_DIAL_TIMEOUT_MS = 2_000;

export interface TestShard {
  /** shard-a, shard-b, ... */
  readonly name: string;
  readonly firstAccountId: number;
  readonly lastAccountId: number;
  readonly db: MariaDbProcess;
  /** The shard as the server reaches it: the least-privilege user `cluster up` made, over TCP. */
  serverAddress(): ShardAddress;
  /** Options for mysql2 (as root: the tests' observer) with the speccommit database selected. */
  connectionOptions(extra?: { multipleStatements?: boolean }): ShardConnectionOptions;
  /** A new pool on this shard (closed by cluster.stop()). */
  pool(opts?: { connectionLimit?: number }): Pool;
  /** A new single connection on this shard (closed by cluster.stop() if still open). */
  connect(): Promise<Connection>;
}

export interface TestCluster {
  readonly dir: string;
  readonly seed: SeedParameters;
  readonly shards: readonly TestShard[];
  readonly etcd: EtcdProcess;
  /** Every etcd member (one unless etcdMembers was given). */
  readonly etcdMembers: readonly EtcdProcess[];
  /** Coordinators started by startCoordinators. */
  readonly coordinators: readonly CoordinatorProcess[];
  /** Starts `count` coordinator processes (`speccommit serve`) on this cluster, free ports, `serveArgs(i)` each (startEphemeralCluster). */
  startCoordinators(count: number, serveArgs: (i: number) => readonly string[]): Promise<CoordinatorProcess[]>;
  /** One server by name (etcd1.., shard-a.. or shard1.., coord1..): kill9, stop, restart alone. */
  component(name: string): ClusterComponent;
  /** The shard by name; throws on an unknown name. */
  shard(name: string): TestShard;
  /** A new etcd3 client (closed by cluster.stop()). */
  etcdClient(): Etcd3;
  /** What `speccommit cluster up` writes to cluster.json, for this cluster (current pids and ports). */
  describe(): ClusterFile;
  /** Sum of seed balances: shards x accountsPerShard x balanceCents. */
  readonly seededTotalCents: bigint;
  /** Closes pools, connections and clients made here, kills every server, removes the directory. Idempotent. */
  stop(): Promise<void>;
}

export type TestClusterOptions = Partial<SeedParameters> & Pick<EphemeralOptions, "lockWaitTimeoutS" | "bufferPoolMb" | "keepDir" | "tls" | "etcdMembers">;

/** Defaults are small (2 shards x 100 accounts x 100000 cents) so a test starts in about a second. */
export async function startTestCluster(opts: TestClusterOptions = {}): Promise<TestCluster> {
  const ephemeral = await startEphemeralCluster({
    shards: opts.shards ?? 2,
    accountsPerShard: opts.accountsPerShard ?? 100,
    balanceCents: opts.balanceCents ?? 100_000,
    ...(opts.lockWaitTimeoutS !== undefined ? { lockWaitTimeoutS: opts.lockWaitTimeoutS } : {}),
    ...(opts.bufferPoolMb !== undefined ? { bufferPoolMb: opts.bufferPoolMb } : {}),
    ...(opts.keepDir !== undefined ? { keepDir: opts.keepDir } : {}),
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    ...(opts.etcdMembers !== undefined ? { etcdMembers: opts.etcdMembers } : {}),
  });
  const tls = ephemeral.describe().tls;
  const closers: Array<() => Promise<unknown>> = [];
  const shards: TestShard[] = ephemeral.shards.map((s) => ({
    name: s.name,
    firstAccountId: s.firstAccountId,
    lastAccountId: s.lastAccountId,
    db: s.db,
    serverAddress: () => ({
      name: s.name,
      host: "127.0.0.1",
      port: s.db.port,
      user: SHARD_USER,
      password: readFileSync(ephemeral.describe().shards.find((r) => r.name === s.name)!.passwordFile, "utf8").trim(),
      database: DATABASE,
      ...(tls !== undefined ? { ssl: { ca: readFileSync(tls.ca, "utf8"), rejectUnauthorized: true as const, verifyIdentity: true as const } } : {}),
    }),
    connectionOptions: (extra) => s.db.connectionOptions({ database: DATABASE, ...extra }),
    pool: (poolOpts) => {
      const pool = mysql.createPool({
        ...s.db.connectionOptions({ database: DATABASE }),
        connectionLimit: poolOpts?.connectionLimit ?? POOL_CONNECTIONS_DEFAULT,
      });
      closers.push(() => pool.end());
      return pool;
    },
    connect: async () => {
      const conn = await mysql.createConnection(s.db.connectionOptions({ database: DATABASE }));
      closers.push(async () => conn.destroy());
      return conn;
    },
  }));
  let stopped = false;
  return {
    dir: ephemeral.dir,
    seed: ephemeral.seed,
    shards,
    etcd: ephemeral.etcd,
    etcdMembers: ephemeral.etcdMembers,
    coordinators: ephemeral.coordinators,
    startCoordinators: (count, serveArgs) => ephemeral.startCoordinators(count, serveArgs),
    component: (name) => ephemeral.component(name),
    describe: () => ephemeral.describe(),
    seededTotalCents: seedTotalCents(ephemeral.seed),
    shard: (name) => {
      const found = shards.find((s) => s.name === name);
      if (found === undefined) throw new Error(`no shard '${name}' (shards: ${shards.map((s) => s.name).join(", ")})`);
      return found;
    },
    etcdClient: () => {
      const client = new Etcd3({
        hosts: ephemeral.etcdMembers.map((m) => m.clientUrl),
        dialTimeout: ETCD_DIAL_TIMEOUT_MS,
        ...(tls !== undefined
          ? { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) } }
          : {}),
      });
      closers.push(async () => client.close());
      return client;
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await Promise.allSettled(closers.map((close) => close()));
      await ephemeral.stop();
    },
  };
}

/** Money on every shard (balances plus pending credits, shardTotalCents), in cents. Each shard is read on its own connection, one after another. */
export async function totalBalance(cluster: Pick<TestCluster, "shards">): Promise<bigint> {
  let total = 0n;
  for (const shard of cluster.shards) {
    const conn = await mysql.createConnection(shard.connectionOptions());
    try {
      total += await shardTotalCents(conn);
    } finally {
      await conn.end();
    }
  }
  return total;
}

export interface XaRecoverRow {
  formatID: number;
  gtrid: string;
  bqual: string;
}

/** The branches a shard holds PREPARED (XA RECOVER), with gtrid and bqual decoded as UTF-8. */
export async function xaRecover(conn: Connection | PoolConnection | Pool): Promise<XaRecoverRow[]> {
  const [rows] = await conn.query("XA RECOVER");
  return (rows as Array<{ formatID: number | string; gtrid_length: number | string; bqual_length: number | string; data: Buffer | string }>).map((r) => {
    const data = Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.data, "binary");
    const gtridLength = Number(r.gtrid_length);
    const bqualLength = Number(r.bqual_length);
    return {
      formatID: Number(r.formatID),
      gtrid: data.subarray(0, gtridLength).toString("utf8"),
      bqual: data.subarray(gtridLength, gtridLength + bqualLength).toString("utf8"),
    };
  });
}
