/**
 * The resolver of 2PC with presumed abort: it finishes what a dead or
 * give-up coordinator left behind. It runs at boot and on every scan tick:
 *
 *   1. list the decision records in the txlog;
 *   2. then XA RECOVER every shard (after the list, on purpose: a COMMIT
 *      record is written only once every branch is prepared, so a branch
 *      of a listed COMMIT record that a later RECOVER does not show is
 *      finished);
 *   3. for every prepared branch of ours whose coordinator is not active in
 *      this process: COMMIT record -> XA COMMIT; ABORT record -> XA ROLLBACK;
 *      no record -> presumed abort: create an ABORT record by CAS (create only
 *      if absent), then XA ROLLBACK. The CAS is what keeps a coordinator that
 *      is still alive somewhere from committing after the rollback: its own
 *      COMMIT CAS then fails and it aborts;
 *   4. delete every record of an inactive transaction none of whose branches
 *      is prepared any more (nothing is left to decide).
 *
 * 1397 (NOTA) and 1402 (RBROLLBACK) on XA COMMIT/ROLLBACK mean the branch is
 * already finished. A failed step is retried on the next scan, never in a loop.
 *
 * Why `active` matters: an ABORT record may only be deleted once the
 * transaction's coordinator can no longer try to write COMMIT, i.e. when it
 * is not running. The runtime passes the transactions its live coordinators
 * own; after a crash that set is empty.
 */
import type { Role, Step } from "../../role.ts";
import {
  DECISION_PREFIX,
  decisionKey,
  txOfDecisionKey,
  type Effect,
  type LogEntry,
  type PreparedXid,
  type Result,
  type ShardId,
  type TxId,
} from "../../effects.ts";

export type ResolverMutant = "missing-is-commit" | "rollback-committed" | "ignore-active" | "gc-without-recover";

export interface ResolverOptions {
  readonly shards: readonly ShardId[];
  readonly mutant?: ResolverMutant;
}

export interface ResolverState {
  readonly phase: "idle" | "listing" | "recovering" | "resolving";
  readonly active: readonly TxId[];
  readonly records: readonly LogEntry[];
  /** Per shard, what XA RECOVER answered in this scan (null: no answer yet or unavailable). */
  readonly recovered: readonly { readonly shard: ShardId; readonly answered: boolean; readonly prepared: readonly PreparedXid[] | null }[];
  /** Effects of this scan still waiting for their result, as sorted keys. */
  readonly outstanding: readonly string[];
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

export function resolver(opts: ResolverOptions): Role<ResolverState, ResolverInput, Effect> {
  const mutant = opts.mutant;
  const start = (): ResolverState => ({ phase: "idle", active: [], records: [], recovered: [], outstanding: [] });

  const idle = (): ResolverState => start();

  /** Issue `effects` and remember them as outstanding; with none left, the scan is over. */
  function issue(st: ResolverState, done: string | null, effects: Effect[]): Out {
    const outstanding = st.outstanding.filter((k) => k !== done).concat(effects.map(keyOf)).sort();
    if (outstanding.length === 0) return { st: idle(), effects };
    return { st: { ...st, phase: "resolving", outstanding }, effects };
  }

  const recordOf = (st: ResolverState, tx: TxId): LogEntry | undefined => st.records.find((r) => r.key === decisionKey(tx));
  const isActive = (st: ResolverState, tx: TxId): boolean => mutant !== "ignore-active" && st.active.includes(tx);

  /** Every shard answered RECOVER (or failed to): decide what to do with each prepared branch. */
  function plan(st: ResolverState): Out {
    const effects: Effect[] = [];
    const prepared = st.recovered.flatMap((r) => r.prepared ?? []).filter((x) => !isActive(st, x.tx));
    const presumed = new Map<TxId, ShardId[]>();
    for (const x of prepared) {
      const rec = recordOf(st, x.tx);
      if (rec === undefined) {
        if (mutant === "missing-is-commit") effects.push({ t: "xa.commit", tx: x.tx, shard: x.shard });
        else presumed.set(x.tx, [...(presumed.get(x.tx) ?? []), x.shard]);
      } else if (rec.value.decision === "commit" && mutant !== "rollback-committed") {
        effects.push({ t: "xa.commit", tx: x.tx, shard: x.shard });
      } else {
        effects.push({ t: "xa.rollback", tx: x.tx, shard: x.shard });
      }
    }
    for (const [tx, shards] of [...presumed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      effects.push({ t: "log.put", key: decisionKey(tx), value: { kind: "decision", decision: "abort", branches: shards.sort() }, ifVersion: 0 });
    }
    const known = new Set(st.recovered.filter((r) => r.prepared !== null).map((r) => r.shard));
    for (const rec of st.records) {
      const tx = txOfDecisionKey(rec.key);
      if (isActive(st, tx)) continue;
      const stillPrepared = prepared.some((x) => x.tx === tx);
      const allSeen = rec.value.branches.every((s) => known.has(s));
      if (mutant === "gc-without-recover" || (allSeen && !stillPrepared)) effects.push({ t: "log.delete", key: rec.key });
    }
    return issue({ ...st, phase: "resolving", outstanding: [] }, null, effects);
  }

  function step(st: ResolverState, input: ResolverInput): Out {
    switch (input.t) {
      case "scan": {
        if (st.phase !== "idle") return { st, effects: [] };
        return {
          st: { ...start(), phase: "listing", active: [...input.active].sort() },
          effects: [{ t: "log.list", prefix: DECISION_PREFIX }],
        };
      }
      case "log.list": {
        if (st.phase !== "listing") return { st, effects: [] };
        if (!input.r.ok) return { st: idle(), effects: [] };
        return {
          st: {
            ...st,
            phase: "recovering",
            records: [...input.r.entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
            recovered: opts.shards.map((shard) => ({ shard, answered: false, prepared: null })),
          },
          effects: opts.shards.map((shard): Effect => ({ t: "xa.recover", shard })),
        };
      }
      case "xa.recover": {
        if (st.phase !== "recovering") return { st, effects: [] };
        const r = input.r;
        const recovered = st.recovered.map((x) =>
          x.shard === input.shard ? { shard: x.shard, answered: true, prepared: r.ok ? [...r.prepared].sort(byXid) : null } : x,
        );
        const next = { ...st, recovered };
        return recovered.every((x) => x.answered) ? plan(next) : { st: next, effects: [] };
      }
      case "log.put": {
        if (st.phase !== "resolving") return { st, effects: [] };
        const done = `log.put:${input.key}`;
        if (!st.outstanding.includes(done)) return { st, effects: [] };
        const tx = txOfDecisionKey(input.key);
        const shards = st.recovered.flatMap((r) => r.prepared ?? []).filter((x) => x.tx === tx).map((x) => x.shard);
        const r = input.r;
        // Our ABORT record is durable, or a decision was already there: follow it.
        const decision = r.ok ? "abort" : r.err === "CAS" ? (r.current?.decision ?? null) : null;
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
        return issue(st, done, []);
      }
      case "xa.exec":
      case "xa.prepare":
      case "timeout":
        return { st, effects: [] };
    }
  }

  return { start, step };
}

const byXid = (a: PreparedXid, b: PreparedXid): number => (a.tx < b.tx ? -1 : a.tx > b.tx ? 1 : a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : 0);
