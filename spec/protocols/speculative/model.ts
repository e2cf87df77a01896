/**
 * The speculative path with undo, composed for the model checker: the
 * coordinator and resolver roles (run unchanged, as the server runs them) in
 * the world every protocol shares (spec/world/world.ts), over shards that run
 * one-phase local transactions (spec/env/local-shard.ts), with this
 * protocol's ghost variables and scan reduction.
 *
 * Properties: ./properties.ts; docs/protocols/speculative.md states each.
 */
import type { Model, ModelFactory } from "../../kernel/model.ts";
import { speculativeKey, speculativeStateOf, type SpeculativeRecord, type ShardId, type TxId } from "../../kernel/effects.ts";
import * as txlog from "../../env/txlog.ts";
import type * as local from "../../env/local.ts";
import { localShards } from "../../env/local-shard.ts";
import { world } from "../../world/world.ts";
import { memo2 } from "../../world/memo.ts";
import { protocolFactory, type ProtocolModelConfig } from "../../world/factory.ts";
import type { Action, Flight, GhostSpec, Scenario, World as AnyWorld } from "../../world/types.ts";
import { coordinator, defaultCoordinatorOptions, APPLY_TIMER, type CoordinatorMutant, type CoordinatorState } from "./coordinator.ts";
import { resolver, type ResolverMutant, type ResolverState } from "./resolver.ts";
import type { SettleMutant } from "./settle.ts";
import { speculativeEventually, speculativeInvariants, speculativeLeadsTo } from "./properties.ts";

export type { Action, Budget, Scenario } from "../../world/types.ts";

export interface Ghost {
  /** Per transaction, per shard index: cents this transaction added to the shard's balances plus pending. */
  readonly moved: readonly (readonly number[])[];
  /** Per transaction, per shard index: compensations that changed the shard. */
  readonly compensations: readonly (readonly number[])[];
  /** Per transaction: the terminal record once one was written (kept after the record is forgotten). */
  readonly terminal: readonly (SpeculativeRecord["state"] | null)[];
}

export type World = AnyWorld<CoordinatorState, ResolverState, local.LocalShard, Ghost>;

/** Scenario, fault budget, restart (always: the model has no `restart` parameter), the apply timer (a coordinator settles branches that did not answer yet), one mutant. */
export type SpeculativeConfig = ProtocolModelConfig<CoordinatorMutant | ResolverMutant>;

const total = (sh: local.LocalShard): number => sh.accounts.reduce((sum, [, b, p]) => sum + b + p, 0);

/** The speculative ghost: money each transaction's statements moved, compensations that changed a shard, the terminal record once written. */
export function speculativeGhost<W extends AnyWorld<any, any, local.LocalShard, Ghost>>(sc: Scenario): GhostSpec<Ghost, W> {
  const txIndex = (id: TxId): number => sc.txs.findIndex((t) => t.id === id);
  const zeros = () => sc.txs.map(() => sc.shards.map(() => 0));
  const keys = sc.txs.map((tx) => speculativeKey(tx.id));
  /** The terminal records seen so far, once `log` is seen (the same array when nothing new): after every step, mostly on a log and ghost met before. */
  const terminalSeen = memo2((seen: Ghost["terminal"], log: txlog.TxlogState): Ghost["terminal"] => {
    let terminal = seen;
    keys.forEach((key, t) => {
      const state = speculativeStateOf(txlog.get(log, key)?.value);
      if ((state === "SPEC_COMMITTED" || state === "SPEC_ROLLED_BACK") && terminal[t] !== state) terminal = terminal.map((x, i) => (i === t ? state : x));
    });
    return terminal;
  });
  return {
    init: () => ({ moved: zeros(), compensations: zeros(), terminal: sc.txs.map(() => null) }),
    ran(w: W, f: Flight, s: number, before: local.LocalShard, after: local.LocalShard): W {
      const fx = f.fx;
      if (!fx.t.startsWith("local.") || fx.t === "local.scan" || after === before) return w;
      const t = txIndex((fx as { tx: TxId }).tx);
      const bump = (m: readonly (readonly number[])[], by: number) => m.map((row, i) => (i === t ? row.map((v, j) => (j === s ? v + by : v)) : row));
      let ghost = { ...w.ghost, moved: bump(w.ghost.moved, total(after) - total(before)) };
      if (fx.t === "local.compensate") ghost = { ...ghost, compensations: bump(ghost.compensations, 1) };
      return { ...w, ghost };
    },
    /** The ghost remembers a terminal record once it is in the log, so that properties still see it after it is forgotten. */
    observe(w: W): W {
      const terminal = terminalSeen(w.ghost.terminal, w.log);
      return terminal === w.ghost.terminal ? w : { ...w, ghost: { ...w.ghost, terminal } };
    },
  };
}

/**
 * Reduction: a scan is not offered when it can only be a no-op: the epoch
 * is taken and no transaction without a live coordinator has an undo row
 * or a record (SPEC_EXECUTING to settle, a terminal one to forget), and no
 * suspect is pending, so plan() settles nothing and records no suspect. Such a
 * scan only reads and ends in the state it started in (faults it could meet
 * are offered by every other statement too).
 */
export function speculativeScanIsNoop(sc: Scenario): (w: World) => boolean {
  const keys = sc.txs.map((t) => speculativeKey(t.id));
  return (w) => {
    if (w.resolver.epoch === null || w.resolver.suspects.length > 0) return false;
    return sc.txs.every((t, i) => {
      const c = w.coords[i]!;
      if (c.alive && c.st.phase === "running") return true;
      const rec = txlog.get(w.log, keys[i]!)?.value;
      return rec?.kind !== "speculation" && !w.shards.some((sh) => sh.undo.some((r) => r.tx === t.id && r.state === "undo"));
    });
  };
}

export function speculativeModel(cfg: SpeculativeConfig): Model<World, Action> {
  const sc = cfg.scenario;
  const settleMutant: SettleMutant | undefined =
    cfg.mutant === "rollback-without-tombstone" || cfg.mutant === "compensate-keeps-row" || cfg.mutant === "release-deletes-row" || cfg.mutant === "delete-before-final"
      ? cfg.mutant
      : undefined;
  return world({
    name: "speculative",
    scenario: sc,
    budget: cfg.budget,
    restart: cfg.restart,
    timeouts: cfg.timeouts,
    timeoutTimers: [APPLY_TIMER],
    coordinator: coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2, mutant: cfg.mutant === "settle-at-first-sight" ? undefined : cfg.mutant }),
    resolver: resolver({ shards: sc.shards, mutant: cfg.mutant === "settle-at-first-sight" ? cfg.mutant : settleMutant }),
    env: localShards,
    ghost: speculativeGhost<World>(sc),
    scanIsNoop: speculativeScanIsNoop(sc),
    invariants: (s) => speculativeInvariants(s, cfg.budget),
    eventually: speculativeEventually,
    leadsTo: speculativeLeadsTo,
  });
}

const transfer = (id: TxId, from: [ShardId, number], to: [ShardId, number], cents: number) => ({
  id,
  branches: [
    { shard: from[0], ops: [{ account: from[1], delta: -cents }] },
    { shard: to[0], ops: [{ account: to[1], delta: cents }] },
  ],
});

/** The configurations the suite names. */
export function scenario(name: string): Scenario {
  const shards = ["s1", "s2"];
  switch (name) {
    case "transfer":
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 30)] };
    case "same":
      // Two transfers from the same account, only one of which it can pay: one mis-speculates.
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 60), transfer("t2", ["s1", 1], ["s2", 2], 60)], interchangeable: [["t1", "t2"]] };
    case "triple":
      // Three identical transfers from the same account, only two of which it can pay (symmetry: spec/world/symmetry.ts).
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: ["t1", "t2", "t3"].map((id) => transfer(id, ["s1", 1], ["s2", 2], 40)), interchangeable: [["t1", "t2", "t3"]] };
    case "misspec":
      // A branch that fails (insufficient funds) after the other committed: rollback, total unchanged.
      return { shards, balances: [[[1, 100]], [[2, 100]]], txs: [transfer("t1", ["s2", 2], ["s1", 1], 130)] };
    case "spend":
      // t2 spends what t1 credits: possible only once t1 is final (escrow).
      return { shards, balances: [[[1, 100]], [[2, 0]]], txs: [transfer("t1", ["s1", 1], ["s2", 2], 30), transfer("t2", ["s2", 2], ["s1", 1], 30)] };
    default:
      throw new Error(`speculative: unknown scenario '${name}': use transfer, same, misspec, spend or triple`);
  }
}

export const speculativeMutants: readonly (CoordinatorMutant | ResolverMutant)[] = [
  "spendable-credits",
  "undo-separate",
  "compensate-keeps-row",
  "rollback-without-tombstone",
  "reply-early",
  "release-early",
  "release-deletes-row",
  "settle-at-first-sight",
  "delete-before-final",
];

export const speculativeFactory: ModelFactory = protocolFactory({
  name: "speculative",
  description: "Speculative path with undo: coordinator + resolver over one-phase local shards (escrow, undo rows, tombstones) and the txlog, with crashes",
  params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, timeouts: true },
  scenario,
  mutants: speculativeMutants,
  build: speculativeModel,
});
