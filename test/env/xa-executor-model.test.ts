/**
 * The XA executor: its model (spec/env/executor.ts over spec/env/xa.ts) against the live executor
 * (runtime/adapters/xa-mysql.ts) on a real MariaDB, side by side, effect by effect.
 *
 * Model-based test: random sequences of the effects a coordinator and a resolver send for three transactions on
 * one shard (exec, with or without `onePhase`; prepare; commit, one-phase or not, plain or with the commit
 * timestamp's stamp; rollback; recover; kill of the branch's connection), in the orders the roles may send them
 * (each step takes one of the effects allowed next for its transaction).
 * Each transaction has accounts of its own, so no effect waits for a lock and every step has one outcome. After
 * every step the answer must be the model's, and so must the shard: committed balances, committed history rows,
 * prepared branches. If they disagree, the model the protocols are checked against does not describe the server.
 *
 * XA_EXEC_MBT_RUNS and XA_EXEC_MBT_SEED override the run count and the seed.
 */
import fc from "fast-check";
import type { Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Op, Result, ShardId, TxId, XaResult } from "../../spec/kernel/effects.ts";
import { connOf, executeXa, type XaEffect } from "../../spec/env/executor.ts";
import * as xa from "../../spec/env/xa.ts";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { startTestCluster, xaRecover, type TestCluster } from "../support/cluster.ts";

const RUNS = Number(process.env.XA_EXEC_MBT_RUNS ?? 200);
const SEED = process.env.XA_EXEC_MBT_SEED === undefined ? 20261207 : Number(process.env.XA_EXEC_MBT_SEED);
const STEPS_MAX = 16;
const SHARD: ShardId = "shard-a";
/** Two accounts per transaction, small balances so that overdrafts happen. */
const TXS = 3;
const BALANCE = 50;
const ACCOUNTS = Array.from({ length: TXS * 2 }, (_, i) => i + 1);

const limits = { connections_max: 8, waiters_max: 16, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };

let cluster: TestCluster;
let exec: XaMysql;
let admin: Connection;

type Kind = "exec" | "prepare" | "commit" | "commitStamped" | "rollback" | "recover" | "kill";
interface Plan {
  readonly onePhase: boolean;
  readonly deltas: readonly [number, number];
}
/** A transaction, and which of the steps allowed for it next (modulo their number) is taken. */
interface Step {
  readonly tx: number;
  readonly pick: number;
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  onePhase: fc.boolean(),
  deltas: fc.tuple(fc.constantFrom(-60, -20, -5, 5, 30), fc.constantFrom(-20, -5, 5, 30)),
});
const stepArb: fc.Arbitrary<Step> = fc.record({ tx: fc.integer({ min: 0, max: TXS - 1 }), pick: fc.nat(29) });
/** Commit and prepare listed twice: progress is likelier than a rollback or a kill. */
const KINDS: readonly Kind[] = ["exec", "prepare", "prepare", "commit", "commitStamped", "commitStamped", "rollback", "recover", "kill"];

/** What the roles may send next for one transaction (the test skips every other step, on both sides alike). */
interface TxState {
  exec: "none" | "ok" | "failed";
  prepared: boolean;
  committed: boolean;
  finished: boolean;
}

function allowed(k: Kind, p: Plan, t: TxState): boolean {
  switch (k) {
    case "exec":
      return t.exec === "none";
    case "prepare":
      return t.exec === "ok" && !p.onePhase && !t.prepared && !t.finished;
    case "commit":
    case "commitStamped":
      // One phase: once, after a successful exec. Two phases: once prepared, and again (a resolver's retry).
      return t.exec === "ok" && (p.onePhase ? !t.finished : t.prepared);
    case "rollback":
      // Never a rollback of a decided commit (the roles roll back only what is not committed).
      return t.exec !== "none" && !t.committed;
    case "recover":
      return true;
    case "kill":
      // Only a connection an exec reported (ok): the roles kill nothing else.
      return t.exec === "ok";
  }
}

const txId = (run: number, i: number): TxId => `a0000000-0000-4000-8000-${String(run).padStart(6, "0")}${String(i).padStart(6, "0")}`;
const opsOf = (i: number, p: Plan): Op[] => [
  { account: ACCOUNTS[2 * i]!, delta: p.deltas[0] },
  { account: ACCOUNTS[2 * i + 1]!, delta: p.deltas[1] },
];

interface View {
  balances: [number, number][];
  history: [string, number, number][];
  prepared: string[];
}

function modelView(s: xa.ShardState): View {
  return {
    balances: ACCOUNTS.map((a) => [a, xa.committedBalance(s, a)!]),
    history: s.history.map(([x, a, d]) => [x.slice(0, x.lastIndexOf(".")), a, d] as [string, number, number]).sort(byRow),
    prepared: xa.recoverXids(s).map((x) => x.slice(0, x.lastIndexOf("."))).sort(),
  };
}

const byRow = (x: [string, number, number], y: [string, number, number]) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]);

async function realView(): Promise<View> {
  const [b] = await admin.query(`SELECT id, balance FROM accounts WHERE id IN (${ACCOUNTS.join(",")}) ORDER BY id`);
  const [h] = await admin.query("SELECT xid, account_id, delta FROM history ORDER BY xid, account_id");
  return {
    balances: (b as { id: string; balance: string }[]).map((x) => [Number(x.id), Number(x.balance)]),
    history: (h as { xid: string; account_id: string; delta: string }[]).map((x) => [x.xid, Number(x.account_id), Number(x.delta)] as [string, number, number]).sort(byRow),
    prepared: (await xaRecover(admin)).map((r) => r.gtrid).sort(),
  };
}

async function reset(): Promise<void> {
  for (const r of await xaRecover(admin)) await admin.query(`XA ROLLBACK '${r.gtrid}','${r.bqual}',${r.formatID}`);
  await admin.query("DELETE FROM history");
  await admin.query(`UPDATE accounts SET balance = ${BALANCE} WHERE id IN (${ACCOUNTS.join(",")})`);
}

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: ACCOUNTS.length, balanceCents: BALANCE, lockWaitTimeoutS: 1 });
  exec = new XaMysql({ shards: [cluster.shards[0]!.serverAddress()], limits });
  admin = await cluster.shards[0]!.connect();
});

afterAll(async () => {
  exec?.close();
  await admin?.end();
  await cluster?.stop();
});

const coverage = new Map<string, number>();
const count = (k: string) => coverage.set(k, (coverage.get(k) ?? 0) + 1);
const answer = (r: XaResult | { ok: boolean }): string => (r.ok ? "ok" : (r as { err: string }).err);

describe("XA executor model against a real MariaDB", () => {
  it(`agrees on ${RUNS} random effect sequences (one-phase exec and stamped commits included)`, { timeout: 180_000 }, async () => {
    let run = 0;
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(planArb, { minLength: TXS, maxLength: TXS }), fc.array(stepArb, { minLength: 1, maxLength: STEPS_MAX }), async (plans, script) => {
        run++;
        await reset();
        let s = xa.initShard(ACCOUNTS.map((a) => [a, BALANCE] as const));
        const states: TxState[] = plans.map(() => ({ exec: "none", prepared: false, committed: false, finished: false }));
        const txs = plans.map((_, i) => txId(run, i));
        const conn = (i: number) => connOf(txs[i]!, SHARD, 1);
        try {
          for (const [n, { tx: i, pick }] of script.entries()) {
            const p = plans[i]!;
            const t = states[i]!;
            const choices = KINDS.filter((k) => allowed(k, p, t));
            const kind = choices[pick % choices.length]!;
            const tx = txs[i]!;
            const where = `run ${run} step ${n}: ${kind} of tx ${i} ${JSON.stringify(p)}`;
            if (kind === "kill") {
              const real = exec.connectionOf(tx, SHARD);
              const modelHas = s.conns.some((c) => c.id === conn(i));
              expect(real !== null, `${where}: the branch has a live connection`).toBe(modelHas);
              if (real !== null) expect(await exec.kill(SHARD, real), where).toEqual({ ok: true });
              s = xa.killConnection(s, conn(i));
              count(`kill ${modelHas ? "live" : "none"}`);
            } else {
              const fx: XaEffect =
                kind === "exec"
                  ? { t: "xa.exec", tx, shard: SHARD, ops: opsOf(i, p), guard: true, ...(p.onePhase ? { onePhase: true as const } : {}) }
                  : kind === "prepare"
                    ? { t: "xa.prepare", tx, shard: SHARD }
                    : kind === "commit" || kind === "commitStamped"
                      ? { t: "xa.commit", tx, shard: SHARD, onePhase: p.onePhase }
                      : kind === "rollback"
                        ? { t: "xa.rollback", tx, shard: SHARD }
                        : { t: "xa.recover", shard: SHARD };
              const outs = executeXa(s, fx, fx.t === "xa.recover" ? null : conn(i));
              expect(outs, `${where}: one model outcome`).toHaveLength(1);
              s = outs[0]!.shard;
              const m = (outs[0]!.result as Result & { r: XaResult }).r;
              let real: unknown;
              if (kind === "exec") real = await exec.exec(tx, SHARD, opsOf(i, p), true, undefined, p.onePhase);
              else if (kind === "prepare") real = await exec.prepare(tx, SHARD);
              else if (kind === "commit") real = await exec.commit(tx, SHARD, p.onePhase);
              else if (kind === "commitStamped") {
                const both = await exec.commitStamped(tx, SHARD, p.onePhase, BigInt(1000 + n));
                // Stamped exactly when committed by that batch (a one-phase commit's stamp is inside its transaction).
                if (p.onePhase) expect(both.stamped, where).toBe(both.r.ok);
                real = both.r;
              } else if (kind === "rollback") real = await exec.rollback(tx, SHARD);
              else {
                const r = await exec.recover(SHARD);
                real = r.ok ? { ok: true, prepared: [...r.prepared].map((x) => x.tx).sort() } : r;
              }
              const expected = kind === "recover" && m.ok ? { ok: true, prepared: (m as unknown as { prepared: { tx: string }[] }).prepared.map((x) => x.tx).sort() } : m;
              expect(real, where).toEqual(expected);
              count(`${kind}${kind === "exec" || kind.startsWith("commit") ? (p.onePhase ? " one-phase" : " two-phase") : ""} ${answer(m)}`);
              if (kind === "exec") t.exec = m.ok ? "ok" : "failed";
              if (kind === "prepare" && m.ok) t.prepared = true;
              if ((kind === "commit" || kind === "commitStamped") && m.ok) t.committed = t.finished = true;
              if (kind === "rollback" && m.ok) t.finished = true;
            }
            expect(await realView(), where).toEqual(modelView(s));
            steps++;
          }
        } finally {
          // Whatever is left (ACTIVE, IDLE, prepared) is rolled back through the executor, so its connections go back.
          for (const tx of txs) await exec.rollback(tx, SHARD);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    const seen = [...coverage].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `  ${k}: ${n}`);
    console.log(`xa executor model-based test: seed ${SEED}, ${RUNS} runs, ${steps} steps\n${seen.join("\n")}`);
    // The paths this test exists for were taken.
    for (const k of ["exec one-phase ok", "exec one-phase INSUFFICIENT_FUNDS", "commit one-phase ok", "commitStamped one-phase ok", "commitStamped two-phase ok", "prepare ok", "kill live"]) {
      expect(coverage.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  });
});
