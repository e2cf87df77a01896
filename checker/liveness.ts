/**
 * Possibility liveness, Model.eventually: "AG EF goal" over allowed steps.
 *
 * While the BFS runs, every allowed edge (state index -> successor index) is
 * kept in compressed-sparse-row form (states are expanded in index order, so
 * the row offsets come for free), and whether each state is a goal. After the
 * search, a backward BFS from the goal states over the reversed edges marks
 * every state that can reach a goal. Any unmarked state is a violation; the
 * one with the smallest index is the shallowest, so its trace is a shortest
 * one. Memory: 4 bytes per allowed edge plus 9 bytes per state per property.
 */
import type { Eventually, Model } from "../spec/kernel/model.ts";
import { U32List } from "./store.ts";

interface Property<S, A> {
  name: string;
  prop: Eventually<S, A>;
  goal: U32List;
  rowStart: U32List;
  edges: U32List;
}

export class LivenessGraph<S, A> {
  private readonly props: Property<S, A>[];

  constructor(model: Model<S, A>) {
    this.props = Object.entries(model.eventually ?? {}).map(([name, prop]) => ({
      name,
      prop,
      goal: new U32List(),
      rowStart: new U32List(),
      edges: new U32List(),
    }));
  }

  /** Bytes allocated for the graph. */
  get bytes(): number {
    return this.props.reduce((n, p) => n + p.goal.bytes + p.rowStart.bytes + p.edges.bytes, 0);
  }

  /** Bit i: the goal of property i holds in s (at most 32 properties). */
  goalMask(s: S): number {
    let m = 0;
    for (let i = 0; i < this.props.length; i++) if (this.props[i]!.prop.goal(s)) m |= 1 << i;
    return m >>> 0;
  }

  /** Bit i: property i allows the step a. */
  allowedMask(a: A): number {
    let m = 0;
    for (let i = 0; i < this.props.length; i++) {
      const allowed = this.props[i]!.prop.allowed;
      if (!allowed || allowed(a)) m |= 1 << i;
    }
    return m >>> 0;
  }

  /**
   * The graph assembled elsewhere (the parallel engine): per state its goal
   * mask, every edge in CSR form with its allowed mask. Each property keeps
   * the edges it allows, as addEdge does.
   */
  load(parts: { goals: Uint32Array; rowStart: Uint32Array; targets: Uint32Array; allowed: Uint32Array }): void {
    const n = parts.goals.length;
    this.props.forEach((p, i) => {
      const bit = 1 << i;
      for (let s = 0; s < n; s++) p.goal.push((parts.goals[s]! & bit) !== 0 ? 1 : 0);
      for (let s = 0; s < n; s++) {
        p.rowStart.push(p.edges.length);
        for (let e = parts.rowStart[s]!; e < parts.rowStart[s + 1]!; e++) if ((parts.allowed[e]! & bit) !== 0) p.edges.push(parts.targets[e]!);
      }
      p.rowStart.push(p.edges.length);
    });
  }

  /** A new state, in index order. */
  addState(s: S): void {
    for (const p of this.props) p.goal.push(p.prop.goal(s) ? 1 : 0);
  }

  /** The state with this index is about to be expanded (indices come in order). */
  beginState(index: number): void {
    for (const p of this.props) {
      if (p.rowStart.length !== index) throw new Error(`liveness: state ${index} expanded out of order`);
      p.rowStart.push(p.edges.length);
    }
  }

  addEdge(a: A, target: number): void {
    for (const p of this.props) if (!p.prop.allowed || p.prop.allowed(a)) p.edges.push(target);
  }

  /** Every state has been expanded; `count` states in all. */
  end(count: number): void {
    for (const p of this.props) while (p.rowStart.length <= count) p.rowStart.push(p.edges.length);
  }

  /** For each property, the shallowest state that cannot reach a goal, if any. */
  check(): Array<{ name: string; index: number }> {
    const bad: Array<{ name: string; index: number }> = [];
    for (const p of this.props) {
      const index = firstStuck(p.goal, p.rowStart, p.edges);
      if (index >= 0) bad.push({ name: p.name, index });
    }
    return bad;
  }
}

function firstStuck(goal: U32List, rowStart: U32List, edges: U32List): number {
  const n = goal.length;
  const start = rowStart.data;
  const targets = edges.data;
  // Reverse the graph: for each state, the states with an allowed edge into it.
  const inStart = new Uint32Array(n + 1);
  for (let e = 0; e < edges.length; e++) inStart[targets[e]! + 1]!++;
  for (let i = 0; i < n; i++) inStart[i + 1]! += inStart[i]!;
  const fill = inStart.slice(0, n);
  const sources = new Uint32Array(edges.length);
  for (let from = 0; from < n; from++) {
    for (let e = start[from]!; e < start[from + 1]!; e++) sources[fill[targets[e]!]!++] = from;
  }
  const reaches = new Uint8Array(n);
  const queue = new Uint32Array(n);
  let tail = 0;
  for (let i = 0; i < n; i++) {
    if (goal.data[i] === 1) {
      reaches[i] = 1;
      queue[tail++] = i;
    }
  }
  for (let head = 0; head < tail; head++) {
    const to = queue[head]!;
    for (let e = inStart[to]!; e < inStart[to + 1]!; e++) {
      const from = sources[e]!;
      if (reaches[from] === 0) {
        reaches[from] = 1;
        queue[tail++] = from;
      }
    }
  }
  return reaches.indexOf(0);
}
