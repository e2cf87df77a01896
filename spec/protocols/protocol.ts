/**
 * A commit protocol as one declared value: everything the checker, the
 * server and the docs need from it, exported by the protocol's folder
 * (./twopc/index.ts, ./parallel/index.ts, ./speculative/index.ts) and
 * registered once in ./registry.ts. Every list of protocols (the API's and
 * the configuration's, metrics labels, the benchmark's --compare, the
 * checker's models, the txlog's record kinds) is derived from the registry,
 * so adding a protocol is one folder, one registry line and one document
 * (docs/architecture.md, "Adding a protocol").
 */
import type { Role } from "../kernel/role.ts";
import type { BranchSpec, Effect, LogRecord, Outcome, Result, ShardId, TxId, UndoRowState } from "../kernel/effects.ts";
import type { ModelFactory } from "../kernel/model.ts";
import type { Action, Budget, Scenario } from "../world/types.ts";

/** The coordinator settings the server is configured with (runtime/config.ts), one name per setting, shared by every protocol. */
export interface CoordinatorSettings {
  /**
   * How long the first phase may take before the coordinator gives up on it
   * (`vote_timeout_ms`): 2PC and parallel commit, executing and preparing the
   * branches; the speculative path, the applies.
   */
  readonly voteTimeoutMs: number;
  /** Delay before retrying a failed statement or log write (`retry_delay_ms`). */
  readonly retryDelayMs: number;
  /** Attempts per statement or log write before the work is left to the resolver (`attempts_max`). */
  readonly attemptsMax: number;
}

/** What starts a coordinator: the client's transfer, under the process epoch it writes with. */
export interface Request {
  readonly t: "request";
  readonly tx: TxId;
  readonly branches: readonly BranchSpec[];
  readonly epoch: number;
  /** The protocol the client chose (the server's coordinator dispatches on it; a protocol's own coordinator ignores it). */
  readonly protocol?: string;
}

export type CoordinatorInput = Request | Result;
export type Phased = { readonly phase: string };
/** A coordinator as the engine and the server composition drive it: opaque state with a phase, any effect. */
export type CoordinatorRole = Role<any, CoordinatorInput, Effect>;

export type ResolverInput = { readonly t: "scan"; readonly active: readonly TxId[] } | Result;
/** A resolver's state shows the composition whether it is between scans, and the epoch it writes under. */
export type ResolverLike = { readonly phase: string; readonly epoch: number | null };

/**
 * A part of the process resolver (spec/server/resolver.ts): finishes what
 * coordinators of one or more protocols left behind. 2PC and parallel commit
 * share one ("xa": one decision key per transaction, both record kinds).
 */
export interface ResolverPart {
  readonly name: string;
  /** What the part's shards must run. */
  readonly needs: ShardKind;
  role(shards: readonly ShardId[]): Role<any, ResolverInput, Effect>;
  /** What one of its effects does, as the server counts it (speccommit_resolver_actions_total); null for reads. */
  actionOf(e: Effect): string | null;
  /**
   * The decision an effect of its writes over a record a coordinator left in
   * flight (parallel commit's STAGING), which the server counts once durable
   * (speccommit_staging_recoveries_total); null for every other effect.
   */
  recoveryOf?(e: Effect): "commit" | "abort" | null;
}

/** What a protocol needs of a shard: XA, or one-phase local transactions (with the speculative path's tables). */
export type ShardKind = "xa" | "local";

/**
 * What durable state holds of one transaction: what a process that did not
 * run it (or no longer remembers it) can know. The runtime gathers these
 * facts through its ports (runtime/durable.ts); the server model projects
 * them from the world (spec/server/readback.ts). Neither interprets them:
 * each protocol's `ReadBackRule` does.
 */
export interface DurableFacts {
  /** The txlog records found at the keys the registered rules name (`ReadBackRule.keys`). */
  readonly records: readonly { readonly key: string; readonly value: LogRecord }[];
  /** Shards holding a committed history row of the transaction (the XA part of a shard). */
  readonly history: readonly ShardId[];
  /** Shards where a branch of the transaction is prepared (XA RECOVER). */
  readonly prepared: readonly ShardId[];
  /** The transaction's rows in the shards' undo table (the speculative path's keys). */
  readonly undo: readonly { readonly branch: ShardId; readonly state: UndoRowState; readonly branches: readonly ShardId[] }[];
}

/** The record at `key` among the facts, if one was found. */
export const recordAt = (facts: DurableFacts, key: string): LogRecord | undefined => facts.records.find((r) => r.key === key)?.value;

/**
 * A protocol's read-back rule: what the durable facts of a transaction say
 * of its outcome, as a pure function. GET /transactions/:id, a retried
 * idempotency key and a restarted server all read the outcome through it
 * (spec/server/readback.ts composes the registered rules); the server model
 * checks that it never contradicts the outcome (`readback_sound`).
 */
export interface ReadBackRule {
  /** The txlog keys of the transaction's records this rule reads. */
  keys(tx: TxId): readonly string[];
  /**
   * The outcome the facts show, `in_doubt` while they do not decide it yet;
   * null when nothing of this protocol's is found (another rule may know the
   * transaction, or nothing of it exists).
   */
  read(tx: TxId, facts: DurableFacts): Outcome | null;
  /** What of the facts it read, as GET /transactions/:id shows it (`read` found something). */
  found(tx: TxId, facts: DurableFacts): Record<string, unknown>;
  /**
   * What "nothing found" means for a transaction known to have run by this
   * protocol whose coordinator is gone: aborted (it never committed and never
   * will), or "probe" (only the protocol's probe can make it final).
   */
  readonly nothingFound: "aborted" | "probe";
}

/** What starts a probe: settle `tx` over its branches now, under the process epoch. */
export interface ProbeRequest {
  readonly t: "probe";
  readonly tx: TxId;
  readonly branches: readonly ShardId[];
  readonly epoch: number;
}

/** The role that makes a transaction final on demand when nothing of it is found (`ReadBackRule.nothingFound` "probe"). */
export interface ProbePart {
  role(settings: Pick<CoordinatorSettings, "attemptsMax" | "retryDelayMs">): Role<any, ProbeRequest | Result, Effect>;
  done(st: Phased): boolean;
}

/**
 * A protocol's properties as the server's composition checks them
 * (spec/server/properties.ts): each over the world as the protocol's own
 * model sees its transactions (the scenario projected to them).
 */
export interface ProtocolProperties {
  /** Its invariants; `budget` is the run's fault budget (undefined where the caller has none: only statements that read none are asked then). */
  invariants(sc: Scenario, budget: Budget | undefined): Record<string, (w: any) => boolean>;
  /** Its possibility properties. */
  eventually(sc: Scenario): Record<string, { goal(w: any): boolean; allowed?(a: Action): boolean }>;
  /** The property of `eventually` that says each of its transactions can still end (the server's `every_transaction_ends` conjoins them). */
  readonly ends: string;
  /**
   * Its statements cover every protocol of its family (the protocols that
   * share its resolver part): the family-wide properties (the banking
   * invariants, which sum over every transaction) and `ends` are checked
   * with its statement over all the family's transactions. A family of more
   * than one protocol has exactly one such member.
   */
  readonly statesFamily?: boolean;
}

export interface Protocol {
  /** As the API and the configuration name it (the request body's `protocol`). */
  readonly name: string;
  /** As a person names it ("2PC with presumed abort"). */
  readonly title: string;
  /** Its document, from the repository's root. */
  readonly doc: string;
  /** The trace header `model` of a live coordinator trace (conformance/replay.ts builds the role back from it). */
  readonly traceModel: string;
  /** What its coordinator needs of the shards for a transaction of two branches or more. */
  readonly needs: ShardKind;
  /** It answers the client before the outcome is final (the speculation metrics count it). */
  readonly speculates: boolean;
  /** The coordinator of a transaction of two branches or more (the server's one-phase choice takes the others). */
  coordinator(settings: CoordinatorSettings): CoordinatorRole;
  /** Its coordinator has nothing left to do. */
  done(st: Phased): boolean;
  /** The resolver part that finishes its transactions. */
  readonly resolver: ResolverPart;
  /** The kinds of txlog record it writes (runtime/adapters/txlog-etcd.ts decodes exactly these and the epoch). */
  readonly records: readonly string[];
  /** What durable facts say of one of its transactions (GET /transactions/:id, idempotency settle). */
  readonly readBack: ReadBackRule;
  /** Its probe, when its read-back rule needs one (`nothingFound: "probe"`). */
  readonly probe?: ProbePart;
  /** Its properties, as the server's composition checks them next to the other protocols'. */
  readonly properties: ProtocolProperties;
  /** Its model for the checker: parameters, scenarios, properties, mutants. */
  readonly model: ModelFactory;
}
