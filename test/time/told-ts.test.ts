/**
 * The commit timestamp a client is told is durable (runtime/timestamps.ts
 * toTell). Deterministic, in memory (test/time/memory-world.ts: no etcd, no
 * MariaDB). The speculative path answers before its SPEC_EXECUTING record,
 * so its answer tells none:
 *   - the process dies between the answer and the record: nothing was told
 *     (a resolver releasing the speculation later gives it a fresh, later
 *     timestamp that nobody holds);
 *   - the record lands: the timestamp may be told from then on (a replay),
 *     and a new process (the old one killed before any release) releases the
 *     speculation at it: a read at it sees the transfer.
 * A one-branch commit's answer waits for its rows' stamp and tells it.
 */
import { describe, expect, it } from "vitest";
import { speculativeKey, type LogRecord } from "../../spec/kernel/effects.ts";
import { parseTs } from "../../spec/time/hlc.ts";
import { HybridClock } from "../../runtime/hlc.ts";
import { SnapshotReads } from "../../runtime/snapshot.ts";
import { CommitTimestamps, withTimestamps } from "../../runtime/timestamps.ts";
import { World, ACCOUNT_1 } from "./memory-world.ts";

const spec = (state: "SPEC_EXECUTING"): LogRecord => ({ kind: "speculation", state, branches: ["a", "b"] }) as unknown as LogRecord;

describe("the commit timestamp told to a client is durable", () => {
  it("speculative: killed between the answer and SPEC_EXECUTING, nothing was told; once the record landed, a new process releases at the told timestamp and a read at it sees the transfer", async () => {
    const w = new World();
    const tx = "n1.spec";
    // Process 1: every branch applied, the outcome answered committed: the timestamp is chosen (server.ts answer) ...
    const ts1 = new CommitTimestamps(new HybridClock(500), () => [tx]);
    const a1 = withTimestamps(w.adapters(), ts1, w.stamp, "n1");
    w.apply(tx, "a", -300n);
    w.apply(tx, "b", 300n);
    const chosen = ts1.choose(tx);
    // ... and is not durable yet: the answer, sent now, tells none (it does not wait for the txlog).
    expect(ts1.isDurable(tx)).toBe(false);
    expect(ts1.toTell(tx, chosen)).toBeUndefined();
    // The record lands: from then on the timestamp may be told (a replayed answer), and it is the record's.
    const durable = ts1.whenDurable(tx, 1_000);
    const put = await a1.log.put(speculativeKey(tx), spec("SPEC_EXECUTING"), 0);
    expect(put.ok).toBe(true);
    expect(await durable).toBe(true);
    expect(ts1.toTell(tx, chosen)).toBe(chosen);
    const rec = w.records.get(speculativeKey(tx)) as LogRecord & { commit_ts: string };
    expect(parseTs(rec.commit_ts)).toBe(chosen);

    // Process 1 is killed before any release. Process 2 (a clock well ahead) lists the record and releases both branches.
    const ts2 = new CommitTimestamps(new HybridClock(500, () => Date.now() + 50), () => []);
    const a2 = withTimestamps(w.adapters(), ts2, w.stamp, "n1");
    const listed = await a2.log.list("speculative/");
    expect(listed.ok).toBe(true);
    await a2.local!.release(tx, "a");
    await a2.local!.release(tx, "b");
    expect(w.rows.get("a")![0]!.commit_ts).toBe(chosen);
    expect(w.rows.get("b")![0]!.commit_ts).toBe(chosen);
    await a2.log.delete(speculativeKey(tx));
    const reads = new SnapshotReads(ts2, ["a", "b"], w.query, { wait_ms: 1_000 });
    const at = await reads.read(chosen, ACCOUNT_1);
    expect(at.balances.get("b")!.get(1)).toBe(1300n);
    expect((await reads.read(chosen - 1n, ACCOUNT_1)).balances.get("b")!.get(1)).toBe(1000n);
  });

  it("speculative: killed before the record, a release by the next process takes a fresh timestamp, which no answer told", async () => {
    const w = new World();
    const tx = "n1.lost";
    const ts1 = new CommitTimestamps(new HybridClock(500), () => [tx]);
    w.apply(tx, "a", -300n);
    w.apply(tx, "b", 300n);
    const chosen = ts1.choose(tx);
    expect(ts1.toTell(tx, chosen)).toBeUndefined();
    const ts2 = new CommitTimestamps(new HybridClock(500, () => Date.now() + 50), () => []);
    const a2 = withTimestamps(w.adapters(), ts2, w.stamp, "n1");
    await a2.local!.release(tx, "a");
    await a2.local!.release(tx, "b");
    expect(w.rows.get("a")![0]!.commit_ts!).toBeGreaterThan(chosen);
  });

  it("a one-branch commit's timestamp is durable once its rows are stamped", async () => {
    const w = new World();
    const tx = "n1.one";
    const ts = new CommitTimestamps(new HybridClock(500), () => [tx]);
    // The stamp takes a moment (an UPDATE on the shard).
    const slowStamp: typeof w.stamp = async (t, shard, at) => (await new Promise((r) => setTimeout(r, 20)), w.stamp(t, shard, at));
    const a = withTimestamps(w.adapters(), ts, slowStamp, "n1");
    w.exec(tx, "a", 0n);
    expect((await a.xa.commit(tx, "a", true)).ok).toBe(true);
    // The answer (right after XA COMMIT ONE PHASE) waits for the stamp, then tells the timestamp on the rows.
    const told = ts.toTell(tx, ts.tsOf(tx)!);
    expect(told).toBeInstanceOf(Promise);
    expect(await told).toBe(ts.tsOf(tx));
    expect(w.rows.get("a")![0]!.commit_ts).toBe(ts.tsOf(tx));
  });
});
