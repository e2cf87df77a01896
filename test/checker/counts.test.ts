// The engine must explore exactly what TLC explores: TLC's published counts
// for TwoPhase.tla and TCommit.tla (tlaplus/Examples, transaction_commit).
import { describe, expect, it } from "vitest";
import { check } from "../../checker/engine.ts";
import { twoPhase } from "../../spec/reference/twophase.ts";
import { tcommit } from "../../spec/reference/tcommit.ts";

const twoPhaseTlc = [
  { RM: 3, distinct: 288, generated: 1_146, depth: 11 },
  { RM: 4, distinct: 1_568, generated: 8_258, depth: 14 },
  { RM: 5, distinct: 8_832, generated: 58_146, depth: 17 },
  { RM: 6, distinct: 50_816, generated: 402_306, depth: 20 },
];

const tcommitTlc = [
  { RM: 3, distinct: 34 },
  { RM: 4, distinct: 96 },
  { RM: 5, distinct: 274 },
  { RM: 6, distinct: 792 },
];

describe("TwoPhase, packed fast path", () => {
  for (const { RM, ...tlc } of twoPhaseTlc) {
    it(`RM=${RM}: ${tlc.distinct} distinct, ${tlc.generated} generated, depth ${tlc.depth}`, () => {
      const r = check(twoPhase(RM));
      expect({ distinct: r.distinct, generated: r.generated, depth: r.depth }).toEqual(tlc);
      expect(r.complete).toBe(true);
      expect(r.violations).toEqual([]);
    });
  }
});

describe("TwoPhase, generic path (same model without Model.packed)", () => {
  for (const { RM, ...tlc } of twoPhaseTlc.slice(0, 3)) {
    it(`RM=${RM}`, () => {
      const { packed: _fast, ...generic } = twoPhase(RM);
      const r = check(generic);
      expect({ distinct: r.distinct, generated: r.generated, depth: r.depth }).toEqual(tlc);
    });
  }
});

describe("TCommit", () => {
  for (const { RM, distinct } of tcommitTlc) {
    it(`RM=${RM}: ${distinct} distinct`, () => {
      const r = check(tcommit(RM));
      expect(r.distinct).toBe(distinct);
      expect(r.complete).toBe(true);
      expect(r.violations).toEqual([]);
    });
  }
});
