/**
 * Group commit of the speculative path's deferred work: releases and
 * compensations sent to one shard in the same turn of the event loop share
 * a round trip (runtime/adapters/local-mysql.ts `retireBatch`), each still its
 * own local transaction. On a real MariaDB, against the shard model
 * (spec/env/local.ts):
 *
 * - property: after random applies, random releases and compensations
 *   (duplicates, conflicting ones, branches never applied) sent all at once
 *   with a random batch_max give the answers and the shard the model gives
 *   when it runs them one at a time: in the order they were asked for when
 *   they fit one batch, and otherwise in the order their answers imply (the
 *   one that answered applied=true retired its branch);
 * - a retire that fails inside a batch (a lock wait timeout) is UNAVAILABLE
 *   and rolled back, those before it keep their answers, those after it are
 *   sent again;
 * - a batch whose connection is killed answers UNAVAILABLE for what it
 *   cannot vouch for, and sending those again retires every branch exactly
 *   once.
 */
import fc from "fast-check";
import mysql, { type Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalEffect, Op } from "../../spec/kernel/effects.ts";
import * as local from "../../spec/env/local.ts";
import { MysqlLocal, RETIRE_BATCH_MAX } from "../../runtime/adapters/local-mysql.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { modelView, realView as realViewOf, resetShard, SMALL_BALANCES } from "../support/local-shard.ts";

const RUNS = Number(process.env.LOCAL_BATCH_RUNS ?? 60);
const SEED = process.env.LOCAL_BATCH_SEED === undefined ? 20261207 : Number(process.env.LOCAL_BATCH_SEED);
const SHARD = "shard-a";
const BALANCES = SMALL_BALANCES;
const TXS = ["t1", "t2", "t3", "t4", "t5", "t6"] as const;
const limits = { connections_max: 6, waiters_max: 64, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

let cluster: TestCluster;
let admin: Connection;

const realView = () => realViewOf(admin);
const reset = () => resetShard(admin, BALANCES);

type Retire = { kind: "release" | "compensate"; tx: string };
const toEffect = (r: Retire): LocalEffect =>
  r.kind === "release" ? { t: "local.release", tx: r.tx, shard: SHARD, row: "retire" } : { t: "local.compensate", tx: r.tx, shard: SHARD, retire: true };
const send = (exec: MysqlLocal, r: Retire) => (r.kind === "release" ? exec.release(r.tx, SHARD) : exec.compensate(r.tx, SHARD));

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 4, balanceCents: 100, lockWaitTimeoutS: 1 });
  admin = await cluster.shards[0]!.connect();
});

afterAll(async () => {
  await admin?.end();
  await cluster?.stop();
});

const op: fc.Arbitrary<Op> = fc.record({ account: fc.constantFrom(1, 2, 3, 4), delta: fc.constantFrom(-60, -10, -8, 5, 25, 70) });
const scenario = fc.record({
  applies: fc.array(fc.record({ tx: fc.constantFrom(...TXS), ops: fc.array(op, { minLength: 1, maxLength: 3 }) }), { minLength: 1, maxLength: 6 }),
  retires: fc.array(fc.record({ kind: fc.constantFrom("release" as const, "compensate" as const), tx: fc.constantFrom(...TXS, "never") }), { minLength: 1, maxLength: 14 }),
  batchMax: fc.integer({ min: 2, max: 8 }),
});

describe("retires batched per shard, against the model", () => {
  it(`agree with the model run one at a time (${RUNS} random scenarios)`, { timeout: 120_000 }, async () => {
    const coverage = new Map<string, number>();
    const count = (k: string) => coverage.set(k, (coverage.get(k) ?? 0) + 1);
    console.log(`local batch test: seed ${SEED} (LOCAL_BATCH_SEED), ${RUNS} runs (LOCAL_BATCH_RUNS)`);
    await fc.assert(
      fc.asyncProperty(scenario, async ({ applies, retires, batchMax }) => {
        await reset();
        const exec = new MysqlLocal({ shards: [cluster.shards[0]!.serverAddress()], limits, retireBatching: { batch_max: batchMax, batch_wait_ms: 0 } });
        try {
          let s = local.initLocal(BALANCES);
          for (const a of applies) {
            const fx: LocalEffect = { t: "local.apply", tx: a.tx, shard: SHARD, ops: a.ops, branches: [SHARD, "shard-b"], escrow: true, parts: "both" };
            const m = local.execute(s, fx);
            expect(await exec.apply(a.tx, SHARD, a.ops, [SHARD, "shard-b"])).toEqual(m.r.r);
            s = m.s;
          }
          // All at once: the same turn of the event loop, so they batch.
          const answers = await Promise.all(retires.map((r) => send(exec, r)));
          const stats = exec.retireBatchStats();
          expect(stats.requeued).toBe(0);
          if (stats.batches < stats.retires) count("shared a round trip");
          if (retires.length <= batchMax) {
            // One batch at most: run one after the other, in the order asked.
            let t = s;
            for (const [i, r] of retires.entries()) {
              const m = local.execute(t, toEffect(r));
              expect(answers[i], `retire ${i} ${JSON.stringify(r)}`).toEqual(m.r.r);
              t = m.s;
            }
            count("one batch: answers in order");
            expect(await realView()).toEqual(modelView(t));
          } else {
            // Several batches, on several connections: the one that answered applied=true retired its branch first.
            const winners = retires.map((r, i) => ({ r, a: answers[i]! })).filter((x) => x.a.ok && x.a.applied);
            const losers = retires.map((r, i) => ({ r, a: answers[i]! })).filter((x) => !(x.a.ok && x.a.applied));
            let t = s;
            for (const w of winners) {
              const m = local.execute(t, toEffect(w.r));
              expect(m.r.r, `winner ${JSON.stringify(w.r)}`).toEqual({ ok: true, applied: true });
              t = m.s;
            }
            for (const l of losers) {
              const m = local.execute(t, toEffect(l.r));
              expect(l.a, `loser ${JSON.stringify(l.r)}`).toEqual(m.r.r);
              t = m.s;
            }
            count("several batches: answers imply an order");
            expect(await realView()).toEqual(modelView(t));
          }
          for (const a of answers) count(a.ok ? `applied=${a.applied}` : `err ${a.err}`);
        } finally {
          exec.close();
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.log(`local batch test coverage:\n${[...coverage].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n")}`);
    for (const k of ["shared a round trip", "one batch: answers in order", "several batches: answers imply an order", "applied=true", "applied=false"]) {
      expect(coverage.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });

  it("batch_max is checked", () => {
    const shards = [cluster.shards[0]!.serverAddress()];
    expect(() => new MysqlLocal({ shards, limits, retireBatching: { batch_max: 0, batch_wait_ms: 0 } })).toThrow(/batch_max 0/);
    expect(() => new MysqlLocal({ shards, limits, retireBatching: { batch_max: RETIRE_BATCH_MAX + 1, batch_wait_ms: 0 } })).toThrow(/batch_max/);
    expect(() => new MysqlLocal({ shards, limits, retireBatching: { batch_max: 4, batch_wait_ms: -1 } })).toThrow(/batch_wait_ms/);
  });

  it("batch_wait_ms gathers retires asked for in different turns into one round trip; batch_max 1 sends each alone", async () => {
    for (const [batching, batches] of [
      [{ batch_max: 8, batch_wait_ms: 50 }, 1],
      [{ batch_max: 1, batch_wait_ms: 0 }, 0],
    ] as const) {
      await reset();
      const exec = new MysqlLocal({ shards: [cluster.shards[0]!.serverAddress()], limits, retireBatching: batching });
      try {
        for (const tx of ["w1", "w2", "w3"]) expect(await exec.apply(tx, SHARD, [{ account: 1, delta: -10 }, { account: 4, delta: 10 }], [SHARD])).toEqual({ ok: true });
        const p1 = exec.release("w1", SHARD);
        await new Promise((r) => setImmediate(r));
        const p2 = exec.compensate("w2", SHARD);
        await new Promise((r) => setTimeout(r, 5));
        const p3 = exec.release("w3", SHARD);
        expect(await Promise.all([p1, p2, p3])).toEqual([
          { ok: true, applied: true },
          { ok: true, applied: true },
          { ok: true, applied: true },
        ]);
        expect(exec.retireBatchStats().batches).toBe(batches);
        expect((await realView()).accounts).toEqual([[1, 80, 0], [2, 50, 0], [3, 10, 0], [4, 20, 0]]);
      } finally {
        exec.close();
      }
    }
  });
});

describe("a batch that fails part way", () => {
  const setup = async (n: number) => {
    await reset();
    await admin.query("UPDATE accounts SET balance = 1000");
    const exec = new MysqlLocal({ shards: [cluster.shards[0]!.serverAddress()], limits, retireBatching: { batch_max: 8, batch_wait_ms: 0 } });
    // Branch i moves 10 cents from account 1 to account 2, except branch 2, which credits account 3.
    for (let i = 0; i < n; i++) expect(await exec.apply(`f${i}`, SHARD, [{ account: 1, delta: -10 }, { account: i === 2 ? 3 : 2, delta: 10 }], [SHARD, "shard-b"])).toEqual({ ok: true });
    return exec;
  };

  it("a lock wait timeout in the third retire: the first two keep their answers, the third is UNAVAILABLE and rolled back, the rest are sent again", { timeout: 30_000 }, async () => {
    const exec = await setup(5);
    const holder = await mysql.createConnection(cluster.shards[0]!.connectionOptions());
    try {
      // Branch 2's release moves its pending credit on account 3: hold that row.
      await holder.query("START TRANSACTION");
      await holder.query("SELECT cents FROM speculative_pending WHERE account_id = 3 FOR UPDATE");
      const answers = await Promise.all([0, 1, 2, 3, 4].map((i) => exec.release(`f${i}`, SHARD)));
      await holder.query("ROLLBACK");
      expect(answers).toEqual([
        { ok: true, applied: true },
        { ok: true, applied: true },
        { ok: false, err: "UNAVAILABLE" },
        { ok: true, applied: true },
        { ok: true, applied: true },
      ]);
      expect(exec.retireBatchStats()).toEqual({ batches: 2, retires: 7, requeued: 2 });
      const v = await realView();
      expect(v.undo.map((r) => ({ tx: r.tx, state: r.state }))).toEqual([0, 1, 2, 3, 4].map((i) => ({ tx: `f${i}`, state: i === 2 ? "undo" : "released" })));
      // Account 3's credit is still pending; the others moved into the balances.
      expect(v.accounts).toEqual([[1, 950, 0], [2, 1040, 0], [3, 1000, 10], [4, 1000, 0]]);
      expect(await exec.release("f2", SHARD)).toEqual({ ok: true, applied: true });
      expect(exec.pool(SHARD).stats().in_use).toBe(0);
    } finally {
      await holder.end();
      exec.close();
    }
  });

  it("the batch's connection killed while it waits: what it cannot vouch for is UNAVAILABLE; sent again, each branch is retired exactly once", { timeout: 30_000 }, async () => {
    const exec = await setup(5);
    const holder = await mysql.createConnection(cluster.shards[0]!.connectionOptions());
    try {
      await holder.query("START TRANSACTION");
      await holder.query("SELECT cents FROM speculative_pending WHERE account_id = 3 FOR UPDATE");
      const pending = Promise.all([0, 1, 2, 3, 4].map((i) => exec.compensate(`f${i}`, SHARD)));
      // The batch waits on branch 2's row lock: kill its connection.
      let killed = false;
      for (let i = 0; i < 50 && !killed; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const [rows] = await holder.query("SELECT id FROM information_schema.PROCESSLIST WHERE INFO LIKE '%speculative_pending%' AND ID <> CONNECTION_ID()");
        for (const r of rows as { id: number }[]) {
          await admin.query(`KILL CONNECTION ${Number(r.id)}`);
          killed = true;
        }
      }
      expect(killed).toBe(true);
      const answers = await pending;
      await holder.query("ROLLBACK");
      expect(answers.every((a) => !a.ok && a.err === "UNAVAILABLE")).toBe(true);
      // Sent again (as the resolver would): the first two had committed, the rest had not.
      const again = await Promise.all([0, 1, 2, 3, 4].map((i) => exec.compensate(`f${i}`, SHARD)));
      expect(again).toEqual([false, false, true, true, true].map((applied) => ({ ok: true, applied })));
      const v = await realView();
      expect(v.accounts).toEqual([[1, 1000, 0], [2, 1000, 0], [3, 1000, 0], [4, 1000, 0]]);
      expect(v.undo.every((r) => r.state === "compensated")).toBe(true);
      expect(v.history).toEqual([]);
    } finally {
      await holder.end();
      exec.close();
    }
  });
});
