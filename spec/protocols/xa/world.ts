/**
 * What the XA protocols (2PC, parallel commit) share in the world
 * (spec/world/world.ts): XA shards, the ghost variables their properties
 * read, the scan reduction, the named scenarios and the factory parameters.
 */
import type { ModelFactory, Model } from "../../kernel/model.ts";
import { decisionKey, decisionOf } from "../../kernel/effects.ts";
import { branchXid } from "../../env/executor.ts";
import * as txlog from "../../env/txlog.ts";
import type * as xa from "../../env/xa.ts";
import type { Budget, GhostSpec, Scenario, Slot, World } from "../../world/types.ts";
import { protocolFactory } from "../../world/factory.ts";
import { memo3 } from "../../world/memo.ts";

export { wholeParam } from "../../world/factory.ts";

export interface XaGhost {
  /** The first decision ever made durable per transaction. */
  readonly decision: readonly ("commit" | "abort" | null)[];
  /** Per transaction, per shard index: the branch was ever started / ever prepared. */
  readonly existed: readonly (readonly boolean[])[];
  readonly prepared: readonly (readonly boolean[])[];
  /** A fault or a timeout happened (AC4 speaks only of runs with neither). */
  readonly faulty: boolean;
  /** Parallel commit only: per transaction, the implicit commit condition held at some point. */
  readonly implicit?: readonly boolean[];
}

export type XaWorld<C = unknown, R = unknown> = World<C, R, xa.ShardState, XaGhost>;

/** The timer whose firing is 2PC's and parallel commit's timeout abort. */
export const VOTE_TIMER = "vote";

/** The ghost of an XA protocol; `also` records a protocol's own ghost variables after the shared ones. */
export function xaGhost<W extends XaWorld<any, any>>(sc: Scenario, also?: (w: W) => W): GhostSpec<XaGhost, W> {
  // Per transaction and shard: the branch's xid; per transaction: its decision record's key (made once, not per step).
  const xids = sc.txs.map((tx) => sc.shards.map((sh) => branchXid(tx.id, sh)));
  const decisionKeys = sc.txs.map((tx) => decisionKey(tx.id));
  // Already faulty: the same world (a step that changes nothing returns its input, so the checker's encoder finds it by identity).
  const faulty = (w: W): W => (w.ghost.faulty ? w : { ...w, ghost: { ...w.ghost, faulty: true } });

  /** Whether branch `xid` is on the shard (`prepared`: and PREPARED). */
  function onShard(sh: xa.ShardState, xid: string, prepared: boolean): boolean {
    for (const b of sh.branches) if (b.xid === xid && (!prepared || b.state === "PREPARED")) return true;
    return false;
  }
  function committedOn(sh: xa.ShardState, xid: string): boolean {
    for (const h of sh.history) if (h[0] === xid) return true;
    return false;
  }

  /**
   * A sticky per-transaction, per-shard flag (existed, prepared): the rows where a flag turns true are
   * copied, the others kept; the matrix itself when nothing turns true (runs after every step: loops, no closure).
   */
  function stick(shards: readonly xa.ShardState[], matrix: readonly (readonly boolean[])[], prepared: boolean): readonly (readonly boolean[])[] {
    let out: (readonly boolean[])[] | undefined;
    for (let t = 0; t < matrix.length; t++) {
      const row = matrix[t]!;
      let copy: boolean[] | undefined;
      for (let s = 0; s < row.length; s++) {
        if (row[s]) continue;
        const sh = shards[s]!;
        const xid = xids[t]![s]!;
        if (onShard(sh, xid, prepared) || (!prepared && committedOn(sh, xid))) (copy ??= row.slice())[s] = true;
      }
      if (copy !== undefined) (out ??= matrix.slice())[t] = copy;
    }
    return out ?? matrix;
  }

  /** The ghost once it has seen `shards` and `log` (the same object when nothing turns true). */
  function observed(ghost: XaGhost, shards: readonly xa.ShardState[], log: txlog.TxlogState): XaGhost {
    const existed = stick(shards, ghost.existed, false);
    const prepared = stick(shards, ghost.prepared, true);
    let decision: ("commit" | "abort" | null)[] | undefined;
    for (let t = 0; t < ghost.decision.length; t++) {
      if (ghost.decision[t] !== null) continue;
      const e = decisionOf(txlog.get(log, decisionKeys[t]!)?.value);
      if (e !== null) (decision ??= ghost.decision.slice())[t] = e;
    }
    const changed = existed !== ghost.existed || prepared !== ghost.prepared || decision !== undefined;
    return changed ? { ...ghost, existed, prepared, decision: decision ?? ghost.decision } : ghost;
  }
  // Runs after every step, mostly on a ghost, shards and log met before (the checker hands back one object per value).
  const observedOnce = memo3(observed);

  function observe(w: W): W {
    const ghost = observedOnce(w.ghost, w.shards, w.log);
    const shared = ghost === w.ghost ? w : { ...w, ghost };
    return also ? also(shared) : shared;
  }

  return {
    init: () => ({
      decision: sc.txs.map(() => null),
      existed: sc.txs.map(() => sc.shards.map(() => false)),
      prepared: sc.txs.map(() => sc.shards.map(() => false)),
      faulty: false,
    }),
    observe,
    fault: faulty,
    timer: (w, id) => (id === VOTE_TIMER ? faulty(w) : w),
  };
}

/**
 * Reduction (docs/protocols/2pc.md, "What the checker explores"): a scan is
 * not offered when it can only be a no-op: the epoch is taken, the resolver
 * carries nothing over from its last scan (`quiet`), no transaction is
 * still to start, and every transaction that left anything behind (a
 * branch, a record, an effect in flight) has a live coordinator, so the
 * scan's `active` snapshot makes it skip all of them. Such a scan only
 * reads, and ends in the state it started in; leaving it out removes
 * stuttering steps, not behaviours. Sound only for resolvers that leave
 * active transactions entirely alone (both do).
 */
export function xaScanIsNoop<C extends { readonly phase: string }, R extends { readonly epoch: number | null }>(
  sc: Scenario,
  quiet: (r: R) => boolean,
): (w: XaWorld<C, R>) => boolean {
  const isActive = (c: Slot<C>): boolean => c.alive && c.st.phase !== "idle" && c.st.phase !== "done";
  const hasLeftovers = (w: XaWorld<C, R>, t: number): boolean =>
    w.flights.some((f) => f.owner === t) ||
    sc.shards.some((_, s) => w.shards[s]!.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, sc.shards[s]!))) ||
    txlog.get(w.log, decisionKey(sc.txs[t]!.id)) !== undefined;
  return (w) => {
    if (w.resolver.epoch === null || !quiet(w.resolver)) return false;
    return w.coords.every((c, t) => c.st.phase !== "idle" && (isActive(c) || !hasLeftovers(w, t)));
  };
}

/** The configurations the suites name, shared by every XA protocol: shards x transfers. */
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
        interchangeable: [["t1", "t2"]],
      };
    case "pair":
      // Two transfers on disjoint accounts: neither waits on the other's locks, so their log writes are in flight
      // together (what group commit batches: the `logBatch` parameter).
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100], [3, 100]], [[2, 100], [4, 100]]],
        txs: [
          { id: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -30 }] }, { shard: "s2", ops: [{ account: 2, delta: 30 }] }] },
          { id: "t2", branches: [{ shard: "s1", ops: [{ account: 3, delta: -30 }] }, { shard: "s2", ops: [{ account: 4, delta: 30 }] }] },
        ],
      };
    case "triple":
      // Three identical transfers on the same accounts, only two of which account 1 can pay (symmetry: spec/world/symmetry.ts).
      return {
        shards: ["s1", "s2"],
        balances: [[[1, 100]], [[2, 100]]],
        txs: ["t1", "t2", "t3"].map((id) => ({ id, branches: [{ shard: "s1", ops: [{ account: 1, delta: -40 }] }, { shard: "s2", ops: [{ account: 2, delta: 40 }] }] })),
        interchangeable: [["t1", "t2", "t3"]],
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
      throw new Error(`unknown scenario '${name}': use transfer, conflict, pair, three, triple or local`);
  }
}

/** What an XA protocol's model is built from: scenario, fault budget, restart, vote timer, and at most one mutant. */
export interface XaProtocolConfig<CM extends string, RM extends string> {
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The process restarts after a crash (false: it stays down forever, to show 2PC blocking). */
  readonly restart: boolean;
  /** The vote timer may fire (a timeout abort, while some branch is still executing or preparing). */
  readonly timeouts: boolean;
  /** Group commit's failures (WorldConfig.logBatch). */
  readonly logBatch?: "off" | "on" | "acked-unwritten";
  readonly coordinatorMutant?: CM;
  readonly resolverMutant?: RM;
}

/**
 * The ModelFactory of an XA protocol (spec/world/factory.ts): the parameters
 * every such model takes (scenario, fault budget, restart, vote timer) and
 * its mutants, split between the coordinator's and the resolver's.
 */
export function xaProtocolFactory<CM extends string, RM extends string>(p: {
  name: string;
  description: string;
  coordinatorMutants: readonly CM[];
  resolverMutants: readonly RM[];
  build(cfg: XaProtocolConfig<CM, RM>): Model<any, any>;
}): ModelFactory {
  return protocolFactory<CM | RM>({
    name: p.name,
    description: p.description,
    params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 0, restart: true, timeouts: true, logBatch: "off" },
    scenario,
    mutants: [...p.coordinatorMutants, ...p.resolverMutants],
    build: ({ mutant, ...cfg }) =>
      p.build({ ...cfg, coordinatorMutant: p.coordinatorMutants.find((m) => m === mutant), resolverMutant: p.resolverMutants.find((m) => m === mutant) }),
  });
}
