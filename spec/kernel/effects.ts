/**
 * The vocabulary between protocol roles and their environment: the effects a
 * role may ask for and the inputs that bring back their results. The model
 * checker executes effects against the environment models (spec/env/); the
 * server executes them against MariaDB and etcd (runtime/). Neither decides
 * anything: every protocol decision is in the roles.
 *
 * Money is integer cents. Identifiers are strings chosen by the caller.
 */

export type TxId = string;
export type ShardId = string;

/**
 * The largest |delta| of one op, in cents (10^13 units). Below 2^53, so every
 * amount the vocabulary carries is a safe integer: exact as a JS number, in
 * JSON, in traces and in SQL literals. runtime/transfer.ts refuses a request
 * beyond it (per op and per account's net change), and adds amounts in
 * bigint, since a sum of several may pass 2^53.
 */
export const DELTA_CENTS_MAX = 1_000_000_000_000_000;

/** One balance change: `delta` cents on `account` (negative = debit; |delta| <= DELTA_CENTS_MAX). */
export interface Op {
  readonly account: number;
  readonly delta: number;
}

/** The part of a transaction that runs on one shard. */
export interface BranchSpec {
  readonly shard: ShardId;
  readonly ops: readonly Op[];
}

/**
 * Errors an XA effect can report, named after the MariaDB error they stand
 * for (runtime/ maps codes to names; spec/env/xa.ts produces the same codes):
 * NOTA 1397, RMFAIL 1399, RBROLLBACK 1402, DUPID 1440, LOCK_TIMEOUT 1205,
 * DEADLOCK 1213; INSUFFICIENT_FUNDS when a guarded update matched no row;
 * DEADLOCK_VICTIM when the cross-shard deadlock detector (runtime/deadlock.ts,
 * spec/deadlock/victims.ts) chose the transaction and interrupted the
 * branch's blocked statement (KILL QUERY, 1317; the environment models never
 * produce it: the detector is outside the protocol models);
 * UNAVAILABLE for a lost connection or a server that is down (the statement
 * may or may not have taken effect).
 */
export type XaError =
  | "NOTA"
  | "RMFAIL"
  | "RBROLLBACK"
  | "DUPID"
  | "LOCK_TIMEOUT"
  | "DEADLOCK"
  | "DEADLOCK_VICTIM"
  | "INSUFFICIENT_FUNDS"
  /**
   * The branch's node is fenced on this shard: an xa.exec with `fence` read its node's fence row there and found
   * an epoch newer than its own (a survivor took the node over and fenced it, spec/server/readback.ts
   * SETTLE_FENCE). The branch is ended (XA END), not committed: roll it back.
   */
  | "FENCED"
  | "UNAVAILABLE";

export type XaResult = { readonly ok: true } | { readonly ok: false; readonly err: XaError };

/** A record in the transaction log (etcd). */
export type LogRecord = DecisionRecord | EpochRecord | SpeculativeRecord | StagingRecord | ClaimRecord | OwnerRecord;

/**
 * Who took over coordinator node `node`'s transactions (spec/failover/takeover.ts): made by a CAS create at
 * `ownerKey(node)` (exactly one survivor wins), deleted at its version when `node` is alive again.
 */
export interface OwnerRecord {
  readonly kind: "owner";
  readonly node: string;
  readonly owner: string;
}

/** The txlog key of a node's takeover claim (outside every node's namespace). */
export const ownerKey = (node: string): string => `${OWNER_PREFIX}${node}`;
export const OWNER_PREFIX = "owners/";

/**
 * An idempotency key's claim (spec/server/idempotency.ts): made by a CAS create before anything runs, it names the
 * transaction the key runs as and what makes two requests the same transfer; `outcome` is stored once final.
 */
export interface ClaimRecord {
  readonly kind: "claim";
  readonly tx: TxId;
  readonly fingerprint: string;
  readonly shards: readonly ShardId[];
  /** The protocol the request named (absent: the default). */
  readonly protocol?: string;
  /** The transaction's final outcome (never in_doubt), once stored. */
  readonly outcome?: FinalOutcome;
}

/** The txlog key of an idempotency key's claim; `key` is the client's key as the server names it (the runtime: its sha256). */
export const claimKey = (key: string): string => `${CLAIM_PREFIX}${key}`;
export const CLAIM_PREFIX = "idem/";

export interface DecisionRecord {
  readonly kind: "decision";
  readonly decision: "commit" | "abort";
  readonly branches: readonly ShardId[];
  /** The commit timestamp (spec/time/hlc.ts, decimal): filled by the runtime (runtime/timestamps.ts), never by a role or a model. */
  readonly commit_ts?: string;
}

/**
 * The coordinator process's epoch: the key's version is the epoch number. A
 * process takes a new epoch when it boots, and fences every txlog write with
 * it, so that a write a dead incarnation sent can no longer land after the
 * new one has started (a fencing token, as with Chubby's sequencers).
 */
export interface EpochRecord {
  readonly kind: "epoch";
}

export const EPOCH_KEY = "epoch";

/** A write's fence: it applies only while the key still has this version. */
export interface Fence {
  readonly key: string;
  readonly version: number;
}

export const decisionOf = (r: LogRecord | null | undefined): "commit" | "abort" | null =>
  r?.kind === "decision" ? r.decision : null;

export type LogPutResult =
  | { readonly ok: true; readonly version: number }
  /** The compare failed: `current` is what the key holds now (null when absent). */
  | { readonly ok: false; readonly err: "CAS"; readonly current: LogRecord | null; readonly version: number }
  /** The fence failed: a newer process epoch exists, this writer is stale. Nothing was written. */
  | { readonly ok: false; readonly err: "FENCED" }
  /** The log did not answer: the write may or may not have happened. */
  | { readonly ok: false; readonly err: "UNAVAILABLE" };

export interface LogEntry {
  readonly key: string;
  readonly value: LogRecord;
  readonly version: number;
}

export type LogListResult =
  | { readonly ok: true; readonly entries: readonly LogEntry[] }
  | { readonly ok: false; readonly err: "UNAVAILABLE" };

/** CAS: the delete named an `ifVersion` and the key was not at that version (nothing deleted); only a delete with `ifVersion` meets it. */
export type LogDeleteResult = { readonly ok: true } | { readonly ok: false; readonly err: "FENCED" | "UNAVAILABLE" | "CAS" };

/** A prepared branch as XA RECOVER lists it, already mapped back to our ids. */
export interface PreparedXid {
  readonly tx: TxId;
  readonly shard: ShardId;
}

export type RecoverResult =
  | { readonly ok: true; readonly prepared: readonly PreparedXid[] }
  | { readonly ok: false; readonly err: "UNAVAILABLE" };

export type Outcome =
  | { readonly status: "committed" }
  | { readonly status: "aborted"; readonly reason: AbortReason }
  /** The coordinator could not learn whether its decision is durable; the resolver will finish it. */
  | { readonly status: "in_doubt" };

/** An outcome that is final: what a claim stores. */
export type FinalOutcome = Exclude<Outcome, { readonly status: "in_doubt" }>;

/** `deadlock`: the cross-shard deadlock detector chose this transaction as the victim of a wait-for cycle (docs/deadlock.md). */
export const ABORT_REASONS = ["insufficient_funds", "conflict", "deadlock", "timeout", "shard_unavailable", "resolver"] as const;
export type AbortReason = (typeof ABORT_REASONS)[number];

/**
 * Effects: requests as data.
 *
 * XA effects name a branch by (tx, shard). The executor keeps one connection
 * per branch from `xa.exec` until the branch is finished, and sends every
 * later statement of that branch on it while it lives; a branch whose
 * connection died is addressed from any connection (that is what lets a
 * prepared branch be finished after a coordinator crash). An XA effect that
 * answers UNAVAILABLE has closed its connection: a branch not yet prepared
 * on it is then rolled back by the server.
 */
export type Effect =
  /**
   * XA START; each op as a guarded update (with `guard`, an update that would take a balance below zero matches no
   * row: INSUFFICIENT_FUNDS) plus a history row; XA END. `fence` (a branch that will commit ONE PHASE, with no
   * record a fenced log write could stop): the coordinator's epoch. The branch first reads its node's fence row on
   * the shard with a shared lock, held until the branch ends, and fails FENCED when the row holds a newer epoch; a
   * survivor's fence write (SETTLE_FENCE) waits for every branch that read the row, so no such branch commits
   * after a survivor read "nothing found" as aborted.
   * `onePhase` (a transaction with one branch, which commits ONE PHASE): no XA END after the ops; the branch stays
   * ACTIVE on its connection, and the one-phase commit (or the rollback) ends it. The commit's round trip can then
   * still change the branch: the runtime stamps the commit timestamp on its history rows inside the transaction it
   * commits (runtime/adapters/xa-mysql.ts), one InnoDB commit instead of two. A statement that fails with an SQL
   * error is followed by XA END as without it (spec/env/executor.ts).
   */
  | {
      readonly t: "xa.exec";
      readonly tx: TxId;
      readonly shard: ShardId;
      readonly ops: readonly Op[];
      readonly guard: boolean;
      readonly fence?: number;
      readonly onePhase?: true;
    }
  | { readonly t: "xa.prepare"; readonly tx: TxId; readonly shard: ShardId }
  /**
   * `onePhase`: XA COMMIT ... ONE PHASE (a transaction with one branch needs no prepare and no decision record), after
   * XA END when its xa.exec left the branch ACTIVE.
   */
  | { readonly t: "xa.commit"; readonly tx: TxId; readonly shard: ShardId; readonly onePhase?: boolean }
  | { readonly t: "xa.rollback"; readonly tx: TxId; readonly shard: ShardId }
  | { readonly t: "xa.recover"; readonly shard: ShardId }
  /** Compare-and-swap: write `value` only if the key's version is `ifVersion` (0: only if absent) and the fence holds. */
  | { readonly t: "log.put"; readonly key: string; readonly value: LogRecord; readonly ifVersion: number; readonly fence?: Fence }
  | { readonly t: "log.list"; readonly prefix: string }
  /**
   * Delete the key if the fence holds; with `ifVersion` (> 0) only while the key is at that version (else CAS,
   * nothing deleted): the claim role gives a key back this way. The resolvers never set it.
   */
  | { readonly t: "log.delete"; readonly key: string; readonly fence?: Fence; readonly ifVersion?: number }
  | { readonly t: "reply"; readonly tx: TxId; readonly outcome: Outcome }
  /** Ask for a `timeout` input with this id after `ms` milliseconds (at the earliest). */
  | { readonly t: "timer"; readonly id: string; readonly ms: number }
  | XaKillEffect
  | LocalEffect;

/**
 * Results of effects, delivered to the role that asked. xa.exec's names the
 * connection the branch runs on (null when it failed): parallel commit
 * records it; the other roles ignore it.
 */
export type Result =
  | { readonly t: "xa.exec"; readonly tx: TxId; readonly shard: ShardId; readonly r: XaResult; readonly conn: ConnectionId | null }
  | { readonly t: "xa.prepare"; readonly tx: TxId; readonly shard: ShardId; readonly r: XaResult }
  | { readonly t: "xa.commit"; readonly tx: TxId; readonly shard: ShardId; readonly r: XaResult }
  | { readonly t: "xa.rollback"; readonly tx: TxId; readonly shard: ShardId; readonly r: XaResult }
  | { readonly t: "xa.recover"; readonly shard: ShardId; readonly r: RecoverResult }
  | { readonly t: "log.put"; readonly key: string; readonly r: LogPutResult }
  | { readonly t: "log.list"; readonly r: LogListResult }
  | { readonly t: "log.delete"; readonly key: string; readonly r: LogDeleteResult }
  | { readonly t: "timeout"; readonly id: string }
  | XaKillResult
  | LocalResult;

/** The txlog key of a transaction's decision record. */
export const decisionKey = (tx: TxId): string => `tx/${tx}`;
export const DECISION_PREFIX = "tx/";
export const txOfDecisionKey = (key: string): TxId => key.slice(DECISION_PREFIX.length);

/** XA errors after which a commit or rollback of a branch has nothing left to do. */
export const finishedOnCommit = (err: XaError): boolean => err === "NOTA" || err === "RBROLLBACK";
export const finishedOnRollback = (err: XaError): boolean => err === "NOTA" || err === "RBROLLBACK";

/*
 * Speculative path with undo (spec/protocols/speculative, docs/protocols/speculative.md):
 * one-phase local transactions on the shards (no XA), their results, and the
 * txlog record that says where a speculation stands.
 */

/** Where a speculation stands in the txlog (observability and recovery, never on the client's path). */
export interface SpeculativeRecord {
  readonly kind: "speculation";
  readonly state: "SPEC_EXECUTING" | "SPEC_COMMITTED" | "SPEC_ROLLED_BACK";
  readonly branches: readonly ShardId[];
  /** The commit timestamp of a committed speculation: filled by the runtime (runtime/timestamps.ts), never by a role or a model. */
  readonly commit_ts?: string;
}

/** The txlog key of a speculation's record. */
export const speculativeKey = (tx: TxId): string => `speculative/${tx}`;
export const SPECULATIVE_PREFIX = "speculative/";
export const txOfSpeculativeKey = (key: string): TxId => key.slice(SPECULATIVE_PREFIX.length);
export const speculativeStateOf = (r: LogRecord | null | undefined): SpeculativeRecord["state"] | null => (r?.kind === "speculation" ? r.state : null);

/**
 * A row of a shard's undo table, unique on (tx, branch): "undo" holds the
 * inverse deltas of an applied branch; "released" and "compensated" are the
 * two ends of an applied branch; "tombstone" says the branch never applied
 * and never will (the unique key is a write-once log, as in Cornus).
 */
export type UndoRowState = "undo" | "released" | "compensated" | "tombstone";

export interface UndoRowView {
  readonly tx: TxId;
  readonly branch: ShardId;
  readonly state: UndoRowState;
  readonly branches: readonly ShardId[];
}

/** Undo rows in the order of their unique key (tx, branch): the order a shard keeps them in, and the resolver too. */
export const byUndoKey = (a: { readonly tx: TxId; readonly branch: ShardId }, b: { readonly tx: TxId; readonly branch: ShardId }): number =>
  a.tx < b.tx ? -1 : a.tx > b.tx ? 1 : a.branch < b.branch ? -1 : a.branch > b.branch ? 1 : 0;

/**
 * Effects on a shard run as ONE local transaction each (START TRANSACTION ...
 * COMMIT), never XA; spec/env/local.ts gives the statements. `escrow` and
 * `parts` are always true and "both" in the protocol: they exist so that the
 * deliberate bugs the checker must catch are the roles asking for less
 * (as xa.exec's `guard`).
 */
export type LocalEffect =
  /** Debits guarded against going below zero, credits held as pending, the undo row inserted: all or nothing. */
  | {
      readonly t: "local.apply";
      readonly tx: TxId;
      readonly shard: ShardId;
      readonly ops: readonly Op[];
      readonly branches: readonly ShardId[];
      readonly escrow: boolean;
      readonly parts: "both" | "write" | "undo";
    }
  /** Insert a tombstone under (tx, shard); fails on the unique key if the branch (or a tombstone) is there. */
  | { readonly t: "local.tombstone"; readonly tx: TxId; readonly shard: ShardId }
  /** Apply the inverse deltas of the undo row and retire it (state compensated); a no-op unless the row is in state undo. */
  | { readonly t: "local.compensate"; readonly tx: TxId; readonly shard: ShardId; readonly retire: boolean }
  /**
   * Pending credits of the branch become spendable and the undo row is retired (state released); a
   * no-op unless in state undo. `row: "delete"` (a mutant only) deletes the row instead, freeing the key.
   */
  | { readonly t: "local.release"; readonly tx: TxId; readonly shard: ShardId; readonly row: "retire" | "delete" }
  /** The undo rows still in state undo on a shard (what recovery must finish). */
  | { readonly t: "local.scan"; readonly shard: ShardId };

export type LocalError = "INSUFFICIENT_FUNDS" | "DUPLICATE" | "UNAVAILABLE";

export type LocalResult =
  | { readonly t: "local.apply"; readonly tx: TxId; readonly shard: ShardId; readonly r: { readonly ok: true } | { readonly ok: false; readonly err: LocalError } }
  | {
      readonly t: "local.tombstone";
      readonly tx: TxId;
      readonly shard: ShardId;
      /** DUPLICATE says what holds the key (read in the same local transaction). */
      readonly r: { readonly ok: true } | { readonly ok: false; readonly err: "DUPLICATE"; readonly existing: UndoRowState } | { readonly ok: false; readonly err: "UNAVAILABLE" };
    }
  /** `applied`: this call changed the shard (false: the row was not in state undo, nothing done). */
  | { readonly t: "local.compensate" | "local.release"; readonly tx: TxId; readonly shard: ShardId; readonly r: { readonly ok: true; readonly applied: boolean } | { readonly ok: false; readonly err: "UNAVAILABLE" } }
  | { readonly t: "local.scan"; readonly shard: ShardId; readonly r: { readonly ok: true; readonly rows: readonly UndoRowView[] } | { readonly ok: false; readonly err: "UNAVAILABLE" } };


/*
 * Parallel commit (spec/protocols/parallel, docs/protocols/parallel-commit.md):
 * the STAGING record, the connection id an xa.exec reports, and KILL
 * CONNECTION as an effect.
 */

/** A branch's connection as the shard numbers it (MariaDB's CONNECTION_ID(), as a string). */
export type ConnectionId = string;

/**
 * Written at the transaction's decision key (decisionKey) in parallel with the
 * prepares. While it is the key's value, the transaction is committed exactly
 * when every listed branch is prepared; recovery first kills each listed
 * connection so that no missing branch can still prepare.
 */
export interface StagingRecord {
  readonly kind: "staging";
  readonly branches: readonly { readonly shard: ShardId; readonly conn: ConnectionId }[];
  /** The commit timestamp chosen at STAGING: filled by the runtime (runtime/timestamps.ts), never by a role or a model. */
  readonly commit_ts?: string;
}

/**
 * KILL CONNECTION `conn` on `shard`. The executor answers ok only once the
 * connection is gone (no longer in information_schema.PROCESSLIST), so that no
 * statement sent on it can still run; an unknown id (1094) is ok too: that
 * connection is already gone. A shard that is down answers UNAVAILABLE.
 */
export interface XaKillEffect {
  readonly t: "xa.kill";
  readonly shard: ShardId;
  readonly conn: ConnectionId;
}


export interface XaKillResult {
  readonly t: "xa.kill";
  readonly shard: ShardId;
  readonly conn: ConnectionId;
  readonly r: XaResult;
}
export type XaExecResult = Extract<Result, { t: "xa.exec" }>;
