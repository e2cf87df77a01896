// The history checkers of conformance/serializable.ts: they accept every history a serial execution makes (by
// property, over generated histories, whatever order the rows are given in, with and without commit timestamps),
// and each corruption of such a history is caught as the violation it is (the mutants).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { auditAnswers, auditSerializable, auditSpeculative, type CommittedTx, type History, type Row } from "../../conformance/serializable.ts";

interface Gen {
  history: History;
  /** Per tx, the accounts it touched. */
  touched: Map<string, string[]>;
}

const ACCOUNTS = ["shard-a:1", "shard-a:2", "shard-b:3", "shard-b:4", "shard-c:5"];
const shardOf = (a: string) => a.split(":")[0]!;

/** A serial execution: transfers applied one after the other when funds allow, rows numbered per shard in that order (with gaps). */
const serialHistory = (withTs: boolean) =>
  fc
    .record({
      seed: fc.array(fc.integer({ min: 0, max: 500 }), { minLength: ACCOUNTS.length, maxLength: ACCOUNTS.length }),
      transfers: fc.array(fc.record({ from: fc.nat(ACCOUNTS.length - 1), to: fc.nat(ACCOUNTS.length - 1), cents: fc.integer({ min: 1, max: 300 }), gap: fc.integer({ min: 1, max: 3 }) }), { maxLength: 40 }),
      shuffle: fc.array(fc.nat(), { maxLength: 40 }),
    })
    .map(({ seed, transfers, shuffle }): Gen => {
      const bal = new Map(ACCOUNTS.map((a, i) => [a, BigInt(seed[i]!)]));
      const seq = new Map<string, bigint>();
      const txs: CommittedTx[] = [];
      const touched = new Map<string, string[]>();
      let ts = 1_000n * 65_536n;
      for (const [i, t] of transfers.entries()) {
        const from = ACCOUNTS[t.from]!;
        const to = ACCOUNTS[t.to]!;
        if (from === to || bal.get(from)! < BigInt(t.cents)) continue;
        bal.set(from, bal.get(from)! - BigInt(t.cents));
        bal.set(to, bal.get(to)! + BigInt(t.cents));
        const rows: Row[] = [
          { account: from, delta: -BigInt(t.cents) },
          { account: to, delta: BigInt(t.cents) },
        ].map((r) => {
          const s = (seq.get(shardOf(r.account)) ?? 0n) + BigInt(t.gap);
          seq.set(shardOf(r.account), s);
          return { ...r, seq: s };
        });
        ts += BigInt(t.gap);
        txs.push({ tx: `t${i}`, commit_ts: withTs ? ts : null, rows });
        touched.set(`t${i}`, [from, to]);
      }
      // The checker must not depend on the order the rows are read in.
      const shuffled = [...txs];
      shuffle.forEach((k, i) => {
        const j = k % Math.max(1, shuffled.length);
        const a = i % Math.max(1, shuffled.length);
        if (shuffled.length > 0) [shuffled[a], shuffled[j]] = [shuffled[j]!, shuffled[a]!];
      });
      return { history: { seed: new Map(ACCOUNTS.map((a, i) => [a, BigInt(seed[i]!)])), txs: shuffled, final: bal }, touched };
    });

const withTx = (h: History, tx: string, f: (t: CommittedTx) => CommittedTx | null): History => ({
  ...h,
  txs: h.txs.flatMap((t) => {
    if (t.tx !== tx) return [t];
    const u = f(t);
    return u === null ? [] : [u];
  }),
});

describe("auditSerializable accepts every serial history", () => {
  it("ordered by commit_ts and by the conflict order (no timestamps)", () => {
    fc.assert(
      fc.property(fc.boolean().chain(serialHistory), ({ history }) => {
        const v = auditSerializable(history);
        expect(v).toMatchObject({ ok: true, txs: history.txs.length });
        if (v.ok && history.txs.length > 0) expect(v.by).toBe(history.txs[0]!.commit_ts === null ? "conflict" : "commit_ts");
      }),
      { numRuns: 300 },
    );
  });

  it("auditSpeculative accepts them too (serial is one of the behaviours its weaker isolation allows)", () => {
    fc.assert(
      fc.property(serialHistory(false), ({ history }) => {
        expect(auditSpeculative(history)).toMatchObject({ ok: true, txs: history.txs.length });
      }),
      { numRuns: 200 },
    );
  });
});

describe("mutants: each corruption of a serial history is caught", () => {
  const nonEmpty = (withTs: boolean) => serialHistory(withTs).filter((g) => g.history.txs.length > 0);

  it("a delta changed: the transaction mints money", () => {
    fc.assert(
      fc.property(nonEmpty(false), fc.nat(), ({ history }, k) => {
        const t = history.txs[k % history.txs.length]!;
        const h = withTx(history, t.tx, (x) => ({ ...x, rows: [{ ...x.rows[0]!, delta: x.rows[0]!.delta + 1n }, ...x.rows.slice(1)] }));
        for (const audit of [auditSerializable, auditSpeculative]) expect(audit(h)).toMatchObject({ ok: false, violation: { kind: "mint", tx: t.tx } });
      }),
      { numRuns: 200 },
    );
  });

  it("a committed transaction's rows missing: the balances are not explained", () => {
    fc.assert(
      fc.property(nonEmpty(true), fc.nat(), ({ history }, k) => {
        const t = history.txs[k % history.txs.length]!;
        const h = withTx(history, t.tx, () => null);
        // Unexplained at the end, or already below zero where a later row spent what the missing one brought.
        for (const audit of [auditSerializable, auditSpeculative]) expect(audit(h)).toMatchObject({ ok: false, violation: { kind: expect.stringMatching(/^(final|negative)$/) } });
      }),
      { numRuns: 200 },
    );
  });

  it("a lost update: one final balance off by a cent either way (total kept), or the total off", () => {
    fc.assert(
      fc.property(serialHistory(false), fc.nat(ACCOUNTS.length - 1), fc.nat(ACCOUNTS.length - 2), ({ history }, i, d) => {
        const a = ACCOUNTS[i]!;
        const b = ACCOUNTS[(i + 1 + d) % ACCOUNTS.length]!;
        const final = new Map(history.final);
        final.set(a, final.get(a)! + 1n);
        final.set(b, final.get(b)! - 1n);
        for (const audit of [auditSerializable, auditSpeculative]) expect(audit({ ...history, final })).toMatchObject({ ok: false, violation: { kind: "final" } });
        const more = new Map(history.final).set(a, history.final.get(a)! + 1n);
        for (const audit of [auditSerializable, auditSpeculative]) expect(audit({ ...history, final: more })).toMatchObject({ ok: false, violation: { kind: "total" } });
      }),
      { numRuns: 200 },
    );
  });

  it("commit timestamps against the conflict order", () => {
    fc.assert(
      fc.property(
        nonEmpty(true).filter(({ touched }) => conflicting(touched) !== null),
        ({ history, touched }) => {
          const [t, u] = conflicting(touched)!;
          const ts = new Map(history.txs.map((x) => [x.tx, x.commit_ts!]));
          const h: History = { ...history, txs: history.txs.map((x) => (x.tx === t ? { ...x, commit_ts: ts.get(u)! } : x.tx === u ? { ...x, commit_ts: ts.get(t)! } : x)) };
          expect(auditSerializable(h)).toMatchObject({ ok: false, violation: { kind: "ts_against_conflict" } });
          // Caught too when the other transactions are not stamped (yet): the conflict order is then the serial order.
          const partly: History = { ...h, txs: h.txs.map((x) => (x.tx === t || x.tx === u ? x : { ...x, commit_ts: null })) };
          expect(auditSerializable(partly)).toMatchObject({ ok: false, violation: { kind: "ts_against_conflict" } });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("an opened account credited from nothing: minted", () => {
    const h: History = {
      seed: new Map([["shard-a:1", 100n]]),
      opened: new Set(["shard-b:9"]),
      txs: [{ tx: "open", commit_ts: null, rows: [{ account: "shard-b:9", delta: 50n, seq: 1n }] }],
      final: new Map([
        ["shard-a:1", 100n],
        ["shard-b:9", 50n],
      ]),
    };
    expect(auditSerializable(h)).toMatchObject({ ok: false, violation: { kind: "mint", tx: "open" } });
    const funded: History = { ...h, txs: [{ tx: "open", commit_ts: null, rows: [{ account: "shard-a:1", delta: -50n, seq: 1n }, { account: "shard-b:9", delta: 50n, seq: 1n }] }], final: new Map([["shard-a:1", 50n], ["shard-b:9", 50n]]) };
    expect(auditSerializable(funded)).toMatchObject({ ok: true });
    expect(auditSerializable({ ...funded, opened: new Set() })).toMatchObject({ ok: false, violation: { kind: "unknown_account", account: "shard-b:9" } });
  });

  // Two transfers on the same two accounts (one per shard); the rows on one shard in one order, on the other in the other.
  const crossed = (seqA: [bigint, bigint], seqB: [bigint, bigint]): History => ({
    seed: new Map([
      ["shard-a:1", 100n],
      ["shard-b:2", 100n],
    ]),
    txs: [
      { tx: "T", commit_ts: null, rows: [{ account: "shard-a:1", delta: -10n, seq: seqA[0] }, { account: "shard-b:2", delta: 10n, seq: seqB[0] }] },
      { tx: "U", commit_ts: null, rows: [{ account: "shard-a:1", delta: 5n, seq: seqA[1] }, { account: "shard-b:2", delta: -5n, seq: seqB[1] }] },
    ],
    final: new Map([
      ["shard-a:1", 95n],
      ["shard-b:2", 105n],
    ]),
  });

  it("a cycle in the conflict order: no serial order explains it", () => {
    expect(auditSerializable(crossed([1n, 2n], [1n, 2n]))).toMatchObject({ ok: true, order: ["T", "U"] });
    expect(auditSerializable(crossed([2n, 1n], [2n, 1n]))).toMatchObject({ ok: true, order: ["U", "T"] });
    expect(auditSerializable(crossed([1n, 2n], [2n, 1n]))).toMatchObject({ ok: false, violation: { kind: "cycle" } });
    const v = auditSerializable(crossed([2n, 1n], [1n, 2n]));
    expect(v).toMatchObject({ ok: false, violation: { kind: "cycle" } });
    if (!v.ok && v.violation.kind === "cycle") expect(new Set(v.violation.txs)).toEqual(new Set(["T", "U"]));
    // The speculative path promises no global order: the same history is within what it states.
    expect(auditSpeculative(crossed([1n, 2n], [2n, 1n])).ok).toBe(true);
    expect(auditSerializable({ ...crossed([1n, 1n], [1n, 2n]) })).toMatchObject({ ok: false, violation: { kind: "same_seq" } });
  });

  it("a balance below zero in the only order the history allows", () => {
    // A at 0 is credited by T then debited by U; rows saying U ran first are a history no CHECK (balance >= 0) allows.
    const h = (first: "T" | "U"): History => ({
      seed: new Map([
        ["shard-a:1", 0n],
        ["shard-a:2", 10n],
        ["shard-b:3", 0n],
      ]),
      txs: [
        { tx: "T", commit_ts: null, rows: [{ account: "shard-a:2", delta: -10n, seq: 1n }, { account: "shard-a:1", delta: 10n, seq: first === "T" ? 2n : 4n }] },
        { tx: "U", commit_ts: null, rows: [{ account: "shard-a:1", delta: -10n, seq: first === "T" ? 3n : 3n }, { account: "shard-b:3", delta: 10n, seq: 1n }] },
      ],
      final: new Map([
        ["shard-a:1", 0n],
        ["shard-a:2", 0n],
        ["shard-b:3", 10n],
      ]),
    });
    for (const audit of [auditSerializable, auditSpeculative]) {
      expect(audit(h("T")).ok).toBe(true);
      expect(audit(h("U"))).toMatchObject({ ok: false, violation: { kind: "negative", account: "shard-a:1", tx: "U" } });
    }
  });
});

/** Two transactions that touched a common account, in their serial order. */
function conflicting(touched: ReadonlyMap<string, readonly string[]>): [string, string] | null {
  const txs = [...touched.keys()].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  for (let i = 0; i < txs.length; i++) for (let j = i + 1; j < txs.length; j++) if (touched.get(txs[i]!)!.some((a) => touched.get(txs[j]!)!.includes(a))) return [txs[i]!, txs[j]!];
  return null;
}

describe("auditAnswers", () => {
  const ops = new Map([
    ["shard-a:1", -5n],
    ["shard-b:2", 5n],
  ]);
  const rows = (n: number): Row[] =>
    [
      { account: "shard-a:1", delta: -5n, seq: 1n },
      { account: "shard-b:2", delta: 5n, seq: 1n },
    ].slice(0, n);
  it("accepts all rows for committed, none for aborted, all or none in doubt", () => {
    expect(auditAnswers([{ tx: "c", status: "committed", ops }], new Map([["c", rows(2)]]))).toBeNull();
    expect(auditAnswers([{ tx: "a", status: "aborted", ops }], new Map())).toBeNull();
    expect(auditAnswers([{ tx: "d", status: "in_doubt", ops }], new Map([["d", rows(2)]]))).toBeNull();
    expect(auditAnswers([{ tx: "d", status: "in_doubt", ops }], new Map())).toBeNull();
  });
  it("catches a committed transfer with a branch missing, an aborted one with rows, a partial one in doubt", () => {
    expect(auditAnswers([{ tx: "c", status: "committed", ops }], new Map([["c", rows(1)]]))).toMatchObject({ kind: "committed_rows" });
    expect(auditAnswers([{ tx: "c", status: "committed", ops }], new Map())).toMatchObject({ kind: "committed_rows" });
    expect(auditAnswers([{ tx: "a", status: "aborted", ops }], new Map([["a", rows(1)]]))).toMatchObject({ kind: "aborted_has_rows" });
    expect(auditAnswers([{ tx: "d", status: "in_doubt", ops }], new Map([["d", rows(1)]]))).toMatchObject({ kind: "partial" });
  });
});
