/**
 * The failover model (docs/protocols/failover.md): the server's composition
 * with several coordinator nodes, one of which may crash and (restart=false)
 * never return. Each node runs the server coordinator (spec/server/coordinator.ts)
 * for its own transactions and the process resolver (spec/server/resolver.ts)
 * over its own namespace; every survivor runs the takeover role
 * (./takeover.ts) for the dying node and, while it owns it, a second process
 * resolver over that node's namespace (./world.ts runs them).
 *
 * Properties: each protocol's own (AC1..AC4, the banking invariants, the
 * speculative path's, on the log as one namespace: spec/server/properties.ts
 * xaFamilyInvariants, or serverInvariants with a speculative transaction);
 * `one_survivor_resolves` (at most one survivor resolves the dying node at a
 * time); `every_transaction_ends` (once faults stop, every transaction,
 * the dead node's included, can still finish: 2PC no longer blocks while a
 * survivor lives).
 *
 * Mutants: `takeover-unfenced` (the survivor's resolver adopts the dead
 * node's epoch instead of taking a new one: no fence); `ignore-cas` (a claim
 * that lost its compare is taken as won: two survivors take over the same
 * node); `lease-early` (the lease may expire while its node is alive: a
 * takeover races a live, slow coordinator); `wrong-rule` (the survivor reads
 * the dead node's STAGING record by 2PC's rule: not a COMMIT, so abort).
 *
 * The shards: a scenario of the XA family (2PC, parallel commit) runs on XA
 * shards with the process resolver's XA part, exactly as before the
 * speculative path joined (the entries keep their counts); a scenario with a
 * speculative transaction runs on shards that run XA and local transactions
 * (spec/env/both-shards.ts) with every registered resolver part, the server
 * model's ghost and properties (spec/server/model.ts, properties.ts): the
 * survivor's takeover resolver settles the dead node's speculation records
 * and undo rows by the speculative path's own rule (the shards' unique keys
 * decide; an unknown branch is probed with a tombstone). Mutant
 * `spec-presumed-abort`: the survivor's speculative part settles by 2PC's
 * rule instead (nothing known of a branch: presumed never applied, rolled
 * back without a tombstone), so the dead node's late apply lands after the
 * rollback. Mutant `namespace-leak` (for `survivorTx`, where the survivor runs
 * a resolver of its own beside the one over the dead node's namespace): a
 * resolver's scans of the shards show every node's branches, so the
 * survivor's own resolver finishes the other node's transactions by its own
 * (empty) log.
 *
 * Rule 5 (knob `hang`, XA family only; ./takeover.ts detachBeforeSettle): the
 * dying node may hang instead of crashing (frozen or cut off: no step, its
 * unanswered flights unsent, its shard sessions open, so its prepared
 * branches stay attached and another process's XA COMMIT/ROLLBACK of them
 * answers NOTA); with `restart` it may resume. The survivor detaches (kills)
 * those sessions only while it owns the node and its fence is durable.
 * Mutant `no-detach`: it never does, and the branch stays prepared for ever.
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import { EPOCH_KEY, speculativeKey, type Effect, type LogEntry, type Result } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import { collapser } from "../env/collapse.ts";
import { bothShards, type BothShard } from "../env/both-shards.ts";
import { branchXid } from "../env/executor.ts";
import type { LocalShard } from "../env/local.ts";
import * as txlog from "../env/txlog.ts";
import type * as xa from "../env/xa.ts";
import { xaShards } from "../env/xa-shard.ts";
import { flightKeys } from "../world/flights.ts";
import { isLogEffect, logAnswers, type Answer } from "../world/txlog-answers.ts";
import type { Budget, Flight, GhostSpec, Scenario, ShardEnv, World } from "../world/types.ts";
import { answerLabel } from "../labels.ts";
import { VOTE_TIMER, wholeParam, xaGhost, type XaWorld } from "../protocols/xa/world.ts";
import { resolverQuiet, type ResolverState as XaResolverState } from "../protocols/xa/resolver.ts";
import { implicitGhost } from "../protocols/parallel/model.ts";
import { xaEventually } from "../protocols/xa/properties.ts";
import { defaultCoordinatorOptions } from "../protocols/twopc/coordinator.ts";
import { APPLY_TIMER } from "../protocols/speculative/coordinator.ts";
import { resolver as speculativeResolver, type ResolverState as SpeculativeResolverState } from "../protocols/speculative/resolver.ts";
import type { ResolverPart } from "../protocols/protocol.ts";
import { DEFAULT_PROTOCOL, ONE_PHASE, PROTOCOLS, protocolNamed, RESOLVER_PARTS } from "../protocols/registry.ts";
import { serverCoordinator } from "../server/coordinator.ts";
import { processResolver, type ProcessResolverState } from "../server/resolver.ts";
import { serverEventually, serverInvariants, xaFamilyInvariants } from "../server/properties.ts";
import { serverGhost, transfer } from "../server/model.ts";
import { detachBeforeSettle, resolving, takeover, type TakeoverInput, type TakeoverState } from "./takeover.ts";
import { fromNamespace, mergedEntries } from "./namespace.ts";
import {
  dropFenced,
  launchAll,
  layoutOf,
  observation,
  orphanOwners,
  ownerKind,
  resolverOwner,
  takeoverOwner,
  watchMatters,
  type FailoverAction,
  type FailoverLayout,
  type FailoverWorld,
} from "./world.ts";
import { failoverActors, failoverDescriber } from "./describe.ts";

export const failoverMutants = ["takeover-unfenced", "ignore-cas", "lease-early", "wrong-rule", "spec-presumed-abort", "namespace-leak", "no-detach"] as const;
export type FailoverMutant = (typeof failoverMutants)[number];

export interface FailoverConfig {
  readonly scenario: Scenario;
  readonly layout: FailoverLayout;
  readonly budget: Budget;
  /** The dying node restarts after its crash (false: it stays down forever). */
  readonly restart: boolean;
  readonly timeouts: boolean;
  /** The dying node's fault is a hang (rule 5: frozen or cut off, its shard sessions open) instead of a crash; with `restart`, it may resume. */
  readonly hang?: boolean;
  readonly mutant?: FailoverMutant;
}

type W = FailoverWorld<any, any>;
/** The world as one protocol model sees it (viewer). */
type V = World<any, any, any, any>;
type Goal = { goal(v: V): boolean; allowed?(a: FailoverAction): boolean };

/** The coordinator settings every model runs with (spec/server/model.ts). */
const SETTINGS = { voteTimeoutMs: defaultCoordinatorOptions.voteTimeoutMs, retryDelayMs: defaultCoordinatorOptions.retryDelayMs, attemptsMax: 2 };

/**
 * What the shards run, and what follows from it: the environment, the process resolver's parts, the timers a
 * timeout may fire, the ghost, each shard's XA and local part, the properties on the merged view.
 */
interface Shards {
  readonly env: ShardEnv<any>;
  readonly parts: readonly ResolverPart[];
  readonly timers: readonly string[];
  readonly ghost: GhostSpec<any, V>;
  readonly xa: (sh: any) => xa.ShardState;
  readonly local: ((sh: any) => LocalShard) | null;
  readonly invariants: Record<string, (v: V) => boolean>;
  readonly ends: Goal;
}

const protocolOfTx = (sc: Scenario) => (t: number): string => sc.txs[t]!.protocol ?? DEFAULT_PROTOCOL;

/**
 * The XA family alone on XA shards: each protocol's own properties on the merged view (AC1..AC4, the banking
 * invariants), and AC5 as parallel commit states it on the whole log (it implies 2PC's): no branch, no record left but
 * the epochs (the claims are not in the view).
 */
function xaFamilyShards(sc: Scenario): Shards {
  const finished = (v: XaWorld<any, any>): boolean =>
    v.coords.every((c) => !c.alive || c.st.phase === "done") && v.shards.every((sh) => sh.branches.length === 0) && v.log.entries.every((e) => e.value.kind === "epoch");
  const ends = xaEventually(finished).AC5_terminates;
  return {
    env: xaShards,
    parts: RESOLVER_PARTS.filter((p) => p.needs === "xa"),
    timers: [VOTE_TIMER],
    ghost: xaGhost<XaWorld<any, any>>(sc, implicitGhost(sc)) as unknown as GhostSpec<any, V>,
    xa: (sh) => sh,
    local: null,
    invariants: xaFamilyInvariants(sc, protocolOfTx(sc)),
    ends: { goal: (v) => ends.goal(v as XaWorld<any, any>), allowed: (a) => ends.allowed(a as never) },
  };
}

/** Every protocol on shards running XA and local transactions: the server model's ghost and properties (spec/server/model.ts). */
function everyProtocolShards(sc: Scenario, budget: Budget): Shards {
  const ends = serverEventually(sc, protocolOfTx(sc)).every_transaction_ends!;
  return {
    env: bothShards,
    parts: RESOLVER_PARTS,
    timers: [VOTE_TIMER, APPLY_TIMER],
    ghost: serverGhost(sc) as unknown as GhostSpec<any, V>,
    xa: (sh: BothShard) => sh.xa,
    local: (sh: BothShard) => sh.local,
    invariants: serverInvariants(sc, budget, protocolOfTx(sc)),
    ends: { goal: ends.goal, allowed: (a) => ends.allowed?.(a as never) ?? true },
  };
}

/** The process resolver with the parts the shards answer; `local` replaces the role of the part over local transactions (a mutant). */
function resolverRole(sc: Scenario, parts: readonly ResolverPart[], local?: ResolverPart["role"]) {
  return processResolver({ shards: sc.shards, parts: parts.map((p) => (p.needs === "local" && local !== undefined ? { ...p, role: local } : p)) });
}

/** Mutant takeover-unfenced: the resolver adopts the epoch it finds instead of taking a new one (its epoch CAS answered at once, nothing written). */
function adoptEpoch(role: Role<ProcessResolverState, any, Effect>): Role<ProcessResolverState, any, Effect> {
  return {
    start: role.start,
    step(st, input) {
      const out = role.step(st, input);
      const i = out.effects.findIndex((e) => e.t === "log.put" && e.key === EPOCH_KEY);
      if (i < 0) return out;
      const e = out.effects[i] as Extract<Effect, { t: "log.put" }>;
      const again = role.step(out.st, { t: "log.put", key: EPOCH_KEY, r: { ok: true, version: e.ifVersion } });
      return { st: again.st, effects: [...out.effects.filter((_, j) => j !== i), ...again.effects] };
    },
  };
}

/** Mutant wrong-rule: a STAGING record read by 2PC's rule (no COMMIT: abort). */
const stagingAsAbort = (e: LogEntry): LogEntry =>
  e.value.kind === "staging" ? { ...e, value: { kind: "decision", decision: "abort", branches: e.value.branches.map((b) => b.shard) } } : e;

/** The world as one protocol model sees it: one log (the namespaces merged, the claims left out), one process. */
function viewer(nodeNames: readonly string[]): (w: W) => V {
  const views = new WeakMap<W, V>();
  return (w) => {
    let v = views.get(w);
    if (v === undefined) {
      v = { up: true, inc: 0, coords: w.coords, resolver: null, shards: w.shards, log: { entries: mergedEntries(w.log.entries, nodeNames) }, flights: w.flights, told: w.told, ghost: w.ghost, budget: w.budget };
      views.set(w, v);
    }
    return v;
  };
}

/** The properties: the shards' (each protocol's own, on the merged view), one survivor resolving at a time, every transaction ends. */
function properties(shards: Shards, viewOf: (w: W) => V, txNode: readonly number[]): Pick<Model<W, FailoverAction>, "invariants" | "eventually"> {
  /** For the goal, a hung node's coordinators are stopped as a crashed node's are (they take no step; a resume lets them go on). */
  const endView = (w: W): V => {
    const v = viewOf(w);
    return w.nodes.some((n) => n.hung === true) ? { ...v, coords: v.coords.map((c, t) => (w.nodes[txNode[t]!]!.hung === true ? { ...c, alive: false } : c)) } : v;
  };
  return {
    invariants: {
      ...Object.fromEntries(Object.entries(shards.invariants).map(([name, p]) => [name, (w: W) => p(viewOf(w))])),
      /** At most one survivor resolves the dying node at a time (the claim's CAS). */
      one_survivor_resolves: (w) => w.takeovers.filter(resolving).length <= 1,
    },
    eventually: {
      /** Once faults stop, every transaction, the dead node's included, can still finish. */
      every_transaction_ends: { goal: (w: W) => shards.ends.goal(endView(w)), allowed: (a: FailoverAction) => a.k !== "hang" && (shards.ends.allowed?.(a) ?? true) },
    },
  };
}

/** How the shards, the txlog and the timers answer a flight, as spec/world/world.ts's answers (the ghost hooks on the merged view). */
function answerer(sc: Scenario, env: ShardEnv<any>, ghost: GhostSpec<any, V>, viewOf: (w: W) => V) {
  const withShard = (w: W, s: number, sh: unknown): W => ({ ...w, shards: w.shards.map((x, i) => (i === s ? sh : x)) });
  const withGhost = (w: W, v: V): W => (v.ghost === w.ghost ? w : { ...w, ghost: v.ghost });
  const dropOrphansOn = (w: W, s: number, conn: string): W => ({
    ...w,
    flights: w.flights.filter((f) => !(f.orphan && env.owns(f.fx) && "shard" in f.fx && f.fx.shard === sc.shards[s] && env.connOf?.(f) === conn)),
  });

  /** Every way the world may answer flight `f` (`w` no longer holds it). */
  function answers(w: W, f: Flight): Answer<W>[] {
    const fx = f.fx;
    if (env.owns(fx)) {
      const s = sc.shards.indexOf((fx as { shard: string }).shard);
      const before = w.shards[s]!;
      return env.answers(before, f, w.budget).map((o) => {
        let nw = o.ran !== null && ghost.ran ? withGhost(w, ghost.ran(viewOf(withShard(w, s, o.ran)), f, s, before, o.ran)) : w;
        nw = withShard(nw, s, o.shard);
        if (o.crashes) nw = { ...nw, budget: { ...nw.budget, shardCrash: nw.budget.shardCrash - 1 } };
        if (o.dropOrphansOn !== undefined) nw = dropOrphansOn(nw, s, o.dropOrphansOn);
        return { world: nw, result: o.result, fault: o.crashes, label: o.label };
      });
    }
    if (isLogEffect(fx)) return logAnswers(w as unknown as World, fx) as unknown as Answer<W>[];
    if (fx.t === "timer") {
      const nw = ghost.timer ? withGhost(w, ghost.timer(viewOf(w), fx.id)) : w;
      return [{ world: nw, result: { t: "timeout", id: fx.id }, fault: false, label: answerLabel({ t: "timeout", id: fx.id }) }];
    }
    throw new Error(`failover: no environment answers ${fx.t}`);
  }

  let answersFor: { w: W; byFlight: Answer<W>[][] } | null = null;
  const answersOf = (w: W, i: number): Answer<W>[] => {
    if (answersFor?.w !== w) answersFor = { w, byFlight: [] };
    return (answersFor.byFlight[i] ??= answers({ ...w, flights: w.flights.filter((_, j) => j !== i) }, w.flights[i]!));
  };

  return { withShard, withGhost, dropOrphansOn, answersOf };
}

/** Every node up with its lease, nothing started. */
function initial(cfg: FailoverConfig, env: ShardEnv<any>, coord: Role<any, any, Effect>, resolvers: readonly Role<ProcessResolverState, any, Effect>[], takeovers: readonly Role<TakeoverState, any, any>[], ghost: unknown): W {
  return {
    nodes: cfg.layout.nodes.map(() => ({ up: true, inc: 0, lease: true })),
    coords: cfg.scenario.txs.map(() => ({ st: coord.start(), alive: true })),
    resolvers: resolvers.map((r) => r.start()),
    takeovers: takeovers.map((x) => x.start()),
    shards: cfg.scenario.balances.map((b) => env.init(b)),
    log: txlog.emptyTxlog,
    flights: [],
    told: cfg.scenario.txs.map(() => null),
    ghost,
    budget: cfg.budget,
  };
}

/** The shards' environment and every role of a failover model, its mutants' variants included. */
function rolesOf(cfg: FailoverConfig) {
  const sc = cfg.scenario;
  const lay = cfg.layout;
  const shards = sc.txs.some((tx) => protocolNamed(tx.protocol ?? DEFAULT_PROTOCOL).needs === "local") ? everyProtocolShards(sc, cfg.budget) : xaFamilyShards(sc);
  const own = resolverRole(sc, shards.parts);
  // Mutant spec-presumed-abort: the survivor's speculative part takes a branch it knows nothing of for never applied.
  const survivors = cfg.mutant === "spec-presumed-abort" ? resolverRole(sc, shards.parts, (ss) => speculativeResolver({ shards: ss, mutant: "rollback-without-tombstone" })) : own;
  return {
    shards,
    coord: serverCoordinator(SETTINGS),
    resolvers: lay.resolvers.map((r) => (r.takeover === null ? own : cfg.mutant === "takeover-unfenced" ? adoptEpoch(own) : survivors)),
    takeovers: lay.takeovers.map((x) => takeover(lay.nodes[x.host]!, lay.nodes[lay.dying]!, cfg.mutant === "ignore-cas" ? "ignore-cas" : undefined)),
    xaAt: shards.parts.findIndex((p) => p.needs === "xa"),
    speculativeAt: shards.parts.findIndex((p) => p.needs === "local"),
    txIndex: (id: string): number => sc.txs.findIndex((t) => t.id === id),
    timerOff: (id: string): boolean => !cfg.timeouts && shards.timers.includes(id),
  };
}

export function failoverModel(cfg: FailoverConfig): Model<W, FailoverAction> {
  const sc = cfg.scenario;
  const lay = cfg.layout;
  const L = layoutOf(sc, lay);
  const key = flightKeys();
  const { shards, coord, resolvers, takeovers, xaAt, speculativeAt, txIndex, timerOff } = rolesOf(cfg);
  const { env, ghost } = shards;
  const dying = lay.dying;
  const collapse = collapser<W>(["nodes", "coords", "resolvers", "takeovers", "shards", "log", "flights", "told", "ghost", "budget"]);

  const viewOf = viewer(lay.nodes);
  const { withShard, withGhost, dropOrphansOn, answersOf } = answerer(sc, env, ghost, viewOf);
  const observe = (w0: W): W => {
    const w = dropFenced(w0);
    return ghost.observe ? withGhost(w, ghost.observe(viewOf(w))) : w;
  };
  const faulty = (w: W): W => (ghost.fault ? withGhost(w, ghost.fault(viewOf(w))) : w);

  const launch = (w: W, owner: number, effects: readonly Effect[]): W =>
    launchAll(w, owner, effects, { ns: L.nsOf(owner), inc: w.nodes[L.hostOf(owner)]!.inc, txIndex, timerOff, key });

  /** What owner `owner` hears of `r`: in its namespace (the wrong-rule mutant's lens for the survivor's resolver). */
  const heard = (owner: number, r: Result): Result => {
    const ns = L.nsOf(owner);
    if (ns === null) return r;
    const o = ownerKind(owner);
    const lens = cfg.mutant === "wrong-rule" && o.k === "resolver" && lay.resolvers[o.r]!.takeover !== null ? stagingAsAbort : undefined;
    // Mutant namespace-leak: a resolver's scans of the shards show every node's branches (XA RECOVER, the undo rows).
    return fromNamespace(cfg.mutant === "namespace-leak" && o.k === "resolver" ? { ...ns, owns: () => true } : ns, r, lens);
  };

  /** Takeover role `x` stopped resolving: its resolver over the dying node stops as a crashed one does. */
  function stopIfReleased(w: W, x: number, before: TakeoverState): W {
    if (!resolving(before) || resolving(w.takeovers[x]!)) return w;
    const r = lay.resolvers.findIndex((s) => s.takeover === x);
    return { ...w, resolvers: w.resolvers.map((s, i) => (i === r ? resolvers[r]!.start() : s)), flights: orphanOwners(w.flights, (o) => o === resolverOwner(r), key) };
  }

  function stepTakeover(w: W, x: number, input: TakeoverInput | Result): W {
    const before = w.takeovers[x]!;
    const out = takeovers[x]!.step(before, input as TakeoverInput);
    const nw = launch({ ...w, takeovers: w.takeovers.map((s, i) => (i === x ? out.st : s)) }, takeoverOwner(x), out.effects);
    return stopIfReleased(nw, x, before);
  }

  /** Deliver a result to its role and launch what the role asks next. */
  function deliver(w: W, owner: number, result: Result): W {
    const o = ownerKind(owner);
    if (o.k === "takeover") return stepTakeover(w, o.x, result);
    if (o.k === "resolver") {
      const out = resolvers[o.r]!.step(w.resolvers[o.r]!, heard(owner, result));
      return launch({ ...w, resolvers: w.resolvers.map((s, i) => (i === o.r ? out.st : s)) }, owner, out.effects);
    }
    const slot = w.coords[o.t]!;
    if (!slot.alive) return w;
    const out = coord.step(slot.st, heard(owner, result) as never);
    return launch({ ...w, coords: w.coords.map((c, i) => (i === o.t ? { ...c, st: out.st } : c)) }, owner, out.effects);
  }

  const isActive = (w: W, t: number): boolean => w.coords[t]!.alive && w.coords[t]!.st.phase !== "idle" && w.coords[t]!.st.phase !== "done";
  /** Resolver slot r's scan: the transactions of its namespace live on its host (none for a survivor's resolver of another node). */
  const scanOf = (w: W, r: number) => {
    const slot = lay.resolvers[r]!;
    const active = slot.takeover !== null ? [] : sc.txs.flatMap((tx, t) => (lay.txNode[t] === slot.ns && isActive(w, t) ? [tx.id] : []));
    return { t: "scan", active } as const;
  };
  const requestOf = (w: W, t: number) => {
    const tx = sc.txs[t]!;
    const ownR = lay.resolvers.findIndex((s) => s.takeover === null && s.host === lay.txNode[t]);
    return { t: "request", tx: tx.id, branches: tx.branches, epoch: w.resolvers[ownR]!.epoch!, ...(tx.protocol !== undefined ? { protocol: tx.protocol } : {}) } as const;
  };
  const ownEpoch = (w: W, t: number): number | null => w.resolvers[lay.resolvers.findIndex((s) => s.takeover === null && s.host === lay.txNode[t])]?.epoch ?? null;

  /** spec/server/model.ts's scan reduction (every part's rule), per resolver slot and namespace. */
  function scanIsNoop(w: W, r: number): boolean {
    const res = w.resolvers[r]!;
    if (res.epoch === null || res.lastScan !== "complete" || !resolverQuiet(res.parts[xaAt] as XaResolverState)) return false;
    if (speculativeAt >= 0 && (res.parts[speculativeAt] as SpeculativeResolverState).suspects.length > 0) return false;
    const slot = lay.resolvers[r]!;
    const active = scanOf(w, r).active;
    const node = lay.nodes[slot.ns]!;
    const localOf = shards.local;
    const leftovers = (t: number): boolean => {
      const id = sc.txs[t]!.id;
      return (
        w.flights.some((f) => f.owner === t) ||
        sc.shards.some((s, i) => shards.xa(w.shards[i]).branches.some((b) => b.xid === branchXid(id, s))) ||
        txlog.get(w.log, `${node}/tx/${id}`) !== undefined ||
        (localOf !== null && (txlog.get(w.log, `${node}/${speculativeKey(id)}`) !== undefined || w.shards.some((sh) => localOf(sh).undo.some((u) => u.tx === id && u.state === "undo"))))
      );
    };
    return sc.txs.every((tx, t) => lay.txNode[t] !== slot.ns || (!(w.coords[t]!.alive && w.coords[t]!.st.phase === "idle") && (active.includes(tx.id) || !leftovers(t))));
  }

  /** Node n runs: up and not hung. */
  const runs = (w: W, n: number): boolean => w.nodes[n]!.up && w.nodes[n]!.hung !== true;
  /** A hung node's flights not yet orphaned stay unsent (it is frozen before its sockets). */
  const frozen = (w: W, f: Flight): boolean => !f.orphan && w.nodes[L.hostOf(f.owner)]!.hung === true;
  /** The dying node's sessions on shard `s` holding a branch of its own (PREPARED: `prepared`; else any other state). */
  const dyingSessions = (w: W, s: number, prepared: boolean): string[] =>
    shards.xa(w.shards[s]).branches.flatMap((b) => (b.owner !== null && L.nodeOfConn(b.owner) === dying && (b.state === "PREPARED") === prepared ? [b.owner] : []));

  /**
   * Rule 5 (./takeover.ts detachBeforeSettle): survivor x's host kills each session of the dying node that holds a
   * prepared branch (KILL, then the wait until it is gone: one step), only while it owns the node and the fence (the
   * epoch its resolver took of the node) is durable. Mutant `no-detach`: never.
   */
  function* detaches(w: W): Iterable<FailoverAction> {
    if (cfg.hang !== true || cfg.mutant === "no-detach") return;
    for (let x = 0; x < lay.takeovers.length; x++) {
      if (!runs(w, lay.takeovers[x]!.host)) continue;
      const r = lay.resolvers.findIndex((slot) => slot.takeover === x);
      if (!detachBeforeSettle(w.takeovers[x], w.resolvers[r]!.epoch ?? null)) continue;
      for (let s = 0; s < w.shards.length; s++) {
        if (!shards.xa(w.shards[s]).up) continue;
        for (const conn of dyingSessions(w, s, true)) yield { k: "detach", x, s, conn };
      }
    }
  }

  function* actions(w: W): Iterable<FailoverAction> {
    for (let t = 0; t < w.coords.length; t++) {
      const c = w.coords[t]!;
      if (runs(w, lay.txNode[t]!) && c.alive && c.st.phase === "idle" && ownEpoch(w, t) !== null) yield { k: "request", tx: t };
    }
    for (let i = 0; i < w.flights.length; i++) {
      if (i > 0 && key(w.flights[i - 1]!) === key(w.flights[i]!)) continue;
      if (frozen(w, w.flights[i]!)) continue;
      const outs = answersOf(w, i);
      for (let o = 0; o < outs.length; o++) yield { k: "complete", i, o, fault: outs[o]!.fault, label: outs[o]!.label };
    }
    for (let r = 0; r < lay.resolvers.length; r++) {
      const slot = lay.resolvers[r]!;
      const running = slot.takeover === null || resolving(w.takeovers[slot.takeover]!);
      if (runs(w, slot.host) && running && w.resolvers[r]!.phase === "idle" && !scanIsNoop(w, r)) yield { k: "scan", r };
    }
    for (let x = 0; x < lay.takeovers.length; x++) {
      if (runs(w, lay.takeovers[x]!.host) && watchMatters(takeovers[x]!, w.takeovers[x]!, observation(lay, w))) yield { k: "watch", x };
    }
    const d = w.nodes[dying]!;
    const hung = d.hung === true;
    // A hang only where every branch the node's sessions hold is prepared: an unprepared one of a hung session ends by
    // the shard's wait_timeout, which the model leaves out (rule 5 is about prepared branches).
    if (cfg.hang === true) {
      if (d.up && !hung && w.budget.crash > 0 && w.shards.every((_, s) => dyingSessions(w, s, false).length === 0)) yield { k: "hang" };
      if (hung && cfg.restart) yield { k: "resume" };
    } else if (d.up && w.budget.crash > 0) yield { k: "crash" };
    if (!d.up && cfg.restart) yield { k: "restart" };
    if (d.lease && (!d.up || hung || cfg.mutant === "lease-early")) yield { k: "expire" };
    if (d.up && !hung && !d.lease) yield { k: "renew" };
    yield* detaches(w);
    yield* shardFaults(w);
  }

  /** The shards' faults; a dead connection is noticed per node (its incarnation names it). */
  function* shardFaults(w: W): Iterable<FailoverAction> {
    for (let s = 0; s < w.shards.length; s++) {
      for (let n = 0; n < w.nodes.length; n++) {
        for (const a of env.faults(w.shards[s]!, s, w.budget, w.nodes[n]!)) {
          if (a.k === "notice" ? L.nodeOfConn(a.conn) === n : n === 0) yield a as FailoverAction;
        }
      }
    }
  }

  /** The dying node crashes: its coordinators and resolvers lose their volatile state; what they sent may still land. */
  function crash(w: W): W {
    const hosted = (owner: number): boolean => L.hostOf(owner) === dying;
    return faulty({
      ...w,
      nodes: w.nodes.map((n, i) => (i === dying ? { ...n, up: false } : n)),
      coords: w.coords.map((c, t) => (lay.txNode[t] === dying ? { ...c, alive: false } : c)),
      resolvers: w.resolvers.map((s, r) => (lay.resolvers[r]!.host === dying ? resolvers[r]!.start() : s)),
      takeovers: w.takeovers.map((s, x) => (lay.takeovers[x]!.host === dying ? takeovers[x]!.start() : s)),
      flights: orphanOwners(w.flights, hosted, key),
      budget: { ...w.budget, crash: w.budget.crash - 1 },
    });
  }

  /**
   * The dying node's lease is alive again: every survivor sees it at once (the watch event is modelled as reaching
   * them before the node's first step), so a resolver they ran over it stops now; what it had in flight may still land.
   * Without this, a survivor's resolver and the node's own could fence each other forever (each fenced one takes a
   * newer epoch), an unbounded state space; the runtime bounds it by the watch's latency.
   */
  const leaseBack = (w: W): W =>
    lay.takeovers.reduce((acc, _, x) => (watchMatters(takeovers[x]!, acc.takeovers[x]!, observation(lay, acc)) ? stepTakeover(acc, x, observation(lay, acc)) : acc), w);

  const setDying = (w: W, n: Partial<W["nodes"][number]>): W => ({ ...w, nodes: w.nodes.map((x, i) => (i === dying ? { ...x, ...n } : x)) });

  function next(w: W, a: FailoverAction): W {
    switch (a.k) {
      case "request": {
        const out = coord.step(w.coords[a.tx]!.st, requestOf(w, a.tx));
        return observe(launch({ ...w, coords: w.coords.map((c, i) => (i === a.tx ? { ...c, st: out.st } : c)) }, a.tx, out.effects));
      }
      case "complete": {
        const f = w.flights[a.i]!;
        const out = answersOf(w, a.i)[a.o]!;
        let nw = out.fault ? faulty(out.world) : out.world;
        if (out.result !== null && !f.orphan) nw = deliver(nw, f.owner, out.result);
        return observe(nw);
      }
      case "scan": {
        const out = resolvers[a.r]!.step(w.resolvers[a.r]!, scanOf(w, a.r));
        return launch({ ...w, resolvers: w.resolvers.map((s, i) => (i === a.r ? out.st : s)) }, resolverOwner(a.r), out.effects);
      }
      case "watch":
        return observe(stepTakeover(w, a.x, observation(lay, w)));
      case "crash":
        return crash(w);
      case "restart":
        return observe(leaseBack(setDying(w, { up: true, inc: w.nodes[dying]!.inc + 1, lease: true })));
      case "expire":
        return setDying(w, { lease: false });
      case "renew":
        return observe(leaseBack(setDying(w, { lease: true })));
      case "hang":
        return faulty({ ...setDying(w, { hung: true }), budget: { ...w.budget, crash: w.budget.crash - 1 } });
      case "resume":
        return observe(setDying(w, { hung: false }));
      case "detach": {
        const before = w.shards[a.s]!;
        const f: Flight = { owner: takeoverOwner(a.x), fx: { t: "xa.kill", shard: sc.shards[a.s]!, conn: a.conn }, orphan: false, inc: w.nodes[lay.takeovers[a.x]!.host]!.inc };
        const out = env.answers(before, f, w.budget)[0]!;
        let nw = out.ran !== null && ghost.ran ? withGhost(w, ghost.ran(viewOf(withShard(w, a.s, out.ran)), f, a.s, before, out.ran)) : w;
        nw = withShard(nw, a.s, out.shard);
        return observe(dropOrphansOn(nw, a.s, a.conn));
      }
      case "shardCrash":
        return observe(faulty({ ...withShard(w, a.s, env.fault(w.shards[a.s]!, a)), budget: { ...w.budget, shardCrash: w.budget.shardCrash - 1 } }));
      case "shardRestart":
        return withShard(w, a.s, env.fault(w.shards[a.s]!, a));
      case "notice":
        return observe(dropOrphansOn(withShard(w, a.s, env.fault(w.shards[a.s]!, a)), a.s, a.conn));
    }
  }

  return {
    name: "failover",
    init: () => [initial(cfg, env, coord, resolvers, takeovers, ghost.init(sc))],
    actions,
    next,
    ...properties(shards, viewOf, lay.txNode),
    encode: collapse.encode,
    decode: collapse.decode,
    localEncoding: true,
    describe: failoverDescriber(sc, lay, key, { coord, resolvers, takeovers, heard, requestOf, scanOf, observation: (w) => observation(lay, w), resultOf: (w, a) => answersOf(w, a.i)[a.o]!.result }),
    view: (w) => w,
    actors: () => failoverActors(sc, lay),
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios and the factory

/**
 * Node n2 may die and runs t1 (by `protocol`); n1 survives, and with `survivorTx` runs t2 of its own (by
 * `survivorProtocol`, `protocol` when absent; the other way, on other accounts) while it takes n2 over: its
 * coordinator and its own process resolver beside the one it runs over n2's namespace; with `survivors` 2, n3 (no
 * transaction of its own) also watches n2; with 0, nobody takes n2 over (today's single coordinator: 2PC blocks while
 * it is down).
 */
export function failoverSetup(protocol: string, survivorTx: boolean, survivors: number, survivorProtocol: string = protocol, survivorBranches = 2): { scenario: Scenario; layout: FailoverLayout } {
  const t2 = survivorBranches === 1 ? { id: "t2", protocol: ONE_PHASE.name, branches: [{ shard: "s2", ops: [{ account: 4, delta: -20 }, { account: 2, delta: 20 }] }] } : transfer("t2", survivorProtocol, ["s2", 4], ["s1", 3], 20);
  const txs = [transfer("t1", protocol, ["s1", 1], ["s2", 2], 30), ...(survivorTx ? [t2] : [])];
  const nodes = ["n1", "n2", ...(survivors === 2 ? ["n3"] : [])];
  const hosts = survivors === 0 ? [] : nodes.map((_, n) => n).filter((n) => n !== 1);
  return {
    scenario: { shards: ["s1", "s2"], balances: [[[1, 100], [3, 100]], [[2, 100], [4, 100]]], txs },
    layout: {
      nodes,
      dying: 1,
      txNode: txs.map((_, t) => (t === 0 ? 1 : 0)),
      resolvers: [
        ...(survivorTx ? [{ host: 0, ns: 0, takeover: null }] : []),
        { host: 1, ns: 1, takeover: null },
        ...hosts.map((host, x) => ({ host, ns: 1, takeover: x })),
      ],
      takeovers: hosts.map((host) => ({ host })),
    },
  };
}

export const failoverFactory: ModelFactory = {
  name: "failover",
  description:
    "Several coordinator nodes over one txlog and the same shards: each node's server coordinator and process resolver in its own namespace; node n2 may crash (restart=false: for good), its lease expires, a survivor claims it by CAS and resolves its namespace (2PC, parallel commit, the speculative path, each by its own rule) under a new epoch of n2's",
  params: { protocol: DEFAULT_PROTOCOL, survivorTx: false, survivorProtocol: "same", survivorBranches: 2, survivors: 1, crash: 1, shardCrash: 0, logFault: 0, restart: false, timeouts: true, hang: false },
  mutants: [...failoverMutants],
  build(params, mutant) {
    const num = (k: string): number => wholeParam("failover", params, k);
    const named = (k: string, p: string): string => {
      if (!(PROTOCOLS as readonly string[]).includes(p)) throw new Error(`failover: parameter ${k} must be a registered protocol: ${PROTOCOLS.join(", ")} (got ${p})`);
      return p;
    };
    const protocol = named("protocol", String(params.protocol));
    const survivorProtocol = params.survivorProtocol === undefined || params.survivorProtocol === "same" ? protocol : named("survivorProtocol", String(params.survivorProtocol));
    const survivors = num("survivors");
    if (survivors < 0 || survivors > 2) throw new Error(`failover: parameter survivors must be 0, 1 or 2 (got ${survivors})`);
    const hang = params.hang === true;
    if (hang && [protocol, survivorProtocol].some((p) => protocolNamed(p).needs === "local")) throw new Error("failover: parameter hang is modelled on XA shards only (the XA family's protocols)");
    const { scenario, layout } = failoverSetup(protocol, params.survivorTx === true, survivors, survivorProtocol, num("survivorBranches"));
    return failoverModel({
      scenario,
      layout,
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      restart: params.restart === true,
      timeouts: params.timeouts === true,
      hang,
      mutant: failoverMutants.find((m) => m === mutant),
    });
  },
};
