/**
 * An in-memory world for the deterministic tests of commit timestamps and
 * snapshot reads (no MariaDB, no etcd): two shards with one account each, a
 * history per shard stamped as runtime/timestamps.ts stamps it, a txlog, and
 * the snapshot SQL's arithmetic (runtime/snapshot.ts snapshotStatements).
 * The speculative path's local transactions: an apply moves the balance at
 * once with an unstamped row; a release stamps the row.
 */
import type { LogRecord, ShardId, TxId } from "../../spec/kernel/effects.ts";
import type { SnapshotQuery } from "../../runtime/snapshot.ts";
import type { Adapters } from "../../runtime/interpreter.ts";
import { systemClock } from "../../runtime/adapters/ports.ts";

interface Row {
  readonly tx: TxId;
  readonly account: number;
  readonly delta: bigint;
  commit_ts: bigint | null;
}

/** Two shards, one account each with 1000 cents seeded; balances move at commit, as the XA branch's do. */
export class World {
  readonly balance = new Map<ShardId, bigint>([
    ["a", 1000n],
    ["b", 1000n],
  ]);
  readonly rows = new Map<ShardId, Row[]>([
    ["a", []],
    ["b", []],
  ]);
  readonly records = new Map<string, LogRecord>();
  readonly branches = new Map<string, bigint>();

  /** The branch's statement: its delta waits in the prepared branch until commit. */
  exec(tx: TxId, shard: ShardId, delta: bigint): void {
    this.branches.set(`${tx}|${shard}`, delta);
  }

  /** A speculative apply: the balance moves now, its history row waits for the release's stamp. */
  apply(tx: TxId, shard: ShardId, delta: bigint): void {
    this.balance.set(shard, this.balance.get(shard)! + delta);
    this.rows.get(shard)!.push({ tx, account: 1, delta, commit_ts: null });
  }

  adapters(): Adapters {
    const w = this;
    const unused = () => Promise.reject(new Error("not used here"));
    return {
      clock: systemClock,
      xa: {
        shards: ["a", "b"],
        exec: unused,
        prepare: unused,
        rollback: unused,
        recover: unused,
        kill: unused,
        connectionOf: () => null,
        commit: async (tx: TxId, shard: ShardId) => {
          const d = w.branches.get(`${tx}|${shard}`);
          if (d === undefined) return { ok: false, err: "NOTA" } as const;
          w.branches.delete(`${tx}|${shard}`);
          w.balance.set(shard, w.balance.get(shard)! + d);
          w.rows.get(shard)!.push({ tx, account: 1, delta: d, commit_ts: null });
          return { ok: true } as const;
        },
      } as unknown as Adapters["xa"],
      local: {
        shards: ["a", "b"],
        release: async (tx: TxId, shard: ShardId, commitTs?: bigint) => {
          let applied = false;
          for (const r of w.rows.get(shard)!) if (r.tx === tx && r.commit_ts === null && commitTs !== undefined) (r.commit_ts = commitTs), (applied = true);
          return { ok: true, applied } as const;
        },
      } as unknown as Adapters["local"],
      log: {
        put: async (key: string, value: LogRecord) => {
          w.records.set(key, value);
          return { ok: true, version: 1 } as const;
        },
        list: async (prefix: string) => ({ ok: true, entries: [...w.records].filter(([k]) => k.startsWith(prefix)).map(([key, value]) => ({ key, value, version: 1 })) }) as const,
        delete: async (key: string) => {
          w.records.delete(key);
          return { ok: true } as const;
        },
      },
    };
  }

  /** history.commit_ts stamped where NULL (XaMysql.stampHistory). */
  stamp = async (tx: TxId, shard: ShardId, ts: bigint): Promise<boolean> => {
    for (const r of this.rows.get(shard)!) if (r.tx === tx && r.commit_ts === null) r.commit_ts = ts;
    return true;
  };

  /** What the snapshot SQL computes: balance - sum(delta where commit_ts IS NULL or commit_ts > at). */
  query: SnapshotQuery = async (shard, statements) => {
    const at = BigInt(/commit_ts > (\d+)/.exec(statements[0]!)![1]!);
    let later = 0n;
    for (const r of this.rows.get(shard)!) if (r.commit_ts === null || r.commit_ts > at) later += r.delta;
    // A total (runtime/snapshot.ts totalStatements) is one row with the account count; a read of named accounts, one row per account (here: account 1).
    const cents = String(this.balance.get(shard)! - later);
    return { ok: true, value: [statements[0]!.includes(" AS n") ? { cents, n: "1" } : { id: "1", cents }] };
  };
}

/** Account 1 of shards a and b: the one account per shard this world keeps (a read naming it gets per-account rows). */
export const ACCOUNT_1 = [
  { shard: "a", id: 1 },
  { shard: "b", id: 1 },
] as const;

export const total = (r: { balances: ReadonlyMap<ShardId, ReadonlyMap<number, bigint>>; totals?: ReadonlyMap<ShardId, { cents: bigint }> }) =>
  r.totals !== undefined
    ? [...r.totals.values()].reduce((s, t) => s + t.cents, 0n)
    : [...r.balances.values()].reduce((s, m) => s + [...m.values()].reduce((a, b) => a + b, 0n), 0n);

