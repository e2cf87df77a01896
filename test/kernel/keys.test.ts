/**
 * spec/kernel/keys.ts: a result pairs with the effect it answers and with no
 * other (the interpreter routes results by these keys; trace validation
 * matches them). Property-based over every effect kind and its identifying
 * fields.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Effect, Result } from "../../spec/kernel/effects.ts";
import { effectKey, resultKey } from "../../spec/kernel/keys.ts";

/** Every effect kind, with the fields that identify it (the rest of an effect does not take part in pairing). */
const KINDS: Record<Effect["t"], readonly ("tx" | "shard" | "conn" | "key")[]> = {
  "xa.exec": ["tx", "shard"],
  "xa.prepare": ["tx", "shard"],
  "xa.commit": ["tx", "shard"],
  "xa.rollback": ["tx", "shard"],
  "local.apply": ["tx", "shard"],
  "local.tombstone": ["tx", "shard"],
  "local.compensate": ["tx", "shard"],
  "local.release": ["tx", "shard"],
  "xa.recover": ["shard"],
  "local.scan": ["shard"],
  "xa.kill": ["shard", "conn"],
  "log.put": ["key"],
  "log.delete": ["key"],
  "log.list": [],
  reply: [],
  timer: [],
};
/** Effects whose answer is not a result of the same kind (a reply has none; a timer's is a timeout input). */
const UNANSWERED = new Set<string>(["reply", "timer"]);

const ids = fc.record({ tx: fc.string({ minLength: 1, maxLength: 4 }), shard: fc.constantFrom("shard-a", "shard-b", "s|1"), conn: fc.string({ minLength: 1, maxLength: 3 }), key: fc.string({ minLength: 1, maxLength: 6 }) });
const make = (t: string, fields: readonly string[], v: Record<string, string>) => Object.fromEntries([["t", t], ...fields.map((f) => [f, v[f]])]);

describe("effect and result keys", () => {
  it("a result pairs with the effect of its kind and identifying fields, and with no effect that differs in one", () => {
    fc.assert(
      fc.property(fc.constantFrom(...(Object.keys(KINDS) as Effect["t"][])), ids, ids, (t, a, b) => {
        const fields = KINDS[t];
        const effect = make(t, fields, a) as unknown as Effect;
        if (UNANSWERED.has(t)) return;
        const result = make(t, fields, b) as unknown as Result;
        const same = fields.every((f) => (a as Record<string, string>)[f] === (b as Record<string, string>)[f]);
        expect(resultKey(result) === effectKey(effect)).toBe(same);
      }),
      { numRuns: 2000 },
    );
  });

  it("effects of different kinds never share a key; inputs that answer no effect have none", () => {
    const v = { tx: "t1", shard: "shard-a", conn: "7", key: "decision/t1" };
    const keys = (Object.keys(KINDS) as Effect["t"][]).map((t) => effectKey(make(t, KINDS[t], v) as unknown as Effect));
    expect(new Set(keys).size).toBe(keys.length);
    for (const t of ["request", "scan", "probe", "timeout"] as const) expect(resultKey({ t, id: "x" } as never)).toBeNull();
  });
});
