/**
 * spec/env/collapse.ts: two values get the same id exactly when their
 * canonical JSON (spec/env/canonical.ts) is the same, whatever the key order,
 * the sharing of sub-objects, or the hint given; and a collapsed state
 * decodes to a state with the same canonical JSON.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { collapser, Interner, useEncoder } from "../../spec/env/collapse.ts";
import { canonicalJson } from "../../spec/env/canonical.ts";

/** Small plain data, so that equal values are frequent. */
const leaf = fc.oneof(fc.constantFrom(0, 1, -1, 2.5, -0, "a", "b", "1", "", 'q"u', true, false, null), fc.integer({ min: -3, max: 3 }));
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom("a", "b", "c", "d", "1", "x y"), fc.oneof(tie("value"), fc.constant(undefined)), { maxKeys: 4 }),
  ),
}));

/** A deep copy with every object's keys in reverse order (the same canonical JSON, other objects). */
function reordered(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map(reordered);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).reverse()) out[k] = reordered((v as Record<string, unknown>)[k]);
  return out;
}

describe("collapse interner", () => {
  it("gives equal ids exactly to values with equal canonical JSON", () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), (values, hints) => {
        const interner = new Interner();
        const seen: unknown[] = [];
        const ids = values.flatMap((v, i) => {
          const copy = reordered(v);
          // Hints are interned values, some equal to the value, some not.
          const hint = seen.length > 0 ? seen[(hints[i] ?? 0) % seen.length] : undefined;
          const a = interner.id(v, hint);
          const b = interner.id(copy, v);
          const c = interner.id(reordered(copy), hint);
          expect(b).toBe(a);
          expect(c).toBe(a);
          seen.push(interner.value(a));
          return [a];
        });
        for (let i = 0; i < values.length; i++) {
          expect(canonicalJson(interner.value(ids[i]!))).toBe(canonicalJson(values[i]));
          for (let j = 0; j < values.length; j++) expect(ids[i] === ids[j]).toBe(canonicalJson(values[i]) === canonicalJson(values[j]));
        }
      }),
      { numRuns: 500 },
    );
  });

  it("tells apart what canonical JSON tells apart", () => {
    const interner = new Interner();
    const distinct = [1, "1", true, "true", null, "null", [], {}, [1], { a: 1 }, { a: "1" }, { a: [1] }, [[1]], [{}], [[]], { a: { b: 1 } }, { "a:#0,": 1 }];
    const ids = distinct.map((v) => interner.id(v));
    expect(new Set(ids).size).toBe(distinct.length);
    expect(interner.id({ a: 1, b: undefined })).toBe(interner.id({ a: 1 }));
    expect(interner.id(-0)).toBe(interner.id(0));
  });

  it("refuses what canonical JSON refuses", () => {
    const interner = new Interner();
    expect(() => interner.id(NaN)).toThrow(/not encodable/);
    expect(() => interner.id({ a: Infinity })).toThrow(/not encodable/);
    expect(() => interner.id([undefined])).toThrow(/undefined/);
    // Also when a hint with the same shape is given.
    const hint = interner.value(interner.id({ a: 1 }));
    expect(() => interner.id({ a: NaN }, hint)).toThrow(/not encodable/);
  });

  it("decodes what it encodes, and encodes a decoded state to the same bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(value, value, fc.boolean()), { minLength: 1, maxLength: 8 }), (rows) => {
        const c = collapser<{ p: unknown; q: unknown; r: boolean }>(["p", "q", "r"]);
        const bytes = rows.map(([p, q, r]) => c.encode({ p, q, r }));
        rows.forEach(([p, q, r], i) => {
          const back = c.decode(bytes[i]!);
          expect(canonicalJson(back)).toBe(canonicalJson({ p, q, r }));
          // With `back` as the hint (the checker's order: decode, then encode successors).
          expect(c.encode(reordered({ p, q, r }) as { p: unknown; q: unknown; r: boolean })).toEqual(bytes[i]);
          expect(c.encode(back)).toEqual(bytes[i]);
        });
      }),
      { numRuns: 300 },
    );
  });

  it("useEncoder('json') builds the baseline: one table per field, ids from 0 in each", () => {
    const ids = (c: ReturnType<typeof collapser<{ p: unknown; q: unknown }>>) => [...new Uint32Array(c.encode({ p: 1, q: "a" }).slice().buffer)];
    try {
      useEncoder("json");
      expect(ids(collapser(["p", "q"]))).toEqual([0, 0]);
    } finally {
      useEncoder("interned");
    }
    // The interner numbers all values together.
    expect(ids(collapser(["p", "q"]))).toEqual([0, 1]);
  });
});
