/**
 * Safe times exchanged between coordinator nodes through etcd
 * (docs/protocols/timestamps.md, "Several nodes"; the rule: spec/time/cluster.ts).
 *
 *   <base>safe/<node>   {"node","lease","safe","covers"}: the node's safe time, tagged with its lease
 *
 * A cycle: (1) the clock advances (`now`) and this process's safe time is
 * computed (spec/time/safe.ts over its pending set, its own namespace's and
 * those of the nodes it owns); (2) it is written under safe/<node> with the
 * lease of alive/<node> and the owned nodes whose resolver has completed a
 * scan; (3) then members/, alive/, owners/ and safe/ are read at one etcd
 * revision, after that write; (4) the clock observes every published value
 * (a node's clock is never behind a value a snapshot may have been served
 * at); (5) spec/time/cluster.ts `clusterSafeTime` gives the bound.
 *
 * Why publish before reading: a snapshot is served at most at this node's
 * own published value. A node that joins (or restarts) writes members/ and
 * alive/ first, then reads every publication (`join`) and observes the
 * greatest before it commits anything: a publication it missed was written
 * after its registration, so the cycle that wrote it read the new node
 * alive with no publication of its own, and served nothing from it.
 *
 * Cycles run every `publish_ms` while other members exist (every
 * LONE_PUBLISH_MS alone) and on demand, when a read needs a newer bound
 * (coalesced: one at a time, each reader waits for one that started after
 * it asked). Every etcd call is bounded by the client's call deadline.
 */
import type { Namespace } from "etcd3";
import { formatTs, parseTs } from "../spec/time/hlc.ts";
import { clusterSafeTime, type ClusterSafe, type ClusterView, type Publication } from "../spec/time/cluster.ts";
import { safeTime } from "../spec/time/safe.ts";
import { ClockSkewError } from "./hlc.ts";
import type { CommitTimestamps } from "./timestamps.ts";
import { ALIVE_PREFIX, MEMBERS_PREFIX, OWNERS_PREFIX } from "./nodes.ts";

export const SAFE_PREFIX = "safe/";

/** Between two cycles while other members exist (the default of `publish_ms`). */
export const SAFE_PUBLISH_MS_DEFAULT = 50;
/** Between two cycles while this node is the only member. */
const LONE_PUBLISH_MS = 1_000;
/** At least this long between two cycles (readers' demands coalesce). */
const CYCLE_GAP_MS = 2;

export interface ExchangeOptions {
  /** etcd under the base prefix (etcd_prefix). */
  readonly ns: Namespace;
  readonly node: string;
  readonly ts: CommitTimestamps;
  /** The lease this node's alive key is on (null: not held). */
  readonly leaseId: () => Promise<string | null>;
  /** Dead nodes this node owns whose namespace its resolver has scanned completely. */
  readonly covers: () => readonly string[];
  readonly publish_ms?: number;
  /** Called after every cycle (metrics). */
  readonly onCycle?: (s: ExchangeState) => void;
}

export interface ExchangeState extends ClusterSafe {
  /** This node's value as published in this cycle (null: not published: not ready, or no lease). */
  readonly own: bigint | null;
  /** Why nothing can be served, when the cycle itself failed (etcd did not answer, no lease). */
  readonly error: string | null;
  /** performance.now() when the cycle started. */
  readonly started_ms: number;
}

const keyOf = (full: string, base: string, prefix: string): string | null => {
  if (full.startsWith(base + prefix)) return full.slice(base.length + prefix.length);
  if (full.startsWith(prefix)) return full.slice(prefix.length);
  return null;
};

export class SafeExchange {
  private state: ExchangeState | null = null;
  private running: Promise<ExchangeState> | null = null;
  private queued: Promise<ExchangeState> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastEnd = 0;
  readonly publish_ms: number;

  constructor(
    private readonly opts: ExchangeOptions,
    private readonly base: string,
  ) {
    this.publish_ms = opts.publish_ms ?? SAFE_PUBLISH_MS_DEFAULT;
  }

  /** The last value each node published itself (read at join and at every cycle). */
  private readonly lastPublished = new Map<string, bigint>();

  /** The last safe time `node` published (-1 when none was read): a record of its below it was dropped (runtime/timestamps.ts). */
  publishedOf(node: string): bigint {
    return this.lastPublished.get(node) ?? -1n;
  }

  /** The bound of the last cycle (null before the first). */
  latest(): ExchangeState | null {
    return this.state;
  }

  /** A cycle that starts after this call (coalesced with other callers'). */
  fresh(): Promise<ExchangeState> {
    if (this.running === null) return (this.running = this.run());
    this.queued ??= this.running.then(
      () => this.fresh0(),
      () => this.fresh0(),
    );
    return this.queued;
  }

  private fresh0(): Promise<ExchangeState> {
    this.queued = null;
    return this.fresh();
  }

  private async run(): Promise<ExchangeState> {
    try {
      const gap = CYCLE_GAP_MS - (performance.now() - this.lastEnd);
      if (gap > 0) await new Promise((r) => setTimeout(r, gap));
      const s = await this.cycle();
      this.state = s;
      this.opts.onCycle?.(s);
      return s;
    } finally {
      this.lastEnd = performance.now();
      this.running = null;
    }
  }

  /**
   * Before this node commits anything (after it registered): every published value observed, so that its commit
   * timestamps are above every snapshot served so far.
   */
  async join(): Promise<void> {
    const r = await this.opts.ns.getAll().prefix(SAFE_PREFIX).exec();
    for (const kv of r.kvs) {
      const p = parsePublication(kv.value.toString("utf8"));
      if (p === null) continue;
      this.opts.ts.clock.observeTrusted(p.safe);
      this.note(p);
    }
  }

  private note(p: Publication): void {
    if (p.safe > (this.lastPublished.get(p.node) ?? -1n)) this.lastPublished.set(p.node, p.safe);
  }

  start(): void {
    const again = () => {
      if (this.stopped) return;
      const others = (this.state?.contributions.length ?? 0) > 1;
      this.timer = setTimeout(
        () => {
          void this.fresh()
            .catch(() => undefined)
            .finally(again);
        },
        others ? this.publish_ms : LONE_PUBLISH_MS,
      ).unref();
    };
    void this.fresh()
      .catch(() => undefined)
      .finally(again);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private async cycle(): Promise<ExchangeState> {
    const started_ms = performance.now();
    const ts = this.opts.ts;
    const fail = (error: string): ExchangeState => ({ safe: null, contributions: this.state?.contributions ?? [], own: null, error, started_ms });
    const lease = await this.opts.leaseId();
    if (lease === null) return fail(`node ${this.opts.node} holds no lease in etcd (its alive key): it cannot publish its safe time`);
    const covers = [...this.opts.covers()].sort();
    ts.clock.now();
    const own = safeTime(ts.view());
    try {
      if (own !== null) {
        // Released before the write: a snapshot may be served at it as soon as it lands (runtime/timestamps.ts landing).
        ts.release(own);
        await this.opts.ns.put(SAFE_PREFIX + this.opts.node).value(JSON.stringify({ node: this.opts.node, lease, safe: formatTs(own), covers }));
      }
      const safe = await this.opts.ns.getAll().prefix(SAFE_PREFIX).exec();
      const rev = safe.header.revision;
      const [members, alive, owners] = await Promise.all([
        this.opts.ns.getAll().prefix(MEMBERS_PREFIX).revision(rev).exec(),
        this.opts.ns.getAll().prefix(ALIVE_PREFIX).revision(rev).exec(),
        this.opts.ns.getAll().prefix(OWNERS_PREFIX).revision(rev).exec(),
      ]);
      const published = new Map<string, Publication>();
      for (const kv of safe.kvs) {
        const p = parsePublication(kv.value.toString("utf8"));
        if (p === null) continue;
        published.set(p.node, p);
        this.note(p);
        try {
          ts.clock.observe(p.safe);
        } catch (e) {
          // A peer's clock beyond the skew bound: not observed (its value still bounds safe time).
          if (!(e instanceof ClockSkewError)) throw e;
        }
      }
      const view: ClusterView = {
        members: members.kvs.map((kv) => keyOf(kv.key.toString("utf8"), this.base, MEMBERS_PREFIX)).filter((k): k is string => k !== null),
        alive: new Map(
          alive.kvs.flatMap((kv) => {
            const n = keyOf(kv.key.toString("utf8"), this.base, ALIVE_PREFIX);
            return n === null ? [] : [[n, String(kv.lease)] as const];
          }),
        ),
        owners: new Map(
          owners.kvs.flatMap((kv) => {
            const n = keyOf(kv.key.toString("utf8"), this.base, OWNERS_PREFIX);
            try {
              const o = (JSON.parse(kv.value.toString("utf8")) as { owner?: unknown }).owner;
              return n === null || typeof o !== "string" ? [] : [[n, o] as const];
            } catch {
              return [];
            }
          }),
        ),
        published,
      };
      return { ...clusterSafeTime(view, this.opts.node), own, error: null, started_ms };
    } catch (e) {
      return fail(`etcd did not answer the safe-time exchange: ${(e as Error).message}`);
    }
  }
}

function parsePublication(text: string): Publication | null {
  try {
    const o = JSON.parse(text) as { node?: unknown; lease?: unknown; safe?: unknown; covers?: unknown };
    const safe = typeof o.safe === "string" ? parseTs(o.safe) : null;
    if (typeof o.node !== "string" || typeof o.lease !== "string" || safe === null || !Array.isArray(o.covers)) return null;
    return { node: o.node, lease: o.lease, safe, covers: o.covers.filter((c): c is string => typeof c === "string") };
  } catch {
    return null;
  }
}
