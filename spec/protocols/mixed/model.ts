/**
 * One resolver for both XA protocols: the parallel-commit resolver
 * (../parallel/resolver.ts), the one the server runs, finishing what 2PC
 * coordinators (../twopc/coordinator.ts, one-phase commit included) leave
 * behind, alone or next to parallel-commit coordinators. The world is the
 * one every protocol shares (spec/world/world.ts) over XA shards, with the
 * XA protocols' ghost and scan reduction (../xa-world.ts); only the roles
 * differ:
 *
 *   coordinators=2pc    every transaction by the 2PC coordinator; the 2PC
 *                       properties, unchanged (../twopc/properties.ts): what a
 *                       2PC transaction must keep whichever resolver runs;
 *   coordinators=mixed  transactions alternate: the first by the 2PC
 *                       coordinator, the second by the parallel one (on
 *                       `local`: the one-phase transfer by 2PC, the cross-shard
 *                       one by parallel commit); each transaction keeps its own
 *                       protocol's properties (./properties.ts).
 *
 * docs/protocols/parallel-commit.md, "One resolver for both protocols".
 */
import type { Model, ModelFactory } from "../../kernel/model.ts";
import { xaShards } from "../../env/xa-shard.ts";
import { world } from "../../world/world.ts";
import type { Action, Budget, Scenario } from "../../world/types.ts";
import { scenario as namedScenario, VOTE_TIMER, wholeParam, xaGhost, xaScanIsNoop, type XaWorld } from "../xa-world.ts";
import type { Role } from "../../kernel/role.ts";
import type { Effect, TxId } from "../../kernel/effects.ts";
import * as twopc from "../twopc/coordinator.ts";
import * as par from "../parallel/coordinator.ts";
import { resolver, type ResolverInput, type ResolverMutant, type ResolverState } from "../parallel/resolver.ts";
import { implicitGhost, resolverQuiet } from "../parallel/model.ts";
import { twopcEventually, twopcInvariants } from "../twopc/properties.ts";
import { mixedEventually, mixedInvariants } from "./properties.ts";

export type Protocol = "2pc" | "parallel";
export type Coordinators = "2pc" | "mixed";

/** A coordinator of either protocol: which one is fixed by the request (the server's per-request protocol). */
export type MixedCoordinatorState =
  | { readonly phase: "idle"; readonly proto: null; readonly st: null }
  | { readonly phase: twopc.Phase; readonly proto: "2pc"; readonly st: twopc.CoordinatorState }
  | { readonly phase: par.Phase; readonly proto: "parallel"; readonly st: par.CoordinatorState };
export type MixedCoordinatorInput = par.CoordinatorInput;

/** The parallel-commit resolver mutants that touch what a 2PC coordinator leaves behind (no-fence and missing-is-commit act on STAGING only). */
export const mixedResolverMutants = ["ignore-active", "keep-records", "missing-is-commit"] as const satisfies readonly ResolverMutant[];

/** Which protocol runs transaction `t` (its index in the scenario). */
export const protocolOf = (coordinators: Coordinators, t: number): Protocol => (coordinators === "mixed" && t % 2 === 1 ? "parallel" : "2pc");

/** Each request runs the coordinator of its transaction's protocol; every later input goes to that one. */
export function mixedCoordinator(protocolOfTx: (tx: TxId) => Protocol): Role<MixedCoordinatorState, MixedCoordinatorInput, Effect> {
  const c2 = twopc.coordinator({ ...twopc.defaultCoordinatorOptions, maxAttempts: 2 });
  const cp = par.coordinator({ ...par.defaultCoordinatorOptions, maxAttempts: 2 });
  const start = (): MixedCoordinatorState => ({ phase: "idle", proto: null, st: null });
  return {
    start,
    step(s, input) {
      const proto = s.proto ?? (input.t === "request" ? protocolOfTx(input.tx) : null);
      if (proto === "2pc") {
        const out = c2.step(s.st === null ? c2.start() : (s.st as twopc.CoordinatorState), input as twopc.CoordinatorInput);
        return { st: { phase: out.st.phase, proto, st: out.st }, effects: out.effects };
      }
      if (proto === "parallel") {
        const out = cp.step(s.st === null ? cp.start() : (s.st as par.CoordinatorState), input);
        return { st: { phase: out.st.phase, proto, st: out.st }, effects: out.effects };
      }
      return { st: s, effects: [] };
    },
  };
}

export interface MixedConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  readonly restart: boolean;
  readonly timeouts: boolean;
  readonly coordinators: Coordinators;
  readonly resolverMutant?: ResolverMutant;
}

const parallelResolver = (cfg: MixedConfig) => resolver({ shards: cfg.scenario.shards, mutant: cfg.resolverMutant });

/** 2PC coordinators (one-phase commit included) under the parallel-commit resolver, with the 2PC properties. */
export function twopcUnderParallelResolver(cfg: MixedConfig): Model<XaWorld<twopc.CoordinatorState, ResolverState>, Action> {
  type W = XaWorld<twopc.CoordinatorState, ResolverState>;
  const sc = cfg.scenario;
  return world({
    name: "mixed",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    timeoutTimers: [VOTE_TIMER],
    coordinator: twopc.coordinator({ ...twopc.defaultCoordinatorOptions, maxAttempts: 2 }),
    resolver: parallelResolver(cfg),
    env: xaShards,
    ghost: xaGhost<W>(sc),
    scanIsNoop: xaScanIsNoop<twopc.CoordinatorState, ResolverState>(sc, resolverQuiet),
    // The 2PC properties read only the shared ghost, which carries no `implicit`: 2PC never writes STAGING.
    invariants: (s) => twopcInvariants(s) as unknown as Record<string, (w: W) => boolean>,
    eventually: (s) => twopcEventually(s) as unknown as ReturnType<typeof mixedEventually>,
  });
}

/** One 2PC and one parallel-commit coordinator side by side under the parallel-commit resolver. */
export function mixedCoordinators(cfg: MixedConfig): Model<XaWorld<MixedCoordinatorState, ResolverState>, Action> {
  type W = XaWorld<MixedCoordinatorState, ResolverState>;
  const sc = cfg.scenario;
  const protoOf = (tx: TxId): Protocol => protocolOf("mixed", sc.txs.findIndex((t) => t.id === tx));
  return world({
    name: "mixed",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    timeoutTimers: [VOTE_TIMER],
    coordinator: mixedCoordinator(protoOf),
    resolver: parallelResolver(cfg),
    env: xaShards,
    // As the parallel model: per transaction, IC ever held (never for a 2PC transaction, which writes no STAGING).
    ghost: xaGhost<W>(sc, implicitGhost<W>(sc)),
    scanIsNoop: xaScanIsNoop<MixedCoordinatorState, ResolverState>(sc, resolverQuiet),
    invariants: (s) => mixedInvariants(s, (t) => protocolOf("mixed", t)),
    eventually: mixedEventually,
  });
}

export function mixedModel(cfg: MixedConfig): Model<any, Action> {
  return cfg.coordinators === "mixed" ? mixedCoordinators(cfg) : twopcUnderParallelResolver(cfg);
}

export const mixedFactory: ModelFactory = {
  name: "mixed",
  description:
    "One resolver for both protocols: the parallel-commit resolver under 2PC coordinators (coordinators=2pc, the 2PC properties) or under a 2PC and a parallel coordinator side by side (coordinators=mixed)",
  params: { scenario: "transfer", coordinators: "2pc", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true },
  mutants: [...mixedResolverMutants],
  build(params, mutant) {
    const num = (k: string): number => wholeParam("mixed", params, k);
    const coordinators = String(params.coordinators);
    if (coordinators !== "2pc" && coordinators !== "mixed") throw new Error(`mixed: parameter coordinators must be 2pc or mixed (got ${coordinators})`);
    return mixedModel({
      scenario: namedScenario(String(params.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      restart: params.restart === true,
      timeouts: params.timeouts === true,
      coordinators,
      resolverMutant: mixedResolverMutants.find((m) => m === mutant),
    });
  },
};
