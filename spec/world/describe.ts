/**
 * How a step of the world draws in a sequence diagram (Model.describe,
 * docs/traces.md): who acted, what it sent and received. Every effect and
 * answer is labelled by spec/labels.ts, as the server labels a live
 * transaction, so that a counterexample and a live diagram read the same
 * way. A completed effect draws as the environment's step (it received the
 * request and answers) followed by the asker's step (it hears the answer and
 * sends what it asks next); a reply the client hears draws as a step of the
 * client's own. Only traces use this: the state space does not depend on it.
 */
import type { Msg, StepInfo } from "../kernel/model.ts";
import { canonicalJson } from "../env/canonical.ts";
import { effectLabel, exchangeLabel, heardLabel, requestLabel, targetOf, type Context } from "../labels.ts";
import type { Action, Flight, Scenario, World } from "./types.ts";

export function describer<W extends World>(sc: Scenario, key: (f: Flight) => string): (from: W, a: Action, to: W) => StepInfo | StepInfo[] {
  // A counterexample of one transfer is about that transaction: its id is left out of labels, as in a live trace.
  const ctx: Context = sc.txs.length === 1 ? { tx: sc.txs[0]!.id } : {};
  const ownerName = (owner: number): string => (owner < 0 ? "resolver" : `coord(${sc.txs[owner]!.id})`);
  const envOf = (f: Flight): string => targetOf(f.fx) ?? "timer";
  const requestMsg = (f: Flight): Msg => ({ id: `${ownerName(f.owner)}:${canonicalJson(f.fx)}`, from: ownerName(f.owner), to: envOf(f), label: effectLabel(f.fx, ctx) });
  const replyMsg = (owner: number, to: W): Msg => {
    const reply = { t: "reply", tx: sc.txs[owner]!.id, outcome: to.told[owner]! } as const;
    return { id: `reply:${reply.tx}`, from: ownerName(owner), to: "client", label: effectLabel(reply, ctx) };
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
    replied(owner, before, after) ? [{ actor: "client", label: heardLabel(after.told[owner]!), receives: [replyMsg(owner, after)] }] : [];

  function completed(from: W, a: Extract<Action, { k: "complete" }>, to: W): StepInfo | StepInfo[] {
    const f = from.flights[a.i]!;
    const owner = ownerName(f.owner);
    if (f.fx.t === "timer") return [{ actor: owner, label: `timeout ${f.fx.id}`, sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
    const req = requestMsg(f);
    const said = exchangeLabel(req.label, a.label);
    if (f.orphan) return { actor: req.to, label: `${said} (orphan)`, receives: [req] };
    const ans: Msg = { id: `${req.id}->${a.label}`, from: req.to, to: owner, label: a.label };
    return [
      { actor: req.to, label: said, receives: [req], sends: [ans] },
      { actor: owner, label: said, receives: [ans], sends: sendsOf(f.owner, from, to) },
      ...clientHears(f.owner, from, to),
    ];
  }

  return (from, a, to) => {
    switch (a.k) {
      case "request": {
        const tx = sc.txs[a.tx]!;
        return [{ actor: ownerName(a.tx), label: requestLabel(tx.id, tx.branches.length, ctx), sends: sendsOf(a.tx, from, to) }, ...clientHears(a.tx, from, to)];
      }
      case "complete":
        return completed(from, a, to);
      case "scan":
        return { actor: "resolver", label: "scan", sends: sendsOf(-1, from, to) };
      case "crash":
        return { actor: "process", label: "CRASH (coordinators + resolver)" };
      case "restart":
        return { actor: "process", label: "restart" };
      case "shardCrash":
        return { actor: sc.shards[a.s]!, label: a.o === 0 ? "CRASH (kill -9)" : `CRASH (kill -9; ${a.o} acknowledged rollback(s) lost)` };
      case "shardRestart":
        return { actor: sc.shards[a.s]!, label: "restart" };
      case "notice":
        return { actor: sc.shards[a.s]!, label: `drops dead connection ${a.conn}` };
    }
  };
}
