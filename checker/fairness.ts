/**
 * Liveness under weak fairness: leads-to (`from ~> to`) and eventually-always
 * (`<>[]holds`), checked on the state graph after the search
 * (docs/checker.md, "Liveness under fairness").
 *
 * Semantics, as TLA+'s: a behaviour is an infinite sequence of states from an
 * initial state, each step an edge of the graph or a stuttering step (the
 * state unchanged), which is always allowed. A property's `fair` names the
 * fair actions; each is weakly fair (WF_vars): if from some point on it is
 * enabled in every state (some step of it leads to another state), some step
 * of it is taken infinitely often. Steps that leave the state unchanged are
 * stuttering: they neither enable nor satisfy a fair action. So a state in
 * which no fair action is enabled may stutter forever (a deadlock is such a
 * state), and a behaviour may stop taking any step that is not fair.
 *
 * A violation of `P ~> Q` is a fair behaviour with a P state after which Q
 * never holds; of `<>[]P`, a fair behaviour in which ~P holds infinitely
 * often. In a finite graph such a behaviour ends up going round the states of
 * one strongly connected component C of the graph restricted to the states
 * it may visit (~Q states; all states for <>[]), and taking every state and
 * edge of C infinitely often only helps fairness, so: C admits a fair
 * behaviour iff every fair action enabled in every state of C is taken by
 * some edge inside C (weak fairness needs no recursive decomposition, unlike
 * strong fairness). A singleton C is fair iff no fair action is enabled in
 * it (it stutters).
 *
 * The counterexample is a lasso: the shortest prefix (breadth-first over
 * (state, P seen) pairs) to a state of such a component, then a cycle in it
 * from that state back to itself that meets every fairness obligation, each
 * reached by the nearest step that discharges it (short, not always the
 * shortest cycle). Tarjan's algorithm is iterative: no recursion, any depth.
 *
 * Memory, while the search runs: 8 bytes per state (predicate bits, first
 * edge) and 4 per edge, plus 4 per edge per distinct `fair` function (the
 * fair action's id); the check then needs about 60 bytes per state more.
 */
import type { Fairness, Model } from "../spec/kernel/model.ts";
import type { ViolationKind } from "./result.ts";
import { U32List } from "./store.ts";

interface Group<S, A> {
  fair: Fairness<S, A>;
  /** Fair action name -> id (1-based; 0 on an edge: not fair). */
  ids: Map<string, number>;
  /** Per edge, the id of the fair action it is a step of. */
  classes: U32List;
}

interface Property {
  name: string;
  kind: Extract<ViolationKind, "leadsTo" | "eventuallyAlways">;
  group: number;
  /** leadsTo: the bits of `from` and `to`; eventuallyAlways: the bit of `holds` (in `from`). */
  from: number;
  to: number;
}

/**
 * A lasso: `path[loop..]` is the cycle (its last state is `path[loop]`'s);
 * loop = path.length - 1: it stutters there. `steps[i]` says which of the
 * actions of `path[i]` (by its position in `model.actions(path[i])`) leads
 * to `path[i + 1]`: two actions may lead to the same state, and which one is
 * taken matters to fairness.
 */
export interface Lasso {
  name: string;
  kind: Property["kind"];
  path: number[];
  steps: number[];
  loop: number;
}

const MAX_PREDICATES = 32;

/** The graph the engine feeds while it explores (states in index order, the edges of each as it is expanded). */
export class FairGraph<S, A> {
  private readonly preds: Array<(s: S) => boolean> = [];
  private readonly props: Property[] = [];
  private readonly groups: Group<S, A>[] = [];
  private readonly bits = new U32List();
  private readonly rowStart = new U32List();
  private readonly targets = new U32List();
  private expanding: S | undefined;

  constructor(model: Model<S, A>) {
    const groupOf = (fair: Fairness<S, A>): number => {
      let g = this.groups.findIndex((x) => x.fair === fair);
      if (g < 0) g = this.groups.push({ fair, ids: new Map(), classes: new U32List() }) - 1;
      return g;
    };
    const bit = (p: (s: S) => boolean): number => this.preds.push(p) - 1;
    for (const [name, p] of Object.entries(model.leadsTo ?? {})) {
      this.props.push({ name, kind: "leadsTo", group: groupOf(p.fair), from: bit(p.from), to: bit(p.to) });
    }
    for (const [name, p] of Object.entries(model.eventuallyAlways ?? {})) {
      this.props.push({ name, kind: "eventuallyAlways", group: groupOf(p.fair), from: bit(p.holds), to: -1 });
    }
    if (this.preds.length > MAX_PREDICATES) {
      throw new Error(`${model.name}: at most ${MAX_PREDICATES} leadsTo/eventuallyAlways predicates per check (it has ${this.preds.length}); check fewer at a time with --property`);
    }
  }

  static wanted<S, A>(model: Model<S, A>): boolean {
    return Object.keys(model.leadsTo ?? {}).length + Object.keys(model.eventuallyAlways ?? {}).length > 0;
  }

  /** Bytes allocated for the graph while the search runs. */
  get bytes(): number {
    return this.bits.bytes + this.rowStart.bytes + this.targets.bytes + this.groups.reduce((n, g) => n + g.classes.bytes, 0);
  }

  addState(s: S): void {
    this.bits.push(this.stateBits(s));
  }

  /** The bits of the properties' predicates that hold in s. */
  stateBits(s: S): number {
    let m = 0;
    for (let i = 0; i < this.preds.length; i++) if (this.preds[i]!(s)) m |= 1 << i;
    return m >>> 0;
  }

  /** How many distinct `fair` functions (groups) the properties use. */
  get groupCount(): number {
    return this.groups.length;
  }

  /** The id (1-based, 0: not fair) of the fair action that the step a from s is, for group g; ids are given in order of first sight. */
  edgeClass(g: number, s: S, a: A): number {
    const group = this.groups[g]!;
    const name = group.fair(s, a);
    if (name === undefined) return 0;
    let id = group.ids.get(name) ?? 0;
    if (id === 0) group.ids.set(name, (id = group.ids.size + 1));
    return id;
  }

  /** Group g's fair action names, by id (names[id - 1]). */
  actionNames(g: number): string[] {
    return [...this.groups[g]!.ids.keys()];
  }

  /**
   * The graph assembled elsewhere (the parallel engine, from its workers'
   * parts): per state its predicate bits, the edges in CSR form, per group
   * each edge's fair action id and the names of the ids.
   */
  load(parts: { bits: Uint32Array; rowStart: Uint32Array; targets: Uint32Array; classes: Uint32Array[]; names: string[][] }): void {
    const fill = (list: U32List, data: Uint32Array) => {
      list.data = data;
      list.length = data.length;
    };
    fill(this.bits, parts.bits);
    fill(this.rowStart, parts.rowStart);
    fill(this.targets, parts.targets);
    this.groups.forEach((g, i) => {
      fill(g.classes, parts.classes[i]!);
      g.ids = new Map(parts.names[i]!.map((name, k) => [name, k + 1]));
    });
  }

  beginState(index: number, s: S): void {
    if (this.rowStart.length !== index) throw new Error(`fairness: state ${index} expanded out of order`);
    this.rowStart.push(this.targets.length);
    this.expanding = s;
  }

  addEdge(a: A, target: number): void {
    this.targets.push(target);
    for (let g = 0; g < this.groups.length; g++) this.groups[g]!.classes.push(this.edgeClass(g, this.expanding!, a));
  }

  end(count: number): void {
    while (this.rowStart.length <= count) this.rowStart.push(this.targets.length);
  }

  /** One lasso per violated property; `initialCount` states (indices 0..) are the initial ones. */
  check(initialCount: number): Lasso[] {
    const n = this.bits.length;
    const graph: Graph = { n, rowStart: this.rowStart.data, targets: this.targets.data, bits: this.bits.data };
    const out: Lasso[] = [];
    for (const p of this.props) {
      const g = this.groups[p.group]!;
      const has = (s: number, b: number) => (graph.bits[s]! >>> b) & 1;
      const spec: Search =
        p.kind === "leadsTo"
          ? { region: (s) => has(s, p.to) === 0, trigger: (s) => has(s, p.from) === 1 && has(s, p.to) === 0 }
          : { region: () => true, trigger: () => true, visit: (s) => has(s, p.from) === 0 };
      const found = findLasso(graph, { classes: g.classes.data, count: g.ids.size }, spec, initialCount);
      if (found) out.push({ name: p.name, kind: p.kind, ...found });
    }
    return out;
  }
}

interface Graph {
  n: number;
  rowStart: Uint32Array;
  targets: Uint32Array;
  bits: Uint32Array;
}

interface Classes {
  /** Per edge: fair action id, 0 = not fair. */
  classes: Uint32Array;
  /** Ids run from 1 to count. */
  count: number;
}

/**
 * What a violating behaviour looks like: it may take any path until a
 * `trigger` state, from there on it stays in `region`, and its cycle must
 * meet a `visit` state (when given).
 */
interface Search {
  region(s: number): boolean;
  trigger(s: number): boolean;
  visit?(s: number): boolean;
}

/** The shortest lasso of a violating fair behaviour, or undefined when there is none. */
export function findLasso(g: Graph, c: Classes, spec: Search, initialCount: number): { path: number[]; steps: number[]; loop: number } | undefined {
  const inRegion = new Uint8Array(g.n);
  for (let s = 0; s < g.n; s++) inRegion[s] = spec.region(s) ? 1 : 0;
  const comps = components(g, inRegion);
  const fair = fairComponents(g, c, comps, spec);
  if (!fair.includes(1)) return undefined;
  const prefix = shortestPrefix(g, inRegion, comps.comp, fair, spec, initialCount);
  if (prefix === undefined) return undefined;
  const entry = prefix.states[prefix.states.length - 1]!;
  const cycle = fairCycle(g, c, comps.comp, entry, spec);
  const path = [...prefix.states, ...cycle.map((x) => x.s)];
  const edges = [...prefix.edges, ...cycle.map((x) => x.e)];
  return { path, steps: edges.map((e, i) => e - g.rowStart[path[i]!]!), loop: prefix.states.length - 1 };
}

interface Components {
  /** Component of each state of the region; -1 outside it. */
  comp: Int32Array;
  /** The states grouped by component: component k is order[start[k] .. start[k + 1]). */
  order: Uint32Array;
  start: number[];
}

/** Edges from s that lead to another state (self-loops are stuttering). */
function forEachEdge(g: Graph, s: number, f: (target: number, edge: number) => void): void {
  for (let e = g.rowStart[s]!; e < g.rowStart[s + 1]!; e++) {
    const t = g.targets[e]!;
    if (t !== s) f(t, e);
  }
}

/** Tarjan's strongly connected components of the graph restricted to the region, with an explicit stack. */
function components(g: Graph, inRegion: Uint8Array): Components {
  const n = g.n;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const comp = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack = new Uint32Array(n);
  const frames = new Uint32Array(n);
  const nextEdge = new Uint32Array(n);
  const order = new Uint32Array(n);
  const start: number[] = [];
  let sp = 0;
  let fp = 0;
  let counter = 0;
  let placed = 0;
  const open = (v: number) => {
    index[v] = low[v] = counter++;
    stack[sp++] = v;
    onStack[v] = 1;
    frames[fp++] = v;
    nextEdge[v] = g.rowStart[v]!;
  };
  for (let root = 0; root < n; root++) {
    if (inRegion[root] === 0 || index[root] !== -1) continue;
    open(root);
    while (fp > 0) {
      const v = frames[fp - 1]!;
      const e = nextEdge[v]!;
      if (e < g.rowStart[v + 1]!) {
        nextEdge[v] = e + 1;
        const w = g.targets[e]!;
        if (w === v || inRegion[w] === 0) continue;
        if (index[w] === -1) open(w);
        else if (onStack[w] === 1 && index[w]! < low[v]!) low[v] = index[w]!;
        continue;
      }
      fp--;
      if (fp > 0) {
        const parent = frames[fp - 1]!;
        if (low[v]! < low[parent]!) low[parent] = low[v]!;
      }
      if (low[v] !== index[v]) continue;
      const k = start.length;
      start.push(placed);
      let w: number;
      do {
        w = stack[--sp]!;
        onStack[w] = 0;
        comp[w] = k;
        order[placed++] = w;
      } while (w !== v);
    }
  }
  start.push(placed);
  return { comp, order, start };
}

/**
 * Per component, 1 when a fair behaviour can stay in it forever: every fair
 * action enabled in all of its states is taken by one of its inner edges
 * (and it holds a `visit` state, when asked).
 */
function fairComponents(g: Graph, c: Classes, comps: Components, spec: Search): Uint8Array {
  const k = comps.start.length - 1;
  const fair = new Uint8Array(k);
  const seenIn = new Int32Array(c.count + 1).fill(-1);
  const enabledIn = new Uint32Array(c.count + 1);
  const takenIn = new Int32Array(c.count + 1).fill(-1);
  for (let x = 0; x < k; x++) {
    const from = comps.start[x]!;
    const to = comps.start[x + 1]!;
    const touched: number[] = [];
    let visits = spec.visit === undefined;
    for (let i = from; i < to; i++) {
      const s = comps.order[i]!;
      if (!visits && spec.visit!(s)) visits = true;
      forEachEdge(g, s, (t, e) => {
        const id = c.classes[e]!;
        if (id === 0) return;
        if (comps.comp[t] === x) takenIn[id] = x;
        if (seenIn[id] === s) return;
        seenIn[id] = s;
        if (enabledIn[id] === 0) touched.push(id);
        enabledIn[id]!++;
      });
    }
    let ok = visits;
    for (const id of touched) {
      if (enabledIn[id] === to - from && takenIn[id] !== x) ok = false;
      enabledIn[id] = 0;
    }
    fair[x] = ok ? 1 : 0;
  }
  return fair;
}

/**
 * Breadth-first over (state, mode): mode 0 before the trigger, mode 1 after
 * it (inside the region only). The first mode-1 node found in a fair
 * component ends a shortest prefix.
 */
function shortestPrefix(
  g: Graph,
  inRegion: Uint8Array,
  comp: Int32Array,
  fair: Uint8Array,
  spec: Search,
  initialCount: number,
): { states: number[]; edges: number[] } | undefined {
  const parent = new Int32Array(2 * g.n).fill(-2);
  const via = new Int32Array(2 * g.n);
  const queue = new Uint32Array(2 * g.n);
  let tail = 0;
  let target = -1;
  let edge = -1;
  const push = (node: number, from: number): boolean => {
    if (parent[node] !== -2) return false;
    parent[node] = from;
    via[node] = edge;
    queue[tail++] = node;
    const s = node >>> 1;
    if ((node & 1) === 1 && comp[s]! >= 0 && fair[comp[s]!] === 1) target = node;
    return target >= 0;
  };
  /** A state entered in mode 0 also starts mode 1 there when it triggers, with the same parent (no extra step). */
  const enter = (s: number, from: number, mode: number): boolean => {
    if (mode === 1) return push(2 * s + 1, from);
    if (push(2 * s, from)) return true;
    return inRegion[s] === 1 && spec.trigger(s) && push(2 * s + 1, from);
  };
  for (let s = 0; s < initialCount && target < 0; s++) enter(s, -1, 0);
  for (let head = 0; head < tail && target < 0; head++) {
    const node = queue[head]!;
    const s = node >>> 1;
    const mode = node & 1;
    for (let e = g.rowStart[s]!; e < g.rowStart[s + 1]! && target < 0; e++) {
      const t = g.targets[e]!;
      if (t === s || (mode === 1 && inRegion[t] === 0)) continue;
      edge = e;
      enter(t, node, mode);
    }
  }
  if (target < 0) return undefined;
  const states: number[] = [];
  const edges: number[] = [];
  for (let at = target; at >= 0; at = parent[at]!) {
    states.push(at >>> 1);
    if (parent[at]! >= 0) edges.push(via[at]!);
  }
  return { states: states.reverse(), edges: edges.reverse() };
}

/** The fair actions enabled in s (some step of them leads to another state). */
function enabledAt(g: Graph, c: Classes, s: number): Set<number> {
  const ids = new Set<number>();
  forEachEdge(g, s, (_t, e) => {
    if (c.classes[e]! > 0) ids.add(c.classes[e]!);
  });
  return ids;
}

/**
 * A cycle from `entry` back to it inside its component that discharges every
 * fair action enabled at `entry`: each is either taken by a step of the
 * cycle or disabled in one of its states (and a `visit` state is met, when
 * asked). Greedy: walk to the nearest step or state that discharges one of
 * the remaining obligations, repeat, then walk back. No step means the
 * behaviour stutters at `entry` forever. The steps after `entry`: the state
 * each enters and the edge taken.
 */
function fairCycle(g: Graph, c: Classes, comp: Int32Array, entry: number, spec: Search): Array<{ s: number; e: number }> {
  const home = comp[entry]!;
  const enabled = new Map<number, Set<number>>();
  const enabledHere = (s: number): Set<number> => {
    let ids = enabled.get(s);
    if (ids === undefined) enabled.set(s, (ids = enabledAt(g, c, s)));
    return ids;
  };
  const due = new Set(enabledHere(entry));
  let mustVisit = spec.visit !== undefined && !spec.visit(entry);
  const discharges = (s: number): boolean => (mustVisit && spec.visit!(s)) || [...due].some((id) => !enabledHere(s).has(id));
  const cycle: Array<{ s: number; e: number }> = [];
  let at = entry;
  while (due.size > 0 || mustVisit) {
    for (const step of walk(g, comp, home, at, (s, e) => due.has(c.classes[e]!) || discharges(s))) {
      due.delete(c.classes[step.e]!);
      for (const id of due) if (!enabledHere(step.s).has(id)) due.delete(id);
      if (mustVisit && spec.visit!(step.s)) mustVisit = false;
      cycle.push(step);
      at = step.s;
    }
  }
  if (at !== entry) for (const step of walk(g, comp, home, at, (s) => s === entry)) cycle.push(step);
  return cycle;
}

/**
 * Breadth-first inside component `home` from `from` to the nearest step
 * (edge e into state s) for which `goal(s, e)` holds; the steps, in order.
 */
function walk(g: Graph, comp: Int32Array, home: number, from: number, goal: (s: number, e: number) => boolean): Array<{ s: number; e: number }> {
  const via = new Map<number, { prev: number; e: number }>([[from, { prev: -1, e: -1 }]]);
  const queue = [from];
  for (let head = 0; head < queue.length; head++) {
    const s = queue[head]!;
    for (let e = g.rowStart[s]!; e < g.rowStart[s + 1]!; e++) {
      const t = g.targets[e]!;
      if (t === s || comp[t] !== home) continue;
      if (goal(t, e)) {
        const steps = [{ s: t, e }];
        for (let at = s; at !== from; at = via.get(at)!.prev) steps.push({ s: at, e: via.get(at)!.e });
        return steps.reverse();
      }
      if (via.has(t)) continue;
      via.set(t, { prev: s, e });
      queue.push(t);
    }
  }
  throw new Error(`fairness: no way inside component ${home} from state ${from} (the component is not strongly connected?)`);
}
