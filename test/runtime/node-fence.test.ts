// The node fence (spec/server/readback.ts SETTLE_FENCE; spec/kernel/effects.ts xa.exec `fence`;
// runtime/detach.ts fenceNode) on a real MariaDB and etcd.
//
// The defect it closes: a one-shard transfer takes the one-phase path (exec, then XA COMMIT ... ONE PHASE, with no
// txlog record). A coordinator node hung (SIGSTOP) or cut off before its exec, or between its exec and its commit,
// left nothing a survivor could find: the survivor read its transfer back as aborted, and the node, once it woke,
// committed it (the takeover-live test saw it about one run in three: one key answered aborted and applied).
//
// The hung node is a second executor whose statements the test sends late. Every moment of the survivor's settle
// against the branch's steps is tried (before the exec, between exec and commit, after the commit), and the
// invariant is the one the audit checks: what the survivor answered is what the shard holds, for ever after.
// The unfenced exec (the branch not reading its fence row: the code before this fix) is the mutant: the same
// schedule then answers aborted and applies the transfer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import mysql from "mysql2/promise";
import type { RanAs } from "../../spec/server/readback.ts";
import { XaMysql } from "../../runtime/adapters/xa-mysql.ts";
import { TxlogEtcd } from "../../runtime/adapters/txlog-etcd.ts";
import { DurableUnavailable, settledOutcome } from "../../runtime/durable.ts";
import { fenceNode } from "../../runtime/detach.ts";
import type { Outcome } from "../../spec/kernel/effects.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { balance } from "./support.ts";

let cluster: TestCluster;
/** The survivor's executor and the hung node's txlog namespace. */
let survivor: XaMysql;
let log: TxlogEtcd;

const limits = { connections_max: 8, waiters_max: 8, acquire_timeout_ms: 2_000, connect_timeout_ms: 1_000, statement_timeout_ms: 15_000 };
const executor = () => new XaMysql({ shards: cluster.shards.map((s) => s.serverAddress()), limits });
const ONE_SHARD: RanAs = { protocol: "2pc", shards: ["shard-a"] };
const START = 10_000n;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 40, balanceCents: Number(START), lockWaitTimeoutS: 1 });
  survivor = executor();
  log = new TxlogEtcd(cluster.etcdClient(), "node-fence/");
});

afterAll(async () => {
  survivor?.close();
  await cluster?.stop();
});

/** The survivor holds epoch `epoch` of the hung node (it took it over: its sessions may be killed). */
const taken = (epoch: number, killFenced = true) => ({ xa: survivor, log, epoch: () => epoch, killFenced });

/**
 * A one-shard transfer of `delta` cents out of `account` by executor `x` under `fence`: executed and committed one
 * phase. `onePhase`: the exec leaves the branch ACTIVE, as the server's one-shard transfers do (its history rows
 * written by the commit, its open-branch row held meanwhile); else it ends it (XA END, its history rows written).
 */
async function commits(x: XaMysql, tx: string, account: number, delta: number, fence: number, onePhase = false): Promise<void> {
  expect(await x.exec(tx, "shard-a", [{ account, delta }], true, fence, onePhase)).toEqual({ ok: true });
  expect(await x.commit(tx, "shard-a", true)).toEqual({ ok: true });
}

type Moment = "before-exec" | "after-exec" | "after-commit";
const MOMENTS: readonly Moment[] = ["before-exec", "after-exec", "after-commit"];

/**
 * A hung node `node` (coordinator epoch 1) runs a one-phase transfer of 100 cents out of `account` (to account+1),
 * the survivor (epoch 2) settles it at `moment`; `fenced`: the branch reads its fence row (false: the mutant).
 * Returns what the survivor answered and whether the shard holds the transfer once the node woke and finished.
 */
async function schedule(node: string, account: number, moment: Moment, fenced: boolean, onePhase = false): Promise<{ answer: Outcome | "probe"; applied: boolean }> {
  const tx = `${node}.f0000000-0000-4000-8000-${String(account).padStart(12, "0")}`;
  const hung = executor();
  try {
    const ops = [
      { account, delta: -100 },
      { account: account + 1, delta: 100 },
    ];
    const fence = fenced ? 1 : undefined;
    const run = async (): Promise<void> => {
      const e = await hung.exec(tx, "shard-a", ops, true, fence, onePhase);
      // What the coordinator does with each answer (spec/protocols/twopc/coordinator.ts): commit one phase, or roll back.
      if (e.ok) await hung.commit(tx, "shard-a", true);
      else await hung.rollback(tx, "shard-a");
    };
    let answer: Outcome | "probe";
    if (moment === "before-exec") {
      answer = await settledOutcome(tx, ONE_SHARD, taken(2));
      await run();
    } else if (moment === "after-exec") {
      const e = await hung.exec(tx, "shard-a", ops, true, fence, onePhase);
      expect(e).toEqual({ ok: true });
      // Frozen here: the survivor settles (killing the hung session that holds the fence row), then the node wakes.
      answer = await settledOutcome(tx, ONE_SHARD, taken(2));
      await hung.commit(tx, "shard-a", true);
    } else {
      await run();
      answer = await settledOutcome(tx, ONE_SHARD, taken(2));
    }
    const debited = await balance(cluster, "shard-a", account);
    const credited = await balance(cluster, "shard-a", account + 1);
    expect(debited + credited).toBe(2n * START);
    return { answer, applied: debited === START - 100n };
  } finally {
    hung.close();
  }
}

describe("the node fence: a hung node's one-phase transfer is never answered aborted and applied", () => {
  // Each schedule its own node (a fence row per node) and accounts.
  it("every moment of the survivor's settle against the branch's steps, the branch ended by its exec or left ACTIVE (the server's one-phase exec): the answer is what the shard holds", async () => {
    let i = 0;
    for (const onePhase of [false, true]) {
      for (const moment of MOMENTS) {
        const { answer, applied } = await schedule(`nf${i}`, 1 + 2 * i, moment, true, onePhase);
        i++;
        expect(answer === "probe" ? "probe" : answer.status, `${moment}${onePhase ? ", ACTIVE" : ""}`).toBe(applied ? "committed" : "aborted");
        // The moment between exec and commit is the one the fences exist for: the survivor's answer is aborted.
        if (moment === "after-exec") expect(applied).toBe(false);
      }
    }
  });

  it("the mutant (an unfenced branch, the code before the fence): settled before the exec, answered aborted and applied", async () => {
    const { answer, applied } = await schedule("nfm", 21, "before-exec", false);
    expect(answer).toEqual({ status: "aborted", reason: "resolver" });
    expect(applied).toBe(true);
  });

  it("the fenced branch fails FENCED; the node's own newer epoch passes the fence", async () => {
    const tx = "nfe.f0000000-0000-4000-8000-000000000031";
    expect(await settledOutcome(tx, ONE_SHARD, taken(2))).toEqual({ status: "aborted", reason: "resolver" });
    const hung = executor();
    try {
      // Ended by its exec or left ACTIVE (the server's one-phase exec, with its open-branch row): refused either way.
      expect(await hung.exec(tx, "shard-a", [{ account: 31, delta: -5 }], true, 1)).toEqual({ ok: false, err: "FENCED" });
      expect((await hung.rollback(tx, "shard-a")).ok).toBe(true);
      const active = "nfe.f0000000-0000-4000-8000-000000000131";
      expect(await settledOutcome(active, ONE_SHARD, taken(2))).toEqual({ status: "aborted", reason: "resolver" });
      expect(await hung.exec(active, "shard-a", [{ account: 31, delta: -5 }], true, 1, true)).toEqual({ ok: false, err: "FENCED" });
      expect((await hung.rollback(active, "shard-a")).ok).toBe(true);
      expect(await balance(cluster, "shard-a", 31)).toBe(START);
      // Back, the node takes a newer epoch (3): its transfers pass.
      await commits(hung, "nfe.f0000000-0000-4000-8000-000000000032", 31, -5, 3);
      await commits(hung, "nfe.f0000000-0000-4000-8000-000000000132", 31, -5, 3, true);
      expect(await balance(cluster, "shard-a", 31)).toBe(START - 10n);
    } finally {
      hung.close();
    }
  });

  it.each([
    { onePhase: false, node: "nfo", accounts: [33, 34] },
    { onePhase: true, node: "nfp", accounts: [38, 39] },
  ])("its own node's settle waits for its branches in flight (never kills them), and a branch that commits meanwhile is committed (ACTIVE after exec: $onePhase)", async ({ onePhase, node: name, accounts: [a, b] }) => {
    const tx = `${name}.f0000000-0000-4000-8000-0000000000${a}`;
    const node = executor();
    try {
      expect(await node.exec(tx, "shard-a", [{ account: a!, delta: -7 }], true, 1, onePhase)).toEqual({ ok: true });
      // Without kill the fence row write gives up on the live branch: no answer yet.
      await expect(settledOutcome(tx, ONE_SHARD, taken(1, false))).rejects.toThrow(DurableUnavailable);
      const settling = settledOutcome(tx, ONE_SHARD, taken(1, false));
      await new Promise((r) => setTimeout(r, 50));
      // Meanwhile the fence write never waits in the row's lock queue (NOWAIT, tried again), where it would hold up
      // every new one-shard transfer of the node behind it: no lock wait on node_fence is ever seen.
      const pool = survivor.pool("shard-a");
      for (let i = 0; i < 6; i++) {
        const w = await pool.run<Array<{ n: unknown }>>(
          "SELECT COUNT(*) AS n FROM information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id WHERE l.lock_table LIKE '%node_fence%'",
        );
        expect(w.ok && Number(w.value[0]?.n)).toBe(0);
        await new Promise((r) => setTimeout(r, 60));
      }
      // And a new one-shard transfer of the node runs and commits while the fence is still being tried.
      await commits(node, `${name}.f0000000-0000-4000-8000-0000000000${b}`, b!, -1, 1, onePhase);
      expect(await node.commit(tx, "shard-a", true)).toEqual({ ok: true });
      expect(await settling).toEqual({ status: "committed" });
      expect(await balance(cluster, "shard-a", a!)).toBe(START - 7n);
    } finally {
      node.close();
    }
  });

  // The node fence of the process's own node is written once per epoch (and with NOWAIT): once written, only the
  // shard fence waits for that node's branches in flight. A one-phase branch's history rows are written by its commit,
  // so what the shard fence waits on is its open-branch row (runtime/durable.ts shardFenceSql). Without it (the change
  // tried once and reverted), this settle read "nothing", answered aborted, and the commit then applied the transfer.
  it("once its own node is fenced at its epoch, a settle still waits for a one-phase branch between its exec and its commit, and answers what the commit did", async () => {
    const node = executor();
    try {
      expect(await fenceNode(survivor.pool("shard-a"), "nfq", 1, false)).toEqual({ outcome: "fenced", killed: [] });
      const tx = "nfq.f0000000-0000-4000-8000-000000000040";
      expect(await node.exec(tx, "shard-a", [{ account: 40, delta: -9 }], true, 1, true)).toEqual({ ok: true });
      let settled: Outcome | "probe" | "unavailable" | null = null;
      const settling = settledOutcome(tx, ONE_SHARD, taken(1, false)).then(
        (o) => void (settled = o),
        (e: unknown) => void (settled = e instanceof DurableUnavailable ? "unavailable" : null),
      );
      await new Promise((r) => setTimeout(r, 300));
      // Still waiting: the branch is ACTIVE with its open-branch row.
      expect(settled).toBe(null);
      expect(await node.commit(tx, "shard-a", true)).toEqual({ ok: true });
      await settling;
      expect(settled).toEqual({ status: "committed" });
      expect(await balance(cluster, "shard-a", 40)).toBe(START - 9n);
    } finally {
      node.close();
    }
  });

  it("a fence row gone (its table made again) refuses the branch once, and is made again for the next", async () => {
    const node = executor();
    try {
      await commits(node, "nfg.f0000000-0000-4000-8000-000000000035", 35, -1, 1);
      const root = await mysql.createConnection(cluster.shard("shard-a").connectionOptions());
      try {
        await root.query("DELETE FROM node_fence WHERE node = 'nfg'");
      } finally {
        await root.end();
      }
      const second = "nfg.f0000000-0000-4000-8000-000000000036";
      expect(await node.exec(second, "shard-a", [{ account: 35, delta: -1 }], true, 1)).toEqual({ ok: false, err: "FENCED" });
      expect((await node.rollback(second, "shard-a")).ok).toBe(true);
      await commits(node, "nfg.f0000000-0000-4000-8000-000000000037", 35, -1, 1);
      expect(await balance(cluster, "shard-a", 35)).toBe(START - 2n);
    } finally {
      node.close();
    }
  });

  it("fenceNode refuses what is not a node name or an epoch, and never lowers a row", async () => {
    const pool = survivor.pool("shard-a");
    expect(await fenceNode(pool, "n'1", 2, false)).toMatchObject({ outcome: "failed" });
    expect(await fenceNode(pool, "nl", -1, false)).toMatchObject({ outcome: "failed" });
    expect(await fenceNode(pool, "nl", 5, false)).toEqual({ outcome: "fenced", killed: [] });
    // Another process (its own pool: fenceNode remembers what this one raised) writing an older epoch.
    const other = executor();
    try {
      expect(await fenceNode(other.pool("shard-a"), "nl", 3, false)).toEqual({ outcome: "fenced", killed: [] });
    } finally {
      other.close();
    }
    const r = await pool.run<Array<{ epoch: unknown }>>("SELECT epoch FROM node_fence WHERE node = 'nl'");
    expect(r.ok && String(r.value[0]?.epoch)).toBe("5");
  });
});
