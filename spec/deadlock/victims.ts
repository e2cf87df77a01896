/**
 * The victim choice of the cross-shard deadlock detector (docs/deadlock.md).
 *
 * Each MariaDB shard breaks the deadlocks among its own transactions; a cycle
 * that goes through several shards (T1 waits for T2 on shard a, T2 waits for
 * T1 on shard b) is seen by none of them and lasts until
 * innodb_lock_wait_timeout. The detector (runtime/deadlock.ts) reads every
 * shard's lock waits, maps them to our transactions, and asks this function
 * which transactions to abort. It is pure: a snapshot in, victims out.
 *
 * The rules, checked by the `deadlock` model (./model.ts):
 *  - never a victim whose commit decision is durable, nor one prepared on
 *    every shard (only the protocol may end those; facts unknown: never);
 *  - every cycle that contains an abortable transaction is broken;
 *  - no victim outside a cycle;
 *  - minimal: every victim is needed (sparing any one of them leaves a
 *    cycle with an abortable transaction unbroken), and a cycle alone among
 *    its transactions (loneCycles) gets at most one victim. ("At most one victim
 *    per cycle" cannot be had in general: two disjoint cycles A<->B and C<->D
 *    joined by B->C and D->A make a third cycle A B C D that must contain
 *    both victims.)
 *
 * The choice: repeatedly take a shortest cycle through an abortable
 * transaction (the smallest such transaction id first), make its greatest
 * abortable transaction id the victim, remove it, until no such cycle is
 * left; then drop, last chosen first, every victim that is not needed.
 */
import type { ShardId, TxId } from "../kernel/effects.ts";

/** One lock wait on one shard, mapped to transactions: `waiter`'s branch waits for a lock `holder`'s branch holds. */
export interface WaitEdge {
  readonly shard: ShardId;
  readonly waiter: TxId;
  readonly holder: TxId;
}

/** What is known of a transaction in the graph: its commit decision is durable; every one of its branches is prepared. */
export interface TxFacts {
  readonly decided: boolean;
  readonly preparedEverywhere: boolean;
}

/** The global wait-for graph at one moment, with the facts of the transactions it names (absent: not ours, never a victim). */
export interface WaitSnapshot {
  readonly edges: readonly WaitEdge[];
  readonly facts: Readonly<Record<TxId, TxFacts>>;
}

/** A victim and the cycle it was chosen to break (in wait order, starting with any member). */
export interface Victim {
  readonly tx: TxId;
  readonly cycle: readonly TxId[];
}

export type VictimMutant =
  | "victim-decided"
  | "victim-prepared"
  | "first-cycle-only"
  | "victim-off-cycle"
  | "whole-cycle";

/** The transactions the detector may abort: ours, no durable commit decision, not prepared everywhere. */
export function abortable(s: WaitSnapshot, tx: TxId, mutant?: VictimMutant): boolean {
  const f = Object.prototype.hasOwnProperty.call(s.facts, tx) ? s.facts[tx] : undefined;
  if (f === undefined) return false;
  return (mutant === "victim-decided" || !f.decided) && (mutant === "victim-prepared" || !f.preparedEverywhere);
}

type Graph = ReadonlyMap<TxId, readonly TxId[]>;

/** Transaction-level adjacency (waiter -> holders), sorted, without self-waits and without the removed transactions. */
export function graphOf(s: WaitSnapshot, removed: ReadonlySet<TxId> = new Set()): Graph {
  const adj = new Map<TxId, Set<TxId>>();
  for (const e of s.edges) {
    if (e.waiter === e.holder || removed.has(e.waiter) || removed.has(e.holder)) continue;
    let out = adj.get(e.waiter);
    if (out === undefined) adj.set(e.waiter, (out = new Set()));
    out.add(e.holder);
    if (!adj.has(e.holder)) adj.set(e.holder, new Set());
  }
  const g = new Map<TxId, TxId[]>();
  for (const v of [...adj.keys()].sort()) g.set(v, [...adj.get(v)!].sort());
  return g;
}

/** A shortest cycle through `v` (v first), or null: breadth-first from v's holders back to v. */
export function shortestCycleThrough(g: Graph, v: TxId): TxId[] | null {
  const parent = new Map<TxId, TxId>();
  const queue: TxId[] = [v];
  for (let i = 0; i < queue.length; i++) {
    const u = queue[i]!;
    for (const w of g.get(u) ?? []) {
      if (w === v) {
        const path: TxId[] = [];
        for (let x: TxId = u; x !== v; x = parent.get(x)!) path.push(x);
        return [v, ...path.reverse()];
      }
      if (!parent.has(w)) {
        parent.set(w, u);
        queue.push(w);
      }
    }
  }
  return null;
}

/** The first cycle (by the order of its abortable member) that goes through an abortable transaction, or null. */
function cycleWithAbortable(s: WaitSnapshot, g: Graph, mutant?: VictimMutant): TxId[] | null {
  for (const v of g.keys()) {
    if (!abortable(s, v, mutant)) continue;
    const c = shortestCycleThrough(g, v);
    if (c !== null) return c;
  }
  return null;
}

/** Some cycle that goes through an abortable transaction is left once `removed` are gone. */
export function unbrokenCycle(s: WaitSnapshot, removed: ReadonlySet<TxId>): TxId[] | null {
  return cycleWithAbortable(s, graphOf(s, removed));
}

/** `tx` lies on a cycle of the whole graph. */
export const onCycle = (s: WaitSnapshot, tx: TxId): boolean => shortestCycleThrough(graphOf(s), tx) !== null;

/** Transactions reachable from `v` by following `g`'s edges (v included). */
function reachable(g: Graph, v: TxId): Set<TxId> {
  const seen = new Set<TxId>([v]);
  const queue = [v];
  for (let i = 0; i < queue.length; i++) {
    for (const w of g.get(queue[i]!) ?? []) {
      if (seen.has(w)) continue;
      seen.add(w);
      queue.push(w);
    }
  }
  return seen;
}

/**
 * The cycles that are alone among their transactions: the strongly connected
 * components of the graph in which every member waits for exactly one other
 * member (2-, 3- and 4-way cycles as they happen). Each gets at most one victim.
 */
export function loneCycles(s: WaitSnapshot): TxId[][] {
  const g = graphOf(s);
  const reverse = new Map<TxId, TxId[]>();
  for (const [v, out] of g) for (const w of out) reverse.set(w, [...(reverse.get(w) ?? []), v]);
  const done = new Set<TxId>();
  const cycles: TxId[][] = [];
  for (const v of g.keys()) {
    if (done.has(v)) continue;
    const back = reachable(reverse, v);
    const scc = [...reachable(g, v)].filter((w) => back.has(w)).sort();
    for (const w of scc) done.add(w);
    const members = new Set(scc);
    if (scc.length > 1 && scc.every((w) => (g.get(w) ?? []).filter((x) => members.has(x)).length === 1)) cycles.push(scc);
  }
  return cycles;
}

/** The victims of a snapshot (docs/deadlock.md). */
export function chooseVictims(s: WaitSnapshot, mutant?: VictimMutant): Victim[] {
  const removed = new Set<TxId>();
  const chosen: Victim[] = [];
  for (;;) {
    const g = graphOf(s, removed);
    const cycle = cycleWithAbortable(s, g, mutant);
    if (cycle === null) break;
    const candidates = mutant === "victim-off-cycle" ? [...new Set(cycle.flatMap((v) => [v, ...(g.get(v) ?? [])]))] : cycle;
    const eligible = candidates.filter((v) => abortable(s, v, mutant)).sort();
    if (mutant === "whole-cycle") {
      for (const v of eligible) chosen.push({ tx: v, cycle });
      for (const v of cycle) removed.add(v);
    } else {
      const victim = mutant === "victim-off-cycle" ? offCycleFirst(eligible, cycle) : eligible[eligible.length - 1]!;
      chosen.push({ tx: victim, cycle });
      removed.add(victim);
      // The mutant does not check that its victim broke the cycle: the cycle's own members leave with it.
      if (mutant === "victim-off-cycle") for (const v of cycle) removed.add(v);
    }
    if (mutant === "first-cycle-only") break;
  }
  if (mutant === "whole-cycle") return chosen;
  return prune(s, chosen);
}

/** Mutant only: a holder the cycle waits for that is not on the cycle, when there is one. */
function offCycleFirst(eligible: readonly TxId[], cycle: readonly TxId[]): TxId {
  return eligible.find((v) => !cycle.includes(v)) ?? eligible[eligible.length - 1]!;
}

/** Drops, last chosen first, every victim the others make unnecessary. */
function prune(s: WaitSnapshot, chosen: readonly Victim[]): Victim[] {
  const kept = [...chosen];
  for (let i = kept.length - 1; i >= 0; i--) {
    const others = new Set(kept.filter((_, j) => j !== i).map((v) => v.tx));
    if (unbrokenCycle(s, others) === null) kept.splice(i, 1);
  }
  return kept;
}
