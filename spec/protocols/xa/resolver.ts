/**
 * The resolver of the XA protocols, 2PC with presumed abort
 * (../twopc/coordinator.ts) and parallel commit (../parallel/coordinator.ts):
 * it finishes what a dead or give-up coordinator of either left behind. One
 * resolver serves both because they share the decision key: a key holds
 * 2PC's COMMIT or ABORT record, or parallel commit's STAGING record and then
 * its decision. It runs at boot and on every scan tick:
 *
 *   1. list the records at the decision keys;
 *   2. XA RECOVER every shard, one after the other (after the list);
 *   3. for transactions with no live coordinator in this process:
 *      - COMMIT record: XA COMMIT its prepared branches; ABORT: XA ROLLBACK;
 *      - no record: presumed abort, for a transaction the previous scan
 *        already saw prepared without a record (as in 2PC): ABORT by CAS
 *        (create only if absent; a STAGING record that got there first wins);
 *      - STAGING record: first the fence, then the decision, in later scans.
 *        A record first seen in scan n-1 (so that the `active` set of scan n,
 *        taken after that listing, covers the transaction; as presumed abort
 *        waits one scan in 2PC):
 *        scan n kills every connection the record lists (xa.kill): a branch
 *        not prepared by then is rolled back by its shard, and a prepare
 *        still in flight on that connection can no longer succeed. Scan n+1,
 *        whose XA RECOVER comes after those kills, decides: every listed
 *        branch prepared means the transaction was implicitly committed:
 *        COMMITTED by CAS over the STAGING version, then XA COMMIT; any
 *        branch missing can never prepare any more: ABORT by CAS, then XA
 *        ROLLBACK of the prepared ones;
 *   4. delete every COMMIT or ABORT record none of whose branches is prepared.
 *
 * Why the fence: without it, a branch missing from XA RECOVER may be one
 * whose XA PREPARE is still on its way; if it lands after the RECOVER and
 * before the ABORT record, the transaction was implicitly committed (its
 * coordinator may have told the client so) and the resolver aborts it anyway.
 * The mutant "no-fence" shows that trace (docs/protocols/parallel-commit.md).
 *
 * Why a missing branch is not one already committed: a branch is committed
 * only after a COMMITTED record is durable, and a COMMITTED record is never
 * replaced by STAGING; the record is listed before the RECOVER.
 *
 * Why presumed abort waits a scan, and why `active` matters: the ABORT CAS
 * (create only if absent) is what keeps a coordinator that is still alive
 * somewhere from committing after the rollback: its own COMMIT CAS then fails
 * and it aborts. And a record may only be deleted once the transaction's
 * coordinator can no longer write to it, i.e. when it is not running. The
 * runtime passes the transactions its live coordinators own; after a crash
 * that set is empty.
 *
 * Before its first scan, the resolver takes a new process epoch (a CAS on the
 * epoch key); coordinators of this process fence their writes with it, so
 * writes a dead incarnation still had in flight can never land after this
 * one started deciding (see EpochRecord in spec/kernel/effects.ts). 1397
 * (NOTA) and 1402 (RBROLLBACK) on XA COMMIT/ROLLBACK mean the branch is
 * already finished. A failed step is retried on the next scan, never in a
 * loop.
 */
import { cannotArrive, type Role, type Step } from "../../kernel/role.ts";
import type { ResolverPart } from "../protocol.ts";
import { actionMap, scan, type OwnInput } from "../scan.ts";
import {
  DECISION_PREFIX,
  decisionKey,
  decisionOf,
  EPOCH_KEY,
  txOfDecisionKey,
  type Fence,
  type LogEntry,
  type Effect,
  type Result,
  type PreparedXid,
  type ShardId,
  type StagingRecord,
  type TxId,
} from "../../kernel/effects.ts";

/**
 * Deliberate bugs the checker must catch. Parallel commit's (STAGING):
 * no-fence, missing-is-commit (a fenced STAGING with a branch missing taken
 * for committed). 2PC's (decision records, presumed abort): presume-commit (a
 * prepared branch with no record committed), rollback-committed,
 * gc-without-recover (records deleted without looking at the shards). Both:
 * ignore-active, keep-records.
 */
export const resolverMutants = ["no-fence", "missing-is-commit", "ignore-active", "keep-records", "presume-commit", "rollback-committed", "gc-without-recover"] as const;
export type ResolverMutant = (typeof resolverMutants)[number];
/** The mutants each protocol's model is checked with (the rest act on the other protocol's records only). */
export const twopcResolverMutants = ["presume-commit", "rollback-committed", "ignore-active", "gc-without-recover"] as const satisfies readonly ResolverMutant[];
export const parallelResolverMutants = ["no-fence", "missing-is-commit", "ignore-active", "keep-records"] as const satisfies readonly ResolverMutant[];

export interface ResolverOptions {
  readonly shards: readonly ShardId[];
  readonly mutant?: ResolverMutant;
}

export interface ResolverState {
  readonly phase: "idle" | "booting" | "listing" | "recovering" | "resolving";
  /** This process's epoch once taken; null after a (re)start. */
  readonly epoch: number | null;
  readonly active: readonly TxId[];
  readonly records: readonly LogEntry[];
  /** Per shard, what XA RECOVER answered in this scan (null: no answer yet or unavailable). */
  readonly recovered: readonly { readonly shard: ShardId; readonly answered: boolean; readonly prepared: readonly PreparedXid[] | null }[];
  /** Effects of this scan still waiting for their result, as sorted keys. */
  readonly outstanding: readonly string[];
  /** Transactions the last finished scan saw with no live coordinator: prepared with no record, or with a STAGING record. */
  readonly suspects: readonly TxId[];
  /** STAGING transactions every recorded connection of which the last finished scan killed. */
  readonly fenced: readonly TxId[];
  /** This scan's kills that succeeded, as sorted `shard conn` keys. */
  readonly killed: readonly string[];
  /** This scan's kills not yet sent: one at a time, as RECOVER (a scan is background work, and fewer interleavings to check). */
  readonly toKill: readonly { readonly shard: ShardId; readonly conn: string }[];
}

export type ResolverInput = { readonly t: "scan"; readonly active: readonly TxId[] } | Result;

type Out = Step<ResolverState, Effect>;

const keyOf = (e: Effect): string => {
  switch (e.t) {
    case "xa.commit":
    case "xa.rollback":
      return `${e.t}:${e.tx}:${e.shard}`;
    case "xa.kill":
      return `${e.t}:${e.shard}:${e.conn}`;
    case "log.put":
    case "log.delete":
      return `${e.t}:${e.key}`;
    default:
      return e.t;
  }
};
const connKey = (shard: ShardId, conn: string): string => `${shard} ${conn}`;
const stagingOf = (e: LogEntry | undefined): StagingRecord | null => (e?.value.kind === "staging" ? e.value : null);

export function resolver(opts: ResolverOptions): Role<ResolverState, ResolverInput, Effect> {
  const mutant = opts.mutant;
  const start = (): ResolverState => ({
    phase: "idle",
    epoch: null,
    active: [],
    records: [],
    recovered: [],
    outstanding: [],
    suspects: [],
    fenced: [],
    killed: [],
    toKill: [],
  });

  /** Between scans: what carries over is the epoch, the suspects and the fenced transactions. */
  const idle = (st: ResolverState): ResolverState => ({ ...start(), epoch: st.epoch, suspects: st.suspects, fenced: st.fenced });
  /** The end of a scan: the transactions it fenced are the ones the next scan may decide. */
  const endScan = (st: ResolverState): ResolverState => {
    const fenced = st.records
      .filter((rec) => {
        const staging = stagingOf(rec);
        return staging !== null && !isActive(st, txOfDecisionKey(rec.key)) && staging.branches.every((b) => st.killed.includes(connKey(b.shard, b.conn)));
      })
      .map((rec) => txOfDecisionKey(rec.key));
    return { ...idle(st), fenced };
  };
  const fence = (st: ResolverState): Fence => ({ key: EPOCH_KEY, version: st.epoch ?? 0 });
  /** The decision keys listed: XA RECOVER the shards, one after the other. */
  const step = scan<ResolverState>({
    prefix: DECISION_PREFIX,
    idle,
    listed(st, records) {
      const recovered = opts.shards.map((shard) => ({ shard, answered: false, prepared: null }));
      return { st: { ...st, phase: "recovering", records, recovered }, effects: opts.shards.slice(0, 1).map((shard): Effect => ({ t: "xa.recover", shard })) };
    },
    own,
  });

  /** Issue `effects` and remember them as outstanding; with none left, the scan is over. */
  function issue(st: ResolverState, done: string | null, effects: Effect[]): Out {
    const outstanding = st.outstanding.filter((k) => k !== done).concat(effects.map(keyOf)).sort();
    if (outstanding.length === 0) return { st: endScan(st), effects };
    return { st: { ...st, phase: "resolving", outstanding }, effects };
  }

  const recordOf = (st: ResolverState, tx: TxId): LogEntry | undefined => st.records.find((r) => r.key === decisionKey(tx));
  const isActive = (st: ResolverState, tx: TxId): boolean => mutant !== "ignore-active" && st.active.includes(tx);
  const preparedOf = (st: ResolverState): PreparedXid[] => st.recovered.flatMap((r) => r.prepared ?? []).filter((x) => !isActive(st, x.tx));
  const answered = (st: ResolverState, shard: ShardId): boolean => st.recovered.some((r) => r.shard === shard && r.prepared !== null);

  /** What a fenced STAGING transaction becomes, from this scan's XA RECOVER. */
  function stagingDecision(st: ResolverState, tx: TxId, staging: StagingRecord): "commit" | "abort" {
    const prepared = preparedOf(st);
    const all = staging.branches.every((b) => prepared.some((x) => x.tx === tx && x.shard === b.shard));
    return all || mutant === "missing-is-commit" ? "commit" : "abort";
  }

  /** Every shard answered RECOVER (or failed to): decide what to do with each transaction. */
  function plan(st: ResolverState): Out {
    const effects: Effect[] = [];
    const prepared = preparedOf(st);
    const presumed = new Map<TxId, ShardId[]>();
    const suspects = new Set<TxId>();
    for (const x of prepared) {
      const rec = recordOf(st, x.tx);
      if (rec === undefined) {
        if (mutant === "presume-commit") effects.push({ t: "xa.commit", tx: x.tx, shard: x.shard });
        else if (st.suspects.includes(x.tx)) presumed.set(x.tx, [...(presumed.get(x.tx) ?? []), x.shard]);
        else suspects.add(x.tx);
      } else if (rec.value.kind === "decision") {
        const commit = rec.value.decision === "commit" && mutant !== "rollback-committed";
        effects.push({ t: commit ? "xa.commit" : "xa.rollback", tx: x.tx, shard: x.shard });
      }
    }
    for (const [tx, shards] of [...presumed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      effects.push({ t: "log.put", key: decisionKey(tx), value: { kind: "decision", decision: "abort", branches: shards.sort() }, ifVersion: 0, fence: fence(st) });
    }
    const toKill: { shard: ShardId; conn: string }[] = [];
    const known = new Set(st.recovered.filter((r) => r.prepared !== null).map((r) => r.shard));
    for (const rec of st.records) {
      const tx = txOfDecisionKey(rec.key);
      if (isActive(st, tx)) continue;
      const staging = stagingOf(rec);
      if (staging !== null) {
        // Seen by the last scan too, so this scan's `active`, taken after that one listed the record, covers the transaction.
        suspects.add(tx);
        if (!st.suspects.includes(tx) && !st.fenced.includes(tx)) continue;
        const fenced = st.fenced.includes(tx) || mutant === "no-fence";
        if (fenced && staging.branches.every((b) => answered(st, b.shard))) {
          const decision = stagingDecision(st, tx, staging);
          const value = { kind: "decision", decision, branches: staging.branches.map((b) => b.shard) } as const;
          effects.push({ t: "log.put", key: rec.key, value, ifVersion: rec.version, fence: fence(st) });
        } else if (mutant !== "no-fence") {
          for (const b of staging.branches) if (!toKill.some((k) => k.shard === b.shard && k.conn === b.conn)) toKill.push({ shard: b.shard, conn: b.conn });
        }
        continue;
      }
      const stillPrepared = prepared.some((x) => x.tx === tx);
      const allSeen = rec.value.kind === "decision" && rec.value.branches.every((s) => known.has(s));
      if (mutant === "gc-without-recover" || (allSeen && !stillPrepared && mutant !== "keep-records")) effects.push({ t: "log.delete", key: rec.key, fence: fence(st) });
    }
    const kills: Effect[] = toKill.slice(0, 1).map((k) => ({ t: "xa.kill", ...k }));
    return issue({ ...st, phase: "resolving", outstanding: [], suspects: [...suspects].sort(), toKill: toKill.slice(1) }, null, [...effects, ...kills]);
  }

  function onRecover(st: ResolverState, input: Extract<ResolverInput, { t: "xa.recover" }>): Out {
    if (st.phase !== "recovering") return { st, effects: [] };
    const r = input.r;
    const recovered = st.recovered.map((x) => (x.shard === input.shard ? { shard: x.shard, answered: true, prepared: r.ok ? [...r.prepared].sort(byXid) : null } : x));
    const next = { ...st, recovered };
    const pending = recovered.find((x) => !x.answered);
    return pending === undefined ? plan(next) : { st: next, effects: [{ t: "xa.recover", shard: pending.shard }] };
  }

  function onPut(st: ResolverState, input: Extract<ResolverInput, { t: "log.put" }>): Out {
    const done = `log.put:${input.key}`;
    if (st.phase !== "resolving" || !st.outstanding.includes(done)) return { st, effects: [] };
    const tx = txOfDecisionKey(input.key);
    const r = input.r;
    if (!r.ok && r.err === "FENCED") return { st: start(), effects: [] };
    const staging = stagingOf(recordOf(st, tx));
    const written = staging !== null ? stagingDecision(st, tx, staging) : "abort";
    // Our record is durable, or a decision was already there: follow it (a STAGING one: next scan).
    const decision = r.ok ? written : r.err === "CAS" ? decisionOf(r.current) : null;
    if (decision === null) return issue(st, done, []);
    const t = decision === "commit" ? "xa.commit" : "xa.rollback";
    const shards = preparedOf(st).filter((x) => x.tx === tx).map((x) => x.shard);
    return issue(st, done, shards.map((shard): Effect => ({ t, tx, shard })));
  }

  function onKill(st: ResolverState, input: Extract<ResolverInput, { t: "xa.kill" }>): Out {
    const done = keyOf(input);
    if (st.phase !== "resolving" || !st.outstanding.includes(done)) return { st, effects: [] };
    const killed = input.r.ok ? [...st.killed, connKey(input.shard, input.conn)].sort() : st.killed;
    const kills: Effect[] = st.toKill.slice(0, 1).map((k) => ({ t: "xa.kill", ...k }));
    return issue({ ...st, killed, toKill: st.toKill.slice(1) }, done, kills);
  }

  /** A commit, rollback or delete of this scan answered: finished or not (1397/1402 included), the next scan sees what is left. */
  function onDone(st: ResolverState, done: string, fenced: boolean): Out {
    if (st.phase !== "resolving" || !st.outstanding.includes(done)) return { st, effects: [] };
    if (fenced) return { st: start(), effects: [] };
    return issue(st, done, []);
  }

  function own(st: ResolverState, input: OwnInput): Out {
    switch (input.t) {
      case "xa.recover":
        return onRecover(st, input);
      case "log.put":
        return onPut(st, input);
      case "xa.kill":
        return onKill(st, input);
      case "xa.commit":
      case "xa.rollback":
        return onDone(st, `${input.t}:${input.tx}:${input.shard}`, false);
      case "log.delete":
        return onDone(st, `log.delete:${input.key}`, !input.r.ok && input.r.err === "FENCED");
      case "xa.exec":
      case "xa.prepare":
      case "timeout":
      case "local.apply":
      case "local.tombstone":
      case "local.compensate":
      case "local.release":
      case "local.scan":
        return cannotArrive("XA resolver", input);
    }
  }

  return { start, step };
}

/** The resolver carries nothing over from its last scan (what the scan reduction of ./world.ts asks). */
export const resolverQuiet = (r: ResolverState): boolean => r.suspects.length === 0 && r.fenced.length === 0;

const byXid = (a: PreparedXid, b: PreparedXid): number => (a.tx < b.tx ? -1 : a.tx > b.tx ? 1 : a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : 0);

/**
 * A decision this resolver writes over a STAGING record (a CAS on the
 * record's version, after the fence): the recovery of a parallel-commit
 * transaction whose coordinator is gone. Presumed aborts are CAS on an
 * absent key (version 0).
 */
export const stagingDecisionOf = (e: Effect): "commit" | "abort" | null => (e.t === "log.put" && e.value.kind === "decision" && e.ifVersion > 0 ? e.value.decision : null);

/** The process resolver's part for the XA protocols (spec/server/resolver.ts). */
export const xaResolverPart: ResolverPart = {
  name: "xa",
  needs: "xa",
  role: (shards) => resolver({ shards }),
  actionOf: actionMap({
    "xa.commit": "commit",
    "xa.rollback": "rollback",
    "xa.kill": "fence",
    "log.put": (e) => (e.value.kind !== "decision" ? null : stagingDecisionOf(e) !== null ? `staging_${e.value.decision}` : "presume_abort"),
  }),
  recoveryOf: stagingDecisionOf,
};
