/**
 * Parallel commit composed for the model checker: the coordinator and
 * resolver roles (./coordinator.ts, ./resolver.ts, run unchanged as the
 * server will run them) in the world every protocol shares (spec/world/world.ts):
 * the XA shard and txlog models, coordinator process crashes with orphaned
 * statements, shard crashes, log faults, the process epoch fence.
 *
 * What makes this model about parallel commit: a prepare may still be in
 * flight while the resolver runs (a crashed process's orphaned XA PREPARE,
 * or a live coordinator's after it handed over), and XA PREPARE of a killed
 * connection fails, so the resolver's fence can be checked and its absence
 * caught. xa.exec answers carry the branch's connection id, as
 * executor.ts's `connOf` names it (the server's CONNECTION_ID()).
 *
 * The ghost `implicit` records, per transaction, whether the implicit commit
 * condition ever held (./properties.ts, IC).
 */
import type { Model, ModelFactory } from "../../kernel/model.ts";
import type { Action, Scenario } from "../../world/types.ts";
import { xaProtocolFactory, type XaProtocolConfig, type XaWorld } from "../xa/world.ts";
import { xaModel } from "../xa/model.ts";
import { coordinator, coordinatorMutants, defaultCoordinatorOptions, type CoordinatorMutant, type CoordinatorState } from "./coordinator.ts";
import { parallelResolverMutants, type ResolverMutant, type ResolverState } from "../xa/resolver.ts";
import { implicitlyCommitted, parallelEventually, parallelInvariants, parallelLeadsTo } from "./properties.ts";

export type { Action, Scenario } from "../../world/types.ts";
export type World = XaWorld<CoordinatorState, ResolverState>;

export type ParallelConfig = XaProtocolConfig<CoordinatorMutant, ResolverMutant>;

/** Records, per transaction, whether the implicit commit condition ever held (./properties.ts, IC). */
export function implicitGhost<W extends XaWorld<any, any>>(sc: Scenario): (w: W) => W {
  return (w) => {
    const before = w.ghost.implicit ?? sc.txs.map(() => false);
    const implicit = before.map((v, t) => v || implicitlyCommitted(sc, w, t));
    if (w.ghost.implicit !== undefined && implicit.every((v, t) => v === before[t])) return w;
    return { ...w, ghost: { ...w.ghost, implicit } };
  };
}

export function parallelModel(cfg: ParallelConfig): Model<World, Action> {
  return xaModel({
    ...cfg,
    name: "parallel",
    coordinator: coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2, mutant: cfg.coordinatorMutant }),
    ghost: implicitGhost<World>(cfg.scenario),
    invariants: parallelInvariants,
    eventually: parallelEventually,
    leadsTo: parallelLeadsTo,
  });
}

export const parallelFactory: ModelFactory = xaProtocolFactory({
  name: "parallel",
  description: "Parallel commit: STAGING record written with the prepares, commit = STAGING durable + all prepared; resolver fences with KILL CONNECTION",
  coordinatorMutants,
  resolverMutants: parallelResolverMutants,
  build: parallelModel,
});
