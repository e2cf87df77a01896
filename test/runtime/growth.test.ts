// What a long-running server keeps, against real MariaDB and etcd started by
// the test (docs/operations.md, "Bounds"): idempotency claims expire with
// their etcd lease, etcd's history is compacted, and HTTP connections are
// capped and timed out as configured. Timings are checked with generous
// tolerances (the machine is shared); none of this measures speed.
import net from "node:net";
import { randomUUID } from "node:crypto";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { loadConfig, type Config } from "../../runtime/config.ts";
import { idempotencyEtcdKey } from "../../runtime/idempotency.ts";
import { addressesOfCluster } from "../../runtime/main.ts";
import { startServer, type RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request } from "./support.ts";

let cluster: TestCluster;
const servers: RunningServer[] = [];

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
});

afterAll(async () => {
  closeAgents();
  await Promise.all(servers.map((s) => s.close(2_000)));
  await cluster?.stop();
});

/** A server on its own etcd prefix; `override` sets what loadConfig would refuse (a retention of seconds). */
async function serverWith(prefix: string, flags: string[], override: Partial<Config> = {}): Promise<RunningServer> {
  const loaded = loadConfig({ argv: ["--port", "0", "--auth", "none", "--resolver-interval-ms", "60000", "--etcd-prefix", prefix, ...flags], env: {} });
  if (loaded.help) throw new Error("unexpected --help");
  const s = await startServer({ ...loaded.config, ...override }, addressesOfCluster(cluster.describe()));
  servers.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, timeout_ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeout_ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout_ms} ms`);
    await sleep(100);
  }
}

const body = (from: number, to: number, cents: number, key: string) => ({
  ops: [
    { shard_id: "shard-a", account_id: from, delta: -cents },
    { shard_id: "shard-b", account_id: to, delta: cents },
  ],
  idempotency_key: key,
});

describe("idempotency retention", () => {
  let short: RunningServer;
  let standard: RunningServer;
  const RETENTION_MS = 3_000;

  beforeAll(async () => {
    // The settings refuse a retention under an hour (test/runtime/bounds.test.ts); the mechanism is the same at any
    // retention, so this server is given seconds directly, to see a claim expire within the test.
    short = await serverWith("ret3s/", [], { idempotency_retention_ms: RETENTION_MS });
    standard = await serverWith("ret24h/", []);
  });

  it("a claim is gone after the retention, and the key then starts a new transfer (Stripe's rule)", async () => {
    const etcd = cluster.etcdClient();
    const key = `expire-${randomUUID()}`;
    const before = await balance(cluster, "shard-a", 1);
    const first = await request(short.url, "POST", "/transfer", { json: body(1, 101, 7, key) });
    expect(first.body).toMatchObject({ status: "committed", replayed: false });
    const again = await request(short.url, "POST", "/transfer", { json: body(1, 101, 7, key) });
    expect(again.body).toMatchObject({ status: "committed", replayed: true, tx: first.body.tx });
    expect(await balance(cluster, "shard-a", 1)).toBe(before - 7n);

    const etcdKey = "ret3s/" + idempotencyEtcdKey(key);
    const kv = (await etcd.get(etcdKey).exec()).kvs[0]!;
    expect(kv.lease).not.toBe("0");
    // Retention + one bucket (1 s at this retention) + etcd's lease check (every 500 ms) + slack for a busy machine.
    const gone_ms = await until("the claim's expiry", RETENTION_MS + 1_000 + 8_000, async () => ((await etcd.get(etcdKey).string()) === null ? Date.now() : undefined));
    expect(gone_ms).toBeGreaterThan(0);

    const reused = await request(short.url, "POST", "/transfer", { json: body(1, 101, 7, key) });
    expect(reused.body).toMatchObject({ status: "committed", replayed: false });
    expect(reused.body.tx).not.toBe(first.body.tx);
    expect(await balance(cluster, "shard-a", 1)).toBe(before - 14n);
  });

  it("claims of one time bucket share one lease, whose TTL covers the retention (24 h by default)", async () => {
    const etcd = cluster.etcdClient();
    const keys = Array.from({ length: 20 }, (_, i) => `share-${i}-${randomUUID()}`);
    for (const key of keys) expect((await request(standard.url, "POST", "/transfer", { json: body(2, 102, 1, key) })).status).toBe(200);
    const leases = new Set<string>();
    for (const key of keys) leases.add((await etcd.get("ret24h/" + idempotencyEtcdKey(key)).exec()).kvs[0]!.lease);
    // 20 claims within seconds: one bucket of 15 minutes, two if they straddle its end.
    expect(leases.size).toBeLessThanOrEqual(2);
    for (const lease of leases) {
      const ttl = Number((await etcd.leaseClient.leaseTimeToLive({ ID: lease })).TTL);
      expect(ttl).toBeGreaterThan(86_400 - 60);
      expect(ttl).toBeLessThanOrEqual(86_400 + 900 + 1);
    }
  });

  it("a claim whose transfer is still in doubt moves to a fresh lease when a request finds it so", async () => {
    const etcd = cluster.etcdClient();
    // The fingerprint of this body, from a claim the server wrote.
    const probeKey = `fp-${randomUUID()}`;
    await request(standard.url, "POST", "/transfer", { json: body(3, 103, 5, probeKey) });
    const fingerprint = JSON.parse((await etcd.get("ret24h/" + idempotencyEtcdKey(probeKey)).string())!).fingerprint as string;

    // A claimant that died with its branch on shard-a prepared and no decision: the outcome is unknown.
    const tx = randomUUID();
    const conn = await mysql.createConnection(cluster.shard("shard-a").connectionOptions());
    const xid = `'${tx}','shard-a',${XID_FORMAT_ID}`;
    await conn.query(`XA START ${xid}`);
    await conn.query("UPDATE accounts SET balance = balance - 5 WHERE id = 3");
    await conn.query(`XA END ${xid}`);
    await conn.query(`XA PREPARE ${xid}`);
    const oldLease = (await etcd.leaseClient.leaseGrant({ TTL: 60 })).ID;
    const key = `doubt-${randomUUID()}`;
    const etcdKey = "ret24h/" + idempotencyEtcdKey(key);
    await etcd.put(etcdKey).value(JSON.stringify({ tx, fingerprint, shards: ["shard-a", "shard-b"], protocol: "2pc" })).lease(oldLease);
    try {
      const r = await request(standard.url, "POST", "/transfer", { json: body(3, 103, 5, key) });
      expect(r.body).toMatchObject({ tx, status: "in_doubt", replayed: true });
      const kv = (await etcd.get(etcdKey).exec()).kvs[0]!;
      expect(kv.lease).not.toBe(oldLease);
      expect(Number((await etcd.leaseClient.leaseTimeToLive({ ID: kv.lease })).TTL)).toBeGreaterThan(86_400 - 60);
      expect(JSON.parse(kv.value.toString()).outcome).toBeUndefined();
    } finally {
      await conn.query(`XA ROLLBACK ${xid}`);
      await conn.end();
    }
  });
});

describe("etcd compaction", () => {
  it("the server compacts etcd's history to a window of revisions: old revisions are gone and the database stops growing", async () => {
    await serverWith("compact/", ["--etcd-compaction-interval-ms", "1000", "--etcd-compaction-revisions-kept", "100"]);
    const etcd = cluster.etcdClient();
    const first = Number((await etcd.put("compact/probe").value("v1").exec()).header.revision);
    const value = "x".repeat(2_000);
    const sizes: number[] = [];
    const ROUNDS = 4;
    const WRITES = 1_000;
    for (let round = 0; round < ROUNDS; round++) {
      let last = 0;
      for (let i = 0; i < WRITES; i += 50) {
        const puts = await Promise.all(Array.from({ length: 50 }, (_, j) => etcd.put(`compact/filler/${(i + j) % 10}`).value(value).exec()));
        last = Math.max(last, ...puts.map((p) => Number(p.header.revision)));
      }
      // The round's writes are compacted away once a get just behind the window answers "compacted".
      await until(`compaction after round ${round}`, 15_000, async () =>
        etcd.get("compact/probe").revision(last - 200).exec().then(() => undefined, (e: Error) => (/compacted/.test(e.message) ? true : undefined)),
      );
      // The window stays readable.
      await etcd.get("compact/probe").revision(last).exec();
      await sleep(500);
      sizes.push(Number((await etcd.maintenance.status()).dbSize));
    }
    await expect(etcd.get("compact/probe").revision(first).exec()).rejects.toThrow(/required revision has been compacted/);
    console.log(`etcd db size after each round of ${WRITES} writes of 2 KB: ${sizes.map((s) => (s / 1048576).toFixed(2)).join(", ")} MB`);
    // Without compaction every round adds about 4 MB (2 KB values take a 4 KB page each): 16 MB after four.
    expect(sizes[ROUNDS - 1]! - sizes[1]!).toBeLessThan(2 * 1048576);
    expect(sizes[ROUNDS - 1]!).toBeLessThan(ROUNDS * WRITES * value.length);
  });
});

/** A raw TCP connection to the server that records when the server closed it and what it sent. */
function connect(port: number): Promise<{ socket: net.Socket; closed: Promise<number>; received: () => string }> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect(port, "127.0.0.1");
    const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now())));
    socket.on("data", (c: Buffer) => (text += c.toString()));
    socket.on("error", () => undefined);
    socket.once("connect", () => resolve({ socket, closed, received: () => text }));
    socket.once("error", reject);
  });
}

const isClosed = async (p: Promise<number>, within_ms: number) => (await Promise.race([p.then(() => true), sleep(within_ms).then(() => false)]));

describe("HTTP connections", () => {
  const HEADERS_MS = 2_000;
  const REQUEST_MS = 4_000;
  const KEEP_ALIVE_MS = 1_000;
  const CAP = 600;
  /** Slack for a busy machine on top of what node documents. */
  const SLACK_MS = 1_500;
  let server: RunningServer;

  beforeAll(async () => {
    server = await serverWith("conn/", [
      "--connections-max", String(CAP),
      "--headers-timeout-ms", String(HEADERS_MS),
      "--request-timeout-ms", String(REQUEST_MS),
      "--keep-alive-timeout-ms", String(KEEP_ALIVE_MS),
    ]);
  });

  it("a client that sends its headers slowly is cut close to headers_timeout_ms (checked every tenth of it)", async () => {
    const c = await connect(server.port);
    const t0 = Date.now();
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    const drip = setInterval(() => c.socket.write("X-Slow: 1\r\n"), 200);
    try {
      const at = await Promise.race([c.closed, sleep(HEADERS_MS * 5).then(() => Number.NaN)]);
      expect(at - t0).toBeGreaterThanOrEqual(HEADERS_MS - 100);
      expect(at - t0).toBeLessThanOrEqual(HEADERS_MS + HEADERS_MS / 10 + SLACK_MS);
      expect(c.received()).toMatch(/^HTTP\/1.1 408/);
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  it("a request whose body trickles in is answered 408 close to request_timeout_ms", async () => {
    const c = await connect(server.port);
    const t0 = Date.now();
    c.socket.write("POST /transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{");
    const drip = setInterval(() => c.socket.write(" "), 200);
    try {
      const at = await Promise.race([c.closed, sleep(REQUEST_MS * 5).then(() => Number.NaN)]);
      expect(at - t0).toBeGreaterThanOrEqual(REQUEST_MS - 100);
      expect(at - t0).toBeLessThanOrEqual(REQUEST_MS + HEADERS_MS / 10 + SLACK_MS);
      expect(c.received()).toMatch(/^HTTP\/1.1 408/);
    } finally {
      clearInterval(drip);
      c.socket.destroy();
    }
  });

  it("500 connections that send nothing are all closed at headers_timeout_ms, not held", async () => {
    const t0 = Date.now();
    const conns = await Promise.all(Array.from({ length: 500 }, () => connect(server.port)));
    try {
      const closedAt = await Promise.race([Promise.all(conns.map((c) => c.closed)), sleep(HEADERS_MS * 5).then(() => [])]);
      expect(closedAt).toHaveLength(500);
      expect(Math.max(...closedAt) - t0).toBeLessThanOrEqual(HEADERS_MS + HEADERS_MS / 10 + SLACK_MS);
      expect(Math.min(...closedAt) - t0).toBeGreaterThanOrEqual(HEADERS_MS - 100);
    } finally {
      for (const c of conns) c.socket.destroy();
    }
  });

  it("connections past connections_max are closed at once; those under it are served", async () => {
    const conns = await Promise.all(Array.from({ length: CAP + 20 }, () => connect(server.port)));
    try {
      const closed = await Promise.all(conns.map((c) => isClosed(c.closed, 500)));
      expect(closed.filter((x) => x)).toHaveLength(20);
      const open = conns.filter((_, i) => !closed[i]);
      open[0]!.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      await open[0]!.closed;
      expect(open[0]!.received()).toMatch(/^HTTP\/1.1 200/);
    } finally {
      for (const c of conns) c.socket.destroy();
    }
    // Once they are gone, new connections are taken again.
    await sleep(200);
    expect((await request(server.url, "GET", "/healthz")).status).toBe(200);
  });

  it("idle keep-alive connections are closed keep_alive_timeout_ms (+ node's 1 s) after their answer, not before", async () => {
    const conns = await Promise.all(Array.from({ length: 100 }, () => connect(server.port)));
    try {
      for (const c of conns) c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      await until("every answer", 10_000, async () => (conns.every((c) => c.received().includes("\r\n\r\n")) ? true : undefined));
      const answered = Date.now();
      expect(conns.every((c) => /^HTTP\/1.1 200/.test(c.received()) && /keep-alive/i.test(c.received()))).toBe(true);
      const closedAt = await Promise.race([Promise.all(conns.map((c) => c.closed)), sleep(KEEP_ALIVE_MS * 10).then(() => [])]);
      expect(closedAt).toHaveLength(100);
      expect(Math.min(...closedAt) - answered).toBeGreaterThanOrEqual(KEEP_ALIVE_MS - 200);
      expect(Math.max(...closedAt) - answered).toBeLessThanOrEqual(KEEP_ALIVE_MS + 1_000 + SLACK_MS);
    } finally {
      for (const c of conns) c.socket.destroy();
    }
  });
});
