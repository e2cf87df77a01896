// A hung coordinator's prepared branches and its live shard sessions, on a real MariaDB (spec/failover/takeover.ts
// rule 5, runtime/detach.ts). One XaMysql plays the hung node n2 (its branch prepared, its session open and idle, as
// in a process frozen by SIGSTOP or cut off by a partition), another the survivor's resolver:
//   - what MariaDB does: XA COMMIT and XA ROLLBACK of the branch from the survivor answer NOTA (1397) while n2's
//     session lives, and the branch's row locks hold (the survivor's locking read waits);
//   - detachBranch finds the session through the lock wait, kills it, and the survivor's XA COMMIT then applies;
//   - NodeXa with beforeSettle: while a branch cannot be detached its XA RECOVER answers UNAVAILABLE;
//   - Failover.beforeSettle follows the spec's rule: nothing is killed before the fence (no epoch yet).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { detachBranch, Detacher } from "../../runtime/detach.ts";
import { NodeXa } from "../../runtime/nodes.ts";
import { detachBeforeSettle, takeover } from "../../spec/failover/takeover.ts";
import { ownerKey } from "../../spec/kernel/effects.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 5_000 };
let hung: XaMysql;
let survivor: XaMysql;
const executor = () => new XaMysql({ shards: cluster.shards.map((s) => s.serverAddress()), limits });

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

async function balanceOf(account: number): Promise<bigint> {
  const r = await survivor.pool("shard-a").run<Array<{ balance: unknown }>>(`SELECT balance FROM accounts WHERE id = ${account}`);
  if (!r.ok) throw new Error(r.error.message);
  return BigInt(String(r.value[0]!.balance));
}

async function sessionAlive(thread: number): Promise<boolean> {
  const r = await survivor.pool("shard-a").run<Array<{ n: unknown }>>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ${thread}`);
  if (!r.ok) throw new Error(r.error.message);
  return Number(r.value[0]!.n) === 1;
}

/** A branch of n2 executed and prepared by the hung node; its session stays open. */
async function preparedByHungNode(tx: string, account: number, delta: number): Promise<number> {
  expect(await hung.exec(tx, "shard-a", [{ account, delta }], true)).toEqual({ ok: true });
  expect(await hung.prepare(tx, "shard-a")).toEqual({ ok: true });
  return Number(hung.connectionOf(tx, "shard-a")!.split(":")[1]);
}

describe("a hung node's prepared branch and its live session (MariaDB 10.11)", () => {
  it("while the session lives, XA COMMIT/ROLLBACK from another answer NOTA and the rows stay locked; detached by killing it, the commit applies", async () => {
    const tx = "n2.d0000000-0000-4000-8000-000000000001";
    const before = await balanceOf(1);
    const thread = await preparedByHungNode(tx, 1, -250);
    // What MariaDB does (the reason for rule 5): not the resolver's to settle while attached.
    expect(await survivor.commit(tx, "shard-a")).toEqual({ ok: false, err: "NOTA" });
    expect(await survivor.rollback(tx, "shard-a")).toEqual({ ok: false, err: "NOTA" });
    // XA RECOVER lists it all the same.
    const listed = await survivor.recover("shard-a");
    expect(listed.ok && listed.prepared.map((x) => x.tx)).toContain(tx);
    const t0 = performance.now();
    const d = await detachBranch(survivor.pool("shard-a"), tx);
    console.log(`detached ${tx} in ${Math.round(performance.now() - t0)} ms: ${JSON.stringify(d)}`);
    expect(d).toEqual({ tx, outcome: "killed", thread });
    expect(await sessionAlive(thread)).toBe(false);
    // Detached, still prepared: the survivor's commit applies, once.
    expect(await survivor.commit(tx, "shard-a")).toEqual({ ok: true });
    expect(await balanceOf(1)).toBe(before - 250n);
    expect(await survivor.commit(tx, "shard-a")).toEqual({ ok: false, err: "NOTA" });
  }, 30_000);

  it("a branch already detached is found so (holder session 0), and its rollback applies", async () => {
    const tx = "n2.d0000000-0000-4000-8000-000000000002";
    const before = await balanceOf(2);
    const thread = await preparedByHungNode(tx, 2, -100);
    expect(await detachBranch(survivor.pool("shard-a"), tx)).toEqual({ tx, outcome: "killed", thread });
    expect(await detachBranch(survivor.pool("shard-a"), tx)).toEqual({ tx, outcome: "detached" });
    expect(await survivor.rollback(tx, "shard-a")).toEqual({ ok: true });
    expect(await balanceOf(2)).toBe(before);
  }, 30_000);

  it("an xid with no history row (nothing to find its session by) is said so, not failed", async () => {
    expect(await detachBranch(survivor.pool("shard-a"), "n2.d0000000-0000-4000-8000-00000000ffff")).toEqual({ tx: "n2.d0000000-0000-4000-8000-00000000ffff", outcome: "no-rows" });
  }, 30_000);

  it("NodeXa: XA RECOVER of the taken-over node detaches before answering; UNAVAILABLE while it cannot; the Detacher counts kills once", async () => {
    const tx = "n2.d0000000-0000-4000-8000-000000000003";
    const thread = await preparedByHungNode(tx, 3, -5);
    const killed: number[] = [];
    const detacher = new Detacher((s) => survivor.pool(s), (_s, d) => killed.push(d.thread));
    const listed: string[][] = [];
    const xa = new NodeXa(survivor, "n2", async (shard, txs) => {
      listed.push([...txs]);
      return (await detacher.detach(shard, txs)).complete;
    });
    const r = await xa.recover("shard-a");
    expect(r.ok && r.prepared.map((x) => x.tx)).toEqual([tx]);
    expect(killed).toEqual([thread]);
    // Known detached: not probed again, not counted again.
    expect(await xa.recover("shard-a")).toMatchObject({ ok: true });
    expect(killed).toEqual([thread]);
    expect(await xa.commit(tx, "shard-a")).toEqual({ ok: true });
    // A hook that says "not detached" makes the listing a shard that did not answer: the resolver settles nothing there.
    const tx2 = "n2.d0000000-0000-4000-8000-000000000004";
    await preparedByHungNode(tx2, 4, -5);
    const refusing = new NodeXa(survivor, "n2", async () => false);
    expect(await refusing.recover("shard-a")).toEqual({ ok: false, err: "UNAVAILABLE" });
    // Another node's listing (n1) never shows n2's branch.
    const n1 = new NodeXa(survivor, "n1", async (_shard, txs) => {
      expect(txs).not.toContain(tx2);
      return true;
    });
    expect(await n1.recover("shard-a")).toMatchObject({ ok: true });
    expect(await hung.rollback(tx2, "shard-a")).toEqual({ ok: true });
  }, 30_000);
});

describe("rule 5 (spec/failover/takeover.ts): when the host may kill a taken-over node's sessions", () => {
  it("only while owning the node and once the fence (its new epoch) is durable", () => {
    const role = takeover("n1", "n2");
    let st = role.start();
    expect(detachBeforeSettle(undefined, 3)).toBe(false);
    expect(detachBeforeSettle(st, 3)).toBe(false);
    st = role.step(st, { t: "lease", node: "n2", alive: false }).st;
    // The claim in flight: not owning yet.
    expect(st.phase).toBe("claiming");
    expect(detachBeforeSettle(st, 3)).toBe(false);
    st = role.step(st, { t: "log.put", key: ownerKey("n2"), r: { ok: true, version: 1 } } as never).st;
    expect(st.phase).toBe("owning");
    // Owning, but the resolver has not taken its epoch of n2 yet: n2 may still make a decision durable.
    expect(detachBeforeSettle(st, null)).toBe(false);
    expect(detachBeforeSettle(st, 7)).toBe(true);
    // n2 alive again: the claim is given back, nothing is killed any more.
    st = role.step(st, { t: "lease", node: "n2", alive: true }).st;
    expect(detachBeforeSettle(st, 7)).toBe(false);
  });
});
