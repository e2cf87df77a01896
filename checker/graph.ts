/**
 * The engine's one hook for liveness: while it explores, it hands every new
 * state (in index order) and every edge of the state it expands to this
 * object, which feeds the possibility check (`eventually`, liveness.ts) and
 * the checks under fairness (`leadsTo`, `eventuallyAlways`, fairness.ts).
 * After a complete search, `check` turns what they find into violations
 * with their traces.
 */
import type { Model } from "../spec/kernel/model.ts";
import type { Violation, ViolationKind } from "./result.ts";
import { LivenessGraph } from "./liveness.ts";
import { FairGraph } from "./fairness.ts";
import { replay, toTrace, type Run, type StateKey, type StateKeying } from "./rebuild.ts";
import { UserError } from "./errors.ts";
import { U32List } from "./store.ts";

export interface Found {
  name: string;
  kind: ViolationKind;
  /** State indices from an initial state. */
  path: number[];
  /** A lasso: path[loop..] is its cycle (path[loop] again at the end; none when loop is the last index: stuttering). */
  loop?: number;
  /** Which action each step takes, by its position in `model.actions` (fairness.ts, Lasso); any that leads there when absent. */
  steps?: number[];
}

export class StateGraph<S, A> {
  private constructor(
    private readonly possible: LivenessGraph<S, A> | undefined,
    private readonly fair: FairGraph<S, A> | undefined,
  ) {}

  /** Undefined when the model has no liveness property (the engine then keeps no graph). */
  static of<S, A>(model: Model<S, A>, symmetry: boolean): StateGraph<S, A> | undefined {
    if (symmetry && FairGraph.wanted(model)) {
      throw new UserError(`${model.name}: leadsTo and eventuallyAlways are checked without symmetry reduction (fair actions name processes, which a permutation renames); run it without --symmetry`);
    }
    const liveness = Object.keys({ ...model.eventually, ...model.leadsTo, ...model.eventuallyAlways }).length > 0;
    if (model.constraint && liveness) {
      throw new UserError(`${model.name}: liveness properties are not checked with a state constraint (the states it cuts off would look like deadlocks to them); check them on a finite model without Model.constraint`);
    }
    const possible = model.eventually && Object.keys(model.eventually).length > 0 ? new LivenessGraph(model) : undefined;
    const fair = FairGraph.wanted(model) ? new FairGraph(model) : undefined;
    return possible || fair ? new StateGraph(possible, fair) : undefined;
  }

  /** The graph the parallel engine assembled from its workers' parts (GraphParts, assembleGraph). */
  static loaded<S, A>(model: Model<S, A>, g: AssembledGraph): StateGraph<S, A> {
    const possible = model.eventually && Object.keys(model.eventually).length > 0 ? new LivenessGraph(model) : undefined;
    const fair = FairGraph.wanted(model) ? new FairGraph(model) : undefined;
    possible?.load(g);
    fair?.load(g);
    return new StateGraph(possible, fair);
  }

  /** Bytes allocated for the graphs. */
  get bytes(): number {
    return (this.possible?.bytes ?? 0) + (this.fair?.bytes ?? 0);
  }

  addState(s: S): void {
    this.possible?.addState(s);
    this.fair?.addState(s);
  }

  beginState(index: number, s: S): void {
    this.possible?.beginState(index);
    this.fair?.beginState(index, s);
  }

  addEdge(a: A, target: number): void {
    this.possible?.addEdge(a, target);
    this.fair?.addEdge(a, target);
  }

  end(count: number): void {
    this.possible?.end(count);
    this.fair?.end(count);
  }

  /** Every violated property; `chain(i)` is the search's shortest path to state i. */
  check(initialCount: number, chain: (index: number) => number[]): Found[] {
    const stuck: Found[] = (this.possible?.check() ?? []).map((b) => ({ name: b.name, kind: "eventually", path: chain(b.index) }));
    return [...stuck, ...(this.fair?.check(initialCount) ?? [])];
  }
}

/**
 * A violation with its trace, rebuilt from the state keys along the path. A
 * lasso's header says where its cycle starts (TraceHeader.loop: the trace
 * step whose state the last step returns to).
 */
export function toViolation<S, A>(
  model: Model<S, A>,
  keying: StateKeying<S>,
  info: { params: Record<string, string | number | boolean>; mutant?: string },
  key: (index: number) => StateKey,
  found: Found,
): Violation {
  const keys = found.path.map(key);
  const header = { params: info.params, violation: found.name, ...(info.mutant ? { mutant: info.mutant } : {}) };
  const run = found.steps ? replaySteps(model, keying, keys, found.steps) : replay(model, keying, keys);
  if (found.loop === undefined) {
    return { name: found.name, kind: found.kind, length: run.actions.length, trace: toTrace(model, run, header) };
  }
  const cycle = run.actions.length - found.loop;
  const note =
    cycle === 0
      ? "lasso: the last state stutters forever (no fair action is enabled in it)"
      : `lasso: a ${found.loop}-step prefix, then a ${cycle}-step cycle back to the state of the marked step, repeated forever`;
  const trace = toTrace(model, run, { ...header, note });
  const prefix = toTrace(model, { states: run.states.slice(0, found.loop + 1), actions: run.actions.slice(0, found.loop) }, header);
  trace.header.loop = prefix.steps.length - 1;
  return { name: found.name, kind: found.kind, length: found.loop, cycle, trace };
}

/** Re-executes the given actions (by position) from the initial state with the first key, checking each state's key. */
function replaySteps<S, A>(model: Model<S, A>, keying: StateKeying<S>, keys: StateKey[], steps: number[]): Run<S, A> {
  const same = (a: StateKey, b: StateKey): boolean => (typeof a === "number" || typeof b === "number" ? a === b : Buffer.compare(a, b) === 0);
  const first = [...model.init()].find((s) => same(keying.of(s), keys[0]!));
  if (first === undefined) throw new Error(`${model.name}: lasso rebuild found no initial state with the stored key`);
  const run: Run<S, A> = { states: [first], actions: [] };
  steps.forEach((k, i) => {
    const from = run.states[i]!;
    const a = [...model.actions(from)][k];
    const to = a === undefined ? undefined : model.next(from, a);
    if (to === undefined || !same(keying.of(to), keys[i + 1]!)) {
      throw new Error(`${model.name}: lasso rebuild: action ${k} of step ${i} does not lead to the stored state (are actions() and next() deterministic?)`);
    }
    run.actions.push(a!);
    run.states.push(to);
  });
  return run;
}

/** Unset edge target (its owner has not told yet). */
const UNSET = 0xffffffff;

/**
 * One worker's share of the state graph (parallel engine): for the states it
 * owns, in its local order, their predicate and goal bits; for those it
 * expanded, their edges in CSR form with each edge's fair action ids and
 * allowed mask. A target is a global id (local index * workers + owner):
 * known at once for a successor this worker owns, else filled from the
 * `fixes` its owner sends back at the end (edge index here, owner's local index).
 */
export interface GraphParts {
  bits: Uint32Array;
  goals: Uint32Array;
  rowStart: Uint32Array;
  targets: Uint32Array;
  classes: Uint32Array[];
  allowed: Uint32Array;
  /** Per group, this worker's fair action names by local id. */
  names: string[][];
  /** Per peer p: pairs (edge index at p, local index here) for p's edges into states owned here. */
  fixes: Uint32Array[];
  /** Pairs (position in model.init(), local index) of the initial states owned here. */
  initial: Uint32Array;
}

/** What a worker records while it explores (it feeds the same predicates and fairness functions as StateGraph). */
export class GraphRecorder<S, A> {
  private readonly possible: LivenessGraph<S, A> | undefined;
  private readonly fair: FairGraph<S, A> | undefined;
  private readonly bits = new U32List();
  private readonly goals = new U32List();
  private readonly rowStart = new U32List();
  private readonly targets = new U32List();
  private readonly classes: U32List[];
  private readonly allowed = new U32List();
  private readonly fixes: U32List[];
  private readonly initial = new U32List();
  private expanding: S | undefined;

  private constructor(model: Model<S, A>, workers: number) {
    const eventually = Object.keys(model.eventually ?? {}).length;
    if (eventually > 32) throw new UserError(`${model.name}: at most 32 'eventually' properties per parallel check (it has ${eventually}); check fewer at a time with --property`);
    this.possible = eventually > 0 ? new LivenessGraph(model) : undefined;
    this.fair = FairGraph.wanted(model) ? new FairGraph(model) : undefined;
    this.classes = Array.from({ length: this.fair?.groupCount ?? 0 }, () => new U32List());
    this.fixes = Array.from({ length: workers }, () => new U32List());
  }

  /** Undefined when the model has no liveness property. */
  static of<S, A>(model: Model<S, A>, symmetry: boolean, workers: number): GraphRecorder<S, A> | undefined {
    return StateGraph.of(model, symmetry) ? new GraphRecorder(model, workers) : undefined;
  }

  get bytes(): number {
    const lists = [this.bits, this.goals, this.rowStart, this.targets, this.allowed, this.initial, ...this.classes, ...this.fixes];
    return lists.reduce((n, l) => n + l.bytes, 0);
  }

  /** A new state owned here, in local index order. */
  addState(s: S): void {
    this.bits.push(this.fair?.stateBits(s) ?? 0);
    this.goals.push(this.possible?.goalMask(s) ?? 0);
  }

  /** The initial state at position `ordinal` of model.init() is the local state `local`. */
  addInitial(ordinal: number, local: number): void {
    this.initial.push(ordinal);
    this.initial.push(local);
  }

  beginState(index: number, s: S): void {
    if (this.rowStart.length !== index) throw new Error(`graph: state ${index} expanded out of order`);
    this.rowStart.push(this.targets.length);
    this.expanding = s;
  }

  /** An edge of the state being expanded, target unknown yet; returns its index. */
  addEdge(a: A): number {
    const e = this.targets.length;
    this.targets.push(UNSET);
    for (let g = 0; g < this.classes.length; g++) this.classes[g]!.push(this.fair!.edgeClass(g, this.expanding!, a));
    this.allowed.push(this.possible?.allowedMask(a) ?? 0);
    return e;
  }

  setTarget(edge: number, gid: number): void {
    this.targets.data[edge] = gid;
  }

  /** Peer `from`'s edge `edge` leads to the local state `local`. */
  addFix(from: number, edge: number, local: number): void {
    this.fixes[from]!.push(edge);
    this.fixes[from]!.push(local);
  }

  /** Every state owned here expanded: `count` in all. The parts, copied out (to be transferred). */
  parts(count: number): GraphParts {
    while (this.rowStart.length <= count) this.rowStart.push(this.targets.length);
    const take = (l: U32List) => l.data.slice(0, l.length);
    return {
      bits: take(this.bits),
      goals: take(this.goals),
      rowStart: take(this.rowStart),
      targets: take(this.targets),
      classes: this.classes.map(take),
      allowed: take(this.allowed),
      names: this.classes.map((_, g) => this.fair!.actionNames(g)),
      fixes: this.fixes.map(take),
      initial: take(this.initial),
    };
  }
}

/** The whole graph in the one-thread engine's numbering, with its breadth-first parents. */
export interface AssembledGraph {
  bits: Uint32Array;
  goals: Uint32Array;
  rowStart: Uint32Array;
  targets: Uint32Array;
  classes: Uint32Array[];
  names: string[][];
  allowed: Uint32Array;
  initialCount: number;
  /** Global id (local index * workers + owner) of each state. */
  gids: Float64Array;
  /** Each state's parent in the breadth-first tree (-1 for an initial state). */
  parent: Int32Array;
}

/**
 * Joins the workers' parts into one graph numbered as the one-thread engine
 * numbers states: initial states in model.init() order, then breadth-first,
 * each state's successors in the order of its actions. The liveness checks
 * then see the very graph (numbers, edge order) the one-thread engine builds,
 * so they report the same counterexamples. Linear in states + edges.
 */
export function assembleGraph(parts: GraphParts[]): AssembledGraph {
  const n = parts.length;
  // Edges into a peer's states: their targets from the owner's fixes.
  parts.forEach((owner, o) => {
    owner.fixes.forEach((pairs, p) => {
      const targets = parts[p]!.targets;
      for (let i = 0; i < pairs.length; i += 2) targets[pairs[i]!] = pairs[i + 1]! * n + o;
    });
  });
  const counts = parts.map((p) => p.bits.length);
  const total = counts.reduce((a, b) => a + b, 0);
  const edgeTotal = parts.reduce((a, p) => a + p.targets.length, 0);
  const dense = new Int32Array(Math.max(...counts) * n).fill(-1);
  const gids = new Float64Array(total);
  const parent = new Int32Array(total);
  let next = 0;
  const number = (gid: number, from: number) => {
    if (dense[gid] !== -1) return;
    dense[gid] = next;
    gids[next] = gid;
    parent[next] = from;
    next++;
  };
  const initial: Array<[number, number]> = [];
  parts.forEach((p, w) => {
    for (let i = 0; i < p.initial.length; i += 2) initial.push([p.initial[i]!, p.initial[i + 1]! * n + w]);
  });
  initial.sort((a, b) => a[0] - b[0]);
  for (const [, gid] of initial) number(gid, -1);
  const initialCount = next;
  const rowStart = new Uint32Array(total + 1);
  const targets = new Uint32Array(edgeTotal);
  const allowed = new Uint32Array(edgeTotal);
  const groups = parts[0]?.classes.length ?? 0;
  const classes = Array.from({ length: groups }, () => new Uint32Array(edgeTotal));
  // Fair action ids: one numbering for all workers (ids are labels: the checks only compare them).
  const names: string[][] = Array.from({ length: groups }, () => []);
  const idMaps = Array.from({ length: groups }, () => new Map<string, number>());
  const translate = parts.map((p) =>
    p.names.map((list, g) =>
      Uint32Array.from([0, ...list.map((name) => {
        let id = idMaps[g]!.get(name);
        if (id === undefined) {
          names[g]!.push(name);
          idMaps[g]!.set(name, (id = names[g]!.length));
        }
        return id;
      })]),
    ),
  );
  const bits = new Uint32Array(total);
  const goals = new Uint32Array(total);
  let edges = 0;
  for (let s = 0; s < total; s++) {
    if (s >= next) throw new Error(`graph: ${total} states but only ${next} reachable from the initial ones`);
    const gid = gids[s]!;
    const w = gid % n;
    const local = (gid - w) / n;
    const p = parts[w]!;
    bits[s] = p.bits[local]!;
    goals[s] = p.goals[local]!;
    rowStart[s] = edges;
    for (let e = p.rowStart[local]!; e < p.rowStart[local + 1]!; e++) {
      const t = p.targets[e]!;
      if (t === UNSET) throw new Error(`graph: edge ${e} of worker ${w} has no target`);
      number(t, s);
      targets[edges] = dense[t]!;
      allowed[edges] = p.allowed[e]!;
      for (let g = 0; g < groups; g++) classes[g]![edges] = translate[w]![g]![p.classes[g]![e]!]!;
      edges++;
    }
  }
  rowStart[total] = edges;
  return { bits, goals, rowStart, targets, classes, names, allowed, initialCount, gids, parent };
}
