// runtime/transfer.ts: the hand-checked fast path for POST /transfer bodies accepts exactly what the Schema accepts
// in the shape it knows, with the same value, and refuses (leaving the Schema to say why) everything else.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeBody, plainBody } from "../../runtime/transfer.ts";

const schemaSays = (json: unknown): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: decodeBody(json, { onExcessProperty: "error" }) };
  } catch {
    return { ok: false };
  }
};

const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(2 ** 60));
const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ shard_id: fc.string({ maxLength: 8 }), account_id: fc.integer(), delta: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()) }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("shard_id", "account_id", "delta", "extra", "__proto__"), scalar) },
);
const body = fc.oneof(
  fc.record({ ops: fc.array(op, { maxLength: 4 }), idempotency_key: fc.string({ maxLength: 4 }), protocol: fc.string({ maxLength: 4 }) }, { requiredKeys: ["ops"] }),
  fc.dictionary(fc.constantFrom("ops", "idempotency_key", "protocol", "x"), fc.oneof(scalar, fc.array(op, { maxLength: 2 }))),
  scalar,
  fc.array(scalar, { maxLength: 2 }),
);

describe("POST /transfer fast path", () => {
  it("accepts only what the Schema accepts, with the same value", () => {
    let fast = 0;
    fc.assert(
      fc.property(body, (b) => {
        const json = JSON.parse(JSON.stringify(b) ?? "null") as unknown;
        const p = plainBody(json);
        if (p === null) return;
        fast++;
        const s = schemaSays(json);
        expect(s.ok).toBe(true);
        expect(p).toEqual((s as { value: unknown }).value);
      }),
      { numRuns: 2_000 },
    );
    // The generator reaches the fast path often (a property that never takes it proves nothing).
    expect(fast).toBeGreaterThan(200);
  });

  it("takes the bench's bodies", () => {
    const b = { ops: [{ shard_id: "shard-a", account_id: 1, delta: -50 }, { shard_id: "shard-b", account_id: 9, delta: 50 }], protocol: "2pc" };
    expect(plainBody(JSON.parse(JSON.stringify(b)))).toEqual(b);
    expect(plainBody({ ops: [{ shard_id: "a", account_id: 1.5, delta: 1 }] })).toBeNull();
    expect(plainBody({ ops: [{ shard_id: "a", account_id: 1, delta: 1, x: 1 }] })).toBeNull();
    expect(plainBody({ ops: [{ shard_id: "a", account_id: 1 }] })).toBeNull();
  });
});
