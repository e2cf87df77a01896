/**
 * Idempotency keys as spec: the rules runtime/idempotency.ts interprets. A
 * key is claimed durably before anything runs; only the claimant runs a
 * coordinator and stores the outcome once its coordinator replied. A later
 * request with the key answers by `answerOfClaim`:
 *
 *   - an outcome stored in the claim: that outcome (one key, one answer);
 *   - else the claimant is this process and its coordinator told a final
 *     outcome, or told in_doubt and has not ended: what it told;
 *   - else (the claimant is gone, or its coordinator answered in_doubt and
 *     ended): settle by read-back (./readback.ts `settle`), the rule
 *     GET /transactions/:id follows, so that one id never has two answers.
 *
 * What is stored: a final outcome only (`storable`); in_doubt is left open
 * for a later request to settle.
 *
 * The claim and the store as a role (`claimRole`): its only effects are
 * txlog writes (a claim record, spec/kernel/effects.ts ClaimRecord, at
 * `claimKey`), so they go through the txlog port like every other write;
 * what it asks of its host (run the transaction, settle a claim found
 * without outcome, answer) are signals the host acts on. The server model
 * composes it in front of the server coordinator (`withIdempotency`, model
 * parameter `idempotency`): claim -> run -> store, with a process crash
 * between any two steps, checked by `idempotent_answer`
 * (./readback-sound.ts) with the mutant `store-before-outcome`. The model
 * sends one request per transaction: a retry is checked as what it would
 * answer in every state, not as a second claim (so `claim.settle` is not
 * met there).
 *
 * runtime/idempotency.ts instantiates the role: its writes go through the
 * txlog port, its signals to the engine and to read-back; its steps are
 * recorded in the transaction's trace (actor `idempotency`), replayed by
 * `speccommit trace validate`. When the host does not run the transaction
 * (`not.run`), the key is given back: a log.delete at the claim's version.
 */
import { assert, cannotArrive, type Role, type Step } from "../kernel/role.ts";
import { claimKey, type ClaimRecord, type Effect, type FinalOutcome, type LogPutResult, type Outcome, type Result } from "../kernel/effects.ts";
import type { CoordinatorInput, Request } from "../protocols/protocol.ts";

/** What this process knows of the claimed transaction's coordinator: what it told, and whether it ended in doubt (nothing more will come of it). */
export interface Held {
  readonly told: Outcome;
  readonly endedInDoubt: boolean;
}

export type ClaimAnswer =
  | { readonly from: "stored"; readonly outcome: Outcome }
  | { readonly from: "coordinator"; readonly outcome: Outcome }
  /** Settle by read-back (./readback.ts `settle`), then store it if `storable`. */
  | { readonly from: "read-back" };

/** Where a request with an already claimed key takes its answer from. `held`: undefined when no coordinator of this process ran it. */
export function answerOfClaim(stored: Outcome | undefined, held: Held | undefined): ClaimAnswer {
  if (stored !== undefined) return { from: "stored", outcome: stored };
  if (held !== undefined && (held.told.status !== "in_doubt" || !held.endedInDoubt)) return { from: "coordinator", outcome: held.told };
  return { from: "read-back" };
}

/** A claim stores a final outcome; in_doubt is not an outcome, a later request settles it. */
export const storable = (o: Outcome): o is FinalOutcome => o.status !== "in_doubt";

// ---------------------------------------------------------------------------------------------
// The claim/store role

/** A deliberate bug, for the checker: the claim stores "committed" before the transaction ran (an outcome stored before it is durable). */
export type ClaimMutant = "store-before-outcome";

/** What the role asks of its host besides txlog writes. */
export type ClaimSignal =
  /** The claim is ours: run the transaction (its coordinator's outcome comes back as `told`). */
  | { readonly t: "claim.run"; readonly tx: string }
  /** The key was claimed before and holds no outcome: answer by answerOfClaim (this process's coordinator, else settle), then `told`. */
  | { readonly t: "claim.settle"; readonly record: ClaimRecord; readonly version: number }
  /** The answer for the client; `replayed`: an earlier request's. */
  | { readonly t: "claim.answer"; readonly tx: string; readonly outcome: Outcome; readonly replayed: boolean }
  /** 422: the key was used for another transfer; 503: the claim's fate is unknown (the txlog did not answer). */
  | { readonly t: "claim.refused"; readonly tx: string; readonly status: 422 | 503 };

export type ClaimEffect = Extract<Effect, { t: "log.put" | "log.delete" }> | ClaimSignal;

export type ClaimInput =
  | { readonly t: "claim"; readonly key: string; readonly record: ClaimRecord }
  | Extract<Result, { t: "log.put" | "log.delete" }>
  /** The host did not run the claimed transaction (overloaded, shutting down, not ready): the key is given back. */
  | { readonly t: "not.run" }
  /** The transaction's outcome: its coordinator's answer, or settled from durable state. */
  | { readonly t: "told"; readonly outcome: Outcome };

interface Claimed<P extends string> {
  readonly phase: P;
  readonly key: string;
  readonly record: ClaimRecord;
  /** The claim's version in the txlog (0 while claiming). */
  readonly version: number;
  readonly replayed: boolean;
}

export type ClaimState =
  | { readonly phase: "idle" }
  | Claimed<"claiming">
  | Claimed<"running">
  | Claimed<"settling">
  | { readonly phase: "storing"; readonly key: string; readonly record: ClaimRecord; readonly outcome: Outcome; readonly replayed: boolean }
  /** Giving the key back: its claim deleted while it still is the version we made (nothing ran, nothing stored). */
  | { readonly phase: "releasing"; readonly key: string }
  | { readonly phase: "answered" };

const answer = (tx: string, outcome: Outcome, replayed: boolean): Step<ClaimState, ClaimEffect> => ({ st: { phase: "answered" }, effects: [{ t: "claim.answer", tx, outcome, replayed }] });

/** The claim was refused by its compare: someone claimed the key first (answerOfClaim), or the txlog did not answer. */
function onClaimPut(st: Claimed<"claiming">, r: LogPutResult): Step<ClaimState, ClaimEffect> {
  if (r.ok) return { st: { ...st, phase: "running", version: r.version }, effects: [{ t: "claim.run", tx: st.record.tx }] };
  if (r.err !== "CAS") return { st: { phase: "answered" }, effects: [{ t: "claim.refused", tx: st.record.tx, status: 503 }] };
  const cur = r.current;
  if (cur?.kind !== "claim") return { st: { phase: "answered" }, effects: [{ t: "claim.refused", tx: st.record.tx, status: 503 }] };
  if (cur.fingerprint !== st.record.fingerprint) return { st: { phase: "answered" }, effects: [{ t: "claim.refused", tx: cur.tx, status: 422 }] };
  if (cur.outcome !== undefined) return answer(cur.tx, cur.outcome, true);
  return { st: { phase: "settling", key: st.key, record: cur, version: r.version, replayed: true }, effects: [{ t: "claim.settle", record: cur, version: r.version }] };
}

/**
 * The transaction's outcome is known: a final one is stored (compare on the version the claim had) before the
 * answer; in_doubt is not an outcome: the claim is written again as it is (the runtime puts it on the retention
 * lease of now, so that it lives as long as clients keep asking), then in_doubt is answered.
 */
function onTold(st: Claimed<"running"> | Claimed<"settling">, outcome: Outcome): Step<ClaimState, ClaimEffect> {
  const record: ClaimRecord = storable(outcome) ? { ...st.record, outcome } : st.record;
  return {
    st: { phase: "storing", key: st.key, record: st.record, outcome, replayed: st.replayed },
    effects: [{ t: "log.put", key: st.key, value: record, ifVersion: st.version }],
  };
}

/**
 * Claim, run, store, answer. A request's claim is a CAS create; only its
 * maker runs the transaction; a final outcome is stored before it is
 * answered (a store that fails is not fatal: a later request settles the
 * claim); a claim found made earlier answers what it stores, else what
 * answerOfClaim says.
 */
export function claimRole(mutant?: ClaimMutant): Role<ClaimState, ClaimInput, ClaimEffect> {
  function step(st: ClaimState, input: ClaimInput): Step<ClaimState, ClaimEffect> {
    switch (input.t) {
      case "claim": {
        assert(st.phase === "idle", () => `claim: a second claim (${input.record.tx}) in phase ${st.phase}`);
        return { st: { phase: "claiming", key: input.key, record: input.record, version: 0, replayed: false }, effects: [{ t: "log.put", key: input.key, value: input.record, ifVersion: 0 }] };
      }
      case "log.put": {
        if (st.phase === "claiming") {
          const out = onClaimPut(st, input.r);
          if (mutant !== "store-before-outcome" || out.st.phase !== "running") return out;
          const early: ClaimRecord = { ...st.record, outcome: { status: "committed" } };
          return { st: { ...out.st, version: out.st.version + 1 }, effects: [{ t: "log.put", key: st.key, value: early, ifVersion: out.st.version }, ...out.effects] };
        }
        if (st.phase === "running") return { st, effects: [] }; // the mutant's early store answered
        assert(st.phase === "storing", () => `claim: a txlog answer in phase ${st.phase}`);
        // Stored or not, the outcome is the answer (a store that failed leaves the claim for a later request to settle).
        return answer(st.record.tx, st.outcome, st.replayed);
      }
      case "told":
        assert(st.phase === "running" || st.phase === "settling", () => `claim: an outcome told in phase ${st.phase}`);
        return onTold(st, input.outcome);
      case "not.run":
        // Nothing ran: delete the claim only at the version we made, so that a claim someone else made or stored into stays.
        assert(st.phase === "running" && !st.replayed, () => `claim: not run in phase ${st.phase}`);
        return { st: { phase: "releasing", key: st.key }, effects: [{ t: "log.delete", key: st.key, ifVersion: st.version }] };
      case "log.delete":
        // Given back or not (a claim left behind is settled as aborted by the retry: nothing ran), the host refuses the request.
        assert(st.phase === "releasing", () => `claim: a delete answered in phase ${st.phase}`);
        return { st: { phase: "answered" }, effects: [] };
      default:
        return cannotArrive("claim", input);
    }
  }
  return { start: () => ({ phase: "idle" }), step };
}

// ---------------------------------------------------------------------------------------------
// The claim in front of the server coordinator (the server model's composition)

/** The coordinator state with its claim: `phase` is the coordinator's once it runs, "claiming" before, "storing" from its end until the claim answered. */
export interface IdempotentState<C> {
  readonly phase: string;
  readonly claim: ClaimState;
  readonly inner: C;
  readonly request: Request | null;
  /** The coordinator has its request (the claim was ours). */
  readonly ran: boolean;
}

type Inner<C> = Role<C, CoordinatorInput, Effect> & { done(st: C): boolean };

/**
 * A coordinator whose every request carries an idempotency key (the model's: the transaction id), claimed before
 * the coordinator runs and stored before the client hears: claim -> run -> store -> reply. Txlog answers for the
 * claim's key go to the claim, everything else to the coordinator; the coordinator's reply becomes the claim's
 * `told`. One request per transaction: a claim found made earlier (claim.settle) cannot arrive here.
 */
export function withIdempotency<C extends { readonly phase: string }>(inner: Inner<C>, fingerprint: (r: Request) => string, mutant?: ClaimMutant): Inner<IdempotentState<C>> {
  const claim = claimRole(mutant);
  const answered = (st: IdempotentState<C>) => st.claim.phase === "answered";
  const phaseOf = (st: IdempotentState<C>): string => {
    if (!st.ran) return st.claim.phase === "idle" ? "idle" : answered(st) ? "done" : "claiming";
    return !answered(st) && (st.claim.phase === "storing" || inner.done(st.inner)) ? "storing" : st.inner.phase;
  };
  const settled = (st: IdempotentState<C>, effects: Effect[]): Step<IdempotentState<C>, Effect> => ({ st: { ...st, phase: phaseOf(st) }, effects });

  /** The claim's step, and what it asks of its host. */
  function viaClaim(st0: IdempotentState<C>, input: ClaimInput): Step<IdempotentState<C>, Effect> {
    const out = claim.step(st0.claim, input);
    let st: IdempotentState<C> = { ...st0, claim: out.st };
    const effects: Effect[] = [];
    for (const fx of out.effects) {
      if (fx.t === "log.put") effects.push(fx);
      else if (fx.t === "claim.answer") effects.push({ t: "reply", tx: fx.tx, outcome: fx.outcome });
      else if (fx.t === "claim.run") {
        const o = inner.step(inner.start(), st.request!);
        const next = fromInner({ ...st, inner: o.st, ran: true }, o.effects);
        st = next.st;
        effects.push(...next.effects);
      } else if (fx.t === "claim.refused") {
        // The client hears 503 (the claim's fate unknown) and nothing ran: a retry with the key finds out.
      } else assert(false, () => `withIdempotency: the claim asked for ${fx.t}, which one request per transaction never meets`);
    }
    return settled(st, effects);
  }

  /** The coordinator's effects: its reply goes to the claim (stored, then answered). */
  function fromInner(st0: IdempotentState<C>, fxs: readonly Effect[]): Step<IdempotentState<C>, Effect> {
    let st = st0;
    const effects: Effect[] = [];
    for (const fx of fxs) {
      if (fx.t !== "reply") {
        effects.push(fx);
        continue;
      }
      const out = viaClaim(st, { t: "told", outcome: fx.outcome });
      st = out.st;
      effects.push(...out.effects);
    }
    return settled(st, effects);
  }

  function step(st: IdempotentState<C>, input: CoordinatorInput): Step<IdempotentState<C>, Effect> {
    if (input.t === "request") {
      const record: ClaimRecord = { kind: "claim", tx: input.tx, fingerprint: fingerprint(input), shards: input.branches.map((b) => b.shard), ...(input.protocol !== undefined ? { protocol: input.protocol } : {}) };
      return viaClaim({ ...st, request: input }, { t: "claim", key: claimKey(input.tx), record });
    }
    if (input.t === "log.put" && st.request !== null && input.key === claimKey(st.request.tx)) return viaClaim(st, input);
    assert(st.ran, () => `withIdempotency: a ${input.t} result for a coordinator that has not run`);
    const o = inner.step(st.inner, input);
    return fromInner({ ...st, inner: o.st }, o.effects);
  }

  return {
    start: () => ({ phase: "idle", claim: claim.start(), inner: inner.start(), request: null, ran: false }),
    step,
    done: (st) => answered(st) && (!st.ran || inner.done(st.inner)),
  };
}
