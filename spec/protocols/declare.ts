/**
 * Builds a protocol's declared value (./protocol.ts) from what differs
 * between protocols, so that a protocol's index.ts names only its own parts.
 * What every protocol shares is derived here once: the coordinator role from
 * the server's settings, its `done`, the trace header model (its checker
 * model's name + ".coordinator") and the probe's role.
 */
import type { CoordinatorRole, CoordinatorSettings, Phased, ProbePart, Protocol, ProtocolProperties, ReadBackRule, ResolverPart, ShardKind } from "./protocol.ts";
import type { ModelFactory } from "../kernel/model.ts";

/** What a protocol's folder declares: its names, its roles' modules, its resolver part, records, read-back rule, properties and model. */
export interface ProtocolDeclaration<N extends string> {
  readonly name: N;
  readonly title: string;
  readonly doc: string;
  readonly needs: ShardKind;
  /** Default false. */
  readonly speculates?: boolean;
  /** Its ./coordinator.ts: the role from the settings, and when it has nothing left to do. */
  readonly roles: { coordinator(s: CoordinatorSettings): CoordinatorRole; coordinatorDone(st: any): boolean };
  readonly resolver: ResolverPart;
  readonly records: readonly string[];
  readonly readBack: ReadBackRule;
  /** Its probe module, when its read-back rule needs one. */
  readonly probe?: { prober: ProbePart["role"]; probeDone(st: any): boolean };
  readonly properties: ProtocolProperties;
  readonly model: ModelFactory;
}

export function declareProtocol<const N extends string>(d: ProtocolDeclaration<N>): Protocol & { readonly name: N } {
  const probe = d.probe;
  return {
    name: d.name,
    title: d.title,
    doc: d.doc,
    traceModel: `${d.model.name}.coordinator`,
    needs: d.needs,
    speculates: d.speculates ?? false,
    coordinator: (s) => d.roles.coordinator(s),
    done: (st: Phased) => d.roles.coordinatorDone(st),
    resolver: d.resolver,
    records: d.records,
    readBack: d.readBack,
    ...(probe === undefined ? {} : { probe: { role: (s) => probe.prober(s), done: (st: Phased) => probe.probeDone(st) } satisfies ProbePart }),
    properties: d.properties,
    model: d.model,
  };
}
