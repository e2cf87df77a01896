/**
 * A trace replayed on the real interpreter (runtime/interpreter.ts
 * RoleInstance): one instance per role instance of the trace (actor + tx;
 * a process crash starts them all again), fed the recorded requests and
 * scans with `deliver`, and every recorded result through the adapter call
 * the interpreter itself made, so that the interpreter's own code builds the
 * result it feeds the role. The adapters here answer each call with the
 * answer the trace recorded (the injected result: a counterexample's world
 * may hold crashes, lost answers and other transactions that one adapter
 * cannot reproduce), and the clock fires a timer exactly when the trace
 * says it fired. The effects the interpreter starts at each step must be the
 * recorded ones.
 */
import type { Effect, Result } from "../../spec/kernel/effects.ts";
import { effectKey, resultKey } from "../../spec/kernel/keys.ts";
import type { Role } from "../../spec/kernel/role.ts";
import { PROCESS_ACTOR, PROCESS_CRASH, type Trace, type TraceStep } from "../../spec/kernel/trace.ts";
import { RefusedEffect, RoleInstance, refuseMutantFields, type Adapters } from "../../runtime/interpreter.ts";
import type { Clock, TimerHandle } from "../../runtime/adapters/ports.ts";

export type InterpreterReplay =
  | { ok: true; steps: number; injected: number }
  | { ok: false; step: number; message: string; expected?: unknown; got?: unknown; refused?: boolean };

interface Deferred {
  resolve(r: unknown): void;
}

/** Adapters whose every call waits until the replay answers it with the recorded answer. */
class Scripted {
  /** The effect the interpreter is starting (onEffect runs right before the adapter call). */
  current: Effect | null = null;
  readonly calls = new Map<string, Deferred[]>();
  readonly timers: { id: string; fn: () => void; handle: TimerHandle; cleared: boolean }[] = [];
  conn: string | null = null;

  private call<R>(): Promise<R> {
    const e = this.current!;
    return new Promise<R>((resolve) => {
      const k = effectKey(e);
      this.calls.set(k, [...(this.calls.get(k) ?? []), { resolve: resolve as (r: unknown) => void }]);
    });
  }

  adapters(): Adapters {
    const call = <R>() => this.call<R>();
    const clock: Clock = {
      now_ms: () => 0,
      setTimer: (_ms, fn) => {
        const handle = { id: this.timers.length };
        this.timers.push({ id: (this.current as Extract<Effect, { t: "timer" }>).id, fn, handle, cleared: false });
        return handle;
      },
      clearTimer: (h) => {
        const t = this.timers[h.id as number];
        if (t) t.cleared = true;
      },
    };
    const xa = { shards: [], exec: call, prepare: call, commit: call, rollback: call, recover: call, kill: call, connectionOf: () => this.conn } as unknown as Adapters["xa"];
    const log = { put: call, list: call, delete: call } as unknown as Adapters["log"];
    const local = { shards: [], apply: call, tombstone: call, compensate: call, release: call, scan: call } as unknown as NonNullable<Adapters["local"]>;
    return { xa, log, clock, local };
  }
}

const mutantOnly = (effects: readonly Effect[]): boolean =>
  effects.some((e) => {
    try {
      refuseMutantFields(e);
      return false;
    } catch {
      return true;
    }
  });

const settle = () => new Promise<void>((r) => setImmediate(r));

/** JSON with object keys sorted. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));

export async function replayOnInterpreter(trace: Trace, roles: Readonly<Record<string, Role<any, any, Effect>>>): Promise<InterpreterReplay> {
  let instances = new Map<string, { inst: RoleInstance<any, any>; io: Scripted; last: { effects: readonly Effect[] } | null }>();
  let steps = 0;
  let injected = 0;
  const get = (s: TraceStep) => {
    const key = `${s.actor}\u0000${s.tx ?? trace.header.tx ?? ""}`;
    let x = instances.get(key);
    if (x === undefined) {
      const io = new Scripted();
      const holder = { inst: null as unknown as RoleInstance<any, any>, io, last: null as { effects: readonly Effect[] } | null };
      holder.inst = new RoleInstance(roles[s.actor]!, {
        actor: s.actor,
        adapters: io.adapters(),
        hooks: { onEffect: (e) => (io.current = e), onStep: (_st, _in, effects) => (holder.last = { effects }) },
      });
      instances.set(key, holder);
      x = holder;
    }
    return x;
  };
  for (const s of trace.steps) {
    if (s.step === 0) continue;
    if (s.actor === PROCESS_ACTOR && s.input === PROCESS_CRASH) instances = new Map();
    if (roles[s.actor] === undefined) continue;
    const x = get(s);
    x.last = null;
    const input = s.input as { t: string; id?: string; r?: unknown; conn?: string | null };
    const key = resultKey(input as Result);
    try {
      if (input.t === "timeout") {
        const t = [...x.io.timers].reverse().find((t) => t.id === input.id && !t.cleared);
        if (t === undefined) return { ok: false, step: s.step, message: `no timer ${input.id} is set` };
        t.cleared = true;
        t.fn();
      } else if (key !== null && mutantOnly(s.effects as Effect[])) {
        // The interpreter refuses a mutant-only effect by throwing from the step; fed straight, the throw lands here.
        x.inst.deliver(input);
      } else if (key !== null) {
        const d = x.io.calls.get(key)?.shift();
        if (d === undefined) return { ok: false, step: s.step, message: `the interpreter made no adapter call for ${key}` };
        x.io.conn = input.conn ?? null;
        d.resolve(input.r);
        injected++;
        await settle();
      } else {
        x.inst.deliver(input);
      }
    } catch (e) {
      if (e instanceof RefusedEffect) return { ok: false, step: s.step, message: e.message, refused: true };
      throw e;
    }
    if (x.inst.ended) return { ok: false, step: s.step, message: "the instance stopped (a protocol violation)" };
    const last = x.last as { effects: readonly Effect[] } | null;
    if (last === null) return { ok: false, step: s.step, message: "the interpreter did not step the role" };
    if (canonical(last.effects) !== canonical(s.effects)) return { ok: false, step: s.step, message: "the interpreter started different effects", expected: s.effects, got: last.effects };
    steps++;
  }
  return { ok: true, steps, injected };
}
