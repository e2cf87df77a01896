/**
 * How a step of the world draws in a sequence diagram: who acted, what it
 * sent and received. A completed effect draws as the environment's step
 * (it received the request and answers) followed by the asker's step (it
 * hears the answer and sends what it asks next); a reply the client hears
 * draws as a step of the client's own.
 */
import type { Effect } from "../kernel/effects.ts";
import type { Msg, StepInfo } from "../kernel/model.ts";
import { canonicalJson } from "../env/canonical.ts";
import type { Action, Flight, Scenario, World } from "./types.ts";

/** The lifeline an effect goes to. */
export const actorOfEffect = (fx: Effect): string =>
  "shard" in fx ? fx.shard : fx.t === "reply" ? "client" : fx.t === "timer" ? "timer" : "txlog";

/** An effect as a diagram labels a message. */
export function effectLabel(fx: Effect): string {
  switch (fx.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
      return `${fx.t.slice(3).toUpperCase()} ${fx.tx}`;
    case "xa.recover":
      return "XA RECOVER";
    case "xa.kill":
      return `KILL ${fx.conn}`;
    case "local.apply":
      return `APPLY ${fx.tx} ${fx.ops.map((o) => `${o.account}:${o.delta > 0 ? "+" : ""}${o.delta}`).join(" ")}${fx.parts === "both" ? "" : ` (${fx.parts} only)`}${fx.escrow ? "" : " (no escrow)"}`;
    case "local.tombstone":
      return `TOMBSTONE ${fx.tx}`;
    case "local.compensate":
      return `COMPENSATE ${fx.tx}${fx.retire ? "" : " (row kept)"}`;
    case "local.release":
      return `RELEASE ${fx.tx}${fx.row === "retire" ? "" : " (row deleted)"}`;
    case "local.scan":
      return "SCAN undo";
    case "log.put": {
      const v = fx.value;
      const what =
        v.kind === "decision" ? v.decision.toUpperCase() : v.kind === "staging" ? `STAGING[${v.branches.map((b) => b.conn).join(" ")}]` : v.kind === "spec" ? v.state : "new epoch";
      return `put ${fx.key}=${what} if v${fx.ifVersion}`;
    }
    case "log.list":
      return `list ${fx.prefix}*`;
    case "log.delete":
      return `delete ${fx.key}`;
    case "reply":
      return `${fx.outcome.status}${fx.outcome.status === "aborted" ? ` (${fx.outcome.reason})` : ""}`;
    case "timer":
      return `timer ${fx.id}`;
  }
}

export function describer<W extends World>(sc: Scenario, key: (f: Flight) => string): (from: W, a: Action, to: W) => StepInfo | StepInfo[] {
  const ownerName = (owner: number): string => (owner < 0 ? "resolver" : `coord(${sc.txs[owner]!.id})`);
  const msgId = (owner: number, fx: Effect): string => `${ownerName(owner)}:${canonicalJson(fx)}`;
  const replyMsg = (owner: number, to: W): Msg => {
    const o = to.told[owner]!;
    return { id: `reply:${sc.txs[owner]!.id}`, from: ownerName(owner), to: "client", label: o.status === "aborted" ? `aborted (${o.reason})` : o.status };
  };
  const replied = (owner: number, before: W, after: W): boolean => owner >= 0 && before.told[owner] !== after.told[owner];
  const sendsOf = (owner: number, before: W, after: W): Msg[] => {
    const had = new Set(before.flights.map(key));
    const sends = after.flights
      .filter((f) => f.owner === owner && !f.orphan && !had.has(key(f)) && f.fx.t !== "timer")
      .map((f) => ({ id: msgId(owner, f.fx), from: ownerName(owner), to: actorOfEffect(f.fx), label: effectLabel(f.fx) }));
    return replied(owner, before, after) ? [...sends, replyMsg(owner, after)] : sends;
  };
  /** The client's side of a reply sent in this action, drawn as a step of its own. */
  const clientHears = (owner: number, before: W, after: W): StepInfo[] =>
    replied(owner, before, after) ? [{ actor: "client", label: `hears ${replyMsg(owner, after).label}`, receives: [replyMsg(owner, after)] }] : [];

  function completed(from: W, a: Extract<Action, { k: "complete" }>, to: W): StepInfo | StepInfo[] {
    const f = from.flights[a.i]!;
    if (f.fx.t === "timer") return [{ actor: ownerName(f.owner), label: `timeout ${f.fx.id}`, sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
    const env = actorOfEffect(f.fx);
    const req = { id: msgId(f.owner, f.fx), from: ownerName(f.owner), to: env, label: effectLabel(f.fx) };
    const envStep: StepInfo = { actor: env, label: `${effectLabel(f.fx)} -> ${a.label}${f.orphan ? " (orphan)" : ""}`, receives: [req] };
    if (f.orphan) return envStep;
    const ans = { id: `${req.id}->${a.label}`, from: env, to: ownerName(f.owner), label: a.label };
    return [
      { ...envStep, sends: [ans] },
      { actor: ownerName(f.owner), label: `on ${a.label}`, receives: [ans], sends: sendsOf(f.owner, from, to) },
      ...clientHears(f.owner, from, to),
    ];
  }

  return (from, a, to) => {
    switch (a.k) {
      case "request":
        return [{ actor: ownerName(a.tx), label: `request ${sc.txs[a.tx]!.id}`, sends: sendsOf(a.tx, from, to) }, ...clientHears(a.tx, from, to)];
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
