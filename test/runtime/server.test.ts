// The server end to end against real MariaDB x3 and etcd, started by the test
// itself: transfers, aborts, bad input, idempotency, the resolver, load.
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisionKey } from "../../spec/kernel/effects.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { idempotencyEtcdKey } from "../../runtime/idempotency.ts";
import { replayTrace } from "../../conformance/replay.ts";
import { validateEnvironment } from "../../conformance/validate.ts";
import { parseTrace } from "../../traces/ndjson.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, totalBalance, xaRecover, type TestCluster } from "../support/cluster.ts";
import { balance, closeAgents, request, serverOn, snapshot } from "./support.ts";

const PREFIX = "t1/";
let cluster: TestCluster;
let server: RunningServer;
let url: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 3, accountsPerShard: 1_000, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--admin-token", "s3cret-token"]);
  url = server.url;
});

afterAll(async () => {
  closeAgents();
  await server?.close(2_000);
  await cluster?.stop();
});

const a = (n: number) => n; // shard-a holds 1..1000
const b = (n: number) => 1_000 + n; // shard-b holds 1001..2000
const c = (n: number) => 2_000 + n; // shard-c holds 2001..3000

const transfer = (ops: Array<[string, number, string | number]>, extra: Record<string, unknown> = {}) =>
  request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })), ...extra } });

describe("POST /transfer", () => {
  it("commits a cross-shard transfer, moves the money once, and records a trace that replays against the role", async () => {
    const before = [await balance(cluster, "shard-a", a(1)), await balance(cluster, "shard-b", b(1))];
    const r = await transfer([
      ["shard-a", a(1), "-50.00"],
      ["shard-b", b(1), 5000],
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: "committed", protocol: "2pc" });
    expect(await balance(cluster, "shard-a", a(1))).toBe(before[0]! - 5000n);
    expect(await balance(cluster, "shard-b", b(1))).toBe(before[1]! + 5000n);
    const snap = await snapshot(cluster);
    expect(snap.history.get(`shard-a|${r.body.tx}`)).toBe(1);
    expect(snap.history.get(`shard-b|${r.body.tx}`)).toBe(1);
    expect(snap.history.has(`shard-c|${r.body.tx}`)).toBe(false);

    const account = await request(url, "GET", `/accounts/shard-a/${a(1)}`);
    expect(account.body).toEqual({ shard_id: "shard-a", account_id: a(1), balance_cents: String(before[0]! - 5000n), balance: "950.00", pending_cents: "0" });

    // The commit phase and forgetting go on after the reply; give them a moment.
    let view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    for (let i = 0; i < 50 && !view.done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    }
    expect(view).toMatchObject({ tx: r.body.tx, status: "committed", done: true, phase: "done" });
    expect(view.timings.reply_ms).toBeGreaterThan(0);
    const roleSteps = view.trace.steps.filter((s: { actor: string }) => s.actor === "coordinator");
    expect(roleSteps.map((s: { input: { t: string } }) => s.input.t)).toEqual(
      expect.arrayContaining(["request", "xa.exec", "xa.prepare", "log.put", "xa.commit", "log.delete"]),
    );
    // The environment's steps make the diagram: every request the coordinator sent is answered by its shard or the log.
    expect(new Set(view.trace.steps.map((s: { actor: string }) => s.actor))).toEqual(new Set(["client", "coordinator", "shard-a", "shard-b", "txlog"]));
    expect(replayTrace(view.trace)).toEqual({ ok: true, steps: roleSteps.length });
    // And every answer MariaDB and etcd gave is one the spec's environment models allow.
    expect(validateEnvironment(view.trace)).toEqual({ ok: true, answers: 8 });
    const ndjson = await request(url, "GET", `/transactions/${r.body.tx}?format=ndjson`);
    expect(ndjson.headers["content-type"]).toBe("application/x-ndjson");
    expect(replayTrace(parseTrace(ndjson.body))).toEqual({ ok: true, steps: roleSteps.length });
    // The decision record was forgotten once every branch committed.
    const etcd = cluster.etcdClient();
    expect(await etcd.get(PREFIX + decisionKey(r.body.tx)).string()).toBeNull();
  });

  it("aborts on insufficient funds with nothing applied anywhere", async () => {
    const before = await snapshot(cluster);
    const r = await transfer([
      ["shard-a", a(2), "-1000.01"],
      ["shard-b", b(2), "600.01"],
      ["shard-c", c(2), "400.00"],
    ]);
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ status: "aborted", reason: "insufficient_funds" });
    const after = await snapshot(cluster);
    expect(after.balances).toEqual(before.balances);
    expect([...after.history.keys()].filter((k) => k.endsWith(r.body.tx))).toEqual([]);
    expect(after.prepared).toEqual([]);
    const view = server.engine.transaction(r.body.tx)!;
    expect(validateEnvironment({ header: view.trace!.header, steps: [...view.trace!.steps] })).toMatchObject({ ok: true });
  });

  it("aborts with conflict when a row stays locked past innodb_lock_wait_timeout, and the trace validates against the models", async () => {
    const holder = await cluster.shard("shard-c").connect();
    await holder.query("START TRANSACTION");
    await holder.query(`SELECT balance FROM accounts WHERE id = ${c(3)} FOR UPDATE`);
    const r = await transfer([
      ["shard-a", a(3), "-1.00"],
      ["shard-c", c(3), "1.00"],
    ]);
    await holder.query("ROLLBACK");
    expect(r.body).toMatchObject({ status: "aborted", reason: "conflict" });
    let view = server.engine.transaction(r.body.tx)!;
    for (let i = 0; i < 50 && !view.done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      view = server.engine.transaction(r.body.tx)!;
    }
    const trace = { header: view.trace!.header, steps: [...view.trace!.steps] };
    expect(trace.steps.some((x) => JSON.stringify(x.input).includes("LOCK_TIMEOUT"))).toBe(true);
    expect(replayTrace(trace)).toMatchObject({ ok: true });
    expect(validateEnvironment(trace)).toMatchObject({ ok: true });
    expect((await snapshot(cluster)).prepared).toEqual([]);
  });

  const tooMany = Array.from({ length: 65 }, (_, i) => ({ shard_id: "shard-a", account_id: a(10 + i), delta: i === 0 ? -64 : 1 }));
  const badInputs: Array<[string, { raw?: string; json?: unknown; headers?: Record<string, string> }, number, RegExp]> = [
    ["malformed JSON", { raw: '{"ops":[' }, 400, /malformed JSON/],
    ["an unknown top-level field", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: 1 }, { shard_id: "shard-b", account_id: b(1), delta: -1 }], amount: 1 } }, 400, /excess property.*amount/],
    ["an unknown op field", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: 1, memo: "x" }, { shard_id: "shard-b", account_id: b(1), delta: -1 }] } }, 400, /memo/],
    ["an unknown shard", { json: { ops: [{ shard_id: "shard-z", account_id: 1, delta: 1 }, { shard_id: "shard-b", account_id: b(1), delta: -1 }] } }, 422, /unknown shard "shard-z"/],
    ["a missing account", { json: { ops: [{ shard_id: "shard-a", account_id: 5_000, delta: 1 }, { shard_id: "shard-b", account_id: b(1), delta: -1 }] } }, 422, /no account 5000 on shard-a/],
    ["fractional cents as a JSON number", { raw: '{"ops":[{"shard_id":"shard-a","account_id":1,"delta":-0.5},{"shard_id":"shard-b","account_id":1001,"delta":0.5}]}' }, 400, /-0\.5 is not an integer/],
    ["a JSON number written with a fraction", { raw: '{"ops":[{"shard_id":"shard-a","account_id":1,"delta":-50.00},{"shard_id":"shard-b","account_id":1001,"delta":50}]}' }, 400, /-50\.00 is not an integer/],
    ["an exponent", { raw: '{"ops":[{"shard_id":"shard-a","account_id":1,"delta":-1e2},{"shard_id":"shard-b","account_id":1001,"delta":100}]}' }, 400, /-1e2/],
    ["three decimals in a string", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: "-1.005" }, { shard_id: "shard-b", account_id: b(1), delta: "1.005" }] } }, 400, /at most two decimals/],
    ["a non-zero sum", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: "-1.00" }, { shard_id: "shard-b", account_id: b(1), delta: "0.99" }] } }, 422, /sum to -0\.01/],
    ["no ops", { json: { ops: [] } }, 400, /1 to 64 ops/],
    ["too many ops", { json: { ops: tooMany } }, 400, /1 to 64 ops \(got 65\)/],
    ["ops that cancel out", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: 5 }, { shard_id: "shard-a", account_id: 1, delta: -5 }] } }, 422, /cancel out/],
    ["a protocol not offered", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: 1 }, { shard_id: "shard-b", account_id: b(1), delta: -1 }], protocol: "3pc" } }, 400, /protocol "3pc"/],
    ["an account id that is a string", { json: { ops: [{ shard_id: "shard-a", account_id: "1", delta: 1 }, { shard_id: "shard-b", account_id: b(1), delta: -1 }] } }, 400, /account_id/],
    ["an oversized body", { raw: JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: 1, delta: 1 }], idempotency_key: "k".repeat(70_000) }) }, 413, /over the limit of 65536 bytes/],
    ["a form body", { raw: "a=1", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 400, /application\/json/],
  ];

  it.each(badInputs)("refuses %s with the right 4xx and changes nothing", async (_name, req, status, message) => {
    const before = await snapshot(cluster);
    const r = await request(url, "POST", "/transfer", req);
    expect(r.status).toBe(status);
    expect(r.body.error).toMatch(message);
    expect(await snapshot(cluster)).toEqual(before);
  });

  it("answers 405 to GET /transfer and 404 to an unknown route", async () => {
    expect((await request(url, "GET", "/transfer")).status).toBe(405);
    expect((await request(url, "GET", "/nope")).status).toBe(404);
  });
});

describe("idempotency keys", () => {
  it("applies a transfer once when the same key is sent twice in a row", async () => {
    const key = `seq-${Date.now()}`;
    const ops: Array<[string, number, string]> = [
      ["shard-a", a(20), "-1.00"],
      ["shard-c", c(20), "1.00"],
    ];
    const before = await balance(cluster, "shard-a", a(20));
    const first = await transfer(ops, { idempotency_key: key });
    const second = await transfer(ops, { idempotency_key: key });
    expect(first.body).toMatchObject({ status: "committed", replayed: false });
    expect(second.body).toMatchObject({ status: "committed", replayed: true, tx: first.body.tx });
    expect(await balance(cluster, "shard-a", a(20))).toBe(before - 100n);
    const other = await transfer([["shard-a", a(20), "-2.00"], ["shard-c", c(20), "2.00"]], { idempotency_key: key });
    expect(other.status).toBe(422);
    expect(other.body.error).toMatch(/different transfer/);
    expect(await balance(cluster, "shard-a", a(20))).toBe(before - 100n);
  });

  it("a keyed transfer's trace holds the claim role's steps (claim, its answer, the outcome told, the store) beside the coordinator's; it validates, a tampered claim step is refused", async () => {
    const key = `trace-${Date.now()}`;
    const r = await transfer(
      [
        ["shard-a", a(31), "-2.00"],
        ["shard-b", b(31), "2.00"],
      ],
      { idempotency_key: key },
    );
    expect(r.body).toMatchObject({ status: "committed", replayed: false });
    type Step = { step: number; actor: string; input: { t: string; r?: { ok: boolean; version?: number } }; effects: Array<{ t: string; ifVersion?: number; value?: { outcome?: unknown } }> };
    const claimSteps = (v: { trace: { steps: Step[] } }) => v.trace.steps.filter((s) => s.actor === "idempotency");
    // The store (after the reply) and the coordinator's commit phase go on after the answer; give them a moment.
    let view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    for (let i = 0; i < 100 && (!view.done || claimSteps(view).length < 4); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      view = (await request(url, "GET", `/transactions/${r.body.tx}`)).body;
    }
    const claims: Step[] = claimSteps(view);
    expect(claims.map((s) => s.input.t)).toEqual(["claim", "log.put", "told", "log.put"]);
    const etcdKey = idempotencyEtcdKey(key);
    expect(claims[0]!.effects).toEqual([{ t: "log.put", key: etcdKey, value: expect.objectContaining({ kind: "claim", tx: r.body.tx }), ifVersion: 0 }]);
    expect(claims[1]!.effects).toEqual([{ t: "claim.run", tx: r.body.tx }]);
    expect(claims[2]!.effects).toEqual([{ t: "log.put", key: etcdKey, value: expect.objectContaining({ outcome: { status: "committed" } }), ifVersion: 1 }]);
    expect(claims[3]!.effects).toEqual([{ t: "claim.answer", tx: r.body.tx, outcome: { status: "committed" }, replayed: false }]);
    // The claim is taken before the coordinator's request, the outcome told after its reply.
    const at = (pred: (s: Step) => boolean) => view.trace.steps.findIndex(pred);
    expect(at((s: Step) => s.actor === "idempotency")).toBeLessThan(at((s: Step) => s.actor === "coordinator"));
    expect(at((s: Step) => s.actor === "idempotency" && s.input.t === "told")).toBeGreaterThan(at((s: Step) => s.actor === "coordinator" && s.effects.some((e) => e.t === "reply")));
    expect(view.trace.steps.map((s: Step) => s.step)).toEqual(view.trace.steps.map((_: Step, i: number) => i + 1));
    const roleSteps = view.trace.steps.filter((s: Step) => s.actor === "coordinator" || s.actor === "idempotency");
    expect(replayTrace(view.trace)).toEqual({ ok: true, steps: roleSteps.length });
    expect(validateEnvironment(view.trace)).toMatchObject({ ok: true });
    // As `speccommit trace validate` reads it: the NDJSON the server serves.
    const ndjson = await request(url, "GET", `/transactions/${r.body.tx}?format=ndjson`);
    expect(replayTrace(parseTrace(ndjson.body))).toEqual({ ok: true, steps: roleSteps.length });
    // Tampered: the store compares on another version than the claim had; the claim answered with another version.
    const tamper = (f: (s: Step) => Step) => ({ header: view.trace.header, steps: view.trace.steps.map((s: Step) => (s.actor === "idempotency" ? f(s) : s)) });
    const storeStep = claims[2]!.step;
    const badStore = replayTrace(tamper((s) => (s.step === storeStep ? { ...s, effects: s.effects.map((e) => ({ ...e, ifVersion: 0 })) } : s)));
    expect(badStore).toMatchObject({ ok: false, step: storeStep });
    if (!badStore.ok) expect(badStore.message).toMatch(/idempotency of .*different effects/);
    const answerStep = claims[1]!.step;
    const badAnswer = replayTrace(tamper((s) => (s.step === answerStep ? { ...s, input: { ...s.input, r: { ok: true, version: 5 } } } : s)));
    expect(badAnswer).toMatchObject({ ok: false, step: storeStep });
    // An outcome stored that the coordinator never told.
    const badTold = replayTrace(tamper((s) => (s.input.t === "told" ? { ...s, effects: s.effects.map((e) => ({ ...e, value: { ...e.value, outcome: { status: "aborted", reason: "conflict" } } })) } : s)));
    expect(badTold).toMatchObject({ ok: false, step: storeStep });
  });

  it("honours the Idempotency-Key header exactly like the body field (one key space), and refuses a header and a body that differ", async () => {
    const key = `hdr-${Date.now()}`;
    const ops: Array<[string, number, string]> = [
      ["shard-b", b(23), "-1.00"],
      ["shard-c", c(23), "1.00"],
    ];
    const send = (headers: Record<string, string>, extra: Record<string, unknown> = {}) =>
      request(url, "POST", "/transfer", { json: { ops: ops.map(([shard_id, account_id, delta]) => ({ shard_id, account_id, delta })), ...extra }, headers });
    const before = await snapshot(cluster);
    const first = await send({ "Idempotency-Key": key });
    expect(first.body).toMatchObject({ status: "committed", replayed: false, idempotency_key: key });
    // The same key again: as a bare header, as the draft's Structured Field String, in the body, in both.
    for (const [headers, extra] of [
      [{ "Idempotency-Key": key }, {}],
      [{ "Idempotency-Key": `"${key}"` }, {}],
      [{}, { idempotency_key: key }],
      [{ "Idempotency-Key": key }, { idempotency_key: key }],
    ] as const) {
      const again = await send(headers, extra);
      expect(again.body, JSON.stringify([headers, extra])).toMatchObject({ status: "committed", replayed: true, tx: first.body.tx });
    }
    const differ = await send({ "Idempotency-Key": key }, { idempotency_key: `${key}-other` });
    expect(differ.status).toBe(400);
    expect(differ.body.error).toMatch(/Idempotency-Key header .* and the body's idempotency_key .* differ/);
    const tooLong = await send({ "Idempotency-Key": "k".repeat(201) });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error).toMatch(/1 to 200 characters/);
    // Applied once: one history row per shard for the first transaction, nothing else anywhere.
    const after = await snapshot(cluster);
    expect([after.history.get(`shard-b|${first.body.tx}`), after.history.get(`shard-c|${first.body.tx}`)]).toEqual([1, 1]);
    expect([...after.history.keys()].filter((k) => !before.history.has(k))).toHaveLength(2);
    expect(await balance(cluster, "shard-b", b(23))).toBe(BigInt(before.balances.get(`shard-b|${b(23)}`)!) - 100n);
  });

  it("applies a transfer once when the same key is sent by 20 clients at once", async () => {
    const key = `conc-${Date.now()}`;
    const before = await balance(cluster, "shard-b", b(21));
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => transfer([["shard-b", b(21), "-3.00"], ["shard-c", c(21), "3.00"]], { idempotency_key: key })),
    );
    const txs = new Set(answers.map((r) => r.body.tx));
    expect(txs.size).toBe(1);
    expect(answers.every((r) => r.body.status === "committed")).toBe(true);
    expect(answers.filter((r) => r.body.replayed === false)).toHaveLength(1);
    expect(await balance(cluster, "shard-b", b(21))).toBe(before - 300n);
    const snap = await snapshot(cluster);
    expect(snap.history.get(`shard-b|${[...txs][0]}`)).toBe(1);
  });

  it("after a crash between claim and outcome, settles the outcome from the log and the shards instead of applying again", async () => {
    const etcd = cluster.etcdClient();
    // A transfer that committed while its idempotency record had no outcome yet (the claimant died in between).
    const done = await transfer([["shard-a", a(22), "-4.00"], ["shard-b", b(22), "4.00"]]);
    expect(done.body.status).toBe("committed");
    const fingerprintOf = async (key: string) => {
      // The fingerprint is whatever a claim of this transfer stores: make one with a throwaway key and read it back.
      await transfer([["shard-a", a(22), "-4.00"], ["shard-b", b(22), "4.00"]], { idempotency_key: key });
      return JSON.parse((await etcd.get(PREFIX + idempotencyEtcdKey(key)).string())!).fingerprint as string;
    };
    const fingerprint = await fingerprintOf(`probe-${Date.now()}`);
    const before = await balance(cluster, "shard-a", a(22));

    const crashedCommitted = `crashed-committed-${Date.now()}`;
    await etcd.put(PREFIX + idempotencyEtcdKey(crashedCommitted)).value(JSON.stringify({ tx: done.body.tx, fingerprint, shards: ["shard-a", "shard-b"] }));
    const r1 = await transfer([["shard-a", a(22), "-4.00"], ["shard-b", b(22), "4.00"]], { idempotency_key: crashedCommitted });
    expect(r1.body).toMatchObject({ status: "committed", tx: done.body.tx, replayed: true });

    const crashedNever = `crashed-never-${Date.now()}`;
    const ghost = "00000000-0000-4000-8000-000000000001";
    await etcd.put(PREFIX + idempotencyEtcdKey(crashedNever)).value(JSON.stringify({ tx: ghost, fingerprint, shards: ["shard-a", "shard-b"] }));
    const r2 = await transfer([["shard-a", a(22), "-4.00"], ["shard-b", b(22), "4.00"]], { idempotency_key: crashedNever });
    expect(r2.body).toMatchObject({ status: "aborted", reason: "resolver", tx: ghost, replayed: true });

    // A server that does not remember a transaction answers from the durable state. (Its own prefix: a second
    // server on PREFIX would take a newer epoch and fence this file's server out of the log.)
    const fresh = await serverOn(cluster, ["--etcd-prefix", "t3/", "--retain-transactions", "0"]);
    try {
      expect((await request(fresh.url, "GET", `/transactions/${done.body.tx}`)).body).toMatchObject({ tx: done.body.tx, status: "committed", shards: ["shard-a", "shard-b"] });
      expect((await request(fresh.url, "GET", `/transactions/${ghost}`)).status).toBe(404);
    } finally {
      await fresh.close(1_000);
    }

    expect(await balance(cluster, "shard-a", a(22))).toBe(before);
    // Settled outcomes are stored: the record now answers by itself.
    expect(JSON.parse((await etcd.get(PREFIX + idempotencyEtcdKey(crashedNever)).string())!).outcome).toEqual({ status: "aborted", reason: "resolver" });
  });
});

describe("the resolver", () => {
  async function preparedBranch(shard: string, tx: string, account: number, delta: number): Promise<void> {
    const conn = await mysql.createConnection(cluster.shard(shard).connectionOptions());
    const xid = `'${tx}','${shard}',${XID_FORMAT_ID}`;
    await conn.query(`XA START ${xid}`);
    await conn.query(`UPDATE accounts SET balance = balance + ${delta} WHERE id = ${account}`);
    await conn.query(`INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${tx}', ${account}, ${delta}, 0)`);
    await conn.query(`XA END ${xid}`);
    await conn.query(`XA PREPARE ${xid}`);
    // The owner goes away, as a crashed coordinator's connection does.
    await conn.end();
  }

  it("commits a prepared branch whose COMMIT record exists, rolls back one without a record, and forgets both records", async () => {
    const etcd = cluster.etcdClient();
    const committed = "00000000-0000-4000-8000-00000000c0c0";
    const orphan = "00000000-0000-4000-8000-00000000abab";
    const before = [await balance(cluster, "shard-a", a(30)), await balance(cluster, "shard-b", b(30))];
    await preparedBranch("shard-a", committed, a(30), -700);
    await preparedBranch("shard-b", committed, b(30), 700);
    await preparedBranch("shard-c", orphan, c(30), 900);
    await etcd.put(PREFIX + decisionKey(committed)).value(JSON.stringify({ kind: "decision", decision: "commit", branches: ["shard-a", "shard-b"] }));

    expect(await server.engine.scanNow()).toBe(true);
    expect(await balance(cluster, "shard-a", a(30))).toBe(before[0]! - 700n);
    expect(await balance(cluster, "shard-b", b(30))).toBe(before[1]! + 700n);
    // Presumed abort waits for a second scan that still sees the branch without a record.
    expect((await snapshot(cluster)).prepared).toEqual([`shard-c|${XID_FORMAT_ID}|${orphan}|shard-c`]);
    expect(await server.engine.scanNow()).toBe(true);
    expect(await server.engine.scanNow()).toBe(true);
    const snap = await snapshot(cluster);
    expect(snap.prepared).toEqual([]);
    expect(snap.history.get(`shard-a|${committed}`)).toBe(1);
    expect(snap.history.has(`shard-c|${orphan}`)).toBe(false);
    expect(await etcd.get(PREFIX + decisionKey(committed)).string()).toBeNull();
    expect(await etcd.get(PREFIX + decisionKey(orphan)).string()).toBeNull();
  });
});

describe("under load", () => {
  it("1,200 concurrent transfers: total conserved, no branch left prepared, every committed transfer in the history exactly once", async () => {
    const total = await totalBalance(cluster);
    const shards = ["shard-a", "shard-b", "shard-c"];
    const base = [a(0), b(0), c(0)];
    const CLIENTS = 64;
    const PER_CLIENT = 19;
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const results: Array<{ status: number; body: any; ops: Array<[string, number]> }> = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let i = 0; i < PER_CLIENT; i++) {
          const from = rand(3);
          const to = rand(4) === 0 ? from : (from + 1 + rand(2)) % 3;
          // 200 accounts per shard: enough contention for some lock conflicts, few enough to finish fast.
          const x = base[from]! + 100 + rand(200);
          let y = base[to]! + 100 + rand(200);
          if (y === x) y = x + 1;
          const ops: Array<[string, number]> = [
            [shards[from]!, x],
            [shards[to]!, y],
          ];
          const r = await transfer([[ops[0]![0], ops[0]![1], "-1.00"], [ops[1]![0], ops[1]![1], "1.00"]]);
          results.push({ ...r, ops });
        }
      }),
    );
    expect(results).toHaveLength(CLIENTS * PER_CLIENT);
    const committed = results.filter((r) => r.body.status === "committed");
    expect(results.every((r) => r.status === 200 || r.status === 409 || r.status === 202)).toBe(true);
    expect(committed.length).toBeGreaterThan(results.length / 2);

    // Let every coordinator finish, then let the resolver settle whatever is left.
    for (let i = 0; i < 200 && server.engine.inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.engine.inFlight).toBe(0);
    for (let i = 0; i < 3; i++) await server.engine.scanNow();

    expect(await totalBalance(cluster)).toBe(total);
    for (const shard of cluster.shards) {
      const conn = await shard.connect();
      expect(await xaRecover(conn), shard.name).toEqual([]);
    }
    const snap = await snapshot(cluster);
    const reasons = new Map<string, number>();
    for (const r of results) {
      const view = server.engine.transaction(r.body.tx)!;
      const trace = { header: view.trace!.header, steps: [...view.trace!.steps] };
      expect(replayTrace(trace), r.body.tx).toMatchObject({ ok: true });
      expect(validateEnvironment(trace), r.body.tx).toMatchObject({ ok: true });
      const k = r.body.reason ?? r.body.status;
      reasons.set(k, (reasons.get(k) ?? 0) + 1);
    }
    console.log(`1,200 transfers: ${JSON.stringify(Object.fromEntries(reasons))}`);
    for (const r of results) {
      const rows = r.ops.map(([shard]) => snap.history.get(`${shard}|${r.body.tx}`) ?? 0);
      if (r.body.status === "committed") expect(rows, r.body.tx).toEqual(r.ops[0]![0] === r.ops[1]![0] ? [2, 2] : [1, 1]);
      else expect(rows, r.body.tx).toEqual([0, 0]);
    }
  });
});

describe("under contention", () => {
  it("128 transfers among 4 hot accounts on 2 shards (every one waits for row locks): money conserved, atomic, no branch left prepared, every trace validates", async () => {
    const total = await totalBalance(cluster);
    const hot: Array<[string, number]> = [
      ["shard-a", a(50)],
      ["shard-a", a(51)],
      ["shard-b", b(50)],
      ["shard-b", b(51)],
    ];
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    const results: Array<{ body: any; ops: Array<[string, number]> }> = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 8; i++) {
          const x = rand(4);
          const y = (x + 1 + rand(3)) % 4;
          const ops = [hot[x]!, hot[y]!];
          const r = await transfer([[ops[0]![0], ops[0]![1], "-1.00"], [ops[1]![0], ops[1]![1], "1.00"]]);
          results.push({ body: r.body, ops });
        }
      }),
    );
    for (let i = 0; i < 200 && server.engine.inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    for (let i = 0; i < 3; i++) await server.engine.scanNow();
    expect(await totalBalance(cluster)).toBe(total);
    const snap = await snapshot(cluster);
    expect(snap.prepared).toEqual([]);
    const outcomes = new Map<string, number>();
    for (const r of results) {
      const k = r.body.reason ?? r.body.status;
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
      const rows = r.ops.map(([shard]) => snap.history.get(`${shard}|${r.body.tx}`) ?? 0);
      const applied = r.ops[0]![0] === r.ops[1]![0] ? [2, 2] : [1, 1];
      expect(rows, r.body.tx).toEqual(r.body.status === "committed" ? applied : [0, 0]);
      const view = server.engine.transaction(r.body.tx)!;
      const trace = { header: view.trace!.header, steps: [...view.trace!.steps] };
      expect(replayTrace(trace), r.body.tx).toMatchObject({ ok: true });
      expect(validateEnvironment(trace), r.body.tx).toMatchObject({ ok: true });
    }
    console.log(`hot accounts, 128 transfers: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expect(outcomes.get("committed") ?? 0).toBeGreaterThan(0);
  });
});

describe("operations endpoints", () => {
  it("serves healthz, ready, metrics, and admin only with the token", async () => {
    expect((await request(url, "GET", "/healthz")).body).toEqual({ status: "ok" });
    const ready = await request(url, "GET", "/ready");
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ ready: true, etcd: true, resolver_caught_up: true, shards: { "shard-a": true, "shard-b": true, "shard-c": true } });
    const metrics = await request(url, "GET", "/metrics");
    for (const name of [
      "speccommit_transactions_total",
      "speccommit_transaction_duration_seconds_bucket",
      "speccommit_phase_duration_seconds_bucket",
      "speccommit_transactions_in_flight",
      "speccommit_resolver_actions_total",
      "speccommit_txlog_write_duration_seconds_bucket",
    ]) {
      expect(metrics.body).toContain(name);
    }
    expect(metrics.body).toMatch(/speccommit_transactions_total\{protocol="2pc",outcome="committed"\} [1-9]/);
    expect((await request(url, "GET", "/admin/shards")).status).toBe(401);
    expect((await request(url, "GET", "/admin/shards", { headers: { Authorization: "Bearer wrong-token!" } })).status).toBe(401);
    const admin = await request(url, "GET", "/admin/shards", { headers: { Authorization: "Bearer s3cret-token" } });
    expect(admin.status).toBe(200);
    // A cluster file names the shards' data directories: the server talks to them over their unix sockets.
    expect(admin.body.shards.map((s: { address: string }) => s.address)).toEqual(cluster.shards.map((s) => `unix:${s.db.dataDir}/mysqld.sock`));
    expect(admin.body.shards.map((s: { shard: string; reachable: boolean; prepared: string[] }) => [s.shard, s.reachable, s.prepared])).toEqual([
      ["shard-a", true, []],
      ["shard-b", true, []],
      ["shard-c", true, []],
    ]);
  });

  it("answers /health like /healthz; /metrics is open by default (the admin token does not guard it) and needs the metrics_token when one is set", async () => {
    expect(await request(url, "GET", "/health")).toMatchObject({ status: 200, body: { status: "ok" } });
    // This file's server has an admin token and no metrics token.
    expect((await request(url, "GET", "/metrics")).status).toBe(200);
    const guarded = await serverOn(cluster, ["--etcd-prefix", "t4/", "--metrics-token", "scrape-token-1"]);
    try {
      for (const authorization of [undefined, "Bearer wrong-token-1", "Bearer s3cret-token", "scrape-token-1", "Bearer scrape-token-"]) {
        const r = await request(guarded.url, "GET", "/metrics", { headers: authorization === undefined ? {} : { Authorization: authorization } });
        expect([r.status, r.headers["www-authenticate"], r.body.error], String(authorization)).toEqual([401, "Bearer", expect.stringMatching(/Authorization: Bearer <metrics_token>/)]);
      }
      const ok = await request(guarded.url, "GET", "/metrics", { headers: { Authorization: "Bearer scrape-token-1" } });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatch(/^process_cpu_seconds_total /m);
      expect((await request(guarded.url, "GET", "/health")).status).toBe(200);
    } finally {
      await guarded.close(1_000);
    }
  });

  it("answers 503 with Retry-After past in_flight_max, and nothing is applied for the refused transfer", async () => {
    const small = await serverOn(cluster, ["--etcd-prefix", "t2/", "--in-flight-max", "1"]);
    try {
      // Hold a row lock so that the first transfer stays in flight.
      const holder = await mysql.createConnection(cluster.shard("shard-a").connectionOptions());
      await holder.query("START TRANSACTION");
      await holder.query(`SELECT balance FROM accounts WHERE id = ${a(40)} FOR UPDATE`);
      const first = request(small.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: a(40), delta: -1 }, { shard_id: "shard-b", account_id: b(40), delta: 1 }] } });
      for (let i = 0; i < 100 && small.engine.inFlight === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      const before = await balance(cluster, "shard-a", a(41));
      const refused = await request(small.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: a(41), delta: -1 }, { shard_id: "shard-b", account_id: b(41), delta: 1 }] } });
      expect(refused.status).toBe(503);
      expect(refused.headers["retry-after"]).toBe("1");
      await holder.query("ROLLBACK");
      await holder.end();
      expect((await first).body.status).toBe("committed");
      expect(await balance(cluster, "shard-a", a(41))).toBe(before);
    } finally {
      await small.close(2_000);
    }
  });
});
