/**
 * The interpreter: runs one role instance (spec/role.ts) against adapters.
 * It decides nothing. It feeds an input to `role.step`, starts every effect
 * the step returned at once (the effects of one step are independent), and
 * feeds each effect's result back as an input in the order the results
 * arrive. `reply` goes to the instance's owner, `timer` becomes a `timeout`
 * input after the delay. When the role says it is done (the `done`
 * predicate, from the role's own module), the instance ends: its timers are
 * cleared and later results are dropped (the role would ignore them; the
 * adapters still finish the statements they started).
 *
 * Optionally every step is recorded as a trace step (traces/format.ts), so
 * that a live run can be replayed against the role (runtime/replay.ts).
 */
import type { Role } from "../spec/role.ts";
import type { Effect, Outcome, Result, TxId } from "../spec/effects.ts";
import type { Msg, TraceStep } from "../traces/format.ts";
import type { Clock, TimerHandle, TxlogStore, XaExecutor } from "./adapters/ports.ts";

export interface Adapters {
  readonly xa: XaExecutor;
  readonly log: TxlogStore;
  readonly clock: Clock;
}

/** What the owner of an instance may watch; none of it feeds back into the role. */
export interface InstanceHooks<St> {
  onReply?(tx: TxId, outcome: Outcome): void;
  /** After every step, with the state it produced. */
  onStep?(st: St, input: unknown, effects: readonly Effect[]): void;
  onEffect?(e: Effect, now_ms: number): void;
  onResult?(r: Result, now_ms: number): void;
  onEnd?(): void;
}

export interface InstanceOptions<St> {
  readonly actor: string;
  readonly adapters: Adapters;
  /** The role's own "nothing left to do" predicate; absent: the instance runs until `stop()`. */
  readonly done?: (st: St) => boolean;
  /** Record every step (input, effects, time) as a trace step. */
  readonly record?: boolean;
  /** Also record the role state after each step. */
  readonly recordState?: boolean;
  /** Bound on recorded steps; past it recording stops and `truncated` is set. */
  readonly recordStepsMax?: number;
  readonly hooks?: InstanceHooks<St>;
}

const RECORD_STEPS_MAX_DEFAULT = 10_000;

export class RoleInstance<St, In extends { readonly t: string }> {
  st: St;
  readonly steps: TraceStep[] = [];
  truncated = false;
  ended = false;
  readonly started_ms: number;
  private readonly timers = new Set<TimerHandle>();
  /** Effects started and not yet answered. */
  pending = 0;
  /** Recorded messages so far, for their ids. */
  private messages = 0;

  constructor(
    private readonly role: Role<St, In, Effect>,
    private readonly opts: InstanceOptions<St>,
  ) {
    this.st = role.start();
    this.started_ms = opts.adapters.clock.now_ms();
  }

  /**
   * Steps the role on `input` and starts the effects it asks for. `receives`:
   * the message that brought the input, for the recorded diagram.
   */
  deliver(input: In, receives?: readonly Msg[]): void {
    if (this.ended) return;
    const { st, effects } = this.role.step(this.st, input);
    this.st = st;
    const now = this.opts.adapters.clock.now_ms();
    const sends = this.opts.record ? effects.map((e) => this.messageFor(e)) : [];
    if (this.opts.record) this.recordStep(this.opts.actor, input, effects, now, sends, receives);
    this.opts.hooks?.onStep?.(st, input, effects);
    effects.forEach((e, i) => this.start(e, now, sends[i] ?? null));
    if (this.opts.done?.(st)) this.end();
  }

  /** Delivers an input that `from` sent (a client's request): recorded as a step of `from`, then the role's step. */
  deliverFrom(from: string, label: string, input: In): void {
    if (!this.opts.record) return this.deliver(input);
    const msg: Msg = { id: `m${++this.messages}`, from, to: this.opts.actor, label };
    this.recordStep(from, label, [], this.opts.adapters.clock.now_ms(), [msg], undefined);
    this.deliver(input, [msg]);
  }

  /** Ends the instance now (shutdown): timers cleared, later results dropped. */
  stop(): void {
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const h of this.timers) this.opts.adapters.clock.clearTimer(h);
    this.timers.clear();
    this.opts.hooks?.onEnd?.();
  }

  /**
   * A recorded step: the role's own (actor = the instance's actor), or one of
   * its environment receiving a request and answering it, so that the trace
   * draws as a sequence diagram with a lifeline per shard, the log and the
   * client. Replay (runtime/replay.ts) feeds only the role's steps.
   */
  private recordStep(actor: string, input: unknown, effects: readonly Effect[], now: number, sends: readonly (Msg | null)[], receives: readonly Msg[] | undefined): void {
    if (this.steps.length >= (this.opts.recordStepsMax ?? RECORD_STEPS_MAX_DEFAULT)) {
      this.truncated = true;
      return;
    }
    // Inputs, effects and role states are immutable values (roles are pure), so they are kept by reference.
    const step: TraceStep = { step: this.steps.length + 1, actor, input, effects: effects as unknown[], at_ms: round3(now - this.started_ms) };
    const sent = sends.filter((m): m is Msg => m !== null);
    if (sent.length > 0) step.sends = sent;
    if (receives !== undefined && receives.length > 0) step.receives = [...receives];
    if (this.opts.recordState && actor === this.opts.actor) step.state = this.st;
    this.steps.push(step);
  }

  /** The message an effect sends to its adapter (null for a timer, which stays with the role). */
  private messageFor(e: Effect): Msg | null {
    const to = targetOf(e);
    return to === null ? null : { id: `m${++this.messages}`, from: this.opts.actor, to, label: effectLabel(e) };
  }

  private start(e: Effect, now: number, msg: Msg | null): void {
    const { xa, log, clock } = this.opts.adapters;
    this.opts.hooks?.onEffect?.(e, now);
    switch (e.t) {
      case "reply":
        if (msg !== null) this.recordStep(msg.to, "reply", [], now, [], [msg]);
        this.opts.hooks?.onReply?.(e.tx, e.outcome);
        return;
      case "timer": {
        const h = clock.setTimer(e.ms, () => {
          this.timers.delete(h);
          this.deliver({ t: "timeout", id: e.id } as Result as unknown as In);
        });
        this.timers.add(h);
        return;
      }
      case "xa.exec":
        return this.await(xa.exec(e.tx, e.shard, e.ops, e.guard), (r) => ({ t: "xa.exec", tx: e.tx, shard: e.shard, r }), e, msg);
      case "xa.prepare":
        return this.await(xa.prepare(e.tx, e.shard), (r) => ({ t: "xa.prepare", tx: e.tx, shard: e.shard, r }), e, msg);
      case "xa.commit":
        return this.await(xa.commit(e.tx, e.shard), (r) => ({ t: "xa.commit", tx: e.tx, shard: e.shard, r }), e, msg);
      case "xa.rollback":
        return this.await(xa.rollback(e.tx, e.shard), (r) => ({ t: "xa.rollback", tx: e.tx, shard: e.shard, r }), e, msg);
      case "xa.recover":
        return this.await(xa.recover(e.shard), (r) => ({ t: "xa.recover", shard: e.shard, r }), e, msg);
      case "log.put":
        return this.await(log.put(e.key, e.value, e.ifVersion, e.fence), (r) => ({ t: "log.put", key: e.key, r }), e, msg);
      case "log.list":
        return this.await(log.list(e.prefix), (r) => ({ t: "log.list", r }), e, msg);
      case "log.delete":
        return this.await(log.delete(e.key, e.fence), (r) => ({ t: "log.delete", key: e.key, r }), e, msg);
    }
  }

  private await<R>(p: Promise<R>, toResult: (r: R) => Result, e: Effect, msg: Msg | null): void {
    this.pending++;
    p.then(
      (r) => this.answer(toResult(r), msg),
      (err: unknown) => {
        // Adapters never reject (adapters/ports.ts); if one does, the effect's fate is unknown, which is what UNAVAILABLE says.
        console.error(`${this.opts.actor}: adapter rejected ${e.t}: ${(err as Error).stack ?? String(err)}`);
        this.answer(unavailable(e), msg);
      },
    );
  }

  private answer(r: Result, request: Msg | null): void {
    this.pending--;
    if (this.ended) return;
    const now = this.opts.adapters.clock.now_ms();
    this.opts.hooks?.onResult?.(r, now);
    if (request === null || !this.opts.record) return this.deliver(r as unknown as In);
    const answer: Msg = { id: `m${++this.messages}`, from: request.to, to: this.opts.actor, label: resultLabel(r) };
    this.recordStep(request.to, request.label, [], now, [answer], [request]);
    this.deliver(r as unknown as In, [answer]);
  }
}

/** Where an effect goes: its shard, the transaction log, or the client. */
function targetOf(e: Effect): string | null {
  switch (e.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
    case "xa.recover":
      return e.shard;
    case "log.put":
    case "log.list":
    case "log.delete":
      return "txlog";
    case "reply":
      return "client";
    case "timer":
      return null;
  }
}

function effectLabel(e: Effect): string {
  switch (e.t) {
    case "xa.exec":
      return `XA START..END (${e.ops.length} op${e.ops.length === 1 ? "" : "s"})`;
    case "xa.prepare":
      return "XA PREPARE";
    case "xa.commit":
      return "XA COMMIT";
    case "xa.rollback":
      return "XA ROLLBACK";
    case "xa.recover":
      return "XA RECOVER";
    case "log.put":
      return e.value.kind === "decision" ? `put ${e.value.decision.toUpperCase()}` : `put ${e.key}`;
    case "log.list":
      return `list ${e.prefix}`;
    case "log.delete":
      return "delete";
    case "reply":
      return e.outcome.status === "aborted" ? `aborted: ${e.outcome.reason}` : e.outcome.status;
    case "timer":
      return `timer ${e.id}`;
  }
}

function resultLabel(r: Result): string {
  switch (r.t) {
    case "xa.recover":
      return r.r.ok ? `${r.r.prepared.length} prepared` : r.r.err;
    case "log.list":
      return r.r.ok ? `${r.r.entries.length} records` : r.r.err;
    case "log.put":
      return r.r.ok ? `ok (v${r.r.version})` : r.r.err;
    case "timeout":
      return "timeout";
    default:
      return r.r.ok ? "ok" : r.r.err;
  }
}

function unavailable(e: Effect): Result {
  const err = { ok: false, err: "UNAVAILABLE" } as const;
  switch (e.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
      return { t: e.t, tx: e.tx, shard: e.shard, r: err };
    case "xa.recover":
      return { t: "xa.recover", shard: e.shard, r: err };
    case "log.put":
      return { t: "log.put", key: e.key, r: err };
    case "log.list":
      return { t: "log.list", r: err };
    case "log.delete":
      return { t: "log.delete", key: e.key, r: err };
    case "reply":
    case "timer":
      throw new Error(`${e.t} has no adapter`);
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
