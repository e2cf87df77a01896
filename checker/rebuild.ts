/**
 * Rebuilding a counterexample from the stored chain of state keys.
 *
 * The engine keeps, per state, only its key (packed value or canonical bytes)
 * and its parent's index. To turn a chain of keys into a trace we re-execute
 * the model from an initial state: at each step, the action taken is one
 * whose successor has the next key. With symmetry on, the stored keys are
 * orbit representatives; we follow the real successors (whose canonical form
 * has the next key), so the trace is a genuine run of the model, not a walk
 * between representatives.
 */
import type { Model, StepInfo } from "../spec/kernel/model.ts";
import type { Trace, TraceStep } from "../spec/kernel/trace.ts";

export type StateKey = Uint8Array | number;

export interface Run<S, A> {
  states: S[];
  actions: A[];
}

function keyText(k: StateKey): string {
  return typeof k === "number" ? `n${k}` : `b${Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("hex")}`;
}

/**
 * How a search names a state: its packed number (Model.packed) or its
 * canonical bytes (Model.encode), after symmetry's canonical form when on.
 * A search picks one representation and stores the keys `of` makes; the
 * rebuild compares with the same `of`, so the two can never disagree (a
 * packed model checked by the generic loop, as with liveness properties,
 * stores bytes and is rebuilt from bytes).
 */
export interface StateKeying<S> {
  readonly packed: boolean;
  /** The canonical form the search stores (s itself without symmetry). */
  canonical(s: S): S;
  /** The key of a state already in canonical form. */
  ofCanonical(c: S): StateKey;
  /** The key of any state. */
  of(s: S): StateKey;
  /** ofCanonical's bytes, possibly in a buffer the model reuses (Model.encodeView): valid until the next call; not for packed keyings. */
  viewOfCanonical(c: S): Uint8Array;
}

export function stateKeying<S, A>(model: Model<S, A>, symmetry: boolean, packed: boolean): StateKeying<S> {
  if (packed && !model.packed) throw new Error(`${model.name} has no packed form (Model.packed)`);
  const canonical = symmetry && model.canonical ? model.canonical.bind(model) : (s: S) => s;
  const ofCanonical = packed ? (c: S): StateKey => model.packed!.pack(c) : (c: S): StateKey => model.encode(c);
  const viewOfCanonical = model.encodeView ? model.encodeView.bind(model) : (c: S): Uint8Array => model.encode(c);
  return { packed, canonical, ofCanonical, of: (s) => ofCanonical(canonical(s)), viewOfCanonical };
}

/** The key with the packed form when the model has one (the packed loop's and the workers' keying). */
export function keyOf<S, A>(model: Model<S, A>, symmetry: boolean, s: S): StateKey {
  return stateKeying(model, symmetry, !!model.packed).of(s);
}

/** Re-executes the model along `keys`, made by `keying.of` (the search's own keying). */
export function replay<S, A>(model: Model<S, A>, keying: StateKeying<S>, keys: StateKey[]): Run<S, A> {
  const want = keys.map(keyText);
  const text = (s: S) => keyText(keying.of(s));
  let current: S | undefined;
  for (const s of model.init()) {
    if (text(s) === want[0]) {
      current = s;
      break;
    }
  }
  if (current === undefined) throw new Error(`${model.name}: trace rebuild found no initial state with the stored key`);
  const states: S[] = [current];
  const actions: A[] = [];
  for (let i = 1; i < want.length; i++) {
    let found = false;
    for (const a of model.actions(current)) {
      const next = model.next(current, a);
      if (text(next) === want[i]) {
        actions.push(a);
        states.push(next);
        current = next;
        found = true;
        break;
      }
    }
    if (!found) {
      throw new Error(`${model.name}: trace rebuild found no action from step ${i - 1} to the stored state (is next() pure and encode() canonical?)`);
    }
  }
  return { states, actions };
}

function actionText(a: unknown): string {
  return typeof a === "string" ? a : JSON.stringify(a);
}

/** A run as a trace (spec/kernel/trace.ts): step 0 is the initial state, then the steps each action draws as. */
export function toTrace<S, A>(
  model: Model<S, A>,
  run: Run<S, A>,
  header: { params: Record<string, string | number | boolean>; violation: string; note?: string; mutant?: string },
): Trace {
  const view = (s: S) => (model.view ? model.view(s) : s);
  const actors = model.actors?.();
  const steps: TraceStep[] = [
    { step: 0, actor: actors?.[0] ?? "system", input: "Init", label: "Init", effects: [], state: view(run.states[0]!) },
  ];
  run.actions.forEach((a, i) => {
    const from = run.states[i]!;
    const to = run.states[i + 1]!;
    const described = model.describe ? model.describe(from, a, to) : { actor: "system", label: actionText(a) };
    // One action may draw as several steps (Model.describe); each carries the state after the action.
    const infos: readonly StepInfo[] = Array.isArray(described) ? described : [described as StepInfo];
    for (const info of infos) {
      // The step as the server records one (docs/traces.md): a role's input and effects, or the environment's words.
      const step: TraceStep = { step: steps.length, actor: info.actor, ...(info.tx !== undefined ? { tx: info.tx } : {}), input: info.input ?? info.label, label: info.label, effects: [...(info.effects ?? [])], state: view(to) };
      if (info.sends && info.sends.length > 0) step.sends = info.sends;
      if (info.receives && info.receives.length > 0) step.receives = info.receives;
      steps.push(step);
    }
  });
  return {
    header: {
      source: "checker",
      model: model.name,
      ...(header.mutant ? { mutant: header.mutant } : {}),
      params: header.params,
      ...(actors ? { actors } : {}),
      violation: header.violation,
      length: run.actions.length,
      ...(header.note ? { note: header.note } : {}),
    },
    steps,
  };
}
