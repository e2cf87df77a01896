/**
 * Group commit of deferred shard work (docs/architecture.md, "Batching"):
 * jobs added for one shard in the same turn of the event loop (or within
 * `batch_wait_ms` of the first), at most `batch_max` at a time, are handed
 * to `send` together, to go in one round trip. What a batch means, and what
 * it answers when it fails part way, is the sender's (local-mysql.ts for
 * releases and compensations, xa-mysql.ts for commit-timestamp stamps).
 *
 * Bounded: a queue holds the jobs of one turn (or one wait) until its flush,
 * and every caller waits for its own job, so a queue is never longer than
 * the transactions in flight.
 */

/** Jobs per batch, at most (the config's batch_max is 1..64). */
export const SHARD_BATCH_MAX = 64;

export interface Batching {
  /** 1..SHARD_BATCH_MAX; 1: every job alone. */
  readonly batch_max: number;
  /** How long the first of a batch waits for others (0: the end of the event loop's turn). */
  readonly batch_wait_ms: number;
}

export const DEFAULT_SHARD_BATCH: Batching = { batch_max: SHARD_BATCH_MAX, batch_wait_ms: 0 };

export function checkBatching(what: string, b: Batching): Batching {
  if (!Number.isSafeInteger(b.batch_max) || b.batch_max < 1 || b.batch_max > SHARD_BATCH_MAX) throw new Error(`${what} batch_max ${b.batch_max}: an integer from 1 to ${SHARD_BATCH_MAX}`);
  if (!Number.isSafeInteger(b.batch_wait_ms) || b.batch_wait_ms < 0) throw new Error(`${what} batch_wait_ms ${b.batch_wait_ms}: a whole number of milliseconds`);
  return b;
}

export class ShardBatcher<J> {
  private readonly queues = new Map<string, J[]>();
  /** Per shard: how to cancel the pending flush, while one is scheduled. */
  private readonly timers = new Map<string, () => void>();

  constructor(
    readonly batching: Batching,
    /** Called with at most batch_max jobs of one shard; it answers each job itself. */
    private readonly send: (shard: string, jobs: J[]) => void,
  ) {}

  add(shard: string, job: J): void {
    const q = this.queues.get(shard) ?? [];
    this.queues.set(shard, q);
    q.push(job);
    // A full batch goes now, without waiting out batch_wait_ms.
    if (q.length >= this.batching.batch_max) {
      this.timers.get(shard)?.();
      this.timers.delete(shard);
      return this.flush(shard);
    }
    if (this.timers.has(shard)) return;
    const go = () => {
      this.timers.delete(shard);
      this.flush(shard);
    };
    if (this.batching.batch_wait_ms > 0) {
      const t = setTimeout(go, this.batching.batch_wait_ms);
      this.timers.set(shard, () => clearTimeout(t));
    } else {
      const t = setImmediate(go);
      this.timers.set(shard, () => clearImmediate(t));
    }
  }

  /** Stops every scheduled flush and gives back the jobs not sent (to be answered by the caller). */
  drain(): J[] {
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    const left = [...this.queues.values()].flatMap((q) => q.splice(0));
    this.queues.clear();
    return left;
  }

  private flush(shard: string): void {
    const q = this.queues.get(shard);
    if (q === undefined || q.length === 0) return;
    const jobs = q.splice(0);
    for (let i = 0; i < jobs.length; i += this.batching.batch_max) this.send(shard, jobs.slice(i, i + this.batching.batch_max));
  }
}
