/**
 * 2PC with presumed abort, composed for the model checker: the coordinator
 * and the XA resolver (../xa/resolver.ts, which also finishes parallel
 * commit's records) run unchanged, as the server runs them, in the world
 * every protocol shares (spec/world/world.ts) over XA shards
 * (spec/env/xa-shard.ts); the ghost, scan reduction and scenarios are the
 * XA protocols' (../xa/world.ts, composed by ../xa/model.ts). This file names
 * the roles.
 *
 * Properties are in ./properties.ts; docs/protocols/2pc.md states each one.
 */
import type { Model, ModelFactory } from "../../kernel/model.ts";
import type { Action } from "../../world/types.ts";
import { xaProtocolFactory, type XaProtocolConfig, type XaWorld } from "../xa/world.ts";
import { xaModel } from "../xa/model.ts";
import { coordinator, coordinatorMutants, defaultCoordinatorOptions, type CoordinatorMutant, type CoordinatorState } from "./coordinator.ts";
import { twopcResolverMutants, type ResolverMutant, type ResolverState } from "../xa/resolver.ts";
import { twopcInvariants, twopcEventually, twopcLeadsTo } from "./properties.ts";

export type { Action, Budget, Flight, Scenario } from "../../world/types.ts";
export type World = XaWorld<CoordinatorState, ResolverState>;
export type Slot = World["coords"][number];

export type TwopcConfig = XaProtocolConfig<CoordinatorMutant, ResolverMutant>;

export function twopcModel(cfg: TwopcConfig): Model<World, Action> {
  return xaModel({
    ...cfg,
    name: "twopc",
    coordinator: coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2, mutant: cfg.coordinatorMutant }),
    invariants: twopcInvariants,
    eventually: twopcEventually,
    leadsTo: twopcLeadsTo,
  });
}

export const twopcFactory: ModelFactory = xaProtocolFactory({
  name: "twopc",
  description: "2PC with presumed abort: coordinator + resolver roles over the XA shard and txlog models, with crashes",
  coordinatorMutants,
  resolverMutants: twopcResolverMutants,
  build: twopcModel,
});
