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
import { compose, wholeParam, type Action, type Budget, type Scenario, type World as AnyWorld } from "../compose.ts";
import { twopcInvariants, twopcEventually } from "./properties.ts";

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
  });
}

/** The configurations the suite names: shards x transfers. */
export function scenario(name: string): Scenario {
  switch (name) {
    case "transfer":
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100]], [[2, 100]]],
        txs: [{ id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }] }, { shard: "s2", ops: [{ account: 2, delta: 30 }] }] }],
      };
    case "conflict":
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100]], [[2, 100]]],
        txs: ["t1", "t2"].map((id) => ({ id, branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }] }, { shard: "s2", ops: [{ account: 2, delta: 60 }] }] })),
      };
    case "three":
      return {
        shards: ["s1", "s2", "s3"],
        balances: [[[1, 100]], [[2, 100]], [[3, 100]]],
        txs: [
          { id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }] }, { shard: "s2", ops: [{ account: 2, delta: 30 }] }] },
          { id: "t2", branches: [{ shard: "s2", ops: [{ account: 2, delta: -40 }] }, { shard: "s3", ops: [{ account: 3, delta: 40 }] }] },
        ],
      };
    case "local":
      // A transfer inside one shard (one phase) racing a cross-shard one for account 1.
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100], [3, 0]], [[2, 100]]],
        txs: [
          { id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }, { account: 3, delta: 60 }] }] },
          { id: "t2", branches: [{ shard: "s1", ops: [{ account: 1, delta: -60 }] }, { shard: "s2", ops: [{ account: 2, delta: 60 }] }] },
        ],
      };
    default:
      throw new Error(`unknown scenario '${name}': use transfer, conflict, three or local`);
  }
}

const resolverMutants: readonly ResolverMutant[] = ["missing-is-commit", "rollback-committed", "ignore-active", "gc-without-recover"];

export const twopcFactory: ModelFactory = {
  name: "twopc",
  description: "2PC with presumed abort: coordinator + resolver roles over the XA shard and txlog models, with crashes",
  params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true },
  mutants: [...coordinatorMutants, ...resolverMutants],
  build(p, mutant) {
    const num = (k: string): number => wholeParam("twopc", p, k);
    if (mutant !== undefined && !twopcFactory.mutants.includes(mutant)) throw new Error(`twopc: unknown mutant '${mutant}' (known: ${twopcFactory.mutants.join(", ")})`);
    return twopcModel({
      scenario: scenario(String(p.scenario)),
      budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
      restart: p.restart === true,
      timeouts: p.timeouts === true,
      coordinatorMutant: coordinatorMutants.find((m) => m === mutant),
      resolverMutant: resolverMutants.find((m) => m === mutant),
    });
  },
};

