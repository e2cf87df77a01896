// The banking invariants under load against real MariaDB x3 and etcd: concurrent transfers of 2PC and parallel
// commit on few, hot accounts (conflicts and refusals for insufficient funds), with accounts opened and closed
// during the load; then the history is read from the shards and audited (conformance/serializable.ts): no money
// minted, total conserved, no lost update, a serial order of the committed transfers that explains every balance
// with none below zero, and every client's answer matching the rows. Then the speculative path under load,
// audited against its own, weaker, statement.
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditAnswers, auditSerializable, auditSpeculative, type Answer, type Row } from "../../conformance/serializable.ts";
import { historyForAudit, HistoryReader, type ShardReads } from "../../runtime/history.ts";
import type { QueryOutcome } from "../../runtime/adapters/mysql-pool.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";

const SHARDS = 3;
const ACCOUNTS = 20;
const BALANCE = 2_000;
let cluster: TestCluster;
let server: RunningServer;
let url: string;
const pools = new Map<string, mysql.Pool>();

/** The shards as the audit reads them: root connections of the test (the observer), not the server's. */
const reads = (shard: string): ShardReads => ({
  async run<T>(sql: string): Promise<QueryOutcome<T>> {
    try {
      const [rows] = await pools.get(shard)!.query(sql);
      return { ok: true, value: rows as T };
    } catch (e) {
      return { ok: false, error: { errno: (e as { errno?: number }).errno, code: "QUERY", fatal: false, message: (e as Error).message } };
    }
  },
});

beforeAll(async () => {
  cluster = await startTestCluster({ shards: SHARDS, accountsPerShard: ACCOUNTS, balanceCents: BALANCE, lockWaitTimeoutS: 2 });
  server = await serverOn(cluster, ["--etcd-prefix", "load/", "--resolver-interval-ms", "200"]);
  url = server.url;
  for (const s of cluster.shards) pools.set(s.name, s.pool({ connectionLimit: 4 }));
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

/** A tiny deterministic generator (the run is repeatable; the interleaving is not). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const seeded = () => new Map(cluster.shards.flatMap((s) => Array.from({ length: ACCOUNTS }, (_, i) => [`${s.name}:${s.firstAccountId + i}`, BigInt(BALANCE)] as const)));

async function balances(): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const s of cluster.shards) {
    const [rows] = await pools.get(s.name)!.query("SELECT id, balance FROM accounts");
    for (const r of rows as Array<{ id: string; balance: string }>) out.set(`${s.name}:${r.id}`, BigInt(r.balance));
  }
  return out;
}

/** Closed-loop clients sending random transfers of 2..3 ops among `accounts` until `n` were answered. */
async function load(accounts: readonly string[], n: number, protocols: readonly string[], seed: number): Promise<Answer[]> {
  const answers: Answer[] = [];
  let sent = 0;
  const client = async (c: number) => {
    const r = rng(seed * 1000 + c);
    while (sent < n) {
      sent++;
      const pick = () => accounts[Math.floor(r() * accounts.length)]!;
      const from = pick();
      let to = pick();
      while (to === from) to = pick();
      const cents = 1 + Math.floor(r() * 900);
      const ops = new Map<string, bigint>([
        [from, -BigInt(cents)],
        [to, BigInt(cents)],
      ]);
      const protocol = protocols[Math.floor(r() * protocols.length)]!;
      const body = { protocol, ops: [...ops].map(([k, d]) => ({ shard_id: k.split(":")[0], account_id: Number(k.split(":")[1]), delta: Number(d) })) };
      const a = await request(url, "POST", "/transfer", { json: body });
      if (a.status === 503) continue;
      expect([200, 202, 409]).toContain(a.status);
      // Refused before it ran: an account closed by the closer racing this load.
      if (a.status === 409 && a.body.tx === undefined) {
        expect(a.body.error).toMatch(/closed|closing/);
        continue;
      }
      answers.push({ tx: a.body.tx, status: a.body.status, ops });
    }
  };
  await Promise.all(Array.from({ length: 12 }, (_, c) => client(c)));
  return answers;
}

async function quiesce(): Promise<void> {
  for (let i = 0; i < 300 && server.engine.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
  await server.engine.scanNow();
  await server.engine.scanNow();
}

function rowsByTx(h: { txs: ReadonlyArray<{ tx: string; rows: readonly Row[] }> }): Map<string, readonly Row[]> {
  return new Map(h.txs.map((t) => [t.tx, t.rows]));
}

describe("2PC and parallel commit under load, with accounts opened and closed", () => {
  it("the committed history is serializable and explains every balance; every answer matches the rows", async () => {
    const total = await totalBalance(cluster);
    const hot = [...seeded().keys()].filter((_, i) => i % 4 === 0); // 15 accounts on 3 shards: conflicts on every one
    const opened = new Set<string>();
    const openings = (async () => {
      for (let i = 0; i < 6; i++) {
        const shard = cluster.shards[i % SHARDS]!.name;
        const f = hot[(i * 5) % hot.length]!;
        const r = await request(url, "POST", "/accounts", {
          json: { shard_id: shard, account_id: 900 + i, opening_balance: 250, funding: { shard_id: f.split(":")[0], account_id: Number(f.split(":")[1]) } },
          headers: { "Idempotency-Key": `load-open-${i}` },
        });
        expect([201, 409, 202]).toContain(r.status);
        if (r.status === 201) opened.add(`${shard}:${900 + i}`);
      }
    })();
    const answers = await load(hot, 400, ["2pc", "parallel"], 7);
    await openings;
    expect(opened.size).toBeGreaterThan(0);
    // The opened accounts take part too: a second round of load on them and the hot ones, with a closer racing it:
    // it empties opened accounts (GET the balance, move it out) and closes them while transfers still name them.
    const closedAt = new Map<string, number>(); // account -> its history rows when its close answered 200
    const historyRows = async (account: string) => {
      const [s, id] = account.split(":") as [string, string];
      const [rows] = await pools.get(s)!.query(`SELECT COUNT(*) AS n FROM history WHERE account_id = ${Number(id)}`);
      return Number((rows as Array<{ n: string }>)[0]!.n);
    };
    let loading = true;
    const racers = [...opened].slice(0, 2);
    const closer = (async () => {
      while (loading) {
        for (const v of racers) {
          if (closedAt.has(v) || !loading) continue;
          const [vs, vid] = v.split(":") as [string, string];
          const left = BigInt((await request(url, "GET", `/accounts/${vs}/${vid}`)).body.balance_cents);
          if (left > 0n) {
            const t = await request(url, "POST", "/transfer", { json: { ops: [{ shard_id: vs, account_id: Number(vid), delta: -Number(left) }, { shard_id: hot[1]!.split(":")[0], account_id: Number(hot[1]!.split(":")[1]), delta: Number(left) }] } });
            if (t.body.tx !== undefined) answers.push({ tx: t.body.tx, status: t.body.status, ops: new Map([[v, -left], [hot[1]!, left]]) });
          }
          const c = await request(url, "POST", `/accounts/${vs}/${vid}/close`);
          expect([200, 409]).toContain(c.status);
          if (c.status === 200) closedAt.set(v, await historyRows(v));
        }
        if (racers.every((v) => closedAt.has(v))) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    answers.push(...(await load([...hot.slice(0, 5), ...opened], 150, ["2pc", "parallel"], 8)));
    loading = false;
    await closer;
    const closedDuringLoad = closedAt.size;
    await quiesce();
    // Empty one opened account and close it (the close is a local transaction under the row lock).
    const victim = [...opened].find((a) => !closedAt.has(a)) ?? [...opened][0]!;
    const [vs, vid] = victim.split(":") as [string, string];
    const left = (await balances()).get(victim)!;
    if (left > 0n) {
      const t = await request(url, "POST", "/transfer", { json: { ops: [{ shard_id: vs, account_id: Number(vid), delta: -Number(left) }, { shard_id: hot[0]!.split(":")[0], account_id: Number(hot[0]!.split(":")[1]), delta: Number(left) }] } });
      expect(t.status).toBe(200);
      answers.push({ tx: t.body.tx, status: "committed", ops: new Map([[victim, -left], [hot[0]!, left]]) });
    }
    expect((await request(url, "POST", `/accounts/${vs}/${vid}/close`)).status).toBe(200);
    if (!closedAt.has(victim)) closedAt.set(victim, await historyRows(victim));
    await quiesce();
    // A closed account holds nothing and took no transfer after its close answered, racing or not.
    console.log(`load: ${closedDuringLoad} of ${racers.length} accounts closed while transfers named them`);
    const after = await balances();
    for (const [a, rows] of closedAt) {
      expect(after.get(a)).toBe(0n);
      expect(await historyRows(a)).toBe(rows);
    }

    const committed = answers.filter((a) => a.status === "committed").length;
    const aborted = answers.filter((a) => a.status === "aborted").length;
    expect(committed).toBeGreaterThan(200);
    expect(aborted).toBeGreaterThan(0); // hot accounts with little money: refusals happen

    // A one-branch commit is stamped just after its answer (runtime/timestamps.ts): wait for the stamps (bounded).
    for (let i = 0; i < 100; i++) {
      let unstamped = 0;
      for (const s of cluster.shards) {
        const [rows] = await pools.get(s.name)!.query("SELECT COUNT(*) AS n FROM history WHERE commit_ts IS NULL");
        unstamped += Number((rows as Array<{ n: string }>)[0]!.n);
      }
      if (unstamped === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const reader = new HistoryReader(reads);
    const { history, notFinal } = await historyForAudit(reader, reads, cluster.shards.map((s) => s.name), { seed: seeded(), opened });
    expect(notFinal).toBe(0);
    const verdict = auditSerializable(history);
    // Every committed transfer's rows are stamped with its commit timestamp (runtime/timestamps.ts) once its
    // coordinator is done, and the commit-timestamp order explains every balance.
    expect(history.txs.filter((t) => t.commit_ts === null).map((t) => t.tx)).toEqual([]);
    expect(verdict).toMatchObject({ ok: true, by: "commit_ts" });
    // The conflict order alone explains it too (the audit without timestamps).
    expect(auditSerializable({ ...history, txs: history.txs.map((t) => ({ ...t, commit_ts: null })) })).toMatchObject({ ok: true, by: "conflict" });
    // The openings are among the audited transactions, each a move of 250 from its funding account; a transfer
    // answered in doubt is there when it committed after all.
    const found = new Set(history.txs.map((t) => t.tx));
    const inDoubtCommitted = answers.filter((a) => a.status === "in_doubt" && found.has(a.tx)).length;
    expect(history.txs.length).toBe(committed + inDoubtCommitted + opened.size);
    expect(auditAnswers(answers, rowsByTx(history))).toBeNull();
    // The audit had something to order: accounts changed by many transactions.
    const perAccount = new Map<string, number>();
    for (const t of history.txs) for (const r of t.rows) perAccount.set(r.account, (perAccount.get(r.account) ?? 0) + 1);
    expect(Math.max(...perAccount.values())).toBeGreaterThan(20);
    expect(await totalBalance(cluster)).toBe(total);
    for (const v of (await balances()).values()) expect(v >= 0n).toBe(true);

    // And the same audit catches this very history corrupted (a mutant on real data): one row's delta off by a cent.
    const t0 = history.txs[0]!;
    const bad = { ...history, txs: [{ ...t0, rows: [{ ...t0.rows[0]!, delta: t0.rows[0]!.delta + 1n }, ...t0.rows.slice(1)] }, ...history.txs.slice(1)] };
    expect(auditSerializable(bad).ok).toBe(false);
    // ... or one committed transfer's rows missing (a lost update of every account it changed).
    const lost = { ...history, txs: history.txs.filter((t) => t.tx !== answers.find((a) => a.status === "committed")!.tx) };
    expect(auditSerializable(lost)).toMatchObject({ ok: false, violation: { kind: expect.stringMatching(/^(final|negative)$/) } });
  }, 180_000);
});

describe("the speculative path under load", () => {
  it("within its stated isolation: no money minted, no lost update, no balance below zero, aborted ones leave no row", async () => {
    await quiesce();
    const seed = await balances();
    const total = await totalBalance(cluster);
    const accounts = [...seeded().keys()].filter((_, i) => i % 4 === 1);
    const answers = await load(accounts, 300, ["speculative"], 11);
    await quiesce();
    // Settlements (release, compensation) finish after the answers; wait until no undo row is open.
    for (let i = 0; i < 100; i++) {
      let open = 0;
      for (const s of cluster.shards) {
        const [rows] = await pools.get(s.name)!.query("SELECT COUNT(*) AS n FROM speculative_undo WHERE state = 'undo'");
        open += Number((rows as Array<{ n: string }>)[0]!.n);
      }
      if (open === 0) break;
      await server.engine.scanNow();
      await new Promise((r) => setTimeout(r, 100));
    }
    const reader = new HistoryReader(reads);
    const only = new Set(answers.map((a) => a.tx));
    const { history, notFinal } = await historyForAudit(reader, reads, cluster.shards.map((s) => s.name), { seed, only });
    expect(notFinal).toBe(0);
    expect(auditSpeculative(history)).toMatchObject({ ok: true });
    expect(auditAnswers(answers, rowsByTx(history))).toBeNull();
    expect(answers.filter((a) => a.status === "committed").length).toBeGreaterThan(100);
    expect(await totalBalance(cluster)).toBe(total);
    // Its mutant on real data: a committed transfer's credit row dropped (as if never released) is caught.
    const t = history.txs.find((x) => x.rows.length === 2)!;
    const dropped = { ...history, txs: history.txs.map((x) => (x === t ? { ...x, rows: x.rows.filter((r) => r.delta < 0n) } : x)) };
    expect(auditSpeculative(dropped)).toMatchObject({ ok: false, violation: { kind: "mint" } });
  }, 180_000);
});
