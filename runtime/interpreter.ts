/**
 * The interpreter: runs one role instance (spec/kernel/role.ts) against adapters.
 * It decides nothing. It feeds an input to `role.step`, starts every effect
 * the step returned at once (the effects of one step are independent), and
 * feeds each effect's result back as an input in the order the results
 * arrive. `reply` goes to the instance's owner, `timer` becomes a `timeout`
 * input after the delay. When the role says it is done (the `done`
 * predicate, from the role's own module), the instance ends: its timers are
 * cleared and later results are dropped (the role would ignore them; the
 * adapters still finish the statements they started).
 *
 * Optionally every step is recorded as a trace step (spec/kernel/trace.ts), so
 * that a live run can be replayed against the role (conformance/replay.ts) and
 * drawn with the labels counterexamples use (spec/labels.ts).
 */
import { ProtocolViolation, type Role } from "../spec/kernel/role.ts";
import type { Effect, Result, LocalEffect, Outcome, TxId } from "../spec/kernel/effects.ts";
import { effectKey, resultKey } from "../spec/kernel/keys.ts";
import { answerLabel, effectLabel, exchangeLabel, heardLabel, isResult, requestLabel, resultLabel, targetOf, type Context } from "../spec/labels.ts";
import type { Msg, TraceStep } from "../spec/kernel/trace.ts";
import type { Clock, LocalExecutor, TimerHandle, TxlogStore, XaExecutor } from "./adapters/ports.ts";

export type { Effect, Result };

export interface Adapters {
  readonly xa: XaExecutor;
  readonly log: TxlogStore;
  readonly clock: Clock;
  /** The speculative path's local transactions; absent: a speculative role's local effects are refused. */
  readonly local?: LocalExecutor;
}

/** A role asked for something the runtime never does: a field that exists only for a checker mutant. */
export class RefusedEffect extends Error {}

/**
 * The effect fields that exist only so the checker's deliberate bugs can ask
 * for less (spec/kernel/effects.ts): the runtime runs the protocol, never a mutant,
 * and refuses them rather than execute a weaker statement.
 */
export function refuseMutantFields(e: Effect): void {
  const bad =
    (e.t === "xa.exec" && !e.guard) ||
    (e.t === "local.apply" && (!e.escrow || e.parts !== "both")) ||
    (e.t === "local.compensate" && !e.retire) ||
    (e.t === "local.release" && e.row !== "retire") ||
    (e.t === "log.put" && e.value.kind === "staging" && e.value.branches.some((b) => b.conn === ""));
  if (bad) throw new RefusedEffect(`refusing ${e.t} with a mutant-only field: ${JSON.stringify(e)}`);
}

/** What the owner of an instance may watch; none of it feeds back into the role. */
export interface InstanceHooks<St> {
  onReply?(tx: TxId, outcome: Outcome): void;
  /** After every step, with the state it produced. */
  onStep?(st: St, input: unknown, effects: readonly Effect[]): void;
  onEffect?(e: Effect, now_ms: number): void;
  onResult?(r: Result, now_ms: number): void;
  /** The role asserted something that must never happen (spec/kernel/role.ts): the instance has stopped. */
  onViolation?(e: ProtocolViolation): void;
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
  /** The role's steps as recorded, compact (Recording); `trace()` turns them into trace steps. */
  private recording: Recording;
  get truncated(): boolean {
    return this.recording.truncated;
  }
  ended = false;
  readonly started_ms: number;
  private readonly timers = new Set<TimerHandle>();
  /** Effects started and not yet answered: a small object of its own, so that an owner can watch it without keeping the instance. */
  readonly waiting = { n: 0 };
  /** Effects started and not yet answered. */
  get pending(): number {
    return this.waiting.n;
  }
  /** The role has answered its client (a second answer is a protocol violation). */
  private replied = false;

  constructor(
    private readonly role: Role<St, In, Effect>,
    private readonly opts: InstanceOptions<St>,
  ) {
    this.st = role.start();
    this.started_ms = opts.adapters.clock.now_ms();
    this.recording = newRecording(opts.actor, opts.recordStepsMax ?? RECORD_STEPS_MAX_DEFAULT);
  }

  /** Steps the role on `input` and starts the effects it asks for; a role that asserts what must never happen is stopped. */
  deliver(input: In): void {
    if (this.ended) return;
    let out: { st: St; effects: Effect[] };
    try {
      out = this.role.step(this.st, input);
      for (const e of out.effects) {
        refuseMutantFields(e);
        if (e.t === "reply" && this.replied) throw new ProtocolViolation(`${this.opts.actor}: a second reply for ${e.tx} (${e.outcome.status})`);
        if (e.t === "reply") this.replied = true;
      }
    } catch (e) {
      if (!(e instanceof ProtocolViolation)) throw e;
      this.opts.hooks?.onViolation?.(e);
      this.end();
      return;
    }
    const { st, effects } = out;
    this.st = st;
    const now = this.opts.adapters.clock.now_ms();
    if (this.opts.record) this.record(input, effects, now);
    this.opts.hooks?.onStep?.(st, input, effects);
    for (const e of effects) this.start(e, now);
    if (this.opts.done?.(st)) this.end();
  }

  /** Delivers the first input, which `from` sent (a client's request): the diagram shows `from` sending it. */
  deliverFrom(from: string, label: string, input: In): void {
    this.recording.origin = { from, label };
    this.deliver(input);
  }

  /**
   * Hands the recorded steps over to the owner (which formats them with `traceOf` only if a trace is asked for)
   * and records nothing more: `trace()` is empty from then on.
   */
  takeRecording(): Recording {
    const r = this.recording;
    this.recording = newRecording(this.opts.actor, 0);
    return r;
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

  private record(input: In, effects: readonly Effect[], now: number): void {
    const rec = this.recording;
    if (rec.steps >= rec.steps_max) {
      if (rec.steps_max > 0) rec.truncated = true;
      return;
    }
    // Inputs, effects and role states are immutable values (roles are pure), so they are kept by reference:
    // three slots per step, no object of its own; labels and messages are made only by traceOf.
    rec.flat.push(input, effects, round3(now - this.started_ms));
    if (this.opts.recordState) (rec.states ??= [])[rec.steps] = this.st;
    rec.steps++;
    rec.effects += effects.length;
  }

  /** The recorded steps as a trace (traceOf). */
  trace(): TraceStep[] {
    return traceOf(this.recording);
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
        return this.await(xa.exec(e.tx, e.shard, e.ops, e.guard, e.fence, e.onePhase), (r) => ({ t: "xa.exec", tx: e.tx, shard: e.shard, r, conn: r.ok ? xa.connectionOf(e.tx, e.shard) : null }), e);
      case "xa.kill":
        return this.await(xa.kill(e.shard, e.conn), (r) => ({ t: "xa.kill", shard: e.shard, conn: e.conn, r }), e);
      case "local.apply":
        return this.await(this.local(e).apply(e.tx, e.shard, e.ops, e.branches), (r) => ({ t: "local.apply", tx: e.tx, shard: e.shard, r }), e);
      case "local.tombstone":
        return this.await(this.local(e).tombstone(e.tx, e.shard), (r) => ({ t: "local.tombstone", tx: e.tx, shard: e.shard, r }), e);
      case "local.compensate":
        return this.await(this.local(e).compensate(e.tx, e.shard), (r) => ({ t: "local.compensate", tx: e.tx, shard: e.shard, r }), e);
      case "local.release":
        return this.await(this.local(e).release(e.tx, e.shard), (r) => ({ t: "local.release", tx: e.tx, shard: e.shard, r }), e);
      case "local.scan":
        return this.await(this.local(e).scan(e.shard), (r) => ({ t: "local.scan", shard: e.shard, r }), e);
      case "xa.prepare":
        return this.await(xa.prepare(e.tx, e.shard), (r) => ({ t: "xa.prepare", tx: e.tx, shard: e.shard, r }), e);
      case "xa.commit":
        return this.await(xa.commit(e.tx, e.shard, e.onePhase === true), (r) => ({ t: "xa.commit", tx: e.tx, shard: e.shard, r }), e);
      case "xa.rollback":
        return this.await(xa.rollback(e.tx, e.shard), (r) => ({ t: "xa.rollback", tx: e.tx, shard: e.shard, r }), e);
      case "xa.recover":
        return this.await(xa.recover(e.shard), (r) => ({ t: "xa.recover", shard: e.shard, r }), e);
      case "log.put":
        return this.await(log.put(e.key, e.value, e.ifVersion, e.fence), (r) => ({ t: "log.put", key: e.key, r }), e);
      case "log.list":
        return this.await(log.list(e.prefix), (r) => ({ t: "log.list", r }), e);
      case "log.delete":
        return this.await(log.delete(e.key, e.fence, e.ifVersion), (r) => ({ t: "log.delete", key: e.key, r }), e);
    }
  }

  private local(e: LocalEffect): LocalExecutor {
    const l = this.opts.adapters.local;
    if (l === undefined) throw new RefusedEffect(`${e.t}: this runtime has no local-transaction adapter`);
    return l;
  }

  private await<R>(p: Promise<R>, toResult: (r: R) => Result, e: Effect): void {
    this.waiting.n++;
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
    this.waiting.n--;
    if (this.ended) return;
    this.opts.hooks?.onResult?.(r, this.opts.adapters.clock.now_ms());
    this.deliver(r as unknown as In);
  }
}


/**
 * The steps a role instance recorded, compact: per step its input, its effects and its time (ms since the
 * instance started) in three slots of one flat array, by reference (roles are pure, so these values never
 * change). What `traceOf` formats. The counts let an owner estimate what a kept recording holds without
 * formatting it.
 */
export interface Recording {
  readonly actor: string;
  /** input, effects, at_ms of step 0, then of step 1, ... */
  readonly flat: unknown[];
  steps: number;
  /** Effects over all steps. */
  effects: number;
  readonly steps_max: number;
  truncated: boolean;
  /** Who sent the first input, for the diagram (deliverFrom). */
  origin: { from: string; label: string } | null;
  /** Role states after each step (recordState). */
  states?: unknown[];
}

function newRecording(actor: string, steps_max: number): Recording {
  return { actor, flat: [], steps: 0, effects: 0, steps_max, truncated: false, origin: null };
}

/**
 * A recording's steps as a trace: the role's own steps (actor = the
 * instance's actor) and, around them, its environment's: the client
 * sending the request and receiving the reply, each shard and the log
 * receiving a request and answering it, with sends and receives matched,
 * so that the trace draws as a sequence diagram. Every step carries its
 * label: a step that handles an answer says the request and the answer
 * (`PREPARE shard-b -> ok`), on the answering shard's lifeline and on the
 * role's, so that two branches' answers are told apart. Replay
 * (conformance/replay.ts) feeds only the role's steps. Formatted only when
 * asked for (GET /transactions/:id), never on the transfer's path.
 */
export function traceOf(rec: Recording): TraceStep[] {
  const actor = rec.actor;
  const flat = rec.flat;
  const ctx = contextOf(flat[0]);
  const steps: TraceStep[] = [];
  let ids = 0;
  const msg = (from: string, to: string, label: string): Msg => ({ id: `m${++ids}`, from, to, label });
  const push = (s: Omit<TraceStep, "step">) => steps.push({ step: steps.length + 1, ...s });
  /** Requests sent and not answered yet, first in first out per effect key. */
  const waiting = new Map<string, Msg[]>();
  for (let i = 0; i < rec.steps; i++) {
    const r = { input: flat[3 * i], effects: flat[3 * i + 1] as readonly Effect[], at_ms: flat[3 * i + 2] as number, state: rec.states?.[i] };
    let receives: Msg[] | undefined;
    let label = inputLabel(r.input, ctx);
    if (i === 0 && rec.origin !== null) {
      const m = msg(rec.origin.from, actor, rec.origin.label);
      push({ actor: rec.origin.from, input: rec.origin.label, label: rec.origin.label, effects: [], sends: [m], at_ms: r.at_ms });
      receives = [m];
    }
    const result = r.input as unknown as Result;
    const key = resultKey(result);
    const request = key === null ? undefined : waiting.get(key)?.shift();
    if (request !== undefined) {
      const answer = msg(request.to, actor, answerLabel(result));
      label = exchangeLabel(request.label, answer.label);
      push({ actor: request.to, input: request.label, label, effects: [], receives: [request], sends: [answer], at_ms: r.at_ms });
      receives = [answer];
    }
    const sends: Msg[] = [];
    const replies: { msg: Msg; outcome: Outcome }[] = [];
    for (const e of r.effects) {
      const to = targetOf(e);
      if (to === null) continue;
      const m = msg(actor, to, effectLabel(e, ctx));
      sends.push(m);
      if (e.t === "reply") replies.push({ msg: m, outcome: e.outcome });
      else waiting.set(effectKey(e), [...(waiting.get(effectKey(e)) ?? []), m]);
    }
    push({
      actor,
      // A coordinator's instance is (actor, tx), as in a counterexample (docs/traces.md).
      ...(ctx.tx !== undefined ? { tx: ctx.tx } : {}),
      input: r.input,
      label,
      effects: r.effects as unknown[],
      ...(sends.length > 0 ? { sends } : {}),
      ...(receives !== undefined ? { receives } : {}),
      ...(r.state !== undefined ? { state: r.state } : {}),
      at_ms: r.at_ms,
    });
    for (const { msg: m, outcome } of replies) push({ actor: m.to, input: "reply", label: heardLabel(outcome), effects: [], receives: [m], at_ms: r.at_ms });
  }
  return steps;
}


/** A coordinator's trace is about the transaction of its first input, the request. */
function contextOf(first: unknown): Context {
  const r = first as { t?: string; tx?: unknown } | undefined;
  return r?.t === "request" && typeof r.tx === "string" ? { tx: r.tx } : {};
}

/** A role input that answers no recorded request: the client's request, a timeout, a result asked before recording began, a scan. */
function inputLabel(input: unknown, ctx: Context): string {
  const r = input as { t?: unknown; tx?: unknown; branches?: unknown };
  if (r.t === "request" && typeof r.tx === "string" && Array.isArray(r.branches)) return requestLabel(r.tx, r.branches.length, ctx);
  if (isResult(input)) return resultLabel(input, ctx);
  return typeof r.t === "string" ? r.t : "input";
}

function unavailable(e: Effect): Result {
  const err = { ok: false, err: "UNAVAILABLE" } as const;
  switch (e.t) {
    case "xa.exec":
      return { t: e.t, tx: e.tx, shard: e.shard, r: err, conn: null };
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
      return { t: e.t, tx: e.tx, shard: e.shard, r: err };
    case "xa.kill":
      return { t: e.t, shard: e.shard, conn: e.conn, r: err };
    case "local.apply":
    case "local.tombstone":
    case "local.compensate":
    case "local.release":
      return { t: e.t, tx: e.tx, shard: e.shard, r: err } as Result;
    case "local.scan":
      return { t: e.t, shard: e.shard, r: err };
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
