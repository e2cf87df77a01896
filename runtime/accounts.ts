/**
 * Which accounts exist, per shard, learned once at boot so that a transfer
 * naming a missing account is refused with a 422 instead of costing a round
 * of XA statements. Accounts are created by seeding (runtime/cluster), never
 * through the API, so the set does not change while the server runs; an
 * account added by hand is known after a restart.
 *
 * A shard whose ids are one dense range is kept as that range; otherwise the
 * ids themselves are kept, up to IDS_MAX per shard.
 */
import type { ShardId } from "../spec/effects.ts";
import type { ShardPool } from "./adapters/mysql-pool.ts";
import type { AccountCatalog } from "./transfer.ts";

const IDS_MAX = 2_000_000;

type Known = { kind: "range"; first: number; last: number } | { kind: "set"; ids: Set<number> };

export class Accounts implements AccountCatalog {
  private constructor(
    readonly shards: readonly ShardId[],
    private readonly known: ReadonlyMap<ShardId, Known>,
  ) {}

  hasAccount(shard: ShardId, account: number): boolean {
    const k = this.known.get(shard);
    if (k === undefined) return false;
    return k.kind === "range" ? account >= k.first && account <= k.last : k.ids.has(account);
  }

  describe(shard: ShardId): { first: number; last: number; count: number } | null {
    const k = this.known.get(shard);
    if (k === undefined) return null;
    if (k.kind === "range") return { first: k.first, last: k.last, count: k.last - k.first + 1 };
    const ids = [...k.ids];
    return ids.length === 0 ? { first: 0, last: -1, count: 0 } : { first: Math.min(...ids), last: Math.max(...ids), count: ids.length };
  }

  static async load(pools: ReadonlyMap<ShardId, ShardPool>): Promise<Accounts> {
    const known = new Map<ShardId, Known>();
    for (const [shard, pool] of pools) {
      const r = await pool.run<Array<{ lo: string | null; hi: string | null; n: string }>>("SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM accounts");
      if (!r.ok) throw new Error(`${shard}: cannot read the accounts table (${r.error.message}); is the shard up and its schema created?`);
      const row = r.value[0]!;
      const n = Number(row.n);
      if (n === 0) {
        known.set(shard, { kind: "set", ids: new Set() });
        continue;
      }
      const lo = Number(row.lo);
      const hi = Number(row.hi);
      if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) throw new Error(`${shard}: account ids beyond ${Number.MAX_SAFE_INTEGER} are not supported`);
      if (hi - lo + 1 === n) {
        known.set(shard, { kind: "range", first: lo, last: hi });
        continue;
      }
      if (n > IDS_MAX) throw new Error(`${shard}: ${n} accounts with gaps in their ids; at most ${IDS_MAX} are supported`);
      const ids = await pool.run<Array<{ id: string }>>("SELECT id FROM accounts");
      if (!ids.ok) throw new Error(`${shard}: cannot read account ids (${ids.error.message})`);
      known.set(shard, { kind: "set", ids: new Set(ids.value.map((x) => Number(x.id))) });
    }
    return new Accounts([...pools.keys()], known);
  }
}
