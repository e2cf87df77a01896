/**
 * The cross-shard deadlock detector (docs/deadlock.md, docs/operations.md
 * "Cross-shard deadlocks").
 *
 * Every `deadlock_interval_ms` it asks each shard, in one query on its own
 * connection, which InnoDB transaction waits for which
 * (information_schema.INNODB_LOCK_WAITS joined to INNODB_TRX for the sessions'
 * thread ids), maps the sessions to this process's branches through the
 * thread ids the XA executor knows (XaMysql.branchThreads), builds the global
 * wait-for graph, and asks the spec (spec/deadlock/victims.ts chooseVictims)
 * for the victims, given each transaction's facts from its coordinator
 * (spec/deadlock/facts.ts). It decides nothing itself. A victim is aborted
 * through its own coordinator: KILL QUERY on its blocked xa.exec
 * (XaMysql.interruptExec), whose statement then answers DEADLOCK_VICTIM, and
 * the coordinator aborts by its protocol's rule, answering
 * `aborted` / `deadlock`.
 *
 * Bounded: one query per shard per tick, never two ticks at once, at most
 * WAIT_ROWS_MAX rows per shard; only the last tick's graph is kept.
 *
 * Several coordinator nodes (`serve --node N`): a cycle may run through
 * transactions of different nodes (n1's T1 waits for n2's T2 on shard a,
 * T2 for T1 on shard b). A node knows only its own sessions; another
 * node's session on shard a and its session on shard b would be two
 * unrelated graph nodes, so no node would see the cycle and it would last
 * until innodb_lock_wait_timeout. So while other nodes are members, each
 * node publishes in etcd (`<prefix>deadlock/<node>`, PeerSessions) the
 * sessions of its own that appear in its last tick's waits, with their
 * transaction ids and facts, and reads the others' to name the sessions it
 * does not know. Every node then builds the same global graph with every
 * transaction's facts (another node's facts as that node last published
 * them), runs the same choice, and interrupts only its own victims, whose
 * facts it knows fresh: a victim is never decided whatever a peer
 * published; a stale map can only make a node skip a tick or spare a
 * victim its owner will take. Published entries older than PEER_FRESH_MS
 * (or a node's own clock's view of them) are ignored; an entry is at most
 * PEER_SESSIONS_MAX sessions; a node writes at most once per tick, and
 * only when what it would publish changed or half the freshness window has
 * passed.
 *
 * InnoDB serves INNODB_TRX and INNODB_LOCK_WAITS from a cache that it
 * refreshes only when the previous read is more than 100 ms old: a reader
 * polling faster (this detector, or anyone else reading those tables on the
 * shard) sees the same frozen waits for ever. Hence the interval's floor
 * (config.ts DEADLOCK_INTERVAL_MS_MIN) and the advice, in
 * docs/operations.md, not to poll those tables elsewhere.
 */
import type { ShardId, TxId } from "../spec/kernel/effects.ts";
import { chooseVictims, type TxFacts, type Victim, type WaitEdge, type WaitSnapshot } from "../spec/deadlock/victims.ts";
import { ShardPool, type PoolLimits, type QueryOutcome, type ShardAddress } from "./adapters/mysql-pool.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { Metrics } from "./metrics.ts";
import type { Etcd3, Namespace } from "etcd3";

/** Sessions one node publishes per tick for the others (the rest are left out: their cycles wait for a later tick). */
export const PEER_SESSIONS_MAX = 2_000;
/** A peer's published sessions older than this are ignored (its node stopped, or stopped seeing waits). */
export const PEER_FRESH_MS = 3_000;

/** A session of a node, as published for the other nodes' detectors. */
export interface PeerSession {
  readonly shard: ShardId;
  readonly thread: number;
  readonly tx: TxId;
  readonly facts?: TxFacts;
}

/** The exchange of sessions between the nodes' detectors (EtcdPeerSessions; tests may give their own). */
export interface PeerSessions {
  /** True while other nodes are members: only then is anything published or read. */
  active(): boolean;
  /** Publishes this node's sessions (empty: withdraws what was published). */
  publish(sessions: readonly PeerSession[]): Promise<void>;
  /** The other nodes' fresh sessions. */
  read(): Promise<PeerSession[]>;
  /** This node's turn among the members for reading the shards (see DeadlockDetector.schedule). */
  slot(): { index: number; count: number };
}

/** Lock waits read per shard and tick; past it the rest are left for the next tick (and counted as truncated). */
export const WAIT_ROWS_MAX = 10_000;

/** Who waits for whom on one shard, by session (MariaDB 10.11 has INNODB_LOCK_WAITS; reading it needs PROCESS). */
export const LOCK_WAITS_SQL =
  "SELECT r.trx_mysql_thread_id AS waiter, b.trx_mysql_thread_id AS holder " +
  "FROM information_schema.INNODB_LOCK_WAITS w " +
  "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id " +
  `JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id LIMIT ${WAIT_ROWS_MAX}`;

export interface DeadlockDetectorOptions {
  readonly xa: XaMysql;
  /** The shards as the server reaches them: the detector opens one connection of its own to each. */
  readonly shards: readonly ShardAddress[];
  readonly limits: PoolLimits;
  readonly interval_ms: number;
  /** The facts of a transaction whose coordinator runs here (Engine.deadlockFacts); undefined: not ours, never a victim. */
  factsOf(tx: TxId): TxFacts | undefined;
  readonly metrics?: Metrics;
  /** With several coordinator nodes: how this node names the others' sessions (see the header). */
  readonly peers?: PeerSessions;
}

export interface DetectorStats {
  ticks: number;
  /** Victims chosen and interrupted. */
  victims: number;
  /** Ticks in which a shard did not answer (its waits were missing from that tick's graph). */
  shard_errors: number;
  /** The last tick's duration, ms. */
  last_tick_ms: number;
  /** Sessions of other nodes named from what they published (over every tick). */
  peer_sessions: number;
  /** Ticks in which the exchange with the other nodes failed (etcd did not answer): their sessions stayed unnamed. */
  peer_errors: number;
}

/** A session of a shard this process does not know: a node no one may abort (its own shard sees its cycles). */
const foreign = (shard: ShardId, thread: number): TxId => `${shard}#${thread}`;

export class DeadlockDetector {
  private readonly pools = new Map<ShardId, ShardPool>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<Victim[]> | null = null;
  readonly stats: DetectorStats = { ticks: 0, victims: 0, shard_errors: 0, last_tick_ms: 0, peer_sessions: 0, peer_errors: 0 };
  /** The last tick's graph when it had a wait (replaced each tick: one snapshot kept). */
  last: WaitSnapshot | null = null;
  /** Called with each victim interrupted (tests and the bench measure with it). */
  onVictim: ((v: Victim, at_ms: number) => void) | null = null;

  constructor(private readonly opts: DeadlockDetectorOptions) {
    // One connection per shard: a pool exhausted by blocked branches must not keep the detector from reading or killing.
    for (const s of opts.shards) this.pools.set(s.name, new ShardPool(s, { ...opts.limits, connections_max: 1, waiters_max: 2 }));
  }

  start(): void {
    if (this.running || this.opts.interval_ms <= 0) return;
    this.running = true;
    this.schedule();
  }

  private running = false;

  /**
   * The next tick. Alone: every interval_ms. With other nodes, their reads of
   * a shard's lock-wait tables must never come closer than InnoDB's 100 ms
   * cache window every time (else the cache never refreshes and every node
   * sees the same frozen waits): the nodes take turns on the wall clock,
   * node i of n (members sorted by name) reading at the times t with
   * t mod (n * interval_ms) = i * interval_ms. The reads of all nodes then
   * average one per interval_ms (above the window), whatever their phases
   * and clock skews.
   */
  private schedule(): void {
    if (!this.running) return;
    const period = this.opts.interval_ms;
    const slot = this.opts.peers?.active() === true ? this.opts.peers.slot() : { index: 0, count: 1 };
    let delay = period;
    if (slot.count > 1) {
      const round = period * slot.count;
      const now = Date.now();
      const at = now - (now % round) + slot.index * period;
      delay = at > now ? at - now : at + round - now;
    }
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // Withdraw what this node published for the others (it would age out anyway).
    if (this.published !== null && this.opts.peers !== undefined) void this.opts.peers.publish([]).catch(() => undefined);
    this.published = null;
    for (const p of this.pools.values()) p.close();
  }

  /** One round: read every shard, choose, interrupt. A tick asked for while one runs returns that one. */
  tick(): Promise<Victim[]> {
    this.ticking ??= this.round().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async round(): Promise<Victim[]> {
    const t0 = performance.now();
    const shards = [...this.pools.keys()];
    const reads = await Promise.all(shards.map((s) => this.pools.get(s)!.run<Array<{ waiter: unknown; holder: unknown }>>(LOCK_WAITS_SQL)));
    /** Every wait read this tick, by session: (shard, waiter thread, holder thread). */
    const waits: Array<{ shard: ShardId; w: number; h: number }> = [];
    const oursOf = new Map<ShardId, ReadonlyMap<number, TxId>>();
    reads.forEach((r, i) => {
      const shard = shards[i]!;
      if (!r.ok) {
        this.stats.shard_errors++;
        return;
      }
      if (r.value.length === 0) return;
      oursOf.set(shard, this.opts.xa.branchThreads(shard));
      for (const row of r.value) {
        const w = Number(row.waiter);
        const h = Number(row.holder);
        if (Number.isSafeInteger(w) && Number.isSafeInteger(h)) waits.push({ shard, w, h });
      }
    });
    const peerNames = await this.exchange(waits, oursOf);
    const edges: WaitEdge[] = [];
    const facts: Record<TxId, TxFacts> = {};
    /** Per victim candidate, its blocked sessions: (shard, thread). */
    const blocked = new Map<TxId, Array<{ shard: ShardId; thread: number }>>();
    for (const { shard, w, h } of waits) {
      const ours = oursOf.get(shard)!;
      const name = (thread: number): TxId => ours.get(thread) ?? peerNames.get(sessionKey(shard, thread))?.tx ?? foreign(shard, thread);
      const waiter = name(w);
      const holder = name(h);
      edges.push({ shard, waiter, holder });
      if (ours.has(w)) {
        const list = blocked.get(waiter) ?? [];
        if (!list.some((x) => x.shard === shard)) list.push({ shard, thread: w });
        blocked.set(waiter, list);
      }
      for (const [tx, thread] of [[waiter, w], [holder, h]] as const) {
        if (facts[tx] !== undefined) continue;
        // Our own transactions' facts are fresh; another node's are as it last published them (never used to interrupt).
        const f = this.opts.factsOf(tx) ?? (ours.has(thread) ? undefined : peerNames.get(sessionKey(shard, thread))?.facts);
        if (f !== undefined) facts[tx] = f;
      }
    }
    if (edges.length > 0) this.last = { edges, facts };
    const victims = edges.length === 0 ? [] : chooseVictims({ edges, facts });
    const interrupted: Victim[] = [];
    for (const v of victims) {
      // Another node's victim: its own detector, which knows its facts fresh, interrupts it.
      if (this.opts.factsOf(v.tx) === undefined) continue;
      let any = false;
      for (const b of blocked.get(v.tx) ?? []) {
        const pool = this.pools.get(b.shard)!;
        const run = (sql: string): Promise<QueryOutcome<unknown>> => pool.run(sql);
        if (await this.opts.xa.interruptExec(v.tx, b.shard, b.thread, run)) any = true;
      }
      if (!any) continue;
      interrupted.push(v);
      this.stats.victims++;
      this.opts.metrics?.deadlocks.inc();
      this.opts.metrics?.deadlockCycleLength.observe(v.cycle.length);
      this.onVictim?.(v, performance.now());
    }
    this.stats.ticks++;
    this.stats.last_tick_ms = performance.now() - t0;
    return interrupted;
  }

  /** What was last published (JSON, without its time) and when: unchanged content is republished only as it ages. */
  private published: { body: string; at: number } | null = null;

  /**
   * With other nodes: publishes this node's sessions that appear in `waits`
   * and, when a session is unknown here, reads the others'. Returns the other
   * nodes' sessions by sessionKey (empty without peers or on an etcd error).
   */
  private async exchange(waits: ReadonlyArray<{ shard: ShardId; w: number; h: number }>, oursOf: ReadonlyMap<ShardId, ReadonlyMap<number, TxId>>): Promise<Map<string, PeerSession>> {
    const named = new Map<string, PeerSession>();
    const peers = this.opts.peers;
    if (peers === undefined || !peers.active()) return named;
    const mine: PeerSession[] = [];
    const seen = new Set<string>();
    let unknown = false;
    for (const { shard, w, h } of waits) {
      const ours = oursOf.get(shard)!;
      for (const thread of [w, h]) {
        const tx = ours.get(thread);
        if (tx === undefined) {
          unknown = true;
          continue;
        }
        const key = sessionKey(shard, thread);
        if (seen.has(key) || mine.length >= PEER_SESSIONS_MAX) continue;
        seen.add(key);
        const facts = this.opts.factsOf(tx);
        mine.push(facts === undefined ? { shard, thread, tx } : { shard, thread, tx, facts });
      }
    }
    try {
      const body = JSON.stringify(mine);
      const now = Date.now();
      const stale = this.published === null || now - this.published.at >= PEER_FRESH_MS / 2;
      if ((mine.length > 0 || this.published !== null) && (this.published?.body !== body || (mine.length > 0 && stale))) {
        await peers.publish(mine);
        this.published = mine.length === 0 ? null : { body, at: now };
      }
      if (unknown) {
        for (const p of await peers.read()) {
          const key = sessionKey(p.shard, p.thread);
          if (oursOf.get(p.shard)?.has(p.thread) === true) continue; // our own session: a peer's entry about it is stale
          named.set(key, p);
        }
        this.stats.peer_sessions += named.size;
      }
    } catch {
      this.stats.peer_errors++;
    }
    return named;
  }
}

const sessionKey = (shard: ShardId, thread: number): string => `${shard}#${thread}`;

/** Where the nodes' entries live under the etcd prefix (a forgotten node's is deleted with it: runtime/failover.ts). */
export const DEADLOCK_PREFIX = "deadlock/";

/** One published entry: `{ at, sessions }` under `<prefix>deadlock/<node>`. */
interface PeerEntry {
  at: number;
  sessions: PeerSession[];
}

/**
 * The exchange through etcd: `<prefix>deadlock/<node>` holds this node's
 * sessions and the wall-clock time it wrote them; a node reads every other
 * node's entry younger than PEER_FRESH_MS (an entry of a node that stopped
 * ages out; a stopped node's entry is deleted by stop()).
 */
export class EtcdPeerSessions implements PeerSessions {
  private readonly ns: Namespace;

  constructor(
    client: Etcd3,
    base: string,
    private readonly node: string,
    private readonly others: () => readonly string[] | null,
    private readonly timeout_ms: number,
  ) {
    this.ns = client.namespace(`${base}${DEADLOCK_PREFIX}`);
  }

  active(): boolean {
    return (this.others()?.length ?? 0) > 0;
  }

  slot(): { index: number; count: number } {
    const members = [...new Set([this.node, ...(this.others() ?? [])])].sort();
    return { index: members.indexOf(this.node), count: members.length };
  }

  async publish(sessions: readonly PeerSession[]): Promise<void> {
    if (sessions.length === 0) await this.ns.delete().key(this.node).options({ deadline: this.deadline() });
    else await this.ns.put(this.node).value(JSON.stringify({ at: Date.now(), sessions: [...sessions] } satisfies PeerEntry)).options({ deadline: this.deadline() });
  }

  async read(): Promise<PeerSession[]> {
    const all = await this.ns.getAll().options({ deadline: this.deadline() }).strings();
    const now = Date.now();
    const out: PeerSession[] = [];
    for (const [node, raw] of Object.entries(all)) {
      if (node === this.node) continue;
      const entry = parsePeerEntry(raw);
      if (entry === null || Math.abs(now - entry.at) > PEER_FRESH_MS) continue;
      out.push(...entry.sessions.slice(0, PEER_SESSIONS_MAX));
    }
    return out;
  }

  private deadline(): Date {
    return new Date(Date.now() + this.timeout_ms);
  }
}

/** A published entry, checked field by field (another node wrote it: null when it is not one). */
export function parsePeerEntry(raw: string): PeerEntry | null {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const { at, sessions } = v as { at?: unknown; sessions?: unknown };
  if (typeof at !== "number" || !Number.isFinite(at) || !Array.isArray(sessions)) return null;
  const out: PeerSession[] = [];
  for (const x of sessions) {
    if (typeof x !== "object" || x === null) return null;
    const { shard, thread, tx, facts } = x as Record<string, unknown>;
    if (typeof shard !== "string" || typeof tx !== "string" || typeof thread !== "number" || !Number.isSafeInteger(thread)) return null;
    if (facts === undefined) out.push({ shard, thread, tx });
    else {
      const f = facts as Record<string, unknown>;
      if (typeof f !== "object" || f === null || typeof f.decided !== "boolean" || typeof f.preparedEverywhere !== "boolean") return null;
      out.push({ shard, thread, tx, facts: { decided: f.decided, preparedEverywhere: f.preparedEverywhere } });
    }
  }
  return { at, sessions: out };
}
