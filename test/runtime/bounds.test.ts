// Bounds on what a long-running server keeps (docs/operations.md, "Bounds"),
// the parts that need no cluster: the settings that must hold together, the
// retention leases' arithmetic, and the engine's retained transactions over
// the deterministic simulation (in-memory adapters over the spec's models).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BranchSpec } from "../../spec/kernel/effects.ts";
import { ConfigError, loadConfig, transferOpen_ms } from "../../runtime/config.ts";
import { Engine, retainedBytesOf } from "../../runtime/engine.ts";
import { replayTrace } from "../../conformance/replay.ts";
import { RETENTION_BUCKETS, RetentionLeases } from "../../runtime/retention.ts";
import { RESOLVER_INTERVAL_MS, SHARDS, world } from "./sim.ts";

const config = (...argv: string[]) => {
  const r = loadConfig({ argv: ["--auth", "none", ...argv], env: {} });
  if (r.help) throw new Error("unexpected --help");
  return r.config;
};

describe("settings that bound growth", () => {
  it("defaults: 24 h retention, compaction every minute, 16 MiB of traces, 1024 connections, timeouts", () => {
    expect(config()).toMatchObject({
      idempotency_retention_ms: 86_400_000,
      etcd_compaction_interval_ms: 60_000,
      etcd_compaction_revisions_kept: 10_000,
      retain_trace_bytes_max: 16_777_216,
      retain_transactions: 10_000,
      connections_max: 1_024,
      headers_timeout_ms: 10_000,
      request_timeout_ms: 30_000,
      keep_alive_timeout_ms: 5_000,
    });
  });

  it("refuses a retention under an hour", () => {
    expect(() => config("--idempotency-retention-ms", "3599999")).toThrow(ConfigError);
    expect(() => config("--idempotency-retention-ms", "3599999")).toThrow(/--idempotency-retention-ms: 3599999 is not allowed .*expected an integer from 3600000 \(1 hour\)/);
    expect(config("--idempotency-retention-ms", "3600000").idempotency_retention_ms).toBe(3_600_000);
  });

  it("refuses a retention under 10 x the longest a transfer can stay open, and names what to change", () => {
    const slow = ["--vote-timeout-ms", "600000", "--statement-timeout-ms", "600000"];
    const open = transferOpen_ms(config(...slow, "--idempotency-retention-ms", "86400000"));
    expect(open).toBe(600_000 + 600_000 + 5 * (2_000 + 200));
    expect(() => config(...slow, "--idempotency-retention-ms", String(10 * open - 1))).toThrow(/under 10 x 1211000 ms.*raise idempotency_retention_ms or lower those/);
    expect(config(...slow, "--idempotency-retention-ms", String(10 * open)).idempotency_retention_ms).toBe(10 * open);
  });

  it("compaction: 0 turns it off, under a second is refused; headers timeout cannot exceed the request timeout", () => {
    expect(config("--etcd-compaction-interval-ms", "0").etcd_compaction_interval_ms).toBe(0);
    expect(() => config("--etcd-compaction-interval-ms", "999")).toThrow(/0 \(off: etcd compacts itself\) or an integer from 1000/);
    expect(() => config("--headers-timeout-ms", "20000", "--request-timeout-ms", "10000")).toThrow(/headers_timeout_ms 20000 is over request_timeout_ms 10000/);
  });
});

/** A lease client on a fake clock: every grant remembered with the time it was made. */
function fakeLeases(now: () => number, fail: () => boolean = () => false) {
  const grants: Array<{ at: number; ttl_s: number }> = [];
  const leaseClient = {
    leaseGrant: async (req: { TTL?: string | number }) => {
      if (fail()) throw new Error("etcd unavailable");
      grants.push({ at: now(), ttl_s: Number(req.TTL) });
      return { ID: String(grants.length - 1), TTL: String(req.TTL), error: "", header: {} };
    },
  };
  return { grants, ns: { leaseClient } as never };
}

describe("retention leases", () => {
  it("every claim's lease ends between retention and retention + one bucket (+1 s of rounding) after it; one grant per bucket", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1_000, max: 2_592_000_000 }),
        fc.array(fc.integer({ min: 0, max: 3_600_000 }), { minLength: 1, maxLength: 60 }),
        async (retention_ms, steps) => {
          let now = 0;
          const { grants, ns } = fakeLeases(() => now);
          const leases = new RetentionLeases(ns, retention_ms, () => now);
          const buckets = new Set<number>();
          for (const step of steps) {
            now += step;
            buckets.add(Math.floor(now / leases.bucket_ms));
            const g = grants[Number(await leases.current())]!;
            const end = g.at + g.ttl_s * 1000;
            expect(end).toBeGreaterThanOrEqual(now + retention_ms);
            expect(end).toBeLessThanOrEqual(now + retention_ms + leases.bucket_ms + 1000);
          }
          expect(grants.length).toBe(buckets.size);
          expect(leases.bucket_ms).toBe(Math.max(1_000, Math.ceil(retention_ms / RETENTION_BUCKETS)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("claims in one bucket share one grant even while it is under way; a failed grant is not kept", async () => {
    let failing = true;
    const { grants, ns } = fakeLeases(() => 0, () => failing);
    const leases = new RetentionLeases(ns, 86_400_000, () => 0);
    await expect(leases.current()).rejects.toThrow(/etcd unavailable/);
    failing = false;
    const ids = await Promise.all(Array.from({ length: 50 }, () => leases.current()));
    expect(new Set(ids).size).toBe(1);
    expect(grants.length).toBe(1);
    leases.forget();
    expect(await leases.current()).not.toBe(ids[0]);
  });
});

/** One simulated engine that runs `n` transfers one after the other, so they end in the order they started. */
async function runSequential(seed: number, n: number, retain_transactions: number, retain_trace_bytes_max: number | undefined) {
  const w = world(seed, { withLocal: false });
  const engine = new Engine({
    adapters: { xa: w.xa, log: w.log, clock: w.clock },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 200, retryDelayMs: 20, attemptsMax: 3 },
    resolver_interval_ms: RESOLVER_INTERVAL_MS,
    in_flight_max: 100,
    retain_transactions,
    ...(retain_trace_bytes_max !== undefined ? { retain_trace_bytes_max } : {}),
    record_traces: true,
  });
  engine.startResolver();
  await w.clock.run(w.clock.now_ms() + RESOLVER_INTERVAL_MS);
  const txs: string[] = [];
  for (let i = 0; i < n; i++) {
    const tx = `tx-${seed}-${i}`;
    // 2 or 3 branches, so that traces differ in size.
    const k = 2 + (i % 2);
    const branches: BranchSpec[] = SHARDS.slice(0, k).map((shard, j) => ({ shard, ops: [{ account: j * 100 + 1, delta: j === 0 ? 1 - k : 1 }] }));
    engine.submit(branches, "2pc", tx);
    txs.push(tx);
    await w.clock.run(w.clock.now_ms() + 5_000);
    expect(engine.inFlight).toBe(0);
  }
  engine.stop();
  return { engine, txs };
}

describe("retained transactions", () => {
  it("keep the longest run of the newest that fits both bounds; bytes are estimated from the coordinator's recorded steps and effects", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: 25 }), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 200_000 }), async (seed, n, count_max, bytes_max) => {
        // The same transfers with nothing dropped give every transaction's bytes.
        const all = await runSequential(seed, n, n, undefined);
        // The coordinator's own steps of the trace are its recorded steps (the others are its shards', log's and client's).
        const bytes = all.txs.map((tx) => {
          const own = all.engine.transaction(tx)!.trace!.steps.filter((st) => st.actor === "coordinator");
          return retainedBytesOf(own.length, own.reduce((n, st) => n + st.effects.length, 0));
        });
        const bounded = await runSequential(seed, n, count_max, bytes_max);
        let keep = 0;
        let sum = 0;
        while (keep < n && keep + 1 <= count_max && sum + bytes[n - 1 - keep]! <= bytes_max) sum += bytes[n - 1 - keep++]!;
        const kept = bounded.txs.filter((tx) => bounded.engine.transaction(tx) !== undefined);
        expect(kept).toEqual(bounded.txs.slice(n - keep));
        expect(bounded.engine.retained).toEqual({ transactions: keep, bytes: sum });
        // What is kept is the trace as recorded: it still replays against the role.
        for (const tx of kept) {
          const t = bounded.engine.transaction(tx)!.trace!;
          expect(replayTrace({ header: t.header, steps: [...t.steps] })).toMatchObject({ ok: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});
