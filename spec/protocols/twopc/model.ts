/**
 * 2PC with presumed abort, composed for the model checker: the coordinator
 * and resolver roles (run unchanged, as the server runs them) over the XA
 * shard model, the txlog model, a client and a fault budget. The world, its
 * actions, faults and reductions are the ones every XA protocol shares
 * (../compose.ts); this file names the roles and the configurations.
 *
 * Properties are in ./properties.ts; docs/protocols/2pc.md states each one.
 */
import type { Model, ModelFactory } from "../../../checker/model.ts";
import type { CoordinatorInput, CoordinatorMutant, CoordinatorState } from "./coordinator.ts";
import { coordinator, coordinatorMutants, defaultCoordinatorOptions } from "./coordinator.ts";
import { resolver, type ResolverInput, type ResolverMutant, type ResolverState } from "./resolver.ts";
import { compose, xaProtocolFactory, type Action, type Budget, type Scenario, type World as AnyWorld } from "../compose.ts";
import { twopcInvariants, twopcEventually, twopcLeadsTo } from "./properties.ts";

export type { Action, Budget, Flight, Ghost, Scenario } from "../compose.ts";
export type World = AnyWorld<CoordinatorState, ResolverState>;
export type Slot = World["coords"][number];

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

export function twopcModel(cfg: TwopcConfig): Model<World, Action> {
  return compose<CoordinatorState, CoordinatorInput, ResolverState, ResolverInput>({
    name: "twopc",
    scenario: cfg.scenario,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    coordinator: coordinator({ ...defaultCoordinatorOptions, maxAttempts: 2, mutant: cfg.coordinatorMutant }),
    request: (tx, epoch) => ({ t: "request", tx: tx.id, branches: tx.branches, epoch }),
    resolver: resolver({ shards: cfg.scenario.shards, mutant: cfg.resolverMutant }),
    scan: (active) => ({ t: "scan", active }),
    quiet: (r) => r.suspects.length === 0,
    invariants: twopcInvariants,
    eventually: twopcEventually,
    leadsTo: twopcLeadsTo,
  });
}

const resolverMutants: readonly ResolverMutant[] = ["missing-is-commit", "rollback-committed", "ignore-active", "gc-without-recover"];

export const twopcFactory: ModelFactory = xaProtocolFactory({
  name: "twopc",
  description: "2PC with presumed abort: coordinator + resolver roles over the XA shard and txlog models, with crashes",
  coordinatorMutants,
  resolverMutants,
  build: twopcModel,
});

