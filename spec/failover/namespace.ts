/**
 * A coordinator node's namespace (docs/protocols/failover.md): the roles of
 * node N run unchanged, and see only N's part of the shared world. Their
 * txlog keys live under `N/` (the decision records, the EPOCH key: so each
 * node has its own epoch, and a survivor taking over N takes a new epoch of
 * N's, the fence); XA RECOVER shows them N's xids only (each node names its
 * own branches), and a scan of the undo rows its speculations (runtime/nodes.ts
 * NodeLocal). This is what the runtime's adapters do for a node; the
 * failover model (./model.ts) does it between the roles and the environment
 * models, in both directions.
 *
 * The owner claims (spec/kernel/effects.ts ownerKey) are outside every
 * namespace: the takeover role (./takeover.ts) writes them as they are.
 */
import type { Effect, LogEntry, Result, TxId } from "../kernel/effects.ts";

export interface Namespace {
  /** The node's name: its keys are `${node}/...`. */
  readonly node: string;
  /** The transactions the node runs (its xids). */
  owns(tx: TxId): boolean;
}

const under = (ns: Namespace, key: string): string => `${ns.node}/${key}`;
const strip = (ns: Namespace, key: string): string => key.slice(ns.node.length + 1);

/** An effect of a role of `ns`, as the environment gets it. */
export function intoNamespace(ns: Namespace, fx: Effect): Effect {
  switch (fx.t) {
    case "log.put":
    case "log.delete":
      return { ...fx, key: under(ns, fx.key), ...(fx.fence !== undefined ? { fence: { ...fx.fence, key: under(ns, fx.fence.key) } } : {}) };
    case "log.list":
      return { ...fx, prefix: under(ns, fx.prefix) };
    default:
      return fx;
  }
}

/** How a role of `ns` hears a result of the environment: its own keys, its own xids. */
export function fromNamespace(ns: Namespace, r: Result, read: (e: LogEntry) => LogEntry = (e) => e): Result {
  switch (r.t) {
    case "log.put":
    case "log.delete":
      return { ...r, key: strip(ns, r.key) } as Result;
    case "log.list":
      return r.r.ok ? { ...r, r: { ok: true, entries: r.r.entries.map((e) => read({ ...e, key: strip(ns, e.key) })) } } : r;
    case "xa.recover":
      return r.r.ok ? { ...r, r: { ok: true, prepared: r.r.prepared.filter((x) => ns.owns(x.tx)) } } : r;
    case "local.scan":
      return r.r.ok ? { ...r, r: { ok: true, rows: r.r.rows.filter((x) => ns.owns(x.tx)) } } : r;
    default:
      return r;
  }
}

/** The shared log as one node's roles would see it alone: the namespaces' keys without their prefix, the owner claims left out. */
export function mergedEntries(entries: readonly LogEntry[], nodes: readonly string[]): LogEntry[] {
  const out: LogEntry[] = [];
  for (const e of entries) {
    const node = nodes.find((n) => e.key.startsWith(`${n}/`));
    if (node !== undefined) out.push({ ...e, key: e.key.slice(node.length + 1) });
  }
  return out;
}
