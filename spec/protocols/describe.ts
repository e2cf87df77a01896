/**
 * How a protocol model's steps draw as a sequence diagram (Model.describe,
 * docs/traces.md), for the models built from roles and effects in flight
 * (compose.ts for 2PC and parallel commit, speculative/model.ts): a request,
 * an effect completing, a resolver scan. Every effect and answer is labelled
 * by spec/labels.ts, as the server labels a live transaction, so that a
 * counterexample and a live diagram read the same way. Only traces use
 * this: the state space does not depend on it.
 */
import type { StepInfo } from "../../checker/model.ts";
import type { Outcome, TxId } from "../effects.ts";
import { canonicalJson } from "../env/canonical.ts";
import { effectLabel, exchangeLabel, heardLabel, requestLabel, targetOf, type AnyEffect, type Context } from "../labels.ts";

/** An effect on its way, asked for by `owner` (a transaction index, or -1 for the resolver). */
export interface FlightLike {
  readonly owner: number;
  readonly fx: AnyEffect;
  /** Its asker died: it may still take effect, and nobody hears the answer. */
  readonly orphan: boolean;
}

export interface WorldLike<F extends FlightLike> {
  readonly flights: readonly F[];
  readonly told: readonly (Outcome | null)[];
}

type Msg = NonNullable<StepInfo["sends"]>[number];

export interface Describer<W> {
  /** The client's request reaching transaction `t`'s coordinator. */
  request(t: number, from: W, to: W): StepInfo[];
  /** Flight `i` of `from` completing with `answer` (answerLabel's text, or what the environment did instead). */
  complete(i: number, answer: string, from: W, to: W): StepInfo | StepInfo[];
  /** A resolver scan tick. */
  scan(from: W, to: W): StepInfo;
}

export function describer<F extends FlightLike, W extends WorldLike<F>>(
  txs: readonly { readonly id: TxId; readonly branches: readonly unknown[] }[],
  flightKey: (f: F) => string,
): Describer<W> {
  // A counterexample of one transfer is about that transaction: its id is left out of labels, as in a live trace.
  const ctx: Context = txs.length === 1 ? { tx: txs[0]!.id } : {};
  const ownerName = (owner: number): string => (owner < 0 ? "resolver" : `coord(${txs[owner]!.id})`);
  const envOf = (fx: AnyEffect): string => targetOf(fx) ?? "timer";
  const requestMsg = (f: F): Msg => ({ id: `${ownerName(f.owner)}:${canonicalJson(f.fx)}`, from: ownerName(f.owner), to: envOf(f.fx), label: effectLabel(f.fx, ctx) });
  const replyMsg = (owner: number, to: W): Msg => {
    const reply = { t: "reply", tx: txs[owner]!.id, outcome: to.told[owner]! } as const;
    return { id: `reply:${reply.tx}`, from: ownerName(owner), to: "client", label: effectLabel(reply, ctx) };
  };
  const replied = (owner: number, before: W, after: W): boolean => owner >= 0 && before.told[owner] !== after.told[owner];

  /** What `owner` sent in this action: the effects it launched (timers draw no arrow) and its reply. */
  function sendsOf(owner: number, before: W, after: W): Msg[] {
    const had = new Set(before.flights.map(flightKey));
    const sends = after.flights.filter((f) => f.owner === owner && !f.orphan && !had.has(flightKey(f)) && f.fx.t !== "timer").map(requestMsg);
    return replied(owner, before, after) ? [...sends, replyMsg(owner, after)] : sends;
  }

  /** The client's side of a reply sent in this action, drawn as a step of its own. */
  const clientHears = (owner: number, before: W, after: W): StepInfo[] =>
    replied(owner, before, after) ? [{ actor: "client", label: heardLabel(after.told[owner]!), receives: [replyMsg(owner, after)] }] : [];

  return {
    request: (t, from, to) => [
      { actor: ownerName(t), label: requestLabel(txs[t]!.id, txs[t]!.branches.length, ctx), sends: sendsOf(t, from, to) },
      ...clientHears(t, from, to),
    ],
    complete(i, answer, from, to) {
      const f = from.flights[i]!;
      const owner = ownerName(f.owner);
      if (f.fx.t === "timer") return [{ actor: owner, label: `timeout ${f.fx.id}`, sends: sendsOf(f.owner, from, to) }, ...clientHears(f.owner, from, to)];
      const req = requestMsg(f);
      const said = exchangeLabel(req.label, answer);
      if (f.orphan) return { actor: req.to, label: `${said} (orphan)`, receives: [req] };
      const ans: Msg = { id: `${req.id}->${answer}`, from: req.to, to: owner, label: answer };
      return [
        { actor: req.to, label: said, receives: [req], sends: [ans] },
        { actor: owner, label: said, receives: [ans], sends: sendsOf(f.owner, from, to) },
        ...clientHears(f.owner, from, to),
      ];
    },
    scan: (from, to) => ({ actor: "resolver", label: "scan", sends: sendsOf(-1, from, to) }),
  };
}
