/**
 * Which accounts exist, per shard, learned once at boot so that a transfer
 * naming a missing account is refused with a 422 instead of costing a round
 * of XA statements. Accounts are created by seeding (runtime/cluster) and by
 * POST /accounts (runtime/banking.ts), which tells this catalog (`added`,
 * `setState`); an account added by hand is known after a restart.
 *
 * An account that is not 'open' (opening, closed, failed: runtime/banking.ts)
 * is refused by transfers with a 409 (`refusal`).
 *
 * A shard whose ids are one dense range is kept as that range; otherwise the
 * ids themselves are kept, up to IDS_MAX per shard.
 */
import type { ShardId } from "../spec/kernel/effects.ts";
import type { ShardPool } from "./adapters/mysql-pool.ts";
import type { AccountCatalog } from "./transfer.ts";

const IDS_MAX = 2_000_000;

type Known = { kind: "range"; first: number; last: number } | { kind: "set"; ids: Set<number> };

/** How often a shard that did not answer at boot is asked again. */
const RELOAD_INTERVAL_MS = 1_000;

/** An account state other than 'open' (accounts.status). */
export type NotOpen = "opening" | "closed" | "failed" | "closing";

/** Bound on accounts remembered as added or not open, per shard (beyond it: 503 until a restart reads them). */
const STATES_MAX = 1_000_000;

export class Accounts implements AccountCatalog {
  private readonly known = new Map<ShardId, Known>();
  /** Accounts made by POST /accounts since the shard was read. */
  private readonly extra = new Map<ShardId, Set<number>>();
  private readonly states = new Map<ShardId, Map<number, NotOpen>>();
  /** "shard:id" -> transfers holding it (bounded by the transfers open, themselves bounded by in_flight_max). */
  private readonly held = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    readonly shards: readonly ShardId[],
    private readonly pools: ReadonlyMap<ShardId, ShardPool>,
  ) {}

  hasAccount(shard: ShardId, account: number): boolean | null {
    const k = this.known.get(shard);
    if (k === undefined) return this.shards.includes(shard) ? null : false;
    if (this.extra.get(shard)?.has(account) === true) return true;
    return k.kind === "range" ? account >= k.first && account <= k.last : k.ids.has(account);
  }

  /** Why a transfer may not touch this account now (it is not open), or null. */
  refusal(shard: ShardId, account: number): string | null {
    const st = this.states.get(shard)?.get(account);
    if (st === undefined) return null;
    if (st === "opening") return `account ${account} on ${shard} is being opened: its opening transfer has not committed yet`;
    if (st === "failed") return `account ${account} on ${shard} was never opened: its opening transfer aborted`;
    return `account ${account} on ${shard} is ${st}: it takes no transfers`;
  }

  /**
   * Marks accounts as named by a transfer that passed its checks and has not
   * ended yet (from the decode, in the same turn of the event loop, to its
   * outcome): a close waits until none holds the account. Answers the release.
   */
  hold(accounts: ReadonlyArray<{ shard: ShardId; account: number }>): () => void {
    const keys = accounts.map((a) => `${a.shard}:${a.account}`);
    for (const k of keys) this.held.set(k, (this.held.get(k) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const k of keys) {
        const n = this.held.get(k)! - 1;
        if (n === 0) this.held.delete(k);
        else this.held.set(k, n);
      }
    };
  }

  /** Transfers holding the account (see `hold`). */
  holders(shard: ShardId, account: number): number {
    return this.held.get(`${shard}:${account}`) ?? 0;
  }

  state(shard: ShardId, account: number): NotOpen | "open" {
    return this.states.get(shard)?.get(account) ?? "open";
  }

  /** An account inserted by POST /accounts (in state `st`). */
  added(shard: ShardId, account: number, st: NotOpen | "open"): void {
    const set = this.extra.get(shard) ?? new Set<number>();
    if (set.size >= STATES_MAX) throw new Error(`${shard}: more than ${STATES_MAX} accounts made since the server started; restart it`);
    set.add(account);
    this.extra.set(shard, set);
    this.setState(shard, account, st);
  }

  setState(shard: ShardId, account: number, st: NotOpen | "open"): void {
    const m = this.states.get(shard) ?? new Map<number, NotOpen>();
    if (st === "open") m.delete(account);
    else {
      if (m.size >= STATES_MAX && !m.has(account)) throw new Error(`${shard}: more than ${STATES_MAX} accounts not open`);
      m.set(account, st);
    }
    this.states.set(shard, m);
  }

  describe(shard: ShardId): { first: number; last: number; count: number } | null {
    const k = this.known.get(shard);
    if (k === undefined) return null;
    if (k.kind === "range") return { first: k.first, last: k.last, count: k.last - k.first + 1 };
    const ids = [...k.ids];
    return ids.length === 0 ? { first: 0, last: -1, count: 0 } : { first: Math.min(...ids), last: Math.max(...ids), count: ids.length };
  }

  /** Shards whose accounts are not known yet. */
  missing(): ShardId[] {
    return this.shards.filter((s) => !this.known.has(s));
  }

  /**
   * Reads every shard's accounts. A shard that does not answer is asked
   * again every second in the background (transfers naming it get 503 until
   * then), so the server starts while a shard is down. A shard that answers
   * with something unusable (no schema, ids too many or too large) is an
   * error: that needs a person, not a retry.
   */
  static async load(pools: ReadonlyMap<ShardId, ShardPool>): Promise<Accounts> {
    const a = new Accounts([...pools.keys()], pools);
    await a.loadMissing();
    if (a.missing().length > 0) {
      console.error(`accounts of ${a.missing().join(", ")} not readable yet (shard down?); asking again every ${RELOAD_INTERVAL_MS} ms`);
      a.timer = setInterval(() => {
        void a.loadMissing().then(
          () => {
            if (a.missing().length === 0 && a.timer !== null) {
              clearInterval(a.timer);
              a.timer = null;
            }
          },
          (e: unknown) => console.error(`accounts: ${(e as Error).message}`),
        );
      }, RELOAD_INTERVAL_MS);
      a.timer.unref();
    }
    return a;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async loadMissing(): Promise<void> {
    await Promise.all(
      this.missing().map(async (shard) => {
        const pool = this.pools.get(shard)!;
        const k = await readShard(shard, pool);
        if (k === null) return;
        const states = await readStates(shard, pool);
        if (states === null) return;
        this.states.set(shard, states);
        this.known.set(shard, k);
      }),
    );
  }
}

/** The shard's accounts, or null when the shard did not answer. */
async function readShard(shard: ShardId, pool: ShardPool): Promise<Known | null> {
  const r = await pool.run<Array<{ lo: string | null; hi: string | null; n: string }>>("SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM accounts");
  if (!r.ok) {
    if (r.error.fatal) return null;
    throw new Error(`${shard}: cannot read the accounts table (${r.error.message}); is its schema created (speccommit cluster up)?`);
  }
  const row = r.value[0]!;
  const n = Number(row.n);
  if (n === 0) return { kind: "set", ids: new Set() };
  const lo = Number(row.lo);
  const hi = Number(row.hi);
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) throw new Error(`${shard}: account ids beyond ${Number.MAX_SAFE_INTEGER} are not supported`);
  if (hi - lo + 1 === n) return { kind: "range", first: lo, last: hi };
  if (n > IDS_MAX) throw new Error(`${shard}: ${n} accounts with gaps in their ids; at most ${IDS_MAX} are supported`);
  const ids = await pool.run<Array<{ id: string }>>("SELECT id FROM accounts");
  if (!ids.ok) return null;
  return { kind: "set", ids: new Set(ids.value.map((x) => Number(x.id))) };
}

/** The accounts of a shard that are not open (opening, closed, failed), or null when the shard did not answer. */
async function readStates(shard: ShardId, pool: ShardPool): Promise<Map<number, NotOpen> | null> {
  const r = await pool.run<Array<{ id: string; status: NotOpen }>>(`SELECT id, status FROM accounts WHERE status <> 'open' LIMIT ${STATES_MAX + 1}`);
  if (!r.ok) {
    if (r.error.fatal) return null;
    throw new Error(`${shard}: cannot read the accounts' states (${r.error.message}); is its schema up to date (speccommit cluster up)?`);
  }
  if (r.value.length > STATES_MAX) throw new Error(`${shard}: more than ${STATES_MAX} accounts not open; at most ${STATES_MAX} are supported`);
  return new Map(r.value.map((x) => [Number(x.id), x.status]));
}
