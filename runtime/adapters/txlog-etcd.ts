/**
 * The live transaction log: etcd 3 through etcd3 1.1, every key under a
 * namespace prefix (`<prefix>tx/<id>` for decision records).
 *
 * log.put is a compare-and-swap on the key's version, as spec/env/txlog.ts
 * models it: `If(Version(key) == ifVersion) Then(Put) Else(Get)`, in one etcd
 * transaction. etcd's version is 1 on creation and grows by one per put, so a
 * successful CAS leaves version ifVersion + 1. A fence (spec/kernel/effects.ts
 * EpochRecord) is one more compare in the same transaction: the epoch key
 * still has the writer's version. Records read back are decoded
 * with a Schema: a record this code did not write is an error naming the key,
 * never a guess.
 *
 * Every call carries a gRPC deadline; an error or a missed deadline is
 * UNAVAILABLE (the write may or may not have happened), as the vocabulary says.
 *
 * Batching (docs/architecture.md, "Batching": a refinement that keeps every verified
 * property): the puts and deletes asked for in one turn of the event loop
 * go to etcd as one transaction, `If(fence) Then(<one nested Txn per put>,
 * <one delete per delete>)`, so each keeps its own CAS and its own answer
 * while the batch costs one round trip and one raft entry. Writes with
 * different fences, or to the same key, never share a batch.
 *
 * Group commit (`batch_max`, `batch_wait_ms`): a batch holds at most
 * `batch_max` writes (1: no batching, one etcd transaction per write), and a
 * write may wait up to `batch_wait_ms` for others (0: only the writes of the
 * same turn of the event loop). Why per-write compares must be nested: an
 * etcd transaction's top-level compares are all-or-nothing, so with one
 * compare per put at the top, one failed CAS would fail every write of the
 * batch; nested, a failed compare runs only its own failure branch (a read
 * of its key), and the others' puts happen. The top level carries only the
 * fence, which every write of a batch shares (FENCED for all is the answer
 * each would get alone). What batching adds is that the writes of a batch
 * succeed or are lost together (one etcd transaction): the models check that
 * with `logBatch` (spec/world/txlog-answers.ts).
 */
import { Etcd3, EtcdLeaseInvalidError, type IOptions, type Namespace } from "etcd3";
import { Schema } from "effect";
import type { Fence, LogDeleteResult, LogEntry, LogListResult, LogPutResult, LogRecord } from "../../spec/kernel/effects.ts";
import { ABORT_REASONS } from "../../spec/kernel/effects.ts";
import type { TxlogStore } from "./ports.ts";

export const LogRecordSchema = Schema.Union([
  Schema.Struct({
    kind: Schema.Literal("decision"),
    decision: Schema.Literals(["commit", "abort"]),
    branches: Schema.Array(Schema.String),
    // The HLC commit timestamp, decimal (runtime/timestamps.ts).
    commit_ts: Schema.optional(Schema.String),
  }),
  Schema.Struct({ kind: Schema.Literal("epoch") }),
  // Who took a dead coordinator node over (spec/failover/takeover.ts).
  Schema.Struct({ kind: Schema.Literal("owner"), node: Schema.String, owner: Schema.String }),
  // Parallel commit's STAGING record: each branch with the connection that runs it.
  Schema.Struct({
    kind: Schema.Literal("staging"),
    branches: Schema.Array(Schema.Struct({ shard: Schema.String, conn: Schema.String })),
    commit_ts: Schema.optional(Schema.String),
  }),
  // The speculative path's record.
  Schema.Struct({
    kind: Schema.Literal("speculation"),
    state: Schema.Literals(["SPEC_EXECUTING", "SPEC_COMMITTED", "SPEC_ROLLED_BACK"]),
    branches: Schema.Array(Schema.String),
    commit_ts: Schema.optional(Schema.String),
  }),
  // An idempotency key's claim (spec/server/idempotency.ts).
  Schema.Struct({
    kind: Schema.Literal("claim"),
    tx: Schema.String,
    fingerprint: Schema.String,
    shards: Schema.Array(Schema.String),
    protocol: Schema.optional(Schema.String),
    outcome: Schema.optional(
      Schema.Union([
        Schema.Struct({ status: Schema.Literal("committed") }),
        Schema.Struct({ status: Schema.Literal("aborted"), reason: Schema.Literals(ABORT_REASONS) }),
      ]),
    ),
  }),
]);

const decodeRecord = Schema.decodeUnknownSync(LogRecordSchema);

/** Decodes a record's bytes; the error names the key and what is wrong. */
export function decodeLogRecord(key: string, bytes: string): LogRecord {
  let json: unknown;
  try {
    json = JSON.parse(bytes);
  } catch (e) {
    throw new Error(`txlog record ${key}: not JSON (${(e as Error).message})`);
  }
  // A claim written before claims were txlog records has no kind.
  if (typeof json === "object" && json !== null && !("kind" in json) && "fingerprint" in json) json = { kind: "claim", ...json };
  try {
    return decodeRecord(json, { onExcessProperty: "error" });
  } catch (e) {
    throw new Error(`txlog record ${key}: ${(e as Error).message}`);
  }
}

export interface EtcdOptions {
  /** Client URLs, e.g. http://127.0.0.1:2379. */
  readonly hosts: readonly string[];
  /** Every key of this server lives under it, e.g. "speccommit/". */
  readonly prefix: string;
  readonly call_timeout_ms: number;
  readonly dial_timeout_ms: number;
  /** TLS (https:// hosts): the CA that signed etcd's certificate, and the client certificate etcd requires. */
  readonly tls?: EtcdTls;
}

export interface EtcdTls {
  readonly ca: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

type Policy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/**
 * Calls straight through: no client-side retry and no circuit breaker. The
 * roles own retrying (bounded, and visible in traces), and etcd3's default
 * breaker would refuse every call for 5 s after three failures, keeping the
 * log "down" well after etcd restarted.
 */
const passThrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as Policy;

export function etcdClient(opts: EtcdOptions): Etcd3 {
  return new Etcd3({
    hosts: [...opts.hosts],
    ...(opts.tls !== undefined
      ? {
          credentials: {
            rootCertificate: opts.tls.ca,
            ...(opts.tls.key !== undefined ? { privateKey: opts.tls.key } : {}),
            ...(opts.tls.cert !== undefined ? { certChain: opts.tls.cert } : {}),
          },
        }
      : {}),
    dialTimeout: opts.dial_timeout_ms,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.call_timeout_ms }),
    faultHandling: { host: () => passThrough, global: passThrough },
  });
}

/** Bound on records one list returns: more means something is badly wrong, and a partial list is never safe to act on. */
export const LIST_ENTRIES_MAX = 100_000;

export interface TxlogObserver {
  /** A put or delete took this long (seconds) and ended so. */
  onWrite?(op: "put" | "delete", seconds: number, ok: boolean): void;
  /** An etcd transaction of this many log writes was sent (1: a write alone). */
  onBatch?(writes: number): void;
}

/** Writes per etcd transaction (etcd refuses more than --max-txn-ops, 128 by default). */
export const BATCH_WRITES_MAX = 64;

type Write =
  | { kind: "put"; key: string; value: LogRecord; ifVersion: number; fence?: Fence; t0: number; resolve: (r: LogPutResult) => void }
  | { kind: "delete"; key: string; fence?: Fence; ifVersion?: number; t0: number; resolve: (r: LogDeleteResult) => void };

/** The lease a claim record is written on (runtime/retention.ts RetentionLeases). */
export interface ClaimLeases {
  current(): Promise<string>;
  forget(): void;
}

export interface BatchOptions {
  /** Writes per etcd transaction, 1..BATCH_WRITES_MAX; 1: every write alone. */
  readonly batch_max: number;
  /** How long the first write of a batch waits for others (0: the end of the event loop's turn). */
  readonly batch_wait_ms: number;
}

export const DEFAULT_BATCH: BatchOptions = { batch_max: BATCH_WRITES_MAX, batch_wait_ms: 0 };

export class TxlogEtcd implements TxlogStore {
  readonly ns: Namespace;
  private queue: Write[] = [];
  private flushScheduled = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly batchMax: number;
  /**
   * Retention of idempotency claims (spec/kernel/effects.ts ClaimRecord): a claim without outcome is written on the
   * retention lease of now (made, or found still open by a request: it lives as long as clients ask); a claim with
   * its outcome keeps the lease it has. Without it, claims have no lease.
   */
  claimLeases: ClaimLeases | undefined;

  constructor(
    readonly client: Etcd3,
    private readonly prefix: string,
    private readonly observer: TxlogObserver = {},
    private readonly batching: BatchOptions = DEFAULT_BATCH,
  ) {
    this.ns = client.namespace(prefix);
    if (!Number.isSafeInteger(batching.batch_max) || batching.batch_max < 1 || batching.batch_max > BATCH_WRITES_MAX) throw new Error(`batch_max ${batching.batch_max}: an integer from 1 to ${BATCH_WRITES_MAX}`);
    this.batchMax = batching.batch_max;
  }

  put(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult> {
    return new Promise((resolve) => this.enqueue({ kind: "put", key, value, ifVersion, ...(fence !== undefined ? { fence } : {}), t0: performance.now(), resolve }));
  }

  delete(key: string, fence?: Fence, ifVersion?: number): Promise<LogDeleteResult> {
    return new Promise((resolve) => this.enqueue({ kind: "delete", key, ...(fence !== undefined ? { fence } : {}), ...(ifVersion !== undefined ? { ifVersion } : {}), t0: performance.now(), resolve }));
  }

  private enqueue(w: Write): void {
    this.queue.push(w);
    // Off: every write goes at once, alone.
    if (this.batchMax === 1) return this.flush();
    // A full batch goes now, without waiting out batch_wait_ms.
    if (this.flushTimer !== null && this.queue.length >= this.batchMax) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
      this.flushScheduled = false;
      return this.flush();
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.batching.batch_wait_ms > 0) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, this.batching.batch_wait_ms);
    } else setImmediate(() => this.flush());
  }

  /** Sends what was queued: one transaction per batch of writes with the same fence and distinct keys. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const writes = this.queue;
    this.queue = [];
    const batches: Array<{ fence: Fence | undefined; writes: Write[]; keys: Set<string> }> = [];
    for (const w of writes) {
      if ((w.kind === "put" && w.value.kind === "claim") || (w.kind === "delete" && w.ifVersion !== undefined)) {
        // A claim's lease is its own, a conditional delete has its own compare: never in a batch.
        batches.push({ fence: w.fence, writes: [w], keys: new Set() });
        continue;
      }
      const open = batches.find(
        (b) => b.keys.size > 0 && b.fence?.key === w.fence?.key && b.fence?.version === w.fence?.version && !b.keys.has(w.key) && b.writes.length < this.batchMax,
      );
      if (open !== undefined) {
        open.writes.push(w);
        open.keys.add(w.key);
      } else {
        batches.push({ fence: w.fence, writes: [w], keys: new Set([w.key]) });
      }
    }
    for (const b of batches) {
      this.observer.onBatch?.(b.writes.length);
      if (b.writes.length === 1) void this.one(b.writes[0]!);
      else void this.batch(b.fence, b.writes);
    }
  }

  private settle(w: Write, r: LogPutResult | LogDeleteResult): void {
    this.observer.onWrite?.(w.kind, (performance.now() - w.t0) / 1000, r.ok || (r.err === "CAS"));
    (w.resolve as (r: LogPutResult | LogDeleteResult) => void)(r);
  }

  private async one(w: Write): Promise<void> {
    if (w.kind === "put") this.settle(w, await this.putOne(w.key, w.value, w.ifVersion, w.fence));
    else this.settle(w, await this.deleteOne(w.key, w.fence, w.ifVersion));
  }

  private async batch(fence: Fence | undefined, writes: Write[]): Promise<void> {
    const k = (key: string) => Buffer.from(this.prefix + key);
    const success = writes.map((w) =>
      w.kind === "delete"
        ? { request_delete_range: { key: k(w.key) } }
        : {
            request_txn: {
              compare: [{ key: k(w.key), target: "Version" as const, result: "Equal" as const, version: w.ifVersion }],
              success: [{ request_put: { key: k(w.key), value: Buffer.from(JSON.stringify(w.value)) } }],
              failure: [{ request_range: { key: k(w.key) } }],
            },
          },
    );
    let results: Array<LogPutResult | LogDeleteResult>;
    try {
      const res = await this.ns.kv.txn({
        compare: fence !== undefined ? [{ key: k(fence.key), target: "Version", result: "Equal", version: fence.version }] : [],
        success,
        failure: [],
      });
      results = writes.map((w, i): LogPutResult | LogDeleteResult => {
        // Only the fence is compared at the top: a failed top-level compare means a newer epoch owns the log.
        if (!res.succeeded) return { ok: false, err: "FENCED" };
        if (w.kind === "delete") return { ok: true };
        const nested = res.responses[i]?.response_txn;
        if (nested === undefined) throw new Error(`etcd answered a batch of ${writes.length} writes with ${res.responses.length} responses`);
        if (nested.succeeded) return { ok: true, version: w.ifVersion + 1 };
        const kv = nested.responses[0]?.response_range?.kvs[0];
        return kv === undefined
          ? { ok: false, err: "CAS", current: null, version: 0 }
          : { ok: false, err: "CAS", current: decodeLogRecord(w.key, kv.value.toString("utf8")), version: Number(kv.version) };
      });
    } catch (e) {
      logFailure(`batch of ${writes.length}`, writes[0]!.key, e);
      results = writes.map(() => ({ ok: false, err: "UNAVAILABLE" }) as const);
    }
    writes.forEach((w, i) => this.settle(w, results[i]!));
  }

  /** The lease a put of `value` goes on: "keep" the key's, or a lease id; undefined: none (claimLeases). */
  private async leaseOf(value: LogRecord): Promise<string | "keep" | undefined> {
    if (value.kind !== "claim" || this.claimLeases === undefined) return undefined;
    return value.outcome !== undefined ? "keep" : this.claimLeases.current();
  }

  private async putOne(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult> {
    try {
      return await this.putOnce(key, value, ifVersion, fence);
    } catch (e) {
      if (!(e instanceof EtcdLeaseInvalidError) || this.claimLeases === undefined) {
        logFailure("put", key, e);
        return { ok: false, err: "UNAVAILABLE" };
      }
      // etcd no longer knows the lease (revoked, or its data replaced): once more on a new one.
      this.claimLeases.forget();
      try {
        return await this.putOnce(key, value, ifVersion, fence);
      } catch (e2) {
        logFailure("put", key, e2);
        return { ok: false, err: "UNAVAILABLE" };
      }
    }
  }

  /** One conditional put; throws what etcd throws. */
  private async putOnce(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult> {
    let r: LogPutResult;
    {
      const lease = await this.leaseOf(value);
      // (A put builder is a thenable that runs the put: it is built here, never returned from an async function.)
      const put = this.ns.put(key).value(JSON.stringify(value));
      if (lease === "keep") put.ignoreLease();
      else if (lease !== undefined) put.lease(lease);
      const txn = this.ns.if(key, "Version", "==", ifVersion);
      if (fence !== undefined) txn.and(fence.key, "Version", "==", fence.version);
      const res = await txn
        .then(put)
        .else(this.ns.get(key), ...(fence !== undefined ? [this.ns.get(fence.key)] : []))
        .commit();
      const fenceKv = fence !== undefined ? res.responses[1]?.response_range?.kvs[0] : undefined;
      if (res.succeeded) {
        r = { ok: true, version: ifVersion + 1 };
      } else if (fence !== undefined && Number(fenceKv?.version ?? 0) !== fence.version) {
        r = { ok: false, err: "FENCED" };
      } else {
        const kv = res.responses[0]?.response_range?.kvs[0];
        r =
          kv === undefined
            ? { ok: false, err: "CAS", current: null, version: 0 }
            : { ok: false, err: "CAS", current: decodeLogRecord(key, kv.value.toString("utf8")), version: Number(kv.version) };
      }
    }
    return r;
  }

  async list(prefix: string): Promise<LogListResult> {
    try {
      const res = await this.ns.getAll().prefix(prefix).limit(LIST_ENTRIES_MAX + 1).exec();
      if (res.kvs.length > LIST_ENTRIES_MAX) {
        console.error(`txlog list ${prefix}: more than ${LIST_ENTRIES_MAX} records; refusing to act on a partial list`);
        return { ok: false, err: "UNAVAILABLE" };
      }
      const entries: LogEntry[] = res.kvs.map((kv) => {
        const key = kv.key.toString("utf8");
        return { key, value: decodeLogRecord(key, kv.value.toString("utf8")), version: Number(kv.version) };
      });
      return { ok: true, entries };
    } catch (e) {
      logFailure("list", prefix, e);
      return { ok: false, err: "UNAVAILABLE" };
    }
  }

  private async deleteOne(key: string, fence?: Fence, ifVersion?: number): Promise<LogDeleteResult> {
    try {
      if (ifVersion !== undefined) return await this.deleteIfVersion(key, ifVersion, fence);
      if (fence === undefined) {
        await this.ns.delete().key(key).exec();
        return { ok: true };
      }
      const res = await this.ns.if(fence.key, "Version", "==", fence.version).then(this.ns.delete().key(key)).commit();
      return res.succeeded ? { ok: true } : { ok: false, err: "FENCED" };
    } catch (e) {
      logFailure("delete", key, e);
      return { ok: false, err: "UNAVAILABLE" };
    }
  }

  /** `If(fence) Then(If(Version(key) == ifVersion) Then(Delete))`: FENCED when the fence fails, CAS when the version does. */
  private async deleteIfVersion(key: string, ifVersion: number, fence?: Fence): Promise<LogDeleteResult> {
    const k = (x: string) => Buffer.from(this.prefix + x);
    const res = await this.ns.kv.txn({
      compare: fence !== undefined ? [{ key: k(fence.key), target: "Version", result: "Equal", version: fence.version }] : [],
      success: [{ request_txn: { compare: [{ key: k(key), target: "Version" as const, result: "Equal" as const, version: ifVersion }], success: [{ request_delete_range: { key: k(key) } }], failure: [] } }],
      failure: [],
    });
    if (!res.succeeded) return { ok: false, err: "FENCED" };
    const nested = res.responses[0]?.response_txn;
    if (nested === undefined) throw new Error(`etcd answered a conditional delete of ${key} without its nested transaction`);
    return nested.succeeded ? { ok: true } : { ok: false, err: "CAS" };
  }

  /** etcd answers a read within the deadline. */
  async reachable(): Promise<boolean> {
    try {
      await this.ns.get("health").exec();
      return true;
    } catch {
      return false;
    }
  }
}

export interface CompactionOptions {
  /** Time between compactions; 0: never (etcd compacts itself, e.g. --auto-compaction-retention). */
  readonly interval_ms: number;
  /** Revisions kept behind the current one. */
  readonly revisions_kept: number;
}

/**
 * Compacts etcd's history. etcd keeps every revision of every key until a
 * compaction drops the ones before a given revision; without one, every CAS,
 * claim and delete of a busy server stays in etcd's database until it reaches
 * its quota (2 GB by default), past which etcd refuses every write
 * ("mvcc: database space exceeded"). This server never reads an old revision
 * (no watch, no read at a revision), so it keeps only a window of
 * `revisions_kept` for tools that do. Freed pages are reused by etcd, so the
 * database file stops growing; it shrinks only with `etcdctl defrag`, which
 * blocks etcd while it runs and is left to the operator.
 */
export class EtcdCompactor {
  private timer: NodeJS.Timeout | null = null;
  /** The revision compacted to last: the next compaction is skipped until the window moved past it. */
  private compacted = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly opts: CompactionOptions,
  ) {}

  start(): void {
    if (this.opts.interval_ms === 0 || this.timer !== null) return;
    const again = () => {
      void this.compactOnce().finally(() => {
        if (this.timer !== null) this.timer = setTimeout(again, this.opts.interval_ms).unref();
      });
    };
    this.timer = setTimeout(again, this.opts.interval_ms).unref();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Compacts to `revisions_kept` behind the current revision; true if etcd did (or an earlier compaction already had). */
  async compactOnce(): Promise<boolean> {
    try {
      // Any read answers the current revision in its header.
      const current = Number((await this.client.kv.range({ key: Buffer.from("\0"), count_only: true })).header.revision);
      const target = current - this.opts.revisions_kept;
      if (target <= this.compacted) return true;
      await this.client.kv.compact({ revision: target, physical: false });
      this.compacted = target;
      return true;
    } catch (e) {
      // Another client compacted further already: the history we wanted gone is gone.
      if (/required revision has been compacted/.test((e as Error).message)) return true;
      logFailure("compact", "", e);
      return false;
    }
  }
}

/** Failures are rate-limited to one line per second so an etcd outage does not flood the log. */
let lastFailureLog_ms = 0;
function logFailure(op: string, key: string, e: unknown): void {
  const now = Date.now();
  if (now - lastFailureLog_ms < 1000) return;
  lastFailureLog_ms = now;
  console.error(`txlog ${op} ${key}: ${(e as Error).message}`);
}
