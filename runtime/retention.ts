/**
 * Retention of idempotency claims by etcd leases (docs/operations.md,
 * "Idempotency"): time is cut into buckets of `retention_ms / BUCKETS`, and
 * every claim made in one bucket is attached to that bucket's lease, granted
 * once (on the bucket's first claim) with a TTL that ends `retention_ms`
 * after the bucket ends. etcd deletes the keys when the lease expires; nobody
 * keeps a lease alive. So there are about BUCKETS + 1 leases at any time, not
 * one per request, and a claim lives at least `retention_ms` and at most
 * `retention_ms` plus one bucket (etcd gives every lease its full TTL again
 * after a restart or a leader change, which only lengthens it).
 *
 * Buckets are measured on the monotonic clock: the TTL etcd counts is a
 * duration from the grant, so a wall-clock jump cannot shorten a claim's life.
 */
import type { Namespace } from "etcd3";

/** Leases alive at once, about; a key outlives its retention by at most retention / BUCKETS. */
export const RETENTION_BUCKETS = 96;
/** etcd counts TTLs in whole seconds; a bucket shorter than that would only multiply leases. */
const BUCKET_MS_MIN = 1_000;

export class RetentionLeases {
  readonly bucket_ms: number;
  /** Lease id per bucket number, granted or being granted. Only the current bucket's is kept. */
  private readonly granted = new Map<number, Promise<string>>();

  constructor(
    private readonly ns: Pick<Namespace, "leaseClient">,
    readonly retention_ms: number,
    private readonly now_ms: () => number = () => performance.now(),
  ) {
    this.bucket_ms = Math.max(BUCKET_MS_MIN, Math.ceil(retention_ms / RETENTION_BUCKETS));
  }

  /** The lease for a key written now: it expires at least retention_ms from now. Rejects when etcd does not answer. */
  current(): Promise<string> {
    const now = this.now_ms();
    const bucket = Math.floor(now / this.bucket_ms);
    const known = this.granted.get(bucket);
    if (known !== undefined) return known;
    for (const b of this.granted.keys()) if (b < bucket) this.granted.delete(b);
    const ttl_s = Math.ceil(((bucket + 1) * this.bucket_ms - now + this.retention_ms) / 1000);
    const lease = this.ns.leaseClient.leaseGrant({ TTL: ttl_s, ID: 0 }).then((r) => {
      if (r.error !== undefined && r.error !== "") throw new Error(`etcd refused a lease of ${ttl_s} s: ${r.error}`);
      return r.ID;
    });
    this.granted.set(bucket, lease);
    // A failed grant is not remembered: the next claim asks again.
    lease.catch(() => {
      if (this.granted.get(bucket) === lease) this.granted.delete(bucket);
    });
    return lease;
  }

  /** etcd no longer knows a lease given out here (revoked, or etcd's data replaced): the next claim gets a new one. */
  forget(): void {
    this.granted.clear();
  }
}
