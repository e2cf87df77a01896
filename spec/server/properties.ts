/**
 * The properties of a world where transactions of several protocols run side
 * by side under the server's composition (./model.ts): each transaction keeps
 * the properties of its own protocol, checked on the world as that protocol's
 * own model sees it (its transactions, its part of each shard, its ghost
 * variables); a property of the whole family (the banking invariants, which
 * sum over every transaction) is checked on the family's whole world.
 *
 * Families: 2PC and parallel commit share XA shards, one decision key per
 * transaction and the XA resolver; their family statement is parallel
 * commit's (its commit*(t) is implicit*(t) or decision*(t) = commit, and a
 * 2PC transaction never writes STAGING, so for it commit*(t) is 2PC's
 * decision*(t) = commit). The speculative path has its own shards' part, its
 * own records and ghost.
 *
 * A property of several protocols with the same name (AC1..AC4,
 * money_conserved, ...) holds when it holds for each under its own statement.
 */
import type { Action, Budget, Scenario, World } from "../world/types.ts";
import type { XaGhost } from "../protocols/xa/world.ts";
import { twopcInvariants } from "../protocols/twopc/properties.ts";
import { parallelEventually, parallelInvariants } from "../protocols/parallel/properties.ts";
import { speculativeEventually, speculativeInvariants } from "../protocols/speculative/properties.ts";
import type { Ghost as SpeculativeGhost } from "../protocols/speculative/model.ts";
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

/**
 * The XA family's properties: 2PC's on the 2PC transactions, parallel
 * commit's on the parallel ones, the banking invariants on all of them.
 * `shard` takes each shard's XA part (the whole shard in an XA-only world).
 */
export function xaFamilyInvariants(sc: Scenario, protocolOf: (t: number) => string, shard?: (sh: any) => unknown): Record<string, Pred> {
  const idx = (p: string) => sc.txs.map((_, t) => t).filter((t) => protocolOf(t) === p);
  const family = [...idx("2pc"), ...idx("parallel")].sort((a, b) => a - b);
  const parts: { of: (w: World) => World; props: Record<string, Pred> }[] = [];
  for (const [p, invariants] of [
    ["2pc", twopcInvariants],
    ["parallel", parallelInvariants],
  ] as const) {
    const ts = idx(p);
    if (ts.length === 0) continue;
    const { sub, of } = projection(sc, { txs: ts, shard });
    const props = invariants(sub) as unknown as Record<string, Pred>;
    parts.push({ of, props: Object.fromEntries(Object.entries(props).filter(([name]) => !FAMILY_WIDE.has(name))) });
  }
  if (family.length > 0) {
    const { sub, of } = projection(sc, { txs: family, shard });
    const whole = parallelInvariants(sub) as unknown as Record<string, Pred>;
    parts.push({ of, props: Object.fromEntries([...FAMILY_WIDE].map((name) => [name, whole[name]!])) });
  }
  return conjoin(parts);
}

export type ServerGhost = XaGhost & SpeculativeGhost;

/** Every protocol's properties in the server world: the XA family on the XA parts, the speculative path on the local parts. */
export function serverInvariants(sc: Scenario, budget: Budget, protocolOf: (t: number) => string): Record<string, Pred> {
  const parts: { of: (w: World) => World; props: Record<string, Pred> }[] = [];
  const identity = (w: World) => w;
  parts.push({ of: identity, props: xaFamilyInvariants(sc, protocolOf, (sh: BothShard) => sh.xa) });
  const spec = sc.txs.map((_, t) => t).filter((t) => protocolOf(t) === "speculative");
  if (spec.length > 0) {
    const { sub, of } = projection(sc, { txs: spec, shard: (sh) => (sh as BothShard).local });
    parts.push({ of, props: speculativeInvariants(sub, budget) as unknown as Record<string, Pred> });
  }
  return conjoin(parts);
}

/** Once faults stop, every transaction of every protocol can still finish: each family's goal, together. */
export function serverEventually(sc: Scenario, protocolOf: (t: number) => string): Record<string, Goal> {
  const xaTxs = sc.txs.map((_, t) => t).filter((t) => protocolOf(t) !== "speculative");
  const spec = sc.txs.map((_, t) => t).filter((t) => protocolOf(t) === "speculative");
  const xa = projection(sc, { txs: xaTxs, shard: (sh) => (sh as BothShard).xa });
  const local = projection(sc, { txs: spec, shard: (sh) => (sh as BothShard).local });
  const ac5 = parallelEventually(xa.sub).AC5_terminates;
  const ends = speculativeEventually(local.sub).every_speculation_ends;
  return {
    /** AC5 for the XA transactions (no record left but the epoch and the speculative path's own) and every speculation ended. */
    every_transaction_ends: {
      goal: (w) => {
        const x = xa.of(w);
        const records = { ...x, log: { entries: x.log.entries.filter((e) => e.value.kind !== "speculation") } };
        return ac5.goal(records as never) && ends.goal(local.of(w) as never);
      },
      allowed: (a) => ac5.allowed(a) && ends.allowed(a),
    },
  };
}
