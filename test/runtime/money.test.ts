/**
 * Money at the decoder (runtime/transfer.ts): a fast-check property over
 * POST /transfer bodies with 1 to 64 ops, amounts from 0 to far beyond the
 * limit, JSON integers and decimal strings mixed, written as text so that
 * integer literals JSON.parse would round (2^53 + 1, 10^20) reach the
 * decoder as the client wrote them, with negative zero, leading zeros,
 * fractions and exponents among them.
 *
 * The oracle reads every amount from the body's text with BigInt, on its own
 * (nothing of runtime/ is used to compute it): a body is accepted only if
 * every amount is well formed and within DELTA_CENTS_MAX, its exact sum is
 * zero, every account's exact net change is within DELTA_CENTS_MAX and some
 * account changes; then the branches are exactly those net changes. A body
 * refused for its sum names the exact sum.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BadRequest, decodeTransfer, DELTA_CENTS_MAX } from "../../runtime/transfer.ts";

const D = 10n ** 15n;
const SHARD_OF: Readonly<Record<number, string>> = { 1: "shard-a", 2: "shard-a", 3: "shard-a", 4: "shard-b", 5: "shard-b", 6: "shard-b" };
const catalog = { shards: ["shard-a", "shard-b"], hasAccount: (s: string, id: number) => SHARD_OF[id] === s };
const RUNS = Number(process.env.MONEY_PBT_RUNS ?? 1_000);

/** One op as the client wrote it: the account, and the delta's JSON text (a number token, or a string literal). */
interface WrittenOp {
  readonly account: number;
  readonly json: string;
}

/** "0.01" for 1n, "-1234.50" for -123450n: the oracle's own formatting of exact cents. */
function decimal(c: bigint): string {
  const a = c < 0n ? -c : c;
  return `${c < 0n ? "-" : ""}${a / 100n}.${(a % 100n).toString().padStart(2, "0")}`;
}

/** The exact cents of a delta's JSON text, or null when the decoder must refuse it. */
function centsOfText(json: string): bigint | null {
  let v: bigint;
  if (json.startsWith('"')) {
    const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(JSON.parse(json) as string);
    if (m === null) return null;
    v = BigInt(m[2]!) * 100n + BigInt((m[3] ?? "").padEnd(2, "0"));
    if (m[1] === "-") v = -v;
  } else {
    if (!/^-?(0|[1-9]\d*)$/.test(json)) return null;
    v = BigInt(json);
  }
  return v >= -D && v <= D ? v : null;
}

type Branches = ReadonlyArray<{ shard: string; ops: Array<{ account: number; delta: bigint }> }>;
type Verdict = { readonly accepted: true; readonly branches: Branches } | { readonly accepted: false; readonly sum?: bigint };

/** The exact reading of a body: each amount (null: refused), their sum, and each account's net change, as branches. */
function exactly(ops: readonly WrittenOp[]): { amounts: Array<bigint | null>; sum: bigint; branches: Branches } {
  const amounts = ops.map((op) => centsOfText(op.json));
  const net = new Map<number, bigint>();
  let sum = 0n;
  ops.forEach((op, i) => {
    net.set(op.account, (net.get(op.account) ?? 0n) + (amounts[i] ?? 0n));
    sum += amounts[i] ?? 0n;
  });
  const changed = [...net].filter(([, c]) => c !== 0n).sort(([a], [b]) => a - b);
  const shards = [...new Set(changed.map(([a]) => SHARD_OF[a]!))].sort();
  return { amounts, sum, branches: shards.map((shard) => ({ shard, ops: changed.filter(([a]) => SHARD_OF[a] === shard).map(([account, delta]) => ({ account, delta })) })) };
}

/** What the decoder must answer: accepted when every amount is readable, the sum is zero, some account changes and none by more than the limit. */
function oracle(ops: readonly WrittenOp[]): Verdict {
  const x = exactly(ops);
  if (x.amounts.some((c) => c === null)) return { accepted: false };
  if (x.sum !== 0n) return { accepted: false, sum: x.sum };
  const nets = x.branches.flatMap((b) => b.ops.map((op) => op.delta));
  if (nets.length === 0 || nets.some((c) => c > D || c < -D)) return { accepted: false };
  return { accepted: true, branches: x.branches };
}

/** Magnitudes up to the limit, its edges and 2^53 - 1 included, and (`beyond`) past it: 2^53, 2^53 + 1, 10^20, 2^64. */
const within = fc.oneof(
  fc.constantFrom(0n, 1n, 99n, 100n, 101n, D - 1n, D),
  fc.bigInt({ min: 0n, max: 10_000n }),
  fc.bigInt({ min: 0n, max: D }),
  fc.bigInt({ min: D / 64n, max: D }),
);
const beyond = fc.oneof(fc.constantFrom(D + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 10n ** 16n, 10n ** 20n), fc.bigInt({ min: D, max: 2n ** 64n }));

/**
 * How a body writes its amounts: one style per body, so that bodies written
 * in one plain form (JSON integers only, say) are common even with 64 ops.
 */
type Style = "integers" | "strings" | "mixed" | "padded" | "odd";
const style = fc.constantFrom<Style>("integers", "strings", "mixed", "padded", "odd");

/**
 * Written forms of exact cents: plain ones that mean exactly `c` (integer
 * cents, "12.34", "12.3", "12", negative zero), with leading zeros ("padded"),
 * and, one in thirty for the "odd" style, forms that must be refused whatever
 * `c` is (fraction or exponent in a JSON number, a leading zero in one, three
 * decimals, an exponent or a plus sign in a string).
 */
function written(c: bigint, how: Style): fc.Arbitrary<string> {
  const a = c < 0n ? -c : c;
  const sign = c < 0n ? "-" : "";
  const integers = [`${c}`, ...(a === 0n ? ["-0"] : [])];
  const strings = [
    JSON.stringify(decimal(c)),
    ...(a % 100n === 0n ? [JSON.stringify(`${sign}${a / 100n}`)] : []),
    ...(a % 10n === 0n ? [JSON.stringify(`${sign}${a / 100n}.${(a % 100n) / 10n}`)] : []),
    ...(a === 0n ? ['"-0"', '"-0.00"'] : []),
  ];
  const padded = [JSON.stringify(`${sign}00${decimal(a)}`), JSON.stringify(`${sign}0${a / 100n}`)];
  const refused = [`${c}.0`, `${c}e0`, `${c}E+2`, `${sign}0${a}`, JSON.stringify(`${decimal(c)}0`), JSON.stringify(`${a}e2`), JSON.stringify(`+${a}`), "-0.0"];
  switch (how) {
    case "integers":
      return fc.constantFrom(...integers);
    case "strings":
      return fc.constantFrom(...strings);
    case "mixed":
      return fc.constantFrom(...integers, ...strings);
    case "padded":
      return fc.constantFrom(...integers, ...strings, ...padded);
    case "odd":
      return fc.oneof({ arbitrary: fc.constantFrom(...integers, ...strings, ...padded), weight: 30 }, { arbitrary: fc.constantFrom(...refused), weight: 1 });
  }
}

const account = fc.integer({ min: 1, max: 6 });
type Cents = { account: number; c: bigint };

/**
 * Shapes of bodies, over signed amounts drawn from `magnitude`:
 * - pairs that cancel (x on one account, -x on another), one in four nudged by a cent;
 * - independent amounts (their sum is almost never zero);
 * - the issue's shape: n times +x on one account, a cent or two elsewhere,
 *   n times -x, with partial sums far above 2^53; the -x on the same account
 *   or on another one (then both accounts change by n x, up to 31 x 10^15).
 */
function shapes(magnitude: fc.Arbitrary<bigint>): fc.Arbitrary<Cents[]> {
  const signed = fc.tuple(magnitude, fc.boolean()).map(([m, neg]) => (neg ? -m : m));
  const nudge = (n: number) => fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.tuple(fc.nat(n - 1), fc.constantFrom(-1n, 1n)), weight: 1 });
  const balanced = fc
    .array(fc.tuple(signed, account, account), { minLength: 1, maxLength: 32 })
    .map((pairs) => pairs.flatMap(([x, a, b]): Cents[] => [{ account: a, c: x }, { account: b, c: -x }]))
    .chain((ops) => fc.tuple(fc.constant(ops), nudge(ops.length)))
    .map(([ops, n]) => ops.map((op, i) => (n !== null && n[0] === i ? { ...op, c: op.c + n[1] } : op)));
  const independent = fc.array(fc.record({ account, c: signed }), { minLength: 1, maxLength: 64 });
  const stacked = fc
    .tuple(fc.bigInt({ min: D / 2n, max: D }), fc.integer({ min: 5, max: 31 }), account, account, fc.constantFrom(-2n, -1n, 0n, 1n, 2n), fc.option(account))
    .map(([x, n, a, b, c, back]): Cents[] => [
      ...Array.from({ length: n }, () => ({ account: a, c: x })),
      { account: b, c },
      ...Array.from({ length: n }, () => ({ account: back ?? a, c: -x })),
    ]);
  return fc.oneof({ arbitrary: balanced, weight: 4 }, { arbitrary: independent, weight: 1 }, { arbitrary: stacked, weight: 2 });
}

/** Amounts within the limit in most bodies; in one of four, one amount in thirty is beyond it. Then written in one style, in a random order, credits first (the largest partial sums), or as generated. */
const body = fc
  .oneof({ arbitrary: shapes(within), weight: 3 }, { arbitrary: shapes(fc.oneof({ arbitrary: within, weight: 30 }, { arbitrary: beyond, weight: 1 })), weight: 1 })
  .chain((ops) => style.chain((how) => fc.tuple(...ops.map((op) => written(op.c, how).map((json) => ({ account: op.account, json, c: op.c }))))))
  .chain((ops) =>
    fc.oneof(
      fc.shuffledSubarray(ops, { minLength: ops.length, maxLength: ops.length }),
      fc.constant([...ops].sort((x, y) => Number(y.c > 0n) - Number(x.c > 0n))),
      fc.constant(ops),
    ),
  )
  .map((ops) => ops.map(({ account, json }): WrittenOp => ({ account, json })));

/** The decoder's verdict in the oracle's terms; a delta that is not a safe integer fails the test at once. */
function decode(ops: readonly WrittenOp[]): Verdict | { readonly accepted: false; readonly status: number; readonly message: string } {
  try {
    const r = decodeTransfer(text(ops), catalog);
    for (const b of r.branches) for (const op of b.ops) expect(Number.isSafeInteger(op.delta), `delta ${op.delta}`).toBe(true);
    return { accepted: true, branches: r.branches.map((b) => ({ shard: b.shard, ops: b.ops.map((op) => ({ account: op.account, delta: BigInt(op.delta) })) })) };
  } catch (e) {
    if (!(e instanceof BadRequest)) throw e;
    return { accepted: false, status: e.status, message: e.message };
  }
}

const text = (ops: readonly WrittenOp[]) =>
  `{"ops":[${ops.map((op) => `{"shard_id":${JSON.stringify(SHARD_OF[op.account])},"account_id":${op.account},"delta":${op.json}}`).join(",")}]}`;

describe("money at the decoder", () => {
  it("the limit is below 2^53, so a delta and an account's net change are exact as doubles", () => {
    expect(BigInt(DELTA_CENTS_MAX)).toBe(D);
    expect(D < 2n ** 53n).toBe(true);
  });

  it("accepts a body only if its exact sum is zero, with branches equal to the exact net change per account", () => {
    fc.assert(
      fc.property(body, (ops) => {
        const got = decode(ops);
        if (!got.accepted) return;
        const x = exactly(ops);
        expect(x.amounts.every((c) => c !== null), "accepted an amount that is not well formed or beyond the limit").toBe(true);
        expect(x.sum, "accepted a body whose exact sum is not zero").toBe(0n);
        expect(got.branches, "branches other than the exact net change per account").toEqual(x.branches);
      }),
      { numRuns: RUNS },
    );
  });

  it("accepts every body whose amounts are well formed and within the limit, whose exact sum is zero and whose accounts change within the limit; a non-zero sum is named exactly", () => {
    fc.assert(
      fc.property(body, (ops) => {
        const got = decode(ops);
        const want = oracle(ops);
        if (want.accepted) expect(got).toEqual(want);
        else if (want.sum !== undefined) expect(got).toMatchObject({ accepted: false, status: 422, message: expect.stringContaining(`the deltas sum to ${decimal(want.sum)},`) });
        else expect(got.accepted).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it("refuses the issue's body (10 x 10^15, one cent, 10 x -10^15) with the exact sum", () => {
    const ops: WrittenOp[] = [
      ...Array.from({ length: 10 }, () => ({ account: 1, json: "1000000000000000" })),
      { account: 4, json: "1" },
      ...Array.from({ length: 10 }, () => ({ account: 1, json: "-1000000000000000" })),
    ];
    expect(() => decodeTransfer(text(ops), catalog)).toThrow("the deltas sum to 0.01, not zero");
  });
});
