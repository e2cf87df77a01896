/**
 * One resolver for both XA protocols: the parallel-commit resolver
 * (../parallel/resolver.ts), the one the server runs, finishing what 2PC
 * coordinators (../twopc/coordinator.ts, one-phase commit included) leave
 * behind, alone or next to parallel-commit coordinators. The world is the
 * one every XA protocol shares (../compose.ts); only the roles differ:
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
import type { Model, ModelFactory } from "../../../checker/model.ts";
import type { Role } from "../../role.ts";
import type { ParallelEffect, TxId } from "../../effects.ts";
import * as twopc from "../twopc/coordinator.ts";
import * as par from "../parallel/coordinator.ts";
import { resolver, type ResolverInput, type ResolverMutant, type ResolverState } from "../parallel/resolver.ts";
import { implicitlyCommitted } from "../parallel/properties.ts";
import { twopcEventually, twopcInvariants, twopcLeadsTo } from "../twopc/properties.ts";
import { compose, scenario as namedScenario, wholeParam, type Action, type Budget, type Scenario, type World as AnyWorld } from "../compose.ts";
import { mixedEventually, mixedInvariants, mixedLeadsTo } from "./properties.ts";

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
export function mixedCoordinator(protocolOfTx: (tx: TxId) => Protocol): Role<MixedCoordinatorState, MixedCoordinatorInput, ParallelEffect> {
  const c2 = twopc.coordinator({ ...twopc.defaultCoordinatorOptions, maxAttempts: 2 });
  const cp = par.coordinator({ ...par.defaultCoordinatorOptions, maxAttempts: 2 });
  const start = (): MixedCoordinatorState => ({ phase: "idle", proto: null, st: null });
  return {
    start,
    step(s, input) {
      const proto = s.proto ?? (input.t === "request" ? protocolOfTx(input.tx) : null);
      if (proto === "2pc") {
        // The 2PC coordinator hears xa.exec as the server gives it to 2PC: no connection id.
        const i = input.t === "xa.exec" ? (({ conn: _conn, ...r }) => r)(input) : input;
        const out = c2.step(s.st === null ? c2.start() : (s.st as twopc.CoordinatorState), i as twopc.CoordinatorInput);
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

const requestOf = (tx: Scenario["txs"][number], epoch: number) => ({ t: "request", tx: tx.id, branches: tx.branches, epoch }) as const;
const parallelResolver = (cfg: MixedConfig) => resolver({ shards: cfg.scenario.shards, mutant: cfg.resolverMutant });
const quiet = (r: ResolverState): boolean => r.suspects.length === 0 && r.fenced.length === 0;

/** 2PC coordinators (one-phase commit included) under the parallel-commit resolver, with the 2PC properties. */
export function twopcUnderParallelResolver(cfg: MixedConfig): Model<AnyWorld<twopc.CoordinatorState, ResolverState>, Action> {
  return compose<twopc.CoordinatorState, twopc.CoordinatorInput, ResolverState, ResolverInput>({
    name: "mixed",
    scenario: cfg.scenario,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    coordinator: twopc.coordinator({ ...twopc.defaultCoordinatorOptions, maxAttempts: 2 }),
    request: requestOf,
    resolver: parallelResolver(cfg),
    scan: (active) => ({ t: "scan", active }),
    quiet,
    // The 2PC properties read only the shared ghost, which carries no `implicit`: 2PC never writes STAGING.
    invariants: (s) => twopcInvariants(s) as unknown as Record<string, (w: AnyWorld<twopc.CoordinatorState, ResolverState>) => boolean>,
    eventually: (s) => twopcEventually(s) as unknown as ReturnType<typeof mixedEventually>,
    leadsTo: (s, fair) => twopcLeadsTo(s, fair as never) as unknown as ReturnType<typeof mixedLeadsTo>,
  });
}

/** One 2PC and one parallel-commit coordinator side by side under the parallel-commit resolver. */
export function mixedCoordinators(cfg: MixedConfig): Model<AnyWorld<MixedCoordinatorState, ResolverState>, Action> {
  const sc = cfg.scenario;
  const protoOf = (tx: TxId): Protocol => protocolOf("mixed", sc.txs.findIndex((t) => t.id === tx));
  return compose<MixedCoordinatorState, MixedCoordinatorInput, ResolverState, ResolverInput>({
    name: "mixed",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    coordinator: mixedCoordinator(protoOf),
    request: requestOf,
    resolver: parallelResolver(cfg),
    scan: (active) => ({ t: "scan", active }),
    quiet,
    execResult: (r, conn) => ({ ...r, conn: r.r.ok ? conn : null }),
    observe: (w) => {
      // As the parallel model: per transaction, IC ever held (never for a 2PC transaction, which writes no STAGING).
      const before = w.ghost.implicit ?? sc.txs.map(() => false);
      const implicit = before.map((v, t) => v || implicitlyCommitted(sc, w, t));
      if (w.ghost.implicit !== undefined && implicit.every((v, t) => v === before[t])) return w;
      return { ...w, ghost: { ...w.ghost, implicit } };
    },
    invariants: (s) => mixedInvariants(s, (t) => protocolOf("mixed", t)),
    eventually: mixedEventually,
    leadsTo: mixedLeadsTo,
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
