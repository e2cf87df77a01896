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
import type { TraceStep } from "../traces/format.ts";
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

  constructor(
    private readonly role: Role<St, In, Effect>,
    private readonly opts: InstanceOptions<St>,
  ) {
    this.st = role.start();
    this.started_ms = opts.adapters.clock.now_ms();
  }

  /** Steps the role on `input` and starts the effects it asks for. */
  deliver(input: In): void {
    if (this.ended) return;
    const { st, effects } = this.role.step(this.st, input);
    this.st = st;
    const now = this.opts.adapters.clock.now_ms();
    if (this.opts.record) this.recordStep(input, effects, now);
    this.opts.hooks?.onStep?.(st, input, effects);
    for (const e of effects) this.start(e, now);
    if (this.opts.done?.(st)) this.end();
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

  private recordStep(input: In, effects: readonly Effect[], now: number): void {
    if (this.steps.length >= (this.opts.recordStepsMax ?? RECORD_STEPS_MAX_DEFAULT)) {
      this.truncated = true;
      return;
    }
    // Inputs, effects and role states are immutable values (roles are pure), so they are kept by reference.
    const step: TraceStep = { step: this.steps.length + 1, actor: this.opts.actor, input, effects: effects as unknown[], at_ms: round3(now - this.started_ms) };
    if (this.opts.recordState) step.state = this.st;
    this.steps.push(step);
  }

  private start(e: Effect, now: number): void {
    const { xa, log, clock } = this.opts.adapters;
    this.opts.hooks?.onEffect?.(e, now);
    switch (e.t) {
      case "reply":
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
        return this.await(xa.exec(e.tx, e.shard, e.ops, e.guard), (r) => ({ t: "xa.exec", tx: e.tx, shard: e.shard, r }), e);
      case "xa.prepare":
        return this.await(xa.prepare(e.tx, e.shard), (r) => ({ t: "xa.prepare", tx: e.tx, shard: e.shard, r }), e);
      case "xa.commit":
        return this.await(xa.commit(e.tx, e.shard), (r) => ({ t: "xa.commit", tx: e.tx, shard: e.shard, r }), e);
      case "xa.rollback":
        return this.await(xa.rollback(e.tx, e.shard), (r) => ({ t: "xa.rollback", tx: e.tx, shard: e.shard, r }), e);
      case "xa.recover":
        return this.await(xa.recover(e.shard), (r) => ({ t: "xa.recover", shard: e.shard, r }), e);
      case "log.put":
        return this.await(log.put(e.key, e.value, e.ifVersion, e.fence), (r) => ({ t: "log.put", key: e.key, r }), e);
      case "log.list":
        return this.await(log.list(e.prefix), (r) => ({ t: "log.list", r }), e);
      case "log.delete":
        return this.await(log.delete(e.key, e.fence), (r) => ({ t: "log.delete", key: e.key, r }), e);
    }
  }

  private await<R>(p: Promise<R>, toResult: (r: R) => Result, e: Effect): void {
    this.pending++;
    p.then(
      (r) => this.answer(toResult(r)),
      (err: unknown) => {
        // Adapters never reject (adapters/ports.ts); if one does, the effect's fate is unknown, which is what UNAVAILABLE says.
        console.error(`${this.opts.actor}: adapter rejected ${e.t}: ${(err as Error).stack ?? String(err)}`);
        this.answer(unavailable(e));
      },
    );
  }

  private answer(r: Result): void {
    this.pending--;
    if (this.ended) return;
    this.opts.hooks?.onResult?.(r, this.opts.adapters.clock.now_ms());
    this.deliver(r as unknown as In);
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
