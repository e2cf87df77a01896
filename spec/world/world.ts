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
import type { Result, ShardId, TxId } from "../kernel/effects.ts";
import type { Model } from "../kernel/model.ts";
import { collapser } from "../env/collapse.ts";
import * as txlog from "../env/txlog.ts";
import { describer } from "./describe.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, PROCESS_ACTOR, RESOLVER_ACTOR, lifelineOf } from "../kernel/trace.ts";
import { answerLabel } from "../labels.ts";
import { dropFencedOrphans, flightKeys, launch, orphaned } from "./flights.ts";
import { applyBatch, batchCandidates, batchOutcomesOf, batchResult, isLogEffect, logAnswers, type Answer } from "./txlog-answers.ts";
import type { Action, Flight, Slot, World, WorldConfig } from "./types.ts";
import { worldCanonical } from "./symmetry.ts";

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
  const launchOpts = { txIndex, key, timerOff: (id: string) => !cfg.timeouts && cfg.timeoutTimers.includes(id) };
  const collapse = collapser<W>(["up", "inc", "coords", "resolver", "shards", "log", "flights", "told", "ghost", "budget"]);

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
      const out = res.step(w.resolver, result);
      return launch({ ...w, resolver: out.st }, owner, out.effects, launchOpts);
    }
    const slot = w.coords[owner]!;
    if (!slot.alive) return w;
    const out = coord.step(slot.st, result);
    const coords = w.coords.map((c, i) => (i === owner ? { ...c, st: out.st } : c));
    return launch({ ...w, coords }, owner, out.effects, launchOpts);
  }

  const withShard = (w: W, s: number, sh: Sh): W => ({ ...w, shards: w.shards.map((x, i) => (i === s ? sh : x)) });

  /** Orphaned statements on a connection the shard has dropped can no longer arrive. */
  const dropOrphansOn = (w: W, s: number, conn: string): W => ({
    ...w,
    flights: w.flights.filter((f) => !(f.orphan && env.owns(f.fx) && "shard" in f.fx && f.fx.shard === sc.shards[s] && env.connOf?.(f) === conn)),
  });

  /** Every way the world may answer flight `f` (`w` no longer holds it). */
  function answers(w: W, f: Flight): Answer<W>[] {
    const fx = f.fx;
    if (env.owns(fx)) {
      const s = shardIndex((fx as { shard: ShardId }).shard);
      const before = w.shards[s]!;
      return env.answers(before, f, w.budget).map((o) => {
        let nw = o.ran !== null && ghost.ran ? ghost.ran(withShard(w, s, o.ran), f, s, before, o.ran) : w;
        nw = withShard(nw, s, o.shard);
        if (o.crashes) nw = { ...nw, budget: { ...nw.budget, shardCrash: nw.budget.shardCrash - 1 } };
        if (o.dropOrphansOn !== undefined) nw = dropOrphansOn(nw, s, o.dropOrphansOn);
        return { world: nw, result: o.result, fault: o.crashes, label: o.label };
      });
    }
    if (isLogEffect(fx)) return logAnswers(w, fx);
    if (fx.t === "timer") return [{ world: ghost.timer ? ghost.timer(w, fx.id) : w, result: { t: "timeout", id: fx.id }, fault: false, label: answerLabel({ t: "timeout", id: fx.id }) }];
    throw new Error(`${cfg.name}: no environment answers ${fx.t}${fx.t === "reply" ? " (a reply is never in flight: launch delivers it)" : ""}`);
  }

  /** The answers of the last state expanded, so that `next` does not compute them again. */
  let answersFor: { w: W; byFlight: Answer<W>[][] } | null = null;
  const answersOf = (w: W, i: number): Answer<W>[] => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    return (answersFor.byFlight[i] ??= answers({ ...w, flights: w.flights.filter((_, j) => j !== i) }, w.flights[i]!));
  };

  const observe = (w0: W): W => {
    const w = dropFencedOrphans(w0);
    return ghost.observe ? ghost.observe(w) : w;
  };
  const faulty = (w: W): W => (ghost.fault ? ghost.fault(w) : w);
  const isActive = (c: Slot<C>): boolean => c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  /** The client's request for transaction `t`, under the epoch the resolver took. */
  const requestOf = (w: W, t: number) => {
    const tx = sc.txs[t]!;
    return { t: "request", tx: tx.id, branches: tx.branches, epoch: w.resolver.epoch!, ...(tx.protocol !== undefined ? { protocol: tx.protocol } : {}) } as const;
  };
  /** The resolver's scan tick, with the transactions whose coordinator is alive here. */
  const scanOf = (w: W) => ({ t: "scan", active: w.coords.flatMap((c, t) => (isActive(c) ? [sc.txs[t]!.id] : [])) }) as const;
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
        const out = coord.step(w.coords[a.tx]!.st, requestOf(w, a.tx));
        const coords = w.coords.map((c, i) => (i === a.tx ? { ...c, st: out.st } : c));
        return observe(launch({ ...w, coords }, a.tx, out.effects, launchOpts));
      }
      case "complete": {
        const f = w.flights[a.i]!;
        const out = answersOf(w, a.i)[a.o]!;
        let nw = out.fault ? faulty(out.world) : out.world;
        if (out.result !== null && !f.orphan) nw = deliver(nw, f.owner, out.result);
        return observe(nw);
      }
      case "scan": {
        const out = res.step(w.resolver, scanOf(w));
        return launch({ ...w, resolver: out.st }, -1, out.effects, launchOpts);
      }
      case "crash":
        return faulty({
          ...w,
          up: false,
          coords: w.coords.map((c) => ({ ...c, alive: false })),
          resolver: res.start(),
          flights: orphaned(w.flights, key),
          budget: { ...w.budget, crash: w.budget.crash - 1 },
        });
      case "restart":
        return { ...w, up: true, inc: w.inc + 1 };
      case "logBatch":
        return observe(faulty(applyBatch(w, a, deliver)));
      case "shardCrash":
        return observe(faulty({ ...withShard(w, a.s, env.fault(w.shards[a.s]!, a)), budget: { ...w.budget, shardCrash: w.budget.shardCrash - 1 } }));
      case "shardRestart":
        return withShard(w, a.s, env.fault(w.shards[a.s]!, a));
      case "notice":
        return observe(dropOrphansOn(withShard(w, a.s, env.fault(w.shards[a.s]!, a)), a.s, a.conn));
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
