// The idempotency rules as spec (spec/server/idempotency.ts) and the read-back composition (spec/server/readback.ts).
import { describe, expect, it } from "vitest";
import { answerOfClaim, claimRole, storable } from "../../spec/server/idempotency.ts";
import * as txlog from "../../spec/env/txlog.ts";
import { ProtocolViolation } from "../../spec/kernel/role.ts";
import { readBack, readBackRules, readBackWithout, REGISTERED_RULES, settle } from "../../spec/server/readback.ts";
import { claimKey, decisionKey, speculativeKey, type LogPutResult } from "../../spec/kernel/effects.ts";
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

describe("claimRole: claim -> run -> store -> answer, through txlog writes only", () => {
  const record = { kind: "claim", tx: "t1", fingerprint: "f", shards: ["a"] } as const;
  const key = claimKey("k");
  const put = (r: LogPutResult) => ({ t: "log.put", key, r }) as const;
  const role = claimRole();
  const claimed = () => role.step(role.start(), { t: "claim", key, record });

  it("a claim is a CAS create; once ours the transaction runs; a final outcome is stored on the claim's version before it is answered", () => {
    const a = claimed();
    expect(a.effects).toEqual([{ t: "log.put", key, value: record, ifVersion: 0 }]);
    const b = role.step(a.st, put({ ok: true, version: 1 }));
    expect(b.effects).toEqual([{ t: "claim.run", tx: "t1" }]);
    const c = role.step(b.st, { t: "told", outcome: committed });
    expect(c.effects).toEqual([{ t: "log.put", key, value: { ...record, outcome: committed }, ifVersion: 1 }]);
    // Stored or not (a failed store leaves the claim to be settled later), the outcome is the answer.
    for (const r of [{ ok: true, version: 2 }, { ok: false, err: "UNAVAILABLE" }] as const) {
      expect(role.step(c.st, put(r)).effects).toEqual([{ t: "claim.answer", tx: "t1", outcome: committed, replayed: false }]);
    }
  });

  it("in_doubt is never stored: the claim is written again as it is (a fresh retention lease), then in_doubt is answered", () => {
    const b = role.step(claimed().st, put({ ok: true, version: 1 }));
    const c = role.step(b.st, { t: "told", outcome: inDoubt });
    expect(c.effects).toEqual([{ t: "log.put", key, value: record, ifVersion: 1 }]);
    expect(role.step(c.st, put({ ok: true, version: 2 })).effects).toEqual([{ t: "claim.answer", tx: "t1", outcome: inDoubt, replayed: false }]);
  });

  it("a key claimed before: its stored outcome; another fingerprint: 422; no outcome yet: settle, then store what it says", () => {
    const a = claimed();
    const stored = { ...record, tx: "t0", outcome: aborted };
    expect(role.step(a.st, put({ ok: false, err: "CAS", current: stored, version: 2 })).effects).toEqual([{ t: "claim.answer", tx: "t0", outcome: aborted, replayed: true }]);
    expect(role.step(a.st, put({ ok: false, err: "CAS", current: { ...record, tx: "t0", fingerprint: "g" }, version: 1 })).effects).toEqual([{ t: "claim.refused", tx: "t0", status: 422 }]);
    const open = { ...record, tx: "t0" };
    const s = role.step(a.st, put({ ok: false, err: "CAS", current: open, version: 1 }));
    expect(s.effects).toEqual([{ t: "claim.settle", record: open, version: 1 }]);
    expect(role.step(s.st, { t: "told", outcome: committed }).effects).toEqual([{ t: "log.put", key, value: { ...open, outcome: committed }, ifVersion: 1 }]);
  });

  it("the txlog did not answer the claim: 503, nothing runs", () => {
    expect(role.step(claimed().st, put({ ok: false, err: "UNAVAILABLE" })).effects).toEqual([{ t: "claim.refused", tx: "t1", status: 503 }]);
  });

  it("the host did not run the transaction: the key is given back by a delete at the claim's version, then nothing more", () => {
    const b = role.step(claimed().st, put({ ok: true, version: 1 }));
    const r = role.step(b.st, { t: "not.run" });
    expect(r.effects).toEqual([{ t: "log.delete", key, ifVersion: 1 }]);
    for (const d of [{ ok: true }, { ok: false, err: "CAS" }, { ok: false, err: "UNAVAILABLE" }] as const) {
      const done = role.step(r.st, { t: "log.delete", key, r: d });
      expect(done).toEqual({ st: { phase: "answered" }, effects: [] });
    }
    // Only a claim this request made and ran nothing of is given back.
    const open = { ...record, tx: "t0" };
    const s = role.step(claimed().st, put({ ok: false, err: "CAS", current: open, version: 1 }));
    expect(() => role.step(s.st, { t: "not.run" })).toThrow(ProtocolViolation);
    expect(() => role.step(b.st, { t: "log.delete", key, r: { ok: true } })).toThrow(ProtocolViolation);
  });

  it("the txlog model's conditional delete: deletes only at the version named, else CAS and nothing deleted", () => {
    const made = txlog.put(txlog.emptyTxlog, key, record, 0).s;
    expect(txlog.del(made, key, undefined, 2)).toEqual({ s: made, r: { ok: false, err: "CAS" } });
    expect(txlog.del(made, key, undefined, 1)).toEqual({ s: txlog.emptyTxlog, r: { ok: true } });
    expect(txlog.del(txlog.emptyTxlog, key, undefined, 1).r).toEqual({ ok: false, err: "CAS" });
  });

  it("assertions: a second claim, an outcome before the claim is ours", () => {
    const a = claimed();
    expect(() => role.step(a.st, { t: "claim", key, record })).toThrow(ProtocolViolation);
    expect(() => role.step(a.st, { t: "told", outcome: committed })).toThrow(ProtocolViolation);
  });

  it("mutant store-before-outcome: stores committed as soon as the claim is ours", () => {
    const m = claimRole("store-before-outcome");
    const a = m.step(m.start(), { t: "claim", key, record });
    expect(m.step(a.st, put({ ok: true, version: 1 })).effects).toEqual([
      { t: "log.put", key, value: { ...record, outcome: committed }, ifVersion: 1 },
      { t: "claim.run", tx: "t1" },
    ]);
  });
});

describe("readBackWithout: read-back with shards that did not answer", () => {
  const decision = (d: "commit" | "abort") => ({ key: decisionKey("t"), value: { kind: "decision", decision: d, branches: ["a", "b"] } as const });
  it("a decision record decides whatever the missing shard holds", () => {
    expect(readBackWithout("t", { ...none, records: [decision("commit")] }, ["b"])).toEqual(committed);
    expect(readBackWithout("t", { ...none, records: [decision("abort")], prepared: ["a"] }, ["b"])).toEqual(aborted);
    expect(readBackWithout("t", { ...none, records: [decision("commit")] }, ["a", "b"])).toEqual(committed);
  });
  it("no record, a STAGING record, a speculation still executing: the missing shard could change the answer (null)", () => {
    expect(readBackWithout("t", { ...none, history: ["a"] }, ["b"])).toBeNull();
    expect(readBackWithout("t", { ...none, records: [{ key: decisionKey("t"), value: { kind: "staging", branches: [] } }] }, ["b"])).toBeNull();
    const spec = { key: speculativeKey("t"), value: { kind: "speculation", state: "SPEC_EXECUTING", branches: ["a", "b"] } as const };
    expect(readBackWithout("t", { ...none, records: [spec], undo: [{ branch: "a", state: "undo", branches: ["a", "b"] }] }, ["b"])).toBeNull();
  });
  it("no shard missing: readBack itself; more than UNANSWERED_MAX missing: no answer", () => {
    expect(readBackWithout("t", { ...none, history: ["a"] }, [])).toEqual(readBack("t", { ...none, history: ["a"] }));
    expect(readBackWithout("t", { ...none, records: [decision("commit")] }, ["a", "b", "c"])).toBeNull();
  });
  it("every answer is the one readBack gives on the true facts, for every way the missing shard may be", () => {
    // The true facts: a committed 2PC transaction whose shard b has its history rows (or not yet: branch prepared).
    for (const truth of [{ ...none, records: [decision("commit")], history: ["a", "b"] }, { ...none, records: [decision("commit")], history: ["a"], prepared: ["b"] }]) {
      const seen = { ...truth, history: truth.history.filter((x) => x !== "b"), prepared: truth.prepared.filter((x) => x !== "b") };
      expect(readBackWithout("t", seen, ["b"])).toEqual(readBack("t", truth));
    }
  });
});
