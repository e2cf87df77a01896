/**
 * The speculative path's local transactions: the shard model
 * (spec/env/local.ts) against the live executor (runtime/adapters/local-mysql.ts)
 * on a real MariaDB, side by side.
 *
 * Model-based test: random sequences of local effects (apply with random ops,
 * overdrafts and duplicate keys included; tombstone; compensate; release;
 * scan) over a few transaction ids on one shard with four accounts. After
 * every step the result must be the model's, and so must the shard: balances,
 * pending credits, undo rows (state, inverse, branches) and the history rows
 * (those of every branch applied and not compensated). If they disagree,
 * either the model or the executor is wrong, and the proofs built on the
 * model do not cover the server.
 *
 * LOCAL_MBT_RUNS and LOCAL_MBT_SEED override the run count and the seed (the
 * seed is printed). Then a few examples of each executor alone, MemoryLocal
 * included.
 */
import fc from "fast-check";
import mysql, { type Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { LocalEffect, LocalResult, Op, ShardId } from "../../spec/kernel/effects.ts";
import * as local from "../../spec/env/local.ts";
import { MysqlLocal } from "../../runtime/adapters/local-mysql.ts";
import { MemoryLocal } from "../../runtime/adapters/memory-local.ts";
import { Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { DATABASE, shardTotalCents, toCents, undoRowsLeft } from "../../runtime/cluster/schema.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { modelView, realView as realViewOf, resetShard, SMALL_BALANCES } from "../support/local-shard.ts";

const RUNS = Number(process.env.LOCAL_MBT_RUNS ?? 150);
const SEED = process.env.LOCAL_MBT_SEED === undefined ? 20261121 : Number(process.env.LOCAL_MBT_SEED);
const COMMANDS_MAX = 30;

const SHARD = "shard-a";
const BALANCES = SMALL_BALANCES;
const TXS = ["t1", "t2", "t3", "t4"] as const;

const limits = { connections_max: 4, waiters_max: 16, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

let cluster: TestCluster;
let exec: MysqlLocal;
/** An executor that keeps no applied inverse: its releases and compensations always read the undo row first. */
let coldExec: MysqlLocal;
let admin: Connection;

const realView = () => realViewOf(admin);
const reset = () => resetShard(admin, BALANCES);

/** The effect through the live executor, as the LocalResult the model gives. */
async function runReal(fx: LocalEffect, cold: boolean): Promise<LocalResult> {
  switch (fx.t) {
    case "local.apply":
      return { t: fx.t, tx: fx.tx, shard: fx.shard, r: await exec.apply(fx.tx, fx.shard, fx.ops, fx.branches) };
    case "local.tombstone":
      return { t: fx.t, tx: fx.tx, shard: fx.shard, r: await exec.tombstone(fx.tx, fx.shard) };
    // Either executor: the one that applied (the inverse known: one round trip) or one that keeps none (the row read first).
    case "local.compensate":
      return { t: fx.t, tx: fx.tx, shard: fx.shard, r: await (cold ? coldExec : exec).compensate(fx.tx, fx.shard) };
    case "local.release":
      return { t: fx.t, tx: fx.tx, shard: fx.shard, r: await (cold ? coldExec : exec).release(fx.tx, fx.shard) };
    case "local.scan":
      return { t: fx.t, shard: fx.shard, r: await exec.scan(fx.shard) };
  }
}

const tx = fc.constantFrom(...TXS);
const op: fc.Arbitrary<Op> = fc.record({ account: fc.constantFrom(1, 1, 2, 2, 3, 4), delta: fc.constantFrom(-120, -60, -30, -10, -8, 0, 5, 25, 70) });
const branches = fc.subarray(["shard-b", "shard-c"]).map((xs) => [...xs, SHARD].reverse());
const effect: fc.Arbitrary<LocalEffect> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({ tx, ops: fc.array(op, { minLength: 1, maxLength: 3 }), branches })
      .map(({ tx, ops, branches }) => ({ t: "local.apply", tx, shard: SHARD, ops, branches, escrow: true, parts: "both" }) as const),
  },
  { weight: 2, arbitrary: tx.map((tx) => ({ t: "local.tombstone", tx, shard: SHARD }) as const) },
  { weight: 3, arbitrary: tx.map((tx) => ({ t: "local.compensate", tx, shard: SHARD, retire: true }) as const) },
  { weight: 3, arbitrary: tx.map((tx) => ({ t: "local.release", tx, shard: SHARD, row: "retire" }) as const) },
  { weight: 1, arbitrary: fc.constant({ t: "local.scan", shard: SHARD } as const) },
);

const coverage = new Map<string, number>();
const count = (k: string) => coverage.set(k, (coverage.get(k) ?? 0) + 1);
const outcome = (r: LocalResult): string => {
  const x = r.r as { ok: boolean; err?: string; applied?: boolean; existing?: string; rows?: unknown[] };
  if (!x.ok) return `${r.t} ${x.err}${x.existing !== undefined ? ` ${x.existing}` : ""}`;
  if (x.applied !== undefined) return `${r.t} applied=${x.applied}`;
  if (x.rows !== undefined) return `${r.t} rows=${Math.min(x.rows.length, 2)}${x.rows.length > 2 ? "+" : ""}`;
  return `${r.t} ok`;
};

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 4, balanceCents: 100, lockWaitTimeoutS: 1 });
  const s = cluster.shards[0]!;
  exec = new MysqlLocal({ shards: [s.serverAddress()], limits });
  coldExec = new MysqlLocal({ shards: [s.serverAddress()], limits, appliedInversesMax: 0 });
  admin = await s.connect();
});

afterAll(async () => {
  exec?.close();
  coldExec?.close();
  await cluster?.stop();
});

describe("local shard model against a real MariaDB", () => {
  it(`agrees on ${RUNS} random effect sequences`, { timeout: 120_000 }, async () => {
    const started = Date.now();
    console.log(`local model-based test: seed ${SEED} (LOCAL_MBT_SEED), ${RUNS} runs (LOCAL_MBT_RUNS)`);
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(effect, fc.boolean()), { minLength: 1, maxLength: COMMANDS_MAX, size: "max" }), async (steps_) => {
        await reset();
        let s = local.initLocal(BALANCES);
        expect(await realView()).toEqual(modelView(s));
        for (const [i, [fx, cold]] of steps_.entries()) {
          const m = local.execute(s, fx);
          const real = await runReal(fx, cold);
          const where = `step ${i} ${JSON.stringify(fx)}`;
          expect(real, where).toEqual(m.r);
          s = m.s;
          expect(await realView(), where).toEqual(modelView(s));
          count(outcome(real) + (fx.t === "local.release" || fx.t === "local.compensate" ? (cold ? " (executor keeping no inverse)" : " (the applying executor)") : ""));
          steps++;
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    const seen = [...coverage].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `  ${k}: ${n}`);
    console.log(`local model-based test: ${RUNS} runs, ${steps} steps in ${((Date.now() - started) / 1000).toFixed(1)} s\n${seen.join("\n")}`);
  });
});

describe("MysqlLocal examples", () => {
  it("a duplicate apply is DUPLICATE and changes nothing", async () => {
    await reset();
    expect(await exec.apply("d1", SHARD, [{ account: 1, delta: -30 }, { account: 2, delta: 30 }], [SHARD])).toEqual({ ok: true });
    const before = await realView();
    expect(await exec.apply("d1", SHARD, [{ account: 1, delta: -30 }, { account: 2, delta: 30 }], [SHARD])).toEqual({ ok: false, err: "DUPLICATE" });
    expect(await realView()).toEqual(before);
    expect(before.accounts).toEqual([[1, 70, 0], [2, 50, 30], [3, 10, 0], [4, 0, 0]]);
    expect(await shardTotalCents(admin)).toBe(160n);
    expect(await undoRowsLeft(admin)).toBe(1);
  });

  it("an overdraft is INSUFFICIENT_FUNDS and leaves no undo row, pending credit or history", async () => {
    await reset();
    expect(await exec.apply("o1", SHARD, [{ account: 2, delta: 40 }, { account: 3, delta: -11 }], [SHARD])).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    expect(await realView()).toEqual(modelView(local.initLocal(BALANCES)));
    // The key is still free.
    expect(await exec.tombstone("o1", SHARD)).toEqual({ ok: true });
  });

  it("apply then tombstone: the tombstone hears DUPLICATE undo; tombstone then apply: the apply is DUPLICATE and moves nothing", async () => {
    await reset();
    expect(await exec.apply("r1", SHARD, [{ account: 1, delta: -10 }], [SHARD])).toEqual({ ok: true });
    expect(await exec.tombstone("r1", SHARD)).toEqual({ ok: false, err: "DUPLICATE", existing: "undo" });
    expect(await exec.tombstone("r2", SHARD)).toEqual({ ok: true });
    expect(await exec.apply("r2", SHARD, [{ account: 1, delta: -10 }], [SHARD])).toEqual({ ok: false, err: "DUPLICATE" });
    expect(await exec.tombstone("r2", SHARD)).toEqual({ ok: false, err: "DUPLICATE", existing: "tombstone" });
    expect((await realView()).accounts[0]).toEqual([1, 90, 0]);
  });

  it("apply and tombstone of one branch at the same time: exactly one wins, and the loser names the winner", async () => {
    for (let i = 0; i < 20; i++) {
      await reset();
      const [a, t] = await Promise.all([exec.apply(`c${i}`, SHARD, [{ account: 1, delta: -10 }, { account: 2, delta: 10 }], [SHARD]), exec.tombstone(`c${i}`, SHARD)]);
      const v = await realView();
      if (a.ok) {
        expect(t).toEqual({ ok: false, err: "DUPLICATE", existing: "undo" });
        expect(v.accounts[0]).toEqual([1, 90, 0]);
        expect(v.undo.map((r) => r.state)).toEqual(["undo"]);
      } else {
        expect(a).toEqual({ ok: false, err: "DUPLICATE" });
        expect(t).toEqual({ ok: true });
        expect(v.accounts[0]).toEqual([1, 100, 0]);
        expect(v.undo.map((r) => r.state)).toEqual(["tombstone"]);
      }
    }
  });

  it("compensate twice (also concurrently) applies once, removes the history, and a later apply of the branch is DUPLICATE", async () => {
    await reset();
    expect(await exec.apply("k1", SHARD, [{ account: 1, delta: -40 }, { account: 4, delta: 40 }], [SHARD, "shard-b"])).toEqual({ ok: true });
    expect((await realView()).history).toEqual([["k1", 1, -40], ["k1", 4, 40]]);
    const both = await Promise.all([exec.compensate("k1", SHARD), exec.compensate("k1", SHARD)]);
    expect(both.map((r) => (r.ok ? r.applied : r.err)).sort()).toEqual([false, true]);
    expect(await exec.compensate("k1", SHARD)).toEqual({ ok: true, applied: false });
    expect(await exec.release("k1", SHARD)).toEqual({ ok: true, applied: false });
    const v = await realView();
    expect(v.accounts).toEqual(modelView(local.initLocal(BALANCES)).accounts);
    expect(v.history).toEqual([]);
    expect(v.undo.map((r) => r.state)).toEqual(["compensated"]);
    expect(await exec.apply("k1", SHARD, [{ account: 1, delta: -40 }], [SHARD])).toEqual({ ok: false, err: "DUPLICATE" });
    expect(await exec.scan(SHARD)).toEqual({ ok: true, rows: [] });
    expect(await undoRowsLeft(admin)).toBe(0);
  });

  it("release makes the credit spendable; before it, the credit cannot be spent", async () => {
    await reset();
    expect(await exec.apply("p1", SHARD, [{ account: 4, delta: 25 }], ["shard-b", SHARD])).toEqual({ ok: true });
    expect(await exec.scan(SHARD)).toEqual({ ok: true, rows: [{ tx: "p1", branch: SHARD, state: "undo", branches: [SHARD, "shard-b"] }] });
    expect(await exec.apply("p2", SHARD, [{ account: 4, delta: -25 }], [SHARD])).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    expect(await shardTotalCents(admin)).toBe(185n);
    expect(await exec.release("p1", SHARD)).toEqual({ ok: true, applied: true });
    expect(await exec.release("p1", SHARD)).toEqual({ ok: true, applied: false });
    expect(await exec.compensate("p1", SHARD)).toEqual({ ok: true, applied: false });
    expect(await shardTotalCents(admin)).toBe(185n);
    expect(await exec.apply("p3", SHARD, [{ account: 4, delta: -25 }], [SHARD])).toEqual({ ok: true });
    const [rows] = await admin.query("SELECT balance FROM accounts WHERE id = 4");
    expect(toCents((rows as { balance: unknown }[])[0]!.balance)).toBe(0n);
    // The released branch keeps its history (its transfer committed).
    expect((await realView()).history).toEqual([["p1", 4, 25], ["p3", 4, -25]]);
  });

  it("applied inverses are kept up to the bound, oldest out first; a release finds the row by reading it when its inverse is gone", async () => {
    await reset();
    const small = new MysqlLocal({ shards: [cluster.shards[0]!.serverAddress()], limits, appliedInversesMax: 2 });
    try {
      expect(await small.apply("b1", SHARD, [{ account: 1, delta: -10 }, { account: 2, delta: 10 }], [SHARD, "shard-b"])).toEqual({ ok: true });
      expect(await small.apply("b2", SHARD, [{ account: 3, delta: 5 }], [SHARD, "shard-b"])).toEqual({ ok: true });
      expect(await small.apply("b3", SHARD, [{ account: 4, delta: 7 }], [SHARD, "shard-b"])).toEqual({ ok: true });
      expect(small.appliedInverses()).toBe(2);
      // b1's inverse was dropped (oldest): read from its row; b3's is known. Both move the credits out of pending.
      expect(await small.release("b1", SHARD)).toEqual({ ok: true, applied: true });
      expect(await small.release("b3", SHARD)).toEqual({ ok: true, applied: true });
      expect(small.appliedInverses()).toBe(1);
      expect(await small.compensate("b2", SHARD)).toEqual({ ok: true, applied: true });
      expect(small.appliedInverses()).toBe(0);
      expect(await small.release("b3", SHARD)).toEqual({ ok: true, applied: false });
      const v = await realView();
      expect(v.accounts).toEqual([[1, 90, 0], [2, 60, 0], [3, 10, 0], [4, 7, 0]]);
      expect(v.undo.map((r) => r.state)).toEqual(["released", "compensated", "released"]);
      expect(await shardTotalCents(admin)).toBe(167n);
    } finally {
      small.close();
    }
  });

  it("a row locked by another transaction: the statement gives up within the lock wait timeout as UNAVAILABLE, and rolled back", async () => {
    await reset();
    const holder = await mysql.createConnection(cluster.shards[0]!.connectionOptions());
    try {
      await holder.query("START TRANSACTION");
      await holder.query("SELECT balance FROM accounts WHERE id = 1 FOR UPDATE");
      const t0 = Date.now();
      expect(await exec.apply("l1", SHARD, [{ account: 1, delta: -10 }], [SHARD])).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(Date.now() - t0).toBeLessThan(3_000);
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    // 1205 rolled the whole transaction back: the undo row is gone and the key free.
    expect(await realView()).toEqual(modelView(local.initLocal(BALANCES)));
    expect(exec.pool(SHARD).stats().in_use).toBe(0);
  });

  it("concurrent branches on shared accounts, then concurrent releases and compensations: money conserved, no undo row left, history of released branches only", async () => {
    await reset();
    await admin.query("UPDATE accounts SET balance = 1000");
    const rng = new Rng(7);
    const N = 60;
    const branches = Array.from({ length: N }, (_, i) => {
      const from = rng.int(1, 4);
      const to = rng.pick([1, 2, 3, 4].filter((a) => a !== from));
      const cents = rng.int(1, 50);
      return { tx: `s${i}`, ops: [{ account: from, delta: -cents }, { account: to, delta: cents }] };
    });
    // A pool as wide as the load, so that what fails is the database's doing (deadlocks, lock waits), not the pool's bound.
    const s = cluster.shards[0]!;
    const exec = new MysqlLocal({
      shards: [s.serverAddress()],
      limits: { ...limits, connections_max: 24, waiters_max: 2 * N },
    });
    onTestFinished(() => exec.close());
    const applied = await Promise.all(branches.map((b) => exec.apply(b.tx, SHARD, b.ops, [SHARD])));
    const unavailable = applied.filter((r) => !r.ok && r.err === "UNAVAILABLE").length;
    const ok = branches.filter((_, i) => applied[i]!.ok);
    const finish = await Promise.all(ok.map((b, i) => (i % 2 === 0 ? exec.release(b.tx, SHARD) : exec.compensate(b.tx, SHARD))));
    // A deadlock or lock wait is UNAVAILABLE: finish those one at a time, as recovery would.
    const retried = finish.filter((r) => !r.ok).length;
    for (const [i, b] of ok.entries()) {
      if (finish[i]!.ok) continue;
      expect(await (i % 2 === 0 ? exec.release(b.tx, SHARD) : exec.compensate(b.tx, SHARD))).toEqual({ ok: true, applied: true });
    }
    // Applies that answered UNAVAILABLE may have committed (they did not here, but recovery would find them by scan).
    const left = await exec.scan(SHARD);
    for (const r of left.ok ? left.rows : []) expect(await exec.compensate(r.tx, SHARD)).toEqual({ ok: true, applied: true });
    expect(await shardTotalCents(admin)).toBe(4000n);
    expect(await undoRowsLeft(admin)).toBe(0);
    const [p] = await admin.query("SELECT COALESCE(SUM(cents), 0) AS n FROM speculative_pending");
    expect(toCents((p as { n: unknown }[])[0]!.n)).toBe(0n);
    const v = await realView();
    const released = new Set(ok.filter((_, i) => i % 2 === 0).map((b) => b.tx));
    expect(new Set(v.history.map(([x]) => x))).toEqual(released);
    console.log(`concurrent: ${ok.length}/${N} applied, ${unavailable} apply and ${retried} finish UNAVAILABLE (deadlock or lock wait)`);
  });

  it("a shard that does not answer is UNAVAILABLE, never a rejection", async () => {
    const dead = new MysqlLocal({
      shards: [{ name: "shard-z", host: "127.0.0.1", port: 1, user: "root", database: DATABASE }],
      limits: { ...limits, connect_timeout_ms: 200, acquire_timeout_ms: 200 },
    });
    try {
      expect(await dead.apply("u1", "shard-z", [{ account: 1, delta: -1 }], ["shard-z"])).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(await dead.tombstone("u1", "shard-z")).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(await dead.compensate("u1", "shard-z")).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(await dead.release("u1", "shard-z")).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(await dead.scan("shard-z")).toEqual({ ok: false, err: "UNAVAILABLE" });
      expect(await exec.scan("shard-unknown")).toEqual({ ok: false, err: "UNAVAILABLE" });
    } finally {
      dead.close();
    }
  });
});

describe("MemoryLocal", () => {
  const setup = (seed: number) => {
    const clock = new SimClock();
    const mem = new MemoryLocal(new Map<ShardId, [number, number][]>([[SHARD, BALANCES.map(([a, b]) => [a, b])]]), clock, new Rng(seed));
    return { clock, mem };
  };

  it("answers as the model, after a virtual latency", async () => {
    const { clock, mem } = setup(1);
    const a = mem.apply("m1", SHARD, [{ account: 1, delta: -30 }, { account: 2, delta: 30 }], [SHARD]);
    await clock.run();
    expect(await a).toEqual({ ok: true });
    expect(clock.now_ms()).toBeGreaterThan(0);
    const dup = mem.apply("m1", SHARD, [{ account: 1, delta: -30 }], [SHARD]);
    const t = mem.tombstone("m1", SHARD);
    const r = mem.release("m1", SHARD);
    await clock.run();
    expect(await dup).toEqual({ ok: false, err: "DUPLICATE" });
    // Tombstone and release race on the virtual clock: the tombstone sees the row before or after its release.
    expect(["undo", "released"]).toContain(((await t) as { existing?: string }).existing);
    expect(await r).toEqual({ ok: true, applied: true });
    expect(mem.state.get(SHARD)!.accounts).toEqual([[1, 70, 0], [2, 80, 0], [3, 10, 0], [4, 0, 0]]);
    expect(mem.total()).toBe(160n);
    expect(mem.undoLeft()).toEqual([]);
  });

  it("a crash: statements in flight answer UNAVAILABLE, committed or not; nothing is lost; the total is conserved", async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const { clock, mem } = setup(seed);
      const ps = [
        mem.apply("x1", SHARD, [{ account: 1, delta: -30 }, { account: 4, delta: 30 }], [SHARD]),
        mem.apply("x2", SHARD, [{ account: 2, delta: -20 }, { account: 3, delta: 20 }], [SHARD]),
        mem.tombstone("x3", SHARD),
      ];
      mem.crashShard(SHARD);
      const during = mem.scan(SHARD);
      await clock.run();
      for (const p of ps) expect(await p).toMatchObject({ ok: false, err: "UNAVAILABLE" });
      expect(await during).toEqual({ ok: false, err: "UNAVAILABLE" });
      mem.restartShard(SHARD);
      const s = mem.scan(SHARD);
      await clock.run();
      const rows = (await s) as unknown as { ok: true; rows: { tx: string }[] };
      expect(rows.ok).toBe(true);
      expect(mem.total()).toBe(160n);
      // What committed before the crash is there to compensate.
      const cs = rows.rows.map((r) => mem.compensate(r.tx, SHARD));
      await clock.run();
      for (const c of cs) expect(await c).toEqual({ ok: true, applied: true });
      expect(mem.state.get(SHARD)!.accounts).toEqual(BALANCES.map(([a, b]) => [a, b, 0]));
    }
  });
});
