/**
 * The world every protocol model runs in: one coordinator role per
 * transaction and one resolver role per process, run unchanged as the server
 * runs them, over shards (an environment the protocol names: XA, local
 * transactions, or both), the txlog model, a client and a fault budget. A
 * protocol brings its roles, its ghost variables and its properties
 * (./types.ts, WorldConfig); what the checker assumes about the world is the
 * same for every protocol.
 *
 * One action is one of:
 *   - a client request reaching a transaction's coordinator (once the
 *     resolver has taken the process epoch);
 *   - an effect in flight completing, with each outcome the environment may
 *     give (the role that asked reacts to the answer in the same action);
 *   - a resolver scan tick;
 *   - a fault, each bounded by the budget: the coordinator process crashing
 *     (every coordinator and the resolver lose their volatile state;
 *     statements already sent may still execute), a shard's own faults
 *     (its environment's), the txlog failing to answer (the write may or may
 *     not have happened);
 *   - recovery, which is not a fault: the process or a shard restarting, a
 *     shard noticing a dead client's connection.
 *
 * Timers fire at any time after they are set: a timeout is never assumed to
 * mean the other side is dead.
 */
import type { Effect, Result, ShardId, TxId } from "../kernel/effects.ts";
import type { Step } from "../kernel/role.ts";
import type { Model } from "../kernel/model.ts";
import { collapser } from "../env/collapse.ts";
import * as txlog from "../env/txlog.ts";
import { describer } from "./describe.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, PROCESS_ACTOR, RESOLVER_ACTOR, lifelineOf } from "../kernel/trace.ts";
import { answerLabel } from "../labels.ts";
import { baselinePaths, dropFencedOrphans, flightKeys, launch, launched, orphaned } from "./flights.ts";
import { applyBatch, batchCandidates, batchOutcomesOf, batchResult, isLogEffect, logAnswers, logOutcomes, type Answer, type LogEffect } from "./txlog-answers.ts";
import type { Action, Budget, Flight, ShardAnswer, Slot, World, WorldConfig } from "./types.ts";
import { worldCanonical } from "./symmetry.ts";
import { memo1, memo2, memo2Indexed, memoIndexed, memoKeyed } from "./memo.ts";

type Phased = { readonly phase: string };
type Resolving = { readonly phase: string; readonly epoch: number | null };

/**
 * The fair actions of a world (docs/checker.md, "Liveness under fairness"): weak fairness of every step that is not
 * a fault, one fair action per thing that acts: each effect in flight (answered by any non-fault outcome; its key
 * names it), each transaction's request, the resolver's scan, the process restarting, each shard restarting, each
 * dead connection being noticed. Faults (crashes, a fault outcome) are never required: a behaviour may simply not
 * take them. One name string per flight key (and per transaction, per shard): the liveness graph looks every edge's
 * name up in a Map, and a string made anew per edge would be hashed anew each time (4% of a search's time).
 */
function fairNames(key: (f: Flight) => string): { complete(f: Flight): string; request(tx: number): string; shardRestart(s: number): string } {
  const byKey = new Map<string, string>();
  const requests: string[] = [];
  const restarts: string[] = [];
  return {
    complete: (f) => {
      const k = key(f);
      let name = byKey.get(k);
      if (name === undefined) byKey.set(k, (name = `complete ${k}`));
      return name;
    },
    request: (tx) => (requests[tx] ??= `request ${tx}`),
    shardRestart: (s) => (restarts[s] ??= `shardRestart ${s}`),
  };
}

export function world<C extends Phased, R extends Resolving, Sh, G>(cfg: WorldConfig<C, R, Sh, G>): Model<World<C, R, Sh, G>, Action> {
  type W = World<C, R, Sh, G>;
  const sc = cfg.scenario;
  const { coordinator: coord, resolver: res, env, ghost } = cfg;
  const key = flightKeys();
  const shardIndex = (id: ShardId): number => {
    const i = sc.shards.indexOf(id);
    if (i < 0) throw new Error(`unknown shard ${id}`);
    return i;
  };
  const txIndex = (id: TxId): number => sc.txs.findIndex((t) => t.id === id);
  const timerOff = (id: string) => !cfg.timeouts && cfg.timeoutTimers.includes(id);
  const collapse = collapser<W>(["up", "inc", "coords", "resolver", "shards", "log", "flights", "told", "ghost", "budget"]);
  const parts = partsOf<C, R, Sh>(cfg, collapse.canon, { txIndex, key, timerOff });
  const launchOpts = { txIndex, key, timerOff, launched: parts.launched };
  const { coordStep, resStep } = parts;

  const init = (): W => ({
    up: true,
    inc: 0,
    coords: sc.txs.map(() => ({ st: coord.start(), alive: true })),
    resolver: res.start(),
    shards: sc.balances.map((b) => env.init(b)),
    log: txlog.emptyTxlog,
    flights: [],
    told: sc.txs.map(() => null),
    ghost: ghost.init(sc),
    budget: cfg.budget,
  });

  /** Deliver a result to its role and launch what the role asks next. */
  function deliver(w: W, owner: number, result: Result): W {
    if (owner < 0) {
      const out = resStep(w.resolver, result);
      return launch({ ...w, resolver: out.st }, owner, out.effects, launchOpts);
    }
    const slot = w.coords[owner]!;
    if (!slot.alive) return w;
    const out = coordStep(slot.st, result);
    return launch({ ...w, coords: parts.setAt(w.coords, owner, parts.slotWith(slot, out.st)) }, owner, out.effects, launchOpts);
  }

  const withShard = (w: W, s: number, sh: Sh): W => (w.shards[s] === sh ? w : { ...w, shards: parts.setAt(w.shards, s, sh) });

  /** Orphaned statements on a connection the shard has dropped can no longer arrive. */
  const dropOrphansOn = (w: W, s: number, conn: string): W => ({ ...w, flights: parts.dropOrphansOn(w.flights, s, conn) });

  /** Every way the world may answer flight `f` (`w` no longer holds it). */
  function answers(w: W, f: Flight): Answer<W>[] {
    const fx = f.fx;
    if (env.owns(fx)) {
      const s = shardIndex((fx as { shard: ShardId }).shard);
      const before = w.shards[s]!;
      return parts.shardAnswers(before, f, w.budget).map((o) => {
        let nw = o.ran !== null && ghost.ran ? ghost.ran(withShard(w, s, o.ran), f, s, before, o.ran) : w;
        nw = withShard(nw, s, o.shard);
        if (o.crashes) nw = { ...nw, budget: parts.spend(nw.budget, SHARD_CRASH) };
        if (o.dropOrphansOn !== undefined) nw = dropOrphansOn(nw, s, o.dropOrphansOn);
        return { world: nw, result: o.result, fault: o.crashes, label: o.label };
      });
    }
    if (isLogEffect(fx)) return logAnswers(w, fx, parts.logOutcomes, (b) => parts.spend(b, LOG_FAULT));
    if (fx.t === "timer") {
      const { result, label } = parts.timeout(fx);
      return [{ world: ghost.timer ? ghost.timer(w, fx.id) : w, result, fault: false, label }];
    }
    throw new Error(`${cfg.name}: no environment answers ${fx.t}${fx.t === "reply" ? " (a reply is never in flight: launch delivers it)" : ""}`);
  }

  /** The answers of the last state expanded, so that `next` does not compute them again. */
  let answersFor: { w: W; byFlight: Answer<W>[][] } | null = null;
  const answersOf = (w: W, i: number): Answer<W>[] => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    return (answersFor.byFlight[i] ??= answers({ ...w, flights: parts.without(w.flights, i) }, w.flights[i]!));
  };

  const observe = (w0: W): W => {
    const w = dropFencedOrphans(w0);
    return ghost.observe ? ghost.observe(w) : w;
  };
  const faulty = (w: W): W => (ghost.fault ? ghost.fault(w) : w);
  const isActive = (c: Slot<C>): boolean => c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  /** The client's request for transaction `t`, under the epoch the resolver took. */
  const requestOf = (w: W, t: number) => parts.request(t, w.resolver.epoch!);
  /** The resolver's scan tick, with the transactions whose coordinator is alive here. */
  const scanOf = (w: W) => {
    // As a bit set (memoised per set) up to 30 transactions; past that (no scenario comes near), as a list.
    if (w.coords.length > 30) return { t: "scan", active: w.coords.flatMap((c, t) => (isActive(c) ? [sc.txs[t]!.id] : [])) } as const;
    let active = 0;
    for (let t = 0; t < w.coords.length; t++) if (isActive(w.coords[t]!)) active |= 1 << t;
    return parts.scan(active);
  };
  /** What `next` delivers when flight `a.i` completes with outcome `a.o`. */
  const resultOf = (w: W, a: Extract<Action, { k: "complete" }>): Result | null => answersOf(w, a.i)[a.o]!.result;

  function* actions(w: W): Iterable<Action> {
    for (let t = 0; t < w.coords.length; t++) {
      const c = w.coords[t]!;
      // The process takes requests once the resolver has taken its epoch.
      if (w.up && c.alive && c.st.phase === "idle" && w.resolver.epoch !== null) yield { k: "request", tx: t };
    }
    for (let i = 0; i < w.flights.length; i++) {
      if (i > 0 && key(w.flights[i - 1]!) === key(w.flights[i]!)) continue;
      const outs = answersOf(w, i);
      for (let o = 0; o < outs.length; o++) yield { k: "complete", i, o, fault: outs[o]!.fault, label: outs[o]!.label };
    }
    if (cfg.logBatch !== undefined && cfg.logBatch !== "off" && w.budget.logFault > 0) {
      for (const set of batchCandidates(w.flights, key)) for (const o of batchOutcomesOf(cfg.logBatch)) yield { k: "logBatch", flights: set, o };
    }
    if (w.up && w.resolver.phase === "idle" && !cfg.scanIsNoop(w)) yield { k: "scan" };
    if (w.up && w.budget.crash > 0) yield { k: "crash" };
    if (!w.up && cfg.restart) yield { k: "restart" };
    for (let s = 0; s < w.shards.length; s++) yield* env.faults(w.shards[s]!, s, w.budget, w);
  }

  function next(w: W, a: Action): W {
    switch (a.k) {
      case "request": {
        const slot = w.coords[a.tx]!;
        const out = coordStep(slot.st, requestOf(w, a.tx));
        return observe(launch({ ...w, coords: parts.setAt(w.coords, a.tx, parts.slotWith(slot, out.st)) }, a.tx, out.effects, launchOpts));
      }
      case "complete": {
        const f = w.flights[a.i]!;
        const out = answersOf(w, a.i)[a.o]!;
        let nw = out.fault ? faulty(out.world) : out.world;
        if (out.result !== null && !f.orphan) nw = deliver(nw, f.owner, out.result);
        return observe(nw);
      }
      case "scan": {
        const out = resStep(w.resolver, scanOf(w));
        return launch({ ...w, resolver: out.st }, -1, out.effects, launchOpts);
      }
      case "crash":
        return faulty({
          ...w,
          up: false,
          coords: parts.dead(w.coords),
          resolver: parts.resolverStart(),
          flights: parts.orphaned(w.flights),
          budget: parts.spend(w.budget, CRASH),
        });
      case "restart":
        return { ...w, up: true, inc: w.inc + 1 };
      case "logBatch":
        return observe(faulty(applyBatch(w, a, deliver)));
      case "shardCrash":
        return observe(faulty({ ...withShard(w, a.s, parts.shardFault(w.shards[a.s]!, a)), budget: parts.spend(w.budget, SHARD_CRASH) }));
      case "shardRestart":
        return withShard(w, a.s, parts.shardFault(w.shards[a.s]!, a));
      case "notice":
        return observe(dropOrphansOn(withShard(w, a.s, parts.notice(w.shards[a.s]!, a)), a.s, a.conn));
    }
  }

  // Weak fairness of every step that is not a fault, one fair action per thing that acts (see fairNames).
  const names = fairNames(key);
  const fairStep = (w: W, a: Action): string | undefined => {
    switch (a.k) {
      case "complete":
        return a.fault ? undefined : names.complete(w.flights[a.i]!);
      case "crash":
      case "shardCrash":
      case "logBatch":
        return undefined;
      case "request":
        return names.request(a.tx);
      case "shardRestart":
        return names.shardRestart(a.s);
      case "notice":
        return `notice ${a.s} ${a.conn}`;
      case "scan":
      case "restart":
        return a.k;
    }
  };

  return {
    name: cfg.name,
    init: () => [init()],
    actions,
    next,
    invariants: cfg.invariants(sc),
    eventually: cfg.eventually(sc),
    ...(cfg.leadsTo ? { leadsTo: cfg.leadsTo(sc, fairStep) } : {}),
    encode: collapse.encode,
    encodeView: collapse.view,
    decode: collapse.decode,
    ...withCanonical(worldCanonical<W>(sc, collapse.rank)),
    localEncoding: true,
    describe: describer<W>(sc, key, { coordinator: coord, resolver: res, request: requestOf, scan: scanOf, result: resultOf, batchResult }),
    view: (w) => w,
    actors: () => [CLIENT_ACTOR, ...sc.txs.map((t) => lifelineOf(COORDINATOR_ACTOR, t.id)), RESOLVER_ACTOR, PROCESS_ACTOR, "txlog", ...sc.shards],
    roles: () => ({ [COORDINATOR_ACTOR]: coord, [RESOLVER_ACTOR]: res }),
  };
}

/** The symmetry hook, when the scenario declares one (./symmetry.ts). */
const withCanonical = <W>(canonical: ((w: W) => W) | undefined): { canonical?: (w: W) => W } => (canonical ? { canonical } : {});

/** Indices of the budget's fault kinds, for Parts.spend. */
const CRASH = 0;
const SHARD_CRASH = 1;
const LOG_FAULT = 2;
const BUDGET_KINDS = ["crash", "shardCrash", "logFault"] as const;

/**
 * The world's pure functions of a state's parts (a role's step, a shard's answers, the log's, a flight removed,
 * an element replaced, ...), memoised by the identity of their arguments, their results interned (`canon`), so
 * that equal parts are one object and are found by identity when a successor is encoded (./memo.ts says why this
 * is sound and bounded). With the code paths before issue 12 (`--before`, flights.ts useBaselinePaths) each is
 * the plain function: the same values, made afresh each time.
 */
function partsOf<C, R, Sh>(
  cfg: WorldConfig<any, any, Sh, any>,
  canon: <T>(v: T) => T,
  opts: { readonly txIndex: (tx: TxId) => number; readonly key: (f: Flight) => string; readonly timerOff: (id: string) => boolean },
) {
  type In = Parameters<WorldConfig<any, any, Sh, any>["coordinator"]["step"]>[1];
  const { coordinator: coord, resolver: res, env } = cfg;
  const sc = cfg.scenario;
  const plain = {
    coordStep: (st: C, input: In): Step<C, Effect> => coord.step(st, input),
    resStep: (st: R, input: In): Step<R, Effect> => res.step(st, input),
    shardAnswers: (sh: Sh, f: Flight, budget: Budget): readonly ShardAnswer<Sh>[] => env.answers(sh, f, budget),
    shardFault: (sh: Sh, a: Extract<Action, { k: "shardCrash" | "shardRestart" }>): Sh => env.fault(sh, a),
    notice: (sh: Sh, a: Extract<Action, { k: "notice" }>): Sh => env.fault(sh, a),
    dropOrphansOn: (flights: readonly Flight[], s: number, conn: string): readonly Flight[] =>
      flights.filter((f) => !(f.orphan && env.owns(f.fx) && "shard" in f.fx && f.fx.shard === sc.shards[s] && env.connOf?.(f) === conn)),
    logOutcomes,
    timeout: (fx: Extract<Effect, { t: "timer" }>) => {
      const result: Result = { t: "timeout", id: fx.id };
      return { result, label: answerLabel(result) };
    },
    setAt: <T>(xs: readonly T[], i: number, x: T): readonly T[] => xs.map((y, j) => (j === i ? x : y)),
    slotWith: (c: Slot<C>, st: C): Slot<C> => ({ ...c, st }),
    without: (flights: readonly Flight[], i: number): readonly Flight[] => flights.filter((_, j) => j !== i),
    launched: (flights: readonly Flight[], effects: readonly Effect[], owner: number, inc: number) => launched(flights, effects, owner, inc, opts),
    orphaned: (flights: readonly Flight[]): readonly Flight[] => orphaned(flights, opts.key),
    dead: <T extends { readonly alive: boolean }>(coords: readonly T[]): readonly T[] => coords.map((c) => ({ ...c, alive: false })),
    resolverStart: (): R => res.start(),
    spend: (b: Budget, kind: number): Budget => ({ ...b, [BUDGET_KINDS[kind]!]: b[BUDGET_KINDS[kind]!] - 1 }),
    request: (t: number, epoch: number) => {
      const tx = sc.txs[t]!;
      return { t: "request", tx: tx.id, branches: tx.branches, epoch, ...(tx.protocol !== undefined ? { protocol: tx.protocol } : {}) } as const;
    },
    scan: (active: number) => ({ t: "scan", active: sc.txs.flatMap((tx, t) => ((active >>> t) & 1 ? [tx.id] : [])) }) as const,
  };
  if (baselinePaths()) return plain;
  const isObj = (x: unknown): x is object => typeof x === "object" && x !== null;
  /** A budget as one number (its three counts, each below 1024), and a budget of each such number met. */
  const budgetIndex = (b: Budget): number => (b.crash < 1024 && b.shardCrash < 1024 && b.logFault < 1024 ? (b.crash * 1024 + b.shardCrash) * 1024 + b.logFault : -1);
  const budgetOf: Budget[] = [];
  /**
   * A shard's answers, interned but for one thing: a shard after the answer is the shard before it exactly when the
   * environment returned it unchanged (a ghost may read "the statement changed nothing" from `ran === before`, as
   * the speculative one does), so a new shard equal to the one before is kept as it is.
   */
  const sameAs = <T>(x: T, before: T): T => {
    if (x === before) return x;
    const c = canon(x);
    return c === before ? x : c;
  };
  const shardAnswers = memo2Indexed((sh: Sh & object, f: Flight, n: number) =>
    plain.shardAnswers(sh, f, budgetOf[n]!).map((o) => ({ ...canon(o), shard: sameAs(o.shard, sh), ran: o.ran === null ? null : sameAs(o.ran, sh) })),
  );
  const setAt = memo2Indexed(<T extends object>(xs: readonly T[], x: T, i: number) => canon(plain.setAt(xs, i, x)));
  const faults = memoIndexed((sh: Sh & object, n: number) =>
    canon(plain.shardFault(sh, n % 1024 === 1023 ? { k: "shardRestart", s: n >> 10 } : { k: "shardCrash", s: n >> 10, o: n % 1024 })),
  );
  const launchedMemo = memo2Indexed((flights: readonly Flight[], effects: readonly Effect[], n: number) =>
    canon(plain.launched(flights, effects, (n % 1024) - 1, n >> 10)),
  );
  const notices = memoKeyed((sh: Sh & object, k: string) => {
    const at = k.indexOf(" ");
    return canon(plain.notice(sh, { k: "notice", s: Number(k.slice(0, at)), conn: k.slice(at + 1) }));
  });
  const drops = memoKeyed((flights: readonly Flight[], k: string) => {
    const at = k.indexOf(" ");
    return canon(plain.dropOrphansOn(flights, Number(k.slice(0, at)), k.slice(at + 1)));
  });
  const logMemo = memo2Indexed((log: txlog.TxlogState, fx: LogEffect, faults: number) => canon(logOutcomes(log, fx, faults === 1)));
  const requests = memoIndexed((_: object, n: number) => canon(plain.request(n % 64, Math.floor(n / 64))));
  const resolverStart = canon(res.start());
  const memoed: typeof plain = {
    ...plain,
    coordStep: memo2((st: C & object, input: In & object) => canon(plain.coordStep(st, input))) as typeof plain.coordStep,
    resStep: memo2((st: R & object, input: In & object) => canon(plain.resStep(st, input))) as typeof plain.resStep,
    shardAnswers: (sh: Sh, f: Flight, budget: Budget) => {
      const n = budgetIndex(budget);
      if (n < 0) return plain.shardAnswers(sh, f, budget);
      budgetOf[n] ??= budget;
      return shardAnswers(sh as Sh & object, f, n);
    },
    shardFault: (sh: Sh, a: Extract<Action, { k: "shardCrash" | "shardRestart" }>): Sh =>
      a.k === "shardCrash" && a.o >= 1023 ? plain.shardFault(sh, a) : faults(sh as Sh & object, (a.s << 10) | (a.k === "shardRestart" ? 1023 : a.o)),
    notice: (sh: Sh, a: Extract<Action, { k: "notice" }>): Sh => notices(sh as Sh & object, `${a.s} ${a.conn}`),
    dropOrphansOn: (flights: readonly Flight[], s: number, conn: string) => drops(flights, `${s} ${conn}`),
    logOutcomes: (log: txlog.TxlogState, fx: LogEffect, faults: boolean) => logMemo(log, fx, faults ? 1 : 0),
    timeout: memo1((fx: Extract<Effect, { t: "timer" }>) => canon(plain.timeout(fx))),
    setAt: <T>(xs: readonly T[], i: number, x: T): readonly T[] => (isObj(x) ? (setAt(xs as readonly object[], x, i) as readonly T[]) : plain.setAt(xs, i, x)),
    slotWith: memo2((c: Slot<C>, st: C & object) => canon(plain.slotWith(c, st))) as typeof plain.slotWith,
    without: memoIndexed((flights: readonly Flight[], i: number) => canon(plain.without(flights, i))),
    launched: (flights: readonly Flight[], effects: readonly Effect[], owner: number, inc: number) =>
      owner + 1 < 1024 ? launchedMemo(flights, effects, ((inc << 10) | (owner + 1)) >>> 0) : plain.launched(flights, effects, owner, inc),
    orphaned: memo1((flights: readonly Flight[]) => canon(plain.orphaned(flights))),
    dead: memo1((coords: readonly { readonly alive: boolean }[]) => canon(plain.dead(coords))) as typeof plain.dead,
    resolverStart: () => resolverStart,
    spend: memoIndexed((b: Budget, kind: number) => canon(plain.spend(b, kind))),
    request: (t: number, epoch: number) => (t < 64 && Number.isSafeInteger(epoch * 64 + t) ? requests(sc, epoch * 64 + t) : plain.request(t, epoch)),
    scan: memoIndexed((_: object, active: number) => canon(plain.scan(active))).bind(null, sc),
  };
  return memoed;
}
