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
 * What `readback_sound` leaves out, stated: settle is checked once nothing
 * of the transaction is on its way. A reader that settles while a statement
 * of the dead coordinator is still in the air is the stronger property
 * `settle_sound_in_flight` (the server model's parameter settleInFlight):
 * it must also not say aborted while a commit, an apply or a commit/STAGING
 * write of the transaction may still land. The speculative path keeps it
 * (nothing found is "probe": the probe's tombstones race the late apply);
 * the one-phase path does not: a coordinator that sent XA COMMIT ... ONE
 * PHASE and died leaves an IDLE branch, which neither XA RECOVER nor the
 * history shows, so settle says aborted and the commit may still land
 * (6 steps, scenario one-phase+speculative, crash=1).
 */
import type { Outcome } from "../kernel/effects.ts";
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

const contradicts = (o: Outcome | "probe" | null, truth: Truth): boolean =>
  o !== null && o !== "probe" && ((o.status === "committed" && truth.aborted) || (o.status === "aborted" && truth.committed));

/** Where the server settles `t` from durable state: its coordinator died (statements it sent may still be on their way), or it is done with nothing in the air. */
function settles(w: SW, t: number, done: (st: { readonly phase: string }) => boolean): boolean {
  const c = w.coords[t]!;
  return c.st.phase !== "idle" && (!c.alive || (done(c.st) && !w.flights.some((f) => f.owner === t)));
}

/** An effect of `t` still in the air that may yet make it commit: a commit, an apply, a decision or STAGING write. */
const mayCommit = (w: SW, t: number): boolean =>
  w.flights.some((f) => f.owner === t && (f.fx.t === "xa.commit" || f.fx.t === "local.apply" || (f.fx.t === "log.put" && (f.fx.value.kind === "staging" || (f.fx.value.kind === "decision" && f.fx.value.decision === "commit")))));

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
        if (settles(w, t, done) && !w.flights.some((f) => f.owner === t) && contradicts(settle(tx.id, facts, ran(t), r), truth)) return false;
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
        return !contradicts(settle(tx.id, facts, ran(t), r), { ...truth, committed: truth.committed || mayCommit(w, t) });
      });
  }
  return props;
}
