/**
 * One trace format for a counterexample, a simulation and a live run
 * (docs/traces.md): NDJSON, the first line a header, then one line per
 * step. The renderer draws any of them as a message sequence diagram; trace
 * validation replays a live one against the spec.
 *
 *   {"header":{"source":"checker","model":"TwoPhase","params":{"RM":3},"actors":["TM","rm1"],"violation":"TCConsistent"}}
 *   {"step":1,"actor":"rm1","input":"RMPrepare(rm1)","effects":[],"sends":[{"id":"Prepared(rm1)","from":"rm1","to":"TM","label":"Prepared"}]}
 *   ...
 */
import type { Msg } from "./model.ts";

export type { Msg };

export interface TraceHeader {
  /** Who wrote the trace. */
  source: "checker" | "simulation" | "runtime";
  model?: string;
  params?: Record<string, string | number | boolean>;
  /** Lifelines, in drawing order. Actors seen in steps but missing here are appended. */
  actors?: string[];
  /** The deliberate bug (a model's mutant) a counterexample was found in. */
  mutant?: string;
  /** The property a counterexample violates. */
  violation?: string;
  /**
   * A counterexample's length in steps: the actions taken from the initial
   * state, as the checker counts them (`shortest trace N steps`). Rows are
   * not steps: the initial state is a row (step 0), and one action may draw
   * as several rows.
   */
  length?: number;
  /** Free text shown under the diagram's title. */
  note?: string;
  /**
   * A lasso (a liveness counterexample of the checker): the state after the
   * last step is the state after step `loop`, so the steps after `loop` repeat
   * forever; when `loop` is the last step, the behaviour stutters there.
   */
  loop?: number;
  /** Transaction id, for live traces. */
  tx?: string;
  /** Wall-clock start of a live trace, ms since the epoch. */
  started_ms?: number;
}

export interface TraceStep {
  /** 1-based position in the trace; the initial state, when recorded, is step 0. */
  step: number;
  /** The lifeline that takes this step. */
  actor: string;
  /** What happened to the actor: an action name, a role input, an effect result. */
  input: unknown;
  /**
   * What the diagram's box says (spec/labels.ts: `PREPARE shard-b -> ok`).
   * The server records one for every step, since its inputs are the role's
   * JSON values; absent, the box shows the input (a checker trace's input
   * is already such a label).
   */
  label?: string;
  /** What the actor asked for in this step (role effects), in order. */
  effects: unknown[];
  sends?: Msg[];
  receives?: Msg[];
  /** The global (checker) or role (runtime) state after the step. */
  state?: unknown;
  /** Milliseconds since the trace started (live traces). */
  at_ms?: number;
}

export type TraceLine = { header: TraceHeader } | TraceStep;

export interface Trace {
  header: TraceHeader;
  steps: TraceStep[];
}

/** Lifelines of a recorded transaction: the coordinator role's steps, and its client. */
export const COORDINATOR_ACTOR = "coordinator";
export const CLIENT_ACTOR = "client";
