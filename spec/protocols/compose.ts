/**
 * The composition every XA commit protocol shares (2PC, parallel commit):
 * one coordinator role per transaction and one resolver role per process,
 * run unchanged as the server runs them, over the XA shard model (through
 * spec/env/executor.ts), the txlog model, a client and a fault budget. A
 * protocol's model (e.g. twopc/model.ts) supplies its roles, its properties
 * and a few hooks; everything else is here, so that what the checker assumes
 * about the world is the same for every protocol.
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
 *     answer (the write may or may not have happened);
 *   - recovery, which is not a fault: the process or a shard restarting, a
 *     shard noticing a dead client's connection.
 *
 * Timers fire at any time after they are set: a timeout is never assumed
 * to mean the other side is dead.
 */
import type { Fairness, LeadsTo, Model, ModelFactory, StepInfo } from "../../checker/model.ts";
import type { Role } from "../role.ts";
import { decisionKey, decisionOf, EPOCH_KEY, type BranchSpec, type Outcome, type ParallelEffect, type Result, type ShardId, type TxId, type XaKillResult } from "../effects.ts";
import * as txlog from "../env/txlog.ts";
import * as xa from "../env/xa.ts";
import { executeXa, branchXid, connOf, isXaEffect as isSharedXaEffect, type XaEffect } from "../env/executor.ts";
import { canonicalJson } from "../env/canonical.ts";
import { collapser } from "../env/collapse.ts";
import { answerLabel } from "../labels.ts";
import { describer } from "./describe.ts";

/** Every effect a composed role may ask for. */
export type AnyEffect = ParallelEffect;

/** The XA statements spec/env/executor.ts executes (xa.kill is executed here). */
const isXaEffect = (fx: AnyEffect): fx is XaEffect => fx.t !== "xa.kill" && isSharedXaEffect(fx);

export interface Slot<C> {
  readonly st: C;
  /** False once the process that ran it crashed: a coordinator is never restarted. */
  readonly alive: boolean;
}

/** An effect on its way: asked for by `owner` (a transaction index, or -1 for the resolver). */
export interface Flight {
  readonly owner: number;
  readonly fx: AnyEffect;
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
  /** Parallel commit only: per transaction, the implicit commit condition held at some point. */
  readonly implicit?: readonly boolean[];
}

export interface Budget {
  readonly crash: number;
  readonly shardCrash: number;
  readonly logFault: number;
}

export interface World<C = unknown, R = unknown> {
  readonly up: boolean;
  readonly inc: number;
  readonly coords: readonly Slot<C>[];
  readonly resolver: R;
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

/** What a coordinator state must show the composition: its phase ("idle" before the request, "done" at the end). */
export interface CoordinatorLike {
  readonly phase: string;
}
/** What a resolver state must show: its phase ("idle" between scans) and the process epoch once taken. */
export interface ResolverLike {
  readonly phase: string;
  readonly epoch: number | null;
}

export interface Composition<C extends CoordinatorLike, CIn, R extends ResolverLike, RIn> {
  readonly name: string;
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The process restarts after a crash (false: it stays down forever). */
  readonly restart: boolean;
  /** The vote timer may fire (a timeout abort). */
  readonly timeouts: boolean;
  readonly coordinator: Role<C, CIn, AnyEffect>;
  /** The coordinator's input for a client request. */
  request(tx: Scenario["txs"][number], epoch: number): CIn;
  readonly resolver: Role<R, RIn, AnyEffect>;
  /** The resolver's input for a scan tick, given the transactions with a live coordinator. */
  scan(active: TxId[]): RIn;
  /** The resolver remembers nothing from its last scan that a new scan would act on (see scanIsNoop). */
  quiet(r: R): boolean;
  /** xa.exec results as the protocol hears them (parallel commit adds the connection id). */
  execResult?(r: Extract<Result, { t: "xa.exec" }>, conn: xa.ConnId): Result;
  /** Protocol-specific ghost bookkeeping after each step (after the shared one). */
  observe?(w: World<C, R>): World<C, R>;
  invariants(sc: Scenario): Record<string, (w: World<C, R>) => boolean>;
  eventually(sc: Scenario): Record<string, { goal(w: World<C, R>): boolean; allowed?(a: Action): boolean }>;
  /** Leads-to properties, given the fairness of the composition (`fairStep`: every non-fault step, per effect and process). */
  leadsTo?(sc: Scenario, fair: Fairness<World<C, R>, Action>): Record<string, LeadsTo<World<C, R>, Action>>;
}

/** The result an effect brings back to the role that asked, or null for effects that answer nobody. */
type Answer<C, R> = { world: World<C, R>; result: Result | XaKillResult | null };

export function compose<C extends CoordinatorLike, CIn, R extends ResolverLike, RIn>(cfg: Composition<C, CIn, R, RIn>): Model<World<C, R>, Action> {
  type W = World<C, R>;
  const sc = cfg.scenario;
  const coord = cfg.coordinator;
  const res = cfg.resolver;
  const shardIndex = (id: ShardId): number => {
    const i = sc.shards.indexOf(id);
    if (i < 0) throw new Error(`unknown shard ${id}`);
    return i;
  };
  const txIndex = (id: TxId): number => sc.txs.findIndex((t) => t.id === id);
  const collapse = collapser<W>(["up", "inc", "coords", "resolver", "shards", "log", "flights", "told", "ghost", "budget"]);

  const init = (): W => ({
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
  function launch(w: W, owner: number, effects: readonly AnyEffect[]): W {
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
  function deliver(w: W, owner: number, result: Result | XaKillResult): W {
    if (owner < 0) {
      const out = res.step(w.resolver, result as RIn);
      return launch({ ...w, resolver: out.st }, owner, out.effects);
    }
    const slot = w.coords[owner]!;
    if (!slot.alive) return w;
    const out = coord.step(slot.st, result as CIn);
    const coords = w.coords.map((c, i) => (i === owner ? { ...c, st: out.st } : c));
    return launch({ ...w, coords }, owner, out.effects);
  }

  const withShard = (w: W, s: number, sh: xa.ShardState): W => ({ ...w, shards: w.shards.map((x, i) => (i === s ? sh : x)) });

  /** Orphaned statements on a connection the shard has dropped can no longer arrive. */
  const dropOrphansOn = (w: W, sid: ShardId, conn: string): readonly Flight[] =>
    w.flights.filter((f) => !(f.orphan && f.owner >= 0 && isXaEffect(f.fx) && "tx" in f.fx && f.fx.shard === sid && connOf(f.fx.tx, sid, f.inc) === conn));

  /** Every way the environment may answer flight `f` (the world without `f` in it). */
  function answers(w: W, f: Flight): { answer: Answer<C, R>; fault: boolean; label: string }[] {
    const fx = f.fx;
    if (isXaEffect(fx)) {
      const s = shardIndex(fx.shard);
      // A coordinator's statements go on its branch's connection; the resolver's on fresh ones.
      const conn = "tx" in fx && f.owner >= 0 ? connOf(fx.tx, fx.shard, f.inc) : null;
      return executeXa(w.shards[s]!, fx, conn).map((o) => ({
        answer: {
          world: withShard(w, s, o.shard),
          result: o.result.t === "xa.exec" && cfg.execResult && conn !== null ? cfg.execResult(o.result, conn) : o.result,
        },
        fault: false,
        label: answerLabel(o.result),
      }));
    }
    switch (fx.t) {
      case "xa.kill": {
        // KILL CONNECTION: the connection is gone when the answer comes (see XaKillEffect).
        const s = shardIndex(fx.shard);
        const sh = w.shards[s]!;
        if (!sh.up) {
          const result: XaKillResult = { t: "xa.kill", shard: fx.shard, conn: fx.conn, r: { ok: false, err: "UNAVAILABLE" } };
          return [{ answer: { world: w, result }, fault: false, label: answerLabel(result) }];
        }
        const killed = withShard(w, s, xa.killConnection(sh, fx.conn));
        const world = { ...killed, flights: dropOrphansOn(killed, fx.shard, fx.conn) };
        const result: XaKillResult = { t: "xa.kill", shard: fx.shard, conn: fx.conn, r: { ok: true } };
        return [{ answer: { world, result }, fault: false, label: answerLabel(result) }];
      }
      case "log.put": {
        const { s, r } = txlog.put(w.log, fx.key, fx.value, fx.ifVersion, fx.fence);
        const result: Result = { t: "log.put", key: fx.key, r };
        const outs = [{ answer: { world: { ...w, log: s }, result }, fault: false, label: answerLabel(result) }];
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
        const result: Result = { t: "log.list", r: { ok: true, entries } };
        const outs = [{ answer: { world: w, result }, fault: false, label: answerLabel(result) }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          outs.push({ answer: { world: { ...w, budget: b }, result: { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } } }, fault: true, label: "UNAVAILABLE" });
        }
        return outs;
      }
      case "log.delete": {
        const { s: log, r } = txlog.del(w.log, fx.key, fx.fence);
        const result: Result = { t: "log.delete", key: fx.key, r };
        const outs = [{ answer: { world: { ...w, log }, result }, fault: false, label: answerLabel(result) }];
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
        const result: Result = { t: "timeout", id: fx.id };
        return [{ answer: { world: fx.id === "vote" ? { ...w, ghost: { ...w.ghost, faulty: true } } : w, result }, fault: false, label: answerLabel(result) }];
    }
  }

  /**
   * An orphaned txlog write whose fence no longer holds can only answer
   * FENCED, to nobody: it is dropped as soon as a new epoch is taken, which
   * removes states without removing behaviours.
   */
  function dropFencedOrphans(w: W): W {
    const epoch = txlog.get(w.log, EPOCH_KEY)?.version ?? 0;
    const dead = (f: Flight) => f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== epoch;
    return w.flights.some(dead) ? { ...w, flights: w.flights.filter((f) => !dead(f)) } : w;
  }

  const xidOf = (t: number, s: number): string => branchXid(sc.txs[t]!.id, sc.shards[s]!);
  const committedOn = (w: W, t: number, s: number): boolean => w.shards[s]!.history.some((h) => h[0] === xidOf(t, s));

  /** Record what the ghost variables need from the shards and the log after a step. */
  function observe(w0: W): W {
    const w = dropFencedOrphans(w0);
    let changed = w !== w0;
    const existed = w.ghost.existed.map((row, t) =>
      row.map((v, s) => {
        if (v) return v;
        const now = w.shards[s]!.branches.some((b) => b.xid === xidOf(t, s)) || committedOn(w, t, s);
        if (now) changed = true;
        return now;
      }),
    );
    const prepared = w.ghost.prepared.map((row, t) =>
      row.map((v, s) => {
        if (v) return v;
        const now = w.shards[s]!.branches.some((b) => b.xid === xidOf(t, s) && b.state === "PREPARED");
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
    const shared = changed ? { ...w, ghost: { ...w.ghost, existed, prepared, decision } } : w;
    return cfg.observe ? cfg.observe(shared) : shared;
  }

  /** The answers of the last state expanded, so that `next` does not compute them again. */
  let answersFor: { w: W; byFlight: ReturnType<typeof answers>[] } | null = null;
  const answersOf = (w: W, i: number): ReturnType<typeof answers> => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    let a = answersFor.byFlight[i];
    if (a === undefined) {
      a = answers({ ...w, flights: w.flights.filter((_, j) => j !== i) }, w.flights[i]!);
      answersFor.byFlight[i] = a;
    }
    return a;
  };

  function* actions(w: W): Iterable<Action> {
    for (let t = 0; t < w.coords.length; t++) {
      const c = w.coords[t]!;
      // The process takes requests once the resolver has taken its epoch.
      if (w.up && c.alive && c.st.phase === "idle" && w.resolver.epoch !== null) yield { k: "request", tx: t };
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

  const isActive = (c: Slot<C>): boolean => c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  const hasLeftovers = (w: W, t: number): boolean =>
    w.flights.some((f) => f.owner === t) ||
    sc.shards.some((_, s) => w.shards[s]!.branches.some((b) => b.xid === xidOf(t, s))) ||
    txlog.get(w.log, decisionKey(sc.txs[t]!.id)) !== undefined;

  /**
   * Reduction (docs/protocols/2pc.md, "What the checker explores"): a scan is
   * not offered when it can only be a no-op: the epoch is taken, the resolver
   * carries nothing over from its last scan (`quiet`), no transaction is
   * still to start, and every transaction that left anything behind (a
   * branch, a record, an effect in flight) has a live coordinator, so the
   * scan's `active` snapshot makes it skip all of them. Such a scan only
   * reads, and ends in the state it started in; leaving it out removes
   * stuttering steps, not behaviours. Sound only for resolvers that leave
   * active transactions entirely alone (both do).
   */
  function scanIsNoop(w: W): boolean {
    if (w.resolver.epoch === null || !cfg.quiet(w.resolver)) return false;
    return w.coords.every((c, t) => c.st.phase !== "idle" && (isActive(c) || !hasLeftovers(w, t)));
  }

  /** A connection whose client process has crashed: the server will notice and drop it. */
  const deadConn = (w: W, conn: string): boolean => {
    const inc = Number(conn.slice(conn.lastIndexOf("@") + 1));
    return inc < w.inc || !w.up;
  };

  function next(w: W, a: Action): W {
    switch (a.k) {
      case "request": {
        const out = coord.step(w.coords[a.tx]!.st, cfg.request(sc.txs[a.tx]!, w.resolver.epoch!));
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
        const out = res.step(w.resolver, cfg.scan(active));
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
        const flights = dropOrphansOn(w, sc.shards[a.s]!, a.conn);
        return observe({ ...withShard(w, a.s, xa.disconnect(w.shards[a.s]!, a.conn)), flights });
      }
    }
  }

  /**
   * Weak fairness of every step that is not a fault (docs/checker.md, "Liveness
   * under fairness"), one fair action per thing that acts: each effect in
   * flight (answered by any non-fault outcome; its key names it), each
   * transaction's request, the resolver's scan, the process restarting, each
   * shard restarting, each dead connection being noticed. Faults (crashes, a
   * fault outcome) are never required: a behaviour may simply not take them.
   */
  const fairStep: Fairness<W, Action> = (w, a) => {
    switch (a.k) {
      case "complete":
        return a.fault ? undefined : `complete ${flightKey(w.flights[a.i]!)}`;
      case "crash":
      case "shardCrash":
        return undefined;
      case "request":
        return `request ${a.tx}`;
      case "shardRestart":
        return `shardRestart ${a.s}`;
      case "notice":
        return `notice ${a.s} ${a.conn}`;
      case "scan":
      case "restart":
        return a.k;
    }
  };

  const steps = describer<Flight, W>(sc.txs, flightKey);

  function describe(from: W, a: Action, to: W): StepInfo | StepInfo[] {
    switch (a.k) {
      case "request":
        return steps.request(a.tx, from, to);
      case "complete":
        return steps.complete(a.i, a.label, from, to);
      case "scan":
        return steps.scan(from, to);
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
    name: cfg.name,
    init: () => [init()],
    actions,
    next,
    invariants: cfg.invariants(sc),
    eventually: cfg.eventually(sc),
    ...(cfg.leadsTo ? { leadsTo: cfg.leadsTo(sc, fairStep) } : {}),
    encode: collapse.encode,
    decode: collapse.decode,
    localEncoding: true,
    describe,
    view: (w) => w,
    actors: () => ["client", ...sc.txs.map((t) => `coord(${t.id})`), "resolver", "process", "txlog", ...sc.shards],
  };
}

/** Reads a whole-number parameter of a factory, with a message that says which. */
/** The configurations the suites name, shared by every XA protocol: shards x transfers. */
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
    case "local":
      // A transfer inside one shard (one phase) racing a cross-shard one for account 1.
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100], [3, 0]], [[2, 100]]],
        txs: [
          { id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }, { account: 3, delta: 60 }] }] },
          { id: "t2", branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }] }, { shard: "s2", ops: [{ account: 2, delta: 60 }] }] },
        ],
      };
    default:
      throw new Error(`unknown scenario '${name}': use transfer, conflict, three or local`);
  }
}

/**
 * The ModelFactory of an XA protocol composed here: the parameters every such
 * model takes (scenario, fault budget, restart, vote timer) and its mutants,
 * split between the coordinator's and the resolver's.
 */
export function xaProtocolFactory<CM extends string, RM extends string>(p: {
  name: string;
  description: string;
  coordinatorMutants: readonly CM[];
  resolverMutants: readonly RM[];
  build(cfg: {
    scenario: Scenario;
    budget: Budget;
    restart: boolean;
    timeouts: boolean;
    coordinatorMutant: CM | undefined;
    resolverMutant: RM | undefined;
  }): Model<any, any>;
}): ModelFactory {
  return {
    name: p.name,
    description: p.description,
    params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true },
    mutants: [...p.coordinatorMutants, ...p.resolverMutants],
    build(params, mutant) {
      // checker/run.ts has already refused a mutant the factory does not declare.
      const num = (k: string): number => wholeParam(p.name, params, k);
      return p.build({
        scenario: scenario(String(params.scenario)),
        budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
        restart: params.restart === true,
        timeouts: params.timeouts === true,
        coordinatorMutant: p.coordinatorMutants.find((m) => m === mutant),
        resolverMutant: p.resolverMutants.find((m) => m === mutant),
      });
    },
  };
}

export function wholeParam(model: string, p: Record<string, string | number | boolean>, k: string): number {
  const v = p[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`${model}: parameter ${k} must be a whole number >= 0 (got ${String(v)})`);
  return v;
}
