/**
 * Parallel commit composed for the model checker: the coordinator and
 * resolver roles (./coordinator.ts, ./resolver.ts, run unchanged as the
 * server will run them) in the world every XA protocol shares (../compose.ts):
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
import type { Model, ModelFactory } from "../../../checker/model.ts";
import { coordinator, coordinatorMutants, defaultCoordinatorOptions, type CoordinatorInput, type CoordinatorMutant, type CoordinatorState } from "./coordinator.ts";
import { resolver, resolverMutants, type ResolverInput, type ResolverMutant, type ResolverState } from "./resolver.ts";
import { compose, xaProtocolFactory, type Action, type Budget, type Scenario, type World as AnyWorld } from "../compose.ts";
import { implicitlyCommitted, parallelEventually, parallelInvariants, parallelLeadsTo } from "./properties.ts";

export type { Action, Scenario } from "../compose.ts";
export type World = AnyWorld<CoordinatorState, ResolverState>;

export interface ParallelConfig {
  readonly scenario: Scenario;
  readonly budget: Budget;
  readonly restart: boolean;
  /** The vote timer may fire (an abort while some branch is still executing). */
  readonly timeouts: boolean;
  readonly coordinatorMutant?: CoordinatorMutant;
  readonly resolverMutant?: ResolverMutant;
}

export function parallelModel(cfg: ParallelConfig): Model<World, Action> {
  const sc = cfg.scenario;
  return compose<CoordinatorState, CoordinatorInput, ResolverState, ResolverInput>({
    name: "parallel",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    coordinator: coordinator({ ...defaultCoordinatorOptions, maxAttempts: 2, mutant: cfg.coordinatorMutant }),
    request: (tx, epoch) => ({ t: "request", tx: tx.id, branches: tx.branches, epoch }),
    resolver: resolver({ shards: sc.shards, mutant: cfg.resolverMutant }),
    scan: (active) => ({ t: "scan", active }),
    quiet: (r) => r.suspects.length === 0 && r.fenced.length === 0,
    execResult: (r, conn) => ({ ...r, conn: r.r.ok ? conn : null }),
    observe: (w) => {
      const before = w.ghost.implicit ?? sc.txs.map(() => false);
      const implicit = before.map((v, t) => v || implicitlyCommitted(sc, w, t));
      if (w.ghost.implicit !== undefined && implicit.every((v, t) => v === before[t])) return w;
      return { ...w, ghost: { ...w.ghost, implicit } };
    },
    invariants: parallelInvariants,
    eventually: parallelEventually,
    leadsTo: parallelLeadsTo,
  });
}

export const parallelFactory: ModelFactory = xaProtocolFactory({
  name: "parallel",
  description: "Parallel commit: STAGING record written with the prepares, commit = STAGING durable + all prepared; resolver fences with KILL CONNECTION",
  coordinatorMutants,
  resolverMutants,
  build: parallelModel,
});
