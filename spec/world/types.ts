/**
 * The world every protocol model runs in (./world.ts): its state, its
 * actions, and the two things a protocol plugs into it, the shards'
 * environment (spec/env/xa-shard.ts, spec/env/local-shard.ts, or both) and
 * the protocol's ghost variables. The transaction log, the client, the
 * coordinator process and the fault budget are the same for every protocol.
 */
import type { Effect, Result, BranchSpec, Outcome, ShardId, TxId } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import type { Fairness, LeadsTo } from "../kernel/model.ts";
import type { TxlogState } from "../env/txlog.ts";

/** How many faults of each kind a run may still meet. */
export interface Budget {
  readonly crash: number;
  readonly shardCrash: number;
  readonly logFault: number;
}

export interface Slot<C> {
  readonly st: C;
  /** False once the process that ran it crashed: a coordinator is never restarted. */
  readonly alive: boolean;
}

/** An effect on its way: asked for by `owner` (a transaction index, or -1 for the resolver). */
export interface Flight {
  readonly owner: number;
  readonly fx: Effect;
  /** Its asker died; it may still take effect, and nobody hears the answer. */
  readonly orphan: boolean;
  /** The process incarnation that asked (names its connections). */
  readonly inc: number;
}

/** The configuration a model is checked on: shards with their accounts, and the transfers the client asks for. */
export interface Scenario {
  readonly shards: readonly ShardId[];
  /** Initial balances per shard: [account, cents]. */
  readonly balances: readonly (readonly (readonly [number, number])[])[];
  /** `protocol`: the protocol the client names (the server's coordinator dispatches on it; a protocol's own model has none). */
  readonly txs: readonly { readonly id: TxId; readonly branches: readonly BranchSpec[]; readonly protocol?: string }[];
  /**
   * Symmetry (./symmetry.ts): classes of transactions that are the same transfer but for their id, so that
   * any permutation inside a class is an automorphism of the model. Absent: the scenario declares no symmetry.
   */
  readonly interchangeable?: readonly (readonly TxId[])[];
}

export interface World<C = unknown, R = unknown, Sh = unknown, G = unknown> {
  /** The coordinator process is up. */
  readonly up: boolean;
  /** Its incarnation: how many times it restarted. */
  readonly inc: number;
  readonly coords: readonly Slot<C>[];
  readonly resolver: R;
  readonly shards: readonly Sh[];
  readonly log: TxlogState;
  /** Sorted by canonical encoding: a multiset. */
  readonly flights: readonly Flight[];
  /** What the client heard, per transaction. */
  readonly told: readonly (Outcome | null)[];
  readonly ghost: G;
  readonly budget: Budget;
}

export type Action =
  | { readonly k: "request"; readonly tx: number }
  | { readonly k: "complete"; readonly i: number; readonly o: number; readonly fault: boolean; readonly label: string }
  | { readonly k: "scan" }
  | { readonly k: "crash" }
  | { readonly k: "restart" }
  /** Outcome `o` of the shard environment's crash outcomes (XA: how many acknowledged rollbacks reached the disk). */
  | { readonly k: "shardCrash"; readonly s: number; readonly o: number }
  | { readonly k: "shardRestart"; readonly s: number }
  | { readonly k: "notice"; readonly s: number; readonly conn: string }
  /** Group commit (WorldConfig.logBatch): log writes in flight, of distinct askers, answered together as one etcd transaction's fault. */
  | { readonly k: "logBatch"; readonly flights: readonly number[]; readonly o: LogBatchOutcome };

/**
 * How a batch of log writes fails as a unit, spending one log fault: every write of it happened, or none did, and
 * every asker hears UNAVAILABLE. `acked-unwritten` is a deliberately wrong adapter (a negative control, never the
 * runtime's): it answers each write as if it happened while only the first did (a batch split into several etcd
 * transactions and answered when the first returns).
 */
export type BatchAction = Extract<Action, { k: "logBatch" }>;

export type LogBatchOutcome = "written" | "lost" | "acked-unwritten";

/** One way a shard may answer a flight. */
export interface ShardAnswer<Sh> {
  /** The shard after the answer. */
  readonly shard: Sh;
  /** The shard right after the effect ran (before a crash the answer includes), or null: it did not run. For the ghost. */
  readonly ran: Sh | null;
  /** What the asker hears; null: nobody hears anything (a statement of a dead client rolled back). */
  readonly result: Result | null;
  /** The answer spends a shard crash from the budget. */
  readonly crashes: boolean;
  readonly label: string;
  /** Orphaned statements on this connection can no longer arrive (it was killed). */
  readonly dropOrphansOn?: string;
}

/**
 * A kind of shard, as the protocols' effects see it. Every function is pure;
 * `inc` and `up` are the coordinator process's incarnation and liveness
 * (XA names a branch's connection after the incarnation that opened it).
 */
export interface ShardEnv<Sh> {
  init(balances: Scenario["balances"][number]): Sh;
  /** The effects this environment answers (the others go to the txlog, the client or a timer). */
  owns(fx: Effect): boolean;
  /** Every way shard `sh` may answer flight `f`, given the fault budget left. */
  answers(sh: Sh, f: Flight, budget: Budget): ShardAnswer<Sh>[];
  /** Fault and recovery actions the shard offers now (crash outcomes, restart, a dead connection noticed). */
  faults(sh: Sh, s: number, budget: Budget, process: { readonly inc: number; readonly up: boolean }): Iterable<Action>;
  /** The shard after one of its `faults`. */
  fault(sh: Sh, a: Extract<Action, { k: "shardCrash" | "shardRestart" | "notice" }>): Sh;
  /** The connection a flight's statement travels on, when the environment has connections (a dropped one takes its orphans with it). */
  connOf?(f: Flight): string | null;
}

/**
 * A protocol's ghost variables: what its properties need to remember that
 * the state itself forgets (a decision once made, a branch once prepared).
 * Hooks run after the world's own bookkeeping; each returns the world
 * unchanged (the same object) when it has nothing to record.
 */
export interface GhostSpec<G, W> {
  init(sc: Scenario): G;
  /** After every step that may change shards or the log. */
  observe?(w: W): W;
  /** An effect of flight `f` ran on shard `s`: `before` and `ran` are the shard around it. */
  ran?(w: W, f: Flight, s: number, before: W extends World<any, any, infer Sh, any> ? Sh : never, ran: W extends World<any, any, infer Sh, any> ? Sh : never): W;
  /** A fault happened: a crash, a shard crash, an answer lost. */
  fault?(w: W): W;
  /** A timer fired. */
  timer?(w: W, id: string): W;
}

/** What a protocol brings to the world: its roles, environment, ghost and reductions. */
export interface WorldConfig<C extends { readonly phase: string }, R extends { readonly phase: string; readonly epoch: number | null }, Sh, G> {
  readonly name: string;
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The process restarts after a crash (false: it stays down forever). */
  readonly restart: boolean;
  /** Timers whose firing is a timeout the protocol may take (vote, apply); `timeouts: false` never sets them. */
  readonly timeoutTimers: readonly string[];
  readonly timeouts: boolean;
  /**
   * Group commit: the log may also fail several writes in flight at once, as one fault (LogBatchOutcome); absent or
   * "off": each write fails alone. "acked-unwritten" adds the wrong adapter's outcome too.
   */
  readonly logBatch?: "off" | "on" | "acked-unwritten";
  readonly coordinator: Role<C, any, Effect>;
  readonly resolver: Role<R, any, Effect>;
  readonly env: ShardEnv<Sh>;
  readonly ghost: GhostSpec<G, World<C, R, Sh, G>>;
  /**
   * A scan that can only be a no-op (it reads, and ends in the state it
   * started in) need not be offered; each protocol's resolver says when.
   */
  scanIsNoop(w: World<C, R, Sh, G>): boolean;
  invariants(sc: Scenario): Record<string, (w: World<C, R, Sh, G>) => boolean>;
  eventually(sc: Scenario): Record<string, { goal(w: World<C, R, Sh, G>): boolean; allowed?(a: Action): boolean }>;
  /** Leads-to properties, given the world's fairness (`fairStep` in ./world.ts: every non-fault step, per effect and process). */
  leadsTo?(sc: Scenario, fair: Fairness<World<C, R, Sh, G>, Action>): Record<string, LeadsTo<World<C, R, Sh, G>, Action>>;
}
