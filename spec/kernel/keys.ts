/**
 * How effects and results pair up: the keys that match a result to the
 * effect it answers (same kind, same branch or key). The interpreter and
 * trace validation use them (where an effect goes, and how it is labelled,
 * is spec/labels.ts).
 */
import type { Effect, Result } from "./effects.ts";

/** What, besides its kind, tells one effect of a kind from another (and its result from theirs). */
type Pairing = "branch" | "shard" | "conn" | "key" | "kind";

/** Every effect kind has one (the Record makes a new kind without one a type error). */
const PAIRING: Readonly<Record<Effect["t"], Pairing>> = {
  "xa.exec": "branch",
  "xa.prepare": "branch",
  "xa.commit": "branch",
  "xa.rollback": "branch",
  "local.apply": "branch",
  "local.tombstone": "branch",
  "local.compensate": "branch",
  "local.release": "branch",
  "xa.recover": "shard",
  "local.scan": "shard",
  "xa.kill": "conn",
  "log.put": "key",
  "log.delete": "key",
  "log.list": "kind",
  reply: "kind",
  timer: "kind",
};

interface Keyed {
  readonly t: string;
  readonly shard?: string;
  readonly tx?: string;
  readonly conn?: string | null;
  readonly key?: string;
}

/** The pairing key of an effect or a result of kind `x.t`; null when no effect has that kind. */
function pairKey(x: Keyed): string | null {
  if (!Object.hasOwn(PAIRING, x.t)) return null;
  switch (PAIRING[x.t as Effect["t"]]) {
    case "branch":
      return `${x.t}|${x.shard}|${x.tx}`;
    case "shard":
      return `${x.t}|${x.shard}`;
    case "conn":
      return `${x.t}|${x.shard}|${x.conn}`;
    case "key":
      return `${x.t}|${x.key}`;
    case "kind":
      return x.t;
  }
}

/** Pairs an effect with its result: same kind, same branch or key. */
export function effectKey(e: Effect): string {
  return pairKey(e as Keyed)!;
}

/**
 * The effect key a result answers; null for inputs that answer no effect (a
 * request, a scan, a timeout: a timer's answer is its own input, not paired).
 */
export function resultKey(r: Result | { readonly t: "request" | "scan" | "probe" }): string | null {
  if (r.t === "timeout") return null;
  return pairKey(r as Keyed);
}
