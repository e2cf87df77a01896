/**
 * The contract between a model and the checker (see docs/checker.md).
 *
 * A model is a transition system: initial states, the actions enabled in a
 * state, and a pure `next`. The checker explores every reachable state
 * breadth-first, so the first violation it finds has a shortest trace.
 *
 * States are identified by the 64-bit fingerprint of `encode(canonical(s))`:
 * two states with the same bytes are the same state. `encode` must therefore
 * be canonical (no dependence on insertion order, object key order, ...), and
 * `decode(encode(s))` must give back a state equal to `s` for every purpose
 * of `actions`, `next`, the invariants and `describe`.
 */
import type { Role } from "./role.ts";

export interface Model<S, A> {
  /** Short identifier, e.g. "TwoPhase". */
  readonly name: string;
  init(): Iterable<S>;
  /** The enabled actions. An action that leaves the state unchanged still counts as generated. */
  actions(s: S): Iterable<A>;
  /** Pure: must not mutate `s`. */
  next(s: S, a: A): S;
  /** Safety properties, checked on every distinct state (initial states included). */
  readonly invariants: Readonly<Record<string, (s: S) => boolean>>;
  encode(s: S): Uint8Array;
  /**
   * Optional: `encode`'s bytes in a buffer the model reuses, valid only until its next call to `encode` or
   * `encodeView`. The one-thread engine fingerprints and copies them at once, so it asks for this when
   * offered (no buffer allocated per successor).
   */
  encodeView?(s: S): Uint8Array;
  decode(b: Uint8Array): S;
  /**
   * Possibility liveness ("AG EF goal"): from every reachable state, a goal
   * state must be reachable using only the actions `allowed` accepts (for
   * example: no more faults). This is how AC5 is stated: once faults stop,
   * every transaction can still finish. A state from which no goal is
   * reachable is a violation; its trace is the shortest path to it.
   * Checking it keeps the allowed edges of the state graph in memory, so it
   * is for small configurations.
   */
  readonly eventually?: Readonly<Record<string, Eventually<S, A>>>;
  /**
   * Leads-to under weak fairness, `from ~> to` (docs/checker.md, "Liveness
   * under fairness"): every fair behaviour that reaches a `from` state later
   * reaches a `to` state. Checked on the whole state graph after the search
   * (strongly connected components); a violation is a lasso, a shortest
   * prefix to a fair cycle that never meets `to`.
   */
  readonly leadsTo?: Readonly<Record<string, LeadsTo<S, A>>>;
  /** Eventually-always under weak fairness, `<>[]holds`: every fair behaviour ends up staying in `holds` states. */
  readonly eventuallyAlways?: Readonly<Record<string, EventuallyAlways<S, A>>>;
  /**
   * TLC's CONSTRAINT: a state where this is false is stored and its
   * invariants are checked, but it is not expanded (so it is never a
   * deadlock), and it is not counted in `distinct` (CheckResult.outside
   * counts it), as TLC does.
   */
  constraint?(s: S): boolean;
  /**
   * Symmetry reduction: map every state of an orbit to the same representative.
   * Used only when the checker is asked for it (`--symmetry`).
   */
  canonical?(s: S): S;
  /**
   * For the deadlock check: a state with no enabled action is a deadlock unless
   * the model says it is terminal. Without this method every state with no
   * action is a deadlock (when the check is on).
   */
  terminal?(s: S): boolean;
  /**
   * How a step looks in a sequence diagram: who acted, what it sent and
   * received. One action may draw as several consecutive trace steps (an
   * array), e.g. a shard executing a statement and the coordinator reacting
   * to its answer in the same atomic action: each element becomes one
   * TraceStep, in order, all with the state after the action.
   */
  describe?(from: S, a: A, to: S): StepInfo | readonly StepInfo[];
  /** A JSON view of a state for traces (defaults to the state itself). */
  view?(s: S): unknown;
  /** Lifelines in the order a diagram should draw them. */
  actors?(): string[];
  /**
   * The roles whose steps `describe` records, by actor name (`coordinator`,
   * `resolver`), as this model runs them (its mutant included), so that
   * conformance can replay a trace of this model against them.
   */
  roles?(): Readonly<Record<string, Role<any, any, any>>>;
  /**
   * Optional fast path for models whose states pack into an integer below
   * 2^53 (see docs/checker.md, "Packed states"). The engine then keeps states
   * as plain numbers, with no allocation per state, and uses the packed value
   * itself as the (collision-free) fingerprint. `encode`/`decode` and
   * `actions`/`next` must still work: traces are rebuilt with them.
   */
  readonly packed?: Packed<S>;
  /**
   * True when `encode`'s bytes mean something only to this model instance,
   * e.g. ids interned in tables the instance keeps (spec/env/collapse.ts).
   * Such bytes are canonical within one run, which is all one thread needs;
   * each worker thread builds its own instance, so the parallel engine moves
   * these states between threads as their parts (checker/portable.ts): the
   * bytes must then be one 32-bit id per part, in the order of a decoded
   * state's keys, as the collapser's are.
   */
  readonly localEncoding?: boolean;
}

/** States as integers: `pack` must be injective, `unpack(pack(s))` equal to `s`. */
export interface Packed<S> {
  /** An upper bound on the successors of one state (the length of the buffer `successors` fills). */
  readonly maxSuccessors: number;
  /** An integer in [0, 2^53). */
  pack(s: S): number;
  unpack(x: number): S;
  /**
   * Writes the packed successor of `x` for every enabled action, in any order,
   * unchanged states included (they count as generated), and returns how many.
   * Must agree with `actions` and `next` as a multiset.
   */
  successors(x: number, out: Float64Array): number;
}

export interface Eventually<S, A> {
  goal(s: S): boolean;
  /** Steps that may be taken on the way to the goal; all of them when absent. */
  allowed?(a: A): boolean;
}

/**
 * Weak fairness, as TLA+'s WF_vars: the name of the fair action that the
 * step `a` from `s` is a step of, or undefined when no fairness requires it.
 * Every name is one fair action (all the steps it names, together): if it
 * stays enabled (some step of it leads to another state) from some point on,
 * a step of it must eventually be taken. Steps that leave the state
 * unchanged count neither as enabling nor as taking it (they are stuttering).
 * `() => "next"` is WF_vars(Next); a name per process gives per-process
 * fairness.
 */
export type Fairness<S, A> = (s: S, a: A) => string | undefined;

export interface LeadsTo<S, A> {
  from(s: S): boolean;
  to(s: S): boolean;
  fair: Fairness<S, A>;
}

export interface EventuallyAlways<S, A> {
  holds(s: S): boolean;
  fair: Fairness<S, A>;
}

/** A message in a sequence diagram. Sends and receives are matched by `id`. */
export interface Msg {
  /** Stable identity of the message within one trace, e.g. "Prepared(rm2)". */
  id: string;
  from: string;
  to: string;
  label: string;
}

export interface StepInfo {
  /**
   * Who takes the step: a role's actor name as the server names it
   * (`coordinator`, `resolver`), or an environment's lifeline (a shard,
   * `txlog`, `client`, `process`).
   */
  actor: string;
  /** The transaction whose coordinator took the step, when several coordinators share the actor name. */
  tx?: string;
  /** Short text for the step, e.g. "TMCommit" (spec/labels.ts for the protocol models). */
  label: string;
  /**
   * What the actor got: for a role, the input it was fed (a JSON value, as
   * the server records it); for the environment, what it did in words
   * (`crash`, the request it answered). Absent: the label.
   */
  input?: unknown;
  /** A role's step: the effects the role asked for, in order. */
  effects?: readonly unknown[];
  sends?: Msg[];
  receives?: Msg[];
}

/** A model together with the named parameters it was built from. */
export interface Configured<S, A> {
  model: Model<S, A>;
  params: Record<string, string | number | boolean>;
}

/**
 * What a model module exports so the CLI and the suite can find it by name:
 * `speccommit check <name> --set key=value`.
 */
export interface ModelFactory {
  readonly name: string;
  readonly description: string;
  /** Parameter names with their defaults; `--set` values are parsed against these types. */
  readonly params: Readonly<Record<string, string | number | boolean>>;
  /** Named deliberate bugs; each must be caught by some invariant (or the deadlock/liveness check). */
  readonly mutants: readonly string[];
  build(params: Record<string, string | number | boolean>, mutant?: string): Model<any, any>;
}
