/**
 * Commit timestamps (docs/protocols/timestamps.md): chosen by this process's
 * HLC (runtime/hlc.ts) with the decision, carried in the txlog records,
 * stamped on the history rows, and the set of timestamps still pending that
 * safe time is decided from (spec/time/safe.ts).
 *
 * The roles never see a timestamp (the checked models keep their counts):
 * `withTimestamps` wraps the adapters the roles' effects run on, and fills
 * the timestamp in on the way:
 *   log.put of a commit decision (2PC), a STAGING record (parallel commit) or
 *   a speculation's SPEC_EXECUTING / SPEC_COMMITTED record: the record
 *   carries `commit_ts` (the transaction's, chosen now if it has none: every
 *   branch is executed and holds its locks, or for the speculative path every
 *   branch is applied and the outcome answered);
 *   a commit decision written over a STAGING record keeps the STAGING's;
 *   log.list: every commit_ts in a record is observed (the HLC never issues a
 *   smaller one after) and is pending until the record is forgotten;
 *   xa.commit: once the branch committed (or was found committed: NOTA), its
 *   history rows are stamped before the role hears ok; a failed stamp
 *   answers UNAVAILABLE, so the role (or the resolver) commits again and
 *   stamps again, and the record is never forgotten before its rows are
 *   stamped. A one-phase commit (one branch, no record) takes its
 *   timestamp just before XA COMMIT ONE PHASE; its exec left the branch
 *   ACTIVE, so its history rows are written, stamped, inside the
 *   transaction that commits (XaMysql.commitStamped: the rows, XA END, XA
 *   COMMIT ONE PHASE in one round trip; a two-phase branch's stamp goes in its shard's next stamp batch
 *   after its XA COMMIT); when that batch's answer is lost it is stamped
 *   after the answer
 *   (pending until then; a few attempts);
 *   local.release: the speculation's rows are stamped in the release's own
 *   transaction;
 *   log.delete of a commit record: first every branch the record names whose
 *   rows this process has not stamped is stamped (a process that died
 *   between XA COMMIT and the stamp: the resolver finds the branch committed
 *   and sends no XA COMMIT); a failed stamp answers UNAVAILABLE and nothing
 *   is deleted. Once deleted, or an abort written: no longer pending.
 * A pending timestamp of a transaction no longer running here whose record a
 * complete listing does not show is dropped (its record was never written:
 * presumed abort).
 */
import { DECISION_PREFIX, SPECULATIVE_PREFIX, type LogEntry, type LogRecord, type ShardId, type TxId, type XaResult } from "../spec/kernel/effects.ts";
import { formatTs, parseTs } from "../spec/time/hlc.ts";
import { landing, type SafeTimeView } from "../spec/time/safe.ts";
import type { Adapters } from "./interpreter.ts";
import type { HybridClock } from "./hlc.ts";
import { nodeOfTx } from "./nodes.ts";

/** Stamps tx's history rows on a shard that have no commit_ts yet; true once done. */
export type HistoryStamp = (tx: TxId, shard: ShardId, ts: bigint) => Promise<boolean>;

/** A one-phase commit's stamp: attempts, and the pause between them. */
const ONE_PHASE_STAMP_ATTEMPTS = 5;
const ONE_PHASE_STAMP_RETRY_MS = 100;

/** Commit timestamps of settled transactions kept for their answers (the reply may come after the rows are stamped). */
const RECENT_MAX = 10_000;

/** How long a one-branch transfer's answer waits for its rows' stamp (its timestamp durable) before it is sent without one. */
export const COMMIT_TS_DURABLE_WAIT_MS = 2_000;

const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/** Adds to a map kept at most RECENT_MAX entries (the oldest go first). */
function remember<K, V>(m: Map<K, V>, k: K, v: V): void {
  m.delete(k);
  m.set(k, v);
  if (m.size > RECENT_MAX) m.delete(m.keys().next().value!);
}

const txOfKey = (key: string): TxId | null =>
  key.startsWith(DECISION_PREFIX) ? key.slice(DECISION_PREFIX.length) : key.startsWith(SPECULATIVE_PREFIX) ? key.slice(SPECULATIVE_PREFIX.length) : null;

/**
 * Does a record carry its transaction's commit timestamp? A commit decision, a STAGING record, and a speculation's
 * record unless rolled back (SPEC_EXECUTING carries the timestamp the speculation commits at if it commits, so that
 * every branch's release stamps the same one, whoever releases it).
 */
const carries = (r: LogRecord): boolean =>
  (r.kind === "decision" && r.decision === "commit") || r.kind === "staging" || (r.kind === "speculation" && r.state !== "SPEC_ROLLED_BACK");
const aborts = (r: LogRecord): boolean => (r.kind === "decision" && r.decision === "abort") || (r.kind === "speculation" && r.state === "SPEC_ROLLED_BACK");

export class CommitTimestamps {
  /** Chosen or observed, rows not all stamped yet: safe time stays below these. */
  private readonly pending = new Map<TxId, bigint>();
  /** The record key each pending transaction's timestamp is (or will be) kept at. */
  private readonly keys = new Map<TxId, string>();
  private readonly recent = new Map<TxId, bigint>();
  /** The XA branches of a pending transaction (from its record), and those whose rows this process stamped. */
  private readonly branches = new Map<TxId, readonly ShardId[]>();
  private readonly stamped = new Map<TxId, Set<ShardId>>();
  private readonly waiters = new Set<() => void>();
  /** Pending timestamps a complete listing dropped (the record not shown, the coordinator gone): their record may still land. */
  private readonly dropped = new Map<TxId, bigint>();
  /** Records to write again with a new commit timestamp (spec/time/safe.ts landing): tx -> key. */
  private readonly restamps = new Map<TxId, string>();
  /** The greatest safe time this process let a snapshot be served at (its own reads, its published values). */
  private released = -1n;
  /** Transactions whose commit timestamp is durable: in a record that landed, or on their stamped rows. */
  private readonly durable = new Map<TxId, true>();
  private readonly durableWaiters = new Map<TxId, Set<() => void>>();
  /** This process's node (set by the server; the in-memory tests run as n1). */
  selfNode = "n1";

  constructor(
    readonly clock: HybridClock,
    /** Transactions whose coordinator runs in this process (their record may still be on its way). */
    private readonly running: () => Iterable<TxId> = () => [],
    /** The process has made a complete resolver scan since it started. */
    private readonly caughtUp: () => boolean = () => true,
    /** The last safe time another node published itself (runtime/safe-exchange.ts); -1 when none. */
    private readonly releasedOf: (node: string) => bigint = () => -1n,
  ) {}

  /** A snapshot may be served at `at` (a read served, or a value published): no commit may land at or below it. */
  release(at: bigint): void {
    if (at > this.released) this.released = at;
  }

  /** The greatest value released (tests, metrics). */
  get releasedMax(): bigint {
    return this.released;
  }

  /** tx's commit timestamp is durable (a record carrying it landed, or its rows are stamped). */
  markDurable(tx: TxId): void {
    remember(this.durable, tx, true);
    const ws = this.durableWaiters.get(tx);
    if (ws === undefined) return;
    this.durableWaiters.delete(tx);
    for (const w of ws) w();
  }

  isDurable(tx: TxId): boolean {
    return this.durable.has(tx);
  }

  /** One-phase commits whose stamp is under way (an answer may wait for it: one UPDATE on the same shard). */
  private readonly stamping = new Set<TxId>();

  /**
   * The commit timestamp a committed transfer's answer may tell (`known`: the one chosen): told only once durable
   * (docs/protocols/timestamps.md, "The timestamp told"). A one-phase commit's stamp is waited for, at most
   * COMMIT_TS_DURABLE_WAIT_MS; a timestamp whose record is still to be written (the speculative path answers
   * before SPEC_EXECUTING) is not told: the answer does not wait for the txlog.
   */
  toTell(tx: TxId, known: bigint): bigint | undefined | Promise<bigint | undefined> {
    if (this.durable.has(tx)) return known;
    if (!this.stamping.has(tx)) return undefined;
    return this.whenDurable(tx, COMMIT_TS_DURABLE_WAIT_MS).then((ok) => (ok ? known : undefined));
  }

  /**
   * toTell for a client that asked to wait for the timestamp (`Prefer: commit-ts`, runtime/server.ts): any
   * committed transaction's timestamp is told once durable, the speculative path's included (its SPEC_EXECUTING
   * record, written just after the answer's decision), waiting at most COMMIT_TS_DURABLE_WAIT_MS.
   */
  toTellWaiting(tx: TxId, known: bigint): bigint | Promise<bigint | undefined> {
    if (this.durable.has(tx)) return known;
    return this.whenDurable(tx, COMMIT_TS_DURABLE_WAIT_MS).then((ok) => (ok ? known : undefined));
  }

  /** Resolves true once tx's commit timestamp is durable, false after `ms` (the answer then tells none). */
  whenDurable(tx: TxId, ms: number): Promise<boolean> {
    if (this.durable.has(tx)) return Promise.resolve(true);
    return new Promise((resolve) => {
      let ws = this.durableWaiters.get(tx);
      if (ws === undefined) this.durableWaiters.set(tx, (ws = new Set()));
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        ws.delete(done);
        if (ws.size === 0) this.durableWaiters.delete(tx);
        resolve(false);
      }, ms);
      ws.add(done);
    });
  }

  /** The commit timestamp of tx, chosen now if it has none. */
  choose(tx: TxId): bigint {
    const known = this.pending.get(tx) ?? this.recent.get(tx);
    if (known !== undefined) return known;
    const ts = this.clock.now();
    this.pending.set(tx, ts);
    return ts;
  }

  /** The commit timestamp of tx, if this process chose or saw one. */
  tsOf(tx: TxId): bigint | undefined {
    return this.pending.get(tx) ?? this.recent.get(tx);
  }

  /** A timestamp read from a record: observed, pending until the record is forgotten. */
  learn(tx: TxId, ts: bigint, key: string): void {
    this.clock.observeTrusted(ts);
    if (!this.recent.has(tx)) this.pending.set(tx, ts);
    this.keys.set(tx, key);
  }

  /** tx's rows are stamped (or it has none): no longer pending. */
  settle(tx: TxId): void {
    const ts = this.pending.get(tx);
    this.keys.delete(tx);
    this.branches.delete(tx);
    this.stamped.delete(tx);
    if (ts === undefined) return;
    this.pending.delete(tx);
    remember(this.recent, tx, ts);
    for (const w of [...this.waiters]) w();
  }

  /** A pending timestamp whose record a complete listing did not show, its coordinator gone: no longer pending, but its record may still land. */
  private drop(tx: TxId): void {
    const ts = this.pending.get(tx);
    if (ts !== undefined && !this.restamps.has(tx)) remember(this.dropped, tx, ts);
    this.restamps.delete(tx);
    this.settle(tx);
  }

  /** What safe time is decided from (spec/time/safe.ts). */
  view(): SafeTimeView {
    return { clock: this.clock.current(), pending: this.pending.values(), ready: this.caughtUp() };
  }

  /** The number of timestamps pending (metrics, tests). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Resolves on the next settle or after `ms`, whichever is first. */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /**
   * A listing of `prefix` answered: what it shows is learned; what it does not show and nothing runs here is no longer
   * pending. `node`: the node whose namespace was listed (its keys are relative to that namespace, so only that
   * node's transactions can be concluded absent from it; a takeover resolver lists another node's namespace).
   */
  listed(prefix: string, entries: readonly { key: string; value: LogRecord }[], node?: string): void {
    const shown = new Set<TxId>();
    for (const e of entries) {
      const tx = txOfKey(e.key);
      if (tx === null) continue;
      shown.add(tx);
      const v = e.value as LogRecord & { commit_ts?: string };
      const ts = v.commit_ts === undefined ? null : parseTs(v.commit_ts);
      if (ts !== null && carries(e.value)) {
        this.noteBranches(tx, e.value);
        if (this.restamps.has(tx)) continue;
        // A record this process dropped that landed after all, or another node's below what that node published:
        // below a snapshot that may have been served, it is written again above it before anything commits.
        const wasDropped = this.dropped.has(tx);
        const unknown = !this.pending.has(tx) && !this.recent.has(tx);
        const owner = nodeOfTx(tx);
        const released = wasDropped
          ? this.released
          : unknown
            ? owner === this.selfNode
              ? max(this.released, this.releasedOf(owner))
              : this.releasedOf(owner)
            : -1n;
        if (wasDropped) {
          this.dropped.delete(tx);
          this.recent.delete(tx);
        }
        if (landing(ts, released) === "restamp") {
          this.clock.observeTrusted(ts);
          this.clock.observeTrusted(released);
          this.pending.set(tx, this.clock.now());
          this.keys.set(tx, e.key);
          this.restamps.set(tx, e.key);
          continue;
        }
        this.learn(tx, ts, e.key);
        this.markDurable(tx);
      }
      else if (ts !== null) this.clock.observeTrusted(ts);
    }
    const running = new Set(this.running());
    for (const tx of [...this.pending.keys()]) {
      const key = this.keys.get(tx);
      if (shown.has(tx) || running.has(tx)) continue;
      if (node !== undefined && nodeOfTx(tx) !== node) continue;
      if (key === undefined || key.startsWith(prefix)) this.drop(tx);
    }
  }

  /** The records of `entries` to write again with their new timestamp (after `listed`). */
  restampsOf(entries: readonly LogEntry[]): { entry: LogEntry; value: LogRecord; tx: TxId }[] {
    const out: { entry: LogEntry; value: LogRecord; tx: TxId }[] = [];
    for (const e of entries) {
      const tx = txOfKey(e.key);
      if (tx === null || this.restamps.get(tx) !== e.key) continue;
      out.push({ entry: e, tx, value: { ...e.value, commit_ts: formatTs(this.pending.get(tx)!) } as LogRecord });
    }
    return out;
  }

  /** A one-phase commit's stamp begins (true) or ends (false). */
  stampingOnePhase(tx: TxId, on: boolean): void {
    if (on) this.stamping.add(tx);
    else this.stamping.delete(tx);
  }

  /** A re-stamped record landed. */
  restamped(tx: TxId): void {
    this.restamps.delete(tx);
    this.markDurable(tx);
  }

  /** The record as it goes to the txlog: with the transaction's commit timestamp when it commits. */
  stampRecord(key: string, value: LogRecord): LogRecord {
    const tx = txOfKey(key);
    if (tx === null) return value;
    if (!carries(value)) return value;
    this.keys.set(tx, key);
    this.noteBranches(tx, value);
    return { ...value, commit_ts: formatTs(this.choose(tx)) } as LogRecord;
  }

  /** The XA branches a record names (a speculation's rows are stamped by its releases, not here). */
  private noteBranches(tx: TxId, r: LogRecord): void {
    if (r.kind === "decision") this.branches.set(tx, r.branches);
    else if (r.kind === "staging") this.branches.set(tx, r.branches.map((b) => b.shard));
  }

  /** tx's rows on `shard` are stamped. */
  markStamped(tx: TxId, shard: ShardId): void {
    if (!this.pending.has(tx)) return;
    let set = this.stamped.get(tx);
    if (set === undefined) this.stamped.set(tx, (set = new Set()));
    set.add(shard);
  }

  /**
   * The XA branches of a committed tx whose rows this process has not stamped (a process that died between XA
   * COMMIT and the stamp; the resolver then finds the branch committed and sends no XA COMMIT), with its timestamp.
   */
  unstamped(tx: TxId): { ts: bigint; shards: ShardId[] } | null {
    const ts = this.pending.get(tx);
    const branches = this.branches.get(tx);
    if (ts === undefined || branches === undefined) return null;
    const done = this.stamped.get(tx);
    const shards = branches.filter((b) => done === undefined || !done.has(b));
    return shards.length === 0 ? null : { ts, shards };
  }

  /** After a put: an abort written ends what was pending. */
  put(key: string, value: LogRecord, ok: boolean): void {
    const tx = txOfKey(key);
    if (tx !== null && ok && carries(value)) this.markDurable(tx);
    if (tx !== null && ok && aborts(value)) this.settle(tx);
  }
}

/**
 * The adapters the roles run on, with the commit timestamps filled in
 * (module header). The roles' effects and results are unchanged but for the
 * records' `commit_ts`, which no role reads.
 */
/** XA COMMIT and the stamp in one round trip (XaMysql.commitStamped): the commit's answer, and whether the rows were stamped. */
export type CommitStamped = (tx: TxId, shard: ShardId, onePhase: boolean, ts: bigint) => Promise<{ r: XaResult; stamped: boolean }>;

export function withTimestamps(a: Adapters, ts: CommitTimestamps, stamp: HistoryStamp, node?: string, commitStamped?: CommitStamped): Adapters {
  const log = a.log;
  const xa = a.xa;
  const stampOnePhase = async (tx: TxId, shard: ShardId, t: bigint): Promise<void> => {
    ts.stampingOnePhase(tx, true);
    for (let attempt = 1; attempt <= ONE_PHASE_STAMP_ATTEMPTS; attempt++) {
      if (await stamp(tx, shard, t)) {
        ts.markDurable(tx);
        break;
      }
      if (attempt === ONE_PHASE_STAMP_ATTEMPTS) console.error(`commit_ts: the history rows of ${tx} on ${shard} could not be stamped (one-phase commit); snapshots will not show it`);
      else await new Promise((res) => setTimeout(res, ONE_PHASE_STAMP_RETRY_MS));
    }
    ts.stampingOnePhase(tx, false);
    ts.settle(tx);
  };
  const wrapped: Adapters = {
    ...a,
    log: override(log, {
      put: async (key: string, value: LogRecord, ifVersion: number, fence?: Parameters<typeof log.put>[3]) => {
        const v = ts.stampRecord(key, value);
        const r = await log.put(key, v, ifVersion, fence);
        ts.put(key, value, r.ok);
        return r;
      },
      list: async (prefix: string) => {
        const r = await log.list(prefix);
        if (!r.ok) return r;
        ts.listed(prefix, r.entries, node);
        const again = ts.restampsOf(r.entries);
        if (again.length === 0) return r;
        // Written again above every snapshot released (spec/time/safe.ts landing), at the version listed, before the
        // resolver sees the record; not written: the listing fails (the resolver scans again later).
        const entries = [...r.entries];
        for (const x of again) {
          const w = await log.put(x.entry.key, x.value, x.entry.version);
          if (!w.ok) return { ok: false, err: "UNAVAILABLE" } as const;
          ts.restamped(x.tx);
          entries[entries.indexOf(x.entry)] = { key: x.entry.key, value: x.value, version: w.version };
        }
        return { ok: true, entries };
      },
      delete: async (key: string, fence?: Parameters<typeof log.delete>[1], ifVersion?: number) => {
        const tx = txOfKey(key);
        // The record goes only once every row of its transaction is stamped.
        const left = tx === null ? null : ts.unstamped(tx);
        if (tx !== null && left !== null) {
          const ok = await Promise.all(left.shards.map(async (shard) => (await stamp(tx, shard, left.ts)) && (ts.markStamped(tx, shard), true)));
          if (!ok.every(Boolean)) return { ok: false, err: "UNAVAILABLE" } as const;
        }
        const r = await log.delete(key, fence, ifVersion);
        if (r.ok && tx !== null) ts.settle(tx);
        return r;
      },
    }),
    xa: override(xa, {
      commit: async (tx: TxId, shard: ShardId, onePhase = false) => {
        const t = ts.choose(tx);
        let r: XaResult;
        if (commitStamped !== undefined) {
          // One round trip for the commit and the stamp; when the stamp did not go with it, as after a plain commit.
          const both = await commitStamped(tx, shard, onePhase, t);
          r = both.r;
          if (both.stamped) {
            ts.markStamped(tx, shard);
            ts.markDurable(tx);
            if (onePhase) ts.settle(tx);
            return r;
          }
        } else r = await xa.commit(tx, shard, onePhase);
        if (onePhase) {
          // One branch, no record: its rows are stamped after the answer (pending until then, a few attempts), or stay
          // without a timestamp (docs/protocols/timestamps.md). The answer does not wait for the stamp.
          // UNAVAILABLE: the batch may still commit (and stamp at t) on the server after the client gave up; t stays
          // pending while the rows are stamped at t from another connection, which waits on the branch's locks until
          // its fate is known (no rows: it did not commit), so safe time never passes t before that.
          if (!r.ok && r.err !== "UNAVAILABLE") ts.settle(tx);
          else void stampOnePhase(tx, shard, t);
          return r;
        }
        if (r.ok || r.err === "NOTA") {
          if (!(await stamp(tx, shard, t))) return { ok: false, err: "UNAVAILABLE" } as const;
          ts.markStamped(tx, shard);
          ts.markDurable(tx);
        }
        return r;
      },
    }),
  };
  const local = a.local;
  if (local !== undefined) {
    (wrapped as { local?: typeof local }).local = override(local, {
      release: async (tx: TxId, shard: ShardId) => {
        const r = await local.release(tx, shard, ts.choose(tx));
        if (r.ok) ts.markDurable(tx);
        return r;
      },
    });
  }
  return wrapped;
}

/**
 * `target` with some methods replaced; every other property read from it (methods bound to it, each bound once: the
 * adapters' methods are read once per effect).
 */
function override<T extends object>(target: T, methods: Partial<T>): T {
  const bound = new Map<string | symbol, { readonly of: unknown; readonly fn: unknown }>();
  return new Proxy(target, {
    get(t, p) {
      if (Object.prototype.hasOwnProperty.call(methods, p)) return (methods as Record<string | symbol, unknown>)[p];
      const v = Reflect.get(t, p, t);
      if (typeof v !== "function") return v;
      const b = bound.get(p);
      if (b !== undefined && b.of === v) return b.fn;
      const fn = (v as (...args: unknown[]) => unknown).bind(t);
      bound.set(p, { of: v, fn });
      return fn;
    },
  });
}
