/**
 * TwoPhase.tla (Gray & Lamport, "Consensus on Transaction Commit", 2006;
 * tlaplus/Examples specifications/transaction_commit), ported action for
 * action. A transaction manager (TM) and N resource managers (RMs): RMs
 * prepare spontaneously and send Prepared; the TM commits once every RM is
 * prepared, or aborts at any time; RMs obey Commit/Abort. `msgs` is the set
 * of messages ever sent and never shrinks, so receiving is "the message is in
 * msgs" and may repeat (with no effect here, but it still counts as a step,
 * exactly as TLC counts it).
 *
 * The state is packed into one integer (4N + 4 bits, N <= 10), so the
 * checker runs its allocation-free path:
 *   low 32 bits:  rmState[i] in bits 2i..2i+1 (working 0, prepared 1,
 *                 committed 2, aborted 3); tmPrepared in bits 2N..3N-1
 *   high bits:    Prepared(rm_i) in msgs at bit i; tmState (init 0,
 *                 committed 1, aborted 2) at bits N..N+1; Commit in msgs at
 *                 bit N+2; Abort in msgs at bit N+3
 * The RMs are interchangeable, so the model also declares a symmetry.
 */
import type { Model, ModelFactory, Msg, StepInfo } from "../kernel/model.ts";

export type TwoPhaseAction =
  | { kind: "TMCommit" }
  | { kind: "TMAbort" }
  | { kind: "TMRcvPrepared"; rm: number }
  | { kind: "RMPrepare"; rm: number }
  | { kind: "RMChooseToAbort"; rm: number }
  | { kind: "RMRcvCommitMsg"; rm: number }
  | { kind: "RMRcvAbortMsg"; rm: number };

export const RM_STATES = ["working", "prepared", "committed", "aborted"] as const;
export const TM_STATES = ["init", "committed", "aborted"] as const;
const WORKING = 0;
const PREPARED = 1;
const COMMITTED = 2;
const ABORTED = 3;
const HI = 4294967296;

export const twoPhaseMutants = [
  /** TMCommit without the guard tmPrepared = RM. */
  "commitWithoutAllPrepared",
  /** RMChooseToAbort also enabled in state "prepared". */
  "abortAfterPrepare",
  /** TMCommit enabled after the TM aborted (guard tmState # "committed" instead of = "init"). */
  "commitAfterAbort",
] as const;
export type TwoPhaseMutant = (typeof twoPhaseMutants)[number];

/** The decoded view of a packed state, for traces and tests. */
export interface TwoPhaseView {
  rmState: Record<string, string>;
  tmState: string;
  tmPrepared: string[];
  msgs: string[];
}

export function twoPhase(n: number, mutant?: TwoPhaseMutant): Model<number, TwoPhaseAction> {
  if (!Number.isInteger(n) || n < 1 || n > 10) throw new Error(`TwoPhase: RM must be an integer from 1 to 10 (the state packs into 4*RM+4 bits), got ${n}`);
  const all = (1 << n) - 1;
  const fields = 2 * n;
  // Masks of bit 0 and bit 1 of every rmState field.
  let low01 = 0;
  for (let i = 0; i < n; i++) low01 |= 1 << (2 * i);
  const tmShift = n;
  const commitBit = 1 << (n + 2);
  const abortBit = 1 << (n + 3);
  const hiBits = n + 4;

  const split = (x: number) => ({ lo: x >>> 0, hi: Math.floor(x / HI) });
  const join = (hi: number, lo: number) => hi * HI + (lo >>> 0);
  const rmOf = (lo: number, i: number) => (lo >>> (2 * i)) & 3;
  const withRm = (lo: number, i: number, st: number) => ((lo & ~(3 << (2 * i))) | (st << (2 * i))) >>> 0;
  const tmOf = (hi: number) => (hi >>> tmShift) & 3;
  const withTm = (hi: number, st: number) => (hi & ~(3 << tmShift)) | (st << tmShift);
  const tmPrepared = (lo: number) => (lo >>> fields) & all;

  const canCommit = (hi: number, lo: number) =>
    mutant === "commitWithoutAllPrepared"
      ? tmOf(hi) === 0
      : mutant === "commitAfterAbort"
        ? tmOf(hi) !== 1 && tmPrepared(lo) === all
        : tmOf(hi) === 0 && tmPrepared(lo) === all;
  const canChooseToAbort = (st: number) => st === WORKING || (mutant === "abortAfterPrepare" && st === PREPARED);

  function* actions(x: number): Iterable<TwoPhaseAction> {
    const { hi, lo } = split(x);
    if (canCommit(hi, lo)) yield { kind: "TMCommit" };
    if (tmOf(hi) === 0) yield { kind: "TMAbort" };
    for (let rm = 0; rm < n; rm++) {
      const st = rmOf(lo, rm);
      if (tmOf(hi) === 0 && (hi >>> rm) & 1) yield { kind: "TMRcvPrepared", rm };
      if (st === WORKING) yield { kind: "RMPrepare", rm };
      if (canChooseToAbort(st)) yield { kind: "RMChooseToAbort", rm };
      if (hi & commitBit) yield { kind: "RMRcvCommitMsg", rm };
      if (hi & abortBit) yield { kind: "RMRcvAbortMsg", rm };
    }
  }

  function next(x: number, a: TwoPhaseAction): number {
    const { hi, lo } = split(x);
    switch (a.kind) {
      case "TMCommit":
        return join(withTm(hi, 1) | commitBit, lo);
      case "TMAbort":
        return join(withTm(hi, 2) | abortBit, lo);
      case "TMRcvPrepared":
        return join(hi, lo | (1 << (fields + a.rm)));
      case "RMPrepare":
        return join(hi | (1 << a.rm), withRm(lo, a.rm, PREPARED));
      case "RMChooseToAbort":
        return join(hi, withRm(lo, a.rm, ABORTED));
      case "RMRcvCommitMsg":
        return join(hi, withRm(lo, a.rm, COMMITTED));
      case "RMRcvAbortMsg":
        return join(hi, withRm(lo, a.rm, ABORTED));
    }
  }

  /** The same transitions as actions/next, written for speed: no objects. */
  function successors(x: number, out: Float64Array): number {
    const lo = x >>> 0;
    const hi = Math.floor(x / HI);
    const tm = (hi >>> tmShift) & 3;
    let k = 0;
    if (canCommit(hi, lo)) out[k++] = (((hi & ~(3 << tmShift)) | (1 << tmShift)) | commitBit) * HI + lo;
    if (tm === 0) out[k++] = (((hi & ~(3 << tmShift)) | (2 << tmShift)) | abortBit) * HI + lo;
    const hiCommit = hi & commitBit;
    const hiAbort = hi & abortBit;
    const base = hi * HI;
    for (let rm = 0; rm < n; rm++) {
      const shift = 2 * rm;
      const st = (lo >>> shift) & 3;
      const cleared = (lo & ~(3 << shift)) >>> 0;
      if (tm === 0 && (hi >>> rm) & 1) out[k++] = base + ((lo | (1 << (fields + rm))) >>> 0);
      if (st === WORKING) out[k++] = (hi | (1 << rm)) * HI + ((cleared | (PREPARED << shift)) >>> 0);
      if (canChooseToAbort(st)) out[k++] = base + ((cleared | (ABORTED << shift)) >>> 0);
      if (hiCommit) out[k++] = base + ((cleared | (COMMITTED << shift)) >>> 0);
      if (hiAbort) out[k++] = base + ((cleared | (ABORTED << shift)) >>> 0);
    }
    return k;
  }

  const rmName = (i: number) => `rm${i + 1}`;

  function view(x: number): TwoPhaseView {
    const { hi, lo } = split(x);
    const rmState: Record<string, string> = {};
    const prepared: string[] = [];
    const msgs: string[] = [];
    for (let i = 0; i < n; i++) {
      rmState[rmName(i)] = RM_STATES[rmOf(lo, i)]!;
      if ((tmPrepared(lo) >>> i) & 1) prepared.push(rmName(i));
      if ((hi >>> i) & 1) msgs.push(`Prepared(${rmName(i)})`);
    }
    if (hi & commitBit) msgs.push("Commit");
    if (hi & abortBit) msgs.push("Abort");
    return { rmState, tmState: TM_STATES[tmOf(hi)] ?? `invalid(${tmOf(hi)})`, tmPrepared: prepared, msgs };
  }

  /**
   * Symmetry: a permutation of the RMs permutes the per-RM tuples
   * (rmState, in tmPrepared, Prepared sent) and fixes the rest, so sorting the
   * tuples gives one representative per orbit (exact: same multiset, same
   * result). O(N log N) per state.
   */
  function canonical(x: number): number {
    const { hi, lo } = split(x);
    const tuples: number[] = [];
    for (let i = 0; i < n; i++) tuples.push(rmOf(lo, i) | (((tmPrepared(lo) >>> i) & 1) << 2) | (((hi >>> i) & 1) << 3));
    tuples.sort((a, b) => a - b);
    let newLo = 0;
    let newHi = hi & ~all;
    tuples.forEach((t, i) => {
      newLo |= (t & 3) << (2 * i);
      newLo |= ((t >>> 2) & 1) << (fields + i);
      newHi |= ((t >>> 3) & 1) << i;
    });
    return join(newHi, newLo);
  }

  const prepared = (rm: number): Msg => ({ id: `Prepared(${rmName(rm)})`, from: rmName(rm), to: "TM", label: "Prepared" });
  const decision = (label: "Commit" | "Abort", rm: number): Msg => ({ id: `${label}(${rmName(rm)})`, from: "TM", to: rmName(rm), label });
  const everyRm = (label: "Commit" | "Abort") => Array.from({ length: n }, (_, rm) => decision(label, rm));

  function describe(_from: number, a: TwoPhaseAction): StepInfo {
    switch (a.kind) {
      case "TMCommit":
        return { actor: "TM", label: "TMCommit", sends: everyRm("Commit") };
      case "TMAbort":
        return { actor: "TM", label: "TMAbort", sends: everyRm("Abort") };
      case "TMRcvPrepared":
        return { actor: "TM", label: `TMRcvPrepared(${rmName(a.rm)})`, receives: [prepared(a.rm)] };
      case "RMPrepare":
        return { actor: rmName(a.rm), label: "RMPrepare", sends: [prepared(a.rm)] };
      case "RMChooseToAbort":
        return { actor: rmName(a.rm), label: "RMChooseToAbort" };
      case "RMRcvCommitMsg":
        return { actor: rmName(a.rm), label: "RMRcvCommitMsg", receives: [decision("Commit", a.rm)] };
      case "RMRcvAbortMsg":
        return { actor: rmName(a.rm), label: "RMRcvAbortMsg", receives: [decision("Abort", a.rm)] };
    }
  }

  return {
    name: "TwoPhase",
    init: () => [0],
    actions,
    next,
    invariants: {
      /** No RM has committed while another has aborted. */
      TCConsistent: (x) => {
        const lo = x >>> 0;
        const bit1 = (lo >>> 1) & low01;
        const bit0 = lo & low01;
        const aborted = bit1 & bit0;
        const committed = bit1 & ~bit0;
        return aborted === 0 || committed === 0;
      },
      /** TPTypeOK: tmState is one of its three values and no bit outside the layout is set (the rest is typed by construction). */
      TPTypeOK: (x) => {
        const lo = x >>> 0;
        const hi = Math.floor(x / HI);
        return tmOf(hi) <= 2 && hi < 2 ** hiBits && (3 * n >= 32 || lo >>> (3 * n) === 0);
      },
    },
    encode: (x) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, x, true);
      return b;
    },
    decode: (b) => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0, true),
    canonical,
    describe,
    view,
    actors: () => ["TM", ...Array.from({ length: n }, (_, i) => rmName(i))],
    packed: { maxSuccessors: 2 + 5 * n, pack: (x) => x, unpack: (x) => x, successors },
  };
}

export const twoPhaseFactory: ModelFactory = {
  name: "TwoPhase",
  description: "Two-phase commit, TwoPhase.tla (Gray & Lamport): a TM and RM resource managers",
  params: { RM: 3 },
  mutants: twoPhaseMutants,
  build: (params, mutant) => twoPhase(Number(params.RM), mutant as TwoPhaseMutant | undefined),
};
