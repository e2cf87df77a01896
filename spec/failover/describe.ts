/**
 * How a step of the failover world (./model.ts) is recorded in a trace
 * (docs/traces.md), in the dialect of spec/world/describe.ts: a role's step
 * carries the input it was fed and the effects it asked for, an
 * environment's step what it did; effects and answers are labelled by
 * spec/labels.ts. Actors: each transaction's coordinator, each process
 * resolver (`resolver(n2)` is n2's own; `resolver(n1 for n2)` the one a
 * survivor runs over n2's namespace), each takeover role
 * (`takeover(n1 for n2)`), the nodes (crash, restart, the lease), the txlog
 * and the shards.
 */
import type { Msg, StepInfo } from "../kernel/model.ts";
import type { Effect, Result } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, lifelineOf } from "../kernel/trace.ts";
import { canonicalJson } from "../env/canonical.ts";
import { effectLabel, exchangeLabel, heardLabel, requestLabel, targetOf } from "../labels.ts";
import type { Flight, Scenario } from "../world/types.ts";
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

export function failoverDescriber(sc: Scenario, lay: FailoverLayout, key: (f: Flight) => string, roles: FailoverRoles): (from: W, a: FailoverAction, to: W) => StepInfo | StepInfo[] {
  const ownerName = (owner: number): string => {
    const o = ownerKind(owner);
    return o.k === "coord" ? lifelineOf(COORDINATOR_ACTOR, sc.txs[o.t]!.id) : o.k === "resolver" ? resolverName(lay, o.r) : takeoverName(lay, o.x);
  };
  const requestMsg = (f: Flight): Msg => ({ id: `${ownerName(f.owner)}:${canonicalJson(f.fx)}`, from: ownerName(f.owner), to: targetOf(f.fx) ?? "timer", label: effectLabel(f.fx) });
  const replied = (owner: number, before: W, after: W): boolean => owner >= 0 && before.told[owner] !== after.told[owner];
  const replyMsg = (owner: number, to: W): Msg => ({ id: `reply:${sc.txs[owner]!.id}`, from: ownerName(owner), to: CLIENT_ACTOR, label: effectLabel({ t: "reply", tx: sc.txs[owner]!.id, outcome: to.told[owner]! }) });

  function sendsOf(owner: number, before: W, after: W): Msg[] {
    const had = new Set(before.flights.map(key));
    const sends = after.flights.filter((f) => f.owner === owner && !f.orphan && !had.has(key(f)) && f.fx.t !== "timer").map(requestMsg);
    return replied(owner, before, after) ? [...sends, replyMsg(owner, after)] : sends;
  }
  const clientHears = (owner: number, before: W, after: W): StepInfo[] =>
    replied(owner, before, after) ? [{ actor: CLIENT_ACTOR, label: heardLabel(after.told[owner]!), input: "reply", receives: [replyMsg(owner, after)] }] : [];

  /** Role `owner`'s step on `input`: its actor, its input and the effects it asks for. */
  function roleStep(from: W, owner: number, input: unknown, label: string): StepInfo {
    const o = ownerKind(owner);
    if (o.k === "coord") return { actor: COORDINATOR_ACTOR, tx: sc.txs[o.t]!.id, label, input, effects: roles.coord.step(from.coords[o.t]!.st, input).effects };
    if (o.k === "resolver") return { actor: ownerName(owner), label, input, effects: roles.resolvers[o.r]!.step(from.resolvers[o.r]!, input).effects };
    return { actor: ownerName(owner), label, input, effects: roles.takeovers[o.x]!.step(from.takeovers[o.x]!, input).effects };
  }

  function completed(from: W, a: Extract<FailoverAction, { k: "complete" }>, to: W): StepInfo | StepInfo[] {
    const f = from.flights[a.i]!;
    const result = roles.resultOf(from, a);
    const dead = f.owner >= 0 && !from.coords[f.owner]!.alive;
    const req = requestMsg(f);
    const said = exchangeLabel(req.label, a.label);
    if (f.fx.t === "timer" && (result === null || f.orphan || dead)) return { actor: "timer", label: `timeout ${f.fx.id} (nobody hears it)`, input: "timeout" };
    if (f.fx.t === "timer") return [{ ...roleStep(from, f.owner, result, `timeout ${f.fx.id}`), sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
    if (f.orphan || result === null || dead) return { actor: req.to, label: `${said} (${f.orphan ? "orphan" : "nobody hears it"})`, input: req.label, receives: [req] };
    const ans: Msg = { id: `${req.id}->${a.label}`, from: req.to, to: ownerName(f.owner), label: a.label };
    return [
      { actor: req.to, label: said, input: req.label, receives: [req], sends: [ans] },
      { ...roleStep(from, f.owner, roles.heard(f.owner, result), said), receives: [ans], sends: sendsOf(f.owner, from, to) },
      ...clientHears(f.owner, from, to),
    ];
  }

  const dyingName = lay.nodes[lay.dying]!;
  return (from, a, to) => {
    switch (a.k) {
      case "request": {
        const tx = sc.txs[a.tx]!;
        return [{ ...roleStep(from, a.tx, roles.requestOf(from, a.tx), requestLabel(tx.id, tx.branches.length)), sends: sendsOf(a.tx, from, to) }, ...clientHears(a.tx, from, to)];
      }
      case "complete":
        return completed(from, a, to);
      case "scan":
        return { ...roleStep(from, resolverOwner(a.r), roles.scanOf(from, a.r), "scan"), sends: sendsOf(resolverOwner(a.r), from, to) };
      case "watch": {
        const obs = roles.observation(from) as { alive: boolean };
        return { ...roleStep(from, takeoverOwner(a.x), obs, `sees ${dyingName}'s lease ${obs.alive ? "alive" : "expired"}`), sends: sendsOf(takeoverOwner(a.x), from, to) };
      }
      case "crash":
        return { actor: dyingName, label: "CRASH (its coordinators + resolver)", input: "crash" };
      case "restart":
        return { actor: dyingName, label: "restart (new lease)", input: "restart" };
      case "expire":
        return { actor: dyingName, label: from.nodes[lay.dying]!.up ? "lease EXPIRES (node alive, slow)" : "lease expires", input: "expire" };
      case "renew":
        return { actor: dyingName, label: "lease renewed", input: "renew" };
      case "shardCrash":
        return { actor: sc.shards[a.s]!, label: a.o === 0 ? "CRASH (kill -9)" : `CRASH (kill -9; ${a.o} acknowledged rollback(s) lost)`, input: "crash" };
      case "shardRestart":
        return { actor: sc.shards[a.s]!, label: "restart", input: "restart" };
      case "notice":
        return { actor: sc.shards[a.s]!, label: `drops dead connection ${a.conn}`, input: "notice" };
    }
  };
}
