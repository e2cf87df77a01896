/**
 * spec/env/canonical.ts's canonicalJson writes exactly what the definition
 * says (JSON, object keys sorted, undefined-valued keys left out): compared
 * with that definition written plainly, on arbitrary JSON values.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { canonicalJson } from "../../spec/env/canonical.ts";

function reference(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(reference).join(",")}]`;
  const keys = Object.keys(v as object)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${reference((v as Record<string, unknown>)[k])}`).join(",")}}`;
}

const withUndefined = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.jsonValue({ maxDepth: 1 }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(tie("value"), fc.constant(undefined)), { maxKeys: 5 }),
  ),
})).value;

describe("canonicalJson", () => {
  it("is JSON with sorted keys and no undefined-valued keys", () => {
    fc.assert(
      fc.property(withUndefined, (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 2000 },
    );
    expect(canonicalJson({ b: 1, a: [1, { d: null, c: "x", e: undefined }], "\u00e9": true, B: -0 })).toBe('{"B":0,"a":[1,{"c":"x","d":null}],"b":1,"\u00e9":true}');
  });

  it("refuses what JSON cannot say", () => {
    expect(() => canonicalJson({ a: NaN })).toThrow(/not encodable/);
    expect(() => canonicalJson([undefined])).toThrow(/undefined/);
  });
});
