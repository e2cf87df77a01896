/**
 * How a step of the world is recorded in a trace (Model.describe,
 * docs/traces.md), in the dialect the server records a live transaction in:
 * a role's step names the role as the server does (`coordinator` with its
 * transaction, `resolver`) and carries the input the role was fed and the
 * effects it asked for; an environment's step (a shard, the txlog, the
 * client, the process) carries what it did in words. Every effect and answer
 * is labelled by spec/labels.ts, as the server labels them, so that a
 * counterexample and a live diagram read the same way. A completed effect
 * draws as the environment's step (it received the request and answers)
 * followed by the asker's step (it hears the answer and sends what it asks
 * next); a reply the client hears draws as a step of the client's own.
 *
 * Only traces use this: the state space does not depend on it. The role
 * steps are computed again from the state before the action (roles are
 * pure), with the very inputs `next` feeds them (./world.ts, `RoleInputs`).
 */
import type { Msg, StepInfo } from "../kernel/model.ts";
import type { Effect, Result } from "../kernel/effects.ts";
import type { Role } from "../kernel/role.ts";
import { CLIENT_ACTOR, COORDINATOR_ACTOR, PROCESS_ACTOR, PROCESS_CRASH, RESOLVER_ACTOR, lifelineOf } from "../kernel/trace.ts";
import { canonicalJson } from "../env/canonical.ts";
import { answerLabel as answerLabelOf, effectLabel, exchangeLabel, heardLabel, requestLabel, targetOf, type Context } from "../labels.ts";
import type { Action, BatchAction, Flight, Scenario, World } from "./types.ts";

/** What the world feeds its roles, as `next` computes it, so that a recorded step has the very input the role got. */
export interface RoleInputs<W> {
  readonly coordinator: Role<any, any, Effect>;
  readonly resolver: Role<any, any, Effect>;
  /** The client's request for transaction `t`. */
  request(w: W, t: number): unknown;
  /** The resolver's scan tick. */
  scan(w: W): unknown;
  /** The result the asker hears when flight `a.i` completes with outcome `a.o` (null: nobody hears anything). */
  result(w: W, a: Extract<Action, { k: "complete" }>): Result | null;
  /** What the asker of the `k`-th write of a failed log batch hears. */
  batchResult(w: W, a: BatchAction, k: number): Result;
}

export function describer<W extends World>(sc: Scenario, key: (f: Flight) => string, roles: RoleInputs<W>): (from: W, a: Action, to: W) => StepInfo | StepInfo[] {
  // A counterexample of one transfer is about that transaction: its id is left out of labels, as in a live trace.
  const ctx: Context = sc.txs.length === 1 ? { tx: sc.txs[0]!.id } : {};
  const ownerName = (owner: number): string => (owner < 0 ? RESOLVER_ACTOR : lifelineOf(COORDINATOR_ACTOR, sc.txs[owner]!.id));
  const envOf = (f: Flight): string => targetOf(f.fx) ?? "timer";
  const requestMsg = (f: Flight): Msg => ({ id: `${ownerName(f.owner)}:${canonicalJson(f.fx)}`, from: ownerName(f.owner), to: envOf(f), label: effectLabel(f.fx, ctx) });
  const replyMsg = (owner: number, to: W): Msg => {
    const reply = { t: "reply", tx: sc.txs[owner]!.id, outcome: to.told[owner]! } as const;
    return { id: `reply:${reply.tx}`, from: ownerName(owner), to: CLIENT_ACTOR, label: effectLabel(reply, ctx) };
  };
  const replied = (owner: number, before: W, after: W): boolean => owner >= 0 && before.told[owner] !== after.told[owner];

  /** What `owner` sent in this action: the effects it launched (timers draw no arrow) and its reply. */
  function sendsOf(owner: number, before: W, after: W): Msg[] {
    const had = new Set(before.flights.map(key));
    const sends = after.flights.filter((f) => f.owner === owner && !f.orphan && !had.has(key(f)) && f.fx.t !== "timer").map(requestMsg);
    return replied(owner, before, after) ? [...sends, replyMsg(owner, after)] : sends;
  }

  /** The client's side of a reply sent in this action, drawn as a step of its own. */
  const clientHears = (owner: number, before: W, after: W): StepInfo[] =>
    replied(owner, before, after) ? [{ actor: CLIENT_ACTOR, label: heardLabel(after.told[owner]!), input: "reply", receives: [replyMsg(owner, after)] }] : [];

  /** Role `owner`'s step on `input` from the world `from`: its actor, its input and the effects it asks for. */
  function roleStep(from: W, owner: number, input: unknown, label: string): StepInfo {
    if (owner < 0) return { actor: RESOLVER_ACTOR, label, input, effects: roles.resolver.step(from.resolver, input).effects };
    const effects = roles.coordinator.step(from.coords[owner]!.st, input).effects;
    return { actor: COORDINATOR_ACTOR, tx: sc.txs[owner]!.id, label, input, effects };
  }

  /** Whether the asker of `f` hears `result`: not a dead coordinator, not the owner of an orphan. */
  const hears = (from: W, f: Flight, result: Result | null): result is Result => result !== null && !f.orphan && (f.owner < 0 || from.coords[f.owner]!.alive);

  function completed(from: W, a: Extract<Action, { k: "complete" }>, to: W): StepInfo | StepInfo[] {
    const f = from.flights[a.i]!;
    const owner = ownerName(f.owner);
    const result = roles.result(from, a);
    if (f.fx.t === "timer") {
      if (!hears(from, f, result)) return { actor: "timer", label: `timeout ${f.fx.id} (nobody hears it)`, input: "timeout" };
      return [{ ...roleStep(from, f.owner, result, `timeout ${f.fx.id}`), sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
    }
    const req = requestMsg(f);
    const said = exchangeLabel(req.label, a.label);
    if (f.orphan) return { actor: req.to, label: `${said} (orphan)`, input: req.label, receives: [req] };
    if (!hears(from, f, result)) return { actor: req.to, label: `${said} (nobody hears it)`, input: req.label, receives: [req] };
    const ans: Msg = { id: `${req.id}->${a.label}`, from: req.to, to: owner, label: a.label };
    return [
      { actor: req.to, label: said, input: req.label, receives: [req], sends: [ans] },
      { ...roleStep(from, f.owner, result, said), receives: [ans], sends: sendsOf(f.owner, from, to) },
      ...clientHears(f.owner, from, to),
    ];
  }

  /** A batch failing as a unit: the txlog's one step, then each asker hearing its answer (askers are distinct: each role's step is from `from`). */
  function batched(from: W, a: BatchAction, to: W): StepInfo[] {
    const flights = a.flights.map((i) => from.flights[i]!);
    const reqs = flights.map(requestMsg);
    const steps: StepInfo[] = [{ actor: "txlog", label: `batch of ${flights.length} writes: ${a.o === "acked-unwritten" ? "acknowledged, only the first written" : `UNAVAILABLE (${a.o})`}`, input: "batch", receives: reqs }];
    flights.forEach((f, k) => {
      const r = roles.batchResult(from, a, k);
      const ans: Msg = { id: `${reqs[k]!.id}->batch`, from: "txlog", to: ownerName(f.owner), label: answerLabelOf(r) };
      steps[0] = { ...steps[0]!, sends: [...(steps[0]!.sends ?? []), ans] };
      steps.push({ ...roleStep(from, f.owner, r, exchangeLabel(reqs[k]!.label, ans.label)), receives: [ans], sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to));
    });
    return steps;
  }

  return (from, a, to) => {
    switch (a.k) {
      case "request": {
        const tx = sc.txs[a.tx]!;
        const step = roleStep(from, a.tx, roles.request(from, a.tx), requestLabel(tx.id, tx.branches.length, ctx));
        return [{ ...step, sends: sendsOf(a.tx, from, to) }, ...clientHears(a.tx, from, to)];
      }
      case "complete":
        return completed(from, a, to);
      case "scan":
        return { ...roleStep(from, -1, roles.scan(from), "scan"), sends: sendsOf(-1, from, to) };
      case "crash":
        return { actor: PROCESS_ACTOR, label: "CRASH (coordinators + resolver)", input: PROCESS_CRASH };
      case "restart":
        return { actor: PROCESS_ACTOR, label: "restart", input: "restart" };
      case "shardCrash":
        return { actor: sc.shards[a.s]!, label: a.o === 0 ? "CRASH (kill -9)" : `CRASH (kill -9; ${a.o} acknowledged rollback(s) lost)`, input: "crash" };
      case "shardRestart":
        return { actor: sc.shards[a.s]!, label: "restart", input: "restart" };
      case "notice":
        return { actor: sc.shards[a.s]!, label: `drops dead connection ${a.conn}`, input: "notice" };
      case "logBatch":
        return batched(from, a, to);
    }
  };
}
