/**
 * spec/world/memo.ts and the world's memoised parts (spec/world/world.ts, partsOf): memoisation by identity
 * returns what the plain function returns, forgets at its bound, keeps nothing of a throw; and a protocol
 * model explores exactly the same states, in the same order, with the memoised parts as with the plain
 * functions of before (`useBaselinePaths`), from the decoded (interned) states the checker hands it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { memo1, memo2, memo2Indexed, memo3, memoIndexed, memoKeyed } from "../../spec/world/memo.ts";
import { useBaselinePaths } from "../../spec/world/flights.ts";
import { canonicalJson } from "../../spec/env/canonical.ts";
import { registry } from "../../checker/registry.ts";
import type { Model } from "../../spec/kernel/model.ts";
import { check } from "../../checker/engine.ts";

describe("memo tables", () => {
  it("compute once per argument tuple (by identity), and again for another object of equal value", () => {
    let calls = 0;
    const f = memo2((a: { x: number }, b: { y: number }) => (calls++, { sum: a.x + b.y }));
    const a = { x: 1 };
    const b = { y: 2 };
    const r = f(a, b);
    expect(f(a, b)).toBe(r);
    expect(calls).toBe(1);
    expect(f({ x: 1 }, b)).not.toBe(r);
    expect(f({ x: 1 }, b)).toEqual(r);
    expect(calls).toBe(3);
  });

  it("tell the small-integer and string keys apart, and the third object key", () => {
    const byN = memoIndexed((a: object, n: number) => ({ a, n }));
    const byBN = memo2Indexed((a: object, b: object, n: number) => ({ a, b, n }));
    const byK = memoKeyed((a: object, k: string) => ({ a, k }));
    const byC = memo3((a: object, b: object, c: object) => ({ a, b, c }));
    const byA = memo1((a: object) => ({ a }));
    const [a, b, c, d] = [{}, {}, {}, {}];
    expect(byA(a)).toBe(byA(a));
    expect(byA(b).a).toBe(b);
    expect(byN(a, 1)).toBe(byN(a, 1));
    expect(byN(a, 2).n).toBe(2);
    expect(byBN(a, b, 0)).toBe(byBN(a, b, 0));
    expect(byBN(a, c, 0).b).toBe(c);
    expect(byBN(a, b, 3).n).toBe(3);
    expect(byK(a, "x y")).toBe(byK(a, "x y"));
    expect(byK(a, "x z").k).toBe("x z");
    expect(byC(a, b, c)).toBe(byC(a, b, c));
    expect(byC(a, b, d).c).toBe(d);
  });

  it("forget everything past their limit, then compute again (the same value)", () => {
    let once = 0;
    const g = memo1((a: { v: number }) => (once++, { v: a.v }), 2);
    const three = [{ v: 0 }, { v: 1 }, { v: 2 }];
    three.forEach((k) => g(k));
    three.forEach((k) => expect(g(k)).toEqual(k));
    expect(once).toBeGreaterThan(3);
    let calls = 0;
    const f = memoIndexed((a: { v: number }, n: number) => (calls++, { v: a.v + n }), 4);
    const keys = Array.from({ length: 6 }, (_, v) => ({ v }));
    const first = keys.map((k) => f(k, 0));
    expect(calls).toBe(6);
    // The table was emptied when its fifth entry came: the first four are computed again, equal values.
    const again = keys.map((k) => f(k, 0));
    expect(again).toEqual(first);
    expect(calls).toBeGreaterThan(6);
  });

  it("keep nothing of a call that throws", () => {
    let calls = 0;
    const f = memo2((a: object, _b: object) => {
      calls++;
      if (calls === 1) throw new Error("assertion");
      return a;
    });
    const [a, b] = [{}, {}];
    expect(() => f(a, b)).toThrow("assertion");
    expect(f(a, b)).toBe(a);
    expect(calls).toBe(2);
  });
});

/**
 * Breadth-first, as the engine: states stored encoded (the collapser's bytes, canonical within one model's run),
 * expanded decoded; the canonical JSON of each state found, in order.
 */
function explore(model: Model<any, any>): string[] {
  const seen = new Set<string>();
  const queue: Uint8Array[] = [];
  const order: string[] = [];
  const visit = (s: unknown) => {
    const bytes = model.encode(s);
    const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
    if (seen.has(key)) return;
    seen.add(key);
    order.push(canonicalJson(s));
    queue.push(bytes);
  };
  for (const s of model.init()) visit(s);
  for (let head = 0; head < queue.length; head++) {
    const s = model.decode(queue[head]!);
    for (const a of model.actions(s)) visit(model.next(s, a));
  }
  return order;
}

describe("the world's memoised parts", () => {
  afterEach(() => useBaselinePaths(false));
  // Whole state spaces, small ones, that between them meet every kind of step: crashes and orphans, log faults,
  // shard crashes and restarts, dead connections noticed, speculative compensations.
  const configs: [string, Record<string, string | number | boolean>, number][] = [
    ["twopc", { scenario: "transfer", crash: 0, shardCrash: 0, logFault: 1 }, 1_942],
    ["twopc", { scenario: "transfer", crash: 1, shardCrash: 0, logFault: 0 }, 7_239],
    ["parallel", { scenario: "transfer", crash: 1, shardCrash: 0, logFault: 0 }, 6_710],
    ["speculative", { scenario: "transfer", crash: 1, shardCrash: 0 }, 5_702],
  ];
  for (const [name, set, distinct] of configs) {
    it(`${name} ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(" ")}: the same states in the same order as the plain functions`, () => {
      const factory = registry.find((f) => f.name === name)!;
      const params = { ...factory.params, ...set };
      useBaselinePaths(true);
      const plain = explore(factory.build(params));
      useBaselinePaths(false);
      const memoised = explore(factory.build(params));
      expect(plain.length).toBe(distinct);
      expect(memoised.length).toBe(distinct);
      expect(memoised).toEqual(plain);
    });
  }

  it("speculative transfer crash=1 shardCrash=1: the suite's counts (a shard answer equal to the shard before, but a new object, stays new: the ghost counts a compensation that changed the shard by identity)", () => {
    const factory = registry.find((f) => f.name === "speculative")!;
    const r = check(factory.build({ ...factory.params, scenario: "transfer", crash: 1, shardCrash: 1 }));
    // Interning such a shard (it then is the very object of before, and the ghost sees no change) made these 69,151 and 230,883.
    expect([r.distinct, r.generated]).toEqual([88_880, 305_186]);
  });
});
