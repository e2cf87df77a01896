/**
 * The server's composition as models: exactly the roles the engine
 * (runtime/engine.ts) instantiates, from the same modules, in the world every
 * protocol shares (spec/world/world.ts).
 *
 *   server  the server coordinator (./coordinator.ts: the request's protocol,
 *           one-phase path for one branch) for every transaction and the
 *           process resolver over every registered resolver part
 *           (./resolver.ts), on shards that run both XA and local
 *           transactions (spec/env/both-shards.ts); transactions of
 *           different protocols side by side, each keeping its own
 *           protocol's properties (./properties.ts), under crashes.
 *   mixed   the XA family alone: the XA resolver under 2PC coordinators
 *           (coordinators=2pc: what the 2PC model checks, with its exact
 *           size) or under a 2PC and a parallel-commit transaction side by
 *           side through the server coordinator (coordinators=mixed).
 *
 * docs/architecture.md, "The server as a model".
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import { speculativeKey } from "../kernel/effects.ts";
import { bothShards, type BothShard } from "../env/both-shards.ts";
import { branchXid } from "../env/executor.ts";
import * as txlog from "../env/txlog.ts";
import { world } from "../world/world.ts";
import type { Action, Budget, GhostSpec, Scenario, World } from "../world/types.ts";
import { scenario as xaScenario, VOTE_TIMER, wholeParam, xaGhost, type XaWorld } from "../protocols/xa/world.ts";
import { resolverQuiet, type ResolverMutant, type ResolverState as XaResolverState } from "../protocols/xa/resolver.ts";
import { xaModel } from "../protocols/xa/model.ts";
import { APPLY_TIMER } from "../protocols/speculative/coordinator.ts";
import { speculativeGhost } from "../protocols/speculative/model.ts";
import type { ResolverState as SpeculativeResolverState } from "../protocols/speculative/resolver.ts";
import { implicitGhost } from "../protocols/parallel/model.ts";
import { parallelEventually, parallelLeadsTo } from "../protocols/parallel/properties.ts";
import { twopcModel } from "../protocols/twopc/model.ts";
import { defaultCoordinatorOptions } from "../protocols/twopc/coordinator.ts";
import { DEFAULT_PROTOCOL, RESOLVER_PARTS } from "../protocols/registry.ts";
import { serverCoordinator, type ServerCoordinatorState } from "./coordinator.ts";
import { processResolver, processResolverMutants, type ProcessResolverMutant, type ProcessResolverState } from "./resolver.ts";
import { serverEventually, serverInvariants, xaFamilyInvariants, type ServerGhost } from "./properties.ts";
import { XA_READ_BACK, xaReadBack } from "../protocols/xa/readback.ts";
import { readBackRules, REGISTERED_RULES, type ReadBackRules } from "./readback.ts";
import { idempotentAnswer, readBackSound } from "./readback-sound.ts";
import { withIdempotency, type ClaimMutant } from "./idempotency.ts";

/** The coordinator settings every model runs with: two attempts make a retry loop a cycle (timers fire at any time). */
const SETTINGS = { voteTimeoutMs: defaultCoordinatorOptions.voteTimeoutMs, retryDelayMs: defaultCoordinatorOptions.retryDelayMs, attemptsMax: 2 };

const protocolOfTx = (sc: Scenario) => (t: number): string => sc.txs[t]!.protocol ?? DEFAULT_PROTOCOL;

// ---------------------------------------------------------------------------------------------
// mixed: the XA family under the XA resolver

export type Coordinators = "2pc" | "mixed";

/** The XA resolver's mutants that touch what a 2PC coordinator leaves behind (no-fence and missing-is-commit act on STAGING only). */
export const mixedResolverMutants = ["ignore-active", "keep-records", "missing-is-commit"] as const satisfies readonly ResolverMutant[];

export interface MixedConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  readonly restart: boolean;
  readonly timeouts: boolean;
  readonly coordinators: Coordinators;
  readonly resolverMutant?: ResolverMutant;
}

/** coordinators=mixed: transactions alternate, the first by 2PC, the second by parallel commit (so they are no longer interchangeable). */
const alternate = ({ interchangeable: _, ...sc }: Scenario): Scenario => ({ ...sc, txs: sc.txs.map((tx, t) => ({ ...tx, protocol: t % 2 === 1 ? "parallel" : "2pc" })) });

export function mixedModel(cfg: MixedConfig): Model<any, Action> {
  if (cfg.coordinators === "2pc") return twopcModel({ ...cfg, resolverMutant: cfg.resolverMutant as never });
  type W = XaWorld<ServerCoordinatorState, XaResolverState>;
  const sc = alternate(cfg.scenario);
  return xaModel({
    name: "mixed",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    coordinator: serverCoordinator(SETTINGS),
    resolverMutant: cfg.resolverMutant,
    // Per transaction, IC ever held (never for a 2PC transaction, which writes no STAGING).
    ghost: implicitGhost<W>(sc),
    invariants: (s) => xaFamilyInvariants(s, protocolOfTx(s)),
    // AC5 as parallel commit states it on the whole world: it implies 2PC's (no record left but the epoch).
    eventually: (s) => parallelEventually(s) as unknown as Record<string, { goal(w: W): boolean; allowed?(a: Action): boolean }>,
    leadsTo: (s, fair) => parallelLeadsTo(s, fair as never) as never,
  });
}

export const mixedFactory: ModelFactory = {
  name: "mixed",
  description:
    "The XA family under one resolver: the XA resolver under 2PC coordinators (coordinators=2pc, the 2PC model) or under a 2PC and a parallel transaction side by side through the server coordinator (coordinators=mixed)",
  params: { scenario: "transfer", coordinators: "2pc", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true },
  mutants: [...mixedResolverMutants],
  build(params, mutant) {
    const num = (k: string): number => wholeParam("mixed", params, k);
    const coordinators = String(params.coordinators);
    if (coordinators !== "2pc" && coordinators !== "mixed") throw new Error(`mixed: parameter coordinators must be 2pc or mixed (got ${coordinators})`);
    return mixedModel({
      scenario: xaScenario(String(params.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      restart: params.restart === true,
      timeouts: params.timeouts === true,
      coordinators,
      resolverMutant: mixedResolverMutants.find((m) => m === mutant),
    });
  },
};

// ---------------------------------------------------------------------------------------------
// server: every protocol, the server's own roles

export type ServerWorld = World<ServerCoordinatorState, ProcessResolverState, BothShard, ServerGhost>;

const xaView = (w: ServerWorld): World<any, any, any, any> => ({ ...w, shards: w.shards.map((sh) => sh.xa) });
const localView = (w: ServerWorld): World<any, any, any, any> => ({ ...w, shards: w.shards.map((sh) => sh.local) });

/** Both families' ghost variables, each kept by its own ghost on its part of the shards. */
function serverGhost(sc: Scenario): GhostSpec<ServerGhost, ServerWorld> {
  const x = xaGhost<XaWorld<any, any>>(sc, implicitGhost(sc));
  const l = speculativeGhost<World<any, any, any, any>>(sc);
  const back = (w: ServerWorld, v: World<any, any, any, any>): ServerWorld => (v.ghost === w.ghost ? w : { ...w, ghost: v.ghost as ServerGhost });
  return {
    init: (s) => ({ ...x.init(s), ...l.init(s) }),
    observe: (w) => {
      const a = back(w, x.observe!(xaView(w) as XaWorld<any, any>));
      return back(a, l.observe!(localView(a)));
    },
    ran: (w, f, s, before, after) => (f.fx.t.startsWith("local.") ? back(w, l.ran!(localView(w), f, s, before.local, after.local)) : w),
    fault: (w) => back(w, x.fault!(xaView(w) as XaWorld<any, any>)),
    timer: (w, id) => back(w, x.timer!(xaView(w) as XaWorld<any, any>, id)),
  };
}

/**
 * The scan reduction of the composition: a scan is a no-op when every part's
 * would be (the XA resolver's rule, ../protocols/xa/world.ts; the speculative
 * resolver's, ../protocols/speculative/model.ts) and the last scan was
 * complete (a no-op scan then ends in the state it started in, verdict
 * included).
 */
function serverScanIsNoop(sc: Scenario): (w: ServerWorld) => boolean {
  /** A part's state (undefined when the process runs without it: a mutant). */
  const partOf = <S>(w: ServerWorld, name: string): S | undefined => w.resolver.parts[RESOLVER_PARTS.findIndex((p) => p.name === name)] as S | undefined;
  const live = (w: ServerWorld, t: number): boolean => {
    const c = w.coords[t]!;
    return c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  };
  const leftovers = (w: ServerWorld, t: number): boolean => {
    const id = sc.txs[t]!.id;
    return (
      w.flights.some((f) => f.owner === t) ||
      sc.shards.some((s, i) => w.shards[i]!.xa.branches.some((b) => b.xid === branchXid(id, s))) ||
      txlog.get(w.log, `tx/${id}`) !== undefined ||
      txlog.get(w.log, speculativeKey(id)) !== undefined ||
      w.shards.some((sh) => sh.local.undo.some((r) => r.tx === id && r.state === "undo"))
    );
  };
  return (w) => {
    if (w.resolver.epoch === null || w.resolver.lastScan !== "complete") return false;
    const xa = partOf<XaResolverState>(w, "xa");
    const speculative = partOf<SpeculativeResolverState>(w, "speculative");
    if ((xa !== undefined && !resolverQuiet(xa)) || (speculative !== undefined && speculative.suspects.length > 0)) return false;
    return w.coords.every((c, t) => c.st.phase !== "idle" && (live(w, t) || !leftovers(w, t)));
  };
}

/**
 * The read-back rules' mutants (./readback-sound.ts catches them): the XA
 * rule reading a STAGING record as a commit; the composition reading
 * "nothing found" of a speculation as aborted; concluding by hand taking
 * the operator's direction as the outcome (./conclude.ts); settling
 * "nothing found" as aborted without the settle fence (./readback.ts).
 */
export const readBackMutants = ["readback-staging-is-commit", "settle-nothing-is-aborted", "conclude-as-asked", "settle-unfenced"] as const;
export type ReadBackMutant = (typeof readBackMutants)[number];

const rulesOf = (m: ReadBackMutant | undefined): ReadBackRules =>
  m === "readback-staging-is-commit" ? readBackRules((p) => (p.readBack === XA_READ_BACK ? xaReadBack("staging-is-commit") : undefined))
  : m === "settle-nothing-is-aborted" ? readBackRules(undefined, "nothing-is-aborted")
  : m === "settle-unfenced" ? readBackRules(undefined, "unfenced")
  : REGISTERED_RULES;

/** The idempotency claim's mutants (./idempotency.ts claimRole; idempotent_answer catches them). */
export const claimMutants = ["store-before-outcome"] as const satisfies readonly ClaimMutant[];

export interface ServerConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  readonly timeouts: boolean;
  readonly mutant?: ProcessResolverMutant | ReadBackMutant | ClaimMutant;
  /** Also check settle_sound_in_flight (./readback-sound.ts); it adds no state. */
  readonly settleInFlight?: boolean;
  /**
   * Every request carries an idempotency key: the claim in front of the coordinator (./idempotency.ts
   * withIdempotency), checked by idempotent_answer. It adds states (the claim and store writes): off in the
   * entries that keep the server model's counts.
   */
  readonly idempotency?: boolean;
}

/** A goal that holds of the world without the claim records (they stay until their retention ends, as the runtime's do). */
const withoutClaims = <G extends { goal(w: any): boolean }>(g: G): G => ({
  ...g,
  goal: (w: ServerWorld) => g.goal({ ...w, log: { entries: w.log.entries.filter((e) => e.value.kind !== "claim") } }),
});

export function serverModel(cfg: ServerConfig): Model<ServerWorld, Action> {
  const sc = cfg.scenario;
  const claimMutant = claimMutants.find((m) => m === cfg.mutant);
  // With idempotency the coordinator's state is the claim's around it (typed as the plain one: the properties read phases only).
  const coordinator: ReturnType<typeof serverCoordinator> = cfg.idempotency === true ? (withIdempotency(serverCoordinator(SETTINGS), () => "fingerprint", claimMutant) as never) : serverCoordinator(SETTINGS);
  const resolverMutant = processResolverMutants.find((m) => m === cfg.mutant);
  const rules = rulesOf(readBackMutants.find((m) => m === cfg.mutant));
  return world({
    name: "server",
    scenario: sc,
    budget: cfg.budget,
    restart: true,
    timeouts: cfg.timeouts,
    timeoutTimers: [VOTE_TIMER, APPLY_TIMER],
    coordinator,
    resolver: processResolver({ shards: sc.shards, parts: RESOLVER_PARTS, mutant: resolverMutant }),
    env: bothShards,
    ghost: serverGhost(sc),
    scanIsNoop: serverScanIsNoop(sc),
    invariants: (s) => ({
      ...serverInvariants(s, cfg.budget, protocolOfTx(s)),
      ...readBackSound(s, rules, coordinator.done, cfg.settleInFlight === true, cfg.mutant === "conclude-as-asked" ? "conclude-as-asked" : undefined),
      ...(cfg.idempotency === true ? idempotentAnswer(s, rules, coordinator.done) : {}),
    }),
    eventually: (s) => (cfg.idempotency === true ? Object.fromEntries(Object.entries(serverEventually(s, protocolOfTx(s))).map(([k, g]) => [k, withoutClaims(g)])) : serverEventually(s, protocolOfTx(s))),
  });
}

const transfer = (id: string, protocol: string, from: [string, number], to: [string, number], cents: number) => ({
  id,
  protocol,
  branches: [
    { shard: from[0], ops: [{ account: from[1], delta: -cents }] },
    { shard: to[0], ops: [{ account: to[1], delta: cents }] },
  ],
});

/**
 * The server model's configurations: 2 shards; each protocol moves money
 * between accounts of its own (1 and 2 for the XA family, 11 and 12 for the
 * speculative path: see spec/env/both-shards.ts).
 */
export function serverScenario(name: string): Scenario {
  const shards = ["s1", "s2"];
  const balances = [
    [
      [1, 100],
      [3, 0],
      [11, 100],
    ],
    [
      [2, 100],
      [12, 100],
    ],
  ] as const;
  const speculation = transfer("t2", "speculative", ["s1", 11], ["s2", 12], 30);
  switch (name) {
    case "2pc+speculative":
      return { shards, balances, txs: [transfer("t1", "2pc", ["s1", 1], ["s2", 2], 30), speculation] };
    case "parallel+speculative":
      return { shards, balances, txs: [transfer("t1", "parallel", ["s1", 1], ["s2", 2], 30), speculation] };
    case "one-phase+speculative": {
      // A speculative request of one branch takes the one-phase path (XA), beside a speculation of two.
      const onePhase = { id: "t1", protocol: "speculative", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }, { account: 3, delta: 30 }] }] };
      return { shards, balances, txs: [onePhase, speculation] };
    }
    default:
      throw new Error(`server: unknown scenario '${name}': use 2pc+speculative, parallel+speculative or one-phase+speculative`);
  }
}

export const serverFactory: ModelFactory = {
  name: "server",
  description: "The server's own composition: its coordinator (protocol per request, one-phase path) and its process resolver over every registered part, on shards running XA and local transactions, with transactions of different protocols side by side",
  params: { scenario: "2pc+speculative", crash: 1, shardCrash: 0, logFault: 0, timeouts: false, settleInFlight: false, idempotency: false },
  mutants: [...processResolverMutants, ...readBackMutants, ...claimMutants],
  build(params, mutant) {
    const num = (k: string): number => wholeParam("server", params, k);
    return serverModel({
      scenario: serverScenario(String(params.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      timeouts: params.timeouts === true,
      settleInFlight: params.settleInFlight === true,
      idempotency: params.idempotency === true,
      mutant: [...processResolverMutants, ...readBackMutants, ...claimMutants].find((m) => m === mutant),
    });
  },
};

/** The server composition's ghost, scan reduction and transfer, for the failover model (spec/failover/model.ts: the same composition on several nodes). */
export { serverGhost, serverScanIsNoop, transfer };
