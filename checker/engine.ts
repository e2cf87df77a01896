/**
 * The one-thread engine: breadth-first search over a Model.
 *
 * States are numbered in discovery order, which for BFS is also depth order;
 * the queue is simply "every state from index `head` on". Per state we keep
 * its key (a packed number, or its canonical bytes) and its parent's index,
 * nothing else; the visited set is a table of 64-bit keys (table.ts). The first
 * violation found is therefore at minimal depth, and its trace (rebuilt by
 * re-executing the model along the parent chain) is a shortest one.
 *
 * Two loops share this bookkeeping: one for packed models (no allocation per
 * state: a reused Float64Array of successors) and one for ordinary models
 * (encode, fingerprint, bytes in an arena).
 */
import type { Model } from "../spec/kernel/model.ts";
import type { CheckOptions, CheckResult, Violation, ViolationKind } from "./result.ts";
import { collisionChance, peakRssMb, progressLine, toMb } from "./result.ts";
import { KeySet, StateTable } from "./table.ts";
import { ByteArena, F64List, U32List } from "./store.ts";
import { fingerprint, mixSlot, TWO_POW_32 } from "./hash.ts";
import { replay, stateKeying, toTrace, type StateKey, type StateKeying } from "./rebuild.ts";
import { StateGraph, toViolation } from "./graph.ts";
import { Constraint } from "./constraint.ts";

export interface RunInfo {
  params: Record<string, string | number | boolean>;
  mutant?: string;
}

interface Found {
  index: number;
  names: string[];
  kind: ViolationKind;
}

/** What both loops share: counters, limits, parents, progress. */
class Search<S, A> {
  readonly parents = new U32List();
  readonly started = performance.now();
  distinct = 0;
  generated = 0;
  /** Depth (1-based) of the states being expanded, and the index where the next level starts. */
  level = 1;
  levelEnd = 0;
  maxLevel = 0;
  stopped: string | undefined;
  found: Found | undefined;
  private nextReport: number;
  private readonly deadline: number;
  readonly invariantNames: string[];
  readonly invariantFns: Array<(s: S) => boolean>;
  readonly stateLimit: number;
  /** States below this index are initial (their parent link is meaningless). */
  initialCount = 0;
  /** The search reached --max-depth: the states left in the queue are at that depth (probeDepthLimit). */
  atDepthLimit = false;
  /** Whether a progress line was printed (then a last one closes the series). */
  reported = false;
  /** Where the packed loop leaves the values of its cache-warming loads, so they are not dead code. */
  sink = 0;
  readonly constraint: Constraint<S> | undefined;

  constructor(
    readonly model: Model<S, A>,
    readonly opts: CheckOptions,
  ) {
    this.invariantNames = Object.keys(model.invariants);
    this.invariantFns = this.invariantNames.map((n) => model.invariants[n]!);
    this.nextReport = this.started + (opts.progressMs ?? 2000);
    this.stateLimit = opts.maxStates ?? Infinity;
    this.deadline = opts.maxSeconds === undefined ? Infinity : this.started + opts.maxSeconds * 1000;
    this.constraint = Constraint.of(model);
  }

  seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Invariants of a newly stored state; records the first violation. */
  checkInvariants(s: S, index: number): void {
    // Model.constraint (constraint.ts): every new state passes here once; levelEnd is 0 while initial states are stored.
    this.constraint?.admit(s, index, this.levelEnd === 0 ? 1 : this.level + 1);
    let broken: string[] | undefined;
    const fns = this.invariantFns;
    for (let i = 0; i < fns.length; i++) {
      if (!fns[i]!(s)) (broken ??= []).push(this.invariantNames[i]!);
    }
    if (broken) this.found = { index, names: broken, kind: "invariant" };
  }

  checkDeadlock(s: S, index: number): void {
    if (!this.opts.deadlock) return;
    if (this.model.terminal && this.model.terminal(s)) return;
    this.found = { index, names: ["deadlock"], kind: "deadlock" };
  }

  /**
   * Called before expanding the state at `head`: moves to the next level when
   * needed and applies the limits. Returns false to stop.
   */
  beforeExpand(head: number): boolean {
    if (head === this.levelEnd) {
      this.level++;
      this.levelEnd = this.distinct;
    }
    if (this.opts.maxDepth !== undefined && this.level >= this.opts.maxDepth) {
      this.atDepthLimit = true;
      return false;
    }
    return true;
  }

  /**
   * The states from `head` on are at the depth limit: they are not expanded
   * (no successor is stored or counted), but each one's actions are
   * enumerated, so a deadlock at that depth is reported like any other. The
   * search is incomplete only if one of them has an enabled action.
   */
  probeDepthLimit(head: number, probe: (index: number) => { state: S; enabled: number }): void {
    let more = false;
    for (let i = head; i < this.distinct && !this.found; i++) {
      if (this.constraint?.outside(i)) continue;
      const { state, enabled } = probe(i);
      if (enabled > 0) more = true;
      else this.checkDeadlock(state, i);
    }
    // A violation among them is what the run reports (complete is false either way).
    if (more && !this.found) this.stopped = `max depth ${this.opts.maxDepth}`;
  }

  /** The state limit, checked before every expansion. */
  full(): boolean {
    if (this.distinct < this.stateLimit) return false;
    this.stopped = `max states ${this.opts.maxStates}`;
    return true;
  }

  /** Progress and the time limit; called every few thousand expansions. */
  tick(head: number): boolean {
    const now = performance.now();
    if (now >= this.deadline) {
      this.stopped = `max seconds ${this.opts.maxSeconds}`;
      return false;
    }
    if (this.opts.progress && now >= this.nextReport) {
      this.nextReport = now + (this.opts.progressMs ?? 2000);
      this.reported = true;
      this.opts.progress(this.progressText(head));
    }
    return true;
  }

  progressText(head: number): string {
    return progressLine({
      distinct: this.distinct,
      generated: this.generated,
      queue: this.distinct - head,
      depth: this.maxLevel,
      seconds: this.seconds(),
    });
  }

  chain(index: number): number[] {
    const path = [index];
    let at = index;
    while (at >= this.initialCount) {
      at = this.parents.data[at]!;
      path.push(at);
    }
    return path.reverse();
  }
}

export function check<S, A>(model: Model<S, A>, opts: CheckOptions = {}, info: RunInfo = { params: {} }): CheckResult {
  if (opts.symmetry && !model.canonical) {
    throw new Error(`${model.name} declares no symmetry (Model.canonical); run it without --symmetry`);
  }
  const search = new Search(model, opts);
  const cpu = process.cpuUsage();
  // Liveness checks (liveness.ts, fairness.ts) need the state graph: the engine feeds it through this hook.
  const liveness = StateGraph.of(model, !!opts.symmetry);
  // The packed loop keeps no state graph; a packed model with liveness properties runs the generic loop (and is rebuilt from its bytes).
  const packedLoop = !!model.packed && !liveness;
  const { key, keying, bytes } = packedLoop ? explorePacked(search) : exploreGeneric(search, liveness);

  const violations: Violation[] = [];
  const makeViolation = (index: number, name: string, kind: ViolationKind): Violation => {
    const keys = search.chain(index).map(key);
    const run = replay(model, keying, keys);
    return {
      name,
      kind,
      length: run.actions.length,
      trace: toTrace(model, run, { params: info.params, violation: name, ...(info.mutant ? { mutant: info.mutant } : {}) }),
    };
  };
  if (search.found) {
    for (const name of search.found.names) violations.push(makeViolation(search.found.index, name, search.found.kind));
  } else if (liveness && !search.stopped) {
    for (const found of liveness.check(search.initialCount, (i) => search.chain(i))) violations.push(toViolation(model, keying, info, key, found));
  }
  const seconds = search.seconds();
  const used = process.cpuUsage(cpu);
  // A last line closes a series of progress lines; a run too short for any prints none.
  if (opts.progress && search.reported) opts.progress(search.progressText(search.distinct));
  return {
    model: model.name,
    params: info.params,
    ...(info.mutant ? { mutant: info.mutant } : {}),
    workers: 1,
    symmetry: !!opts.symmetry,
    // TLC leaves states outside the constraint out of distinct and depth (constraint.ts).
    distinct: search.distinct - (search.constraint?.outsideCount ?? 0),
    ...(search.constraint ? { outside: search.constraint.outsideCount } : {}),
    generated: search.generated,
    depth: search.constraint ? search.constraint.depth : search.maxLevel,
    ...(packedLoop ? {} : { fingerprintCollision: collisionChance(search.distinct, search.generated) }),
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    storeMb: toMb(bytes + search.parents.bytes + (liveness?.bytes ?? 0) + (search.constraint?.bytes ?? 0)),
    peakRssMb: peakRssMb(),
    // Complete: every reachable state explored; a search stopped at its first violation is not.
    complete: search.stopped === undefined && search.found === undefined,
    ...(search.stopped ? { incomplete: search.stopped } : {}),
    violations,
  };
}

const TICK_MASK = 4095;

/**
 * A model function (actions, next, encode, canonical, an invariant) threw:
 * say where, so the model's author can reproduce it.
 */
function modelError<S, A>(model: Model<S, A>, e: unknown, s: S, depth: number, action: A | undefined): Error {
  const show = (v: unknown) => {
    let text: string;
    try {
      text = JSON.stringify(v) ?? String(v);
    } catch {
      text = String(v);
    }
    return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
  };
  const state = show(model.view ? model.view(s) : s);
  const step = action === undefined ? "enumerating its actions" : `on action ${show(action)} (next, encode, canonical or an invariant of the successor)`;
  return new Error(`${model.name}: the model threw ${step} from a state at depth ${depth}: ${(e as Error)?.message ?? String(e)}\nstate: ${state}`, { cause: e });
}

/** What a loop leaves for the rebuild: a stored state's key, and the keying that made it. */
interface Stored<S> {
  key: (index: number) => StateKey;
  keying: StateKeying<S>;
  /** Bytes the loop allocated for states (table, keys). */
  bytes: number;
}

/** The loop for packed models. */
function explorePacked<S, A>(search: Search<S, A>): Stored<S> {
  const model = search.model;
  const packed = model.packed!;
  const canonical = search.opts.symmetry ? model.canonical!.bind(model) : undefined;
  const states = new F64List(1 << 16);
  const table = new KeySet(16);
  const parents = search.parents;
  const keying = stateKeying(model, !!search.opts.symmetry, true);
  const keyOf = (s: S) => keying.of(s) as number;
  const isNew = (y: number) => {
    const hi = Math.floor(y / TWO_POW_32);
    const lo = y >>> 0;
    return table.add(mixSlot(hi, lo), hi, lo);
  };

  for (const s of model.init()) {
    search.generated++;
    const x = keyOf(s);
    if (!isNew(x)) continue;
    states.push(x);
    parents.push(0);
    search.checkInvariants(canonical ? packed.unpack(x) : s, search.distinct);
    search.distinct++;
    search.maxLevel = 1;
    if (search.found) break;
  }
  search.initialCount = search.distinct;
  search.levelEnd = search.distinct;
  search.level = 1;

  const out = new Float64Array(packed.maxSuccessors);
  const his = new Uint32Array(packed.maxSuccessors);
  const los = new Uint32Array(packed.maxSuccessors);
  const hashes = new Uint32Array(packed.maxSuccessors);
  let touched = 0;
  let head = 0;
  while (!search.found && head < search.distinct) {
    if (search.full()) break;
    if (head === search.levelEnd || (head & TICK_MASK) === 0) {
      if (!search.beforeExpand(head) || !search.tick(head)) break;
    }
    if (search.constraint?.outside(head)) {
      head++;
      continue;
    }
    const x = states.data[head]!;
    const n = packed.successors(x, out);
    search.generated += n;
    if (n === 0) {
      search.checkDeadlock(packed.unpack(x), head);
      if (search.found) break;
    }
    // Two passes: compute every successor's key and touch its slot, then
    // probe. The touches are independent loads, so their cache misses overlap.
    let m = 0;
    for (let i = 0; i < n; i++) {
      let y = out[i]!;
      // An unchanged state is generated (counted above) but is already stored.
      if (y === x) continue;
      if (canonical) y = packed.pack(canonical(packed.unpack(y)));
      const hi = Math.floor(y / TWO_POW_32);
      const lo = y >>> 0;
      const hash = mixSlot(hi, lo);
      touched ^= table.peek(hash);
      out[m] = y;
      his[m] = hi;
      los[m] = lo;
      hashes[m] = hash;
      m++;
    }
    for (let j = 0; j < m; j++) {
      if (!table.add(hashes[j]!, his[j]!, los[j]!)) continue;
      const y = out[j]!;
      states.push(y);
      parents.push(head);
      search.maxLevel = search.level + 1;
      search.checkInvariants(packed.unpack(y), search.distinct);
      search.distinct++;
      if (search.found) break;
    }
    head++;
  }
  if (search.atDepthLimit) search.probeDepthLimit(head, (i) => ({ state: packed.unpack(states.data[i]!), enabled: packed.successors(states.data[i]!, out) }));
  search.sink = touched;
  return { key: (index) => states.data[index]!, keying, bytes: states.bytes + table.bytes };
}

/** The loop for ordinary models: states are decoded from, and encoded to, canonical bytes. */
function exploreGeneric<S, A>(search: Search<S, A>, liveness: StateGraph<S, A> | undefined): Stored<S> {
  const model = search.model;
  const keying = stateKeying(model, !!search.opts.symmetry, false);
  const arena = new ByteArena();
  const table = new StateTable(16);
  const parents = search.parents;
  const fp = new Uint32Array(2);

  /** Stores s if new; returns its index either way. */
  const visit = (s: S, parent: number): number => {
    const c = keying.canonical(s);
    // A view the model may reuse (Model.encodeView): fingerprinted and copied into the arena before the next encode.
    const bytes = keying.viewOfCanonical(c);
    fingerprint(bytes, fp);
    const seen = table.findOrAdd(fp[0]!, fp[1]!, search.distinct);
    if (seen >= 0) return seen;
    const index = search.distinct++;
    arena.push(bytes);
    parents.push(parent);
    liveness?.addState(c);
    search.checkInvariants(c, index);
    return index;
  };

  for (const s of model.init()) {
    search.generated++;
    visit(s, 0);
    search.maxLevel = 1;
    if (search.found) break;
  }
  search.initialCount = search.distinct;
  search.levelEnd = search.distinct;
  search.level = 1;

  let head = 0;
  while (!search.found && head < search.distinct) {
    if (search.full()) break;
    if (head === search.levelEnd || (head & TICK_MASK) === 0) {
      if (!search.beforeExpand(head) || !search.tick(head)) break;
    }
    if (search.constraint?.outside(head)) {
      head++;
      continue;
    }
    const s = model.decode(arena.get(head));
    liveness?.beginState(head, s);
    let enabled = 0;
    let action: A | undefined;
    try {
      for (const a of model.actions(s)) {
        action = a;
        enabled++;
        search.generated++;
        const before = search.distinct;
        const index = visit(model.next(s, a), head);
        if (search.distinct > before) search.maxLevel = search.level + 1;
        liveness?.addEdge(a, index);
        if (search.found) break;
      }
    } catch (e) {
      throw modelError(model, e, s, search.level, action);
    }
    if (enabled === 0 && !search.found) search.checkDeadlock(s, head);
    head++;
  }
  if (search.atDepthLimit) {
    search.probeDepthLimit(head, (i) => {
      const state = model.decode(arena.get(i));
      let enabled = 0;
      for (const _ of model.actions(state)) enabled++;
      return { state, enabled };
    });
  }
  liveness?.end(search.distinct);
  return { key: (index) => arena.get(index).slice(), keying, bytes: arena.bytes + table.bytes };
}
