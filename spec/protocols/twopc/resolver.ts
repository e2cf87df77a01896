/**
 * The resolver of 2PC with presumed abort: it finishes what a dead or
 * give-up coordinator left behind. It runs at boot and on every scan tick:
 *
 *   1. list the decision records in the txlog;
 *   2. then XA RECOVER every shard, one after the other (after the list, on purpose: a COMMIT
 *      record is written only once every branch is prepared, so a branch
 *      of a listed COMMIT record that a later RECOVER does not show is
 *      finished);
 *   3. for every prepared branch of ours whose coordinator is not active in
 *      this process: COMMIT record -> XA COMMIT; ABORT record -> XA ROLLBACK;
 *      no record -> presumed abort, but only for a branch the previous scan
 *      already saw prepared without a record (so the transaction is older
 *      than one scan, and the `active` set of this scan, taken after it
 *      started, covers it): create an ABORT record by CAS (create only if
 *      absent), then XA ROLLBACK. The CAS is what keeps a coordinator that is
 *      still alive somewhere from committing after the rollback: its own
 *      COMMIT CAS then fails and it aborts;
 *   4. delete every record of an inactive transaction none of whose branches
 *      is prepared any more (nothing is left to decide).
 *
 * Before its first scan, the resolver takes a new process epoch (a CAS on
 * the epoch key); coordinators of this process fence their writes with it,
 * so writes a dead incarnation still had in flight can never land after
 * this one started deciding (see EpochRecord in spec/kernel/effects.ts). The
 * process takes no request before the epoch is known.
 *
 * 1397 (NOTA) and 1402 (RBROLLBACK) on XA COMMIT/ROLLBACK mean the branch is
 * already finished. A failed step is retried on the next scan, never in a loop.
 *
 * Why `active` matters: an ABORT record may only be deleted once the
 * transaction's coordinator can no longer try to write COMMIT, i.e. when it
 * is not running. The runtime passes the transactions its live coordinators
 * own; after a crash that set is empty.
 */
import { cannotArrive, type Role, type Step } from "../../kernel/role.ts";
import {
  DECISION_PREFIX,
  decisionKey,
  decisionOf,
  EPOCH_KEY,
  txOfDecisionKey,
  type Effect,
  type Fence,
  type LogEntry,
  type PreparedXid,
  type Result,
  type ShardId,
  type TxId,
} from "../../kernel/effects.ts";

export type ResolverMutant = "missing-is-commit" | "rollback-committed" | "ignore-active" | "gc-without-recover";

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
  /**
   * Transactions the last finished scan saw prepared with no decision record
   * and no live coordinator: this scan may presume them aborted.
   */
  readonly suspects: readonly TxId[];
}

export type ResolverInput = { readonly t: "scan"; readonly active: readonly TxId[] } | Result;

type Out = Step<ResolverState, Effect>;

const keyOf = (e: Effect): string => {
  switch (e.t) {
    case "xa.commit":
    case "xa.rollback":
      return `${e.t}:${e.tx}:${e.shard}`;
    case "log.put":
    case "log.delete":
      return `${e.t}:${e.key}`;
    default:
      return e.t;
  }
};

/** The epoch this process writes under, once the resolver has taken it; coordinators need it. */
export const epochOf = (st: ResolverState): number | null => st.epoch;

export function resolver(opts: ResolverOptions): Role<ResolverState, ResolverInput, Effect> {
  const mutant = opts.mutant;
  const start = (): ResolverState => ({ phase: "idle", epoch: null, active: [], records: [], recovered: [], outstanding: [], suspects: [] });

  const idle = (st: ResolverState): ResolverState => ({ ...start(), epoch: st.epoch, suspects: st.suspects });
  const fence = (st: ResolverState): Fence => ({ key: EPOCH_KEY, version: st.epoch ?? 0 });
  const listDecisions = (st: ResolverState): Out => ({ st: { ...st, phase: "listing" }, effects: [{ t: "log.list", prefix: DECISION_PREFIX }] });

  /** Issue `effects` and remember them as outstanding; with none left, the scan is over. */
  function issue(st: ResolverState, done: string | null, effects: Effect[]): Out {
    const outstanding = st.outstanding.filter((k) => k !== done).concat(effects.map(keyOf)).sort();
    if (outstanding.length === 0) return { st: idle(st), effects };
    return { st: { ...st, phase: "resolving", outstanding }, effects };
  }

  const recordOf = (st: ResolverState, tx: TxId): LogEntry | undefined => st.records.find((r) => r.key === decisionKey(tx));
  const isActive = (st: ResolverState, tx: TxId): boolean => mutant !== "ignore-active" && st.active.includes(tx);

  /** Every shard answered RECOVER (or failed to): decide what to do with each prepared branch. */
  function plan(st: ResolverState): Out {
    const effects: Effect[] = [];
    const prepared = st.recovered.flatMap((r) => r.prepared ?? []).filter((x) => !isActive(st, x.tx));
    const presumed = new Map<TxId, ShardId[]>();
    const suspects = new Set<TxId>();
    for (const x of prepared) {
      const rec = recordOf(st, x.tx);
      if (rec === undefined) {
        if (mutant === "missing-is-commit") effects.push({ t: "xa.commit", tx: x.tx, shard: x.shard });
        else if (st.suspects.includes(x.tx)) presumed.set(x.tx, [...(presumed.get(x.tx) ?? []), x.shard]);
        else suspects.add(x.tx);
      } else if (decisionOf(rec.value) === "commit" && mutant !== "rollback-committed") {
        effects.push({ t: "xa.commit", tx: x.tx, shard: x.shard });
      } else {
        effects.push({ t: "xa.rollback", tx: x.tx, shard: x.shard });
      }
    }
    for (const [tx, shards] of [...presumed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      effects.push({ t: "log.put", key: decisionKey(tx), value: { kind: "decision", decision: "abort", branches: shards.sort() }, ifVersion: 0, fence: fence(st) });
    }
    const known = new Set(st.recovered.filter((r) => r.prepared !== null).map((r) => r.shard));
    for (const rec of st.records) {
      const tx = txOfDecisionKey(rec.key);
      if (isActive(st, tx)) continue;
      const stillPrepared = prepared.some((x) => x.tx === tx);
      const allSeen = rec.value.kind === "decision" && rec.value.branches.every((s) => known.has(s));
      if (mutant === "gc-without-recover" || (allSeen && !stillPrepared)) effects.push({ t: "log.delete", key: rec.key, fence: fence(st) });
    }
    return issue({ ...st, phase: "resolving", outstanding: [], suspects: [...suspects].sort() }, null, effects);
  }

  function step(st: ResolverState, input: ResolverInput): Out {
    switch (input.t) {
      case "scan": {
        if (st.phase !== "idle") return { st, effects: [] };
        const next: ResolverState = { ...idle(st), active: [...input.active].sort() };
        if (st.epoch === null) return { st: { ...next, phase: "booting" }, effects: [{ t: "log.list", prefix: EPOCH_KEY }] };
        return listDecisions(next);
      }
      case "log.list": {
        if (!input.r.ok) return st.phase === "booting" || st.phase === "listing" ? { st: idle(st), effects: [] } : { st, effects: [] };
        if (st.phase === "booting") {
          const version = input.r.entries.find((e) => e.key === EPOCH_KEY)?.version ?? 0;
          return { st, effects: [{ t: "log.put", key: EPOCH_KEY, value: { kind: "epoch" }, ifVersion: version }] };
        }
        if (st.phase !== "listing") return { st, effects: [] };
        return {
          st: {
            ...st,
            phase: "recovering",
            records: [...input.r.entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
            recovered: opts.shards.map((shard) => ({ shard, answered: false, prepared: null })),
          },
          // One shard at a time: a scan is background work, and a sequential scan has
          // far fewer interleavings for the checker to explore.
          effects: opts.shards.slice(0, 1).map((shard): Effect => ({ t: "xa.recover", shard })),
        };
      }
      case "xa.recover": {
        if (st.phase !== "recovering") return { st, effects: [] };
        const r = input.r;
        const recovered = st.recovered.map((x) =>
          x.shard === input.shard ? { shard: x.shard, answered: true, prepared: r.ok ? [...r.prepared].sort(byXid) : null } : x,
        );
        const next = { ...st, recovered };
        const pending = recovered.find((x) => !x.answered);
        return pending === undefined ? plan(next) : { st: next, effects: [{ t: "xa.recover", shard: pending.shard }] };
      }
      case "log.put": {
        if (st.phase === "booting" && input.key === EPOCH_KEY) {
          // Another process took the epoch first, or the log did not answer: try again next scan.
          if (!input.r.ok) return { st: idle(st), effects: [] };
          return listDecisions({ ...st, epoch: input.r.version });
        }
        if (st.phase !== "resolving") return { st, effects: [] };
        const done = `log.put:${input.key}`;
        if (!st.outstanding.includes(done)) return { st, effects: [] };
        const tx = txOfDecisionKey(input.key);
        const shards = st.recovered.flatMap((r) => r.prepared ?? []).filter((x) => x.tx === tx).map((x) => x.shard);
        const r = input.r;
        if (!r.ok && r.err === "FENCED") return { st: start(), effects: [] };
        // Our ABORT record is durable, or a decision was already there: follow it.
        const decision = r.ok ? "abort" : r.err === "CAS" ? decisionOf(r.current) : null;
        if (decision === null) return issue(st, done, []);
        const t = decision === "commit" ? "xa.commit" : "xa.rollback";
        return issue(st, done, shards.map((shard): Effect => ({ t, tx, shard })));
      }
      case "xa.commit":
      case "xa.rollback": {
        if (st.phase !== "resolving") return { st, effects: [] };
        const done = `${input.t}:${input.tx}:${input.shard}`;
        if (!st.outstanding.includes(done)) return { st, effects: [] };
        // Finished or not (1397/1402 included), the next scan sees what is still prepared.
        return issue(st, done, []);
      }
      case "log.delete": {
        if (st.phase !== "resolving") return { st, effects: [] };
        const done = `log.delete:${input.key}`;
        if (!st.outstanding.includes(done)) return { st, effects: [] };
        if (!input.r.ok && input.r.err === "FENCED") return { st: start(), effects: [] };
        return issue(st, done, []);
      }
      case "xa.exec":
      case "xa.prepare":
      case "timeout":
      case "xa.kill":
      case "local.apply":
      case "local.tombstone":
      case "local.compensate":
      case "local.release":
      case "local.scan":
        return cannotArrive("2PC resolver", input);
    }
  }

  return { start, step };
}

const byXid = (a: PreparedXid, b: PreparedXid): number => (a.tx < b.tx ? -1 : a.tx > b.tx ? 1 : a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : 0);
