// A hung coordinator's speculative release, frozen between its two round trips, on a real MariaDB
// (spec/failover/takeover.ts rule 5, runtime/detach.ts with target speculative_undo). The speculative path's
// release and compensate are ONE local transaction in two round trips (runtime/adapters/local-mysql.ts retire:
// START TRANSACTION + SELECT ... FOR UPDATE of the undo row, then the changes + COMMIT); a node frozen between them
// keeps its session and the X lock on the undo row, and a survivor's release of the same branch waits out the
// lock wait timeout on every scan, until the node wakes (seen in test/failover/takeover-live.test.ts: one or two
// speculative records of the frozen node left). Local transactions are never prepared, so the XA probe (the
// branch's history rows, committed with the apply) does not see that session.
//   - the gap: the survivor's release answers UNAVAILABLE; the XA probe finds nothing to kill;
//   - detachBranch(..., "speculative_undo") finds the session through the undo row's lock wait and kills it; the
//     survivor's release then applies (the frozen transaction was rolled back);
//   - NodeLocal with beforeSettle: its scan answers UNAVAILABLE while an undo row cannot be detached.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MysqlLocal } from "../../runtime/adapters/local-mysql.ts";
import { detachBranch, Detacher } from "../../runtime/detach.ts";
import { NodeLocal } from "../../runtime/nodes.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };
let hung: MysqlLocal;
let survivor: MysqlLocal;
const executor = () => new MysqlLocal({ shards: cluster.shards.map((s) => s.serverAddress()), limits });

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 1, accountsPerShard: 100, balanceCents: 10_000, lockWaitTimeoutS: 1 });
  hung = executor();
  survivor = executor();
}, 120_000);

afterAll(async () => {
  hung?.close();
  survivor?.close();
  await cluster?.stop();
});

async function sessionAlive(thread: number): Promise<boolean> {
  const r = await survivor.pool("shard-a").run<Array<{ n: unknown }>>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ${thread}`);
  if (!r.ok) throw new Error(r.error.message);
  return Number(r.value[0]!.n) === 1;
}

async function stateOf(tx: string): Promise<string | undefined> {
  const r = await survivor.pool("shard-a").run<Array<{ state: string }>>(`SELECT state FROM speculative_undo WHERE tx = '${tx}' AND branch = 'shard-a'`);
  if (!r.ok) throw new Error(r.error.message);
  return r.value[0]?.state;
}

/** n2 applied a branch, then froze in its release after the first round trip: its session holds the undo row FOR UPDATE. */
async function frozenMidRelease(tx: string, account: number): Promise<number> {
  expect(await hung.apply(tx, "shard-a", [{ account, delta: -100 }], ["shard-a"])).toEqual({ ok: true });
  const pool = hung.pool("shard-a");
  const c = (await pool.acquire())!;
  expect(c).not.toBeNull();
  expect((await pool.query(c, "START TRANSACTION")).ok).toBe(true);
  const r = await pool.query<unknown[]>(c, `SELECT inverse, escrow FROM speculative_undo WHERE tx = '${tx}' AND branch = 'shard-a' AND state = 'undo' FOR UPDATE`);
  expect(r.ok && r.value.length).toBe(1);
  // Never released, never committed: the node is frozen (its connection is killed below; the pool sees it dead).
  return c.threadId;
}

describe("a hung node's speculative release and its live session (MariaDB 10.11)", () => {
  it("the survivor's release waits out the lock; the XA probe does not free it; the undo-row probe kills the session and the release applies", async () => {
    const tx = "n2.e0000000-0000-4000-8000-000000000001";
    const thread = await frozenMidRelease(tx, 1);
    // The gap: every scan's release times out on the lock (1 s), UNAVAILABLE, for as long as n2 stays frozen.
    expect(await survivor.release(tx, "shard-a")).toEqual({ ok: false, err: "UNAVAILABLE" });
    // The XA probe reads the history rows, committed with the apply: nothing holds them, nothing is killed.
    expect(await detachBranch(survivor.pool("shard-a"), tx)).toEqual({ tx, outcome: "detached" });
    expect(await sessionAlive(thread)).toBe(true);
    // The undo-row probe waits on n2's lock, names its session, kills it.
    expect(await detachBranch(survivor.pool("shard-a"), tx, false, "speculative_undo")).toEqual({ tx, outcome: "killed", thread });
    expect(await sessionAlive(thread)).toBe(false);
    // n2's release was rolled back with its session: the row is still in state undo, and the survivor's release applies.
    expect(await stateOf(tx)).toBe("undo");
    expect(await survivor.release(tx, "shard-a")).toEqual({ ok: true, applied: true });
    expect(await stateOf(tx)).toBe("released");
    // Nothing holds the row any more: the probe finds it free.
    expect(await detachBranch(survivor.pool("shard-a"), tx, false, "speculative_undo")).toEqual({ tx, outcome: "detached" });
  }, 30_000);

  it("NodeLocal's scan answers UNAVAILABLE while an undo row of the node cannot be detached, and lists it once it is", async () => {
    const tx = "n2.e0000000-0000-4000-8000-000000000002";
    const thread = await frozenMidRelease(tx, 2);
    let allowKill = false;
    const killed: number[] = [];
    const detacher = new Detacher((s) => (s === "shard-a" ? survivor.pool(s) : undefined), (_s, d) => void killed.push(d.thread), "speculative_undo");
    const local = new NodeLocal(survivor, "n2", async (shard, txs) => {
      if (!allowKill) return false;
      return (await detacher.detach(shard, txs)).complete;
    });
    expect(await local.scan("shard-a")).toEqual({ ok: false, err: "UNAVAILABLE" });
    allowKill = true;
    const listed = await local.scan("shard-a");
    expect(listed.ok && listed.rows.map((r) => r.tx)).toEqual([tx]);
    expect(killed).toEqual([thread]);
    expect(await survivor.release(tx, "shard-a")).toEqual({ ok: true, applied: true });
  }, 30_000);
});
