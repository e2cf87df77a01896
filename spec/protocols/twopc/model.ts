/**
 * 2PC with presumed abort, composed for the model checker: the coordinator
 * and resolver roles (run unchanged, as the server runs them) over the XA
 * shard model, the txlog model, a client and a fault budget.
 *
 * One action is one of:
 *   - a client request reaching a transaction's coordinator;
 *   - an effect in flight completing, with each outcome the environment may
 *     give (the role that asked reacts to the answer in the same action);
 *   - a resolver scan tick;
 *   - a fault, each bounded by the configuration: the coordinator process
 *     crashing (all coordinators and the resolver lose their volatile state;
 *     statements already sent may still execute until the server notices the
 *     dead connection), a shard crashing (kill -9), the txlog failing to
 *     answer (the write may or may not have happened), a reply getting lost;
 *   - recovery, which is not a fault: the process or a shard restarting, a
 *     shard noticing a dead client's connection.
 *
 * Timers fire at any time after they are set: a timeout is never assumed
 * to mean the other side is dead.
 *
 * Properties are in ./properties.ts; docs/protocols/2pc.md states each one.
 */
import type { Model, StepInfo, ModelFactory } from "../../../checker/model.ts";
import type { CoordinatorInput, CoordinatorMutant, CoordinatorState } from "./coordinator.ts";
import { coordinator, defaultCoordinatorOptions } from "./coordinator.ts";
import { epochOf, resolver, type ResolverMutant, type ResolverState } from "./resolver.ts";
import { decisionKey, decisionOf, EPOCH_KEY, type BranchSpec, type Effect, type Outcome, type Result, type TxId, type ShardId } from "../../effects.ts";
import * as txlog from "../../env/txlog.ts";
import * as xa from "../../env/xa.ts";
import { executeXa, branchXid, connOf, isXaEffect, type XaEffect } from "../../env/executor.ts";
import { canonicalJson } from "../../env/canonical.ts";
import { collapser } from "../../env/collapse.ts";
import { twopcInvariants, twopcEventually } from "./properties.ts";

export interface Slot {
  readonly st: CoordinatorState;
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

export interface Ghost {
  /** The first decision ever made durable per transaction. */
  readonly decision: readonly ("commit" | "abort" | null)[];
  /** Per transaction, per shard index: the branch was ever started / ever prepared. */
  readonly existed: readonly (readonly boolean[])[];
  readonly prepared: readonly (readonly boolean[])[];
  /** A fault or a timeout happened (AC4 speaks only of runs with neither). */
  readonly faulty: boolean;
}

export interface Budget {
  readonly crash: number;
  readonly shardCrash: number;
  readonly logFault: number;
}

export interface World {
  readonly up: boolean;
  readonly inc: number;
  readonly coords: readonly Slot[];
  readonly resolver: ResolverState;
  readonly shards: readonly xa.ShardState[];
  readonly log: txlog.TxlogState;
  /** Sorted by canonical encoding: a multiset. */
  readonly flights: readonly Flight[];
  readonly told: readonly (Outcome | null)[];
  readonly ghost: Ghost;
  readonly budget: Budget;
}

export type Action =
  | { readonly k: "request"; readonly tx: number }
  | { readonly k: "complete"; readonly i: number; readonly o: number; readonly fault: boolean; readonly label: string }
  | { readonly k: "scan" }
  | { readonly k: "crash" }
  | { readonly k: "restart" }
  /** Outcome `o` of xa.crashOutcomes: how many acknowledged rollbacks reached the disk. */
  | { readonly k: "shardCrash"; readonly s: number; readonly o: number }
  | { readonly k: "shardRestart"; readonly s: number }
  | { readonly k: "notice"; readonly s: number; readonly conn: string };

export interface Scenario {
  readonly shards: readonly ShardId[];
  /** Initial balances per shard: [account, cents]. */
  readonly balances: readonly (readonly (readonly [number, number])[])[];
  readonly txs: readonly { readonly id: TxId; readonly branches: readonly BranchSpec[] }[];
}

export interface TwopcConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The process restarts after a crash (false: it stays down forever, to show 2PC blocking). */
  readonly restart: boolean;
  /** The vote timer may fire (a timeout abort). */
  readonly timeouts: boolean;
  readonly coordinatorMutant?: CoordinatorMutant;
  readonly resolverMutant?: ResolverMutant;
}

/** The result an effect brings back to the role that asked, or null for effects that answer nobody. */
type Answer = { world: World; result: Result | null };

export function twopcModel(cfg: TwopcConfig): Model<World, Action> {
  const sc = cfg.scenario;
  const coord = coordinator({ ...defaultCoordinatorOptions, maxAttempts: 2, mutant: cfg.coordinatorMutant });
  const res = resolver({ shards: sc.shards, mutant: cfg.resolverMutant });
  const shardIndex = (id: ShardId): number => {
    const i = sc.shards.indexOf(id);
    if (i < 0) throw new Error(`unknown shard ${id}`);
    return i;
  };
  const txIndex = (id: TxId): number => sc.txs.findIndex((t) => t.id === id);
  const collapse = collapser<World>(["up", "inc", "coords", "resolver", "shards", "log", "flights", "told", "ghost", "budget"]);

  const init = (): World => ({
    up: true,
    inc: 0,
    coords: sc.txs.map(() => ({ st: coord.start(), alive: true })),
    resolver: res.start(),
    shards: sc.balances.map((b) => xa.initShard(b)),
    log: txlog.emptyTxlog,
    flights: [],
    told: sc.txs.map(() => null),
    ghost: {
      decision: sc.txs.map(() => null),
      existed: sc.txs.map(() => sc.shards.map(() => false)),
      prepared: sc.txs.map(() => sc.shards.map(() => false)),
      faulty: false,
    },
    budget: cfg.budget,
  });

  const flightKeys = new WeakMap<Flight, string>();
  const flightKey = (f: Flight): string => {
    let k = flightKeys.get(f);
    if (k === undefined) {
      k = canonicalJson(f);
      flightKeys.set(f, k);
    }
    return k;
  };
  const sortFlights = (fs: Flight[]): Flight[] =>
    fs
      .map((f) => [flightKey(f), f] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, f]) => f);

  /**
   * Add the effects a role asked for. A timer replaces an older timer of the
   * same owner and id. A reply reaches the client at once: when the client
   * hears it changes nothing the system does, and the properties speak of
   * what was said, which only grows.
   */
  function launch(w: World, owner: number, effects: readonly Effect[]): World {
    if (effects.length === 0) return w;
    let flights = [...w.flights];
    let told = w.told;
    for (const fx of effects) {
      if (fx.t === "reply") {
        const t = txIndex(fx.tx);
        told = told.map((o, i) => (i === t ? fx.outcome : o));
        continue;
      }
      if (fx.t === "timer") {
        if (fx.id === "vote" && !cfg.timeouts) continue;
        flights = flights.filter((f) => !(f.owner === owner && f.fx.t === "timer" && f.fx.id === fx.id));
      }
      flights.push({ owner, fx, orphan: false, inc: w.inc });
    }
    return { ...w, flights: sortFlights(flights), told };
  }

  /** Deliver a result to its role and launch what the role asks next. */
  function deliver(w: World, owner: number, result: Result): World {
    if (owner < 0) {
      const out = res.step(w.resolver, result);
      return launch({ ...w, resolver: out.st }, owner, out.effects);
    }
    const slot = w.coords[owner]!;
    if (!slot.alive) return w;
    const out = coord.step(slot.st, result as CoordinatorInput);
    const coords = w.coords.map((c, i) => (i === owner ? { ...c, st: out.st } : c));
    return launch({ ...w, coords }, owner, out.effects);
  }

  const withShard = (w: World, s: number, sh: xa.ShardState): World => ({ ...w, shards: w.shards.map((x, i) => (i === s ? sh : x)) });

  /** Every way the environment may answer flight `f` (the world without `f` in it). */
  function answers(w: World, f: Flight): { answer: Answer; fault: boolean; label: string }[] {
    const fx = f.fx;
    if (isXaEffect(fx)) {
      const s = shardIndex(fx.shard);
      // A coordinator's statements go on its branch's connection; the resolver's on fresh ones.
      const conn = "tx" in fx && f.owner >= 0 ? connOf(fx.tx, fx.shard, f.inc) : null;
      return executeXa(w.shards[s]!, fx, conn).map((o) => ({
        answer: { world: withShard(w, s, o.shard), result: o.result },
        fault: false,
        label: o.label,
      }));
    }
    switch (fx.t) {
      case "log.put": {
        const { s, r } = txlog.put(w.log, fx.key, fx.value, fx.ifVersion, fx.fence);
        const ok: Answer = { world: { ...w, log: s }, result: { t: "log.put", key: fx.key, r } };
        const outs = [{ answer: ok, fault: false, label: r.ok ? "ok" : r.err === "CAS" ? "CAS failed" : r.err }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          const unavailable: Result = { t: "log.put", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
          outs.push({ answer: { world: { ...w, log: s, budget: b }, result: unavailable }, fault: true, label: "UNAVAILABLE (written)" });
          outs.push({ answer: { world: { ...w, budget: b }, result: unavailable }, fault: true, label: "UNAVAILABLE (not written)" });
        }
        return outs;
      }
      case "log.list": {
        const entries = txlog.list(w.log, fx.prefix);
        const outs = [{ answer: { world: w, result: { t: "log.list", r: { ok: true, entries } } as Result }, fault: false, label: `${entries.length} records` }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          outs.push({ answer: { world: { ...w, budget: b }, result: { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } } }, fault: true, label: "UNAVAILABLE" });
        }
        return outs;
      }
      case "log.delete": {
        const { s: log, r } = txlog.del(w.log, fx.key, fx.fence);
        const outs = [{ answer: { world: { ...w, log }, result: { t: "log.delete", key: fx.key, r } as Result }, fault: false, label: r.ok ? "ok" : r.err }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          const unavailable: Result = { t: "log.delete", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
          outs.push({ answer: { world: { ...w, log, budget: b }, result: unavailable }, fault: true, label: "UNAVAILABLE (deleted)" });
          outs.push({ answer: { world: { ...w, budget: b }, result: unavailable }, fault: true, label: "UNAVAILABLE (not deleted)" });
        }
        return outs;
      }
      case "reply":
        throw new Error("a reply is never in flight: launch delivers it");
      case "timer":
        return [{ answer: { world: fx.id === "vote" ? { ...w, ghost: { ...w.ghost, faulty: true } } : w, result: { t: "timeout", id: fx.id } }, fault: false, label: "fires" }];
    }
  }

  /**
   * An orphaned txlog write whose fence no longer holds can only answer
   * FENCED, to nobody: it is dropped as soon as a new epoch is taken, which
   * removes states without removing behaviours.
   */
  function dropFencedOrphans(w: World): World {
    const epoch = txlog.get(w.log, EPOCH_KEY)?.version ?? 0;
    const dead = (f: Flight) => f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== epoch;
    return w.flights.some(dead) ? { ...w, flights: w.flights.filter((f) => !dead(f)) } : w;
  }

  /** Record what the ghost variables need from the shards and the log after a step. */
  function observe(w0: World): World {
    const w = dropFencedOrphans(w0);
    let changed = w !== w0;
    const existed = w.ghost.existed.map((row, t) =>
      row.map((v, s) => {
        if (v) return v;
        const now = w.shards[s]!.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, sc.shards[s]!)) || committedOn(w, t, s);
        if (now) changed = true;
        return now;
      }),
    );
    const prepared = w.ghost.prepared.map((row, t) =>
      row.map((v, s) => {
        if (v) return v;
        const now = w.shards[s]!.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, sc.shards[s]!) && b.state === "PREPARED");
        if (now) changed = true;
        return now;
      }),
    );
    const decision = w.ghost.decision.map((d, t) => {
      if (d !== null) return d;
      const e = decisionOf(txlog.get(w.log, decisionKey(sc.txs[t]!.id))?.value);
      if (e !== null) changed = true;
      return e;
    });
    return changed ? { ...w, ghost: { ...w.ghost, existed, prepared, decision } } : w;
  }

  const committedOn = (w: World, t: number, s: number): boolean =>
    w.shards[s]!.history.some((h) => h[0] === branchXid(sc.txs[t]!.id, sc.shards[s]!));

  /** The answers of the last state expanded, so that `next` does not compute them again. */
  let answersFor: { w: World; byFlight: ReturnType<typeof answers>[] } | null = null;
  const answersOf = (w: World, i: number): ReturnType<typeof answers> => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    let a = answersFor.byFlight[i];
    if (a === undefined) {
      a = answers({ ...w, flights: w.flights.filter((_, j) => j !== i) }, w.flights[i]!);
      answersFor.byFlight[i] = a;
    }
    return a;
  };

  function* actions(w: World): Iterable<Action> {
    for (let t = 0; t < w.coords.length; t++) {
      const c = w.coords[t]!;
      // The process takes requests once the resolver has taken its epoch.
      if (w.up && c.alive && c.st.phase === "idle" && epochOf(w.resolver) !== null) yield { k: "request", tx: t };
    }
    for (let i = 0; i < w.flights.length; i++) {
      const f = w.flights[i]!;
      if (i > 0 && flightKey(w.flights[i - 1]!) === flightKey(f)) continue;
      const outs = answersOf(w, i);
      for (let o = 0; o < outs.length; o++) yield { k: "complete", i, o, fault: outs[o]!.fault, label: outs[o]!.label };
    }
    if (w.up && w.resolver.phase === "idle" && !scanIsNoop(w)) yield { k: "scan" };
    if (w.up && w.budget.crash > 0) yield { k: "crash" };
    if (!w.up && cfg.restart) yield { k: "restart" };
    for (let s = 0; s < w.shards.length; s++) {
      const sh = w.shards[s]!;
      if (sh.up && w.budget.shardCrash > 0) {
        const n = xa.crashOutcomes(sh).length;
        for (let o = 0; o < n; o++) yield { k: "shardCrash", s, o };
      }
      if (!sh.up) yield { k: "shardRestart", s };
      for (const c of sh.conns) if (deadConn(w, c.id)) yield { k: "notice", s, conn: c.id };
    }
  }

  const isActive = (c: Slot): boolean => c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  const hasLeftovers = (w: World, t: number): boolean =>
    w.flights.some((f) => f.owner === t) ||
    sc.shards.some((_, s) => w.shards[s]!.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, sc.shards[s]!))) ||
    txlog.get(w.log, decisionKey(sc.txs[t]!.id)) !== undefined;

  /**
   * Reduction (docs/protocols/2pc.md, "What the checker explores"): a scan is
   * not offered when it can only be a no-op: the epoch is taken, no suspect
   * is pending, no transaction is still to start, and every transaction that
   * left anything behind (a branch, a record, an effect in flight) has a live
   * coordinator, so the scan's `active` snapshot makes it skip all of them.
   * Such a scan only reads, and ends in the state it started in; leaving it
   * out removes stuttering steps, not behaviours.
   */
  function scanIsNoop(w: World): boolean {
    if (w.resolver.epoch === null || w.resolver.suspects.length > 0) return false;
    return w.coords.every((c, t) => c.st.phase !== "idle" && (isActive(c) || !hasLeftovers(w, t)));
  }

  /** A connection whose client process has crashed: the server will notice and drop it. */
  const deadConn = (w: World, conn: string): boolean => {
    const inc = Number(conn.slice(conn.lastIndexOf("@") + 1));
    return inc < w.inc || !w.up;
  };

  function next(w: World, a: Action): World {
    switch (a.k) {
      case "request": {
        const spec = sc.txs[a.tx]!;
        const out = coord.step(w.coords[a.tx]!.st, { t: "request", tx: spec.id, branches: spec.branches, epoch: epochOf(w.resolver)! });
        const coords = w.coords.map((c, i) => (i === a.tx ? { ...c, st: out.st } : c));
        return observe(launch({ ...w, coords }, a.tx, out.effects));
      }
      case "complete": {
        const f = w.flights[a.i]!;
        const out = answersOf(w, a.i)[a.o]!;
        let nw = out.answer.world;
        if (out.fault) nw = { ...nw, ghost: { ...nw.ghost, faulty: true } };
        if (out.answer.result !== null && !f.orphan) nw = deliver(nw, f.owner, out.answer.result);
        return observe(nw);
      }
      case "scan": {
        const active = w.coords.flatMap((c, t) => (isActive(c) ? [sc.txs[t]!.id] : []));
        const out = res.step(w.resolver, { t: "scan", active });
        return launch({ ...w, resolver: out.st }, -1, out.effects);
      }
      case "crash": {
        // Statements and log writes already sent may still land; replies, timers and reads die with the process.
        const flights = w.flights
          .filter((f) => f.fx.t !== "timer" && f.fx.t !== "log.list" && f.fx.t !== "xa.recover")
          .map((f) => ({ ...f, orphan: true }));
        return {
          ...w,
          up: false,
          coords: w.coords.map((c) => ({ ...c, alive: false })),
          resolver: res.start(),
          flights: sortFlights(flights),
          budget: { ...w.budget, crash: w.budget.crash - 1 },
          ghost: { ...w.ghost, faulty: true },
        };
      }
      case "restart":
        return { ...w, up: true, inc: w.inc + 1 };
      case "shardCrash":
        return observe({
          ...withShard(w, a.s, xa.crashOutcomes(w.shards[a.s]!)[a.o]!),
          budget: { ...w.budget, shardCrash: w.budget.shardCrash - 1 },
          ghost: { ...w.ghost, faulty: true },
        });
      case "shardRestart":
        return withShard(w, a.s, xa.restart(w.shards[a.s]!));
      case "notice": {
        // Orphaned statements on that connection can no longer arrive.
        const sid = sc.shards[a.s]!;
        const flights = w.flights.filter((f) => !(f.orphan && f.owner >= 0 && isXaEffect(f.fx) && "tx" in f.fx && f.fx.shard === sid && connOf(f.fx.tx, sid, f.inc) === a.conn));
        return observe({ ...withShard(w, a.s, xa.disconnect(w.shards[a.s]!, a.conn)), flights });
      }
    }
  }

  const actorOfFx = (fx: Effect): string => (isXaEffect(fx) ? fx.shard : fx.t === "reply" ? "client" : fx.t === "timer" ? "timer" : "txlog");
  const ownerName = (owner: number): string => (owner < 0 ? "resolver" : `coord(${sc.txs[owner]!.id})`);
  const fxLabel = (fx: Effect): string => {
    switch (fx.t) {
      case "xa.exec":
      case "xa.prepare":
      case "xa.commit":
      case "xa.rollback":
        return `${fx.t.slice(3).toUpperCase()} ${fx.tx}`;
      case "xa.recover":
        return "XA RECOVER";
      case "log.put":
        return `put ${fx.key}=${fx.value.kind === "decision" ? fx.value.decision.toUpperCase() : "new epoch"} if v${fx.ifVersion}`;
      case "log.list":
        return `list ${fx.prefix}*`;
      case "log.delete":
        return `delete ${fx.key}`;
      case "reply":
        return `${fx.outcome.status}${fx.outcome.status === "aborted" ? ` (${fx.outcome.reason})` : ""}`;
      case "timer":
        return `timer ${fx.id}`;
    }
  };
  const msgId = (owner: number, fx: Effect): string => `${ownerName(owner)}:${canonicalJson(fx)}`;
  const replyMsg = (owner: number, to: World) => {
    const o = to.told[owner]!;
    return { id: `reply:${sc.txs[owner]!.id}`, from: ownerName(owner), to: "client", label: o.status === "aborted" ? `aborted (${o.reason})` : o.status };
  };
  const replied = (owner: number, before: World, after: World): boolean => owner >= 0 && before.told[owner] !== after.told[owner];
  const sendsOf = (owner: number, before: World, after: World) => {
    const had = new Set(before.flights.map((f) => flightKey(f)));
    const sends = after.flights
      .filter((f) => f.owner === owner && !f.orphan && !had.has(flightKey(f)) && f.fx.t !== "timer")
      .map((f) => ({ id: msgId(owner, f.fx), from: ownerName(owner), to: actorOfFx(f.fx), label: fxLabel(f.fx) }));
    return replied(owner, before, after) ? [...sends, replyMsg(owner, after)] : sends;
  };
  /** The client's side of a reply sent in this action, drawn as a step of its own. */
  const clientHears = (owner: number, before: World, after: World): StepInfo[] =>
    replied(owner, before, after) ? [{ actor: "client", label: `hears ${replyMsg(owner, after).label}`, receives: [replyMsg(owner, after)] }] : [];

  function describe(from: World, a: Action, to: World): StepInfo | StepInfo[] {
    switch (a.k) {
      case "request":
        return [{ actor: ownerName(a.tx), label: `request ${sc.txs[a.tx]!.id}`, sends: sendsOf(a.tx, from, to) }, ...clientHears(a.tx, from, to)];
      case "complete": {
        const f = from.flights[a.i]!;
        const env = actorOfFx(f.fx);
        const req = { id: msgId(f.owner, f.fx), from: ownerName(f.owner), to: env, label: fxLabel(f.fx) };
        if (f.fx.t === "timer") return [{ actor: ownerName(f.owner), label: `timeout ${f.fx.id}`, sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
        const envStep: StepInfo = { actor: env, label: `${fxLabel(f.fx)} -> ${a.label}${f.orphan ? " (orphan)" : ""}`, receives: [req] };
        if (f.orphan) return envStep;
        const ansId = `${req.id}->${a.label}`;
        return [
          { ...envStep, sends: [{ id: ansId, from: env, to: ownerName(f.owner), label: a.label }] },
          { actor: ownerName(f.owner), label: `on ${a.label}`, receives: [{ id: ansId, from: env, to: ownerName(f.owner), label: a.label }], sends: sendsOf(f.owner, from, to) },
          ...clientHears(f.owner, from, to),
        ];
      }
      case "scan":
        return { actor: "resolver", label: "scan", sends: sendsOf(-1, from, to) };
      case "crash":
        return { actor: "process", label: "CRASH (coordinators + resolver)" };
      case "restart":
        return { actor: "process", label: "restart" };
      case "shardCrash":
        return { actor: sc.shards[a.s]!, label: a.o === 0 ? "CRASH (kill -9)" : `CRASH (kill -9; ${a.o} acknowledged rollback(s) lost)` };
      case "shardRestart":
        return { actor: sc.shards[a.s]!, label: "restart" };
      case "notice":
        return { actor: sc.shards[a.s]!, label: `drops dead connection ${a.conn}` };
    }
  }

  return {
    name: "twopc",
    init: () => [init()],
    actions,
    next,
    invariants: twopcInvariants(sc),
    eventually: twopcEventually(sc),
    encode: collapse.encode,
    decode: collapse.decode,
    localEncoding: true,
    describe,
    view: (w) => w,
    actors: () => ["client", ...sc.txs.map((t) => `coord(${t.id})`), "resolver", "process", "txlog", ...sc.shards],
  };
}

/** The configurations the suite names: shards x transfers. */
export function scenario(name: string): Scenario {
  switch (name) {
    case "transfer":
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100]], [[2, 100]]],
        txs: [{ id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }] }, { shard: "s2", ops: [{ account: 2, delta: 30 }] }] }],
      };
    case "conflict":
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100]], [[2, 100]]],
        txs: ["t1", "t2"].map((id) => ({ id, branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }] }, { shard: "s2", ops: [{ account: 2, delta: 60 }] }] })),
      };
    case "three":
      return {
        shards: ["s1", "s2", "s3"],
        balances: [[[1, 100]], [[2, 100]], [[3, 100]]],
        txs: [
          { id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }] }, { shard: "s2", ops: [{ account: 2, delta: 30 }] }] },
          { id: "t2", branches: [{ shard: "s2", ops: [{ account: 2, delta: -40 }] }, { shard: "s3", ops: [{ account: 3, delta: 40 }] }] },
        ],
      };
    default:
      throw new Error(`unknown scenario '${name}': use transfer, conflict or three`);
  }
}

const coordinatorMutants: readonly CoordinatorMutant[] = [
  "reply-before-durable",
  "commit-before-durable",
  "commit-despite-failed-prepare",
  "no-funds-check",
  "nota-retries-forever",
  "forget-before-commit",
];
const resolverMutants: readonly ResolverMutant[] = ["missing-is-commit", "rollback-committed", "ignore-active", "gc-without-recover"];

export const twopcFactory: ModelFactory = {
  name: "twopc",
  description: "2PC with presumed abort: coordinator + resolver roles over the XA shard and txlog models, with crashes",
  params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true },
  mutants: [...coordinatorMutants, ...resolverMutants],
  build(p, mutant) {
    const num = (k: string): number => {
      const v = p[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`twopc: parameter ${k} must be a whole number >= 0 (got ${String(v)})`);
      return v;
    };
    if (mutant !== undefined && !twopcFactory.mutants.includes(mutant)) throw new Error(`twopc: unknown mutant '${mutant}' (known: ${twopcFactory.mutants.join(", ")})`);
    return twopcModel({
      scenario: scenario(String(p.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      restart: p.restart === true,
      timeouts: p.timeouts === true,
      coordinatorMutant: coordinatorMutants.find((m) => m === mutant),
      resolverMutant: resolverMutants.find((m) => m === mutant),
    });
  },
};

export type { XaEffect };
