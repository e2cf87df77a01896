/**
 * Commit timestamps through the wrapped adapters (runtime/timestamps.ts) and
 * the snapshot reads' wait for safe time (runtime/snapshot.ts), in a
 * deterministic in-memory run: a history per shard, stamped as the adapters
 * stamp it, read as the SQL of snapshotStatements reads it. The reader with
 * the wait sees a transfer whole or not at all; the `noWait` flag (the
 * read-no-wait mutant of spec/time/model.ts) is shown to serve a snapshot with
 * one branch and not the other, a total off by the amount.
 */
import { describe, expect, it } from "vitest";
import { decisionKey, type LogRecord, type ShardId, type TxId } from "../../spec/kernel/effects.ts";
import { formatTs, parseTs } from "../../spec/time/hlc.ts";
import { HybridClock } from "../../runtime/hlc.ts";
import { CommitTimestamps, withTimestamps } from "../../runtime/timestamps.ts";
import { SnapshotReads, SnapshotRefused, snapshotStatements, type SnapshotQuery } from "../../runtime/snapshot.ts";
import type { Adapters } from "../../runtime/interpreter.ts";
import type { ExchangeState } from "../../runtime/safe-exchange.ts";
import { clusterSafeTime, type ClusterView, type Publication } from "../../spec/time/cluster.ts";
import { safeTime } from "../../spec/time/safe.ts";
import { total, World, ACCOUNT_1 } from "./memory-world.ts";

/** A 2PC transfer of 300 cents from shard a to shard b, up to its decision: both branches prepared, the commit decision durable. */
async function decided(w: World, a: Adapters, ts: CommitTimestamps, tx: TxId): Promise<bigint> {
  w.exec(tx, "a", -300n);
  w.exec(tx, "b", 300n);
  await a.log.put(decisionKey(tx), { kind: "decision", decision: "commit", branches: ["a", "b"] }, 0);
  const rec = w.records.get(decisionKey(tx)) as LogRecord & { commit_ts?: string };
  expect(rec.commit_ts).toBeDefined();
  const commitTs = parseTs(rec.commit_ts!)!;
  expect(ts.tsOf(tx)).toBe(commitTs);
  return commitTs;
}

describe("snapshot reads wait for safe time (in memory)", () => {
  it("the decision record carries the commit timestamp; a read at it waits until both branches are stamped, then sees the transfer whole", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    const a = withTimestamps(w.adapters(), ts, w.stamp);
    const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 5_000 });
    const commitTs = await decided(w, a, ts, "t1");
    expect(await a.xa.commit("t1", "a")).toEqual({ ok: true });
    let served: Awaited<ReturnType<SnapshotReads["read"]>> | null = null;
    const read = reads.read(commitTs, ACCOUNT_1).then((r) => (served = r));
    await new Promise((r) => setTimeout(r, 30));
    expect(served).toBeNull(); // shard b not committed: the timestamp is pending
    expect(await a.xa.commit("t1", "b")).toEqual({ ok: true });
    await a.log.delete(decisionKey("t1"));
    await read;
    expect(served!.at).toBe(commitTs);
    expect(total(served!)).toBe(2000n);
    expect(served!.balances.get("a")!.get(1)).toBe(700n);
    expect(served!.balances.get("b")!.get(1)).toBe(1300n);
    // Every row of the transfer carries the one timestamp.
    expect([...w.rows.values()].flat().map((r) => r.commit_ts)).toEqual([commitTs, commitTs]);
    // A read just below it sees none of it.
    const before = await reads.read(commitTs - 1n, ACCOUNT_1);
    expect(before.balances.get("a")!.get(1)).toBe(1000n);
    expect(total(before)).toBe(2000n);
  });

  it("without the wait (the read-no-wait flag), a snapshot shows one branch and not the other: the total is off by the amount", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    const a = withTimestamps(w.adapters(), ts, w.stamp);
    const unsafe = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 5_000, noWait: true });
    const commitTs = await decided(w, a, ts, "t1");
    await a.xa.commit("t1", "a");
    const r = await unsafe.read(commitTs, ACCOUNT_1);
    expect(r.balances.get("a")!.get(1)).toBe(700n);
    expect(r.balances.get("b")!.get(1)).toBe(1000n);
    expect(total(r)).toBe(1700n);
  });

  it("a process that died between XA COMMIT and the stamp: the next one's resolver finds the branches committed, and forgetting the record stamps them first", async () => {
    const w = new World();
    const first = new CommitTimestamps(new HybridClock(500));
    const a1 = withTimestamps(w.adapters(), first, async () => false); // the process dies before any stamp lands
    const commitTs = await decided(w, a1, first, "t1");
    // Its XA COMMITs landed; it died before stamping (the stamp answers UNAVAILABLE: the role never heard ok).
    expect(await a1.xa.commit("t1", "a")).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect(await a1.xa.commit("t1", "b")).toEqual({ ok: false, err: "UNAVAILABLE" });
    expect([...w.rows.values()].flat().map((r) => r.commit_ts)).toEqual([null, null]);
    // The next incarnation: its resolver lists the record (the timestamp is pending, reads below wait) ...
    const next = new CommitTimestamps(new HybridClock(500));
    const a2 = withTimestamps(w.adapters(), next, w.stamp);
    await a2.log.list("tx/");
    expect(next.tsOf("t1")).toBe(commitTs);
    const reads = new SnapshotReads(next, ["a", "b"], w.query, { wait_ms: 30 });
    await expect(reads.read(commitTs)).rejects.toMatchObject({ status: 504 });
    // ... finds no branch prepared (no XA COMMIT to send) and forgets the record: the rows are stamped first.
    expect(await a2.log.delete(decisionKey("t1"))).toEqual({ ok: true });
    expect([...w.rows.values()].flat().map((r) => r.commit_ts)).toEqual([commitTs, commitTs]);
    const r = await reads.read(commitTs, ACCOUNT_1);
    expect(total(r)).toBe(2000n);
    expect(r.balances.get("b")!.get(1)).toBe(1300n);
  });

  it("a one-phase commit answers before its stamp; its timestamp is pending until the stamp lands", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = withTimestamps(w.adapters(), ts, async (tx, shard, t) => {
      await gate;
      return w.stamp(tx, shard, t);
    });
    w.exec("t1", "a", 0n);
    expect(await a.xa.commit("t1", "a", true)).toEqual({ ok: true });
    const commitTs = ts.tsOf("t1")!;
    expect(ts.pendingCount).toBe(1);
    const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 5_000 });
    let served = false;
    const read = reads.read(commitTs).then(() => (served = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(served).toBe(false);
    release();
    await read;
    expect(ts.pendingCount).toBe(0);
    expect(w.rows.get("a")![0]!.commit_ts).toBe(commitTs);
  });

  it("a read that safe time does not reach in snapshot_wait_ms is refused (504) with what is pending; before the first scan, 503", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    const a = withTimestamps(w.adapters(), ts, w.stamp);
    const commitTs = await decided(w, a, ts, "t1");
    const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 50 });
    await expect(reads.read(commitTs)).rejects.toMatchObject({ status: 504, message: expect.stringMatching(/did not reach .* within snapshot_wait_ms \(50 ms\): 1 commit timestamps pending/) });
    const notReady = new SnapshotReads(new CommitTimestamps(new HybridClock(500), () => [], () => false), ["a"], w.query, { wait_ms: 20 });
    await expect(notReady.read(null)).rejects.toBeInstanceOf(SnapshotRefused);
    await expect(notReady.read(null)).rejects.toMatchObject({ status: 503 });
  });

  it("with other coordinator nodes, a read waits for the cluster's safe time (spec/time/cluster.ts): a dead node not taken over holds it back (503 naming it), a node behind (504), then served once every node's published value reaches it", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    const pub = (node: string, safe: bigint, covers: string[] = []): Publication => ({ node, lease: `L-${node}`, safe, covers });
    let view: ClusterView = { members: ["n1", "n2"], alive: new Map([["n1", "L-n1"]]), owners: new Map(), published: new Map() };
    let cycles = 0;
    // An exchange over a view set by the test (the real one over etcd: test/time/snapshot-nodes.test.ts); each cycle publishes n1's value now.
    const cycle = (): ExchangeState => {
      cycles++;
      ts.clock.now();
      const own = safeTime(ts.view())!;
      view = { ...view, published: new Map([...view.published, ["n1", pub("n1", own, view.owners.get("n2") === "n1" ? ["n2"] : [])]]) };
      return (state = { ...clusterSafeTime(view, "n1"), own, error: null, started_ms: performance.now() });
    };
    let state: ExchangeState | null = null;
    const cluster = { latest: () => state, fresh: async () => (await new Promise((r) => setTimeout(r, 1)), cycle()) };
    const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 60, cluster });
    // n2 dead, never published: nothing can be served.
    await expect(reads.read(null)).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/node n2 is dead .*never published/) });
    expect(cycles).toBeGreaterThan(0);
    // n2 dead with its last value behind: held back, 503 naming it and its value.
    const old = ts.clock.now();
    view = { ...view, published: new Map([["n2", pub("n2", old)]]) };
    await expect(reads.read(null)).rejects.toMatchObject({ status: 503, message: expect.stringMatching(new RegExp(`node n2 is dead .*not taken over yet: its last published safe time ${formatTs(old)}`)) });
    // A read at or below n2's last value is served.
    expect(total(await reads.read(old))).toBe(2000n);
    // n2 taken over by n1 (covered once n1's resolver scanned it): served now.
    view = { ...view, owners: new Map([["n2", "n1"]]) };
    expect(total(await reads.read(null))).toBe(2000n);
    // n2 alive again (a new lease) and not published yet: 503; published but behind: 504 naming it; caught up: served.
    view = { ...view, owners: new Map(), alive: new Map([["n1", "L-n1"], ["n2", "L-n2"]]), published: new Map([["n2", { ...pub("n2", old), lease: "L-old" }]]) };
    await expect(reads.read(null)).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/node n2 is alive and has not published/) });
    view = { ...view, published: new Map([["n2", pub("n2", old)]]) };
    await expect(reads.read(null)).rejects.toMatchObject({ status: 504, message: expect.stringMatching(new RegExp(`held back by n2 at ${formatTs(old)}`)) });
    const pending = reads.read(null);
    setTimeout(() => (view = { ...view, published: new Map([["n2", pub("n2", ts.clock.now() + 1_000n)]]) }), 20);
    expect(total(await pending)).toBe(2000n);
  });

  it("a read at a timestamp beyond the skew bound is refused (400); one within it is observed, so later commits land above it", async () => {
    const w = new World();
    const clock = new HybridClock(500);
    const ts = new CommitTimestamps(clock);
    const a = withTimestamps(w.adapters(), ts, w.stamp);
    const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 1_000 });
    const ahead = (ms: number) => BigInt(Date.now() + ms) * 65536n;
    await expect(reads.read(ahead(60_000))).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/ahead of this server's clock/) });
    const at = ahead(300);
    const r = await reads.read(at);
    expect(total(r)).toBe(2000n);
    const commitTs = await decided(w, a, ts, "t2");
    expect(commitTs > at).toBe(true);
  });

  it("a listing of the records learns their timestamps (pending until forgotten); a commit decision over STAGING keeps the STAGING's", async () => {
    const w = new World();
    const ts = new CommitTimestamps(new HybridClock(500));
    const a = withTimestamps(w.adapters(), ts, w.stamp);
    const old = BigInt(Date.now() - 10) * 65536n + 5n;
    w.records.set(decisionKey("t9"), { kind: "staging", branches: [{ shard: "a", conn: "1" }], commit_ts: formatTs(old) });
    await a.log.list("tx/");
    expect(ts.tsOf("t9")).toBe(old);
    expect(ts.pendingCount).toBe(1);
    await a.log.put(decisionKey("t9"), { kind: "decision", decision: "commit", branches: ["a"] }, 1);
    expect((w.records.get(decisionKey("t9")) as { commit_ts?: string }).commit_ts).toBe(formatTs(old));
    await a.log.delete(decisionKey("t9"));
    expect(ts.pendingCount).toBe(0);
    // Not running here and not in a complete listing: its decision never landed (presumed abort), no longer pending.
    await a.log.put(decisionKey("t10"), { kind: "decision", decision: "commit", branches: ["a"] }, 0);
    w.records.delete(decisionKey("t10"));
    expect(ts.pendingCount).toBe(1);
    await a.log.list("tx/");
    expect(ts.pendingCount).toBe(0);
    expect(snapshotStatements(7n)[0]).toMatch(/commit_ts IS NULL OR commit_ts > 7/);
  });
});
