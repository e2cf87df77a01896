/**
 * Snapshot reads against the real servers (a child `speccommit serve`, 3
 * MariaDB shards, etcd) under a concurrent load of all three protocols and a
 * kill -9 of the coordinator mid-load, then a restart on the same port:
 *
 *   - every snapshot served (GET /snapshot, now and at earlier timestamps)
 *     totals the seeded total;
 *   - every transfer's history rows carry one commit timestamp (so no
 *     snapshot can hold one branch and not the other);
 *   - every snapshot served is what the final history says at its timestamp
 *     (seed + deltas stamped <= at, per shard): no commit landed below a
 *     snapshot already served, before or after the crash;
 *   - read-your-writes: a committed transfer's commit_ts (from the answer, or
 *     for the speculative path from its history once stamped), sent back as
 *     ?at=, shows its effect.
 * (The same check failing without the safe-time wait: test/time/snapshot-wait.test.ts.)
 */
import http from "node:http";
import type { Pool } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpTarget } from "../../runtime/bench/http-target.ts";
import { runLoad, type LoadResult } from "../../runtime/bench/load.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { parseTs } from "../../spec/time/hlc.ts";
import { Counting, serverArgs, sleep, startCrashCluster, type CrashCluster } from "../crash/support.ts";

const PROTOCOLS = ["2pc", "parallel", "speculative"] as const;
const CLIENTS_PER_PROTOCOL = 3;
const BEFORE_KILL_MS = 6_000;
const AFTER_RESTART_MS = 6_000;
const SETTLE_WAIT_MS = 30_000;

interface Snap {
  readonly at: bigint;
  readonly total: bigint;
  readonly shards: Readonly<Record<string, bigint>>;
  readonly after_restart: boolean;
}

function get(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          resolve({ status: 0, body: { not_json: text.slice(0, 200), status: res.statusCode } });
        }
      });
      res.on("error", (e) => resolve({ status: 0, body: { error: e.message } }));
    });
    req.on("error", (e) => resolve({ status: 0, body: { error: e.message } }));
    req.on("timeout", () => req.destroy());
  });
}

function post(url: string, body: unknown): Promise<{ status: number; body: any; header: string | undefined }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")), header: res.headers["x-speccommit-timestamp"] as string | undefined }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

let crash: CrashCluster;
let pools: Map<string, Pool>;
let server: ServerProcess | null = null;

beforeAll(async () => {
  crash = await startCrashCluster("speccommit-snapshot-");
  pools = new Map(crash.cluster.shards.map((s) => [s.name, s.pool({ connectionLimit: 2 })]));
}, 120_000);

afterAll(async () => {
  await server?.stop().catch(() => null);
  await crash?.stop();
});

describe("snapshot reads under load and a crash (real MariaDB and etcd)", () => {
  it("every snapshot totals the seeded total, holds every transfer whole, and stays what the history says at its timestamp", async () => {
    const { cluster, clusterFile, workload } = crash;
    const prefix = "snapshot-load/";
    const args = (port: number) => [...serverArgs(clusterFile, prefix, port), "--snapshot-wait-ms", "5000"];
    server = await startServerProcess(args(0));
    const url = server.url;
    const port = server.port;
    const seeded = cluster.seededTotalCents;
    const seedPerShard = BigInt(cluster.seed.accountsPerShard) * BigInt(cluster.seed.balanceCents);

    // Read-your-writes, each protocol: the answer's commit_ts, sent back as ?at=, shows the transfer; just below it, not.
    const [sa, sb] = cluster.shards;
    for (const [i, protocol] of PROTOCOLS.entries()) {
      const to = sb!.firstAccountId + i;
      const moved = await post(`${url}/transfer`, {
        ops: [
          { shard_id: sa!.name, account_id: sa!.firstAccountId + i, delta: "-1.23" },
          { shard_id: sb!.name, account_id: to, delta: "1.23" },
        ],
        protocol,
      });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      // The speculative answer comes before its txlog record: it tells no timestamp (not durable yet); the history
      // gives it once the release stamped the rows (docs/protocols/timestamps.md, "The timestamp told").
      let told: string | undefined = moved.body.commit_ts;
      if (protocol === "speculative") {
        expect(told, `speculative answers tell no commit_ts: ${JSON.stringify(moved.body)}`).toBeUndefined();
        for (let i = 0; i < 100 && told === undefined; i++) {
          const h = await get(`${url}/transactions?account=${sb!.name}:${to}`);
          told = (h.body.transactions as Array<{ tx: string; commit_ts: string | null }> | undefined)?.find((t) => t.tx === moved.body.tx)?.commit_ts ?? undefined;
          if (told === undefined) await sleep(50);
        }
      } else expect(moved.header).toBe(moved.body.commit_ts);
      const commitTs = parseTs(told ?? "");
      expect(commitTs, `${protocol}: ${JSON.stringify(moved.body)}`).not.toBeNull();
      const seen = await get(`${url}/accounts/${sb!.name}/${to}?at=${told}`);
      expect(seen.status, JSON.stringify(seen.body)).toBe(200);
      expect(BigInt(seen.body.balance_cents), protocol).toBe(BigInt(cluster.seed.balanceCents) + 123n);
      const before = await get(`${url}/accounts/${sb!.name}/${to}?at=${(commitTs! - 1n).toString()}`);
      expect(BigInt(before.body.balance_cents), protocol).toBe(BigInt(cluster.seed.balanceCents));
    }
    // A timestamp far ahead of the server's clock is refused, and nothing runs.
    const ahead = ((BigInt(Date.now()) + 3_600_000n) * 65536n).toString();
    expect((await get(`${url}/snapshot?at=${ahead}`)).status).toBe(400);
    const skewed = await new Promise<number>((resolve, reject) => {
      const payload = JSON.stringify({ ops: [{ shard_id: sa!.name, account_id: sa!.firstAccountId, delta: "-1" }, { shard_id: sb!.name, account_id: sb!.firstAccountId, delta: "1" }] });
      const req = http.request(`${url}/transfer`, { method: "POST", headers: { "Content-Type": "application/json", "X-Speccommit-Timestamp": ahead } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(payload);
    });
    expect(skewed).toBe(400);

    // The load: every protocol at once; snapshots read all along, now and at earlier timestamps.
    let stopped = false;
    let restarted = false;
    const targets = PROTOCOLS.map((protocol) => new Counting(new HttpTarget({ url, protocol, sockets: CLIENTS_PER_PROTOCOL })));
    const loads: Promise<LoadResult>[] = targets.map((target, i) =>
      runLoad({ target, workload: { ...workload, seed: 1_000 + i }, clients: CLIENTS_PER_PROTOCOL, warmupMs: 0, durationMs: 60_000, backoffMs: 50, stop: () => stopped }),
    );
    const snaps: Snap[] = [];
    const refused: Record<string, number> = {};
    let lastRefusal = "";
    const timings: string[] = [];
    const reader = async () => {
      let k = 0;
      while (!stopped) {
        const earlier = snaps.length > 4 && k % 3 === 2 ? snaps[snaps.length - 4]!.at : null;
        const t0 = performance.now();
        const r = await get(`${url}/snapshot${earlier === null ? "" : `?at=${earlier.toString()}`}`);
        if (r.status === 200) timings.push(`${Math.round(performance.now() - t0)}/${Math.round(Number(r.body.waited_ms))}`);
        k++;
        if (r.status !== 200) {
          refused[String(r.status)] = (refused[String(r.status)] ?? 0) + 1;
          lastRefusal = JSON.stringify(r.body);
          await sleep(20);
          continue;
        }
        const shards: Record<string, bigint> = {};
        for (const [s, v] of Object.entries(r.body.shards as Record<string, { total_cents: string }>)) shards[s] = BigInt(v.total_cents);
        snaps.push({ at: BigInt(r.body.at), total: BigInt(r.body.total_cents), shards, after_restart: restarted });
      }
    };
    // Two readers at once.
    const readers = Promise.all([reader(), reader()]);

    await sleep(BEFORE_KILL_MS);
    const inFlight = targets.reduce((s, t) => s + t.inFlight, 0);
    const committedBefore = targets.map((t) => t.committed);
    await server.kill9();
    await sleep(300);
    server = await startServerProcess(args(port));
    restarted = true;
    await sleep(AFTER_RESTART_MS);
    stopped = true;
    const results = await Promise.all(loads);
    await readers;

    expect(inFlight, "the kill hit a loaded server").toBeGreaterThan(0);
    for (const [i, r] of results.entries()) {
      expect(committedBefore[i], `${PROTOCOLS[i]} committed before the kill`).toBeGreaterThan(0);
      expect(r.committed, `${PROTOCOLS[i]} committed`).toBeGreaterThan(committedBefore[i]!);
    }
    expect(snaps.filter((s) => !s.after_restart).length, `snapshots before the kill (${timings.slice(0, 20).join(" ")}) (refused: ${JSON.stringify(refused)}, last: ${lastRefusal})`).toBeGreaterThanOrEqual(2);
    expect(snaps.filter((s) => s.after_restart).length, `snapshots after the restart (refused: ${JSON.stringify(refused)})`).toBeGreaterThanOrEqual(2);
    const badTotals = snaps.filter((s) => s.total !== seeded);
    expect(badTotals.map((s) => `${s.at}: ${s.total}`), "snapshots off the seeded total").toEqual([]);

    // Once the resolver has finished what the dead process left, every row of a cross-shard transfer is stamped.
    const history = async () => {
      const rows: { shard: string; tx: string; delta: bigint; ts: bigint | null }[] = [];
      for (const [shard, pool] of pools) {
        const [r] = await pool.query("SELECT xid, CAST(delta AS CHAR) AS delta, CAST(commit_ts AS CHAR) AS ts FROM history");
        for (const x of r as Array<{ xid: string; delta: string; ts: string | null }>) rows.push({ shard, tx: x.xid, delta: BigInt(x.delta), ts: x.ts === null ? null : BigInt(x.ts) });
      }
      return rows;
    };
    const byTx = (rows: Awaited<ReturnType<typeof history>>) => {
      const m = new Map<string, typeof rows>();
      for (const r of rows) m.set(r.tx, [...(m.get(r.tx) ?? []), r]);
      return m;
    };
    const deadline = performance.now() + SETTLE_WAIT_MS;
    let rows = await history();
    const unstampedCross = (rs: typeof rows) => [...byTx(rs).values()].filter((l) => new Set(l.map((r) => r.shard)).size > 1 && l.some((r) => r.ts === null));
    while (unstampedCross(rows).length > 0 && performance.now() < deadline) {
      await sleep(250);
      rows = await history();
    }
    expect(unstampedCross(rows).map((l) => l[0]!.tx), "cross-shard transfers with rows not stamped").toEqual([]);
    const split = [...byTx(rows).entries()].filter(([, l]) => new Set(l.map((r) => String(r.ts))).size > 1).map(([tx]) => tx);
    expect(split, "transfers whose rows carry different commit timestamps").toEqual([]);

    // Every snapshot is what the final history says at its timestamp, shard by shard.
    const wrong: string[] = [];
    for (const s of snaps) {
      for (const [shard, total] of Object.entries(s.shards)) {
        let sum = seedPerShard;
        for (const r of rows) if (r.shard === shard && r.ts !== null && r.ts <= s.at) sum += r.delta;
        if (sum !== total) wrong.push(`${s.at} ${shard}: served ${total}, history says ${sum}`);
      }
    }
    expect(wrong.slice(0, 10), `${wrong.length} snapshots differ from the history at their timestamp`).toEqual([]);
    console.log(`snapshot-load: request ms / waited ms of the snapshots served: ${timings.join(" ")}`);
    console.log(`snapshot-load: ${snaps.length} snapshots (${snaps.filter((s) => s.after_restart).length} after the restart), refused ${JSON.stringify(refused)}, committed ${results.map((r, i) => `${PROTOCOLS[i]} ${r.committed}`).join(", ")}, ${inFlight} in flight at the kill`);
  }, 240_000);
});
