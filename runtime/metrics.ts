/**
 * Prometheus metrics of one server (docs/operations.md, "Metrics"). Each
 * server has its own registry, so several servers can live in one process
 * (tests) without their counts mixing.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Seconds; dense around the 1-10 ms a transfer takes here, up to the 10 s timeouts. */
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Seconds; a takeover waits out a lease of seconds, settling may take a few resolver scans. */
const FAILOVER_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120];

/** Writes or statements per batch, up to the largest batch_max (64). */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** Label pairs whose child metric a `Children` keeps (routes, codes, protocols, phases: a few dozen in practice). */
const CHILDREN_MAX = 512;

/**
 * A metric's children by their two label values, each looked up once: prom-client's `inc({...})` and
 * `observe({...}, v)` validate and hash the labels object on every call, on the transfer's path. Past
 * CHILDREN_MAX pairs a child is looked up every time and not kept (bounded).
 */
export class Children<C> {
  private readonly kept = new Map<string, C>();
  constructor(private readonly lookup: (a: string, b: string) => C) {}
  of(a: string, b: string): C {
    const k = `${a}\u0000${b}`;
    let c = this.kept.get(k);
    if (c === undefined) {
      c = this.lookup(a, b);
      if (this.kept.size < CHILDREN_MAX) this.kept.set(k, c);
    }
    return c;
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly transactions = new Counter({
    name: "speccommit_transactions_total",
    help: "Transactions answered, by protocol and outcome (committed, aborted, in_doubt).",
    labelNames: ["protocol", "outcome"] as const,
    registers: [this.registry],
  });
  readonly aborts = new Counter({
    name: "speccommit_aborts_total",
    help: "Aborted transactions by protocol and reason.",
    labelNames: ["protocol", "reason"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "speccommit_transaction_duration_seconds",
    help: "From request to the coordinator's reply, by protocol and outcome.",
    labelNames: ["protocol", "outcome"] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly phase = new Histogram({
    name: "speccommit_phase_duration_seconds",
    help: "Per protocol phase: exec (XA START..END), prepare, log (decision or STAGING write), commit (XA COMMIT of every branch), apply (speculative local transactions).",
    labelNames: ["protocol", "phase"] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly deadlocks = new Counter({
    name: "speccommit_deadlocks_total",
    help: "Cross-shard deadlocks broken by the detector: victims whose blocked statement it interrupted (each answers aborted, reason deadlock).",
    registers: [this.registry],
  });
  readonly deadlockCycleLength = new Histogram({
    name: "speccommit_deadlock_cycle_length",
    help: "Transactions in the wait-for cycle each victim broke.",
    buckets: [2, 3, 4, 5, 6, 8, 12, 16],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: "speccommit_transactions_in_flight",
    help: "Coordinator instances running (from request until the coordinator is done, commit phase included).",
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: "speccommit_transactions_rejected_total",
    help: "Transfers refused before starting, by reason (overload, shutdown).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly shardErrors = new Counter({
    name: "speccommit_shard_errors_total",
    help: "Failed shard statements by shard and MySQL error number (or client error code).",
    labelNames: ["shard", "code"] as const,
    registers: [this.registry],
  });
  readonly concludes = new Counter({
    name: "speccommit_concludes_total",
    help: "Transactions an operator asked to conclude by hand (POST /admin/transactions/:id/conclude), by direction asked and result: final (already so), resolved (the resolver made it so), refused (durable state says the other), other (the resolver decided the other), in_doubt, unknown, running, unavailable.",
    labelNames: ["direction", "result"] as const,
    registers: [this.registry],
  });
  readonly resolverActions = new Counter({
    name: "speccommit_resolver_actions_total",
    help:
      "What the resolver asked for: commit, rollback, presume_abort (ABORT record), forget (record deleted), fence (KILL of a STAGING connection), staging_commit / staging_abort (a STAGING transaction decided), tombstone, compensate, release, record_spec_* (speculation records).",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });
  readonly takeovers = new Counter({
    name: "speccommit_takeovers_total",
    help: "Coordinator nodes this node took over (their lease expired; it won the claim owners/<node> and runs a resolver over their namespace), by the node taken over.",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  readonly takeoverSeconds = new Histogram({
    name: "speccommit_takeover_seconds",
    help: "From a node's lease seen expired (its alive key gone, within one poll) to this node owning it (claim won, resolver started).",
    buckets: FAILOVER_BUCKETS_S,
    registers: [this.registry],
  });
  readonly settledSeconds = new Histogram({
    name: "speccommit_takeover_settled_seconds",
    help: "From a node's lease seen expired to nothing of it left in doubt (no decision, STAGING or speculative record, no prepared branch, no undo row), counted by its owner.",
    buckets: FAILOVER_BUCKETS_S,
    registers: [this.registry],
  });
  readonly sessionsKilled = new Counter({
    name: "speccommit_takeover_sessions_killed_total",
    help: "Shard sessions of a node this node took over killed to detach its prepared branches (a frozen or cut-off node keeps them attached; spec/failover/takeover.ts rule 5), by the node taken over.",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  readonly nodeInDoubtOldest = new Gauge({
    name: "speccommit_node_in_doubt_oldest_seconds",
    help: "Per node (this one and those it owns): age of its oldest record or branch in doubt, since this node first counted it (0: none).",
    labelNames: ["node"] as const,
    registers: [this.registry],
  });
  readonly violations = new Counter({
    name: "speccommit_protocol_violations_total",
    help: "Role assertions that failed (spec/kernel/role.ts: something the protocol says never happens did), by role. Any is a bug.",
    labelNames: ["role"] as const,
    registers: [this.registry],
  });
  readonly resolverScans = new Counter({
    name: "speccommit_resolver_scans_total",
    help: "Resolver scans finished, by result (complete: the log and every shard answered; partial otherwise).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly txlogWrite = new Histogram({
    name: "speccommit_txlog_write_duration_seconds",
    help: "Transaction log writes (etcd), by operation and result.",
    labelNames: ["op", "result"] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly txlogBatch = new Histogram({
    name: "speccommit_txlog_batch_writes",
    help: "Log writes per etcd transaction sent (group commit; 1: a write alone).",
    buckets: BATCH_SIZE_BUCKETS,
    registers: [this.registry],
  });
  readonly shardBatch = new Histogram({
    name: "speccommit_shard_batch_size",
    help: "Deferred shard work per batch (group commit), by shard and work: retire (speculative releases and compensations per round trip), stamp (two-phase branches' commit-timestamp stamps per UPDATE); work sent alone (batch_max 1) is not counted.",
    labelNames: ["shard", "work"] as const,
    buckets: BATCH_SIZE_BUCKETS,
    registers: [this.registry],
  });
  readonly http = new Counter({
    name: "speccommit_http_requests_total",
    help: "HTTP requests by route and status code.",
    labelNames: ["route", "code"] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: "speccommit_http_auth_failures_total",
    help: "Requests refused by authentication or authorization, by reason: missing, malformed, invalid (no credential has the token), expired (401); scope (403).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: "speccommit_http_rate_limited_total",
    help: "Requests refused with 429 by the per-credential rate limit, by credential name.",
    labelNames: ["credential"] as const,
    registers: [this.registry],
  });
  readonly byCredential = new Counter({
    name: "speccommit_http_requests_by_credential_total",
    help: "Authenticated requests answered, by credential name, route and status code (series: at most the credentials configured x routes x codes).",
    labelNames: ["credential", "route", "code"] as const,
    registers: [this.registry],
  });

  readonly speculations = new Counter({
    name: "speccommit_speculations_total",
    help: "Speculative transactions answered, by result: hit (committed), rollback (aborted: a branch failed, was tombstoned and the applied ones compensated), in_doubt.",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly speculationHitRatio = new Gauge({
    name: "speccommit_speculation_hit_ratio",
    help: "Hits over hits plus rollbacks, since the server started (NaN before the first).",
    registers: [this.registry],
  });
  readonly compensations = new Counter({
    name: "speccommit_compensations_total",
    help: "Compensations that changed a shard (an applied speculative branch undone), by who ran them (coordinator, resolver).",
    labelNames: ["by"] as const,
    registers: [this.registry],
  });
  readonly releases = new Counter({
    name: "speccommit_releases_total",
    help: "Releases that changed a shard (a committed speculative branch's pending credits made spendable), by who ran them.",
    labelNames: ["by"] as const,
    registers: [this.registry],
  });
  readonly stagingRecoveries = new Counter({
    name: "speccommit_staging_recoveries_total",
    help: "STAGING transactions of a dead or give-up coordinator the resolver decided, by decision (commit: every branch was prepared).",
    labelNames: ["decision"] as const,
    registers: [this.registry],
  });
  readonly stagingFences = new Counter({
    name: "speccommit_staging_fences_total",
    help: "KILL CONNECTION fences the resolver sent for STAGING transactions.",
    registers: [this.registry],
  });
  /** Prepared branches and in-doubt transactions as the resolver's scans saw them (PreparedView below). */
  preparedView = new PreparedView();
  /** The transfer path's children (Children): by protocol and outcome, protocol and phase, route and code, op and result. */
  readonly transactionsOf = new Children((protocol, outcome) => this.transactions.labels(protocol, outcome));
  readonly durationOf = new Children((protocol, outcome) => this.duration.labels(protocol, outcome));
  readonly phaseOf = new Children((protocol, phase) => this.phase.labels(protocol, phase));
  readonly httpOf = new Children((route, code) => this.http.labels(route, code));
  readonly txlogWriteOf = new Children((op, result) => this.txlogWrite.labels(op, result));
  readonly preparedBranches: Gauge<"shard"> = new Gauge({
    name: "speccommit_prepared_branches",
    help: "Branches the shard held PREPARED (XA RECOVER) at the resolver's last scan that reached it, live coordinators' included.",
    labelNames: ["shard"] as const,
    registers: [this.registry],
    collect: (): void => this.preparedView.exportShards(this.preparedBranches, this.preparedOldest),
  });
  readonly preparedOldest: Gauge<"shard"> = new Gauge({
    name: "speccommit_prepared_oldest_seconds",
    help: "Age of the oldest of those branches: since its transaction started when this process ran it, otherwise since the first scan that listed it (0 when none).",
    labelNames: ["shard"] as const,
    registers: [this.registry],
    collect: (): void => this.preparedView.exportShards(this.preparedBranches, this.preparedOldest),
  });
  readonly inDoubt: Gauge = new Gauge({
    name: "speccommit_in_doubt_transactions",
    help: "Transactions with a branch prepared at the last scan and no coordinator running in this process (the resolver's to finish).",
    registers: [this.registry],
    collect: (): void => this.preparedView.exportInDoubt(this.inDoubt, this.inDoubtOldest),
  });
  readonly inDoubtOldest: Gauge = new Gauge({
    name: "speccommit_in_doubt_oldest_seconds",
    help: "Age of the oldest in-doubt transaction, measured as speccommit_prepared_oldest_seconds is (0 when none).",
    registers: [this.registry],
    collect: (): void => this.preparedView.exportInDoubt(this.inDoubt, this.inDoubtOldest),
  });
  readonly lastCompleteScan = new Gauge({
    name: "speccommit_resolver_last_complete_scan_timestamp_seconds",
    help: "Unix time at which the last complete resolver scan (the log and every shard answered) ended; 0 before the first.",
    registers: [this.registry],
  });
  readonly snapshotReads = new Counter({
    name: "speccommit_snapshot_reads_total",
    help: "Snapshot reads (GET /snapshot, GET /accounts/:shard/:id?at=) by outcome: served, bad_request (400), unavailable (503: not ready, a node gives no safe time), timeout (504), shard_error (503 after the wait).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly snapshotWait = new Histogram({
    name: "speccommit_snapshot_wait_seconds",
    help: "How long a snapshot read waited for safe time to reach its timestamp (served reads; refused ones up to their refusal).",
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  /** The last safe time across the nodes (runtime/safe-exchange.ts), null before the first. */
  private clusterSafeMs: number | null = null;
  readonly safeTimeLag = new Gauge({
    name: "speccommit_safe_time_lag_seconds",
    help: "Wall-clock now minus the physical part of the last safe time computed across the nodes (how old a snapshot at safe time is); absent before the first.",
    registers: [this.registry],
    collect: (): void => {
      if (this.clusterSafeMs !== null) this.safeTimeLag.set((Date.now() - this.clusterSafeMs) / 1000);
    },
  });

  /** A safe-time exchange cycle gave `safe_ms` (the physical ms of the safe time; null: none). */
  safeTime(safe_ms: number | null): void {
    if (safe_ms !== null) this.clusterSafeMs = safe_ms;
  }
  private specHits = 0;
  private specRollbacks = 0;

  /** A speculative transaction was answered. */
  speculation(result: "hit" | "rollback" | "in_doubt"): void {
    this.speculations.inc({ result });
    if (result === "hit") this.specHits++;
    if (result === "rollback") this.specRollbacks++;
    this.speculationHitRatio.set(this.specHits / (this.specHits + this.specRollbacks));
  }

  constructor() {
    // Unprefixed: process_* and nodejs_* are the names every Prometheus client library gives these (process_cpu_seconds_total,
    // process_resident_memory_bytes, ...), so stock dashboards and alerts find them; the job label tells servers apart.
    collectDefaultMetrics({ register: this.registry });
  }
}

/** Bound on the branches kept per shard (XA RECOVER lists what the shard holds; past it the rest is counted, not kept). */
export const PREPARED_KEPT_MAX = 10_000;

/**
 * What the resolver's XA RECOVER answers said: per shard, the prepared
 * branches of its last answer and when each was first seen (or when its
 * transaction started, if this process ran it), and which were in doubt (not
 * in the scan's `active` set: no coordinator running here). Ages are worked
 * out when /metrics is read.
 */
export class PreparedView {
  private readonly shards = new Map<string, { count: number; since: Map<string, number>; inDoubt: Set<string> }>();

  constructor(private readonly now_ms: () => number = Date.now) {}

  /**
   * A shard's XA RECOVER answered (`prepared`: the branches' transaction ids; null: the shard did not answer, the
   * last answer stands). `active`: the transactions the scan left to their live coordinators; `startedAt`: a
   * transaction's start (ms since the epoch) when this process ran it (undefined or NaN otherwise).
   */
  listed(shard: string, prepared: readonly string[] | null, active: readonly string[], startedAt: (tx: string) => number | undefined): void {
    if (prepared === null) return;
    const old = this.shards.get(shard)?.since ?? new Map<string, number>();
    const now = this.now_ms();
    const live = new Set(active);
    const since = new Map<string, number>();
    const inDoubt = new Set<string>();
    for (const tx of prepared.slice(0, PREPARED_KEPT_MAX)) {
      const started = startedAt(tx);
      since.set(tx, old.get(tx) ?? (started !== undefined && Number.isFinite(started) ? Math.min(now, started) : now));
      if (!live.has(tx)) inDoubt.add(tx);
    }
    this.shards.set(shard, { count: prepared.length, since, inDoubt });
  }

  /** When a scan first saw a prepared branch of `tx` (ms since the epoch; the transaction's start if this process ran it), if one did. */
  firstSeen(tx: string): number | undefined {
    let first: number | undefined;
    for (const s of this.shards.values()) {
      const t = s.since.get(tx);
      if (t !== undefined) first = Math.min(first ?? t, t);
    }
    return first;
  }

  exportShards(count: Gauge<"shard">, oldest: Gauge<"shard">): void {
    const now = this.now_ms();
    for (const [shard, s] of this.shards) {
      count.set({ shard }, s.count);
      oldest.set({ shard }, ageSeconds(now, s.since.values()));
    }
  }

  exportInDoubt(count: Gauge, oldest: Gauge): void {
    const since = new Map<string, number>();
    for (const s of this.shards.values()) for (const tx of s.inDoubt) since.set(tx, Math.min(since.get(tx) ?? Infinity, s.since.get(tx)!));
    count.set(since.size);
    oldest.set(ageSeconds(this.now_ms(), since.values()));
  }
}

function ageSeconds(now: number, since: Iterable<number>): number {
  let first = now;
  for (const t of since) first = Math.min(first, t);
  return (now - first) / 1000;
}
