// The idempotency rules as spec (spec/server/idempotency.ts) and the read-back composition (spec/server/readback.ts).
import { describe, expect, it } from "vitest";
import { answerOfClaim, storable } from "../../spec/server/idempotency.ts";
import { readBack, readBackRules, REGISTERED_RULES, settle } from "../../spec/server/readback.ts";
import { decisionKey, speculativeKey } from "../../spec/kernel/effects.ts";
import { DEFAULT_PROTOCOL, REGISTRY } from "../../spec/protocols/registry.ts";
import type { Protocol } from "../../spec/protocols/protocol.ts";

const committed = { status: "committed" } as const;
const inDoubt = { status: "in_doubt" } as const;
const aborted = { status: "aborted", reason: "resolver" } as const;
const none = { records: [], history: [], prepared: [], undo: [] };

describe("answerOfClaim", () => {
  it("a stored outcome is the answer, whatever this process holds", () => {
    expect(answerOfClaim(committed, { told: inDoubt, endedInDoubt: true })).toEqual({ from: "stored", outcome: committed });
  });
  it("this process's coordinator: its final answer, or its in_doubt while it has not ended", () => {
    expect(answerOfClaim(undefined, { told: aborted, endedInDoubt: false })).toEqual({ from: "coordinator", outcome: aborted });
    expect(answerOfClaim(undefined, { told: inDoubt, endedInDoubt: false })).toEqual({ from: "coordinator", outcome: inDoubt });
  });
  it("claimant gone, or ended in doubt: settle by read-back", () => {
    expect(answerOfClaim(undefined, undefined)).toEqual({ from: "read-back" });
    expect(answerOfClaim(undefined, { told: inDoubt, endedInDoubt: true })).toEqual({ from: "read-back" });
  });
  it("only a final outcome is stored", () => {
    expect([committed, aborted, inDoubt].map(storable)).toEqual([true, true, false]);
  });
});

describe("read-back composition", () => {
  it("nothing found: null; settle says aborted for the XA family and one branch once fenced, probe for a protocol that asks for one", () => {
    const fenced = (ran: { protocol?: string; shards: string[] }) => settle("t", none, ran, REGISTERED_RULES, true);
    expect(readBack("t", none)).toBeNull();
    expect(fenced({ shards: ["a", "b"] })).toEqual(aborted);
    for (const p of REGISTRY as readonly Protocol[]) {
      const o = fenced({ protocol: p.name, shards: ["a", "b"] });
      expect(o).toEqual(p.readBack.nothingFound === "probe" ? "probe" : aborted);
      if (o === "probe") expect(p.probe).toBeDefined();
      // One branch takes the one-phase path, whatever the request named.
      expect(fenced({ protocol: p.name, shards: ["a"] })).toEqual(fenced({ protocol: DEFAULT_PROTOCOL, shards: ["a"] }));
    }
  });
  it("the settle fence: nothing found is not aborted until the reader holds the fence; the unfenced mutant reads it as aborted", () => {
    expect(settle("t", none, { shards: ["a", "b"] })).toBe("fence");
    expect(settle("t", none, { shards: ["a"] })).toBe("fence");
    expect(settle("t", none, { shards: ["a"] }, readBackRules(undefined, "unfenced"))).toEqual(aborted);
    // A protocol whose nothing is "probe" never needs the fence; anything found never needs it.
    for (const p of REGISTRY as readonly Protocol[]) {
      if (p.readBack.nothingFound === "probe") expect(settle("t", none, { protocol: p.name, shards: ["a", "b"] })).toBe("probe");
    }
    expect(settle("t", { ...none, history: ["a"] }, { shards: ["a"] })).toEqual(committed);
  });
  it("a decision record decides whatever rows are found; STAGING is in doubt; history rows of a speculation prove nothing", () => {
    const rec = { key: decisionKey("t"), value: { kind: "decision", decision: "abort", branches: ["a", "b"] } as const };
    expect(readBack("t", { ...none, records: [rec], history: ["a"], prepared: ["b"] })).toEqual(aborted);
    const staging = { key: decisionKey("t"), value: { kind: "staging", branches: [] } as const };
    expect(readBack("t", { ...none, records: [staging], history: ["a"] })).toEqual(inDoubt);
    const spec = { key: speculativeKey("t"), value: { kind: "speculation", state: "SPEC_EXECUTING", branches: ["a", "b"] } as const };
    const undo = [{ branch: "a", state: "undo" as const, branches: ["a", "b"] }];
    expect(readBack("t", { ...none, records: [spec], history: ["a"], undo })).toEqual(inDoubt);
    expect(readBack("t", { ...none, history: ["a"] })).toEqual(committed);
  });
});
