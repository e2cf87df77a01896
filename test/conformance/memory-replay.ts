/**
 * A counterexample replayed on the real interpreter (runtime/interpreter.ts
 * RoleInstance) with the memory adapters (runtime/adapters/memory.ts,
 * memory-local.ts) as its environment: nothing is injected. The trace gives
 * only the schedule (docs/traces.md): which role instance is started or fed
 * a scan, which effect in flight is answered when (the environment's step
 * that receives it), when a role's timer fires, and the environment's faults
 * (a process crash, a shard's kill -9 and restart, a shard noticing a dead
 * connection, a lost txlog answer, a local statement meeting a crash). The memory adapters execute each effect
 * against their own state and produce the answer; the interpreter builds the
 * role's input from it; and that input must be the one the checker's world
 * produced (the recorded input of the role's step), the role's effects the
 * recorded effects.
 *
 * Where the world offers several outcomes for one statement (a lock wait or
 * a lock timeout), the adapters' seedable generator is what chooses, as in
 * a simulation: here it picks the outcome whose answer is the recorded one,
 * or, when none is, the adapter's first, and the comparison then fails. The
 * adapters' fault knobs (MemoryTxlog.available, crashShard, the generator's
 * "was it written" draw) are set for exactly the step the trace says.
 *
 * A fault of the model that the memory adapters have no way to produce stops
 * the replay at that step with `cannot` naming it (CANNOT_EXPRESS says why);
 * the test lists every counterexample that meets one.
 */
import type { Effect, LogRecord, Result } from "../../spec/kernel/effects.ts";
import type { Role } from "../../spec/kernel/role.ts";
import { canonicalJson } from "../../spec/env/canonical.ts";
import { answerLabel } from "../../spec/labels.ts";
import { CLIENT_ACTOR, PROCESS_ACTOR, PROCESS_CRASH, lifelineOf, type Trace, type TraceStep } from "../../spec/kernel/trace.ts";
import type * as xa from "../../spec/env/xa.ts";
import type * as local from "../../spec/env/local.ts";
import type * as txlog from "../../spec/env/txlog.ts";
import { RefusedEffect, RoleInstance, refuseMutantFields, type Adapters } from "../../runtime/interpreter.ts";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { MemoryLocal } from "../../runtime/adapters/memory-local.ts";
import type { TimerHandle } from "../../runtime/adapters/ports.ts";

/** A fault of the model that the memory adapters cannot produce. */
export type CannotExpress = "resolver-on-branch-connection" | "local-statement-survives-crash" | "crash-loses-acknowledged-rollbacks";

export const CANNOT_EXPRESS_WHY: Readonly<Record<CannotExpress, string>> = {
  "resolver-on-branch-connection":
    "the resolver's XA statement for a branch whose connection this process holds, landing after the process crashed and the shard dropped that connection: the world's resolver always uses a fresh connection (spec/env/xa-shard.ts branchConnOf), so the statement runs; MemoryXa, as runtime/adapters/xa-mysql.ts, sends it on the branch's connection while that lives, so it is lost with it",
  "local-statement-survives-crash":
    "a local statement in flight when its shard crashed is answered as if no crash had met it (it runs after the restart): MemoryLocal answers every statement in flight at a crash UNAVAILABLE (the crash closed its connection), having committed just before or not",
  "crash-loses-acknowledged-rollbacks":
    "kill -9 with acknowledged XA ROLLBACKs not yet flushed (xa.crashOutcomes beyond the first): MemoryXa.crashShard is xa.crash, the outcome where every rollback reached the disk",
};

export type MemoryReplay =
  | { ok: true; steps: number; answers: number; faults: number; states: number }
  | { ok: false; step: number; message: string; expected?: unknown; got?: unknown; refused?: boolean; cannot?: CannotExpress };

/** The memory adapters a replay runs on; a test may hand in a deliberately wrong one. */
export interface MemoryFactories {
  xa?: (balances: ReadonlyMap<string, ReadonlyArray<readonly [number, number]>>, clock: SimClock, rng: Rng) => MemoryXa;
  local?: (balances: ReadonlyMap<string, ReadonlyArray<readonly [number, number]>>, clock: SimClock, rng: Rng) => MemoryLocal;
  txlog?: (clock: SimClock, rng: Rng) => MemoryTxlog;
}

/** The adapters' generator, answering as the trace's schedule says: no latency, each draw set for the one step it serves. */
class ScriptedRng extends Rng {
  /** What `next()` draws: below 0.5, "the write happened" / "the statement committed before the crash". */
  draw = 0.99;
  /** Draws queued for one call that draws several times (MemoryLocal.crashShard: one per statement in flight), then `draw`. */
  queue: number[] = [];
  /** Chooses among a statement's outcomes. */
  chooser: ((xs: readonly unknown[]) => number) | null = null;
  constructor() {
    super(0);
  }
  override next(): number {
    return this.queue.shift() ?? this.draw;
  }
  override int(lo: number): number {
    return lo;
  }
  override pick<T>(xs: readonly T[]): T {
    return xs[this.chooser === null ? 0 : Math.max(0, this.chooser(xs))]!;
  }
}

/** An effect in flight in the adapters, or a role's timer: fired when the trace says. */
interface Pending {
  readonly owner: string;
  readonly key: string;
  readonly effect: Effect;
  readonly gen: number;
  readonly fn: () => void;
  cancelled: boolean;
  answer?: unknown;
}

/** The clock the adapters and the interpreter share: nothing fires by itself, the replay fires what the trace schedules. */
class ScheduleClock extends SimClock {
  current: { owner: string; effect: Effect } | null = null;
  gen = 0;
  readonly ops: Pending[] = [];
  readonly timers: Pending[] = [];
  last: Pending | null = null;
  override now_ms(): number {
    return 0;
  }
  override setTimer(_ms: number, fn: () => void): TimerHandle {
    const c = this.current;
    // Outside any effect: the adapter's own timer (MemoryXa noticing a dead connection), which the trace's steps replace.
    if (c === null) return { id: { fn, cancelled: true } };
    const p: Pending = { owner: c.owner, key: canonicalJson(c.effect), effect: c.effect, gen: this.gen, fn, cancelled: false };
    (c.effect.t === "timer" ? this.timers : this.ops).push(p);
    this.last = p;
    return { id: p };
  }
  override clearTimer(h: TimerHandle): void {
    (h.id as Pending).cancelled = true;
  }
}

/** Taps every adapter call: the answer it resolves with is kept on its pending entry, heard or not. */
function tap<T extends object>(target: T, clock: ScheduleClock): T {
  return new Proxy(target, {
    get(t, p, recv) {
      const v = Reflect.get(t, p, recv) as unknown;
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        clock.last = null;
        const out = (v as (...a: unknown[]) => unknown).apply(t, args);
        const entry = clock.last as Pending | null;
        if (out instanceof Promise && entry !== null) void out.then((r) => (entry.answer = r));
        return out;
      };
    },
  });
}

const settle = () => new Promise<void>((r) => setImmediate(r));

/** What the world's shard states look like, by environment: XA (xa.ShardState), local (local.LocalShard), or both. */
type ShardView = xa.ShardState | local.LocalShard | { xa: xa.ShardState; local: local.LocalShard };
const xaOf = (s: ShardView): xa.ShardState | null => ("branches" in s ? s : "xa" in s ? s.xa : null);
const localOf = (s: ShardView): local.LocalShard | null => ("accounts" in s ? s : "local" in s ? s.local : null);

interface WorldView {
  shards: ShardView[];
  log: txlog.TxlogState;
}

/** The recorded answer of an environment's step: `PREPARE s2 -> ok (orphan)` says `ok`, orphan. */
function answerOf(s: TraceStep, request: string): { answer: string; orphan: boolean; unheard: boolean } {
  let label = s.label ?? "";
  const orphan = label.endsWith(" (orphan)");
  const unheard = label.endsWith(" (nobody hears it)");
  if (orphan) label = label.slice(0, -" (orphan)".length);
  if (unheard) label = label.slice(0, -" (nobody hears it)".length);
  const head = `${request} -> `;
  return { answer: label.startsWith(head) ? label.slice(head.length) : label, orphan, unheard };
}

/** What the asker hears of a fault the world's label spells out: `UNAVAILABLE (written)`, `committed, then CRASH` are heard as UNAVAILABLE. */
const heardAs = (answer: string): string =>
  answer.startsWith("UNAVAILABLE (") || answer === "committed, then CRASH" || answer === "CRASH before commit" || answer === "rolled back (dead client)" ? "UNAVAILABLE" : answer;

/**
 * The world's executor (spec/env/executor.ts, a shard that is down) answers
 * a failed xa.exec without `conn`, where the vocabulary says `conn: null` and
 * the interpreter writes it; the roles read both alike (a failed exec's
 * connection is never read). The recorded input is compared with the field
 * filled in; every other field must be equal.
 */
function execConn(input: unknown): unknown {
  const r = input as { t?: string; conn?: unknown };
  return r !== null && typeof r === "object" && r.t === "xa.exec" && !("conn" in r) ? { ...r, conn: null } : input;
}

const mutantOnly = (effects: readonly unknown[]): boolean =>
  effects.some((e) => {
    try {
      refuseMutantFields(e as Effect);
      return false;
    } catch {
      return true;
    }
  });

interface Env {
  readonly clock: ScheduleClock;
  readonly rng: ScriptedRng;
  readonly xa: MemoryXa;
  readonly local: MemoryLocal | null;
  readonly log: MemoryTxlog;
  readonly adapters: Adapters;
  readonly shards: readonly string[];
}

/** The memory adapters over the initial state the trace starts from (its step 0): the same accounts and balances. */
function environment(trace: Trace, f: MemoryFactories): Env {
  const init = trace.steps[0]?.state as WorldView | undefined;
  if (init === undefined || trace.steps[0]!.step !== 0) throw new Error("the trace records no initial state (step 0)");
  const actors = trace.header.actors ?? [];
  const shards = actors.slice(actors.indexOf("txlog") + 1);
  if (shards.length !== init.shards.length) throw new Error(`header actors name ${shards.length} shards, the initial state has ${init.shards.length}`);
  const xaBalances = new Map<string, ReadonlyArray<readonly [number, number]>>();
  const localBalances = new Map<string, ReadonlyArray<readonly [number, number]>>();
  init.shards.forEach((sh, i) => {
    const x = xaOf(sh);
    const l = localOf(sh);
    if (x !== null) xaBalances.set(shards[i]!, x.balances);
    if (l !== null) localBalances.set(shards[i]!, l.accounts.map(([a, b]) => [a, b] as const));
  });
  const clock = new ScheduleClock();
  const rng = new ScriptedRng();
  const memXa = (f.xa ?? ((b, c, r) => new MemoryXa(b, c, r)))(xaBalances, clock, rng);
  // The world numbers process incarnations from 0 (a branch's connection is `t1/s1@0`).
  memXa.incarnation = 0;
  const memLocal = localBalances.size === 0 ? null : (f.local ?? ((b, c, r) => new MemoryLocal(b, c, r)))(localBalances, clock, rng);
  const memLog = (f.txlog ?? ((c, r) => new MemoryTxlog(c, r)))(clock, rng);
  const adapters: Adapters = {
    xa: tap(memXa, clock),
    log: tap(memLog, clock),
    clock,
    ...(memLocal !== null ? { local: tap(memLocal, clock) } : {}),
  };
  return { clock, rng, xa: memXa, local: memLocal, log: memLog, adapters, shards };
}

/** The state the adapters hold, in the world's shapes, for comparing with a recorded world. */
function adapterState(env: Env, recorded: WorldView): WorldView {
  const shards = env.shards.map((id, i): ShardView => {
    const r = recorded.shards[i]!;
    const x = env.xa.state.get(id);
    const l = env.local?.state.get(id);
    if ("xa" in r) return { xa: x!, local: l! };
    return "accounts" in r ? l! : x!;
  });
  return { shards, log: env.log.state };
}

type Instance = { inst: RoleInstance<any, any>; lifeline: string; heard: { input: unknown; effects: readonly Effect[] } | null };

export async function replayOnMemory(trace: Trace, roles: Readonly<Record<string, Role<any, any, Effect>>>, factories: MemoryFactories = {}): Promise<MemoryReplay> {
  const env = environment(trace, factories);
  const { clock, rng } = env;
  let instances = new Map<string, Instance>();
  let steps = 0;
  let answers = 0;
  let faults = 0;
  let states = 0;
  /** Local statements a crash of their shard met in flight: MemoryLocal answers them UNAVAILABLE. */
  const lostInCrash = new Set<Pending>();
  const get = (s: TraceStep): Instance => {
    const tx = s.tx ?? trace.header.tx;
    const key = `${s.actor}\u0000${tx ?? ""}`;
    let x = instances.get(key);
    if (x === undefined) {
      const lifeline = lifelineOf(s.actor, tx, trace.header.tx);
      const holder: Instance = { inst: null as unknown as RoleInstance<any, any>, lifeline, heard: null };
      holder.inst = new RoleInstance(roles[s.actor]!, {
        actor: s.actor,
        adapters: env.adapters,
        hooks: {
          onEffect: (e) => (clock.current = { owner: lifeline, effect: e }),
          onStep: (_st, input, effects) => (holder.heard = { input, effects }),
        },
      });
      instances.set(key, holder);
      x = holder;
    }
    return x;
  };
  const fail = (s: TraceStep, message: string, expected?: unknown, got?: unknown): MemoryReplay => ({ ok: false, step: s.step, message: `step ${s.step} (${s.actor}): ${message}`, expected, got });
  const isRole = (s: TraceStep) => roles[s.actor] !== undefined;
  const nextRoleStep = (i: number): TraceStep | undefined => trace.steps.slice(i + 1).find(isRole);

  for (let i = 0; i < trace.steps.length; i++) {
    const s = trace.steps[i]!;
    if (s.step === 0 || s.actor === CLIENT_ACTOR || s.actor === "timer") continue;
    if (s.actor === PROCESS_ACTOR) {
      if (s.input === PROCESS_CRASH) {
        // Every role of the process stops (its late answers are dropped); its connections close.
        for (const x of instances.values()) x.inst.stop();
        instances = new Map();
        clock.gen++;
        clock.current = null;
        env.xa.crashProcess();
        env.local?.crashProcess();
        faults++;
      }
      continue;
    }
    if (isRole(s)) {
      const r = await roleStep(s);
      if (r !== null) return r;
      steps++;
      continue;
    }
    const r = await environmentStep(s, i);
    if (r !== null) return r;
    const mismatch = compareState(s);
    if (mismatch !== null) return mismatch;
  }
  return { ok: true, steps, answers, faults, states };

  /** After an environment's step the adapters hold what the world holds: the txlog, and each shard (XA part, local part). */
  function compareState(s: TraceStep): MemoryReplay | null {
    const w = s.state as WorldView | undefined;
    if (w === undefined) return null;
    const mine = adapterState(env, w);
    if (canonicalJson(mine.log) !== canonicalJson(w.log)) return fail(s, "the memory txlog holds another state than the world's", w.log, mine.log);
    for (let k = 0; k < w.shards.length; k++) {
      const [want, got] = [w.shards[k]!, mine.shards[k]!];
      const wx = xaOf(want);
      if (canonicalJson(xaOf(got)) !== canonicalJson(wx)) return fail(s, `${env.shards[k]}: MemoryXa holds another state than the world's`, wx, xaOf(got));
      if (canonicalJson(localOf(got)) !== canonicalJson(localOf(want))) return fail(s, `${env.shards[k]}: MemoryLocal holds another state than the world's`, localOf(want), localOf(got));
      states++;
    }
    return null;
  }

  async function roleStep(s: TraceStep): Promise<MemoryReplay | null> {
    const x = get(s);
    const input = s.input as { t: string; id?: string };
    if (input.t === "request" || input.t === "scan" || input.t === "timeout") {
      x.heard = null;
      try {
        if (input.t === "timeout") {
          const t = [...clock.timers].reverse().find((p) => p.owner === x.lifeline && p.gen === clock.gen && (p.effect as { id: string }).id === input.id && !p.cancelled);
          if (t === undefined) return fail(s, `no timer ${input.id} is set`);
          t.cancelled = true;
          t.fn();
        } else {
          x.inst.deliver(input);
        }
      } catch (e) {
        if (e instanceof RefusedEffect) return { ok: false, step: s.step, message: e.message, refused: true };
        throw e;
      }
    }
    // A result was delivered by the adapter when the environment's step before this one answered.
    const heard = x.heard as Instance["heard"];
    x.heard = null;
    if (x.inst.ended) return fail(s, "the instance stopped (a protocol violation)");
    if (heard === null) return fail(s, "the memory adapters delivered nothing to this role", s.input, null);
    if (canonicalJson(heard.input) !== canonicalJson(execConn(s.input))) return fail(s, "the memory adapters answered otherwise than the checker's world", s.input, heard.input);
    if (canonicalJson(heard.effects) !== canonicalJson(s.effects)) return fail(s, "the interpreter started different effects", s.effects, heard.effects);
    return null;
  }

  async function environmentStep(s: TraceStep, i: number): Promise<MemoryReplay | null> {
    const shard = env.shards.indexOf(s.actor);
    if (s.input === "crash" || s.input === "restart" || s.input === "notice") {
      if (shard < 0) return fail(s, `an environment fault on ${s.actor}, which is not a shard`);
      return shardFault(s, env.shards[shard]!);
    }
    const req = s.receives?.[0];
    if (req === undefined) return fail(s, "an environment's step that answers no request");
    const key = req.id.slice(req.from.length + 1);
    const { answer, orphan, unheard } = answerOf(s, req.label);
    const op = clock.ops.find((p) => !p.cancelled && p.owner === req.from && p.key === key && (orphan ? p.gen < clock.gen : p.gen === clock.gen));
    if (op === undefined) return fail(s, `no ${req.label} of ${req.from} is in flight in the adapters`);
    const next = nextRoleStep(i);
    // The role's next step asks for a mutant-only effect the interpreter refuses: the adapter's answer is still checked, unheard.
    const refused = !orphan && !unheard && next !== undefined && mutantOnly(next.effects);
    if (refused) for (const x of instances.values()) if (x.lifeline === req.from) x.inst.stop();
    const recorded = s.state as WorldView | undefined;
    const restore = armFault(op, answer, shard, recorded);
    if (typeof restore === "string") return { ok: false, step: s.step, message: `step ${s.step} (${s.actor}): ${CANNOT_EXPRESS_WHY[restore]}`, cannot: restore };
    op.cancelled = true;
    clock.current = null;
    op.fn();
    await settle();
    restore();
    answers++;
    if (op.answer === undefined) return fail(s, "the adapter did not answer");
    const got = answerLabel({ t: op.effect.t, r: op.answer } as Result);
    if (got !== heardAs(answer) && orphan && req.from === "resolver" && op.effect.t.startsWith("xa.") && got === "UNAVAILABLE") {
      return { ok: false, step: s.step, message: `step ${s.step} (${s.actor}): ${CANNOT_EXPRESS_WHY["resolver-on-branch-connection"]}`, cannot: "resolver-on-branch-connection" };
    }
    if (got !== heardAs(answer)) return fail(s, `the adapter answered ${req.label} with ${got}, the checker's world with ${answer}`, answer, got);
    if (refused) return { ok: false, step: next!.step, message: `step ${next!.step}: the interpreter refuses a mutant-only effect`, refused: true };
    return null;
  }

  /** Sets the adapters' knobs for the fault this step's answer is; returns how to undo them, or what cannot be expressed. */
  function armFault(op: Pending, answer: string, shard: number, recorded: WorldView | undefined): (() => void) | CannotExpress {
    const fx = op.effect;
    rng.draw = 0.99;
    rng.chooser = null;
    if (fx.t.startsWith("log.")) {
      if (!answer.startsWith("UNAVAILABLE")) return () => {};
      env.log.available = false;
      rng.draw = answer === "UNAVAILABLE (written)" || answer === "UNAVAILABLE (deleted)" ? 0 : 0.99;
      faults++;
      return () => {
        env.log.available = true;
        rng.draw = 0.99;
      };
    }
    if (fx.t.startsWith("local.")) {
      // A statement of a crashed process: it commits, or the shard rolls it back with the dead connection.
      if (op.gen < clock.gen) rng.draw = answer === "rolled back (dead client)" ? 0.99 : 0;
      if (lostInCrash.has(op) && heardAs(answer) !== "UNAVAILABLE") return "local-statement-survives-crash";
      if (answer === "committed, then CRASH" || answer === "CRASH before commit") {
        crashLocal(env.shards[shard]!, op, answer === "committed, then CRASH");
        // In the world a local statement's crash is the whole shard's (spec/env/both-shards.ts).
        if (env.xa.state.has(env.shards[shard]!)) env.xa.crashShard(env.shards[shard]!);
        faults++;
      }
      return () => (rng.draw = 0.99);
    }
    if (fx.t.startsWith("xa.") && fx.t !== "xa.kill") {
      // Where the shard model allows several outcomes, the generator picks the one the world took.
      const want = recorded === undefined ? undefined : xaOf(recorded.shards[shard]!);
      rng.chooser = (xs) => {
        const outs = xs as readonly { shard: xa.ShardState; result: Result }[];
        const same = outs.map((o, j) => [o, j] as const).filter(([o]) => answerLabel(o.result) === answer);
        const exact = same.find(([o]) => want !== undefined && canonicalJson(o.shard) === canonicalJson(want));
        return (exact ?? same[0])?.[1] ?? 0;
      };
      return () => (rng.chooser = null);
    }
    return () => {};
  }

  /**
   * kill -9 of a shard's local part: MemoryLocal.crashShard draws, for each
   * statement in flight on the shard (in the order they were sent), whether
   * it committed just before. The world's crash is the outcome of one
   * statement (`target`, committed or not); every other statement in flight
   * there did not commit.
   */
  function crashLocal(id: string, target: Pending | null, committed: boolean): void {
    const inFlight = clock.ops.filter((p) => !p.cancelled && !lostInCrash.has(p) && p.effect.t.startsWith("local.") && (p.effect as { shard: string }).shard === id);
    rng.queue = inFlight.map((p) => (p === target && committed ? 0 : 0.99));
    for (const p of inFlight) lostInCrash.add(p);
    env.local!.crashShard(id);
    rng.queue = [];
  }

  function shardFault(s: TraceStep, id: string): MemoryReplay | null {
    faults++;
    if (s.input === "crash") {
      if ((s.label ?? "") !== "CRASH (kill -9)") return { ok: false, step: s.step, message: `step ${s.step} (${s.actor}): ${CANNOT_EXPRESS_WHY["crash-loses-acknowledged-rollbacks"]}`, cannot: "crash-loses-acknowledged-rollbacks" };
      if (env.xa.state.has(id)) env.xa.crashShard(id);
      if (env.local?.state.has(id)) crashLocal(id, null, false);
      return null;
    }
    if (s.input === "restart") {
      if (env.xa.state.has(id)) env.xa.restartShard(id);
      if (env.local?.state.has(id)) env.local.restartShard(id);
      return null;
    }
    // notice: the shard drops a dead process's connection, now (MemoryXa schedules its own notice, which the replay never fires).
    const conn = (s.label ?? "").replace(/^drops dead connection /, "");
    if (!(env.xa.state.get(id)?.conns.some((c) => c.id === conn) ?? false)) return fail(s, `the shard holds no connection ${conn} to drop`);
    env.xa.notice(id, conn);
    return null;
  }
}
