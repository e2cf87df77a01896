/**
 * PaxosCommit.tla (Gray & Lamport, tlaplus/Examples transaction_commit/),
 * written the way docs/checker.md ("How TLC counts generated states")
 * explains, so that its counts are TLC's: `actions` yields one action per
 * successor TLC's evaluation produces: per witness of every `\E`, per
 * disjunct that holds, with `\A` over an `\E` multiplying. With the
 * configuration of the Examples repository (RM = {r1, r2}, three acceptors,
 * the three majorities of two, Ballot = {0, 1}: the defaults) TLC reports
 * 1,321,761 distinct states, 16,959,159 generated, depth 28.
 *
 * Parameters: RM (resource managers, 1..3), acceptors (1..5; Majority is
 * every set of floor(acceptors/2)+1 of them, so the default 3 gives the three
 * pairs of PaxosCommit.cfg), ballots (Ballot = {0 .. ballots-1}, 1..2).
 *
 * Symmetry (`canonical`): the RMs are interchangeable, and so are the
 * acceptors, since Majority (all sets of one size) is invariant under any
 * permutation of them. The representative of a state is the permutation of
 * RMs x acceptors whose encoding is least (exact: every state of an orbit
 * has the same set of permuted encodings).
 *
 * It is not in the registry: it is checked by path, as a user's model is
 * (`speccommit check spec/reference/paxoscommit.ts`), and the suite names
 * it by path too.
 */
import type { Model, ModelFactory, StepInfo } from "../../spec/kernel/model.ts";

/** Values as in the spec; "none" only in an acceptor's state and phase 1b messages. */
const VALS = ["prepared", "aborted", "none"] as const;
type Val = (typeof VALS)[number];
type RmState = "working" | "prepared" | "committed" | "aborted";
const RM_STATES: readonly RmState[] = ["working", "prepared", "committed", "aborted"];

export const paxosCommitMutants = [
  /** Decide commits once every RM has one phase 2b "prepared" from any acceptor: no majority. */
  "decideWithoutMajority",
  /** Phase2b accepts a phase 2a message of a lower ballot than the one it promised (guard mbal <= bal dropped). */
  "acceptLowerBallot",
  /** Phase2a of ballot > 0 proposes "aborted" whatever the phase 1b messages report (the highest-ballot value ignored). */
  "phase2aIgnoresReports",
  /** An RM that has prepared may still choose to abort. */
  "abortAfterPrepare",
  /** Phase1b promises the ballot after the one it received (mbal := bal + 1): off by one, out of Ballot. */
  "promiseNextBallot",
] as const;
export type PaxosCommitMutant = (typeof paxosCommitMutants)[number];

interface Acc {
  readonly mbal: number;
  readonly bal: number;
  readonly val: Val;
}

export interface PaxosCommitState {
  readonly rm: readonly RmState[];
  /** aState[ins][acc]. */
  readonly a: readonly (readonly Acc[])[];
  /** The messages ever sent, as keys (msgKey), sorted. */
  readonly msgs: readonly string[];
}

/** One successor of TLC's evaluation: the action and the witnesses that produced it. */
export type PaxosCommitAction = { readonly name: string; readonly send: string; readonly rm?: readonly RmState[]; readonly a?: readonly (readonly Acc[])[] };

const m1a = (ins: number, bal: number) => `1a ${ins} ${bal}`;
const m1b = (ins: number, mbal: number, bal: number, val: Val, acc: number) => `1b ${ins} ${mbal} ${bal} ${val} ${acc}`;
const m2a = (ins: number, bal: number, val: Val) => `2a ${ins} ${bal} ${val}`;
const m2b = (acc: number, ins: number, bal: number, val: Val) => `2b ${acc} ${ins} ${bal} ${val}`;

type Msg =
  | { t: "1a"; key: string; ins: number; bal: number }
  | { t: "1b"; key: string; ins: number; mbal: number; bal: number; val: Val; acc: number }
  | { t: "2a"; key: string; ins: number; bal: number; val: Val }
  | { t: "2b"; key: string; acc: number; ins: number; bal: number; val: Val }
  | { t: "decision"; key: string };

function parse(key: string): Msg {
  const p = key.split(" ");
  const n = (i: number) => Number(p[i]);
  switch (p[0]) {
    case "1a":
      return { t: "1a", key, ins: n(1), bal: n(2) };
    case "1b":
      return { t: "1b", key, ins: n(1), mbal: n(2), bal: n(3), val: p[4] as Val, acc: n(5) };
    case "2a":
      return { t: "2a", key, ins: n(1), bal: n(2), val: p[3] as Val };
    case "2b":
      return { t: "2b", key, acc: n(1), ins: n(2), bal: n(3), val: p[4] as Val };
    default:
      return { t: "decision", key };
  }
}

/** The message a permutation of RMs (p) and acceptors (q) makes of `m`. */
function renamed(m: Msg, p: readonly number[], q: readonly number[]): string {
  switch (m.t) {
    case "1a":
      return m1a(p[m.ins]!, m.bal);
    case "1b":
      return m1b(p[m.ins]!, m.mbal, m.bal, m.val, q[m.acc]!);
    case "2a":
      return m2a(p[m.ins]!, m.bal, m.val);
    case "2b":
      return m2b(q[m.acc]!, p[m.ins]!, m.bal, m.val);
    default:
      return m.key;
  }
}

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

/** Every subset of {0..n-1} with k elements, in lexicographic order. */
function subsets(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  if (n < k) return [];
  return [...subsets(n - 1, k), ...subsets(n - 1, k - 1).map((s) => [...s, n - 1])];
}

function compareBytes(x: Uint8Array, y: Uint8Array): number {
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

export interface PaxosCommitConfig {
  readonly rms: number;
  readonly acceptors: number;
  readonly ballots: number;
  readonly mutant?: PaxosCommitMutant | undefined;
}

/** Every message the configuration allows, in a fixed order: a state's messages encode as a bit set over it. */
function allMessages(c: PaxosCommitConfig): string[] {
  const BALLOTS = Array.from({ length: c.ballots }, (_, b) => b);
  // mbal reaches `ballots` under promiseNextBallot only, and never appears in a message.
  const out: string[] = [];
  for (let i = 0; i < c.rms; i++) {
    for (const bal of BALLOTS.slice(1)) out.push(m1a(i, bal));
    for (const mbal of BALLOTS) for (const bal of [-1, ...BALLOTS]) for (const v of VALS) for (let a = 0; a < c.acceptors; a++) out.push(m1b(i, mbal, bal, v, a));
    for (const bal of BALLOTS) for (const v of ["prepared", "aborted"] as const) out.push(m2a(i, bal, v));
    for (let a = 0; a < c.acceptors; a++) for (const bal of BALLOTS) for (const v of ["prepared", "aborted"] as const) out.push(m2b(a, i, bal, v));
  }
  out.push("Commit", "Abort");
  return out;
}

export function paxosCommit(c: PaxosCommitConfig = { rms: 2, acceptors: 3, ballots: 2 }): Model<PaxosCommitState, PaxosCommitAction> {
  const { rms: RMS, acceptors: ACCEPTORS, mutant } = c;
  if (!Number.isInteger(RMS) || RMS < 1 || RMS > 3) throw new Error(`PaxosCommit: RM must be 1, 2 or 3, got ${RMS}`);
  if (!Number.isInteger(ACCEPTORS) || ACCEPTORS < 1 || ACCEPTORS > 5) throw new Error(`PaxosCommit: acceptors must be 1..5, got ${ACCEPTORS}`);
  if (!Number.isInteger(c.ballots) || c.ballots < 1 || c.ballots > 2) throw new Error(`PaxosCommit: ballots must be 1 or 2, got ${c.ballots}`);
  const BALLOTS = Array.from({ length: c.ballots }, (_, b) => b);
  const MAJORITIES = subsets(ACCEPTORS, Math.floor(ACCEPTORS / 2) + 1);
  const ALL_MSGS = allMessages(c);
  const MSG_INDEX = new Map(ALL_MSGS.map((m, i) => [m, i]));
  const PARSED = new Map(ALL_MSGS.map((m) => [m, parse(m)]));
  const SORTED = [...ALL_MSGS].sort();
  const SYMMETRIES = permutations(RMS).flatMap((p) => permutations(ACCEPTORS).map((q) => [p, q] as const));

  function* actions(s: PaxosCommitState): Iterable<PaxosCommitAction> {
    const has = new Set(s.msgs);
    const msgs = s.msgs.map((k) => PARSED.get(k)!);
    const setRm = (r: number, v: RmState) => s.rm.map((x, i) => (i === r ? v : x));
    // \E rm \in RM : RMPrepare(rm) \/ RMChooseToAbort(rm) \/ RMRcvCommitMsg(rm) \/ RMRcvAbortMsg(rm)
    for (let r = 0; r < RMS; r++) {
      if (s.rm[r] === "working") yield { name: `RMPrepare(r${r + 1})`, rm: setRm(r, "prepared"), send: m2a(r, 0, "prepared") };
      if (s.rm[r] === "working" || (mutant === "abortAfterPrepare" && s.rm[r] === "prepared"))
        yield { name: `RMChooseToAbort(r${r + 1})`, rm: setRm(r, "aborted"), send: s.rm[r] === "working" ? m2a(r, 0, "aborted") : "" };
      if (has.has("Commit")) yield { name: `RMRcvCommitMsg(r${r + 1})`, rm: setRm(r, "committed"), send: "" };
      if (has.has("Abort")) yield { name: `RMRcvAbortMsg(r${r + 1})`, rm: setRm(r, "aborted"), send: "" };
    }
    // \E bal \in Ballot \ {0}, rm \in RM : Phase1a(bal, rm) \/ Phase2a(bal, rm)
    for (const bal of BALLOTS.filter((b) => b !== 0)) {
      for (let r = 0; r < RMS; r++) {
        yield { name: `Phase1a(${bal}, r${r + 1})`, send: m1a(r, bal) };
        yield* phase2a(msgs, bal, r);
      }
    }
    yield* decide(has);
    // \E acc \in Acceptor : Phase1b(acc) \/ Phase2b(acc), each an \E m \in msgs
    for (let a = 0; a < ACCEPTORS; a++) {
      for (const m of msgs) {
        if (m.t !== "1a" || !(s.a[m.ins]![a]!.mbal < m.bal)) continue;
        const x = s.a[m.ins]![a]!;
        const promise = mutant === "promiseNextBallot" ? m.bal + 1 : m.bal;
        yield { name: `Phase1b(a${a + 1}) on ${m.key}`, a: setAcc(s, m.ins, a, { ...x, mbal: promise }), send: m1b(m.ins, m.bal, x.bal, x.val, a) };
      }
      for (const m of msgs) {
        if (m.t !== "2a" || !(s.a[m.ins]![a]!.mbal <= m.bal || mutant === "acceptLowerBallot")) continue;
        yield { name: `Phase2b(a${a + 1}) on ${m.key}`, a: setAcc(s, m.ins, a, { mbal: m.bal, bal: m.bal, val: m.val }), send: m2b(a, m.ins, m.bal, m.val) };
      }
    }
  }

  /** Phase2a: one successor per majority whose phase 1b messages all came (each acceptor sends one per ballot). */
  function* phase2a(msgs: readonly Msg[], bal: number, r: number): Iterable<PaxosCommitAction> {
    if (msgs.some((m) => m.t === "2a" && m.bal === bal && m.ins === r)) return;
    for (const [k, ms] of MAJORITIES.entries()) {
      const mset = msgs.filter((m): m is Extract<Msg, { t: "1b" }> => m.t === "1b" && m.ins === r && m.mbal === bal && ms.includes(m.acc));
      // \A ac \in MS : \E m \in mset : m.acc = ac: the product of each acceptor's witnesses.
      const witnesses = ms.reduce((n, ac) => n * mset.filter((m) => m.acc === ac).length, 1);
      if (witnesses === 0) continue;
      const maxbal = Math.max(-1, ...mset.map((m) => m.bal));
      const val: Val = maxbal === -1 || mutant === "phase2aIgnoresReports" ? "aborted" : mset.find((m) => m.bal === maxbal)!.val;
      for (let w = 0; w < witnesses; w++) yield { name: `Phase2a(${bal}, r${r + 1}) MS${k + 1}#${w}`, send: m2a(r, bal, val) };
    }
  }

  /** Decided(rm, v)'s witnesses (b, MS): the ballots and majorities all of whose acceptors sent phase 2b v. */
  const decided = (has: Set<string>, r: number, v: Val): number =>
    BALLOTS.reduce((n, b) => n + MAJORITIES.filter((ms) => ms.every((a) => has.has(m2b(a, r, b, v)))).length, 0);

  /** Decide: the commit branch yields the product over RMs of Decided's witnesses (b, MS); the abort branch their sum. */
  function* decide(has: Set<string>): Iterable<PaxosCommitAction> {
    const anyAcceptor = (r: number) => BALLOTS.some((b) => Array.from({ length: ACCEPTORS }, (_, a) => a).some((a) => has.has(m2b(a, r, b, "prepared"))));
    const commits =
      mutant === "decideWithoutMajority"
        ? Number(Array.from({ length: RMS }, (_, r) => r).every(anyAcceptor))
        : Array.from({ length: RMS }, (_, r) => decided(has, r, "prepared")).reduce((x, y) => x * y, 1);
    for (let w = 0; w < commits; w++) yield { name: `Decide commit #${w}`, send: "Commit" };
    for (let r = 0; r < RMS; r++) for (let w = 0; w < decided(has, r, "aborted"); w++) yield { name: `Decide abort r${r + 1} #${w}`, send: "Abort" };
  }

  function next(s: PaxosCommitState, a: PaxosCommitAction): PaxosCommitState {
    const msgs = a.send === "" || s.msgs.includes(a.send) ? s.msgs : [...s.msgs, a.send].sort();
    return { rm: a.rm ?? s.rm, a: a.a ?? s.a, msgs };
  }

  /** rm states (1 byte each), acceptor states (3 bytes each), then the messages as a bit set over ALL_MSGS. */
  function encode(s: PaxosCommitState): Uint8Array {
    const b = new Uint8Array(RMS + RMS * ACCEPTORS * 3 + Math.ceil(ALL_MSGS.length / 8));
    let at = 0;
    for (const r of s.rm) b[at++] = RM_STATES.indexOf(r);
    for (const row of s.a) for (const x of row) (b[at++] = x.mbal, (b[at++] = x.bal + 1), (b[at++] = VALS.indexOf(x.val)));
    for (const m of s.msgs) {
      const i = MSG_INDEX.get(m)!;
      b[at + (i >> 3)]! |= 1 << (i & 7);
    }
    return b;
  }

  function decode(b: Uint8Array): PaxosCommitState {
    let at = 0;
    const rm = Array.from({ length: RMS }, () => RM_STATES[b[at++]!]!);
    const a = Array.from({ length: RMS }, () => Array.from({ length: ACCEPTORS }, () => ({ mbal: b[at++]!, bal: b[at++]! - 1, val: VALS[b[at++]!]! })));
    const msgs = SORTED.filter((m) => (b[at + (MSG_INDEX.get(m)! >> 3)]! & (1 << (MSG_INDEX.get(m)! & 7))) !== 0);
    return { rm, a, msgs };
  }

  /** The state with RM i renamed p[i] and acceptor j renamed q[j]. */
  function permute(s: PaxosCommitState, p: readonly number[], q: readonly number[]): PaxosCommitState {
    const rm: RmState[] = [...s.rm];
    const a: Acc[][] = s.a.map((row) => [...row]);
    s.rm.forEach((st, i) => (rm[p[i]!] = st));
    s.a.forEach((row, i) => row.forEach((x, j) => (a[p[i]!]![q[j]!] = x)));
    return { rm, a, msgs: s.msgs.map((k) => renamed(PARSED.get(k)!, p, q)).sort() };
  }

  function canonical(s: PaxosCommitState): PaxosCommitState {
    let best = s;
    let bestBytes = encode(s);
    for (const [p, q] of SYMMETRIES) {
      const t = permute(s, p, q);
      const tb = encode(t);
      if (compareBytes(tb, bestBytes) < 0) (best = t), (bestBytes = tb);
    }
    return best;
  }

  /** The values chosen for RM r: a majority of acceptors sent phase 2b v in one ballot. */
  const chosen = (has: Set<string>, r: number) => (["prepared", "aborted"] as const).filter((v) => decided(has, r, v) > 0);

  return {
    name: "PaxosCommit",
    init: () => [{ rm: Array<RmState>(RMS).fill("working"), a: Array.from({ length: RMS }, () => Array.from({ length: ACCEPTORS }, () => ({ mbal: 0, bal: -1, val: "none" as Val }))), msgs: [] }],
    actions,
    next,
    invariants: {
      /** TC!TCConsistent: no RM committed while another aborted. */
      TCConsistent: (s) => !(s.rm.includes("committed") && s.rm.includes("aborted")),
      /**
       * PCTypeOK (it includes TC!TCTypeOK, rmState's type): every RM state in its set, every acceptor's mbal in Ballot,
       * bal in Ballot \cup {-1}, val one of the three values; msgs a subset of Message holds by construction (ALL_MSGS).
       */
      PCTypeOK: (s) =>
        s.rm.length === RMS &&
        s.rm.every((r) => RM_STATES.includes(r)) &&
        s.a.every((row) => row.length === ACCEPTORS && row.every((x) => BALLOTS.includes(x.mbal) && (x.bal === -1 || BALLOTS.includes(x.bal)) && VALS.includes(x.val))),
      /** Paxos's own safety, per instance (one per RM): at most one value is chosen (a majority's phase 2b in some ballot). */
      OneValueChosen: (s) => {
        const has = new Set(s.msgs);
        return Array.from({ length: RMS }, (_, r) => chosen(has, r).length <= 1).every(Boolean);
      },
    },
    encode,
    decode,
    canonical,
    describe: (_from, a) => describeStep(a),
    view: (s) => ({ rm: Object.fromEntries(s.rm.map((st, i) => [`r${i + 1}`, st])), a: s.a, msgs: s.msgs }),
    actors: () => [...Array.from({ length: RMS }, (_, i) => `r${i + 1}`), "leader", ...Array.from({ length: ACCEPTORS }, (_, i) => `a${i + 1}`)],
  };
}

/** Who acted: an RM, an acceptor, or the leader (Phase1a, Phase2a, Decide). */
function describeStep(a: PaxosCommitAction): StepInfo {
  const acceptor = a.name.match(/^Phase[12]b\(a(\d)\)/);
  const rm = a.name.match(/^RM\w+\(r(\d)\)/);
  return { actor: acceptor ? `a${acceptor[1]}` : rm ? `r${rm[1]}` : "leader", label: a.name };
}

function setAcc(s: PaxosCommitState, ins: number, c: number, x: Acc): Acc[][] {
  return s.a.map((row, i) => (i === ins ? row.map((y, j) => (j === c ? x : y)) : [...row]));
}

export const paxosCommitFactory: ModelFactory = {
  name: "PaxosCommit",
  description: "PaxosCommit.tla: RM resource managers, acceptors (Majority = every set of floor(n/2)+1), Ballot = {0 .. ballots-1}, counting successors as TLC does",
  params: { RM: 2, acceptors: 3, ballots: 2 },
  mutants: paxosCommitMutants,
  build: (params, mutant) =>
    paxosCommit({ rms: Number(params.RM ?? 2), acceptors: Number(params.acceptors ?? 3), ballots: Number(params.ballots ?? 2), mutant: mutant as PaxosCommitMutant | undefined }),
};
