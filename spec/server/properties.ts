/**
 * The properties of a world where transactions of several protocols run side
 * by side under the server's composition (./model.ts): each transaction keeps
 * the properties of its own protocol, checked on the world as that protocol's
 * own model sees it (its transactions, its part of each shard, its ghost
 * variables); a property of the whole family (the banking invariants, which
 * sum over every transaction) is checked on the family's whole world.
 *
 * Families, derived from the registry (../protocols/registry.ts): the
 * protocols that share a resolver part, each on its part of the shards
 * (`Protocol.needs`). 2PC and parallel commit share XA shards, one decision
 * key per transaction and the XA resolver; their family statement is
 * parallel commit's (`statesFamily`: its commit*(t) is implicit*(t) or
 * decision*(t) = commit, and a 2PC transaction never writes STAGING, so for
 * it commit*(t) is 2PC's decision*(t) = commit). The speculative path has
 * its own shards' part, its own records and ghost.
 *
 * A property of several protocols with the same name (AC1..AC4,
 * money_conserved, ...) holds when it holds for each under its own statement.
 */
import type { Action, Budget, Scenario, World } from "../world/types.ts";
import type { Protocol } from "../protocols/protocol.ts";
import { DEFAULT_PROTOCOL, protocolNamed, REGISTRY, type RegisteredGhost } from "../protocols/registry.ts";
import type { BothShard } from "../env/both-shards.ts";

type Pred = (w: any) => boolean;
type Goal = { goal(w: any): boolean; allowed?(a: Action): boolean };

/** A world's view: which transactions, which part of each shard. */
export interface View {
  readonly txs: readonly number[];
  /** The part of each shard the protocol's own model has (the whole shard when the world has one kind). */
  shard?(sh: unknown): unknown;
}

const pickGhost = (g: Record<string, unknown>, idx: readonly number[]): Record<string, unknown> =>
  Object.fromEntries(Object.entries(g).map(([k, v]) => [k, Array.isArray(v) ? idx.map((t) => v[t]) : v]));

/** The scenario and the world as a protocol's own model sees the transactions `view.txs` alone (the log is shared). */
export function projection(sc: Scenario, view: View): { sub: Scenario; of: (w: World) => World } {
  const sub: Scenario = { ...sc, txs: view.txs.map((t) => sc.txs[t]!) };
  const pick = <T>(xs: readonly T[]): T[] => view.txs.map((t) => xs[t]!);
  const seen = new WeakMap<World, World>();
  return {
    sub,
    of(w) {
      let v = seen.get(w);
      if (v === undefined) {
        v = {
          ...w,
          coords: pick(w.coords),
          told: pick(w.told),
          shards: view.shard ? w.shards.map(view.shard) : w.shards,
          ghost: pickGhost(w.ghost as Record<string, unknown>, view.txs),
        };
        seen.set(w, v);
      }
      return v;
    },
  };
}

/** Same-named properties of several parts hold together. */
function conjoin(parts: readonly { of: (w: World) => World; props: Record<string, Pred> }[]): Record<string, Pred> {
  const names = [...new Set(parts.flatMap((p) => Object.keys(p.props)))];
  return Object.fromEntries(
    names.map((name): [string, Pred] => {
      const holders = parts.filter((p) => p.props[name] !== undefined);
      return [name, (w) => holders.every((p) => p.props[name]!(p.of(w)))];
    }),
  );
}

const FAMILY_WIDE = new Set(["money_conserved", "no_negative_balance"]);

/** Protocols that share a resolver part, and the member whose statements cover them all (`ProtocolProperties.statesFamily`). */
interface Family {
  readonly members: readonly Protocol[];
  readonly statement: Protocol;
}

/** The registry's families, in registry order. */
const FAMILIES: readonly Family[] = [...new Set(REGISTRY.map((p) => p.resolver.name))].map((part) => {
  const members: readonly Protocol[] = REGISTRY.filter((p) => p.resolver.name === part);
  const stating = members.filter((p) => p.properties.statesFamily === true);
  if (members.length > 1 && stating.length !== 1) throw new Error(`the protocols of resolver part ${part} need exactly one whose properties state the family`);
  return { members, statement: stating[0] ?? members[0]! };
});

const familyOf = (p: Protocol): Family => FAMILIES.find((f) => f.members.includes(p))!;

/** The transactions of the scenario run by a protocol of `f`, in order. */
const txsOf = (sc: Scenario, f: Family, protocolOf: (t: number) => string): number[] =>
  sc.txs.map((_, t) => t).filter((t) => f.members.some((p) => p.name === protocolOf(t)));

/** A shard's part that a family's protocols run on (the whole shard in a world of one kind). */
const partOf = (f: Family) => (sh: unknown) => (sh as BothShard)[f.statement.needs];

/**
 * A family's properties: a protocol alone in its family keeps its own
 * statements whole, on its transactions; in a family of several, each
 * protocol's own on its transactions, and the family-wide banking
 * invariants by the stating member on all of them. `shard` takes each
 * shard's part (the whole shard in a world of one kind).
 */
function familyInvariants(f: Family, sc: Scenario, budget: Budget | undefined, protocolOf: (t: number) => string, shard?: (sh: any) => unknown): Record<string, Pred> {
  const parts: { of: (w: World) => World; props: Record<string, Pred> }[] = [];
  const split = f.members.length > 1;
  for (const p of f.members) {
    const ts = sc.txs.map((_, t) => t).filter((t) => protocolOf(t) === p.name);
    if (ts.length === 0) continue;
    const { sub, of } = projection(sc, { txs: ts, shard });
    const props = p.properties.invariants(sub, budget);
    parts.push({ of, props: split ? Object.fromEntries(Object.entries(props).filter(([name]) => !FAMILY_WIDE.has(name))) : props });
  }
  const family = txsOf(sc, f, protocolOf);
  if (split && family.length > 0) {
    const { sub, of } = projection(sc, { txs: family, shard });
    const whole = f.statement.properties.invariants(sub, budget);
    parts.push({ of, props: Object.fromEntries([...FAMILY_WIDE].map((name) => [name, whole[name]!])) });
  }
  return conjoin(parts);
}

/**
 * The XA family's properties (the family of the default protocol, 2PC's and
 * parallel commit's): each protocol's on its transactions, the banking
 * invariants on all of them. `shard` takes each shard's XA part (the whole
 * shard in an XA-only world). Their statements read no fault budget.
 */
export function xaFamilyInvariants(sc: Scenario, protocolOf: (t: number) => string, shard?: (sh: any) => unknown): Record<string, Pred> {
  return familyInvariants(familyOf(protocolNamed(DEFAULT_PROTOCOL)), sc, undefined, protocolOf, shard);
}

export type ServerGhost = RegisteredGhost;

/** Every protocol's properties in the server world: each family's on its part of the shards. */
export function serverInvariants(sc: Scenario, budget: Budget, protocolOf: (t: number) => string): Record<string, Pred> {
  const identity = (w: World) => w;
  return conjoin(FAMILIES.map((f) => ({ of: identity, props: familyInvariants(f, sc, budget, protocolOf, partOf(f)) })));
}

/**
 * Once faults stop, every transaction of every protocol can still finish:
 * each family's `ends` goal, by its stating member, on the family's
 * transactions, its part of the shards and the log without the other
 * families' records, together.
 */
export function serverEventually(sc: Scenario, protocolOf: (t: number) => string): Record<string, Goal> {
  const ends = FAMILIES.map((f) => {
    const view = projection(sc, { txs: txsOf(sc, f, protocolOf), shard: partOf(f) });
    const goal = f.statement.properties.eventually(view.sub)[f.statement.properties.ends]!;
    const foreign = new Set(REGISTRY.filter((p) => !f.members.includes(p)).flatMap((p) => p.records).filter((k) => !f.members.some((m) => m.records.includes(k))));
    const of = (w: World): World => {
      const v = view.of(w);
      return { ...v, log: { ...v.log, entries: v.log.entries.filter((e) => !foreign.has(e.value.kind)) } };
    };
    return { goal, of };
  });
  return {
    /** Each family's `ends` (AC5: no record left but the epoch and the other families'; every speculation ended). */
    every_transaction_ends: {
      goal: (w) => ends.every((e) => e.goal.goal(e.of(w))),
      allowed: (a) => ends.every((e) => e.goal.allowed?.(a) ?? true),
    },
  };
}
