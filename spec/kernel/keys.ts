/**
 * How effects and results pair up: the keys that match a result to the
 * effect it answers (same kind, same branch or key). The interpreter and
 * trace validation use them (where an effect goes, and how it is labelled,
 * is spec/labels.ts).
 */
import type { Effect, Result } from "./effects.ts";

/** Pairs an effect with its result: same kind, same branch or key. */
export function effectKey(e: Effect): string {
  switch (e.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
    case "local.apply":
    case "local.tombstone":
    case "local.compensate":
    case "local.release":
      return `${e.t}|${e.shard}|${e.tx}`;
    case "xa.recover":
    case "local.scan":
      return `${e.t}|${e.shard}`;
    case "xa.kill":
      return `${e.t}|${e.shard}|${e.conn}`;
    case "log.put":
    case "log.delete":
      return `${e.t}|${e.key}`;
    case "log.list":
    case "reply":
    case "timer":
      return e.t;
  }
}

/** The effect key a result answers; null for inputs that answer no effect (a request, a scan, a timeout). */
export function resultKey(r: Result | { readonly t: "request" | "scan" | "probe" }): string | null {
  switch (r.t) {
    case "xa.exec":
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
    case "local.apply":
    case "local.tombstone":
    case "local.compensate":
    case "local.release":
      return `${r.t}|${r.shard}|${r.tx}`;
    case "xa.recover":
    case "local.scan":
      return `${r.t}|${r.shard}`;
    case "xa.kill":
      return `${r.t}|${r.shard}|${r.conn}`;
    case "log.put":
    case "log.delete":
      return `${r.t}|${r.key}`;
    case "log.list":
      return r.t;
    case "timeout":
      return null;
    default:
      return null;
  }
}


