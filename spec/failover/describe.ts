/**
 * How a step of the failover world (./model.ts) is recorded in a trace
 * (docs/traces.md): spec/world/describe.ts's describer, run on a view of the
 * failover world with one process. A step of a process resolver or a
 * takeover role is described as the world's resolver's step (the view's
 * `resolver` is that role's state, its flights are the view's resolver's),
 * then named: `resolver(n2)` is n2's own; `resolver(n1 for n2)` the one a
 * survivor runs over n2's namespace; `takeover(n1 for n2)` the survivor's
 * takeover role. A takeover role's observation of the lease is drawn as that
 * role's scan. The nodes' own steps (crash, restart, the lease) are the only
 * ones written here. Actors: each transaction's coordinator, each process
 * resolver, each takeover role, the nodes, the txlog and the shards.
 */
import type { Msg, StepInfo } from "../kernel/model.ts";
import type { Effect, Result } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, RESOLVER_ACTOR, lifelineOf } from "../kernel/trace.ts";
import { describer } from "../world/describe.ts";
import type { Action, Flight, Scenario, World } from "../world/types.ts";
import { ownerKind, resolverOwner, takeoverOwner, type FailoverAction, type FailoverLayout, type FailoverWorld } from "./world.ts";

type W = FailoverWorld<any>;

export interface FailoverRoles {
  readonly coord: Role<any, any, Effect>;
  readonly resolvers: readonly Role<any, any, Effect>[];
  readonly takeovers: readonly Role<any, any, any>[];
  heard(owner: number, r: Result): Result;
  requestOf(w: W, t: number): unknown;
  scanOf(w: W, r: number): unknown;
  observation(w: W): unknown;
  resultOf(w: W, a: Extract<FailoverAction, { k: "complete" }>): Result | null;
}

/** The lifelines, in drawing order. */
export function failoverActors(sc: Scenario, lay: FailoverLayout): string[] {
  const r = lay.resolvers.map((_, i) => resolverName(lay, i));
  const x = lay.takeovers.map((_, i) => takeoverName(lay, i));
  return [CLIENT_ACTOR, ...sc.txs.map((t) => lifelineOf(COORDINATOR_ACTOR, t.id)), ...r, ...x, ...lay.nodes, "txlog", ...sc.shards];
}

const resolverName = (lay: FailoverLayout, r: number): string => {
  const s = lay.resolvers[r]!;
  return s.takeover === null ? `resolver(${lay.nodes[s.host]})` : `resolver(${lay.nodes[s.host]} for ${lay.nodes[s.ns]})`;
};
const takeoverName = (lay: FailoverLayout, x: number): string => `takeover(${lay.nodes[lay.takeovers[x]!.host]} for ${lay.nodes[lay.dying]})`;

/** The world's resolver actor renamed `name` in a step: its actor, its messages' ends and ids. */
function renamed(info: StepInfo | StepInfo[], name: string): StepInfo | StepInfo[] {
  const id = (s: string): string => (s.startsWith(`${RESOLVER_ACTOR}:`) ? `${name}${s.slice(RESOLVER_ACTOR.length)}` : s);
  const end = (s: string): string => (s === RESOLVER_ACTOR ? name : s);
  const msg = (m: Msg): Msg => ({ ...m, id: id(m.id), from: end(m.from), to: end(m.to) });
  const one = (s: StepInfo): StepInfo => ({ ...s, actor: end(s.actor), ...(s.sends ? { sends: s.sends.map(msg) } : {}), ...(s.receives ? { receives: s.receives.map(msg) } : {}) });
  return Array.isArray(info) ? info.map(one) : one(info);
}

export function failoverDescriber(sc: Scenario, lay: FailoverLayout, key: (f: Flight) => string, roles: FailoverRoles): (from: W, a: FailoverAction, to: W) => StepInfo | StepInfo[] {
  const worldOf = new WeakMap<World, W>();
  /** One process's view: `subject`'s flights are its resolver's (-1), every other role's but the coordinators' another's (-2). */
  const viewOf = (w: W, subject: number | null, state: unknown): World => {
    const flights = w.flights.map((f) => (f.owner >= 0 ? f : { ...f, owner: f.owner === subject ? -1 : -2 }));
    const v: World = { up: true, inc: 0, coords: w.coords, resolver: state, shards: w.shards, log: w.log, flights, told: w.told, ghost: w.ghost, budget: w.budget };
    worldOf.set(v, w);
    return v;
  };
  const orig = (v: World): W => worldOf.get(v)!;
  /** spec/world's describer with the role `role` as the resolver, fed `scan` on the world's scan. */
  const describe = (role: Role<any, any, any>, scan: (w: W) => unknown) =>
    describer<World>(sc, key, {
      coordinator: roles.coord,
      resolver: role,
      request: (v, t) => roles.requestOf(orig(v), t),
      scan: (v) => scan(orig(v)),
      result: (v, a) => {
        const w = orig(v);
        const r = roles.resultOf(w, a);
        return r === null ? null : roles.heard(w.flights[a.i]!.owner, r);
      },
      batchResult: () => {
        throw new Error("failover: the log fails no batch");
      },
    });
  const plain = describe(roles.coord, () => null);
  const ofResolver = lay.resolvers.map((_, r) => describe(roles.resolvers[r]!, (w) => roles.scanOf(w, r)));
  const ofTakeover = lay.takeovers.map((_, x) => describe(roles.takeovers[x]!, roles.observation));

  /** Action `a` as the world describes it, with owner `subject` (state `state`) as the resolver named `name`. */
  const as = (from: W, to: W, a: Action, subject: number | null, state: unknown, d: ReturnType<typeof describer<World>>, name: string | null) => {
    const info = d(viewOf(from, subject, state), a, viewOf(to, subject, state));
    return name === null ? info : renamed(info, name);
  };
  const dyingName = lay.nodes[lay.dying]!;

  return (from, a, to) => {
    switch (a.k) {
      case "complete": {
        const owner = from.flights[a.i]!.owner;
        const o = ownerKind(owner);
        if (o.k === "coord") return as(from, to, a, null, null, plain, null);
        if (o.k === "resolver") return as(from, to, a, owner, from.resolvers[o.r], ofResolver[o.r]!, resolverName(lay, o.r));
        return as(from, to, a, owner, from.takeovers[o.x], ofTakeover[o.x]!, takeoverName(lay, o.x));
      }
      case "scan":
        return as(from, to, { k: "scan" }, resolverOwner(a.r), from.resolvers[a.r], ofResolver[a.r]!, resolverName(lay, a.r));
      case "watch": {
        const obs = roles.observation(from) as { alive: boolean };
        const step = as(from, to, { k: "scan" }, takeoverOwner(a.x), from.takeovers[a.x], ofTakeover[a.x]!, takeoverName(lay, a.x)) as StepInfo;
        return { ...step, label: `sees ${dyingName}'s lease ${obs.alive ? "alive" : "expired"}` };
      }
      case "crash":
        return { actor: dyingName, label: "CRASH (its coordinators + resolver)", input: "crash" };
      case "restart":
        return { actor: dyingName, label: "restart (new lease)", input: "restart" };
      case "expire":
        return { actor: dyingName, label: from.nodes[lay.dying]!.up ? "lease EXPIRES (node alive, slow)" : "lease expires", input: "expire" };
      case "renew":
        return { actor: dyingName, label: "lease renewed", input: "renew" };
      case "hang":
        return { actor: dyingName, label: "HANGS (sessions stay open)", input: "hang" };
      case "resume":
        return { actor: dyingName, label: "resumes", input: "resume" };
      case "detach":
        return { actor: takeoverName(lay, a.x), label: `KILL ${a.conn} on ${sc.shards[a.s]} (rule 5: detach)`, input: "detach" };
      default:
        // request, and the shards' faults: the world's own steps.
        return as(from, to, a, null, null, plain, null);
    }
  };
}
