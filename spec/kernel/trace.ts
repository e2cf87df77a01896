/**
 * One trace format for a counterexample, a simulation and a live run
 * (docs/traces.md): NDJSON, the first line a header, then one line per
 * step, in one dialect: a role's step carries its input and effects under
 * the server's actor names. The renderer draws any of them as a message
 * sequence diagram; trace validation replays any of them against the roles.
 *
 *   {"header":{"source":"checker","model":"twopc","params":{...},"actors":["client","coordinator(t1)","resolver",...],"violation":"...","mutant":"..."}}
 *   {"step":6,"actor":"coordinator","tx":"t1","input":{"t":"request",...},"label":"request (2 branches)","effects":[{"t":"xa.exec",...}],"sends":[...]}
 *   {"step":7,"actor":"s1","input":"EXEC s1","label":"EXEC s1 -> ok","effects":[],"receives":[...],"sends":[...]}
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
  /**
   * The OpenTelemetry trace this live transaction's spans belong to (W3C
   * trace id: 32 lowercase hex digits), when the server exports spans; joins
   * the two.
   */
  trace_id?: string;
}

export interface TraceStep {
  /** 1-based position in the trace; the initial state, when recorded, is step 0. */
  step: number;
  /**
   * Who takes this step. A role's step names the role as the server does
   * (`coordinator`, `resolver`); an environment's step names its lifeline
   * (a shard, `txlog`, `client`, `process`).
   */
  actor: string;
  /**
   * The transaction whose coordinator took the step: a role instance is
   * (actor, tx). Absent on a resolver's and an environment's steps.
   */
  tx?: string;
  /**
   * A role's step: the input the role was fed, a JSON value (a request, an
   * effect's result, a timeout, a scan). An environment's step: what it did,
   * in words (the request it answered, `crash`, `restart`).
   */
  input: unknown;
  /**
   * What the diagram's box says (spec/labels.ts: `PREPARE shard-b -> ok`).
   * The server records one for every step, since its inputs are the role's
   * JSON values; absent, the box shows the input (a checker trace's input
   * is already such a label).
   */
  label?: string;
  /** What the role asked for in this step, in order ([] for an environment's step). */
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

/** Actors of the roles, as the server names them: one coordinator per transaction, one resolver per process. */
export const COORDINATOR_ACTOR = "coordinator";
export const RESOLVER_ACTOR = "resolver";
/** The idempotency claim role (spec/server/idempotency.ts claimRole), recorded beside the coordinator of the transaction it claimed. */
export const IDEMPOTENCY_ACTOR = "idempotency";
/** Lifelines of the environment that are not a shard or the txlog: the client, the coordinator process. */
export const CLIENT_ACTOR = "client";
export const PROCESS_ACTOR = "process";
/** The input of the process's crash step: every role of the process starts again from `start()`. */
export const PROCESS_CRASH = "crash";

/**
 * The lifeline a step draws on: its actor, and for a coordinator of another
 * transaction than the trace's own (`header.tx`) the transaction too:
 * `coordinator(t2)`. Messages (`sends`, `receives`) name lifelines.
 */
export const lifelineOf = (actor: string, tx: string | undefined, headerTx?: string): string => (tx === undefined || tx === headerTx ? actor : `${actor}(${tx})`);
