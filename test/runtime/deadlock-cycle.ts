// The deterministic k-way cross-shard cycle of test/runtime/deadlock.test.ts and deadlock-nodes.test.ts (see the
// header of deadlock.test.ts): on shard i transaction T_i holds row R_i, and T_{i-1} wants R_i behind a gate row G_i
// that a root session holds; once every T_i holds its R_i, the gates are released together.
import type { Connection } from "mysql2/promise";
import type { TestCluster } from "../support/cluster.ts";
import { request, type HttpAnswer, type TransferOp } from "./support.ts";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, cond: () => Promise<boolean> | boolean, timeout_ms = 10_000): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// The test never reads INNODB_TRX or INNODB_LOCK_WAITS while the detector runs: InnoDB refreshes them only when
// unread for 100 ms, so a second reader would freeze what the detector sees (runtime/deadlock.ts). It watches the
// process list and, in READ UNCOMMITTED, the history rows the branches have written but not committed.

/** Sessions of the server running an UPDATE of account `id` right now (blocked at a gate, or updating the hot account). */
export async function updating(conn: Connection, id: number): Promise<number> {
  const [rows] = await conn.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER <> 'root' AND INFO LIKE ?", [`UPDATE accounts % WHERE id = ${id} AND %`]);
  return Number((rows as Array<{ n: unknown }>)[0]!.n);
}

/** History rows of account `id`, committed or not (the branch that wrote them holds the account's row lock until it ends). */
async function uncommittedHistory(conn: Connection, id: number): Promise<number> {
  const [rows] = await conn.query("SELECT COUNT(*) AS n FROM history WHERE account_id = ?", [id]);
  return Number((rows as Array<{ n: unknown }>)[0]!.n);
}

export interface CycleResult {
  answers: HttpAnswer[];
  /** From the gates' release to the victim's answer, ms (null: no victim answered). */
  resolution_ms: number | null;
  /** From the gates' release to the last answer, ms. */
  all_ms: number;
  /** From the gates' release to the first answer, ms. */
  first_ms: number;
}

/**
 * Builds a k-way cycle over the first k shards (see the header) and waits for every answer; T_i is sent to the
 * server at `urlOf(i)`.
 */
export async function buildCycle(cluster: TestCluster, urlOf: (i: number) => string, k: number, base: number): Promise<CycleResult> {
  const shards = cluster.shards.slice(0, k);
  // A branch updates its accounts by id (runtime/transfer.ts groupBranches): the gate's id is below the row's.
  const gate = (i: number) => shards[i % k]!.firstAccountId + base; // G_i
  const row = (i: number) => shards[i % k]!.firstAccountId + base + 1; // R_i
  const roots = await Promise.all(shards.map((s) => s.connect()));
  const watchers = await Promise.all(shards.map((s) => s.connect()));
  for (const w of watchers) await w.query("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED");
  for (const [i, c] of roots.entries()) {
    await c.query("BEGIN");
    await c.query("SELECT balance FROM accounts WHERE id = ? FOR UPDATE", [gate(i)]);
  }
  const t0 = performance.now();
  let released = 0;
  const answered: number[] = [];
  // T_i: takes R_i on shard i, then (behind the gate) R_{i+1} on shard i+1, and pays both into the gate's row.
  const bodies = shards.map((_s, i) => {
    const next = (i + 1) % k;
    const ops: TransferOp[] = [
      { shard_id: shards[i]!.name, account_id: row(i), delta: -100 },
      { shard_id: shards[next]!.name, account_id: gate(next), delta: 60 },
      { shard_id: shards[next]!.name, account_id: row(next), delta: 40 },
    ];
    return { ops };
  });
  const pending = bodies.map((json, i) =>
    request(urlOf(i), "POST", "/transfer", { json }).then((a) => {
      answered[i] = performance.now() - t0;
      return a;
    }),
  );
  // Every T_i holds R_i (k holders, besides the root sessions' gates) and waits at a gate: then release the gates at once.
  let seen = "";
  await until(
    "each transaction to hold its row and wait at the next gate",
    async () => {
      // On shard i: T_i wrote (so locks) R_i's history row; T_{i-1} runs its UPDATE of the gate G_i (blocked by the root).
      const counts = await Promise.all(watchers.map(async (c, i) => [await uncommittedHistory(c, row(i)), await updating(c, gate(i))]));
      seen = JSON.stringify(counts);
      return counts.every(([h, w]) => h === 1 && w === 1);
    },
    8_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: (R_i history rows, sessions at G_i) per shard ${seen}`);
  });
  released = performance.now() - t0;
  await Promise.all(roots.map((c) => c.query("ROLLBACK")));
  const answers = await Promise.all(pending);
  await Promise.all([...roots, ...watchers].map((c) => c.end()));
  const victim = answers.findIndex((a) => a.body?.status === "aborted");
  return { answers, resolution_ms: victim < 0 ? null : answered[victim]! - released, all_ms: Math.max(...answered) - released, first_ms: Math.min(...answered) - released };
}

