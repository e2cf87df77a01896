/**
 * "Read-back is sound", the property the server model checks the read-back
 * rules with (./readback.ts): in every reachable state, for every
 * transaction, what durable state alone says of it (the facts projected from
 * the world as the runtime would gather them) never contradicts its outcome.
 *
 *   - readBack (a process that does not remember the transaction) says
 *     committed only if it never aborted, aborted only if it never commits;
 *   - settle (its coordinator is dead or done, nothing of it is still on
 *     its way) says aborted only if it never commits, committed only if it
 *     never aborted;
 *   - once it ended (its coordinator is dead or done, nothing of it on its
 *     way, no record of it left) it is in doubt only while a branch is still
 *     prepared or an applied speculative branch is not settled yet.
 *
 * "Never aborted / never commits" are read off what is final in the state:
 * history rows, a branch rolled back (AC1 makes either final), a decision or
 * terminal record once durable and the implicit commit (the ghost keeps
 * them after the records are forgotten), undo rows released, compensated or
 * tombstoned, and the answer the client got from a protocol that answers
 * only once the outcome is final. It is a state property: it adds no state.
 *
 * What `readback_sound` leaves out, stated: settle is checked there once
 * nothing of the transaction is on its way. A reader that settles while a
 * statement of the dead coordinator is still in the air is the stronger
 * property `settle_sound_in_flight` (the server model's parameter
 * settleInFlight): it must also not say aborted while a commit, an apply or
 * a commit/STAGING write of the transaction may still land. It holds with
 * the settle fence (./readback.ts): the reader answers only in a state where
 * it may hold the fence (`fenceHeld`), and there "nothing found" is aborted;
 * elsewhere settle answers "fence" (the reader waits). Without the fence
 * (mutant `settle-unfenced`) a coordinator that sent XA COMMIT ... ONE
 * PHASE and died leaves an IDLE branch, which neither XA RECOVER nor the
 * history shows: settle says aborted and the commit may still land.
 */
import { claimKey, type Outcome } from "../kernel/effects.ts";
import { branchXid } from "../env/executor.ts";
import * as txlog from "../env/txlog.ts";
import * as local from "../env/local.ts";
import type { BothShard } from "../env/both-shards.ts";
import type { DurableFacts } from "../protocols/protocol.ts";
import type { Scenario, World } from "../world/types.ts";
import { factKeys, ranBy, readBack, settle, type ReadBackRules } from "./readback.ts";
import { conclude, CONCLUDE_DIRECTIONS, type ConcludeMutant } from "./conclude.ts";

/** The server world's ghost variables this property reads (spec/server/properties.ts ServerGhost). */
interface FinalGhost {
  readonly decision: readonly ("commit" | "abort" | null)[];
  readonly existed: readonly (readonly boolean[])[];
  readonly implicit?: readonly boolean[];
  readonly terminal: readonly (string | null)[];
}

type SW = World<{ readonly phase: string }, unknown, BothShard, FinalGhost>;

/** The durable facts of transaction `t` in world `w`, as the runtime gathers them (runtime/durable.ts). */
export function factsOf(sc: Scenario, w: SW, t: number, r: ReadBackRules): DurableFacts {
  const id = sc.txs[t]!.id;
  const records = factKeys(id, r).flatMap((key) => {
    const e = txlog.get(w.log, key);
    return e === undefined ? [] : [{ key, value: e.value }];
  });
  const xid = (s: number) => branchXid(id, sc.shards[s]!);
  return {
    records,
    history: sc.shards.filter((_, s) => w.shards[s]!.xa.history.some((h) => h[0] === xid(s))),
    prepared: sc.shards.filter((_, s) => w.shards[s]!.xa.branches.some((b) => b.xid === xid(s) && b.state === "PREPARED")),
    undo: w.shards.flatMap((sh) => local.rowsOf(sh.local, id).map((row) => ({ branch: row.branch, state: row.state, branches: row.branches }))),
  };
}

interface Truth {
  readonly committed: boolean;
  readonly aborted: boolean;
}

/** What is final about `t` in `w`: it committed for good, or aborted for good. */
function truthOf(sc: Scenario, w: SW, t: number, facts: DurableFacts): Truth {
  const tx = sc.txs[t]!;
  const p = ranBy({ protocol: tx.protocol, shards: tx.branches.map((b) => b.shard) });
  const told = p.speculates ? null : w.told[t]?.status;
  const g = w.ghost;
  const xid = (s: number) => branchXid(tx.id, sc.shards[s]!);
  const rolledBack = sc.shards.some(
    (_, s) => g.existed[t]![s]! && !w.shards[s]!.xa.branches.some((b) => b.xid === xid(s)) && !facts.history.includes(sc.shards[s]!),
  );
  return {
    committed:
      told === "committed" || g.decision[t] === "commit" || g.implicit?.[t] === true || g.terminal[t] === "SPEC_COMMITTED" || facts.history.length > 0 || facts.undo.some((u) => u.state === "released"),
    aborted:
      told === "aborted" ||
      g.decision[t] === "abort" ||
      g.terminal[t] === "SPEC_ROLLED_BACK" ||
      rolledBack ||
      facts.undo.some((u) => u.state === "compensated" || u.state === "tombstone"),
  };
}

const contradicts = (o: Outcome | "probe" | "fence" | null, truth: Truth): boolean =>
  o !== null && o !== "probe" && o !== "fence" && ((o.status === "committed" && truth.aborted) || (o.status === "aborted" && truth.committed));

/** Where the server settles `t` from durable state: its coordinator died (statements it sent may still be on their way), or it is done with nothing in the air. */
function settles(w: SW, t: number, done: (st: { readonly phase: string }) => boolean): boolean {
  const c = w.coords[t]!;
  return c.st.phase !== "idle" && (!c.alive || (done(c.st) && !w.flights.some((f) => f.owner === t)));
}

/** The XA branch of `t` on shard `s` while it exists, unprepared and with writes (a row of its own locked: a one-phase branch's open-branch row, a two-phase branch's history rows). */
const openBranch = (sc: Scenario, w: SW, t: number, s: number): boolean =>
  w.shards[s]!.xa.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, sc.shards[s]!) && b.state !== "PREPARED" && b.writes.length > 0);

/** An XA COMMIT of `t` in the air that may still commit: its branch exists (a commit of no branch answers NOTA, and no branch of a dead coordinator can start and reach a commit any more). */
const xaCommitMayLand = (sc: Scenario, w: SW, t: number, fx: { readonly shard: string }): boolean => {
  const s = sc.shards.indexOf(fx.shard);
  return w.shards[s]!.xa.branches.some((b) => b.xid === branchXid(sc.txs[t]!.id, fx.shard));
};

/** An apply of `t` in the air that may still land: no undo row (nor tombstone) holds its (tx, shard) key yet. */
const applyMayLand = (sc: Scenario, w: SW, t: number, fx: { readonly shard: string }): boolean =>
  !local.rowsOf(w.shards[sc.shards.indexOf(fx.shard)]!.local, sc.txs[t]!.id).some((row) => row.branch === fx.shard);

/** An effect of `t` still in the air that may yet make it commit: a commit of a branch that exists, an apply whose key is free, a decision or STAGING write. */
const mayCommit = (sc: Scenario, w: SW, t: number): boolean =>
  w.flights.some(
    (f) =>
      f.owner === t &&
      ((f.fx.t === "xa.commit" && xaCommitMayLand(sc, w, t, f.fx)) ||
        (f.fx.t === "local.apply" && applyMayLand(sc, w, t, f.fx)) ||
        (f.fx.t === "log.put" && (f.fx.value.kind === "staging" || (f.fx.value.kind === "decision" && f.fx.value.decision === "commit")))),
  );

/**
 * A state in which a reader settling `t` may hold the settle fence (./readback.ts SETTLE_FENCE): the log fence (a
 * dead coordinator's process is gone and the process reading has taken a new epoch since: the crash reset the
 * resolver, so an epoch it holds was taken after) and the shard fence (the locking read of `t`'s open-branch row and history rows has
 * returned: it waits while an unprepared branch of `t` with writes lives and a commit of it is on its way; a state
 * where such a branch lives with no commit on its way is checked too, a superset of where the reader may be).
 */
export function fenceHeld(sc: Scenario, w: SW, t: number): boolean {
  const logFence = w.coords[t]!.alive || (w.up && (w.resolver as { readonly epoch?: number | null }).epoch != null);
  const commitOn = (s: number) => w.flights.some((f) => f.owner === t && f.fx.t === "xa.commit" && f.fx.shard === sc.shards[s]);
  return logFence && sc.shards.every((_, s) => !(openBranch(sc, w, t, s) && commitOn(s)));
}

/** The client's answer once its coordinator ended: nothing of it on its way and no record left. */
function ended(w: SW, t: number, facts: DurableFacts, done: (st: { readonly phase: string }) => boolean): boolean {
  const c = w.coords[t]!;
  return c.st.phase !== "idle" && (!c.alive || done(c.st)) && !w.flights.some((f) => f.owner === t) && facts.records.length === 0;
}

/**
 * The properties, for the server model's invariants. `done`: the server
 * coordinator's "nothing left to do". `inFlight`: also check settle while
 * statements of a dead coordinator may still be on their way
 * (`settle_sound_in_flight`; see the note at the top).
 */
export function readBackSound(sc: Scenario, r: ReadBackRules, done: (st: any) => boolean, inFlight = false, concludeMutant?: ConcludeMutant): Record<string, (w: any) => boolean> {
  const ran = (t: number) => ({ protocol: sc.txs[t]!.protocol, shards: sc.txs[t]!.branches.map((b) => b.shard) });
  const props: Record<string, (w: SW) => boolean> = {
    readback_sound: (w) =>
      sc.txs.every((tx, t) => {
        const facts = factsOf(sc, w, t, r);
        const truth = truthOf(sc, w, t, facts);
        const rb = readBack(tx.id, facts, r);
        if (contradicts(rb, truth)) return false;
        // Nothing of it on its way: the fence holds as far as this property asks (settle_sound_in_flight asks more).
        if (settles(w, t, done) && !w.flights.some((f) => f.owner === t) && contradicts(settle(tx.id, facts, ran(t), r, true), truth)) return false;
        const pending = facts.prepared.length > 0 || facts.undo.some((u) => u.state === "undo");
        return !(ended(w, t, facts, done) && rb?.status === "in_doubt" && !pending);
      }),
    // Concluding by hand (./conclude.ts): for either direction an operator may ask, a "final" verdict never
    // contradicts what is final (refusing and handing to the resolver never decide anything).
    conclude_sound: (w) =>
      sc.txs.every((tx, t) => {
        const facts = factsOf(sc, w, t, r);
        const truth = truthOf(sc, w, t, facts);
        const rb = readBack(tx.id, facts, r);
        return CONCLUDE_DIRECTIONS.every((d) => {
          const v = conclude(rb, d, concludeMutant);
          return v.t !== "final" || !(v.outcome === "committed" ? truth.aborted : truth.committed);
        });
      }),
  };
  if (inFlight) {
    props.settle_sound_in_flight = (w) =>
      sc.txs.every((tx, t) => {
        if (!settles(w, t, done)) return true;
        const facts = factsOf(sc, w, t, r);
        const truth = truthOf(sc, w, t, facts);
        // "fence": the reader waits for its fence here (never contradicts).
        return !contradicts(settle(tx.id, facts, ran(t), r, fenceHeld(sc, w, t)), { ...truth, committed: truth.committed || mayCommit(sc, w, t) });
      });
  }
  return props;
}

/**
 * `idempotent_answer`, for the server model with idempotency keys (spec/server/idempotency.ts withIdempotency): a
 * key is never answered two ways, and a stored answer is the transaction's outcome. In every state, for every
 * transaction: the outcome its claim stores never contradicts what is final and equals what its client was told
 * (when final); and what a retry with the key would answer now (answerOfClaim: the stored outcome, else this
 * process's coordinator once it ended, else settle with the fence as the reader may hold it) never contradicts
 * what is final or may still commit, nor what the client was told.
 */
export function idempotentAnswer(sc: Scenario, r: ReadBackRules, done: (st: any) => boolean): Record<string, (w: any) => boolean> {
  const ran = (t: number) => ({ protocol: sc.txs[t]!.protocol, shards: sc.txs[t]!.branches.map((b) => b.shard) });
  const differs = (a: Outcome | null, b: Outcome | null | undefined): boolean => a !== null && b != null && a.status !== "in_doubt" && b.status !== "in_doubt" && a.status !== b.status;
  /** What a retry answers now; null: it waits (the coordinator still runs) or the claim is not there (a retry claims anew: nothing ran). */
  const retry = (w: SW, t: number, facts: DurableFacts): Outcome | null => {
    const rec = txlog.get(w.log, claimKey(sc.txs[t]!.id))?.value;
    if (rec?.kind !== "claim") return null;
    if (rec.outcome !== undefined) return rec.outcome;
    const c = w.coords[t]!;
    if (c.alive && !done(c.st)) return null;
    const told = w.told[t];
    if (c.alive && told != null && told.status !== "in_doubt") return told;
    const o = settle(sc.txs[t]!.id, facts, ran(t), r, fenceHeld(sc, w, t));
    return o === "probe" || o === "fence" || o === null ? null : o;
  };
  return {
    idempotent_answer: (w: SW) =>
      sc.txs.every((tx, t) => {
        const facts = factsOf(sc, w, t, r);
        const truth = truthOf(sc, w, t, facts);
        const rec = txlog.get(w.log, claimKey(tx.id))?.value;
        const stored = rec?.kind === "claim" ? (rec.outcome ?? null) : null;
        if (contradicts(stored, truth) || differs(stored, w.told[t])) return false;
        const again = retry(w, t, facts);
        return !contradicts(again, { ...truth, committed: truth.committed || mayCommit(sc, w, t) }) && !differs(again, w.told[t]) && !differs(again, stored);
      }),
  };
}
