/**
 * The live transaction log: etcd 3 through etcd3 1.1, every key under a
 * namespace prefix (`<prefix>tx/<id>` for decision records).
 *
 * log.put is a compare-and-swap on the key's version, as spec/env/txlog.ts
 * models it: `If(Version(key) == ifVersion) Then(Put) Else(Get)`, in one etcd
 * transaction. etcd's version is 1 on creation and grows by one per put, so a
 * successful CAS leaves version ifVersion + 1. A fence (spec/effects.ts
 * EpochRecord) is one more compare in the same transaction: the epoch key
 * still has the writer's version. Records read back are decoded
 * with a Schema: a record this code did not write is an error naming the key,
 * never a guess.
 *
 * Every call carries a gRPC deadline; an error or a missed deadline is
 * UNAVAILABLE (the write may or may not have happened), as the vocabulary says.
 */
import { Etcd3, type IOptions, type Namespace } from "etcd3";
import { Schema } from "effect";
import type { Fence, LogDeleteResult, LogEntry, LogListResult, LogPutResult, LogRecord } from "../../spec/effects.ts";
import type { TxlogStore } from "./ports.ts";

export const LogRecordSchema = Schema.Union([
  Schema.Struct({
    kind: Schema.Literal("decision"),
    decision: Schema.Literals(["commit", "abort"]),
    branches: Schema.Array(Schema.String),
  }),
  Schema.Struct({ kind: Schema.Literal("epoch") }),
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
}

export class TxlogEtcd implements TxlogStore {
  readonly ns: Namespace;

  constructor(
    readonly client: Etcd3,
    prefix: string,
    private readonly observer: TxlogObserver = {},
  ) {
    this.ns = client.namespace(prefix);
  }

  async put(key: string, value: LogRecord, ifVersion: number, fence?: Fence): Promise<LogPutResult> {
    const t0 = performance.now();
    let r: LogPutResult;
    try {
      const txn = this.ns.if(key, "Version", "==", ifVersion);
      if (fence !== undefined) txn.and(fence.key, "Version", "==", fence.version);
      const res = await txn
        .then(this.ns.put(key).value(JSON.stringify(value)))
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
    } catch (e) {
      logFailure("put", key, e);
      r = { ok: false, err: "UNAVAILABLE" };
    }
    this.observer.onWrite?.("put", (performance.now() - t0) / 1000, r.ok || r.err === "CAS");
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

  async delete(key: string, fence?: Fence): Promise<LogDeleteResult> {
    const t0 = performance.now();
    try {
      if (fence === undefined) {
        await this.ns.delete().key(key).exec();
      } else {
        const res = await this.ns.if(fence.key, "Version", "==", fence.version).then(this.ns.delete().key(key)).commit();
        if (!res.succeeded) {
          this.observer.onWrite?.("delete", (performance.now() - t0) / 1000, false);
          return { ok: false, err: "FENCED" };
        }
      }
      this.observer.onWrite?.("delete", (performance.now() - t0) / 1000, true);
      return { ok: true };
    } catch (e) {
      logFailure("delete", key, e);
      this.observer.onWrite?.("delete", (performance.now() - t0) / 1000, false);
      return { ok: false, err: "UNAVAILABLE" };
    }
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

/** Failures are rate-limited to one line per second so an etcd outage does not flood the log. */
let lastFailureLog_ms = 0;
function logFailure(op: string, key: string, e: unknown): void {
  const now = Date.now();
  if (now - lastFailureLog_ms < 1000) return;
  lastFailureLog_ms = now;
  console.error(`txlog ${op} ${key}: ${(e as Error).message}`);
}
