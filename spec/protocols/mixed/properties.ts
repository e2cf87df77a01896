/**
 * The properties of a world where 2PC and parallel-commit transactions run
 * side by side under one resolver: each transaction keeps the properties of
 * its own protocol (../twopc/properties.ts, ../parallel/properties.ts), checked
 * on the world seen through that transaction alone; the banking invariants
 * that sum over every transaction are checked on the whole world.
 *
 * A property of both protocols (AC1..AC4, aborted_reply_is_final,
 * applied_exactly_once) holds when it holds for every transaction under its
 * protocol's statement. money_conserved is parallel commit's statement on the
 * whole world: its commit*(t) is implicit*(t) or decision*(t) = commit, and a
 * 2PC transaction never writes STAGING, so for it commit*(t) is 2PC's
 * decision*(t) = commit.
 */
import type { Fairness, LeadsTo } from "../../../checker/model.ts";
import type { Action, Scenario, World as AnyWorld } from "../compose.ts";
import { twopcInvariants } from "../twopc/properties.ts";
import { parallelEventually, parallelInvariants, parallelLeadsTo } from "../parallel/properties.ts";
import type { Protocol } from "./model.ts";

type World = AnyWorld<any, any>;
type Pred = (w: World) => boolean;

/** The scenario and world as seen by the transactions `idx` alone (the shards and the log are shared). */
function projection(sc: Scenario, idx: readonly number[]) {
  const sub: Scenario = { ...sc, txs: idx.map((t) => sc.txs[t]!) };
  const pick = <T>(xs: readonly T[]): T[] => idx.map((t) => xs[t]!);
  const seen = new WeakMap<World, World>();
  const view = (w: World): World => {
    let v = seen.get(w);
    if (v === undefined) {
      const g = w.ghost;
      v = {
        ...w,
        coords: pick(w.coords),
        told: pick(w.told),
        ghost: { ...g, decision: pick(g.decision), existed: pick(g.existed), prepared: pick(g.prepared), ...(g.implicit ? { implicit: pick(g.implicit) } : {}) },
      };
      seen.set(w, v);
    }
    return v;
  };
  return { sub, view };
}

const GLOBAL = new Set(["money_conserved", "no_negative_balance"]);

export function mixedInvariants(sc: Scenario, protocolOf: (t: number) => Protocol): Record<string, Pred> {
  const idx = (p: Protocol) => sc.txs.map((_, t) => t).filter((t) => protocolOf(t) === p);
  const sets: { view: (w: World) => World; inv: Record<string, Pred> }[] = [];
  for (const [p, props] of [
    ["2pc", twopcInvariants],
    ["parallel", parallelInvariants],
  ] as const) {
    const ts = idx(p);
    if (ts.length === 0) continue;
    const { sub, view } = projection(sc, ts);
    sets.push({ view, inv: props(sub) as unknown as Record<string, Pred> });
  }
  const whole = parallelInvariants(sc) as unknown as Record<string, Pred>;
  const names = [...new Set(sets.flatMap((s) => Object.keys(s.inv)))];
  return Object.fromEntries(
    names.map((name): [string, Pred] => {
      if (GLOBAL.has(name)) return [name, whole[name]!];
      const parts = sets.filter((s) => s.inv[name] !== undefined);
      return [name, (w) => parts.every((s) => s.inv[name]!(s.view(w)))];
    }),
  );
}

/** AC5 as parallel commit states it on the whole world: it implies 2PC's (no record left but the epoch). */
export function mixedEventually(sc: Scenario): Record<string, { goal(w: World): boolean; allowed?(a: Action): boolean }> {
  return parallelEventually(sc) as unknown as Record<string, { goal(w: World): boolean; allowed?(a: Action): boolean }>;
}

export function mixedLeadsTo(sc: Scenario, fair: Fairness<World, Action>): Record<string, LeadsTo<World, Action>> {
  return parallelLeadsTo(sc, fair as never) as unknown as Record<string, LeadsTo<World, Action>>;
}
