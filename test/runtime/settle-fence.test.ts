// The settle fence (spec/server/readback.ts SETTLE_FENCE; runtime/durable.ts settledOutcome) on a real MariaDB
// and etcd. A coordinator that died may have left XA COMMIT ... ONE PHASE on its way: its branch is IDLE on a
// session the shard has not dropped yet, and neither XA RECOVER nor the history shows it. "Nothing found" is then
// not yet aborted: the reader waits on the branch's history rows (a locking read) until the branch ended.
// The dead process is a second executor whose statements the test sends late (the statement on its way) or whose
// sockets it closes (what the kernel does to a process killed with kill -9).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readBackRules, settle, type RanAs } from "../../spec/server/readback.ts";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { TxlogEtcd } from "../../runtime/adapters/txlog-etcd.ts";
import { DurableUnavailable, durableFacts, durableOutcome, settledOutcome } from "../../runtime/durable.ts";
import { decisionKey } from "../../spec/kernel/effects.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance } from "./support.ts";

let cluster: TestCluster;
/** The reading process's executor and txlog. */
let reader: XaMysql;
let log: TxlogEtcd;

const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };
const executor = () => new XaMysql({ shards: cluster.shards.map((s) => s.serverAddress()), limits });
/** One branch on shard-a: the one-phase path (no prepare, no txlog record). */
const ONE_PHASE: RanAs = { protocol: "2pc", shards: ["shard-a"] };
const UNFENCED = readBackRules(undefined, "unfenced");

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 20, balanceCents: 10_000, lockWaitTimeoutS: 1 });
  reader = executor();
  log = new TxlogEtcd(cluster.etcdClient(), "fence/");
});

afterAll(async () => {
  reader?.close();
  await cluster?.stop();
});

const deps = (epoch: number | null = 1) => ({ xa: reader, log, epoch: () => epoch });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("settle fence: nothing found is aborted only once the branch of a dead coordinator has ended", () => {
  it("an XA COMMIT ONE PHASE that lands after the reader found nothing: settled committed, where the unfenced rule said aborted", async () => {
    const tx = "f0000000-0000-4000-8000-000000000001";
    const dead = executor();
    try {
      expect(await dead.exec(tx, "shard-a", [{ account: 1, delta: -250 }], true)).toEqual({ ok: true });
      const before = await durableFacts(tx, deps(), ONE_PHASE.shards);
      // What the rule without the fence answered (the issue-9 defect): aborted, while the commit is still on its way.
      expect(settle(tx, before, ONE_PHASE, UNFENCED)).toEqual({ status: "aborted", reason: "resolver" });
      expect(settle(tx, before, ONE_PHASE)).toBe("fence");
      const settling = settledOutcome(tx, ONE_PHASE, deps());
      let answered = false;
      void settling.then(() => (answered = true), () => (answered = true));
      await sleep(300);
      // Waiting on the branch's rows: no answer while the branch lives.
      expect(answered).toBe(false);
      expect(await dead.commit(tx, "shard-a", true)).toEqual({ ok: true });
      expect(await settling).toEqual({ status: "committed" });
      expect(await balance(cluster, "shard-a", 1)).toBe(9_750n);
    } finally {
      dead.close();
    }
  });

  it("the dead process's socket closes: the shard rolls the branch back, settled aborted, and no commit of it can land any more", async () => {
    const tx = "f0000000-0000-4000-8000-000000000002";
    const dead = executor();
    expect(await dead.exec(tx, "shard-a", [{ account: 2, delta: -300 }], true)).toEqual({ ok: true });
    const settling = settledOutcome(tx, ONE_PHASE, deps());
    await sleep(200);
    dead.close();
    expect(await settling).toEqual({ status: "aborted", reason: "resolver" });
    expect(await balance(cluster, "shard-a", 2)).toBe(10_000n);
    // The branch is gone: a commit of it from anywhere commits nothing.
    expect((await reader.commit(tx, "shard-a", true)).ok).toBe(false);
    expect(await balance(cluster, "shard-a", 2)).toBe(10_000n);
  });

  it("a branch whose session stays open past the lock wait timeout: no answer yet (DurableUnavailable), never aborted", async () => {
    const tx = "f0000000-0000-4000-8000-000000000003";
    const dead = executor();
    try {
      expect(await dead.exec(tx, "shard-a", [{ account: 3, delta: -100 }], true)).toEqual({ ok: true });
      await expect(settledOutcome(tx, ONE_PHASE, deps())).rejects.toThrow(DurableUnavailable);
      await expect(settledOutcome(tx, ONE_PHASE, deps())).rejects.toThrow(/still open/);
    } finally {
      dead.close();
    }
  });

  it("the log fence: a process without an epoch does not read nothing as aborted", async () => {
    await expect(settledOutcome("f0000000-0000-4000-8000-000000000004", ONE_PHASE, deps(null))).rejects.toThrow(/no epoch/);
  });

  it("nothing of it anywhere and no branch: aborted at once (the fence waits on nothing)", async () => {
    const t0 = performance.now();
    expect(await settledOutcome("f0000000-0000-4000-8000-000000000005", ONE_PHASE, deps())).toEqual({ status: "aborted", reason: "resolver" });
    expect(performance.now() - t0).toBeLessThan(900);
  });

  it("a committed one-phase transfer is committed, fence or not", async () => {
    const tx = "f0000000-0000-4000-8000-000000000006";
    expect(await reader.exec(tx, "shard-a", [{ account: 4, delta: -10 }], true)).toEqual({ ok: true });
    expect(await reader.commit(tx, "shard-a", true)).toEqual({ ok: true });
    expect(await settledOutcome(tx, ONE_PHASE, deps())).toEqual({ status: "committed" });
  });
});

describe("read-back with a shard down (spec/server/readback.ts readBackWithout)", () => {
  it("a decision record answers alone; without a record, or with a STAGING record, the shard that did not answer could change it: DurableUnavailable", async () => {
    const committed = "f0000000-0000-4000-8000-000000000101";
    const aborted = "f0000000-0000-4000-8000-000000000102";
    const staging = "f0000000-0000-4000-8000-000000000103";
    const nothing = "f0000000-0000-4000-8000-000000000104";
    expect(await log.put(decisionKey(committed), { kind: "decision", decision: "commit", branches: ["shard-a", "shard-b"] }, 0)).toMatchObject({ ok: true });
    expect(await log.put(decisionKey(aborted), { kind: "decision", decision: "abort", branches: ["shard-a", "shard-b"] }, 0)).toMatchObject({ ok: true });
    expect(await log.put(decisionKey(staging), { kind: "staging", branches: [{ shard: "shard-a", conn: "1:1" }, { shard: "shard-b", conn: "1:2" }] }, 0)).toMatchObject({ ok: true });
    const deps0 = { xa: reader, log };
    // Every shard answers: as before.
    expect((await durableOutcome(committed, deps0))?.outcome).toEqual({ status: "committed" });
    await cluster.shard("shard-b").db.stop();
    try {
      expect(await durableOutcome(committed, deps0)).toEqual({ outcome: { status: "committed" }, found: { decision_record: "commit", unanswered: ["shard-b"] } });
      expect((await durableOutcome(aborted, deps0))?.outcome).toEqual({ status: "aborted", reason: "resolver" });
      await expect(durableOutcome(staging, deps0)).rejects.toThrow(/shard-b did not answer/);
      await expect(durableOutcome(nothing, deps0)).rejects.toThrow(DurableUnavailable);
    } finally {
      await cluster.shard("shard-b").db.restart();
    }
  });
});
