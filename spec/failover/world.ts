/**
 * The world of several coordinator nodes over one txlog and the same XA
 * shards (docs/protocols/failover.md). It is spec/world/world.ts with
 * processes made plural: each node has its own liveness, incarnation and
 * lease, its coordinators and its process resolver run in its namespace
 * (./namespace.ts), and every survivor runs the takeover role
 * (./takeover.ts) for the node that may die, with a second process resolver
 * over that node's namespace while the role says `resolving`.
 *
 * One action is one of those of spec/world/world.ts (a request, an effect
 * completing with each outcome the environment may give, a resolver's scan,
 * the dying node's crash and restart, a shard's faults), plus:
 *   - `expire`: the dying node's lease runs out. The lease is an abstract
 *     clock: it expires only once the node is down (a dead node stops
 *     renewing it), unless the configuration lets it expire early (a live
 *     node merely slow to renew: the mutant `lease-early`); `renew`: a live
 *     node whose lease expired renews it;
 *   - `watch`: a survivor's takeover role observes the dying node's lease
 *     (level-triggered: offered while the observation would change the role
 *     or make it ask for something).
 * When a takeover role stops `resolving`, the resolver it ran over the other
 * node's namespace stops as a crashed one does (its writes and statements
 * already sent may still land).
 */
import type { Effect, Outcome, TxId } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import type { Budget, Flight, Scenario, Slot, World } from "../world/types.ts";
import type { TxlogState } from "../env/txlog.ts";
import * as txlog from "../env/txlog.ts";
import { launch, orphaned, sortFlights } from "../world/flights.ts";
import type { ProcessResolverState } from "../server/resolver.ts";
import type { ServerCoordinatorState } from "../server/coordinator.ts";
import type * as xa from "../env/xa.ts";
import type { TakeoverInput, TakeoverState } from "./takeover.ts";
import { intoNamespace, type Namespace } from "./namespace.ts";

export interface Node {
  readonly up: boolean;
  /** Its incarnation (names its XA connections). */
  readonly inc: number;
  /** Its lease is alive. */
  readonly lease: boolean;
  /** Hung (frozen or cut off, not dead: rule 5, ./takeover.ts): it takes no step, what it has not sent yet stays unsent, its shard sessions stay open. Absent: false. */
  readonly hung?: boolean;
}

/** spec/world/types.ts's World with processes made plural: nodes, resolver slots, takeover roles (shards `Sh`: XA, or XA and local). */
export interface FailoverWorld<G = unknown, Sh = unknown> extends Omit<World<ServerCoordinatorState, never, Sh, G>, "up" | "inc" | "resolver"> {
  readonly nodes: readonly Node[];
  /** One process resolver per resolver slot (FailoverLayout.resolvers). */
  readonly resolvers: readonly ProcessResolverState[];
  /** One takeover role per survivor of the dying node (FailoverLayout.takeovers). */
  readonly takeovers: readonly TakeoverState[];
}

export type FailoverAction =
  | { readonly k: "request"; readonly tx: number }
  | { readonly k: "complete"; readonly i: number; readonly o: number; readonly fault: boolean; readonly label: string }
  | { readonly k: "scan"; readonly r: number }
  | { readonly k: "watch"; readonly x: number }
  | { readonly k: "crash" }
  | { readonly k: "restart" }
  | { readonly k: "expire" }
  | { readonly k: "renew" }
  | { readonly k: "hang" }
  | { readonly k: "resume" }
  | { readonly k: "detach"; readonly x: number; readonly s: number; readonly conn: string }
  | { readonly k: "shardCrash"; readonly s: number; readonly o: number }
  | { readonly k: "shardRestart"; readonly s: number }
  | { readonly k: "notice"; readonly s: number; readonly conn: string };

/** Who runs where. */
export interface FailoverLayout {
  readonly nodes: readonly string[];
  /** The node that may crash (the others never do). */
  readonly dying: number;
  /** Per transaction, the node whose coordinator runs it. */
  readonly txNode: readonly number[];
  /** Process resolvers: `host` runs it over `ns`'s namespace; `takeover`: the takeover role it runs under (null: the host's own). */
  readonly resolvers: readonly { readonly host: number; readonly ns: number; readonly takeover: number | null }[];
  /** Takeover roles: `host` runs one for the dying node. */
  readonly takeovers: readonly { readonly host: number }[];
}

/** Flight owners: a transaction index (>= 0), resolver slot r (-1 - r), takeover role x (TAKEOVER_OWNER - x). */
export const resolverOwner = (r: number): number => -1 - r;
export const TAKEOVER_OWNER = -1000;
export const takeoverOwner = (x: number): number => TAKEOVER_OWNER - x;

export type OwnerKind = { readonly k: "coord"; readonly t: number } | { readonly k: "resolver"; readonly r: number } | { readonly k: "takeover"; readonly x: number };
export const ownerKind = (owner: number): OwnerKind =>
  owner >= 0 ? { k: "coord", t: owner } : owner > TAKEOVER_OWNER ? { k: "resolver", r: -1 - owner } : { k: "takeover", x: TAKEOVER_OWNER - owner };

/** The layout's derived facts: each node's namespace, each owner's host and namespace. */
export function layoutOf(sc: Scenario, lay: FailoverLayout) {
  const namespaces: Namespace[] = lay.nodes.map((node, n) => {
    const mine = new Set(sc.txs.filter((_, t) => lay.txNode[t] === n).map((tx) => tx.id));
    return { node, owns: (tx: TxId) => mine.has(tx) };
  });
  const hostOf = (owner: number): number => {
    const o = ownerKind(owner);
    return o.k === "coord" ? lay.txNode[o.t]! : o.k === "resolver" ? lay.resolvers[o.r]!.host : lay.takeovers[o.x]!.host;
  };
  /** The namespace an owner's effects live in (null: none, the takeover role's claims are global). */
  const nsOf = (owner: number): Namespace | null => {
    const o = ownerKind(owner);
    return o.k === "coord" ? namespaces[lay.txNode[o.t]!]! : o.k === "resolver" ? namespaces[lay.resolvers[o.r]!.ns]! : null;
  };
  const txOfConn = (conn: string): TxId => conn.slice(0, conn.indexOf("/"));
  /** The node whose transaction a connection serves. */
  const nodeOfConn = (conn: string): number => lay.txNode[sc.txs.findIndex((t) => t.id === txOfConn(conn))] ?? -1;
  return { namespaces, hostOf, nsOf, nodeOfConn };
}

/**
 * Adds the effects owner `owner` asked for, in its namespace, under its host's incarnation: spec/world/flights.ts's
 * `launch` (a timer replaces an older one of the same owner and id, one turned off by the configuration is never set;
 * a reply reaches the client at once), given the effects as the environment gets them and the host's incarnation.
 */
export function launchAll<W extends FailoverWorld>(
  w: W,
  owner: number,
  effects: readonly Effect[],
  opts: { readonly ns: Namespace | null; readonly inc: number; readonly txIndex: (tx: string) => number; readonly timerOff: (id: string) => boolean; readonly key: (f: Flight) => string },
): W {
  if (effects.length === 0) return w;
  const ns = opts.ns;
  const out = launch({ flights: w.flights, told: w.told, inc: opts.inc } as unknown as World, owner, ns === null ? effects : effects.map((e) => intoNamespace(ns, e)), opts);
  return { ...w, flights: out.flights, told: out.told };
}

/** An orphaned txlog write whose fence no longer holds can only answer FENCED, to nobody: dropped (each node's epoch is its own key). */
export function dropFenced<W extends FailoverWorld>(w: W): W {
  const dead = (f: Flight) =>
    f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== (txlog.get(w.log, f.fx.fence.key)?.version ?? 0);
  return w.flights.some(dead) ? { ...w, flights: w.flights.filter((f) => !dead(f)) } : w;
}

/** The flights of the owners `gone` selects become orphans as spec/world/flights.ts's `orphaned` makes them (reads, timers die; writes and statements may still land). */
export function orphanOwners(flights: readonly Flight[], gone: (owner: number) => boolean, key: (f: Flight) => string): Flight[] {
  const dies = (f: Flight): boolean => gone(f.owner) && !f.orphan;
  return sortFlights([...flights.filter((f) => !dies(f)), ...orphaned(flights.filter(dies), key)], key);
}

/** The lease observation a takeover role of the dying node gets. */
export const observation = (lay: FailoverLayout, w: FailoverWorld): TakeoverInput => ({ t: "lease", node: lay.nodes[lay.dying]!, alive: w.nodes[lay.dying]!.lease });

/**
 * A watch is offered when the observation would make the role ask for something or change phase or claim, or
 * tell a claim in flight that the node's lease changed (the only phase whose next step reads `alive`).
 */
export function watchMatters(role: Role<TakeoverState, TakeoverInput, Effect>, st: TakeoverState, input: TakeoverInput): boolean {
  const out = role.step(st, input);
  return out.effects.length > 0 || out.st.phase !== st.phase || out.st.version !== st.version || (st.phase === "claiming" && out.st.alive !== st.alive);
}

