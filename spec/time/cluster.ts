/**
 * Safe time across several coordinator nodes (docs/protocols/timestamps.md,
 * "Several nodes"). Pure; runtime/safe-exchange.ts gathers the view from
 * etcd and decides with `clusterSafeTime`.
 *
 * Each node publishes its own safe time (./safe.ts `safeTime`, the clock
 * advanced first) under `safe/<node>`, tagged with the etcd lease its
 * `alive/<node>` key is on (its incarnation), and the nodes it owns whose
 * namespace its takeover resolver has scanned completely (`covers`: their
 * records' timestamps are in its pending set, so its own safe time bounds
 * them too). A published value S of node N means: every transaction N (or a
 * namespace N covers) committed or can still commit at or below S has all
 * its history rows stamped, and everything N commits later is above S (N's
 * clock passed S).
 *
 * The rule: a snapshot may be served at `at` only when `at` <= the minimum,
 * over every member M, of M's contribution:
 *   - M alive (its alive key on lease L): M's publication tagged L; none (M
 *     started and has not published yet): nothing may be served;
 *   - M dead, owned by a live node O whose publication (tagged with O's
 *     lease) covers M: no bound of its own (O's value holds M's records);
 *   - M dead, not covered: M's last publication (it still holds: a dead
 *     process commits nothing more, and an owner's commits are above its own
 *     value); none: nothing may be served. A dead, not-yet-taken-over node
 *     thus holds everyone's safe time back.
 * Checked by the `safe-nodes` model (./nodes-model.ts) with the mutants
 * `own-only` (a node reads at its own safe time alone) and `dead-ignored` (a
 * dead node not taken over puts no bound), and by
 * test/time/cluster-safe.test.ts (fast-check over longer runs).
 */

export interface Publication {
  readonly node: string;
  /** The etcd lease (decimal id) the node's alive key was on when it published. */
  readonly lease: string;
  readonly safe: bigint;
  /** Dead nodes this node owns whose namespace its resolver has scanned completely. */
  readonly covers: readonly string[];
}

export interface ClusterView {
  /** Every registered node (members/ keys, and any alive/ key). */
  readonly members: readonly string[];
  /** Alive nodes and the lease their alive key is on. */
  readonly alive: ReadonlyMap<string, string>;
  /** Dead nodes' owners (owners/ keys). */
  readonly owners: ReadonlyMap<string, string>;
  /** The last publication under each node's name. */
  readonly published: ReadonlyMap<string, Publication>;
}

export type ContributionState = "alive" | "not_published" | "covered" | "dead" | "dead_never_published";

export interface Contribution {
  readonly node: string;
  readonly state: ContributionState;
  /** The bound it puts on safe time: null = no read may be served; undefined = none (covered by its owner). */
  readonly safe: bigint | null | undefined;
}

export interface ClusterSafe {
  /** The greatest timestamp a snapshot may be served at, or null when none may be. */
  readonly safe: bigint | null;
  readonly contributions: readonly Contribution[];
}

/** `own-only`: a node reads at its own safe time alone; `dead-ignored`: a dead node not taken over puts no bound. */
export type ClusterMutant = "own-only" | "dead-ignored";

const valid = (p: Publication | undefined, v: ClusterView): p is Publication => p !== undefined && v.alive.get(p.node) === p.lease;

/** One member's bound on safe time. */
export function contribution(node: string, v: ClusterView, mutant?: ClusterMutant): Contribution {
  const pub = v.published.get(node);
  if (v.alive.has(node)) return valid(pub, v) ? { node, state: "alive", safe: pub.safe } : { node, state: "not_published", safe: null };
  const owner = v.owners.get(node);
  const op = owner === undefined ? undefined : v.published.get(owner);
  if (owner !== undefined && valid(op, v) && op.covers.includes(node)) return { node, state: "covered", safe: undefined };
  if (mutant === "dead-ignored") return { node, state: "dead", safe: undefined };
  return pub === undefined ? { node, state: "dead_never_published", safe: null } : { node, state: "dead", safe: pub.safe };
}

/** Safe time over every member (module header); `own-only`: the mutant that takes `self`'s value alone. */
export function clusterSafeTime(v: ClusterView, self: string, mutant?: ClusterMutant): ClusterSafe {
  const nodes = [...new Set([...v.members, ...v.alive.keys(), self])].sort();
  const contributions = (mutant === "own-only" ? [self] : nodes).map((n) => contribution(n, v, mutant));
  let safe: bigint | null = null;
  let blocked = false;
  for (const c of contributions) {
    if (c.safe === undefined) continue;
    if (c.safe === null) blocked = true;
    else if (safe === null || c.safe < safe) safe = c.safe;
  }
  return { safe: blocked ? null : safe, contributions };
}

/** The nodes that keep safe time below `at` (for the answer that says why a read waited in vain). */
export function holdingBack(s: ClusterSafe, at: bigint): Contribution[] {
  return s.contributions.filter((c) => c.safe === null || (c.safe !== undefined && c.safe < at));
}
