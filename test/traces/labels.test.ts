/**
 * The labels diagrams show for effects and answers (spec/labels.ts), over
 * every effect and result kind of the vocabulary: each names its kind and its
 * target, tells two branches apart, and carries no raw JSON.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decisionKey, EPOCH_KEY, speculativeKey, type LogRecord, type TxId, type XaError } from "../../spec/kernel/effects.ts";
import type { Effect as AnyEffect, Result as AnyResult } from "../../spec/kernel/effects.ts";
import { answerLabel, effectLabel, isResult, resultLabel, targetOf, type Context } from "../../spec/labels.ts";

/** The word a diagram names each kind by (docs/traces.md): XA statements as in SQL, the rest lower case. */
const kindWord: Readonly<Record<AnyEffect["t"], string>> = {
  "xa.exec": "EXEC",
  "xa.prepare": "PREPARE",
  "xa.commit": "COMMIT",
  "xa.rollback": "ROLLBACK",
  "xa.recover": "RECOVER",
  "xa.kill": "KILL",
  "local.apply": "apply",
  "local.tombstone": "tombstone",
  "local.compensate": "compensate",
  "local.release": "release",
  "local.scan": "scan",
  "log.put": "put",
  "log.list": "list",
  "log.delete": "delete",
  reply: "reply",
  timer: "timer",
};

const shard = fc.oneof(fc.constantFrom("shard-a", "shard-b", "s1", "s2"), fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/));
const txId = fc.oneof(fc.uuid(), fc.stringMatching(/^t[0-9]{1,3}$/));
const conn = fc.oneof(fc.constant(""), fc.stringMatching(/^[1-9][0-9]{0,9}:[1-9][0-9]{0,3}$/), fc.stringMatching(/^t[0-9]\/s[0-9]@[0-9]$/));
const ops = fc.array(fc.record({ account: fc.nat(), delta: fc.integer() }), { maxLength: 64 });
const record: fc.Arbitrary<LogRecord> = fc.oneof(
  fc.record({ kind: fc.constant("decision" as const), decision: fc.constantFrom("commit" as const, "abort" as const), branches: fc.array(shard) }),
  fc.record({ kind: fc.constant("epoch" as const) }),
  fc.record({ kind: fc.constant("speculation" as const), state: fc.constantFrom("SPEC_EXECUTING" as const, "SPEC_COMMITTED" as const, "SPEC_ROLLED_BACK" as const), branches: fc.array(shard) }),
  fc.record({ kind: fc.constant("staging" as const), branches: fc.array(fc.record({ shard, conn }), { maxLength: 8 }) }),
);
/** A key and the record a protocol would write there. */
const keyed = fc.oneof(
  fc.tuple(txId, record).map(([tx, value]) => ({ key: value.kind === "speculation" ? speculativeKey(tx) : value.kind === "epoch" ? EPOCH_KEY : decisionKey(tx), value })),
);
const outcome = fc.oneof(
  fc.constant({ status: "committed" as const }),
  fc.constant({ status: "in_doubt" as const }),
  fc.constantFrom("insufficient_funds", "conflict", "timeout", "shard_unavailable", "resolver").map((reason) => ({ status: "aborted" as const, reason: reason as "conflict" })),
);

/** One arbitrary per kind: the Record's type makes a kind added to the vocabulary fail to compile here until it is covered. */
const byKind: { readonly [K in AnyEffect["t"]]: fc.Arbitrary<Extract<AnyEffect, { t: K }>> } = {
  "xa.exec": fc.record({ t: fc.constant("xa.exec" as const), tx: txId, shard, ops, guard: fc.boolean() }),
  "xa.prepare": fc.record({ t: fc.constant("xa.prepare" as const), tx: txId, shard }),
  "xa.commit": fc.record({ t: fc.constant("xa.commit" as const), tx: txId, shard, onePhase: fc.boolean() }),
  "xa.rollback": fc.record({ t: fc.constant("xa.rollback" as const), tx: txId, shard }),
  "xa.recover": fc.record({ t: fc.constant("xa.recover" as const), shard }),
  "xa.kill": fc.record({ t: fc.constant("xa.kill" as const), shard, conn }),
  "local.apply": fc.record({
    t: fc.constant("local.apply" as const),
    tx: txId,
    shard,
    ops,
    branches: fc.array(shard),
    escrow: fc.boolean(),
    parts: fc.constantFrom("both" as const, "write" as const, "undo" as const),
  }),
  "local.tombstone": fc.record({ t: fc.constant("local.tombstone" as const), tx: txId, shard }),
  "local.compensate": fc.record({ t: fc.constant("local.compensate" as const), tx: txId, shard, retire: fc.boolean() }),
  "local.release": fc.record({ t: fc.constant("local.release" as const), tx: txId, shard, row: fc.constantFrom("retire" as const, "delete" as const) }),
  "local.scan": fc.record({ t: fc.constant("local.scan" as const), shard }),
  "log.put": fc
    .tuple(keyed, fc.nat({ max: 1_000 }), fc.option(fc.record({ key: fc.constant(EPOCH_KEY), version: fc.nat() }), { nil: undefined }))
    .map(([k, ifVersion, fence]) => ({ t: "log.put" as const, ...k, ifVersion, ...(fence !== undefined ? { fence } : {}) })),
  "log.list": fc.record({ t: fc.constant("log.list" as const), prefix: fc.constantFrom("tx/", "speculative/", "epoch", "") }),
  "log.delete": fc.record({ t: fc.constant("log.delete" as const), key: keyed.map((k) => k.key) }),
  reply: fc.record({ t: fc.constant("reply" as const), tx: txId, outcome }),
  timer: fc.record({ t: fc.constant("timer" as const), id: fc.constantFrom("vote", "apply", "retry"), ms: fc.nat() }),
};
const anyEffect: fc.Arbitrary<AnyEffect> = fc.oneof(...Object.values(byKind));

/** A context: about no transaction, about the effect's own, or about another one. */
const withContext = <T extends AnyEffect>(fx: fc.Arbitrary<T>): fc.Arbitrary<[T, Context]> =>
  fx.chain((e) => fc.tuple(fc.constant(e), fc.oneof(fc.constant({}), fc.constant("tx" in e ? { tx: e.tx } : {}), txId.map((tx) => ({ tx })))));

/** How a label shows a transaction id: whole when short, a UUID by its first group. */
const shown = (tx: TxId): string => (tx.length <= 12 ? tx : tx.slice(0, 8));

/** The transaction a txlog key belongs to, if any. */
const txOfKey = (key: string): TxId | null => (key.startsWith("tx/") ? key.slice(3) : key.startsWith("speculative/") ? key.slice("speculative/".length) : null);

/** What tells two targets apart in a label: the shard, or the key with its transaction as shown. */
function target(e: AnyEffect): string | null {
  if ("shard" in e) return e.shard;
  if (!("key" in e)) return null;
  const tx = txOfKey(e.key);
  return tx === null ? e.key : `${e.key.slice(0, e.key.indexOf("/") + 1)}${shown(tx)}`;
}

function namesTarget(e: AnyEffect, label: string, ctx: Context): void {
  switch (e.t) {
    case "log.put":
    case "log.delete": {
      const tx = txOfKey(e.key);
      // The trace's own record is named by its kind; any other key by its prefix and transaction.
      if (tx !== null && tx !== ctx.tx) expect(label).toContain(`${e.key.slice(0, e.key.indexOf("/") + 1)}${shown(tx)}`);
      else if (e.t === "log.delete") expect(label).toMatch(/ (tx|spec) record|epoch/);
      return;
    }
    case "log.list":
      expect(label).toContain(e.prefix);
      return;
    case "reply":
      expect(label).toContain(e.outcome.status);
      return;
    case "timer":
      expect(label).toContain(e.id);
      return;
    default:
      expect(label.split(" ")).toContain(e.shard);
      if ("tx" in e && e.tx !== ctx.tx) expect(label).toContain(shown(e.tx));
      if (e.t === "xa.kill") expect(label).toContain(e.conn);
  }
}

/** No JSON, one line, and short enough for a box: ids are the longest part (a UUID shows as 8 characters). */
function plain(label: string): void {
  expect(label).not.toMatch(/[{}"\n]/);
  expect(label.length).toBeLessThanOrEqual(90);
}

describe("effect labels", () => {
  it("every effect kind: the label starts with the kind's word and names the target", () => {
    fc.assert(
      fc.property(withContext(anyEffect), ([e, ctx]) => {
        const label = effectLabel(e, ctx);
        expect(label.split(" ")[0]).toBe(kindWord[e.t]);
        namesTarget(e, label, ctx);
        plain(label);
      }),
      { numRuns: 2_000 },
    );
  });

  it("two effects of one kind on different shards, or on different transactions' keys, never share a label", () => {
    const twoOfAKind = fc
      .constantFrom(...(Object.keys(byKind) as AnyEffect["t"][]))
      .chain((t) => fc.tuple(byKind[t] as fc.Arbitrary<AnyEffect>, byKind[t] as fc.Arbitrary<AnyEffect>));
    fc.assert(
      fc.property(twoOfAKind, fc.oneof(fc.constant({}), txId.map((tx) => ({ tx }))), ([a, b], ctx: Context) => {
        const targetA = target(a);
        const targetB = target(b);
        fc.pre(targetA !== null && targetB !== null && targetA !== targetB);
        expect(effectLabel(a, ctx)).not.toBe(effectLabel(b, ctx));
      }),
      { numRuns: 2_000 },
    );
  });

  it("targets: a shard's effects go to that shard, the log's to txlog, a reply to the client, a timer nowhere", () => {
    fc.assert(
      fc.property(anyEffect, (e) => {
        const expected = e.t === "reply" ? "client" : e.t === "timer" ? null : e.t.startsWith("log.") ? "txlog" : (e as { shard: string }).shard;
        expect(targetOf(e)).toBe(expected);
      }),
    );
  });
});

const xaError = fc.constantFrom<XaError>("NOTA", "RMFAIL", "RBROLLBACK", "DUPID", "LOCK_TIMEOUT", "DEADLOCK", "INSUFFICIENT_FUNDS", "UNAVAILABLE");
const xaResult = fc.oneof(fc.constant({ ok: true as const }), xaError.map((err) => ({ ok: false as const, err })));
const unavailable = { ok: false as const, err: "UNAVAILABLE" as const };

/** A result for each effect kind that has one, with every answer its type allows. */
const anyResult = fc.oneof(
  fc.record({ t: fc.constantFrom("xa.exec" as const, "xa.prepare" as const, "xa.commit" as const, "xa.rollback" as const), tx: txId, shard, r: xaResult }),
  fc.record({ t: fc.constant("xa.exec" as const), tx: txId, shard, r: xaResult, conn: fc.option(conn, { nil: null }) }),
  fc.record({ t: fc.constant("xa.recover" as const), shard, r: fc.oneof(fc.record({ ok: fc.constant(true as const), prepared: fc.array(fc.record({ tx: txId, shard })) }), fc.constant(unavailable)) }),
  fc.record({ t: fc.constant("xa.kill" as const), shard, conn, r: xaResult }),
  fc.record({
    t: fc.constant("log.put" as const),
    key: keyed.map((k) => k.key),
    r: fc.oneof(
      fc.record({ ok: fc.constant(true as const), version: fc.nat() }),
      fc.record({ ok: fc.constant(false as const), err: fc.constant("CAS" as const), current: fc.option(record, { nil: null }), version: fc.nat() }),
      fc.constantFrom({ ok: false as const, err: "FENCED" as const }, unavailable),
    ),
  }),
  fc.record({ t: fc.constant("log.list" as const), r: fc.oneof(fc.record({ ok: fc.constant(true as const), entries: fc.array(keyed.map((k) => ({ ...k, version: 1 })), { maxLength: 5 }) }), fc.constant(unavailable)) }),
  fc.record({ t: fc.constant("log.delete" as const), key: keyed.map((k) => k.key), r: fc.constantFrom({ ok: true as const }, { ok: false as const, err: "FENCED" as const }, unavailable) }),
  fc.record({ t: fc.constant("local.apply" as const), tx: txId, shard, r: fc.oneof(fc.constant({ ok: true as const }), fc.constantFrom("INSUFFICIENT_FUNDS" as const, "DUPLICATE" as const, "UNAVAILABLE" as const).map((err) => ({ ok: false as const, err }))) }),
  fc.record({
    t: fc.constant("local.tombstone" as const),
    tx: txId,
    shard,
    r: fc.oneof(fc.constant({ ok: true as const }), fc.constantFrom("undo" as const, "released" as const, "compensated" as const, "tombstone" as const).map((existing) => ({ ok: false as const, err: "DUPLICATE" as const, existing })), fc.constant(unavailable)),
  }),
  fc.record({ t: fc.constantFrom("local.compensate" as const, "local.release" as const), tx: txId, shard, r: fc.oneof(fc.record({ ok: fc.constant(true as const), applied: fc.boolean() }), fc.constant(unavailable)) }),
  fc.record({ t: fc.constant("local.scan" as const), shard, r: fc.oneof(fc.record({ ok: fc.constant(true as const), rows: fc.array(fc.record({ tx: txId, branch: shard, state: fc.constant("undo" as const), branches: fc.array(shard) }), { maxLength: 4 }) }), fc.constant(unavailable)) }),
  fc.record({ t: fc.constant("timeout" as const), id: fc.constantFrom("vote", "apply") }),
) as fc.Arbitrary<AnyResult>;

describe("answer labels", () => {
  it("every result: a short answer without JSON; with no request to pair it with, its kind and target too", () => {
    fc.assert(
      fc.property(anyResult, fc.oneof(fc.constant({}), txId.map((tx) => ({ tx }))), (r, ctx: Context) => {
        expect(isResult(r)).toBe(true);
        const answer = answerLabel(r);
        expect(answer).not.toBe("");
        plain(answer);
        const label = resultLabel(r, ctx);
        plain(label);
        if (r.t === "timeout") {
          expect(label).toBe(`timeout ${r.id}`);
          return;
        }
        expect(label.split(" ")[0]).toBe(kindWord[r.t]);
        expect(label.endsWith(` -> ${answer}`)).toBe(true);
        if ("shard" in r) expect(label.split(" ")).toContain(r.shard);
      }),
      { numRuns: 2_000 },
    );
  });

  it("a put's answer is the version it wrote; a failed compare says what the key holds", () => {
    expect(answerLabel({ t: "log.put", key: "tx/t1", r: { ok: true, version: 7 } })).toBe("v7");
    expect(answerLabel({ t: "log.put", key: "tx/t1", r: { ok: false, err: "CAS", current: { kind: "decision", decision: "abort", branches: [] }, version: 3 } })).toBe("CAS failed (holds ABORT v3)");
    expect(answerLabel({ t: "log.put", key: "tx/t1", r: { ok: false, err: "CAS", current: null, version: 0 } })).toBe("CAS failed (absent)");
  });

  it("the examples docs/traces.md gives", () => {
    const ctx = { tx: "589d5781-d0f6-45aa-8d0b-6b1c1f0e2a11" };
    const tx = ctx.tx;
    expect(effectLabel({ t: "xa.prepare", tx, shard: "shard-b" }, ctx)).toBe("PREPARE shard-b");
    expect(effectLabel({ t: "log.put", key: decisionKey(tx), value: { kind: "decision", decision: "commit", branches: [] }, ifVersion: 0 }, ctx)).toBe("put COMMIT");
    expect(effectLabel({ t: "xa.kill", shard: "shard-a", conn: "12" }, ctx)).toBe("KILL shard-a conn 12");
    expect(effectLabel({ t: "local.apply", tx, shard: "shard-b", ops: [], branches: [], escrow: true, parts: "both" }, ctx)).toBe("apply shard-b");
    expect(effectLabel({ t: "xa.prepare", tx: "t2", shard: "s1" }, { tx: "t1" })).toBe("PREPARE s1 of t2");
    expect(effectLabel({ t: "log.delete", key: decisionKey(tx) }, {})).toBe("delete tx/589d5781");
  });
});
