/**
 * The engine: the role instances of one server, from the server's
 * composition (spec/server/): one coordinator instance per transaction (the
 * server coordinator: the request's protocol, or the one-phase path for one
 * branch), and one resolver instance (the process resolver: every registered
 * resolver part in turn under one epoch) fed a `scan` at start and every
 * `resolver_interval_ms` with the ids of the coordinators alive here.
 * Everything protocol-shaped happens inside those roles; the engine only
 * starts instances, hands them their input, keeps what they did for
 * GET /transactions/:id and counts it.
 */
import { randomUUID } from "node:crypto";
import type { BranchSpec, Outcome, ShardId, TxId } from "../spec/kernel/effects.ts";
import { processEpochOf, processResolver, resolverActionOf, type ProcessResolverState } from "../spec/server/resolver.ts";
import { serverCoordinator, type ServerCoordinatorState } from "../spec/server/coordinator.ts";
import type { CoordinatorInput, CoordinatorSettings, ResolverInput } from "../spec/protocols/protocol.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, type TraceHeader, type TraceStep } from "../spec/kernel/trace.ts";
import { answerLabel } from "../spec/labels.ts";
import type { TimerHandle } from "./adapters/ports.ts";
import { nodeTxId } from "./nodes.ts";
import { RoleInstance, traceOf, type Adapters, type Effect, type Recording, type Result } from "./interpreter.ts";
import type { Metrics } from "./metrics.ts";
import type { TraceParent, Tracing, TransferSpans } from "./tracing.ts";
import type { ProbeRequest } from "../spec/protocols/protocol.ts";
import { ranBy, type RanAs } from "../spec/server/readback.ts";
import { factsOfCoordinator } from "../spec/deadlock/facts.ts";
import type { TxFacts } from "../spec/deadlock/victims.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS, protocolNamed, RESOLVER_PARTS, type ProtocolName } from "../spec/protocols/registry.ts";

export { PROTOCOLS, type ProtocolName };


export interface EngineOptions {
  readonly adapters: Adapters;
  readonly shards: readonly ShardId[];
  readonly coordinator: CoordinatorSettings;
  readonly resolver_interval_ms: number;
  /** Coordinators alive at once; past it `submit` refuses. */
  readonly in_flight_max: number;
  /** Finished transactions kept for GET /transactions/:id (oldest dropped first). */
  readonly retain_transactions: number;
  /** Bound on their estimated bytes (retainedBytes), oldest dropped first; absent: only the count bounds them. */
  readonly retain_trace_bytes_max?: number;
  readonly record_traces: boolean;
  readonly metrics?: Metrics;
  /** OpenTelemetry spans (runtime/tracing.ts); absent: none, and no SDK loaded. */
  readonly tracing?: Tracing;
  /** This engine's node (runtime/nodes.ts): its transaction ids begin with `<node>.`; absent: plain UUIDs (tests, simulation). */
  readonly node?: string;
}

/** Times in ms since the request; null when the phase did not happen. */
export interface Timings {
  exec_ms: number | null;
  prepare_ms: number | null;
  log_ms: number | null;
  reply_ms: number | null;
  commit_ms: number | null;
  done_ms: number | null;
}

export interface TransactionView {
  tx: TxId;
  protocol: ProtocolName;
  /** running until the coordinator replied; then the outcome; `done` once the coordinator has nothing left to do. */
  status: "running" | Outcome["status"];
  outcome: Outcome | null;
  /** Where the outcome comes from: the coordinator's reply, or durable state once the coordinator answered in_doubt and ended. */
  source: "coordinator" | "durable state";
  /** What the coordinator answered its client (null before it did). */
  reply: Outcome | null;
  done: boolean;
  started_at: string;
  branches: readonly BranchSpec[];
  /** Coordinator phase (the protocol's spec role), as of now. */
  phase: string;
  timings: Timings;
  trace: { header: TraceHeader; steps: readonly TraceStep[]; truncated: boolean } | null;
}

/** A line of the page's list of recent transactions (Engine.recent). */
export type RecentTransaction = Pick<TransactionView, "tx" | "protocol" | "status" | "started_at" | "phase" | "done"> & { shards: ShardId[] };

/**
 * What a retained transaction is estimated to hold besides its recorded steps: the view's fields, its branches and
 * timings, the map entry. Measured about 800 bytes for a 2PC transfer of two branches (docs/operations.md, "Bounds");
 * rounded up so that the estimate errs on the side of keeping less.
 */
export const RETAINED_VIEW_BYTES = 1_024;

/**
 * What a recorded step holds (its three slots, its input object and what the input holds but shares with no
 * other step, the effects array), and each effect it asked for. Measured with `runtime/bench/retain-cost.ts`
 * (docs/benchmarks.md, "Issue 14, quiet machine"): rounded up, so that the estimate errs on the side of keeping less.
 */
export const RETAINED_STEP_BYTES = 320;
export const RETAINED_EFFECT_BYTES = 160;

/** A finished transaction's estimated bytes: its view and its recorded steps and effects (the role's values, kept by reference). */
export function retainedBytesOf(steps: number, effects: number): number {
  return RETAINED_VIEW_BYTES + steps * RETAINED_STEP_BYTES + effects * RETAINED_EFFECT_BYTES;
}

/**
 * A finished transaction as kept for GET /transactions/:id: its view as of the end, with the coordinator's
 * recorded steps as they are (Recording: the role's inputs and effects by reference, no labels, no text), formatted
 * into a trace only when one is asked for; not the role instance that recorded it (its closures and promises).
 */
interface Finished {
  /** What GET /transactions/:id shows, with the outcome durable state settled once there is one. */
  view: Omit<TransactionView, "trace">;
  /** The recorded steps and what the trace's header needs; null when traces are not recorded. */
  readonly recording: { readonly rec: Recording; readonly trace_id?: string } | null;
  /** Estimated bytes (retainedBytesOf), the side recording's counted twice (its steps still to come). */
  readonly bytes: number;
  /** The final outcome durable state gave once the coordinator left it in doubt (`settled`). */
  settled: Outcome | null;
  /** Effects of the ended coordinator still waiting for an answer. */
  pending(): number;
  /** The side recording, still growing after the coordinator ended (the claim stores the outcome after it replied), with the clock time the trace starts at. */
  readonly side?: { readonly rec: SideRecording; readonly early: number; readonly t0_ms: number };
}

/**
 * The steps of a role that runs beside the coordinator for its transaction (the idempotency claim role,
 * runtime/idempotency.ts), recorded by its owner as it steps (at most SIDE_STEPS_MAX) and drawn in the
 * transaction's trace under `actor`, with the transaction's id, as the coordinator's are: the role's input and
 * the effects it asked for, so that `speccommit trace validate` replays them against the role.
 */
export interface SideRecording {
  readonly actor: string;
  readonly steps: Array<{ readonly input: { readonly t: string }; readonly effects: readonly unknown[]; readonly now_ms: number }>;
}

/** Bound on a side recording's steps (the claim role takes four on its claimant's path). */
export const SIDE_STEPS_MAX = 8;

export class Overloaded extends Error {}
export class ShuttingDown extends Error {}
/** The resolver has not taken this process's epoch yet (etcd not reached so far): no coordinator may write. */
export class NotReady extends Error {}

interface Running {
  readonly tx: TxId;
  readonly protocol: ProtocolName;
  readonly started_wall_ms: number;
  readonly t0_ms: number;
  readonly branches: readonly BranchSpec[];
  readonly instance: RoleInstance<ServerCoordinatorState, CoordinatorInput>;
  outcome: Outcome | null;
  readonly outcomePromise: Promise<Outcome>;
  readonly resolveOutcome: (o: Outcome) => void;
  /** First time an effect of each kind was started, last time a result of each kind arrived (clock ms). */
  readonly first: Partial<Record<Effect["t"], number>>;
  readonly last: Partial<Record<Result["t"], number>>;
  reply_ms: number | null;
  done_ms: number | null;
  /** The transaction's OpenTelemetry spans, when tracing is on. */
  readonly spans?: TransferSpans;
  /** The claim role's steps for this transaction (recorded traces with an idempotency key); `early`: how many it had when the coordinator started. */
  readonly side?: { readonly rec: SideRecording; readonly early: number };
}

export class Engine {
  private readonly running = new Map<TxId, Running>();
  /** Insertion-ordered, so the oldest is first to go. */
  private readonly finished = new Map<TxId, Finished>();
  /** Sum of the finished transactions' bytes. */
  private finishedBytes = 0;
  private readonly coordinatorRole: ReturnType<typeof serverCoordinator>;
  private resolverInstance: RoleInstance<ProcessResolverState, ResolverInput>;
  private resolverTimer: TimerHandle | null = null;
  private accepting = true;
  private idleWaiters: Array<() => void> = [];
  private scanWaiters: Array<(complete: boolean) => void> = [];
  private resolverPhase = "idle";
  /** The first scan in which the log and every shard answered has finished. */
  caughtUp = false;
  lastScan: { at: string; complete: boolean } | null = null;

  constructor(private readonly opts: EngineOptions) {
    this.coordinatorRole = serverCoordinator(opts.coordinator);
    // A process without the local-transaction adapter runs only the parts its shards can answer.
    const parts = RESOLVER_PARTS.filter((p) => p.needs !== "local" || opts.adapters.local !== undefined);
    const m = opts.metrics;
    /** STAGING decisions the resolver asked to write, by key, until their answer. */
    const stagingDecisions = new Map<string, "commit" | "abort">();
    const spans = opts.tracing?.resolver();
    const makeResolver = (): RoleInstance<ProcessResolverState, ResolverInput> => new RoleInstance(processResolver({ shards: opts.shards, parts }), {
      actor: "resolver",
      adapters: opts.adapters,
      hooks: {
        onViolation: (e) => {
          this.violated("resolver", e);
          // The resolver is the process's only way to finish what its dead coordinators left: a fresh one takes over (new epoch, next scan).
          this.resolverPhase = "idle";
          this.resolverInstance = makeResolver();
        },
        onEffect: (e) => {
          if (m === undefined && spans === undefined) return;
          const action = resolverActionOf(parts, e);
          spans?.effect(e, action);
          if (m === undefined) return;
          if (action !== null) m.resolverActions.inc({ action });
          if (e.t === "xa.kill") m.stagingFences.inc();
          // A decision over a STAGING record: counted when it is durable (resolver result below).
          const staging = parts.reduce<"commit" | "abort" | null>((found, p) => found ?? p.recoveryOf?.(e) ?? null, null);
          if (staging !== null && e.t === "log.put") stagingDecisions.set(e.key, staging);
        },
        onResult: (r) => {
          spans?.result(r);
          if (m !== undefined) countLocal(m, r, "resolver");
          if (r.t === "xa.recover") m?.preparedView.listed(r.shard, r.r.ok ? r.r.prepared.map((x) => x.tx) : null, this.resolverInstance.st.active, (tx) => Date.parse(this.transaction(tx)?.started_at ?? ""));
          if (r.t === "log.put" && stagingDecisions.has(r.key)) {
            if (r.r.ok) m?.stagingRecoveries.inc({ decision: stagingDecisions.get(r.key)! });
            stagingDecisions.delete(r.key);
          }
        },
        onStep: (st) => {
          // A scan ended: the resolver went back to idle (it says whether the scan was complete).
          const was = this.resolverPhase;
          this.resolverPhase = st.phase;
          spans?.phase(st.phase);
          if (was !== "idle" && st.phase === "idle") this.scanEnded(st.lastScan === "complete");
        },
      },
    });
    this.resolverInstance = makeResolver();
  }

  /** The epoch the resolver took for this process (spec/protocols/xa/resolver.ts), null before. */
  get epoch(): number | null {
    return processEpochOf(this.resolverInstance.st);
  }

  /** A new transaction id of this engine's node (runtime/nodes.ts nodeTxId). */
  newTx(): TxId {
    return this.opts.node === undefined ? newTxId() : nodeTxId(this.opts.node);
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** What the deadlock detector may know of a transaction running here (spec/deadlock/facts.ts); undefined: not running here. */
  deadlockFacts(tx: TxId): TxFacts | undefined {
    const run = this.running.get(tx);
    return run === undefined ? undefined : factsOfCoordinator(run.instance.st);
  }

  /** Transactions whose coordinator is alive in this process (the resolver leaves them alone). */
  active(): TxId[] {
    return [...this.running.keys()];
  }

  /**
   * Starts a coordinator for `branches` and resolves with its reply. The
   * coordinator keeps running after the reply (commit phase, forgetting).
   */
  submit(
    branches: readonly BranchSpec[],
    protocol: ProtocolName = DEFAULT_PROTOCOL,
    tx: TxId = this.newTx(),
    /** Called with the reply in the very step that produced it, before the step's other effects start (the HTTP answer goes out first). */
    onReply?: (o: Outcome) => void,
    /** The caller's W3C trace context: the transfer's spans continue its trace (when tracing is on). */
    parent?: TraceParent,
    /** Steps of a role beside the coordinator (the idempotency claim), drawn in its trace; its owner appends to it. */
    side?: SideRecording,
  ): { tx: TxId; outcome: Promise<Outcome> } {
    if (!this.accepting) throw new ShuttingDown("the server is shutting down");
    const epoch = this.epoch;
    if (epoch === null) throw new NotReady("the coordinator has no epoch yet: the transaction log has not answered since boot");
    if (this.running.size >= this.opts.in_flight_max) throw new Overloaded(`${this.running.size} transactions in flight (in_flight_max ${this.opts.in_flight_max})`);
    if (this.running.has(tx) || this.finished.has(tx)) throw new Error(`transaction id ${tx} already used`);
    if (protocolNamed(protocol).needs === "local" && this.opts.adapters.local === undefined) throw new Error(`this server has no local-transaction adapter: the ${protocol} protocol is not available`);
    const m = this.opts.metrics;
    const clock = this.opts.adapters.clock;
    let resolveOutcome!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((resolve) => (resolveOutcome = resolve));
    const first: Running["first"] = {};
    const last: Running["last"] = {};
    const spans = this.opts.tracing?.transfer({ tx, protocol, branches: branches.length, ...(parent !== undefined ? { parent } : {}) });
    const instance: RoleInstance<ServerCoordinatorState, CoordinatorInput> = new RoleInstance(this.coordinatorRole, {
      actor: COORDINATOR_ACTOR,
      adapters: this.opts.adapters,
      done: this.coordinatorRole.done,
      record: this.opts.record_traces,
      hooks: {
        onEffect: (e, now) => {
          first[e.t] ??= now;
          spans?.effect(e);
        },
        onResult: (r, now) => {
          last[r.t] = now;
          spans?.result(r);
          if (m !== undefined) countLocal(m, r, "coordinator");
        },
        // A protocol timer that fired reaches the role as a `timeout` input (interpreter.ts), never as a result.
        ...(spans !== undefined
          ? {
              onStep: (_st: unknown, input: unknown) => {
                const i = input as { t?: string; id?: string };
                if (i.t === "timeout" && i.id !== undefined) spans.timeout(i.id);
              },
            }
          : {}),
        onReply: (_tx, o) => {
          spans?.reply(o);
          run.outcome = o;
          run.reply_ms = clock.now_ms() - run.t0_ms;
          if (m !== undefined) {
            m.transactionsOf.of(protocol, o.status).inc();
            if (o.status === "aborted") m.aborts.inc({ protocol, reason: o.reason });
            // A one-branch transaction takes the one-phase path (spec/server/coordinator.ts): nothing was speculated.
            if (protocolNamed(protocol).speculates && instance.st.path === "many") m.speculation(o.status === "committed" ? "hit" : o.status === "aborted" ? "rollback" : "in_doubt");
            m.durationOf.of(protocol, o.status).observe(run.reply_ms / 1000);
          }
          onReply?.(o);
          resolveOutcome(o);
        },
        onViolation: (e) => this.violated("coordinator", e),
        onEnd: () => this.ended(run),
      },
    });
    const run: Running = {
      tx,
      protocol,
      started_wall_ms: Date.now(),
      t0_ms: clock.now_ms(),
      branches,
      instance,
      outcome: null,
      outcomePromise: outcome,
      resolveOutcome,
      first,
      last,
      reply_ms: null,
      done_ms: null,
      ...(spans !== undefined ? { spans } : {}),
      ...(side !== undefined && this.opts.record_traces ? { side: { rec: side, early: side.steps.length } } : {}),
    };
    this.running.set(tx, run);
    m?.inFlight.set(this.running.size);
    instance.deliverFrom(CLIENT_ACTOR, `transfer (${branches.length} branch${branches.length === 1 ? "" : "es"})`, { t: "request", tx, branches, epoch, protocol });
    return { tx, outcome };
  }

  /**
   * A role asserted something the protocol says never happens: a bug. The
   * instance has stopped (a coordinator without a reply answers in_doubt, as
   * after a crash; the resolver finishes from durable state); it is logged
   * and counted so that it is seen.
   */
  private violated(role: "coordinator" | "resolver", e: Error): void {
    console.error(`protocol violation in the ${role}: ${e.message}`);
    this.opts.metrics?.violations.inc({ role });
  }

  private ended(run: Running): void {
    run.done_ms = this.opts.adapters.clock.now_ms() - run.t0_ms;
    this.running.delete(run.tx);
    const m = this.opts.metrics;
    if (m !== undefined) {
      m.inFlight.set(this.running.size);
      for (const [phase, kind] of PHASES) {
        const ms = span(run, kind, kind);
        if (ms !== null) m.phaseOf.of(run.protocol, phase).observe(ms / 1000);
      }
    }
    if (run.outcome === null) {
      // Only stop() ends a coordinator before its reply: the outcome is then unknown here, which is what in_doubt says.
      run.outcome = { status: "in_doubt" };
      run.resolveOutcome(run.outcome);
    }
    run.spans?.end(run.outcome);
    this.retain(run);
    if (this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Settles a transaction whose coordinator is gone and of which nothing was
   * found, by its protocol's probe (the registry's `Protocol.probe`, asked
   * for by its read-back rule: spec/server/readback.ts `settle` answered
   * "probe"), and resolves with its outcome as soon as the probe answers.
   * For the idempotency path after a restart.
   */
  probe(tx: TxId, ran: RanAs): Promise<Outcome> {
    const part = ranBy(ran).probe;
    if (part === undefined) throw new Error(`protocol ${ranBy(ran).name} has no probe: its read-back never asks for one`);
    const branches = ran.shards;
    const epoch = this.epoch;
    if (epoch === null) throw new NotReady("the coordinator has no epoch yet: the transaction log has not answered since boot");
    if (this.opts.adapters.local === undefined) throw new Error("this server has no local-transaction adapter: it cannot settle a speculation");
    const c = this.opts.coordinator;
    return new Promise<Outcome>((resolve) => {
      let answered = false;
      const instance = new RoleInstance<any, ProbeRequest | Result>(part.role({ attemptsMax: c.attemptsMax, retryDelayMs: c.retryDelayMs }), {
        actor: "probe",
        adapters: this.opts.adapters,
        done: (st) => part.done(st),
        hooks: {
          onReply: (_tx, o) => {
            answered = true;
            resolve(o);
          },
          onEnd: () => {
            if (!answered) resolve({ status: "in_doubt" });
          },
        },
      });
      instance.deliver({ t: "probe", tx, branches, epoch });
    });
  }

  /** Keeps a finished transaction (its view, its recorded steps), then drops the oldest until both bounds hold. */
  private retain(run: Running): void {
    // The coordinator's steps as recorded; formatted (and the side recording's merged in) when the trace is read.
    const view = this.viewWithoutTrace(run);
    // The instance hands its recording over.
    const rec = run.instance.takeRecording();
    // Only the count of effects still waiting for answers: the instance itself (its state, hooks and closures) goes
    // once its last answer came.
    const waiting = run.instance.waiting;
    // A side recording's steps still to come (the claim's store and its answer) are no larger than those it has (the claim and its answer).
    const sideBytes = run.side === undefined ? 0 : 2 * sideStepsBytes(run.side.rec);
    const f: Finished = {
      view,
      recording: this.opts.record_traces ? { rec, ...(run.spans !== undefined ? { trace_id: run.spans.traceId } : {}) } : null,
      bytes: retainedBytesOf(rec.steps, rec.effects) + sideBytes,
      settled: null,
      pending: () => waiting.n,
      ...(run.side !== undefined ? { side: { ...run.side, t0_ms: run.t0_ms } } : {}),
    };
    this.finished.set(run.tx, f);
    this.finishedBytes += f.bytes;
    const bytes_max = this.opts.retain_trace_bytes_max ?? Number.POSITIVE_INFINITY;
    while (this.finished.size > this.opts.retain_transactions || this.finishedBytes > bytes_max) {
      const [oldest, o] = this.finished.entries().next().value!;
      this.finished.delete(oldest);
      this.finishedBytes -= o.bytes;
    }
  }

  /** Finished transactions kept in memory and their estimated bytes (Finished.bytes). */
  get retained(): { transactions: number; bytes: number } {
    return { transactions: this.finished.size, bytes: this.finishedBytes };
  }

  /** The outcome of a transaction this process runs or ran recently: the coordinator's reply, or what durable state settled since. */
  outcomeOf(tx: TxId): Promise<Outcome> | undefined {
    const run = this.running.get(tx);
    if (run !== undefined) return run.outcomePromise;
    const f = this.finished.get(tx);
    const outcome = f?.settled ?? f?.view.outcome;
    return outcome === undefined || outcome === null ? undefined : Promise.resolve(outcome);
  }

  /**
   * A transaction of this process whose outcome only durable state can tell
   * (runtime/durable.ts `settledOutcome`): its coordinator answered in_doubt
   * and ended with no statement or log write still waiting for an answer, so
   * it will write nothing more, and nothing settled it yet.
   */
  inDoubt(tx: TxId): { protocol: ProtocolName; shards: ShardId[] } | undefined {
    const f = this.finished.get(tx);
    if (f === undefined || f.view.outcome?.status !== "in_doubt" || f.settled !== null || f.pending() > 0) return undefined;
    return { protocol: f.view.protocol, shards: f.view.branches.map((b) => b.shard) };
  }

  /** Keeps the final outcome durable state gave for a transaction `inDoubt` named: from then on it is this process's answer. */
  settled(tx: TxId, o: Outcome): void {
    if (o.status === "in_doubt" || this.inDoubt(tx) === undefined) return;
    const f = this.finished.get(tx)!;
    f.settled = o;
    f.view = { ...f.view, status: o.status, outcome: o, source: "durable state" };
  }

  /**
   * The newest transactions this process runs or ran, newest first, at most `n` (the page's list, GET /ui/summary):
   * the running ones, then the retained finished ones. No trace (GET /transactions/:id has it).
   */
  recent(n: number): RecentTransaction[] {
    const out: RecentTransaction[] = [];
    const pick = (v: Omit<TransactionView, "trace">): RecentTransaction => ({ tx: v.tx, protocol: v.protocol, status: v.status, started_at: v.started_at, phase: v.phase, done: v.done, shards: v.branches.map((b) => b.shard) });
    for (const run of [...this.running.values()].reverse()) {
      if (out.length >= n) return out;
      const status = run.outcome === null ? "running" : run.outcome.status;
      out.push({ tx: run.tx, protocol: run.protocol, status, started_at: new Date(run.started_wall_ms).toISOString(), phase: run.instance.st.phase, done: run.instance.ended, shards: run.branches.map((b) => b.shard) });
    }
    const finished = [...this.finished.values()];
    for (let i = finished.length - 1; i >= 0 && out.length < n; i--) out.push(pick(finished[i]!.view));
    return out;
  }

  /** A coordinator of this process is running `tx` (its prepared branches are its own to finish, not in doubt). */
  isRunning(tx: TxId): boolean {
    return this.running.has(tx);
  }

  transaction(tx: TxId): TransactionView | undefined {
    const run = this.running.get(tx);
    if (run !== undefined) return this.view(run);
    const f = this.finished.get(tx);
    if (f === undefined) return undefined;
    if (f.recording === null) return { ...f.view, trace: null };
    const { rec, trace_id } = f.recording;
    const steps = traceOf(rec);
    const header = this.traceHeader({ tx, started_wall_ms: Date.parse(f.view.started_at), branches: f.view.branches, protocol: f.view.protocol, ...(trace_id !== undefined ? { traceId: trace_id } : {}) });
    return { ...f.view, trace: { header, steps: f.side === undefined ? steps : withSide(steps, f.side, f.side.t0_ms, tx), truncated: rec.truncated } };
  }

  /** The clock the coordinators' traces are timed by (a side recording's `now_ms`). */
  now_ms(): number {
    return this.opts.adapters.clock.now_ms();
  }

  /** Whether transactions' traces are recorded (record_traces): a side recording is kept only then. */
  get recordsTraces(): boolean {
    return this.opts.record_traces;
  }

  private view(run: Running): TransactionView {
    return {
      ...this.viewWithoutTrace(run),
      trace: this.opts.record_traces
        ? { header: this.traceHeader({ ...run, ...(run.spans !== undefined ? { traceId: run.spans.traceId } : {}) }), steps: run.side !== undefined ? withSide(run.instance.trace(), run.side, run.t0_ms, run.tx) : run.instance.trace(), truncated: run.instance.truncated }
        : null,
    };
  }

  private viewWithoutTrace(run: Running): Omit<TransactionView, "trace"> {
    const done = run.instance.ended;
    const outcome = run.outcome;
    return {
      tx: run.tx,
      protocol: run.protocol,
      status: outcome === null ? "running" : outcome.status,
      outcome,
      source: "coordinator",
      reply: run.outcome,
      done,
      started_at: new Date(run.started_wall_ms).toISOString(),
      branches: run.branches,
      phase: run.instance.st.phase,
      timings: timings(run),
    };
  }

  traceHeader(run: Pick<Running, "tx" | "started_wall_ms" | "branches" | "protocol"> & { readonly traceId?: string }): TraceHeader {
    const c = this.opts.coordinator;
    return {
      source: "runtime",
      model: protocolNamed(run.protocol).traceModel,
      params: { voteTimeoutMs: c.voteTimeoutMs, retryDelayMs: c.retryDelayMs, attemptsMax: c.attemptsMax },
      actors: [CLIENT_ACTOR, COORDINATOR_ACTOR, ...run.branches.map((b) => b.shard), "txlog"],
      tx: run.tx,
      started_ms: run.started_wall_ms,
      ...(run.traceId !== undefined ? { trace_id: run.traceId } : {}),
    };
  }

  /** Starts the resolver: a scan now and one every resolver_interval_ms. */
  startResolver(): void {
    if (this.resolverTimer !== null || !this.accepting) return;
    const again = () => {
      this.tick();
      this.resolverTimer = this.opts.adapters.clock.setTimer(this.opts.resolver_interval_ms, again);
    };
    again();
  }

  private stopResolverTimer(): void {
    if (this.resolverTimer !== null) this.opts.adapters.clock.clearTimer(this.resolverTimer);
    this.resolverTimer = null;
  }

  /** Runs a scan that starts after this call (waiting out one under way) and resolves when it ends: true if complete. */
  async scanNow(): Promise<boolean> {
    // Two rounds at most: one to wait out a scan under way, one that starts after the call.
    for (let round = 0; round < 2; round++) {
      const fresh = this.resolverInstance.st.phase === "idle";
      const ended = new Promise<boolean>((resolve) => this.scanWaiters.push(resolve));
      this.tick();
      const complete = await ended;
      if (fresh) return complete;
    }
    throw new Error("resolver: no scan started after two rounds");
  }

  private tick(): void {
    this.resolverInstance.deliver({ t: "scan", active: this.active() });
  }

  private scanEnded(complete: boolean): void {
    if (complete) this.caughtUp = true;
    this.lastScan = { at: new Date().toISOString(), complete };
    this.opts.metrics?.resolverScans.inc({ result: complete ? "complete" : "partial" });
    if (complete) this.opts.metrics?.lastCompleteScan.setToCurrentTime();
    for (const w of this.scanWaiters.splice(0)) w(complete);
  }

  /** Stops taking transactions and waits, at most `timeout_ms`, for the running ones to finish; true if they all did. */
  async drain(timeout_ms: number): Promise<boolean> {
    this.accepting = false;
    this.stopResolverTimer();
    if (this.running.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeout_ms)));
    const ok = await Promise.race([idle, late]);
    clearTimeout(timer);
    return ok;
  }

  /** Ends every instance at once (their prepared branches are left to the next resolver). */
  stop(): void {
    this.accepting = false;
    this.stopResolverTimer();
    for (const run of [...this.running.values()]) run.instance.stop();
    this.resolverInstance.stop();
  }
}

/** A transaction id: a UUID, which fits an XA gtrid (64 bytes) and never repeats across restarts. */
export const newTxId = (): TxId => randomUUID();

/** A side recording's estimated bytes: its steps and effects, as the coordinator's (retainedBytesOf). */
function sideStepsBytes(rec: SideRecording): number {
  let effects = 0;
  for (const s of rec.steps) effects += s.effects.length;
  return rec.steps.length * RETAINED_STEP_BYTES + effects * RETAINED_EFFECT_BYTES;
}

/** Compensations and releases that changed a shard, by who ran them. */
function countLocal(m: Metrics, r: Result, by: "coordinator" | "resolver"): void {
  if ((r.t === "local.compensate" || r.t === "local.release") && r.r.ok && r.r.applied) {
    (r.t === "local.compensate" ? m.compensations : m.releases).inc({ by });
  }
}

/** The phases of speccommit_phase_duration_seconds: from the first effect of a kind to the last result of it. */
const PHASES: ReadonlyArray<readonly [string, Effect["t"] & Result["t"]]> = [
  ["exec", "xa.exec"],
  ["prepare", "xa.prepare"],
  ["log", "log.put"],
  ["commit", "xa.commit"],
  ["apply", "local.apply"],
];

function span(run: Running, from: Effect["t"], to: Result["t"]): number | null {
  const a = run.first[from];
  const b = run.last[to];
  return a === undefined || b === undefined ? null : b - a;
}

function timings(run: Running): Timings {
  const rel = (x: number | undefined) => (x === undefined ? null : round3(x - run.t0_ms));
  return {
    exec_ms: rel(run.last["xa.exec"]),
    prepare_ms: rel(run.last["xa.prepare"]),
    log_ms: rel(run.last["log.put"]),
    reply_ms: run.reply_ms === null ? null : round3(run.reply_ms),
    commit_ms: rel(run.last["xa.commit"]),
    done_ms: run.done_ms === null ? null : round3(run.done_ms),
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The coordinator's trace steps with a side recording's merged in, renumbered: the side steps taken before the
 * coordinator started come first (at 0 ms), the others after every coordinator step of the same time or earlier.
 */
function withSide(steps: readonly TraceStep[], side: { readonly rec: SideRecording; readonly early: number }, t0_ms: number, tx: TxId): TraceStep[] {
  const extra = side.rec.steps.map((s, k) => ({
    early: k < side.early,
    step: { step: 0, actor: side.rec.actor, tx, input: s.input, label: sideLabel(s.input), effects: [...s.effects], at_ms: Math.max(0, round3(s.now_ms - t0_ms)) } as TraceStep,
  }));
  const out: TraceStep[] = [];
  let i = 0;
  let j = 0;
  while (i < steps.length || j < extra.length) {
    const x = extra[j];
    const takeSide = x !== undefined && (i >= steps.length || x.early || x.step.at_ms! < (steps[i]!.at_ms ?? 0));
    out.push(takeSide ? x.step : steps[i]!);
    if (takeSide) j++;
    else i++;
  }
  return out.map((s, k) => ({ ...s, step: k + 1 }));
}

/** A side step's box: the claim, a txlog answer (`log.put idem/… -> v1`), the outcome told, or the input's kind. */
function sideLabel(input: { readonly t: string }): string {
  const x = input as { t: string; key?: string; r?: unknown; outcome?: Outcome; record?: { tx?: string } };
  if ((x.t === "log.put" || x.t === "log.delete") && x.r !== undefined) return `${x.t} ${x.key ?? ""} -> ${answerLabel(input as Result)}`;
  if (x.t === "claim") return `claim ${x.key ?? ""} for ${x.record?.tx ?? "?"}`;
  if (x.t === "told" && x.outcome !== undefined) return `told ${x.outcome.status}`;
  return x.t;
}
