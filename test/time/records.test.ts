/** Records carry commit_ts through etcd's codec (runtime/adapters/txlog-etcd.ts); nothing else gains the field. */
import { describe, expect, it } from "vitest";
import { decodeLogRecord } from "../../runtime/adapters/txlog-etcd.ts";

describe("commit_ts in txlog records", () => {
  it("is decoded on a decision, a STAGING record and a speculation, and refused elsewhere", () => {
    const ts = "118059162071498752";
    expect(decodeLogRecord("tx/1", JSON.stringify({ kind: "decision", decision: "commit", branches: ["a"], commit_ts: ts }))).toMatchObject({ commit_ts: ts });
    expect(decodeLogRecord("tx/1", JSON.stringify({ kind: "staging", branches: [{ shard: "a", conn: "1:2" }], commit_ts: ts }))).toMatchObject({ commit_ts: ts });
    expect(decodeLogRecord("speculative/1", JSON.stringify({ kind: "speculation", state: "SPEC_COMMITTED", branches: ["a"], commit_ts: ts }))).toMatchObject({ commit_ts: ts });
    // Records written before commit timestamps still decode.
    expect(decodeLogRecord("tx/1", JSON.stringify({ kind: "decision", decision: "abort", branches: ["a"] }))).not.toHaveProperty("commit_ts");
    expect(() => decodeLogRecord("epoch", JSON.stringify({ kind: "epoch", commit_ts: ts }))).toThrow(/epoch/);
    expect(() => decodeLogRecord("tx/1", JSON.stringify({ kind: "decision", decision: "commit", branches: ["a"], commit_ts: 5 }))).toThrow(/tx\/1/);
  });
});

describe("snapshot routes need the read scope", () => {
  it("scopeOf", async () => {
    const { scopeOf } = await import("../../runtime/auth.ts");
    expect(scopeOf("/snapshot")).toBe("read");
    expect(scopeOf("/accounts/shard-a/1")).toBe("read");
  });
});
