/**
 * Which accounts exist, per shard: a bounded cache in front of the shards,
 * which are the truth. At boot each shard's ids are read as a warm start (one
 * dense range, or the ids themselves up to IDS_MAX; beyond that nothing, and
 * the server starts all the same). A request naming an account the cache
 * does not know asks the account's shard (`lookup`: one bounded query per
 * shard for the request's missing ids): an account opened through another
 * coordinator node is found there, an account the shard does not hold is
 * refused (422), a shard that does not answer is a 503 with Retry-After.
 * Accounts found are remembered (POSITIVES_MAX per shard, cleared when full);
 * misses are not. POST /accounts (runtime/banking.ts) tells the cache
 * (`added`, `setState`).
 *
 * An account that is not 'open' (opening, closed, failed: runtime/banking.ts)
 * is refused by transfers with a 409 (`refusal`). States are remembered up to
 * STATES_MAX per shard (beyond it the oldest settled ones are forgotten: the
 * branch statements check the row's state under its lock all the same,
 * runtime/adapters/xa-mysql.ts); an account this cache says is 'opening' is
 * asked again (another node may have opened it since).
 */
import type { ShardId } from "../spec/kernel/effects.ts";
import type { ShardPool } from "./adapters/mysql-pool.ts";
import { BadRequest, type AccountCatalog } from "./transfer.ts";
import { SHARD_TABLES } from "./cluster/schema.ts";

/** Ids kept from the boot read of a shard whose ids have gaps; beyond it none are kept (the shard is asked on a miss). */
const IDS_MAX = 2_000_000;
/** Accounts remembered per shard as found by `lookup` or opened here; the set is cleared when full. */
export const POSITIVES_MAX = 100_000;
/** Ids asked of one shard in one `lookup` (a transfer names at most OPS_MAX accounts). */
const LOOKUP_IDS_MAX = 1_000;

type Known = { kind: "range"; first: number; last: number } | { kind: "set"; ids: Set<number> } | { kind: "none"; count: number };

/** How often a shard that did not answer at boot is asked again. */
const RELOAD_INTERVAL_MS = 1_000;

/** States an account never leaves (runtime/banking.ts: a closed account stays closed, a failed opening failed). */
export const isFinal = (st: NotOpen | "open" | undefined): boolean => st === "closed" || st === "failed";

/** An account state other than 'open' (accounts.status). */
export type NotOpen = "opening" | "closed" | "failed" | "closing";

/** Bound on accounts remembered as not open, per shard. */
export const STATES_MAX = 1_000_000;

/** The cache's bounds (defaults: IDS_MAX, STATES_MAX, POSITIVES_MAX); smaller in tests. */
export interface AccountBounds {
  readonly idsMax?: number;
  readonly statesMax?: number;
  readonly positivesMax?: number;
}

export class Accounts implements AccountCatalog {
  private readonly known = new Map<ShardId, Known>();
  /** Accounts found by `lookup` or made by POST /accounts since the shard was read (POSITIVES_MAX per shard). */
  private readonly extra = new Map<ShardId, Set<number>>();
  private readonly states = new Map<ShardId, Map<number, NotOpen>>();
  /** "shard:id" -> transfers holding it (bounded by the transfers open, themselves bounded by in_flight_max). */
  private readonly held = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly positivesMax: number;
  private readonly statesMax: number;
  private readonly idsMax: number;

  constructor(
    readonly shards: readonly ShardId[],
    private readonly pools: ReadonlyMap<ShardId, ShardPool>,
    bounds: AccountBounds = {},
  ) {
    this.positivesMax = bounds.positivesMax ?? POSITIVES_MAX;
    this.statesMax = bounds.statesMax ?? STATES_MAX;
    this.idsMax = bounds.idsMax ?? IDS_MAX;
  }

  /** Accounts remembered as found (not counting the boot read), per shard: at most the positives bound. */
  remembered(shard: ShardId): number {
    return this.extra.get(shard)?.size ?? 0;
  }

  /** States remembered (not open), per shard: at most the states bound. */
  statesKept(shard: ShardId): number {
    return this.states.get(shard)?.size ?? 0;
  }

  /** True: the account exists (known here). False: not known here; `lookup` asks its shard. */
  hasAccount(shard: ShardId, account: number): boolean {
    if (this.extra.get(shard)?.has(account) === true) return true;
    const k = this.known.get(shard);
    if (k === undefined) return false;
    return k.kind === "range" ? account >= k.first && account <= k.last : k.kind === "set" ? k.ids.has(account) : false;
  }

  /** Whether what this cache knows of the account may be stale and its shard should be asked (it is being opened, maybe through another node). */
  stale(shard: ShardId, account: number): boolean {
    return this.states.get(shard)?.get(account) === "opening";
  }

  /**
   * Asks the shards which of these accounts exist (one query per shard, at
   * most LOOKUP_IDS_MAX ids each), remembers those found and their states,
   * and answers the set of "shard:id" found. BadRequest(503) when a shard
   * does not answer.
   */
  async lookup(accounts: ReadonlyArray<{ shard: ShardId; account: number }>): Promise<Set<string>> {
    const byShard = new Map<ShardId, number[]>();
    for (const a of accounts) {
      if (!this.shards.includes(a.shard) || !Number.isSafeInteger(a.account) || a.account < 1) continue;
      const ids = byShard.get(a.shard) ?? [];
      if (!ids.includes(a.account)) ids.push(a.account);
      byShard.set(a.shard, ids);
    }
    const found = new Set<string>();
    await Promise.all(
      [...byShard].map(async ([shard, ids]) => {
        if (ids.length > LOOKUP_IDS_MAX) throw new BadRequest(400, `more than ${LOOKUP_IDS_MAX} accounts on ${shard} in one request`);
        const r = await this.pools.get(shard)!.run<Array<{ id: string; status: NotOpen | "open" }>>(`SELECT id, status FROM accounts WHERE id IN (${ids.join(",")})`);
        if (!r.ok) throw new BadRequest(503, `${shard} did not answer whether its accounts ${ids.join(", ")} exist: ${r.error.message}`);
        for (const row of r.value) {
          const id = Number(row.id);
          found.add(`${shard}:${id}`);
          this.remember(shard, id);
          // A close running here ('closing') is this process's own state: the shard says 'open' until it ends. A final
          // state (closed, failed) never goes back: a read that ran before a close committed may answer after it.
          const cached = this.states.get(shard)?.get(id);
          if (cached !== "closing" && !isFinal(cached)) this.setState(shard, id, row.status);
        }
      }),
    );
    return found;
  }

  /** This catalog, with the accounts of `found` (a `lookup` answer) known to exist whatever was evicted since. */
  withFound(found: ReadonlySet<string>): AccountCatalog {
    return {
      shards: this.shards,
      hasAccount: (s, a) => found.has(`${s}:${a}`) || this.hasAccount(s, a),
      refusal: (s, a) => this.refusal(s, a),
    };
  }

  /** Whether the account exists: this cache, else its shard (BadRequest 503 when it does not answer). */
  async exists(shard: ShardId, account: number): Promise<boolean> {
    if (this.hasAccount(shard, account) && !this.stale(shard, account)) return true;
    return (await this.lookup([{ shard, account }])).has(`${shard}:${account}`);
  }

  private remember(shard: ShardId, account: number): void {
    let set = this.extra.get(shard);
    if (set === undefined) this.extra.set(shard, (set = new Set()));
    if (set.has(account)) return;
    if (set.size >= this.positivesMax) set.clear();
    set.add(account);
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
    this.remember(shard, account);
    this.setState(shard, account, st);
  }

  setState(shard: ShardId, account: number, st: NotOpen | "open"): void {
    let m = this.states.get(shard);
    if (m === undefined) this.states.set(shard, (m = new Map()));
    if (st === "open") {
      m.delete(account);
      return;
    }
    if (m.size >= this.statesMax && !m.has(account)) {
      // Full: forget the oldest state that is not a close running here (closes are bounded by the requests in flight).
      for (const [id, old] of m) {
        if (old !== "closing") {
          m.delete(id);
          break;
        }
      }
    }
    m.set(account, st);
  }

  describe(shard: ShardId): { first: number; last: number; count: number } | null {
    const k = this.known.get(shard);
    if (k === undefined) return null;
    if (k.kind === "range") return { first: k.first, last: k.last, count: k.last - k.first + 1 };
    if (k.kind === "none") return { first: 0, last: -1, count: k.count };
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
   * with something unusable (no schema) is an error: that needs a person, not
   * a retry. Counts never are: beyond the bounds the shard is asked on a miss.
   */
  static async load(pools: ReadonlyMap<ShardId, ShardPool>, bounds: AccountBounds = {}): Promise<Accounts> {
    const a = new Accounts([...pools.keys()], pools, bounds);
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
        if (!(await checkTables(shard, pool))) return;
        const k = await readShard(shard, pool, this.idsMax);
        if (k === null) return;
        const states = await readStates(shard, pool, this.statesMax);
        if (states === null) return;
        this.states.set(shard, states);
        this.known.set(shard, k);
      }),
    );
  }
}

/**
 * Whether every table the server uses is on the shard (a shard made by an earlier version gains the later ones on
 * `speccommit cluster up`, runtime/cluster/schema.ts): false when the shard did not answer; a table it lacks (or
 * the user may not read) is an error naming it, at boot, rather than the transfers that need it failing later.
 */
async function checkTables(shard: ShardId, pool: ShardPool): Promise<boolean> {
  for (const t of SHARD_TABLES) {
    const r = await pool.run(`SELECT 1 FROM ${t.name} LIMIT 0`);
    if (r.ok) continue;
    if (r.error.fatal) return false;
    throw new Error(`${shard}: cannot read table ${t.name} (${r.error.message}); is its schema up to date (speccommit cluster up)?`);
  }
  return true;
}

/** The shard's accounts, or null when the shard did not answer. */
async function readShard(shard: ShardId, pool: ShardPool, idsMax: number): Promise<Known | null> {
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
  // Too many gapped ids to keep: none kept, every account of this shard is asked of it once (`lookup`).
  if (n > idsMax) return { kind: "none", count: n };
  const ids = await pool.run<Array<{ id: string }>>("SELECT id FROM accounts");
  if (!ids.ok) return null;
  return { kind: "set", ids: new Set(ids.value.map((x) => Number(x.id))) };
}

/** The accounts of a shard that are not open (opening, closed, failed), or null when the shard did not answer. */
async function readStates(shard: ShardId, pool: ShardPool, max: number): Promise<Map<number, NotOpen> | null> {
  // The newest `max` (by id); beyond them the branch statements' row check refuses (runtime/accounts.ts header).
  const r = await pool.run<Array<{ id: string; status: NotOpen }>>(`SELECT id, status FROM accounts WHERE status <> 'open' ORDER BY id DESC LIMIT ${max}`);
  if (!r.ok) {
    if (r.error.fatal) return null;
    throw new Error(`${shard}: cannot read the accounts' states (${r.error.message}); is its schema up to date (speccommit cluster up)?`);
  }
  if (r.value.length >= max) console.error(`${shard}: ${max} accounts or more not open; the states of the oldest are not kept (their rows still refuse transfers)`);
  return new Map(r.value.map((x) => [Number(x.id), x.status]));
}
