/**
 * `npx tsx runtime/bench/shard-cost.ts [--branches N] [--clients C] [--rounds R] [--json FILE]`:
 * what one branch costs a shard, statement form by statement form. One
 * MariaDB (started here, as the bench's), C connections at once, N branches
 * per kind and round, kinds interleaved round by round; for each kind the
 * mariadbd process's CPU (/proc/PID/stat, user + system) and this process's
 * (the client: mysql2 and the adapter) per branch, and the branches per
 * second. The kinds are the statements each side sends for a branch:
 *
 *   floor 1-branch      the bench's floor (runtime/bench/floor.ts): XA START,
 *                       two guarded UPDATEs, the history INSERT, XA END; then
 *                       XA COMMIT ... ONE PHASE
 *   server 1-branch     runtime/adapters/xa-mysql.ts as the server runs a
 *                       one-branch transfer: exec with the node-fence read
 *                       and the open-branch row, the branch left ACTIVE,
 *                       then commitStamped (history rows written stamped,
 *                       open-branch row deleted, XA END, XA COMMIT ONE PHASE)
 *   floor 2pc branch    one branch of a cross-shard transfer: XA START,
 *                       UPDATE, INSERT, XA END; XA PREPARE; XA COMMIT
 *   server 2pc branch   XaMysql exec, prepare, commitStamped as the server
 *                       runs it: XA COMMIT, then the stamp of its history
 *                       rows in its shard's next batch (one UPDATE, one
 *                       transaction for the branches of every client)
 *   server 2pc, stamp alone
 *                       the same with stamp batching off (batch_max 1): the
 *                       stamp in the XA COMMIT's round trip, a transaction
 *                       of its own per branch
 *   spec debit branch   runtime/adapters/local-mysql.ts: apply of a debit,
 *                       then its release
 *   spec credit branch  apply of a credit (pending), then its release
 *
 * Each branch uses accounts of its own client, so nothing waits for a lock.
 * The machine is shared: compare kinds within one run (the ratios), not
 * across runs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg, cpus } from "node:os";
import mysql from "mysql2/promise";
import { startEphemeralCluster } from "../cluster/cluster.ts";
import { addressesOfCluster } from "../main.ts";
import { XaMysql } from "../adapters/xa-mysql.ts";
import { MysqlLocal } from "../adapters/local-mysql.ts";
import type { ShardAddress } from "../adapters/mysql-pool.ts";
import { runScript, UsageError, writableFileProblem } from "./cli.ts";

export interface ShardCostOptions {
  branches: number;
  clients: number;
  rounds: number;
  json?: string;
}

export const USAGE = `usage: npx tsx runtime/bench/shard-cost.ts [--branches N] [--clients C] [--rounds R] [--json FILE]
  --branches N   branches per kind and round (default 2000, 100..1000000)
  --clients C    connections at once (default 8, 1..64)
  --rounds R     interleaved rounds (default 2, 1..20)
  --json FILE    also write the figures as JSON`;

export function parseShardCostArgs(argv: readonly string[]): ShardCostOptions {
  const o: ShardCostOptions = { branches: 2000, clients: 8, rounds: 2 };
  const int = (flag: string, v: string | undefined, min: number, max: number): number => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${flag}: ${JSON.stringify(v ?? "")} is not allowed; expected an integer from ${min} to ${max}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--branches") o.branches = int(a, argv[++i], 100, 1_000_000);
    else if (a === "--clients") o.clients = int(a, argv[++i], 1, 64);
    else if (a === "--rounds") o.rounds = int(a, argv[++i], 1, 20);
    else if (a === "--json") {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`--json needs a file`);
      const problem = writableFileProblem(v);
      if (problem !== null) throw new UsageError(`--json ${v}: ${problem}`);
      o.json = v;
    } else throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
  }
  return o;
}

export const KINDS = ["floor 1-branch", "server 1-branch", "floor 2pc branch", "server 2pc branch", "server 2pc, stamp alone", "spec debit branch", "spec credit branch"] as const;
export type Kind = (typeof KINDS)[number];

/** The process's user + system CPU in ms, from /proc (clock ticks). */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command's closing parenthesis.
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

export interface Figures {
  kind: Kind;
  branches: number;
  shard_cpu_us: number;
  client_cpu_us: number;
  per_s: number;
}

export interface ShardCost {
  /** Every kind's figures, round by round. */
  rounds: Figures[];
  /** Per kind, the medians over the rounds. */
  medians: Array<{ kind: Kind; shard_cpu_us: number; client_cpu_us: number; per_s: number }>;
}

/** Starts one MariaDB, measures every kind in interleaved rounds (each branch's answers checked: a failure throws), stops it. */
export async function measureShardCost(o: ShardCostOptions, progress: (line: string) => void = () => {}): Promise<ShardCost> {
  const accountsPerShard = Math.max(1_000, 2 * o.clients + 2);
  const closers: Array<() => unknown> = [];
  const cluster = await startEphemeralCluster({ shards: 1, accountsPerShard, balanceCents: 1_000_000_000 });
  try {
    const address: ShardAddress = addressesOfCluster(cluster.describe()).shards[0]!;
    const shard = address.name;
    const pid = cluster.shards[0]!.db.pid;
    const limits = { connections_max: o.clients + 2, waiters_max: 4 * o.clients, acquire_timeout_ms: 5_000, connect_timeout_ms: 5_000, statement_timeout_ms: 10_000 };
    const xa = new XaMysql({ shards: [address], limits });
    const xaAlone = new XaMysql({ shards: [address], limits, stampBatching: { batch_max: 1, batch_wait_ms: 0 } });
    const local = new MysqlLocal({ shards: [address], limits, pools: new Map([[shard, xa.pool(shard)]]) });
    const pool = mysql.createPool({ ...cluster.shards[0]!.db.connectionOptions({ database: "speccommit" }), connectionLimit: o.clients + 2, multipleStatements: true });
    closers.push(() => pool.end(), () => local.close(), () => xa.close(), () => xaAlone.close());
    const first = cluster.shards[0]!.firstAccountId;
    let seq = 0;
    const ts = () => BigInt(Date.now()) << 16n;

    /** One branch of `kind` by client `w`: accounts first + 2w and first + 2w + 1. */
    const branch = async (kind: Kind, w: number): Promise<void> => {
      const a = first + 2 * w;
      const b = a + 1;
      const tx = `sc${++seq}`;
      const fail = (what: string, r: unknown) => {
        throw new Error(`${kind} ${tx}: ${what} answered ${JSON.stringify(r)}`);
      };
      switch (kind) {
        case "floor 1-branch":
        case "floor 2pc branch": {
          const id = `'${tx}','${shard}'`;
          const c = await pool.getConnection();
          try {
            const ops = kind === "floor 1-branch" ? [[a, -1], [b, 1]] : [[a, -1]];
            const updates = ops.map(([acc, d]) => `UPDATE accounts SET balance = balance + ${d} WHERE id = ${acc} AND balance + ${d} >= 0`);
            const history = `INSERT INTO history (xid, account_id, delta, at_us) VALUES ${ops.map(([acc, d]) => `('${tx}',${acc},${d},${Date.now() * 1000})`).join(",")}`;
            await c.query([`XA START ${id}`, ...updates, history, `XA END ${id}`].join(";"));
            if (kind === "floor 1-branch") await c.query(`XA COMMIT ${id} ONE PHASE`);
            else {
              await c.query(`XA PREPARE ${id}`);
              await c.query(`XA COMMIT ${id}`);
            }
          } finally {
            c.release();
          }
          return;
        }
        case "server 1-branch": {
          const e = await xa.exec(tx, shard, [{ account: a, delta: -1 }, { account: b, delta: 1 }], true, 0, true);
          if (!e.ok) fail("exec", e);
          const c = await xa.commitStamped(tx, shard, true, ts());
          if (!c.r.ok || !c.stamped) fail("commit", c);
          return;
        }
        case "server 2pc branch":
        case "server 2pc, stamp alone": {
          const x = kind === "server 2pc branch" ? xa : xaAlone;
          const e = await x.exec(tx, shard, [{ account: a, delta: -1 }], true);
          if (!e.ok) fail("exec", e);
          const p = await x.prepare(tx, shard);
          if (!p.ok) fail("prepare", p);
          const c = await x.commitStamped(tx, shard, false, ts());
          if (!c.r.ok || !c.stamped) fail("commit", c);
          return;
        }
        case "spec debit branch":
        case "spec credit branch": {
          const op = kind === "spec debit branch" ? { account: a, delta: -1 } : { account: b, delta: 1 };
          const r = await local.apply(tx, shard, [op], [shard, "shard-z"]);
          if (!r.ok) fail("apply", r);
          const rel = await local.release(tx, shard, ts());
          if (!rel.ok || !rel.applied) fail("release", rel);
          return;
        }
      }
    };

    const measure = async (kind: Kind): Promise<Figures> => {
      const per = Math.ceil(o.branches / o.clients);
      const s0 = procCpuMs(pid);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: o.clients }, async (_, w) => {
          for (let i = 0; i < per; i++) await branch(kind, w);
        }),
      );
      const wall = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const n = per * o.clients;
      return { kind, branches: n, shard_cpu_us: ((procCpuMs(pid) - s0) * 1000) / n, client_cpu_us: (c.user + c.system) / n, per_s: (n * 1000) / wall };
    };

    // A warm-up of every kind (buffer pool, connections, statement caches), not counted.
    for (const k of KINDS) {
      for (let i = 0; i < 50; i++) await branch(k, 0);
    }
    const all: Figures[] = [];
    for (let r = 1; r <= o.rounds; r++) {
      for (const k of KINDS) {
        const f = await measure(k);
        all.push(f);
        progress(`[round ${r}/${o.rounds}] ${k.padEnd(23)} shard ${f.shard_cpu_us.toFixed(0).padStart(4)} us  client ${f.client_cpu_us.toFixed(0).padStart(4)} us  ${f.per_s.toFixed(0)} branches/s`);
      }
    }
    const median = (xs: number[]) => {
      const s = [...xs].sort((x, y) => x - y);
      return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const rows = KINDS.map((k) => {
      const fs = all.filter((f) => f.kind === k);
      return { kind: k, shard_cpu_us: median(fs.map((f) => f.shard_cpu_us)), client_cpu_us: median(fs.map((f) => f.client_cpu_us)), per_s: median(fs.map((f) => f.per_s)) };
    });
    return { rounds: all, medians: rows };
  } finally {
    for (const close of closers) await close();
    await cluster.stop();
  }
}

async function main(argv: string[]): Promise<void> {
  const o = parseShardCostArgs(argv);
  const load0 = loadavg();
  console.log(`shard-cost: ${o.branches} branches per kind and round, ${o.clients} connections, ${o.rounds} rounds; starting one MariaDB...`);
  const { rounds: all, medians: rows } = await measureShardCost(o, (line) => console.log(line));
  const load1 = loadavg();
  console.log(`\nmedians of ${o.rounds} round(s); mariadbd CPU resolution 10 ms over ${o.branches} branches (${(10_000 / o.branches).toFixed(1)} us per branch); ${cpus().length} cpus, load average ${load0.map((x) => x.toFixed(2)).join(" ")} at start, ${load1.map((x) => x.toFixed(2)).join(" ")} at end`);
  console.log("| kind | shard CPU us per branch | vs floor | client CPU us per branch | branches/s |");
  console.log("|---|---:|---:|---:|---:|");
  const floorOf = (k: string) => rows.find((r) => r.kind === (k.includes("1-branch") ? "floor 1-branch" : "floor 2pc branch"))!.shard_cpu_us;
  for (const r of rows) {
    console.log(`| ${r.kind} | ${r.shard_cpu_us.toFixed(0)} | ${(r.shard_cpu_us / floorOf(r.kind)).toFixed(2)}x | ${r.client_cpu_us.toFixed(0)} | ${r.per_s.toFixed(0)} |`);
  }
  console.log("(vs floor: against the floor's 1-branch form for the 1-branch kinds, its 2pc branch for the others)");
  if (o.json !== undefined) writeFileSync(o.json, JSON.stringify({ options: o, load_start: load0, load_end: load1, rounds: all, medians: rows }, null, 2));
}

if (import.meta.url === `file://${process.argv[1]}`) await runScript("shard-cost", USAGE, main);
