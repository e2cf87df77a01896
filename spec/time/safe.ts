/**
 * Safe time: the timestamp up to which a snapshot read may be served, because
 * no transaction can still commit at or below it (Spanner's t_safe, Kudu's
 * safe time for snapshot scans). Pure; the runtime (runtime/snapshot.ts) and
 * the model (./model.ts) both decide with `readable`.
 *
 * For one coordinator process:
 *   - `clock`: its HLC (the last timestamp it issued or observed). Every
 *     commit timestamp it chooses later is greater (./hlc.ts now), so a
 *     transaction that has not chosen one yet can only land above it;
 *   - `pending`: the commit timestamps already chosen whose history rows are
 *     not all stamped yet (a decision in flight, a branch not committed or not
 *     released, a record left to the resolver);
 *   - `ready`: the process has made its first complete resolver scan since it
 *     started (the records a previous incarnation left are in `pending`: their
 *     timestamps were observed from the txlog).
 *
 * A read at `at` is served once ready, clock >= at (the reader makes it so by
 * observing `at`) and every pending timestamp is > at. Then every transaction
 * with a commit timestamp <= at has all its history rows stamped, and none can
 * get one later: the read sees all or nothing of every transfer.
 *
 * With several coordinator processes, a read is served at `at` only when the
 * rule holds on every one of them (the minimum of their safe times): each
 * must have observed `at` and have no pending timestamp <= at.
 */

export interface SafeTimeView {
  readonly clock: bigint;
  readonly pending: Iterable<bigint>;
  readonly ready: boolean;
}

/** The greatest timestamp a read could be served at now, or null when not ready. */
export function safeTime(v: SafeTimeView): bigint | null {
  if (!v.ready) return null;
  let safe = v.clock;
  for (const p of v.pending) if (p - 1n < safe) safe = p - 1n;
  return safe;
}

/** May a read at `at` be served now? */
export function readable(at: bigint, v: SafeTimeView): boolean {
  const s = safeTime(v);
  return s !== null && s >= at;
}

/**
 * A commit record that lands after its process gave up on it (its put answered UNAVAILABLE, the coordinator gave
 * up, a complete listing did not show it, and its timestamp stopped holding safe time back), or that a survivor
 * finds below the safe time its node last published: may the transaction still commit at the timestamp it
 * carries? `released`: the greatest safe time this process (or, for another node's namespace, that node) let a
 * snapshot be served at. At or below it, a snapshot may already have been served without the transaction:
 * committing there would change it. The record is then re-stamped above it (the clock's next timestamp) before
 * any branch commits; none has (its coordinator gave up before the decision was durable, and every other
 * transaction's timestamp stayed pending, so above every released value, until its rows were all stamped).
 */
export function landing(recorded: bigint, released: bigint): "keep" | "restamp" {
  return recorded > released ? "keep" : "restamp";
}
