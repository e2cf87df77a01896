/**
 * Every protocol the project has, registered once. Each is one folder
 * exporting one declared value (./protocol.ts); every list of protocols is
 * derived from REGISTRY: the API's and the configuration's names, the
 * checker's models, the process resolver's parts, the txlog's record kinds,
 * metrics labels, the benchmark's --compare. Adding a protocol is a folder
 * and a line here (docs/architecture.md, "Adding a protocol").
 */
import type { Protocol, ResolverPart } from "./protocol.ts";
import { twopc } from "./twopc/index.ts";
import { parallel } from "./parallel/index.ts";
import { speculative } from "./speculative/index.ts";
import type { XaGhost } from "./xa/world.ts";
import type { Ghost as SpeculativeGhost } from "./speculative/model.ts";

export const REGISTRY = [twopc, parallel, speculative] as const satisfies readonly Protocol[];

export type ProtocolName = (typeof REGISTRY)[number]["name"];
export const PROTOCOLS: readonly ProtocolName[] = REGISTRY.map((p) => p.name);

/** The protocol of a request that names none. */
export const DEFAULT_PROTOCOL: ProtocolName = twopc.name;

/**
 * The protocol whose coordinator takes every transaction of ONE branch,
 * whatever protocol the request named (spec/server/coordinator.ts): 2PC's
 * XA COMMIT ... ONE PHASE, with no prepare and no record. With one branch
 * there is no one to agree with and nothing to undo.
 */
export const ONE_PHASE: Protocol = twopc;

export const isProtocolName = (name: string): name is ProtocolName => (PROTOCOLS as readonly string[]).includes(name);

export function protocolNamed(name: string): Protocol {
  const p = REGISTRY.find((x) => x.name === name);
  if (p === undefined) throw new Error(`protocol ${JSON.stringify(name)} is not registered (registered: ${PROTOCOLS.join(", ")})`);
  return p;
}

/** The protocol whose live coordinator traces carry this header `model`, if any. */
export const protocolOfTraceModel = (model: string): Protocol | undefined => REGISTRY.find((p) => p.traceModel === model);

/** The process resolver's parts, each once, in registry order (2PC and parallel commit share the XA part). */
export const RESOLVER_PARTS: readonly ResolverPart[] = REGISTRY.map((p) => p.resolver).filter((r, i, all) => all.findIndex((x) => x.name === r.name) === i);

/** Every kind of txlog record some protocol writes. */
export const RECORD_KINDS: readonly string[] = [...new Set(REGISTRY.flatMap((p) => p.records))];

/** The ghost variables of every registered protocol's model: what a world running them all side by side records (the server model). */
export type RegisteredGhost = XaGhost & SpeculativeGhost;
