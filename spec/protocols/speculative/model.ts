/**
 * The speculative path with undo, composed for the model checker: the
 * coordinator and resolver roles (run unchanged, as the server will run them)
 * over the one-phase local shard model (spec/env/local.ts), the txlog model,
 * a client and a fault budget. It follows the 2PC composition
 * (spec/protocols/twopc/model.ts): flights, orphaned effects after a crash,
 * epoch-fenced txlog writes, a scan reduction.
 *
 * One action is one of:
 *   - a client request reaching a transaction's coordinator;
 *   - an effect in flight completing, with each outcome the environment may
 *     give (the role that asked reacts in the same action). A local
 *     transaction either commits and answers, or (a shard crash, bounded)
 *     the shard dies just before or just after it commits, and the client
 *     hears UNAVAILABLE. An orphaned statement (its process died) may still
 *     commit, or be rolled back when the server drops the dead connection;
 *   - a resolver scan tick;
 *   - a fault: the coordinator process crashing (every coordinator and the
 *     resolver lose their volatile state), the txlog failing to answer (the
 *     write may or may not have happened);
 *   - recovery, which is not a fault: the process or a shard restarting.
 *
 * A shard crash is offered only as the outcome of a statement reaching it:
 * a crash while nothing is in flight to the shard changes nothing a role
 * can see until its next statement, which then meets the "crashed before it
 * committed" outcome. Timers fire at any time after they are set.
 *
 * Properties: ./properties.ts; docs/protocols/speculative.md states each.
 */
import type { Fairness, Model, ModelFactory, StepInfo } from "../../../checker/model.ts";
import { EPOCH_KEY, specKey, specStateOf, txOfSpecKey, type BranchSpec, type SpecRecord, type LocalEffect, type Outcome, type ShardId, type SpecEffect, type SpecResult, type TxId } from "../../effects.ts";
import * as txlog from "../../env/txlog.ts";
import * as local from "../../env/local.ts";
import { canonicalJson } from "../../env/canonical.ts";
import { collapser } from "../../env/collapse.ts";
import { answerLabel } from "../../labels.ts";
import { describer } from "../describe.ts";
import { coordinator, defaultCoordinatorOptions, APPLY_TIMER, type CoordinatorMutant, type CoordinatorState } from "./coordinator.ts";
import { epochOf, resolver, type ResolverMutant, type ResolverState } from "./resolver.ts";
import type { SettleMutant } from "./settle.ts";
import { speculativeEventually, speculativeInvariants, speculativeLeadsTo } from "./properties.ts";

export interface Slot {
  readonly st: CoordinatorState;
  readonly alive: boolean;
}

/** An effect on its way, asked for by `owner` (a transaction index, or -1 for the resolver). */
export interface Flight {
  readonly owner: number;
  readonly fx: SpecEffect;
  /** Its asker died: it may still take effect, and nobody hears the answer. */
  readonly orphan: boolean;
}

export interface Ghost {
  /** Per transaction, per shard index: cents this transaction added to the shard's balances plus pending. */
  readonly moved: readonly (readonly number[])[];
  /** Per transaction, per shard index: compensations that changed the shard. */
  readonly compensations: readonly (readonly number[])[];
  /** Per transaction: the terminal record once one was written (kept after the record is forgotten). */
  readonly terminal: readonly (SpecRecord["state"] | null)[];
}

export interface Budget {
  readonly crash: number;
  readonly shardCrash: number;
  readonly logFault: number;
}

export interface World {
  readonly up: boolean;
  readonly coords: readonly Slot[];
  readonly resolver: ResolverState;
  readonly shards: readonly local.LocalShard[];
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
  | { readonly k: "shardRestart"; readonly s: number };

export interface Scenario {
  readonly shards: readonly ShardId[];
  /** Initial balances per shard: [account, cents]. */
  readonly balances: readonly (readonly (readonly [number, number])[])[];
  readonly txs: readonly { readonly id: TxId; readonly branches: readonly BranchSpec[] }[];
}

export interface SpeculativeConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The apply timer may fire (a coordinator settles branches that did not answer yet). */
  readonly timeouts: boolean;
  readonly mutant?: CoordinatorMutant | ResolverMutant;
}

/** One way the environment may answer a flight: the world after it, and what the asker hears (null: nobody). */
type Answer = { world: World; result: SpecResult | null; fault: boolean; label: string };

const isLocal = (fx: SpecEffect): fx is LocalEffect => fx.t.startsWith("local.");

export function speculativeModel(cfg: SpeculativeConfig): Model<World, Action> {
  const sc = cfg.scenario;
  const coord = coordinator({ ...defaultCoordinatorOptions, maxRetries: 1, mutant: cfg.mutant === "settle-at-first-sight" ? undefined : cfg.mutant });
  const settleMutant: SettleMutant | undefined =
    cfg.mutant === "rollback-without-tombstone" || cfg.mutant === "compensate-keeps-row" || cfg.mutant === "release-deletes-row" || cfg.mutant === "delete-before-final"
      ? cfg.mutant
      : undefined;
  const res = resolver({ shards: sc.shards, mutant: cfg.mutant === "settle-at-first-sight" ? cfg.mutant : settleMutant });
  const shardIndex = (id: ShardId): number => sc.shards.indexOf(id);
  const txIndex = (id: TxId): number => sc.txs.findIndex((t) => t.id === id);
  const collapse = collapser<World>(["up", "coords", "resolver", "shards", "log", "flights", "told", "ghost", "budget"]);
  const zeros = () => sc.txs.map(() => sc.shards.map(() => 0));

  const init = (): World => ({
    up: true,
    coords: sc.txs.map(() => ({ st: coord.start(), alive: true })),
    resolver: res.start(),
    shards: sc.balances.map((b) => local.initLocal(b)),
    log: txlog.emptyTxlog,
    flights: [],
    told: sc.txs.map(() => null),
    ghost: { moved: zeros(), compensations: zeros(), terminal: sc.txs.map(() => null) },
    budget: cfg.budget,
  });

  const keys = new WeakMap<Flight, string>();
  const flightKey = (f: Flight): string => {
    let k = keys.get(f);
    if (k === undefined) keys.set(f, (k = canonicalJson(f)));
    return k;
  };
  const sortFlights = (fs: readonly Flight[]): Flight[] => [...fs].sort((a, b) => (flightKey(a) < flightKey(b) ? -1 : flightKey(a) > flightKey(b) ? 1 : 0));

  /** Add what a role asked for. A reply reaches the client at once; a timer replaces the same owner's timer of that id. */
  function launch(w: World, owner: number, effects: readonly SpecEffect[]): World {
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
        if (fx.id === APPLY_TIMER && !cfg.timeouts) continue;
        flights = flights.filter((f) => !(f.owner === owner && f.fx.t === "timer" && f.fx.id === fx.id));
      }
      flights.push({ owner, fx, orphan: false });
    }
    return { ...w, flights: sortFlights(flights), told };
  }

  function deliver(w: World, owner: number, result: SpecResult): World {
    if (owner < 0) {
      const out = res.step(w.resolver, result);
      return launch({ ...w, resolver: out.st }, owner, out.effects);
    }
    const slot = w.coords[owner]!;
    if (!slot.alive) return w;
    const out = coord.step(slot.st, result);
    return launch({ ...w, coords: w.coords.map((c, i) => (i === owner ? { ...c, st: out.st } : c)) }, owner, out.effects);
  }

  const total = (sh: local.LocalShard): number => sh.accounts.reduce((sum, [, b, p]) => sum + b + p, 0);

  /** The shard after a local effect, with the ghost's record of what it did. */
  function runLocal(w: World, fx: LocalEffect): { world: World; result: SpecResult } {
    const s = shardIndex(fx.shard);
    const before = w.shards[s]!;
    const { s: after, r } = local.execute(before, fx);
    let ghost = w.ghost;
    if (fx.t !== "local.scan" && after !== before) {
      const t = txIndex(fx.tx);
      const bump = (m: readonly (readonly number[])[], by: number) => m.map((row, i) => (i === t ? row.map((v, j) => (j === s ? v + by : v)) : row));
      ghost = { ...ghost, moved: bump(ghost.moved, total(after) - total(before)) };
      if (fx.t === "local.compensate") ghost = { ...ghost, compensations: bump(ghost.compensations, 1) };
    }
    return { world: { ...w, shards: w.shards.map((x, i) => (i === s ? after : x)), ghost }, result: r };
  }

  /** Every way the environment may answer flight `f` (`w` no longer holds it). */
  function answers(w: World, f: Flight): Answer[] {
    const fx = f.fx;
    if (isLocal(fx)) {
      const s = shardIndex(fx.shard);
      const sh = w.shards[s]!;
      const ran = runLocal(w, fx);
      const down = (x: World): World => ({ ...x, shards: x.shards.map((y, i) => (i === s ? local.crash(y) : y)), budget: { ...x.budget, shardCrash: x.budget.shardCrash - 1 } });
      const unavailable = local.unavailable(fx);
      if (!sh.up) return [{ world: w, result: unavailable, fault: false, label: "UNAVAILABLE (down)" }];
      const outs: Answer[] = [{ ...ran, fault: false, label: answerLabel(ran.result) }];
      if (f.orphan) outs.push({ world: w, result: null, fault: false, label: "rolled back (dead client)" });
      if (w.budget.shardCrash > 0) {
        if (fx.t !== "local.scan") outs.push({ world: down(ran.world), result: unavailable, fault: true, label: "committed, then CRASH" });
        outs.push({ world: down(w), result: unavailable, fault: true, label: "CRASH before commit" });
      }
      return outs;
    }
    switch (fx.t) {
      case "log.put": {
        const { s, r } = txlog.put(w.log, fx.key, fx.value, fx.ifVersion, fx.fence);
        const written = r.ok ? terminalWritten({ ...w, log: s }, fx.key) : w;
        const result: SpecResult = { t: "log.put", key: fx.key, r };
        const outs: Answer[] = [{ world: written, result, fault: false, label: answerLabel(result) }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          const unavailable: SpecResult = { t: "log.put", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
          outs.push({ world: { ...written, budget: b }, result: unavailable, fault: true, label: "UNAVAILABLE (written)" });
          outs.push({ world: { ...w, budget: b }, result: unavailable, fault: true, label: "UNAVAILABLE (not written)" });
        }
        return outs;
      }
      case "log.delete": {
        const { s, r } = txlog.del(w.log, fx.key, fx.fence);
        const result: SpecResult = { t: "log.delete", key: fx.key, r };
        const outs: Answer[] = [{ world: { ...w, log: s }, result, fault: false, label: answerLabel(result) }];
        if (w.budget.logFault > 0) {
          const b = { ...w.budget, logFault: w.budget.logFault - 1 };
          const unavailable: SpecResult = { t: "log.delete", key: fx.key, r: { ok: false, err: "UNAVAILABLE" } };
          outs.push({ world: { ...w, log: s, budget: b }, result: unavailable, fault: true, label: "UNAVAILABLE (deleted)" });
          outs.push({ world: { ...w, budget: b }, result: unavailable, fault: true, label: "UNAVAILABLE (not deleted)" });
        }
        return outs;
      }
      case "log.list": {
        const entries = txlog.list(w.log, fx.prefix);
        const result: SpecResult = { t: "log.list", r: { ok: true, entries } };
        const outs: Answer[] = [{ world: w, result, fault: false, label: answerLabel(result) }];
        if (w.budget.logFault > 0) outs.push({ world: { ...w, budget: { ...w.budget, logFault: w.budget.logFault - 1 } }, result: { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } }, fault: true, label: "UNAVAILABLE" });
        return outs;
      }
      case "timer":
        const result: SpecResult = { t: "timeout", id: fx.id };
        return [{ world: w, result, fault: false, label: answerLabel(result) }];
      default:
        throw new Error(`speculative: no environment for effect ${fx.t}`);
    }
  }

  /** The ghost remembers a terminal record once it is in the log, so that properties still see it after it is forgotten. */
  function terminalWritten(w: World, key: string): World {
    const state = specStateOf(txlog.get(w.log, key)?.value);
    if (state !== "SPEC_COMMITTED" && state !== "SPEC_ROLLED_BACK") return w;
    const t = txIndex(txOfSpecKey(key));
    if (t < 0 || w.ghost.terminal[t] === state) return w;
    return { ...w, ghost: { ...w.ghost, terminal: w.ghost.terminal.map((x, i) => (i === t ? state : x)) } };
  }

  /** An orphaned txlog write fenced by a newer epoch can only answer FENCED to nobody: drop it. */
  function dropFencedOrphans(w: World): World {
    const epoch = txlog.get(w.log, EPOCH_KEY)?.version ?? 0;
    const dead = (f: Flight) => f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== epoch;
    return w.flights.some(dead) ? { ...w, flights: w.flights.filter((f) => !dead(f)) } : w;
  }

  let answersFor: { w: World; byFlight: Answer[][] } | null = null;
  const answersOf = (w: World, i: number): Answer[] => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    return (answersFor.byFlight[i] ??= answers({ ...w, flights: w.flights.filter((_, j) => j !== i) }, w.flights[i]!));
  };

  const isActive = (c: Slot): boolean => c.alive && c.st.phase === "running";

  /**
   * Reduction: a scan is not offered when it can only be a no-op: the epoch
   * is taken and no transaction without a live coordinator has an undo row
   * or a record (SPEC_EXECUTING to settle, a terminal one to forget), and no
   * suspect is pending, so plan() settles nothing and records no suspect. Such a
   * scan only reads and ends in the state it started in (faults it could meet
   * are offered by every other statement too).
   */
  function scanIsNoop(w: World): boolean {
    if (w.resolver.epoch === null || w.resolver.suspects.length > 0) return false;
    return sc.txs.every((t, i) => {
      if (isActive(w.coords[i]!)) return true;
      const rec = txlog.get(w.log, specKey(t.id))?.value;
      return rec?.kind !== "spec" && !w.shards.some((sh) => sh.undo.some((r) => r.tx === t.id && r.state === "undo"));
    });
  }

  function* actions(w: World): Iterable<Action> {
    for (let t = 0; t < w.coords.length; t++) {
      const c = w.coords[t]!;
      if (w.up && c.alive && c.st.phase === "idle" && epochOf(w.resolver) !== null) yield { k: "request", tx: t };
    }
    for (let i = 0; i < w.flights.length; i++) {
      if (i > 0 && flightKey(w.flights[i - 1]!) === flightKey(w.flights[i]!)) continue;
      const outs = answersOf(w, i);
      for (let o = 0; o < outs.length; o++) yield { k: "complete", i, o, fault: outs[o]!.fault, label: outs[o]!.label };
    }
    if (w.up && w.resolver.phase === "idle" && !scanIsNoop(w)) yield { k: "scan" };
    if (w.up && w.budget.crash > 0) yield { k: "crash" };
    if (!w.up) yield { k: "restart" };
    for (let s = 0; s < w.shards.length; s++) if (!w.shards[s]!.up) yield { k: "shardRestart", s };
  }

  function next(w: World, a: Action): World {
    switch (a.k) {
      case "request": {
        const spec = sc.txs[a.tx]!;
        const out = coord.step(w.coords[a.tx]!.st, { t: "request", tx: spec.id, branches: spec.branches, epoch: epochOf(w.resolver)! });
        return launch({ ...w, coords: w.coords.map((c, i) => (i === a.tx ? { ...c, st: out.st } : c)) }, a.tx, out.effects);
      }
      case "complete": {
        const f = w.flights[a.i]!;
        const out = answersOf(w, a.i)[a.o]!;
        let nw = out.world;
        if (out.result !== null && !f.orphan) nw = deliver(nw, f.owner, out.result);
        return dropFencedOrphans(nw);
      }
      case "scan": {
        const active = w.coords.flatMap((c, t) => (isActive(c) ? [sc.txs[t]!.id] : []));
        const out = res.step(w.resolver, { t: "scan", active });
        return launch({ ...w, resolver: out.st }, -1, out.effects);
      }
      case "crash": {
        // Statements and log writes already sent may still land; replies, timers and reads die with the process.
        const flights = w.flights.filter((f) => f.fx.t !== "timer" && f.fx.t !== "log.list" && f.fx.t !== "local.scan").map((f) => ({ ...f, orphan: true }));
        return {
          ...w,
          up: false,
          coords: w.coords.map((c) => ({ ...c, alive: false })),
          resolver: res.start(),
          flights: sortFlights(flights),
          budget: { ...w.budget, crash: w.budget.crash - 1 },
        };
      }
      case "restart":
        return { ...w, up: true };
      case "shardRestart":
        return { ...w, shards: w.shards.map((x, i) => (i === a.s ? local.restart(x) : x)) };
    }
  }

  /**
   * Weak fairness of every step that is not a fault, one fair action per
   * thing that acts (as compose.ts's fairStep): each effect in flight
   * (answered by any non-fault outcome), each request, the scan, restarts.
   */
  const fairStep: Fairness<World, Action> = (w, a) => {
    switch (a.k) {
      case "complete":
        return a.fault ? undefined : `complete ${flightKey(w.flights[a.i]!)}`;
      case "crash":
        return undefined;
      case "request":
        return `request ${a.tx}`;
      case "shardRestart":
        return `shardRestart ${a.s}`;
      case "scan":
      case "restart":
        return a.k;
    }
  };

  const steps = describer<Flight, World>(sc.txs, flightKey);

  function describe(from: World, a: Action, to: World): StepInfo | StepInfo[] {
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
      case "shardRestart":
        return { actor: sc.shards[a.s]!, label: "restart" };
    }
  }

  return {
    name: "speculative",
    init: () => [init()],
    actions,
    next,
    invariants: speculativeInvariants(sc, cfg.budget),
    eventually: speculativeEventually(sc),
    leadsTo: speculativeLeadsTo(sc, fairStep),
    encode: collapse.encode,
    decode: collapse.decode,
    localEncoding: true,
    describe,
    view: (w) => w,
    actors: () => ["client", ...sc.txs.map((t) => `coord(${t.id})`), "resolver", "process", "txlog", ...sc.shards],
  };
}

const transfer = (id: TxId, from: [ShardId, number], to: [ShardId, number], cents: number) => ({
  id,
  branches: [
    { shard: from[0], ops: [{ account: from[1], delta: -cents }] },
    { shard: to[0], ops: [{ account: to[1], delta: cents }] },
  ],
});

/** The configurations the suite names. */
export function scenario(name: string): Scenario {
  const shards = ["s1", "s2"];
  switch (name) {
    case "transfer":
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 30)] };
    case "same":
      // Two transfers from the same account, only one of which it can pay: one mis-speculates.
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 60), transfer("t2", ["s1", 1], ["s2", 2], 60)] };
    case "misspec":
      // A branch that fails (insufficient funds) after the other committed: rollback, total unchanged.
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s2", 2], ["s1", 1], 130)] };
    case "spend":
      // t2 spends what t1 credits: possible only once t1 is final (escrow).
      return { shards, balances: [[[1, 100]], [[2, 0]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 30), transfer("t2", ["s2", 2], ["s1", 1], 30)] };
    default:
      throw new Error(`speculative: unknown scenario '${name}': use transfer, same, misspec or spend`);
  }
}

export const speculativeMutants: readonly (CoordinatorMutant | ResolverMutant)[] = [
  "spendable-credits",
  "undo-separate",
  "compensate-keeps-row",
  "rollback-without-tombstone",
  "reply-early",
  "release-early",
  "release-deletes-row",
  "settle-at-first-sight",
  "delete-before-final",
];

export const speculativeFactory: ModelFactory = {
  name: "speculative",
  description: "Speculative path with undo: coordinator + resolver over one-phase local shards (escrow, undo rows, tombstones) and the txlog, with crashes",
  params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, timeouts: true },
  mutants: speculativeMutants,
  build(p, mutant) {
    const num = (k: string): number => {
      const v = p[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`speculative: parameter ${k} must be a whole number >= 0 (got ${String(v)})`);
      return v;
    };
    const m = speculativeMutants.find((x) => x === mutant);
    if (mutant !== undefined && m === undefined) throw new Error(`speculative: unknown mutant '${mutant}' (known: ${speculativeMutants.join(", ")})`);
    return speculativeModel({
      scenario: scenario(String(p.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      timeouts: p.timeouts === true,
      mutant: m,
    });
  },
};
