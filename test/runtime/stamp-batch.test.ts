/**
 * Group commit of the commit-timestamp stamps of two-phase branches
 * (runtime/adapters/xa-mysql.ts `commitStamped`, two-phase form, and
 * `stampBatch`), on a real MariaDB:
 *
 * - property: any number of branches committed at once, each with its own
 *   timestamp, with any batch_max: each transaction's rows carry its own
 *   timestamp, every answer is {ok, stamped}; the stamps of the commits that
 *   found STAMP_BATCH_FROM - 1 others under way went in batches, which
 *   shared UPDATEs, the others inline (batch_max 1: none batched, every row
 *   stamped all the same);
 * - a batch whose UPDATE fails (a history row locked past the lock wait
 *   timeout) stamps none of its transactions and answers stamped: false to
 *   each, the commits themselves ok; stamped alone afterwards (as
 *   runtime/timestamps.ts does on stamped: false), every row carries its
 *   timestamp.
 */
import fc from "fast-check";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAMP_BATCH_FROM, XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

const limits = { connections_max: 24, waiters_max: 64, acquire_timeout_ms: 5_000, connect_timeout_ms: 2_000, statement_timeout_ms: 10_000 };
const SHARD = "shard-a";
let cluster: TestCluster;
let seq = 0;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 64, balanceCents: 1_000_000, lockWaitTimeoutS: 1 });
});

afterAll(async () => {
  await cluster?.stop();
});

/** tx -> the commit_ts values of its history rows (null: not stamped). */
async function stampsOf(txs: readonly string[]): Promise<Map<string, Array<string | null>>> {
  const c = await cluster.shards[0]!.connect();
  try {
    const [rows] = await c.query("SELECT xid, commit_ts FROM history WHERE xid IN (?) ORDER BY xid, account_id", [txs]);
    const m = new Map<string, Array<string | null>>();
    for (const r of rows as Array<{ xid: string; commit_ts: unknown }>) m.set(r.xid, [...(m.get(r.xid) ?? []), r.commit_ts === null ? null : String(r.commit_ts)]);
    return m;
  } finally {
    await c.end();
  }
}

/** Executes and prepares one branch per transaction (accounts of its own, two ops each). */
async function prepared(xa: XaMysql, n: number): Promise<string[]> {
  const first = cluster.shards[0]!.firstAccountId;
  const txs = Array.from({ length: n }, () => `sb${++seq}`);
  await Promise.all(
    txs.map(async (tx, i) => {
      const a = first + 2 * i;
      expect(await xa.exec(tx, SHARD, [{ account: a, delta: -1 }, { account: a + 1, delta: 1 }], true)).toEqual({ ok: true });
      expect(await xa.prepare(tx, SHARD)).toEqual({ ok: true });
    }),
  );
  return txs;
}

describe("stamps of two-phase branches, batched per shard", () => {
  it("each transaction's rows carry its own timestamp, whatever the batch size (property)", { timeout: 120_000 }, async () => {
    let shared = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 8 }), async (n, batchMax) => {
        const xa = new XaMysql({ shards: [cluster.shards[0]!.serverAddress()], limits, stampBatching: { batch_max: batchMax, batch_wait_ms: 0 } });
        try {
          const txs = await prepared(xa, n);
          const ts = txs.map((_, i) => 1_000_000n + BigInt(seq * 100 + i));
          const answers = await Promise.all(txs.map((tx, i) => xa.commitStamped(tx, SHARD, false, ts[i]!)));
          expect(answers).toEqual(txs.map(() => ({ r: { ok: true }, stamped: true })));
          const got = await stampsOf(txs);
          txs.forEach((tx, i) => expect(got.get(tx), tx).toEqual([String(ts[i]), String(ts[i])]));
          const stats = xa.stampBatchStats();
          if (batchMax === 1) expect(stats).toEqual({ batches: 0, stamps: 0 });
          else {
            // Asked for in one turn: the first STAMP_BATCH_FROM - 1 see fewer commits under way and stamp inline.
            expect(stats.stamps).toBe(Math.max(0, n - (STAMP_BATCH_FROM - 1)));
            expect(stats.batches).toBeLessThanOrEqual(n);
            if (stats.batches < stats.stamps) shared++;
          }
        } finally {
          xa.close();
        }
      }),
      { numRuns: 40, seed: 20261207 },
    );
    // Stamps asked for together did share UPDATEs.
    expect(shared).toBeGreaterThan(0);
  });

  it("a batch whose UPDATE fails stamps none of its transactions and answers false to each; stamped alone afterwards", { timeout: 30_000 }, async () => {
    const xa = new XaMysql({ shards: [cluster.shards[0]!.serverAddress()], limits, stampBatching: { batch_max: 8, batch_wait_ms: 0 } });
    const holder = await mysql.createConnection(cluster.shards[0]!.connectionOptions());
    try {
      const txs = await prepared(xa, 4);
      const ts = txs.map((_, i) => 2_000_000n + BigInt(i));
      for (const tx of txs) expect(await xa.commit(tx, SHARD)).toEqual({ ok: true });
      // One of the four's history rows held past the lock wait timeout (1 s): the batch's one UPDATE fails.
      await holder.query("START TRANSACTION");
      await holder.query("SELECT * FROM history WHERE xid = ? FOR UPDATE", [txs[2]]);
      const answers = await Promise.all(txs.map((tx, i) => xa.stampBatched(tx, SHARD, ts[i]!)));
      await holder.query("ROLLBACK");
      expect(answers).toEqual([false, false, false, false]);
      expect(xa.stampBatchStats()).toEqual({ batches: 1, stamps: 4 });
      const none = await stampsOf(txs);
      for (const tx of txs) expect(none.get(tx), tx).toEqual([null, null]);
      // Stamped alone, as runtime/timestamps.ts does on a false answer.
      for (const [i, tx] of txs.entries()) expect(await xa.stampHistory(tx, SHARD, ts[i]!)).toBe(true);
      const all = await stampsOf(txs);
      txs.forEach((tx, i) => expect(all.get(tx)).toEqual([String(ts[i]), String(ts[i])]));
      expect(xa.pool(SHARD).stats().in_use).toBe(0);
    } finally {
      await holder.end();
      xa.close();
    }
  });
});
