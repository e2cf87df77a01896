// Structural hashes that decide which worker owns a state of a model with a local encoding
// (checker/portable.ts): equal exactly when the canonical JSON is equal (as the collapser's ids).
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ContentHash } from "../../checker/portable.ts";
import { canonicalJson } from "../../spec/env/canonical.ts";

const of = (v: unknown): string => {
  const h = new ContentHash();
  h.hash(v);
  return `${h.hi}:${h.lo}`;
};

describe("ContentHash", () => {
  it("ignores key order and undefined-valued keys, as canonical JSON does", () => {
    expect(of({ a: 1, b: [2, { c: "x" }] })).toBe(of({ b: [2, { c: "x" }], a: 1, d: undefined }));
    expect(of(-0)).toBe(of(0));
  });

  it("tells apart values canonical JSON tells apart", () => {
    const distinct = [1, "1", true, null, [], {}, [1], { a: 1 }, { a: "1" }, { b: 1 }, [1, 2], [2, 1], { a: [1] }, { a: { b: 1 } }, 1.5, "ab", "ba", [[]], [{}]];
    expect(new Set(distinct.map(of)).size).toBe(distinct.length);
  });

  it("equal hash iff equal canonical JSON (random values)", () => {
    const value = fc.jsonValue({ maxDepth: 3 });
    fc.assert(
      fc.property(value, value, (a, b) => {
        expect(of(a) === of(b)).toBe(canonicalJson(a) === canonicalJson(b));
      }),
      { numRuns: 500 },
    );
  });
});
