/**
 * One coordinator node among several (docs/architecture.md, "Several
 * coordinators"; the keys: runtime/nodes.ts).
 *
 * - Liveness: the node keeps an etcd lease of lease_ttl_ms alive and holds
 *   `<base>alive/<node>` on it; `<base>members/<node>` (no lease) says the
 *   node exists, so that survivors know whom to look for once its lease is
 *   gone.
 * - Takeover: for every other member N, one instance of the takeover role
 *   (spec/failover/takeover.ts), run by the interpreter like every other
 *   role, its log writes (the claim `owners/N`, its release) through the
 *   txlog port. Every poll (a quarter of the lease TTL, at most 500 ms) it is
 *   given every member's lease state, while this node's own lease is held
 *   (a node that lost its own lease observes nothing: it may be the one cut
 *   off). While the role says `resolving`, a process resolver runs over N's
 *   namespace and N's xids (a `TakeoverResolver`, made by the server): its
 *   first step takes a new epoch of N, the fence.
 *
 * The runtime decides nothing here: when to claim, to hold and to give back
 * is the role's; etcd says whether a lease expired (it deletes the key).
 */
import type { Etcd3, Lease, Namespace } from "etcd3";
import { detachBeforeSettle, resolving, takeover, type TakeoverInput, type TakeoverState } from "../spec/failover/takeover.ts";
import type { Effect, ShardId, TxId } from "../spec/kernel/effects.ts";
import type { ShardPool } from "./adapters/mysql-pool.ts";
import { Detacher, fenceNode, type DetachTarget } from "./detach.ts";
import { DEADLOCK_PREFIX } from "./deadlock.ts";
import type { Role } from "../spec/kernel/role.ts";
import { RoleInstance, type Adapters } from "./interpreter.ts";
import type { Metrics } from "./metrics.ts";
import { ALIVE_PREFIX, MEMBERS_PREFIX, OWNERS_PREFIX } from "./nodes.ts";
import { mayForgetOwned, mayForgetSelf } from "../spec/failover/forget.ts";

/** A process resolver over another node's namespace, run while this node owns it. */
export interface TakeoverResolver {
  /** The epoch it took of the node (null before: the fence is not up yet). */
  readonly epoch: number | null;
  stop(): void;
}

/** What is in doubt in a node's namespace now: one id per record or branch (see the server's inDoubtOf). */
export type InDoubtItems = readonly string[];

export interface FailoverOptions {
  readonly client: Etcd3;
  /** The base prefix (etcd_prefix). */
  readonly base: string;
  readonly node: string;
  readonly lease_ttl_ms: number;
  /** The adapters the takeover roles run on: `log` is a txlog over the base prefix (owners/ lives there). */
  readonly adapters: Adapters;
  /** Starts a resolver over node N's namespace (this node now owns N). */
  readonly startResolver: (node: string) => TakeoverResolver;
  /** What is in doubt of node N (null: the log or a shard did not answer). */
  readonly inDoubtOf: (node: string) => Promise<InDoubtItems | null>;
  /** How often the in-doubt items of this node and of the nodes it owns are counted (the resolver interval). */
  readonly audit_interval_ms: number;
  readonly metrics?: Metrics;
  /** The shards' pools, to detach a taken-over node's prepared branches from its sessions (beforeSettle); absent: nothing is detached. */
  readonly poolOf?: (shard: ShardId) => ShardPool | undefined;
}

interface Owned {
  readonly resolver: TakeoverResolver;
  /** Clock ms when this node first saw N's lease gone (the lease's expiry, within one poll). */
  readonly expired_at_ms: number;
  settled: boolean;
}

export interface NodeStatus {
  node: string;
  alive: boolean;
  /** Seconds left on its lease (null: no lease, or etcd did not say). */
  lease_ttl_left_s: number | null;
  url: string | null;
  /** The survivor holding it (owners/<node>), null: nobody. */
  owner: string | null;
  /** Records and branches of it in doubt (null: not counted, the log or a shard did not answer). */
  in_doubt: number | null;
}

const POLL_MS_MAX = 500;


export class Failover {
  private readonly ns: Namespace;
  private lease: Lease | null = null;
  /** This node's lease is held (its alive key was written on it and it was not lost since). */
  private leaseHeld = false;
  private readonly roles = new Map<string, RoleInstance<TakeoverState, TakeoverInput>>();
  private readonly owned = new Map<string, Owned>();
  /** Clock ms of the first poll that saw each node's lease gone (cleared when seen alive). */
  private readonly goneSince = new Map<string, number>();
  /** Per node: when each in-doubt item was first seen (for the oldest in-doubt age). */
  private readonly firstSeen = new Map<string, Map<string, number>>();
  private pollTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private url: string | null = null;
  private auditTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private polling = false;
  readonly poll_ms: number;

  /** Every member at the last poll (members/ keys); null until a poll answered. */
  private members: string[] | null = null;
  /** Sessions of taken-over nodes killed to detach their prepared branches (spec/failover/takeover.ts rule 5), by node. */
  readonly sessionsKilled = new Map<string, number>();

  constructor(private readonly opts: FailoverOptions) {
    this.ns = opts.client.namespace(opts.base);
    this.poll_ms = Math.min(POLL_MS_MAX, Math.floor(opts.lease_ttl_ms / 4));
  }

  /** The nodes this node resolves now (it owns them). */
  get owning(): string[] {
    return [...this.owned.keys()];
  }

  /** The resolver this node runs over `node`'s namespace, when it owns it. */
  /** The other members (nodes registered under members/, alive or not) at the last poll; null before the first poll answered. */
  otherMembers(): readonly string[] | null {
    return this.members === null ? null : this.members.filter((n) => n !== this.opts.node);
  }

  /** Whether this node may kill `node`'s shard sessions now, holding `epoch` of it (rule 5, spec/failover/takeover.ts detachBeforeSettle). */
  detaching(node: string, epoch: number | null): boolean {
    return detachBeforeSettle(this.roles.get(node)?.st, epoch);
  }

  /**
   * The hook the resolver over `node`'s namespace runs on every XA RECOVER
   * (runtime/nodes.ts NodeXa's beforeSettle): when the spec's rule says so
   * (spec/failover/takeover.ts `detachBeforeSettle`: owning `node`, its
   * fence, `fence()`, durable), the listed branches are detached from the
   * node's live sessions first (runtime/detach.ts); false while one could
   * not be. Each killed session is counted
   * (speccommit_takeover_sessions_killed_total) and logged.
   */
  beforeSettle(node: string, fence: () => number | null, on: DetachTarget = "history"): (shard: ShardId, txs: readonly TxId[]) => Promise<boolean> {
    const poolOf = this.opts.poolOf;
    if (poolOf === undefined) return async () => true;
    const what = on === "history" ? "its prepared branch" : "a lock on its undo row of";
    const detacher = new Detacher(
      poolOf,
      (shard, d) => {
        this.sessionsKilled.set(node, (this.sessionsKilled.get(node) ?? 0) + 1);
        this.opts.metrics?.sessionsKilled.inc({ node });
        console.log(`speccommit: node ${this.opts.node}: killed node ${node}'s session ${d.thread} on ${shard}, which held ${what} ${d.tx} (fence: epoch ${fence()})`);
      },
      on,
    );
    return async (shard, txs) => {
      const epoch = fence();
      if (epoch === null || !detachBeforeSettle(this.roles.get(node)?.st, epoch)) return true;
      const pool = poolOf(shard);
      if (on === "history" && pool !== undefined) {
        // The node fence first (spec/failover/takeover.ts rule 5): no one-phase branch of its old epoch commits here any more.
        const f = await fenceNode(pool, node, epoch, true);
        if (f.outcome === "failed") {
          console.error(`speccommit: node ${this.opts.node}: node ${node} not fenced on ${shard} yet: ${f.why}`);
          return false;
        }
        for (const thread of f.killed) {
          this.sessionsKilled.set(node, (this.sessionsKilled.get(node) ?? 0) + 1);
          this.opts.metrics?.sessionsKilled.inc({ node });
          console.log(`speccommit: node ${this.opts.node}: killed node ${node}'s session ${thread} on ${shard}, which held its fence row (a one-phase branch; fence: epoch ${epoch})`);
        }
      }
      if (txs.length === 0) return true;
      const r = await detacher.detach(shard, txs);
      for (const f of r.results) if (f.outcome === "failed") console.error(`speccommit: node ${this.opts.node}: node ${node}'s ${on === "history" ? "branch" : "undo row of"} ${f.tx} on ${shard} not detached yet: ${f.why}`);
      return r.complete;
    };
  }

  resolverOf(node: string): TakeoverResolver | undefined {
    return this.owned.get(node)?.resolver;
  }

  /**
   * Registers the node and its lease. A live lease of the same name (another
   * process with this --node, or this node's previous incarnation whose lease
   * has not expired yet) is waited out, up to the TTL and a second; past that
   * the start fails: two processes must never run as one node.
   */
  async start(): Promise<void> {
    try {
      await this.register();
    } catch (e) {
      // etcd did not answer: the node serves (its coordinators wait for an epoch anyway) and registers once etcd is back.
      console.error(`speccommit: node ${this.opts.node}: cannot register in etcd yet (${(e as Error).message}); retrying`);
      const retry = () => {
        if (this.stopped) return;
        this.register().then(
          () => console.log(`speccommit: node ${this.opts.node}: registered, lease held`),
          () => {
            this.retryTimer = setTimeout(retry, this.opts.lease_ttl_ms).unref();
          },
        );
      };
      this.retryTimer = setTimeout(retry, this.poll_ms).unref();
    }
    const again = () => {
      void this.poll().finally(() => {
        if (!this.stopped) this.pollTimer = setTimeout(again, this.poll_ms).unref();
      });
    };
    again();
    const audit = () => {
      void this.audit().finally(() => {
        if (!this.stopped) this.auditTimer = setTimeout(audit, this.opts.audit_interval_ms).unref();
      });
    };
    this.auditTimer = setTimeout(audit, this.opts.audit_interval_ms).unref();
  }

  /**
   * Writes members/<node> and alive/<node> on a new lease. A live lease of
   * this name already there is a previous incarnation that died within the
   * TTL, or another process run with this --node: the key is taken over at
   * once (as before nodes existed, two processes of one name fence each
   * other through the epoch: safe, but neither keeps its transactions), with a
   * warning.
   */
  private async register(): Promise<void> {
    const aliveKey = ALIVE_PREFIX + this.opts.node;
    if ((await this.ns.get(aliveKey).string()) !== null) {
      console.error(`speccommit: warning: node ${this.opts.node}'s previous lease is still live (${this.opts.base}${aliveKey}): its previous process died less than lease_ttl_ms ago, or another process runs with --node ${this.opts.node} (give each coordinator its own name)`);
    }
    await this.ns.put(MEMBERS_PREFIX + this.opts.node).value(JSON.stringify({ node: this.opts.node, url: this.url }));
    await this.grantLease();
  }

  /** Writes the node's URL into members/<node> (shown by /admin/nodes), once it listens. */
  async announce(url: string): Promise<void> {
    this.url = url;
    await this.ns
      .put(MEMBERS_PREFIX + this.opts.node)
      .value(JSON.stringify({ node: this.opts.node, url }))
      .catch((e: Error) => console.error(`speccommit: node ${this.opts.node}: members/${this.opts.node} not updated: ${e.message}`));
  }

  private async grantLease(): Promise<void> {
    const ttl_s = Math.ceil(this.opts.lease_ttl_ms / 1000);
    const lease = this.ns.lease(ttl_s, { autoKeepAlive: true });
    this.lease = lease;
    lease.on("lost", (e: Error) => {
      if (this.lease !== lease || this.stopped) return;
      this.leaseHeld = false;
      console.error(`speccommit: node ${this.opts.node}: lease lost (${e.message}); taking a new one`);
      this.lease = null;
      const regrant = () => {
        if (this.stopped || this.lease !== null) return;
        this.grantLease().catch((err: Error) => {
          console.error(`speccommit: node ${this.opts.node}: lease: ${err.message}`);
          this.lease = null;
          setTimeout(regrant, this.poll_ms).unref();
        });
      };
      setTimeout(regrant, this.poll_ms).unref();
    });
    await lease.put(ALIVE_PREFIX + this.opts.node).value(JSON.stringify({ node: this.opts.node, ttl_ms: this.opts.lease_ttl_ms }));
    // A node forgotten while it hung (spec/failover/forget.ts) is a member again: after its lease (alive/ first, so
    // that an owner's conditional forget either sees the lease or ran before both writes).
    await this.ns.put(MEMBERS_PREFIX + this.opts.node).value(JSON.stringify({ node: this.opts.node, url: this.url }));
    if (this.lease === lease) this.leaseHeld = true;
  }

  /**
   * For tests: stops keeping the lease alive without revoking it, as a
   * process that hangs would; the lease expires after its TTL.
   */
  abandonLease(): void {
    const lease = this.lease;
    this.lease = null;
    this.leaseHeld = false;
    lease?.release();
  }

  private role(node: string): RoleInstance<TakeoverState, TakeoverInput> {
    let r = this.roles.get(node);
    if (r !== undefined) return r;
    const role = takeover(this.opts.node, node) as unknown as Role<TakeoverState, TakeoverInput, Effect>;
    r = new RoleInstance<TakeoverState, TakeoverInput>(role, {
      actor: `takeover-${node}`,
      adapters: this.opts.adapters,
      hooks: {
        onStep: (st) => this.follow(node, st),
        onViolation: (e) => {
          console.error(`protocol violation in the takeover of ${node}: ${e.message}`);
          this.opts.metrics?.violations.inc({ role: "takeover" });
          // A crash of the role resets it (spec/failover/takeover.ts): the claim lives in the txlog, and the next observation finds it.
          this.roles.delete(node);
        },
      },
    });
    this.roles.set(node, r);
    return r;
  }

  /** Starts or stops the resolver over `node` as the role says. */
  private follow(node: string, st: TakeoverState): void {
    const own = this.owned.get(node);
    if (resolving(st) && own === undefined && !this.stopped) {
      const now = performance.now();
      const expired_at_ms = this.goneSince.get(node) ?? now;
      const resolver = this.opts.startResolver(node);
      this.owned.set(node, { resolver, expired_at_ms, settled: false });
      console.log(`speccommit: node ${this.opts.node} took over node ${node} (${Math.round(now - expired_at_ms)} ms after its lease was seen gone)`);
      this.opts.metrics?.takeovers.inc({ node });
      this.opts.metrics?.takeoverSeconds.observe((now - expired_at_ms) / 1000);
    } else if (!resolving(st) && own !== undefined) {
      own.resolver.stop();
      this.owned.delete(node);
      this.firstSeen.delete(node);
      this.opts.metrics?.nodeInDoubtOldest.remove({ node });
      console.log(`speccommit: node ${this.opts.node} stopped resolving node ${node} (${st.alive === true ? "it is alive again" : "the claim is gone"})`);
    }
  }

  /** One observation round: every member's lease state to every takeover role. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const [members, alive] = await Promise.all([this.ns.getAll().prefix(MEMBERS_PREFIX).keys(), this.ns.getAll().prefix(ALIVE_PREFIX).keys()]);
      const aliveSet = new Set(alive.map((k) => k.slice(ALIVE_PREFIX.length)));
      const nodes = members.map((k) => k.slice(MEMBERS_PREFIX.length));
      this.members = nodes;
      const now = performance.now();
      for (const n of nodes) {
        if (aliveSet.has(n)) this.goneSince.delete(n);
        else if (!this.goneSince.has(n)) this.goneSince.set(n, now);
      }
      // A node forgotten (spec/failover/forget.ts: by its owner once settled, or by itself on a clean stop): no more watching.
      const memberSet = new Set(nodes);
      for (const n of [...this.roles.keys()]) if (!memberSet.has(n)) this.dropNode(n);
      // Our own lease not held (lost, or not yet written): we may be the one cut off; claim nothing.
      if (!this.leaseHeld || !aliveSet.has(this.opts.node)) return;
      for (const n of nodes) {
        if (n === this.opts.node) continue;
        const r = this.role(n);
        for (const o of nodes) if (o !== this.opts.node) r.deliver({ t: "lease", node: o, alive: aliveSet.has(o) });
      }
    } catch (e) {
      // etcd did not answer: no observation this round.
      void e;
    } finally {
      this.polling = false;
    }
  }

  /** Counts what is in doubt of this node and of the nodes it owns: the oldest item's age, and the settled time of a takeover. */
  private async audit(): Promise<void> {
    for (const node of [this.opts.node, ...this.owned.keys()]) {
      const items = await this.opts.inDoubtOf(node);
      if (items === null) continue;
      const now = performance.now();
      const seen = this.firstSeen.get(node) ?? new Map<string, number>();
      const next = new Map<string, number>();
      for (const i of items) next.set(i, seen.get(i) ?? now);
      this.firstSeen.set(node, next);
      const oldest = Math.min(now, ...next.values());
      this.opts.metrics?.nodeInDoubtOldest.set({ node }, (now - oldest) / 1000);
      const own = this.owned.get(node);
      if (own !== undefined && !own.settled && own.resolver.epoch !== null && items.length === 0) {
        own.settled = true;
        console.log(`speccommit: node ${this.opts.node}: node ${node}'s transactions are settled (${Math.round(now - own.expired_at_ms)} ms after its lease was seen gone)`);
        this.opts.metrics?.settledSeconds.observe((now - own.expired_at_ms) / 1000);
      }
      const st = this.roles.get(node)?.st;
      if (own !== undefined && st !== undefined && mayForgetOwned({ owning: resolving(st), fenced: own.resolver.epoch !== null, inDoubt: items.length })) await this.forget(node, st.version);
    }
  }

  /**
   * Forgets dead node `node` (spec/failover/forget.ts): one etcd transaction, only while its lease is still gone and
   * the claim is still ours at `claimVersion`, deletes members/<node>, the claim owners/<node> and its deadlock
   * sessions deadlock/<node>; then stops its resolver and role here. Counted in the log.
   */
  private async forget(node: string, claimVersion: number): Promise<void> {
    try {
      const r = await this.ns
        .if(ALIVE_PREFIX + node, "Version", "==", 0)
        // The claim is still ours, at the version our role holds (another survivor's newer claim is not deleted).
        .and(OWNERS_PREFIX + node, "Version", "==", claimVersion)
        // Its deadlock detector's sessions (runtime/deadlock.ts EtcdPeerSessions) too: a node killed -9 left them.
        .then(this.ns.delete().key(MEMBERS_PREFIX + node), this.ns.delete().key(OWNERS_PREFIX + node), this.ns.delete().key(DEADLOCK_PREFIX + node))
        .commit();
      if (!r.succeeded) return;
      console.log(`speccommit: node ${this.opts.node}: node ${node} settled and still gone: forgotten (members/${node}, owners/${node} and deadlock/${node} deleted)`);
      this.dropNode(node);
    } catch (e) {
      // etcd did not answer: the next audit round tries again.
      void e;
    }
  }

  /** Stops watching `node` here: its resolver, its takeover role, what was counted of it. */
  private dropNode(node: string): void {
    const own = this.owned.get(node);
    if (own !== undefined) own.resolver.stop();
    this.owned.delete(node);
    this.roles.get(node)?.stop();
    this.roles.delete(node);
    this.goneSince.delete(node);
    this.firstSeen.delete(node);
    this.sessionsKilled.delete(node);
    this.opts.metrics?.nodeInDoubtOldest.remove({ node });
  }

  /** The etcd lease this node's alive key is on, while held (null: none); safe-time publications are tagged with it (runtime/safe-exchange.ts). */
  async leaseId(): Promise<string | null> {
    const lease = this.lease;
    if (lease === null || !this.leaseHeld) return null;
    try {
      return await lease.grant();
    } catch {
      return null;
    }
  }

  /** Every member: alive, its lease's time left, its owner, its in-doubt count. */
  async nodes(): Promise<NodeStatus[]> {
    const [members, alive, owners] = await Promise.all([
      this.ns.getAll().prefix(MEMBERS_PREFIX).strings(),
      this.ns.getAll().prefix(ALIVE_PREFIX).exec(),
      this.ns.getAll().prefix(OWNERS_PREFIX).strings(),
    ]);
    const out: NodeStatus[] = [];
    for (const [key, value] of Object.entries(members)) {
      const node = key.slice(MEMBERS_PREFIX.length);
      // (etcd3 gives a namespace's raw range answer with the full keys.)
      const kv = alive.kvs.find((k) => [ALIVE_PREFIX + node, this.opts.base + ALIVE_PREFIX + node].includes(k.key.toString("utf8")));
      let ttl: number | null = null;
      if (kv !== undefined && kv.lease !== "0") {
        try {
          ttl = Number((await this.opts.client.leaseClient.leaseTimeToLive({ ID: kv.lease, keys: false })).TTL);
        } catch {
          ttl = null;
        }
      }
      const ownerText = owners[OWNERS_PREFIX + node];
      let url: string | null = null;
      try {
        url = (JSON.parse(value) as { url?: string | null }).url ?? null;
      } catch {
        url = null;
      }
      const items = await this.opts.inDoubtOf(node).catch(() => null);
      out.push({
        node,
        alive: kv !== undefined,
        lease_ttl_left_s: ttl,
        url,
        owner: ownerText === undefined ? null : ((JSON.parse(ownerText) as { owner?: string }).owner ?? null),
        in_doubt: items === null ? null : items.length,
      });
    }
    return out;
  }

  /** Stops observing and resolving others; `revoke`: give the lease back now (a drained node), so a survivor need not wait for the TTL. */
  async stop(revoke: boolean, drained = true): Promise<void> {
    const wasStopped = this.stopped;
    this.stopped = true;
    // A clean stop (drained: no coordinator of it was cut short, whose effects could still land) with nothing of its
    // own in doubt leaves the membership (spec/failover/forget.ts); otherwise a survivor takes over what is left, as
    // after a crash.
    if (revoke && !wasStopped && this.leaseHeld) {
      const items = drained ? await this.opts.inDoubtOf(this.opts.node).catch(() => null) : null;
      if (mayForgetSelf({ drained, inDoubt: items === null ? null : items.length })) {
        await this.ns
          .delete()
          .key(MEMBERS_PREFIX + this.opts.node)
          .then(() => console.log(`speccommit: node ${this.opts.node}: nothing in doubt; left the members`))
          .catch((e: Error) => console.error(`speccommit: node ${this.opts.node}: members/${this.opts.node} not deleted (${e.message}): a survivor will find nothing to settle`));
      }
    }
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    if (this.auditTimer !== null) clearTimeout(this.auditTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    for (const [, o] of this.owned) o.resolver.stop();
    this.owned.clear();
    for (const [, r] of this.roles) r.stop();
    const lease = this.lease;
    this.lease = null;
    this.leaseHeld = false;
    if (lease === null) return;
    if (revoke) await lease.revoke().catch(() => undefined);
    else lease.release();
  }
}
