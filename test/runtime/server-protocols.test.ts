// Parallel commit and the speculative path through the real server, against
// real MariaDB x3 and etcd started by the test: the per-request protocol,
// money moved once, records and undo rows where the protocols say, traces
// that replay against their role, metrics.
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { decisionKey, speculativeKey } from "../../spec/kernel/effects.ts";
import { MysqlLocal } from "../../runtime/adapters/local-mysql.ts";
import { idempotencyEtcdKey } from "../../runtime/idempotency.ts";
import { addressesOfCluster } from "../../runtime/main.ts";
import { replayTrace } from "../../conformance/replay.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, serverOn } from "./support.ts";

const PREFIX = "tp/";
let cluster: TestCluster;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 3, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", PREFIX]);
  url = server.url;
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

const a = (n: number) => n; // shard-a holds 1..100
const b = (n: number) => 100 + n; // shard-b holds 101..200

const transfer = (protocol: string, ops: Array<[string, number, string | number]>) =>
  request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })), protocol } });

async function done(tx: string): Promise<any> {
  let view = (await request(url, "GET", `/transactions/${tx}`)).body;
  for (let i = 0; i < 100 && !view.done; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    view = (await request(url, "GET", `/transactions/${tx}`)).body;
  }
  return view;
}

async function undoRows(shard: string, tx: string): Promise<Array<{ branch: string; state: string }>> {
  const conn = await mysql.createConnection(cluster.shard(shard).connectionOptions());
  try {
    const [rows] = await conn.query("SELECT branch, state FROM speculative_undo WHERE tx = ?", [tx]);
    return rows as Array<{ branch: string; state: string }>;
  } finally {
    await conn.end();
  }
}

async function metric(name: string, labels: string): Promise<number> {
  const text = (await request(url, "GET", "/metrics")).body as string;
  const line = text.split("\n").find((l) => l.startsWith(labels === "" ? `${name} ` : `${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

describe("per-request protocol", () => {
  it("refuses an unknown protocol, naming the three", async () => {
    const r = await transfer("3pc", [
      ["shard-a", a(1), -1],
      ["shard-b", b(1), 1],
    ]);
    expect(r.status).toBe(400);
    expect(r.body.error).toContain("2pc, parallel, speculative");
  });

  it("parallel commit: STAGING with the connection ids, answered committed, then COMMITTED, XA COMMIT, forgotten; the trace replays", async () => {
    const before = [await balance(cluster, "shard-a", a(3)), await balance(cluster, "shard-b", b(3))];
    const r = await transfer("parallel", [
      ["shard-a", a(3), -700],
      ["shard-b", b(3), 700],
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "committed", protocol: "parallel" });
    const view = await done(r.body.tx);
    expect(view).toMatchObject({ protocol: "parallel", status: "committed", done: true, phase: "done" });
    expect(await balance(cluster, "shard-a", a(3))).toBe(before[0]! - 700n);
    expect(await balance(cluster, "shard-b", b(3))).toBe(before[1]! + 700n);
    const role = view.trace.steps.filter((s: { actor: string }) => s.actor === "coordinator");
    const puts = role.flatMap((s: { effects: Array<{ t: string; value?: { kind: string; branches: unknown[] } }> }) => s.effects.filter((e) => e.t === "log.put"));
    // STAGING names each branch's connection as <boot>:<connection id>.
    expect(puts[0].value.kind).toBe("staging");
    for (const br of puts[0].value.branches as Array<{ conn: string }>) expect(br.conn).toMatch(/^.+:\d+$/);
    expect(puts[1].value.kind).toBe("decision");
    expect(view.trace.header.model).toBe("parallel.coordinator");
    expect(replayTrace(view.trace)).toEqual({ ok: true, steps: role.length });
    expect(await cluster.etcdClient().get(PREFIX + decisionKey(r.body.tx)).string()).toBeNull();
  });

  it("speculative: committed after one round trip, credit pending until released, SPEC_COMMITTED, rows retired; the trace replays", async () => {
    const before = [await balance(cluster, "shard-a", a(5)), await balance(cluster, "shard-b", b(5))];
    const hits = await metric("speccommit_speculations_total", 'result="hit"');
    const r = await transfer("speculative", [
      ["shard-a", a(5), -1234],
      ["shard-b", b(5), 1234],
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "committed", protocol: "speculative" });
    const view = await done(r.body.tx);
    expect(view).toMatchObject({ protocol: "speculative", status: "committed", done: true });
    expect(await balance(cluster, "shard-a", a(5))).toBe(before[0]! - 1234n);
    expect(await balance(cluster, "shard-b", b(5))).toBe(before[1]! + 1234n);
    const account = (await request(url, "GET", `/accounts/shard-b/${b(5)}`)).body;
    expect(account).toMatchObject({ balance_cents: String(before[1]! + 1234n), pending_cents: "0" });
    expect((await undoRows("shard-a", r.body.tx)).map((x) => x.state)).toEqual(["released"]);
    expect((await undoRows("shard-b", r.body.tx)).map((x) => x.state)).toEqual(["released"]);
    // SPEC_EXECUTING, SPEC_COMMITTED, then forgotten: the trace shows the writes, etcd no longer has the record.
    expect(await cluster.etcdClient().get(PREFIX + speculativeKey(r.body.tx)).string()).toBeNull();
    const written = view.trace.steps
      .filter((s: { actor: string }) => s.actor === "coordinator")
      .flatMap((s: { effects: Array<{ t: string; value?: { state?: string } }> }) => s.effects.filter((e) => e.t === "log.put" || e.t === "log.delete").map((e) => e.value?.state ?? e.t));
    expect(written).toEqual(["SPEC_EXECUTING", "SPEC_COMMITTED", "log.delete"]);
    const role = view.trace.steps.filter((s: { actor: string }) => s.actor === "coordinator");
    // The answer came in the step that heard the second apply: before any txlog write.
    const replyAt = role.findIndex((s: { effects: Array<{ t: string }> }) => s.effects.some((e) => e.t === "reply"));
    const firstPut = role.findIndex((s: { effects: Array<{ t: string }> }) => s.effects.some((e) => e.t === "log.put"));
    expect(replyAt).toBeGreaterThan(0);
    expect(replyAt).toBeLessThanOrEqual(firstPut);
    expect(role.slice(0, replyAt + 1).every((s: { input: { t: string } }) => s.input.t === "request" || s.input.t === "local.apply")).toBe(true);
    expect(view.trace.header.model).toBe("speculative.coordinator");
    expect(replayTrace(view.trace)).toEqual({ ok: true, steps: role.length });
    expect(await metric("speccommit_speculations_total", 'result="hit"')).toBe(hits + 1);
  });

  it("group commit: concurrent speculations' releases share round trips per shard and their log writes share etcd transactions (metrics), every row released, money moved once", async () => {
    const N = 40;
    const series = async (name: string, labels: string) => ({ count: await metric(`${name}_count`, labels), sum: await metric(`${name}_sum`, labels) });
    const before = { a: await series("speccommit_shard_batch_size", 'shard="shard-a",work="retire"'), b: await series("speccommit_shard_batch_size", 'shard="shard-b",work="retire"') };
    const logBefore = await series("speccommit_txlog_batch_writes", "");
    const from = Array.from({ length: N }, (_, i) => a(40 + i));
    const to = Array.from({ length: N }, (_, i) => b(40 + i));
    const total0 = (await Promise.all([...from.map((x) => balance(cluster, "shard-a", x)), ...to.map((x) => balance(cluster, "shard-b", x))])).reduce((x, y) => x + y, 0n);
    const rs = await Promise.all(from.map((x, i) => transfer("speculative", [["shard-a", x, -7], ["shard-b", to[i]!, 7]])));
    expect(rs.map((r) => r.body.status)).toEqual(Array(N).fill("committed"));
    for (const r of rs) expect(await done(r.body.tx)).toMatchObject({ status: "committed", done: true });
    for (const r of rs) for (const shard of ["shard-a", "shard-b"]) expect((await undoRows(shard, r.body.tx)).map((x) => x.state)).toEqual(["released"]);
    const after = { a: await series("speccommit_shard_batch_size", 'shard="shard-a",work="retire"'), b: await series("speccommit_shard_batch_size", 'shard="shard-b",work="retire"') };
    const logAfter = await series("speccommit_txlog_batch_writes", "");
    // Every release went through the batched path (this process applied every branch), N per shard,
    for (const k of ["a", "b"] as const) expect(after[k].sum - before[k].sum).toBe(N);
    // in fewer round trips than releases on at least one shard,
    expect(after.a.count - before.a.count + (after.b.count - before.b.count)).toBeLessThan(2 * N);
    // and the log writes (SPEC_EXECUTING, SPEC_COMMITTED, the delete: 3 per transfer) in fewer etcd transactions than writes.
    expect(logAfter.sum - logBefore.sum).toBeGreaterThanOrEqual(3 * N);
    expect(logAfter.count - logBefore.count).toBeLessThan(logAfter.sum - logBefore.sum);
    const total1 = (await Promise.all([...from.map((x) => balance(cluster, "shard-a", x)), ...to.map((x) => balance(cluster, "shard-b", x))])).reduce((x, y) => x + y, 0n);
    expect(total1).toBe(total0);
  });

  it("group commit: concurrent 2PC transfers' commit-timestamp stamps share UPDATEs per shard (metric), every history row stamped", async () => {
    const N = 40;
    const series = async (labels: string) => ({ count: await metric("speccommit_shard_batch_size_count", labels), sum: await metric("speccommit_shard_batch_size_sum", labels) });
    const labels = (s: string) => `shard="${s}",work="stamp"`;
    const before = [await series(labels("shard-a")), await series(labels("shard-b"))];
    const rs = await Promise.all(Array.from({ length: N }, (_, i) => transfer("2pc", [["shard-a", a(50 + i), -3], ["shard-b", b(50 + i), 3]])));
    expect(rs.map((r) => r.body.status)).toEqual(Array(N).fill("committed"));
    for (const r of rs) expect(await done(r.body.tx)).toMatchObject({ status: "committed", done: true });
    const after = [await series(labels("shard-a")), await series(labels("shard-b"))];
    // Stamps through the batched path (those of commits that found others under way on their shard; at most one per branch),
    const batched = after[0]!.sum - before[0]!.sum + (after[1]!.sum - before[1]!.sum);
    expect(batched).toBeGreaterThan(0);
    expect(batched).toBeLessThanOrEqual(2 * N);
    // in fewer UPDATEs than stamps,
    expect(after[0]!.count - before[0]!.count + (after[1]!.count - before[1]!.count)).toBeLessThan(batched);
    // and every history row of every branch carries its transaction's timestamp.
    for (const shard of ["shard-a", "shard-b"]) {
      const conn = await mysql.createConnection(cluster.shard(shard).connectionOptions());
      try {
        const [rows] = await conn.query("SELECT xid, commit_ts FROM history WHERE xid IN (?)", [rs.map((r) => r.body.tx)]);
        expect((rows as unknown[]).length).toBe(N);
        expect((rows as Array<{ commit_ts: unknown }>).every((x) => x.commit_ts !== null)).toBe(true);
      } finally {
        await conn.end();
      }
    }
  });

  it("speculative mis-speculation: the credit applied, the debit failed; tombstone, compensation, nothing moved, SPEC_ROLLED_BACK", async () => {
    const before = [await balance(cluster, "shard-a", a(7)), await balance(cluster, "shard-b", b(7))];
    const compensations = await metric("speccommit_compensations_total", 'by="coordinator"');
    const r = await transfer("speculative", [
      ["shard-a", a(7), 200_000],
      ["shard-b", b(7), -200_000],
    ]);
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ status: "aborted", reason: "insufficient_funds", protocol: "speculative" });
    const view = await done(r.body.tx);
    expect(view.done).toBe(true);
    expect(await balance(cluster, "shard-a", a(7))).toBe(before[0]!);
    expect(await balance(cluster, "shard-b", b(7))).toBe(before[1]!);
    expect((await request(url, "GET", `/accounts/shard-a/${a(7)}`)).body).toMatchObject({ pending_cents: "0" });
    const rows = [...(await undoRows("shard-a", r.body.tx)), ...(await undoRows("shard-b", r.body.tx))].map((x) => `${x.branch}=${x.state}`).sort();
    // shard-a's credit applied and was compensated; shard-b's key holds the tombstone of the branch that never applied.
    expect(rows).toEqual(["shard-a=compensated", "shard-b=tombstone"]);
    const written = view.trace.steps
      .filter((s: { actor: string }) => s.actor === "coordinator")
      .flatMap((s: { effects: Array<{ t: string; value?: { state?: string } }> }) => s.effects.filter((e) => e.t === "log.put" || e.t === "log.delete").map((e) => e.value?.state ?? e.t));
    expect(written).toEqual(["SPEC_EXECUTING", "SPEC_ROLLED_BACK", "log.delete"]);
    expect(await cluster.etcdClient().get(PREFIX + speculativeKey(r.body.tx)).string()).toBeNull();
    expect(await metric("speccommit_compensations_total", 'by="coordinator"')).toBe(compensations + 1);
    expect(await metric("speccommit_speculations_total", 'result="rollback"')).toBeGreaterThanOrEqual(1);
    expect(replayTrace(view.trace)).toMatchObject({ ok: true });
  });

  it("a transaction this process no longer remembers is read from durable state by its protocol's rules", async () => {
    const r = await transfer("speculative", [
      ["shard-a", a(9), -10],
      ["shard-b", b(9), 10],
    ]);
    expect(r.body.status).toBe("committed");
    await done(r.body.tx);
    // Another server on the same prefix has no memory of it.
    const other = await serverOn(cluster, ["--etcd-prefix", PREFIX]);
    try {
      const answer = await request(other.url, "GET", `/transactions/${r.body.tx}`);
      const view = answer.body;
      if (answer.status !== 200) console.error(answer.status, view);
      expect(view).toMatchObject({ tx: r.body.tx, status: "committed", speculation: "commit" });
    } finally {
      await other.close(1_000);
    }
  });

  it("an idempotency retry of a speculation whose coordinator died before anything landed: probed with tombstones, never a stale 'aborted'", async () => {
    // The claim a dead server left: the transfer was claimed and started, nothing of it is visible yet (its applies may be
    // waiting for locks). Reading finds nothing; the answer must come from the keys, made final by tombstones.
    const tx = "7e0c2b1a-0000-4000-8000-00000000dead";
    const branches = [
      { shard: "shard-a", ops: [{ account: a(11), delta: -300 }] },
      { shard: "shard-b", ops: [{ account: b(11), delta: 300 }] },
    ];
    const fingerprint = createHash("sha256").update(JSON.stringify({ protocol: "speculative", branches })).digest("hex");
    const key = "order-probe-1";
    await cluster.etcdClient().put(PREFIX + idempotencyEtcdKey(key)).value(JSON.stringify({ tx, fingerprint, shards: ["shard-a", "shard-b"], protocol: "speculative" }));
    const before = [await balance(cluster, "shard-a", a(11)), await balance(cluster, "shard-b", b(11))];
    const r = await request(url, "POST", "/transfer", {
      json: {
        ops: [
          { shard_id: "shard-a", account_id: a(11), delta: -300 },
          { shard_id: "shard-b", account_id: b(11), delta: 300 },
        ],
        protocol: "speculative",
        idempotency_key: key,
      },
    });
    expect(r.body).toMatchObject({ tx, status: "aborted", reason: "resolver", replayed: true });
    expect((await undoRows("shard-a", tx)).map((x) => x.state)).toEqual(["tombstone"]);
    expect((await undoRows("shard-b", tx)).map((x) => x.state)).toEqual(["tombstone"]);
    // The dead coordinator's apply, landing now, finds its key taken: it can never apply.
    const shards = addressesOfCluster(cluster.describe()).shards;
    const local = new MysqlLocal({ shards, limits: { connections_max: 2, waiters_max: 4, acquire_timeout_ms: 2_000, connect_timeout_ms: 2_000, statement_timeout_ms: 2_000 } });
    try {
      expect(await local.apply(tx, "shard-a", branches[0]!.ops, ["shard-a", "shard-b"])).toEqual({ ok: false, err: "DUPLICATE" });
    } finally {
      local.close();
    }
    expect([await balance(cluster, "shard-a", a(11)), await balance(cluster, "shard-b", b(11))]).toEqual(before);
  });
});
