/**
 * Builds a protocol's declared value (./protocol.ts) from what differs
 * between protocols, so that a protocol's index.ts names only its own parts.
 * What every protocol shares is derived here once: the coordinator role from
 * the server's settings, its `done`, the trace header model (its checker
 * model's name + ".coordinator") and the probe's role.
 */
import type { CoordinatorRole, CoordinatorSettings, Phased, ProbePart, Protocol } from "./protocol.ts";

/** What a protocol's folder declares: the fields of its `Protocol` that are its own, its roles' modules, and whether it speculates (default false). */
export type ProtocolDeclaration<N extends string> = Pick<Protocol, "title" | "doc" | "needs" | "resolver" | "records" | "readBack" | "properties" | "model"> & {
  readonly name: N;
  readonly speculates?: boolean;
  /** Its ./coordinator.ts: the role from the settings, and when it has nothing left to do. */
  readonly roles: { coordinator(s: CoordinatorSettings): CoordinatorRole; coordinatorDone(st: any): boolean };
  /** Its probe module, when its read-back rule needs one. */
  readonly probe?: { prober: ProbePart["role"]; probeDone(st: any): boolean };
};

export function declareProtocol<const N extends string>(d: ProtocolDeclaration<N>): Protocol & { readonly name: N } {
  const { roles, probe, speculates, ...own } = d;
  return {
    ...own,
    traceModel: `${d.model.name}.coordinator`,
    speculates: speculates ?? false,
    coordinator: (s) => roles.coordinator(s),
    done: (st: Phased) => roles.coordinatorDone(st),
    ...(probe === undefined ? {} : { probe: { role: (s) => probe.prober(s), done: (st: Phased) => probe.probeDone(st) } satisfies ProbePart }),
  };
}
