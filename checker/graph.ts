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
