/**
 * Taking over a dead coordinator node's transactions (docs/protocols/failover.md).
 *
 * Every coordinator node has its own txlog namespace (its records and its
 * EPOCH key) and its own xids, and holds a lease. Each node runs this role
 * once for every OTHER node N (`takeover(self, N)`); the rules:
 *
 *   1. N's lease expired and nobody we know of holds N: claim N, a CAS
 *      create of `owners/N` (spec/kernel/effects.ts ownerKey) naming
 *      ourselves. Exactly one survivor's create lands.
 *   2. The claim landed, or its compare failed on a claim naming us (our
 *      earlier create landed but its answer was lost, or we restarted):
 *      while N's lease stays expired we own N, `resolving` is true, and the
 *      host runs the process resolver (spec/server/resolver.ts) over N's
 *      namespace. Its first step takes a new epoch for N: that is the fence,
 *      every write N still has in flight fails FENCED from then on.
 *   3. The compare failed on another survivor's claim: stand by. If that
 *      owner's own lease expires, claim N again by replacing its claim at the
 *      version we saw (a CAS again: one of the survivors wins).
 *   4. N's lease is alive again: stop resolving (`resolving` is false at
 *      once) and give the claim back, a delete at the version we made. N, back,
 *      takes a new epoch of its own, which fences whatever our resolver still
 *      has in flight. A release that got no answer is tried again on the next
 *      alive observation; a claim that got no answer is settled by the next
 *      claim's compare.
 *
 * Observations are levels, not edges: the host delivers N's lease state (and
 * the state of the node holding N's claim) on every change and on its watch's
 * periodic resync, so that a step that could not conclude (the txlog did not
 * answer) is retried by the next observation. A crash resets the role to
 * `start()`: the claim lives in the txlog, and rule 2 finds it again.
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import { assert, type Role, type Step } from "../kernel/role.ts";
import { ownerKey, type Effect, type LogDeleteResult, type LogPutResult, type OwnerRecord, type Result } from "../kernel/effects.ts";

export type TakeoverPhase =
  /** Nothing held (or a release that got no answer: `version` > 0). */
  | "watching"
  /** The claim's create (or replace) is in flight. */
  | "claiming"
  /** We hold N's claim at `version`: the resolver runs over N's namespace. */
  | "owning"
  /** The claim's delete is in flight. */
  | "releasing"
  /** Another survivor (`other`) holds N's claim. */
  | "standby";

export interface TakeoverState {
  readonly phase: TakeoverPhase;
  /** N's lease as last observed (null: not observed yet). */
  readonly alive: boolean | null;
  /** The version our claim holds at (0: we hold none we know of). */
  readonly version: number;
  /** standby: the survivor whose claim holds N, and its version. */
  readonly other: { readonly owner: string; readonly version: number } | null;
}

/** A lease observation from the host's watch: node `node`'s lease is alive or has expired. */
export interface LeaseObservation {
  readonly t: "lease";
  readonly node: string;
  readonly alive: boolean;
}

export type TakeoverInput = LeaseObservation | Extract<Result, { t: "log.put" | "log.delete" }>;
export type TakeoverEffect = Extract<Effect, { t: "log.put" | "log.delete" }>;

type Out = Step<TakeoverState, TakeoverEffect>;

/** The host runs the process resolver over N's namespace exactly while this holds. */
export const resolving = (st: TakeoverState): boolean => st.phase === "owning";

/**
 * The deliberate bug the failover model must catch (spec/failover/model.ts):
 * `ignore-cas`, a claim whose compare failed on another survivor's claim is
 * taken as won (two survivors take over the same node). A takeover that
 * races a live node is the lease's bug, not this role's: the model's mutant
 * `lease-early`.
 */
export const takeoverMutants = ["ignore-cas"] as const;
export type TakeoverMutant = (typeof takeoverMutants)[number];

export function takeover(self: string, node: string, mutant?: TakeoverMutant): Role<TakeoverState, TakeoverInput, TakeoverEffect> & { readonly node: string } {
  assert(self !== node, () => `takeover: node ${self} cannot take itself over`);
  const key = ownerKey(node);
  const record: OwnerRecord = { kind: "owner", node, owner: self };
  const start = (): TakeoverState => ({ phase: "watching", alive: null, version: 0, other: null });

  const claim = (st: TakeoverState, ifVersion: number): Out => ({
    st: { ...st, phase: "claiming", other: null },
    effects: [{ t: "log.put", key, value: record, ifVersion }],
  });
  const release = (st: TakeoverState, version: number): Out => ({ st: { ...st, phase: "releasing", version, other: null }, effects: [{ t: "log.delete", key, ifVersion: version }] });
  /** We hold the claim at `version`: own N, or give it back at once if N is alive. */
  const held = (st: TakeoverState, version: number): Out => (st.alive === true ? release(st, version) : { st: { ...st, phase: "owning", version, other: null }, effects: [] });

  function observe(st: TakeoverState, o: LeaseObservation): Out {
    if (o.node !== node) {
      // Rule 3: the survivor holding N died too.
      if (st.phase === "standby" && st.other!.owner === o.node && !o.alive) return claim(st, st.other!.version);
      return { st, effects: [] };
    }
    const now: TakeoverState = { ...st, alive: o.alive };
    const expired = !o.alive;
    switch (st.phase) {
      case "watching":
        if (expired) return claim(now, 0);
        return st.version > 0 ? release(now, st.version) : { st: now, effects: [] };
      case "owning":
        return expired ? { st: now, effects: [] } : release(now, st.version);
      case "standby":
        return expired ? { st: now, effects: [] } : { st: { ...now, phase: "watching", other: null }, effects: [] };
      case "claiming":
      case "releasing":
        return { st: now, effects: [] };
    }
  }

  function onPut(st: TakeoverState, r: LogPutResult): Out {
    assert(st.phase === "claiming", () => `takeover ${node}: a claim's answer arrived in phase ${st.phase}`);
    if (r.ok) return held(st, r.version);
    assert(r.err !== "FENCED", () => `takeover ${node}: an unfenced claim answered FENCED`);
    // No answer: it may have landed; the next claim's compare tells.
    if (r.err === "UNAVAILABLE") return { st: { ...st, phase: "watching" }, effects: [] };
    const cur = r.current;
    if (cur?.kind === "owner" && (cur.owner === self || mutant === "ignore-cas")) return held(st, r.version);
    if (cur?.kind === "owner") return { st: { ...st, phase: "standby", version: 0, other: { owner: cur.owner, version: r.version } }, effects: [] };
    // The key changed under us (a claim given back, or something else there): the next observation decides.
    return { st: { ...st, phase: "watching" }, effects: [] };
  }

  function onDelete(st: TakeoverState, r: LogDeleteResult): Out {
    assert(st.phase === "releasing", () => `takeover ${node}: a release's answer arrived in phase ${st.phase}`);
    assert(r.ok || r.err !== "FENCED", () => `takeover ${node}: an unfenced release answered FENCED`);
    // Done, or the claim is no longer ours at that version (replaced): we hold nothing. No answer: retry on the next alive observation.
    if (r.ok || r.err === "CAS") return { st: { ...st, phase: "watching", version: 0 }, effects: [] };
    return { st: { ...st, phase: "watching" }, effects: [] };
  }

  function step(st: TakeoverState, input: TakeoverInput): Out {
    if (input.t === "lease") return observe(st, input);
    assert(input.key === key, () => `takeover ${node}: an answer for ${input.key} arrived (this role writes ${key} only)`);
    return input.t === "log.put" ? onPut(st, input.r) : onDelete(st, input.r);
  }

  return { start, step, node };
}

/**
 * Rule 5, a hung or cut-off node's shard sessions (issue 11). A node that is
 * frozen or partitioned, not dead, keeps its sessions on the shards: its
 * prepared branches stay attached to them, with their row locks. MariaDB
 * answers XA COMMIT and XA ROLLBACK of a branch still attached to another
 * live session with 1397 (XAER_NOTA, "unknown XID": measured on MariaDB
 * 10.11, test/failover/detach.test.ts), and the branch's row locks stay
 * held. The resolver over N's namespace keeps N's record while XA RECOVER
 * still lists the branch, so nothing is lost, but nothing settles either
 * until N's session dies: with N frozen, or cut off (the shard does not
 * notice a silent TCP client for hours), not within any bound.
 *
 * So the host detaches N's prepared branches before that resolver may settle
 * them: it kills the shard session each one is attached to (KILL CONNECTION,
 * then waits until the session is gone; the branch stays prepared, detached,
 * and the resolver's XA COMMIT or ROLLBACK then applies). A shard on which a
 * listed branch could not be detached answers the resolver's XA RECOVER as
 * UNAVAILABLE (a shard that did not answer: the scan is incomplete and is
 * retried), never with a list the resolver would settle through NOTA.
 *
 * When: only while owning N and once the fence is durable (the resolver
 * over N's namespace holds the new epoch it took of N, `fence` not null).
 * Before the fence, N may still be alive and writing decisions: killing its
 * sessions would abort what it runs and it would open new ones, for nothing.
 * After it, N can never make a decision durable again under its old epoch,
 * so every branch of N the resolver finds is the resolver's to decide, and a
 * session of N holding one only stands in the way. A branch N prepares after
 * the kill (it resumed) is found by the next scan and detached in turn.
 * The same rule covers N's speculative undo rows (state undo) that a session
 * of N holds locked, e.g. its release frozen between its locking read and
 * its COMMIT: the host detaches them before the undo-row scan answers, and
 * killing the session only rolls back a local transaction whose outcome the
 * keys decide anyway (../protocols/speculative/settle.ts).
 *
 * Under the same condition, and before it detaches anything on a shard, the
 * host fences N on that shard (the node fence, ../server/readback.ts
 * SETTLE_FENCE: N's fence row raised to the resolver's epoch, N's sessions
 * holding it killed): a one-phase branch of N, which no log fence stops, can
 * then no longer commit there under N's old epoch. A shard not fenced yet
 * answers XA RECOVER as UNAVAILABLE too, so the resolver's first complete
 * scan of N means N is fenced on every shard.
 */
export const detachBeforeSettle = (st: TakeoverState | undefined, fence: number | null): boolean => st !== undefined && resolving(st) && fence !== null;
