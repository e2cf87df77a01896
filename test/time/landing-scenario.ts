/**
 * The decision write that lands late (docs/protocols/timestamps.md, "A
 * record that lands late"), injected deterministically in memory (no etcd:
 * the txlog is a map whose put can answer UNAVAILABLE and land later):
 *
 *   a 2PC coordinator's COMMIT decision put answers UNAVAILABLE and the
 *   coordinator gives up (not running any more); a complete listing does not
 *   show the record, so its timestamp T stops holding safe time back; a
 *   snapshot is served at S >= T; then the put lands; the resolver lists it
 *   and commits both branches. Without spec/time/safe.ts `landing` the
 *   branches are stamped at T <= S and the snapshot at S changes after it was
 *   served; with it the record is written again above S first.
 */
import { decisionKey, type LogRecord, type TxId } from "../../spec/kernel/effects.ts";
import { parseTs } from "../../spec/time/hlc.ts";
import { HybridClock } from "../../runtime/hlc.ts";
import { SnapshotReads } from "../../runtime/snapshot.ts";
import { CommitTimestamps, withTimestamps } from "../../runtime/timestamps.ts";
import { World, ACCOUNT_1 } from "./memory-world.ts";

export interface LandingResult {
  /** The timestamp the coordinator chose and the late record first carried. */
  readonly chosen: bigint;
  /** The snapshot served while the record was on its way. */
  readonly servedAt: bigint;
  /** Per shard, the balance at servedAt: when served, and read again once the transfer committed. */
  readonly before: Record<string, bigint>;
  readonly after: Record<string, bigint>;
  /** The timestamp the branches were stamped at, and the record's after the resolver's listing. */
  readonly stampedAt: bigint;
  readonly recordTs: bigint;
}

export async function lateLanding(): Promise<LandingResult> {
  const w = new World();
  const running = new Set<TxId>();
  const ts = new CommitTimestamps(new HybridClock(500), () => running);
  const base = w.adapters();
  const tx = "n1.late";
  const key = decisionKey(tx);
  let held: LogRecord | null = null;
  const log = {
    ...base.log,
    put: async (k: string, v: LogRecord, ifVersion: number) => {
      if (k === key && held === null && !w.records.has(k)) {
        held = v;
        return { ok: false, err: "UNAVAILABLE" } as const;
      }
      w.records.set(k, v);
      return { ok: true, version: ifVersion + 1 } as const;
    },
  };
  const a = withTimestamps({ ...base, log } as typeof base, ts, w.stamp, "n1");
  const reads = new SnapshotReads(ts, ["a", "b"], w.query, { wait_ms: 1_000 });

  // The coordinator: both branches prepared, the decision put answers UNAVAILABLE (it is on its way), it gives up.
  running.add(tx);
  w.exec(tx, "a", -300n);
  w.exec(tx, "b", 300n);
  const put = await a.log.put(key, { kind: "decision", decision: "commit", branches: ["a", "b"] }, 0);
  if (put.ok) throw new Error("the injected put should answer UNAVAILABLE");
  const chosen = parseTs((held as unknown as { commit_ts: string }).commit_ts)!;
  running.delete(tx);
  // A complete listing without the record: T no longer pending. A snapshot is served above it.
  await a.log.list("tx/");
  const served = await reads.read(null, ACCOUNT_1);
  const balances = (r: typeof served) => Object.fromEntries([...r.balances].map(([s, m]) => [s, m.get(1)!]));
  // The put lands; the resolver lists it and finishes the transaction.
  w.records.set(key, held!);
  const listed = await a.log.list("tx/");
  if (!listed.ok) throw new Error("listing failed");
  const rec = listed.entries.find((e) => e.key === key)!.value as LogRecord & { commit_ts: string };
  await a.xa.commit(tx, "a");
  await a.xa.commit(tx, "b");
  await a.log.delete(key);
  const again = await reads.read(served.at, ACCOUNT_1);
  const stampedAt = w.rows.get("a")!.find((r) => r.tx === tx)!.commit_ts!;
  return { chosen, servedAt: served.at, before: balances(served), after: balances(again), stampedAt, recordTs: parseTs(rec.commit_ts)! };
}
