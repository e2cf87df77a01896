/**
 * The `safe-nodes` model: safe time across two coordinator nodes
 * (./cluster.ts; docs/protocols/timestamps.md, "Several nodes").
 *
 * Two nodes, each with its own clock (an abstract counter: the HLC's rules
 * are ./model.ts's business), each running one transfer: decide (its commit
 * timestamp: the clock's next value, pending) then stamp (its rows stamped
 * on every shard at once: the atomicity of one transfer's rows is ./model.ts's
 * business). A node publishes its safe time (clock advanced first, then
 * ./safe.ts safeTime over what it holds pending; node n1 also says it covers
 * n2 once it took n2 over). n2 may die with its transfer pending; n1 then
 * takes it over: it learns n2's pending timestamp (its clock observes it) and
 * holds it, and stamps it later. A read at a node, at its clock or one
 * below, is served when its own safe time and ./cluster.ts clusterSafeTime
 * over the published values reach it. Clocks run up to `max`.
 *
 * Property:
 *   snapshot_stable  every transfer stamped at or below a served read's `at`
 *                    was stamped when the read was served (no commit lands
 *                    below a snapshot already served).
 * Mutants (./cluster.ts): `own-only` (a node reads at its own safe time
 * alone), `dead-ignored` (a dead node not taken over puts no bound).
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import { clusterSafeTime, type ClusterMutant, type ClusterView, type Publication } from "./cluster.ts";
import { safeTime } from "./safe.ts";

export const NODES_MUTANTS: readonly ClusterMutant[] = ["own-only", "dead-ignored"];

export interface NodesParams {
  /** The clocks' last value. */
  readonly max: number;
  /** Reads served at most. */
  readonly reads: number;
}

const NAMES = ["n1", "n2"] as const;

export interface NodesState {
  readonly clocks: readonly number[];
  /** Node n2 alive (n1 always is). */
  readonly n2Alive: boolean;
  /** n1 took n2 over (learned n2's pending timestamp). */
  readonly owned: boolean;
  /** Each node's last publication (-1 none), and whether n1's covers n2. */
  readonly published: readonly number[];
  readonly covers: boolean;
  /** Transfer i, run by node i: its timestamp (-1 none), stamped, and the node holding it pending. */
  readonly txs: readonly { readonly ts: number; readonly stamped: boolean; readonly holder: number }[];
  /** Served reads: at, and bit i: transfer i was stamped at or below it then. */
  readonly reads: readonly { readonly at: number; readonly seen: number }[];
}

export type NodesAction =
  | { readonly t: "tick" | "publish"; readonly node: number }
  | { readonly t: "decide" | "stamp"; readonly tx: number }
  | { readonly t: "read"; readonly node: number; readonly at: number }
  | { readonly t: "kill" }
  | { readonly t: "takeover" };

const alive = (s: NodesState, node: number): boolean => node === 0 || s.n2Alive;
const pendingAt = (s: NodesState, node: number): bigint[] => s.txs.filter((t) => t.holder === node && t.ts >= 0 && !t.stamped).map((t) => BigInt(t.ts));
const ownSafe = (s: NodesState, node: number): number => Number(safeTime({ clock: BigInt(s.clocks[node]!), pending: pendingAt(s, node), ready: true })!);

function view(s: NodesState): ClusterView {
  const published = new Map<string, Publication>();
  s.published.forEach((v, i) => {
    if (v >= 0) published.set(NAMES[i]!, { node: NAMES[i]!, lease: "L", safe: BigInt(v), covers: i === 0 && s.covers ? ["n2"] : [] });
  });
  return {
    members: [...NAMES],
    alive: new Map(NAMES.flatMap((n, i) => (alive(s, i) ? [[n, "L"] as const] : []))),
    owners: new Map(s.owned ? [["n2", "n1"] as const] : []),
    published,
  };
}

function* actionsOf(p: NodesParams, m: ClusterMutant | undefined, s: NodesState): Iterable<NodesAction> {
  for (let node = 0; node < 2; node++) {
    if (!alive(s, node)) continue;
    if (s.clocks[node]! < p.max) yield { t: "tick", node };
    if (s.clocks[node]! < p.max) yield { t: "publish", node };
    if (s.reads.length < p.reads) {
      const c = clusterSafeTime(view(s), NAMES[node]!, m).safe;
      for (const at of new Set([s.clocks[node]!, s.clocks[node]! - 1])) {
        if (at >= 0 && ownSafe(s, node) >= at && c !== null && c >= BigInt(at)) yield { t: "read", node, at };
      }
    }
  }
  for (let tx = 0; tx < s.txs.length; tx++) {
    const t = s.txs[tx]!;
    if (!alive(s, t.holder)) continue;
    if (t.ts < 0 && s.clocks[t.holder]! < p.max) yield { t: "decide", tx };
    if (t.ts >= 0 && !t.stamped) yield { t: "stamp", tx };
  }
  if (s.n2Alive) yield { t: "kill" };
  if (!s.n2Alive && !s.owned) yield { t: "takeover" };
}

function nextOf(s: NodesState, a: NodesAction): NodesState {
  const setClock = (node: number, v: number) => s.clocks.map((c, i) => (i === node ? v : c));
  switch (a.t) {
    case "tick":
      return { ...s, clocks: setClock(a.node, s.clocks[a.node]! + 1) };
    case "publish": {
      const s1 = { ...s, clocks: setClock(a.node, s.clocks[a.node]! + 1) };
      return { ...s1, published: s.published.map((v, i) => (i === a.node ? ownSafe(s1, a.node) : v)), covers: a.node === 0 ? s.owned : s.covers };
    }
    case "decide": {
      const h = s.txs[a.tx]!.holder;
      const ts = s.clocks[h]! + 1;
      return { ...s, clocks: setClock(h, ts), txs: s.txs.map((t, i) => (i === a.tx ? { ...t, ts } : t)) };
    }
    case "stamp":
      return { ...s, txs: s.txs.map((t, i) => (i === a.tx ? { ...t, stamped: true } : t)) };
    case "read": {
      let seen = 0;
      s.txs.forEach((t, i) => (t.stamped && t.ts <= a.at ? (seen |= 1 << i) : 0));
      return { ...s, reads: [...s.reads, { at: a.at, seen }] };
    }
    case "kill":
      return { ...s, n2Alive: false };
    case "takeover": {
      // n1's resolver scans n2's namespace: n2's pending timestamps are now n1's to hold, and its clock observes them.
      const learned = s.txs.filter((t) => t.holder === 1 && t.ts >= 0).map((t) => t.ts);
      return { ...s, owned: true, clocks: setClock(0, Math.max(s.clocks[0]!, ...learned)), txs: s.txs.map((t) => (t.holder === 1 ? { ...t, holder: 0 } : t)) };
    }
  }
}

export const nodesInvariants: Record<string, (s: NodesState) => boolean> = {
  snapshot_stable: (s) => s.reads.every((r) => s.txs.every((t, i) => !t.stamped || t.ts > r.at || (r.seen & (1 << i)) !== 0)),
};

function encode(s: NodesState): Uint8Array {
  const xs = [s.clocks[0]!, s.clocks[1]!, s.n2Alive ? 1 : 0, s.owned ? 1 : 0, s.published[0]! + 1, s.published[1]! + 1, s.covers ? 1 : 0];
  for (const t of s.txs) xs.push(t.ts + 1, t.stamped ? 1 : 0, t.holder);
  for (const r of s.reads) xs.push(r.at, r.seen);
  return Uint8Array.from(xs);
}

function decode(b: Uint8Array): NodesState {
  const txs = [0, 1].map((i) => ({ ts: b[7 + 3 * i]! - 1, stamped: b[8 + 3 * i] === 1, holder: b[9 + 3 * i]! }));
  const reads: { at: number; seen: number }[] = [];
  for (let k = 13; k < b.length; k += 2) reads.push({ at: b[k]!, seen: b[k + 1]! });
  return { clocks: [b[0]!, b[1]!], n2Alive: b[2] === 1, owned: b[3] === 1, published: [b[4]! - 1, b[5]! - 1], covers: b[6] === 1, txs, reads };
}

export function nodesModel(p: NodesParams, mutant?: ClusterMutant): Model<NodesState, NodesAction> {
  if (!Number.isInteger(p.max) || p.max < 1 || p.max > 8 || !Number.isInteger(p.reads) || p.reads < 0 || p.reads > 3) {
    throw new Error(`safe-nodes: want max 1..8, reads 0..3 (got ${JSON.stringify(p)})`);
  }
  return {
    name: "safe-nodes",
    init: () => [{ clocks: [0, 0], n2Alive: true, owned: false, published: [-1, -1], covers: false, txs: [0, 1].map((holder) => ({ ts: -1, stamped: false, holder })), reads: [] }],
    actions: (s) => actionsOf(p, mutant, s),
    next: nextOf,
    invariants: nodesInvariants,
    terminal: () => true,
    encode,
    decode,
    describe: (_from, a, to) => describeOf(a, to),
  };
}

function describeOf(a: NodesAction, to: NodesState): { actor: string; label: string } {
  switch (a.t) {
    case "tick":
      return { actor: NAMES[a.node]!, label: `clock ${to.clocks[a.node]}` };
    case "publish":
      return { actor: NAMES[a.node]!, label: `publishes safe time ${to.published[a.node]}${a.node === 0 && to.covers ? " (covers n2)" : ""}` };
    case "decide":
      return { actor: NAMES[to.txs[a.tx]!.holder]!, label: `T${a.tx + 1} decided at ${to.txs[a.tx]!.ts}` };
    case "stamp":
      return { actor: NAMES[to.txs[a.tx]!.holder]!, label: `T${a.tx + 1} stamped at ${to.txs[a.tx]!.ts}` };
    case "read":
      return { actor: NAMES[a.node]!, label: `snapshot served at ${a.at}` };
    case "kill":
      return { actor: "n2", label: "dies" };
    case "takeover":
      return { actor: "n1", label: "takes n2 over (learns its pending timestamps)" };
  }
}

export const nodesFactory: ModelFactory = {
  name: "safe-nodes",
  description: "safe time across two coordinator nodes: published values, a death, a takeover (spec/time/cluster.ts)",
  params: { max: 4, reads: 1 },
  mutants: NODES_MUTANTS,
  build: (params, mutant) => nodesModel({ max: Number(params.max), reads: Number(params.reads) }, mutant as ClusterMutant | undefined),
};
