/**
 * Snapshot reads with two coordinator nodes (`speccommit serve --node n1`,
 * `--node n2`, child processes) over one etcd and three MariaDB shards,
 * exchanging safe times through etcd (runtime/safe-exchange.ts,
 * spec/time/cluster.ts), under a load of all three protocols on both nodes:
 *
 *   - snapshots read at both nodes, now and at earlier timestamps, all total
 *     the seeded total, and each is what the final history says at its
 *     timestamp, shard by shard (no commit of either node landed at or below
 *     a snapshot already served: each transfer whole or not at all);
 *   - read-your-writes across nodes: a transfer committed on n1, read on n2 at
 *     its commit_ts, shows it (and the other way round);
 *   - n2 killed -9 mid-load: n1's reads newer than n2's last published safe
 *     time wait and, past snapshot_wait_ms, are refused naming n2 (504 while
 *     its lease runs, 503 "dead, not taken over yet" after) until n1 has
 *     taken n2 over; then they are served again.
 */
import http from "node:http";
import type { Pool } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpTarget } from "../../runtime/bench/http-target.ts";
import { runLoad, type LoadResult } from "../../runtime/bench/load.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { parseTs } from "../../spec/time/hlc.ts";
import { Counting, serverArgs, sleep, startCrashCluster, type CrashCluster } from "../crash/support.ts";

const PREFIX = "snap-nodes/";
const PROTOCOLS = ["2pc", "parallel", "speculative"] as const;
const LEASE_TTL_MS = 2_000;
const BEFORE_KILL_MS = 5_000;
const AFTER_KILL_MS = 7_000;
const SETTLE_WAIT_MS = 30_000;

interface Snap {
  readonly node: string;
  readonly at: bigint;
  readonly total: bigint;
  readonly shards: Readonly<Record<string, bigint>>;
}

function get(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        } catch {
          resolve({ status: 0, body: { status: res.statusCode } });
        }
      });
      res.on("error", (e) => resolve({ status: 0, body: { error: e.message } }));
    });
    req.on("error", (e) => resolve({ status: 0, body: { error: e.message } }));
    req.on("timeout", () => req.destroy());
  });
}

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  return { status: r.status, body: await r.json() };
}

let cc: CrashCluster;
let pools: Map<string, Pool>;
const procs: ServerProcess[] = [];

beforeAll(async () => {
  cc = await startCrashCluster("snapshot-nodes-");
  pools = new Map(cc.cluster.shards.map((s) => [s.name, s.pool({ connectionLimit: 2 })]));
}, 120_000);

afterAll(async () => {
  for (const p of procs) await p.kill9().catch(() => undefined);
  await cc?.stop();
});

const serve = async (node: string): Promise<ServerProcess> => {
  const p = await startServerProcess([...serverArgs(cc.clusterFile, PREFIX, 0), "--node", node, "--lease-ttl-ms", String(LEASE_TTL_MS), "--deadlock-interval-ms", "0", "--snapshot-wait-ms", "1000"]);
  procs.push(p);
  return p;
};

describe("snapshot reads with two coordinator nodes (real MariaDB and etcd)", () => {
  it("every snapshot at either node totals the seeded total and is what the history says at its timestamp; a dead node holds snapshots back until taken over", async () => {
    const n1 = await serve("n1");
    const n2 = await serve("n2");
    const { cluster, workload } = cc;
    const seeded = cluster.seededTotalCents;
    const seedPerShard = BigInt(cluster.seed.accountsPerShard) * BigInt(cluster.seed.balanceCents);
    const [sa, sb] = cluster.shards;

    // Read-your-writes across nodes: committed on one, read at its commit_ts on the other (waits for both safe times).
    for (const [i, [from, to]] of [[n1, n2], [n2, n1]].entries()) {
      const acct = sb!.firstAccountId + 100 + i;
      const moved = await post(`${from!.url}/transfer`, { ops: [{ shard_id: sa!.name, account_id: sa!.firstAccountId + 100 + i, delta: "-2.00" }, { shard_id: sb!.name, account_id: acct, delta: "2.00" }], protocol: "2pc" });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      expect(parseTs(moved.body.commit_ts)).not.toBeNull();
      const seen = await get(`${to!.url}/accounts/${sb!.name}/${acct}?at=${moved.body.commit_ts}`);
      expect(seen.status, JSON.stringify(seen.body)).toBe(200);
      expect(BigInt(seen.body.balance_cents)).toBe(BigInt(cluster.seed.balanceCents) + 200n);
      const before = await get(`${to!.url}/accounts/${sb!.name}/${acct}?at=${(parseTs(moved.body.commit_ts)! - 1n).toString()}`);
      expect(BigInt(before.body.balance_cents)).toBe(BigInt(cluster.seed.balanceCents));
    }

    let stopped = false;
    const targets = [n1, n2].flatMap((n) => PROTOCOLS.map((protocol) => new Counting(new HttpTarget({ url: n.url, protocol, sockets: 2 }))));
    const loads: Promise<LoadResult>[] = targets.map((target, i) =>
      runLoad({ target, workload: { ...workload, seed: 2_000 + i }, clients: 2, warmupMs: 0, durationMs: 60_000, backoffMs: 50, stop: () => stopped }),
    );
    const snaps: Snap[] = [];
    const refused: Record<string, number> = {};
    const namedN2: string[] = [];
    let n2Dead = false;
    const reader = async (node: string, url: () => string | null) => {
      let k = 0;
      while (!stopped) {
        const u = url();
        if (u === null) {
          await sleep(50);
          continue;
        }
        const mine = snaps.filter((s) => s.node === node);
        const earlier = mine.length > 4 && k % 3 === 2 ? mine[mine.length - 4]!.at : null;
        const r = await get(`${u}/snapshot${earlier === null ? "" : `?at=${earlier.toString()}`}`);
        k++;
        if (r.status !== 200) {
          refused[`${node} ${r.status}`] = (refused[`${node} ${r.status}`] ?? 0) + 1;
          // n2 killed: behind while its lease runs (504 "held back by n2"), dead and not taken over (503 "node n2 is dead").
          if (n2Dead && ((r.status === 503 && /node n2 is dead/.test(String(r.body.error))) || (r.status === 504 && /held back by n2 /.test(String(r.body.error))))) namedN2.push(String(r.body.error));
          await sleep(20);
          continue;
        }
        const shards: Record<string, bigint> = {};
        for (const [s, v] of Object.entries(r.body.shards as Record<string, { total_cents: string }>)) shards[s] = BigInt(v.total_cents);
        snaps.push({ node, at: BigInt(r.body.at), total: BigInt(r.body.total_cents), shards });
      }
    };
    let n2Url: string | null = n2.url;
    const readers = Promise.all([reader("n1", () => n1.url), reader("n1", () => n1.url), reader("n2", () => n2Url)]);

    await sleep(BEFORE_KILL_MS);
    const before = { n1: snaps.filter((s) => s.node === "n1").length, n2: snaps.filter((s) => s.node === "n2").length };
    const committedBefore = targets.reduce((s, t) => s + t.committed, 0);
    n2Url = null;
    await n2.kill9();
    n2Dead = true;
    const killedAt = snaps.length;
    await sleep(AFTER_KILL_MS);
    stopped = true;
    const results = await Promise.all(loads.map((l) => l.catch(() => null)));
    await readers;

    // Metrics (runtime/metrics.ts): n1's served and refused reads, their waits, the safe-time lag.
    const page = await (await fetch(`${n1.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const line = (name: string) => page.split("\n").find((l) => l.startsWith(name + " "));
    const sample = (name: string) => Number(line(name)?.slice(name.length + 1) ?? 0);
    const n1Served = snaps.filter((s) => s.node === "n1").length;
    expect(sample('speccommit_snapshot_reads_total{outcome="served"}'), page.slice(0, 500)).toBeGreaterThanOrEqual(n1Served);
    const n1Refused = Object.entries(refused).filter(([k]) => k.startsWith("n1 ")).reduce((a, [, v]) => a + v, 0);
    expect(sample('speccommit_snapshot_reads_total{outcome="timeout"}') + sample('speccommit_snapshot_reads_total{outcome="unavailable"}')).toBeGreaterThanOrEqual(n1Refused);
    expect(sample("speccommit_snapshot_wait_seconds_count")).toBeGreaterThanOrEqual(n1Served + n1Refused);
    expect(line("speccommit_safe_time_lag_seconds"), "the lag gauge").toBeDefined();
    const lag = sample("speccommit_safe_time_lag_seconds");
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(30);

    expect(before.n1, `snapshots at n1 before the kill (refused ${JSON.stringify(refused)}); n1: ${n1.output().slice(-1500)}`).toBeGreaterThanOrEqual(3);
    expect(before.n2, `snapshots at n2 before the kill (refused ${JSON.stringify(refused)})`).toBeGreaterThanOrEqual(3);
    expect(committedBefore, "transfers committed before the kill").toBeGreaterThan(0);
    expect(namedN2.length, `reads at n1 refused naming n2 between the kill and the takeover (refused ${JSON.stringify(refused)})`).toBeGreaterThan(0);
    expect(snaps.length - killedAt, `snapshots at n1 after n2 was taken over (refused ${JSON.stringify(refused)}, last: ${namedN2.at(-1)})`).toBeGreaterThanOrEqual(2);
    expect(results.filter((r) => r !== null).length).toBeGreaterThan(0);
    expect(snaps.filter((s) => s.total !== seeded).map((s) => `${s.node} ${s.at}: ${s.total}`), "snapshots off the seeded total").toEqual([]);

    // Once n1 settled what n2 left, every row of a cross-shard transfer is stamped; all of a transfer's rows carry one timestamp.
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
    const unstampedCross = (rs: Awaited<ReturnType<typeof history>>) => [...byTx(rs).values()].filter((l) => new Set(l.map((r) => r.shard)).size > 1 && l.some((r) => r.ts === null));
    const deadline = performance.now() + SETTLE_WAIT_MS;
    let rows = await history();
    while (unstampedCross(rows).length > 0 && performance.now() < deadline) {
      await sleep(250);
      rows = await history();
    }
    expect(unstampedCross(rows).map((l) => l[0]!.tx), "cross-shard transfers with rows not stamped").toEqual([]);
    expect([...byTx(rows).entries()].filter(([, l]) => new Set(l.map((r) => String(r.ts))).size > 1).map(([tx]) => tx), "transfers split across timestamps").toEqual([]);
    const byNode = new Set(rows.map((r) => r.tx.split(".")[0]));
    expect([...byNode].sort(), "both nodes committed").toEqual(expect.arrayContaining(["n1", "n2"]));

    const wrong: string[] = [];
    for (const s of snaps) {
      for (const [shard, total] of Object.entries(s.shards)) {
        let sum = seedPerShard;
        for (const r of rows) if (r.shard === shard && r.ts !== null && r.ts <= s.at) sum += r.delta;
        if (sum !== total) wrong.push(`${s.node} ${s.at} ${shard}: served ${total}, history says ${sum}`);
      }
    }
    expect(wrong.slice(0, 10), `${wrong.length} snapshots differ from the history at their timestamp`).toEqual([]);
    console.log(
      `snapshot-nodes: ${snaps.length} snapshots (n1 ${snaps.filter((s) => s.node === "n1").length}, n2 ${snaps.filter((s) => s.node === "n2").length}, ${snaps.length - killedAt} after the kill), refused ${JSON.stringify(refused)}, committed ${targets.reduce((s, t) => s + t.committed, 0)}; refusals naming n2: ${namedN2.length} (503: ${namedN2.filter((m) => /is dead/.test(m)).length}), first: ${namedN2[0]}`,
    );
  }, 240_000);
});
