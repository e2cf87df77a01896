import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import { startEphemeralCluster } from "./runtime/cluster/cluster.ts";
function cpu(pid: number) { const s = readFileSync(`/proc/${pid}/stat`, "utf8"); const f = s.slice(s.lastIndexOf(")") + 2).split(" "); return (Number(f[11]) + Number(f[12])) * 10; }
const cl = await startEphemeralCluster({ shards: 1, accountsPerShard: 1000, balanceCents: 1_000_000_000 });
const pid = cl.shards[0]!.db.pid;
const pool = mysql.createPool({ ...cl.shards[0]!.db.connectionOptions({ database: "speccommit" }), connectionLimit: 10, multipleStatements: true });
await pool.query("CREATE TABLE IF NOT EXISTS fence_x (node VARCHAR(64) PRIMARY KEY, epoch BIGINT NOT NULL)"); await pool.query("INSERT IGNORE INTO fence_x VALUES ('n', 0)");
let n = 0;
const open = (t: string) => `(status = 'open' OR (status = 'opening' AND opening_tx = '${t}'))`;
type F = (a: number) => string[];
const forms: Record<string, F> = {
  "floor": (a) => { const t = `f${++n}`; const id = `'${t}','s'`; return [`XA START ${id};UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${t}',${a},-1,1),('${t}',${a + 1},1,1);XA END ${id}`, `XA COMMIT ${id} ONE PHASE`]; },
  "+fence read": (a) => { const t = `g${++n}`; const id = `'${t}','s'`; return [`XA START ${id};SELECT epoch FROM fence_x WHERE node = 'n' LOCK IN SHARE MODE;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${t}',${a},-1,1),('${t}',${a + 1},1,1);XA END ${id}`, `XA COMMIT ${id} ONE PHASE`]; },
  "+status check": (a) => { const t = `h${++n}`; const id = `'${t}','s'`; return [`XA START ${id};UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND ${open(t)} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND ${open(t)} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${t}',${a},-1,1),('${t}',${a + 1},1,1);XA END ${id}`, `XA COMMIT ${id} ONE PHASE`]; },
  "+stamp inside": (a) => { const t = `i${++n}`; const id = `'${t}','s'`; return [`XA START ${id};UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us) VALUES ('${t}',${a},-1,1),('${t}',${a + 1},1,1)`, `UPDATE history SET commit_ts = 12345 WHERE xid = '${t}' AND account_id IN (${a},${a + 1}) AND commit_ts IS NULL;XA END ${id};XA COMMIT ${id} ONE PHASE`]; },
  "ts in insert": (a) => { const t = `j${++n}`; const id = `'${t}','s'`; return [`XA START ${id};UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us, commit_ts) VALUES ('${t}',${a},-1,1,12345),('${t}',${a + 1},1,1,12345)`, `XA END ${id};XA COMMIT ${id} ONE PHASE`]; },
  "all (server)": (a) => { const t = `k${++n}`; const id = `'${t}','s'`; return [`XA START ${id};SELECT epoch FROM fence_x WHERE node = 'n' LOCK IN SHARE MODE;UPDATE accounts SET balance = balance - 1 WHERE id = ${a} AND ${open(t)} AND balance - 1 >= 0;UPDATE accounts SET balance = balance + 1 WHERE id = ${a + 1} AND ${open(t)} AND balance + 1 >= 0;INSERT INTO history (xid, account_id, delta, at_us, credential) VALUES ('${t}',${a},-1,1,NULL),('${t}',${a + 1},1,1,NULL)`, `UPDATE history SET commit_ts = 12345 WHERE xid = '${t}' AND account_id IN (${a},${a + 1}) AND commit_ts IS NULL;XA END ${id};XA COMMIT ${id} ONE PHASE`]; },
};
for (let round = 0; round < 3; round++) for (const [name, f] of Object.entries(forms)) {
  const N = 3000, C = 8; const s0 = cpu(pid); const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, async (_, w) => { const c = await pool.getConnection(); try { for (let i = 0; i < N / C; i++) for (const q of f(1 + 2 * w)) await c.query(q); } finally { c.release(); } }));
  console.log(`${round} ${name.padEnd(16)} shard ${((cpu(pid) - s0) * 1000 / N).toFixed(0)} us/op, ${(N * 1000 / (performance.now() - t0)).toFixed(0)}/s`);
}
await pool.end(); await cl.stop();
