// Every outcome the spec can produce must survive the etcd txlog's record codec: a claim that stores
// an outcome its schema does not list is written and then cannot be read back (a deadlock victim's
// stored answer was such a case when `deadlock` joined AbortReason and the claim schema kept its own list).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeLogRecord } from "../../runtime/adapters/txlog-etcd.ts";
import { ABORT_REASONS, type LogRecord } from "../../spec/kernel/effects.ts";

const outcome = fc.oneof(
  fc.constant({ status: "committed" as const }),
  fc.constantFrom(...ABORT_REASONS).map((reason) => ({ status: "aborted" as const, reason })),
);

const claim = fc.record(
  {
    kind: fc.constant("claim" as const),
    tx: fc.string({ minLength: 1, maxLength: 12 }),
    fingerprint: fc.string({ minLength: 8, maxLength: 64 }),
    shards: fc.array(fc.constantFrom("s1", "s2", "s3", "s4"), { maxLength: 4 }),
    protocol: fc.constantFrom("2pc", "parallel", "speculative"),
    outcome,
  },
  { requiredKeys: ["kind", "tx", "fingerprint", "shards"] },
);

describe("txlog record codec", () => {
  it("every abort reason of the spec is a reason the claim schema accepts", () => {
    for (const reason of ABORT_REASONS) {
      const r = { kind: "claim", tx: "t1", fingerprint: "ab", shards: ["s1"], outcome: { status: "aborted", reason } };
      expect(decodeLogRecord("idem/k", JSON.stringify(r))).toEqual(r);
    }
  });

  it("a claim record round-trips whatever it stores (fast-check)", () => {
    fc.assert(
      fc.property(claim, (r) => {
        expect(decodeLogRecord("idem/k", JSON.stringify(r))).toEqual(r as unknown as LogRecord);
      }),
      { numRuns: 300 },
    );
  });

  it("a reason the spec does not know is refused with the key named", () => {
    const r = { kind: "claim", tx: "t1", fingerprint: "ab", shards: [], outcome: { status: "aborted", reason: "gremlins" } };
    expect(() => decodeLogRecord("idem/k", JSON.stringify(r))).toThrow(/idem\/k/);
  });
});
