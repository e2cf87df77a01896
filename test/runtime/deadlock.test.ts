// The cross-shard deadlock detector (runtime/deadlock.ts, spec/deadlock/victims.ts) on real MariaDB shards and etcd,
// through the server's HTTP API.
//
// A k-way cycle over k shards is built deterministically: on shard i transaction T_i holds row R_i, and T_{i-1}
// wants R_i behind a gate row G_i that a root session holds. Once every T_i holds its R_i, the gates are released
// together: T_{i-1} then waits for T_i on shard i, for every i, a cycle none of the shards sees. The detector must
// choose one victim (answered aborted / deadlock), the others commit, money is conserved, and the time from the
// release to the victim's answer is printed (goal under 200 ms; without the detector innodb_lock_wait_timeout, 3 s here,
// ends it, and every transaction of the cycle aborts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn, type HttpAnswer } from "./support.ts";
import { buildCycle, sleep, until, updating, type CycleResult } from "./deadlock-cycle.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { replayTrace } from "../../conformance/replay.ts";
import { validateEnvironment } from "../../conformance/validate.ts";

const LOCK_WAIT_TIMEOUT_S = 10;
const SERVER_FLAGS = ["--deadlock-interval-ms", "120", "--vote-timeout-ms", "60000", "--statement-timeout-ms", "60000"];
let cluster: TestCluster;
let server: RunningServer;

beforeAll(async () => {
  // Building a cycle holds transactions at gates first, which counts against the lock wait timeout and the
  // coordinator's vote timeout: both are set well above it, so that only the detector (or, without it, the
  // lock wait timeout) ends a cycle, however loaded the machine.
  cluster = await startTestCluster({ shards: 4, accountsPerShard: 400, lockWaitTimeoutS: LOCK_WAIT_TIMEOUT_S });
  server = await serverOn(cluster, SERVER_FLAGS);
}, 120_000);

afterAll(async () => {
  await server?.close(1_000);
  closeAgents();
  await cluster?.stop();
}, 60_000);

const cycle = (k: number, base: number): Promise<CycleResult> => buildCycle(cluster, () => server.url, k, base);

async function settled(): Promise<void> {
  await until("every coordinator to finish", () => server.engine.inFlight === 0);
}

describe("cross-shard deadlock detector", () => {
  for (const k of [2, 3, 4]) {
    it(`breaks a ${k}-way cycle across ${k} shards: one victim answered aborted / deadlock, the others commit, money conserved`, async () => {
      const before = server.deadlocks!.stats.victims;
      const cycles: number[] = [];
      server.deadlocks!.onVictim = (v) => cycles.push(v.cycle.length);
      const r = await cycle(k, 10 * k);
      server.deadlocks!.onVictim = null;
      const statuses = r.answers.map((a) => `${a.status} ${a.body?.status}${a.body?.reason !== undefined ? `/${a.body.reason}` : ""}`);
      console.log(`${k}-way answers: ${statuses.join(", ")}`);
      expect(statuses.filter((s) => s === "409 aborted/deadlock")).toHaveLength(1);
      expect(statuses.filter((s) => s === "200 committed")).toHaveLength(k - 1);
      expect(server.deadlocks!.stats.victims - before).toBe(1);
      expect(cycles).toEqual([k]);
      await settled();
      expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
      // Every transaction of the cycle, the victim included, replays against the role and answers as the environment models allow.
      for (const a of r.answers) {
        const view = server.engine.transaction(a.body.tx)!;
        const trace = { header: view.trace!.header, steps: [...view.trace!.steps] };
        expect(replayTrace(trace), a.body.tx).toMatchObject({ ok: true });
        expect(validateEnvironment(trace), a.body.tx).toMatchObject({ ok: true });
      }
      console.log(`deadlock ${k}-way over ${k} shards: cycle to victim's answer ${r.resolution_ms!.toFixed(1)} ms, to the last answer ${r.all_ms.toFixed(1)} ms (goal < 200 ms; innodb_lock_wait_timeout ${LOCK_WAIT_TIMEOUT_S} s here, 3 s by default)`);
    }, 30_000);
  }

  it("chooses no victim under a hot-account load where no cycle can form (false positives: 0)", async () => {
    const a = cluster.shards[0]!;
    const b = cluster.shards[1]!;
    const hot = a.firstAccountId + 200;
    const before = server.deadlocks!.stats.victims;
    const ticksBefore = server.deadlocks!.stats.ticks;
    // Every transfer debits the same account on shard a and credits its own account on shard b: waits on shard a only (a chain), never a cycle.
    const clients = 32;
    const perClient = 8;
    let waitsSeen = 0;
    const watcher = await a.connect();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        waitsSeen = Math.max(waitsSeen, (await updating(watcher, hot)) - 1);
        await sleep(10);
      }
    })();
    const answers = await Promise.all(
      Array.from({ length: clients }, async (_x, c) => {
        const out: HttpAnswer[] = [];
        for (let i = 0; i < perClient; i++) {
          const json = { ops: [{ shard_id: a.name, account_id: hot, delta: -1 }, { shard_id: b.name, account_id: b.firstAccountId + 100 + c * perClient + i, delta: 1 }] };
          out.push(await request(server.url, "POST", "/transfer", { json }));
        }
        return out;
      }),
    );
    watching = false;
    await watch;
    await watcher.end();
    await settled();
    const all = answers.flat();
    const deadlockAborts = all.filter((x) => x.body?.reason === "deadlock").length;
    const committed = all.filter((x) => x.body?.status === "committed").length;
    console.log(
      `hot account: ${all.length} transfers, ${committed} committed, up to ${waitsSeen} sessions seen waiting at once for the hot account on ${a.name}, ` +
        `${server.deadlocks!.stats.ticks - ticksBefore} detector ticks, false positives ${server.deadlocks!.stats.victims - before}`,
    );
    // The load did make transactions wait (else it would prove nothing), and no one was chosen.
    expect(waitsSeen).toBeGreaterThan(0);
    expect(server.deadlocks!.stats.victims - before).toBe(0);
    expect(deadlockAborts).toBe(0);
    expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
  }, 60_000);

  it("counts the victims in /metrics: speccommit_deadlocks_total and the cycle-length histogram", async () => {
    const m = await request(server.url, "GET", "/metrics");
    const text = String(m.body);
    expect(text).toMatch(/^speccommit_deadlocks_total 3$/m);
    expect(text).toMatch(/^speccommit_deadlock_cycle_length_count 3$/m);
    expect(text).toMatch(/^speccommit_deadlock_cycle_length_sum 9$/m);
    expect(text).toMatch(/^speccommit_aborts_total\{protocol="2pc",reason="deadlock"\} 3$/m);
  });
});

describe("without the detector (deadlock_interval_ms 0)", () => {
  it("the same 2-way cycle lasts until innodb_lock_wait_timeout, which aborts a transaction of it (conflict)", async () => {
    const off = await serverOn(cluster, [...SERVER_FLAGS, "--deadlock-interval-ms", "0"]);
    const saved = server;
    try {
      expect(off.deadlocks).toBeNull();
      server = off;
      const r = await cycle(2, 60);
      const statuses = r.answers.map((a) => `${a.body?.status}/${a.body?.reason}`);
      // The first to time out aborts, and its rollback lets the other go on (or time out too).
      expect(statuses).toContain("aborted/conflict");
      expect(statuses.every((s) => s === "aborted/conflict" || s === "committed/undefined")).toBe(true);
      // Nothing ended the cycle before the lock wait timeout did.
      expect(r.first_ms).toBeGreaterThanOrEqual(LOCK_WAIT_TIMEOUT_S * 1000 * 0.9);
      await settled();
      expect(await totalBalance(cluster)).toBe(cluster.seededTotalCents);
      console.log(`no detector, 2-way over 2 shards: cycle to first answer ${r.first_ms.toFixed(1)} ms, to the last ${r.all_ms.toFixed(1)} ms (innodb_lock_wait_timeout ${LOCK_WAIT_TIMEOUT_S} s here)`);
    } finally {
      server = saved;
      await off.close(1_000);
    }
  }, 60_000);
});
