import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import { startEphemeralCluster } from "./runtime/cluster/cluster.ts";
function cpu(pid: number) { const s = readFileSync(`/proc/${pid}/stat`, "utf8"); const f = s.slice(s.lastIndexOf(")") + 2).split(" "); return (Number(f[11]) + Number(f[12])) * 10; }
const cl = await startEphemeralCluster({ shards: 1, accountsPerShard: 1000, balanceCents: 1_000_000_000 });
const pid = cl.shards[0]!.db.pid; const first = cl.shards[0]!.firstAccountId;
const pool = mysql.createPool({ ...cl.shards[0]!.db.connectionOptions({ database: "speccommit" }), connectionLimit: 10, multipleStatements: true });
let n = 0;
const forms: Record<string, (a: number) => string> = {
  "plain update": (a) => `START TRANSACTION;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;COMMIT`,
  "compound update": (a) => `START TRANSACTION;BEGIN NOT ATOMIC UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0; IF ROW_COUNT() <> 1 THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 1644, MESSAGE_TEXT = 'x'; END IF; END;COMMIT`,
  "plain + history": (a) => `START TRANSACTION;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us) VALUES ('h${++n}',${a},-1,1);COMMIT`,
  "plain + undo row": (a) => `START TRANSACTION;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;INSERT INTO speculative_undo (tx, branch, state, inverse, branches, escrow) VALUES ('u${++n}','shard-a','undo','[{"account":${a},"delta":1}]','["shard-a","shard-b"]',1);COMMIT`,
  "plain + set var": (a) => `START TRANSACTION;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;COMMIT;SET @x = 1`,
  "empty txn": () => `START TRANSACTION;COMMIT`,
  "select 1": () => `SELECT 1`,
};
for (let round = 0; round < 2; round++) for (const [name, f] of Object.entries(forms)) {
  const N = 2000, C = 8; const s0 = cpu(pid); const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async (_, w) => { const c = await pool.getConnection(); try { for (let i = 0; i < N / C; i++) await c.query(f(first + w)); } finally { c.release(); } }));
  console.log(`${name.padEnd(18)} shard ${((cpu(pid) - s0) * 1000 / N).toFixed(0)} us/op, ${(N * 1000 / (performance.now() - t0)).toFixed(0)}/s`);
}
await pool.end(); await cl.stop();
