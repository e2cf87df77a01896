/**
 * The world of an XA protocol (2PC, parallel commit, and the mixed model that
 * runs both under one resolver), written once: the shared world
 * (spec/world/world.ts) over XA shards (spec/env/xa-shard.ts), the XA
 * resolver (./resolver.ts), the vote timer as the timeout, the XA ghost and
 * scan reduction (./world.ts). A protocol's model names its coordinator, its
 * own ghost variables (if any) and its properties.
 */
import type { Model } from "../../kernel/model.ts";
import type { Effect } from "../../kernel/effects.ts";
import type { Role } from "../../kernel/role.ts";
import { xaShards } from "../../env/xa-shard.ts";
import { world } from "../../world/world.ts";
import type { Action, Budget, Scenario, WorldConfig } from "../../world/types.ts";
import { resolver, resolverQuiet, type ResolverMutant, type ResolverState } from "./resolver.ts";
import { VOTE_TIMER, xaGhost, xaScanIsNoop, type XaWorld } from "./world.ts";

type XaConfig<C extends { readonly phase: string }> = WorldConfig<C, ResolverState, XaWorld<C, ResolverState>["shards"][number], XaWorld<C, ResolverState>["ghost"]>;

export interface XaModelConfig<C extends { readonly phase: string }> {
  readonly name: string;
  readonly scenario: Scenario;
  readonly budget: Budget;
  readonly restart: boolean;
  readonly timeouts: boolean;
  readonly logBatch?: "off" | "on" | "acked-unwritten";
  readonly coordinator: Role<C, any, Effect>;
  readonly resolverMutant?: ResolverMutant;
  /** The protocol's own ghost variables, recorded after the shared ones. */
  readonly ghost?: (w: XaWorld<C, ResolverState>) => XaWorld<C, ResolverState>;
  readonly invariants: XaConfig<C>["invariants"];
  readonly eventually: XaConfig<C>["eventually"];
  readonly leadsTo: NonNullable<XaConfig<C>["leadsTo"]>;
}

export function xaModel<C extends { readonly phase: string }>(cfg: XaModelConfig<C>): Model<XaWorld<C, ResolverState>, Action> {
  const sc = cfg.scenario;
  return world({
    name: cfg.name,
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    ...(cfg.logBatch !== undefined ? { logBatch: cfg.logBatch } : {}),
    timeoutTimers: [VOTE_TIMER],
    coordinator: cfg.coordinator,
    resolver: resolver({ shards: sc.shards, mutant: cfg.resolverMutant }),
    env: xaShards,
    ghost: xaGhost<XaWorld<C, ResolverState>>(sc, cfg.ghost),
    scanIsNoop: xaScanIsNoop<C, ResolverState>(sc, resolverQuiet),
    invariants: cfg.invariants,
    eventually: cfg.eventually,
    leadsTo: cfg.leadsTo,
  });
}
