/**
 * PaxosCommit.tla (Gray & Lamport, tlaplus/Examples transaction_commit/),
 * written the way docs/checker.md ("How TLC counts generated states")
 * explains, so that its counts are TLC's: `actions` yields one action per
 * successor TLC's evaluation produces: per witness of every `\E`, per
 * disjunct that holds, with `\A` over an `\E` multiplying. With the
 * configuration of the Examples repository (RM = {r1, r2}, three acceptors,
 * the three majorities of two, Ballot = {0, 1}) TLC reports 1,321,761
 * distinct states, 16,959,159 generated, depth 28.
 *
 * It is not in the registry: it is checked by path, as a user's model is
 * (`speccommit check spec/reference/paxoscommit.ts`).
 */
import type { Model, ModelFactory } from "../../spec/kernel/model.ts";

const RMS = 2;
const ACCEPTORS = 3;
const MAJORITIES: readonly (readonly number[])[] = [
  [0, 1],
  [0, 2],
  [1, 2],
];
const BALLOTS = [0, 1];
/** Values as in the spec; "none" only in an acceptor's state and phase 1b messages. */
const VALS = ["prepared", "aborted", "none"] as const;
type Val = (typeof VALS)[number];
type RmState = "working" | "prepared" | "committed" | "aborted";
const RM_STATES: readonly RmState[] = ["working", "prepared", "committed", "aborted"];

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

/** Every message the configuration allows, in a fixed order: a state's messages encode as a bit set over it. */
const ALL_MSGS: string[] = (() => {
  const out: string[] = [];
  for (let i = 0; i < RMS; i++) {
    out.push(m1a(i, 1));
    for (const mbal of BALLOTS) for (const bal of [-1, ...BALLOTS]) for (const v of VALS) for (let c = 0; c < ACCEPTORS; c++) out.push(m1b(i, mbal, bal, v, c));
    for (const bal of BALLOTS) for (const v of ["prepared", "aborted"] as const) out.push(m2a(i, bal, v));
    for (let c = 0; c < ACCEPTORS; c++) for (const bal of BALLOTS) for (const v of ["prepared", "aborted"] as const) out.push(m2b(c, i, bal, v));
  }
  out.push("Commit", "Abort");
  return out;
})();
const MSG_INDEX = new Map(ALL_MSGS.map((m, i) => [m, i]));
const PARSED = new Map(ALL_MSGS.map((m) => [m, parse(m)]));
const SORTED = [...ALL_MSGS].sort();

function* actions(s: PaxosCommitState): Iterable<PaxosCommitAction> {
  const has = new Set(s.msgs);
  const msgs = s.msgs.map((k) => PARSED.get(k)!);
  const setRm = (r: number, v: RmState) => s.rm.map((x, i) => (i === r ? v : x));
  // \E rm \in RM : RMPrepare(rm) \/ RMChooseToAbort(rm) \/ RMRcvCommitMsg(rm) \/ RMRcvAbortMsg(rm)
  for (let r = 0; r < RMS; r++) {
    if (s.rm[r] === "working") yield { name: `RMPrepare(r${r + 1})`, rm: setRm(r, "prepared"), send: m2a(r, 0, "prepared") };
    if (s.rm[r] === "working") yield { name: `RMChooseToAbort(r${r + 1})`, rm: setRm(r, "aborted"), send: m2a(r, 0, "aborted") };
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
  yield* decide(s, has);
  // \E acc \in Acceptor : Phase1b(acc) \/ Phase2b(acc), each an \E m \in msgs
  for (let c = 0; c < ACCEPTORS; c++) {
    for (const m of msgs) {
      if (m.t !== "1a" || !(s.a[m.ins]![c]!.mbal < m.bal)) continue;
      const x = s.a[m.ins]![c]!;
      yield { name: `Phase1b(a${c + 1}) on ${m.key}`, a: setAcc(s, m.ins, c, { ...x, mbal: m.bal }), send: m1b(m.ins, m.bal, x.bal, x.val, c) };
    }
    for (const m of msgs) {
      if (m.t !== "2a" || !(s.a[m.ins]![c]!.mbal <= m.bal)) continue;
      yield { name: `Phase2b(a${c + 1}) on ${m.key}`, a: setAcc(s, m.ins, c, { mbal: m.bal, bal: m.bal, val: m.val }), send: m2b(c, m.ins, m.bal, m.val) };
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
    const val: Val = maxbal === -1 ? "aborted" : mset.find((m) => m.bal === maxbal)!.val;
    for (let w = 0; w < witnesses; w++) yield { name: `Phase2a(${bal}, r${r + 1}) MS${k + 1}#${w}`, send: m2a(r, bal, val) };
  }
}

/** Decide: the commit branch yields the product over RMs of Decided's witnesses (b, MS); the abort branch their sum. */
function* decide(s: PaxosCommitState, has: Set<string>): Iterable<PaxosCommitAction> {
  const decided = (r: number, v: Val): number =>
    BALLOTS.reduce((n, b) => n + MAJORITIES.filter((ms) => ms.every((c) => has.has(m2b(c, r, b, v)))).length, 0);
  const commits = Array.from({ length: RMS }, (_, r) => decided(r, "prepared")).reduce((a, b) => a * b, 1);
  for (let w = 0; w < commits; w++) yield { name: `Decide commit #${w}`, send: "Commit" };
  for (let r = 0; r < RMS; r++) for (let w = 0; w < decided(r, "aborted"); w++) yield { name: `Decide abort r${r + 1} #${w}`, send: "Abort" };
}

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

function setAcc(s: PaxosCommitState, ins: number, c: number, x: Acc): Acc[][] {
  return s.a.map((row, i) => (i === ins ? row.map((y, j) => (j === c ? x : y)) : [...row]));
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

export function paxosCommit(): Model<PaxosCommitState, PaxosCommitAction> {
  return {
    name: "PaxosCommit",
    init: () => [{ rm: Array<RmState>(RMS).fill("working"), a: Array.from({ length: RMS }, () => Array.from({ length: ACCEPTORS }, () => ({ mbal: 0, bal: -1, val: "none" as Val }))), msgs: [] }],
    actions,
    next,
    invariants: {
      /** TC!TCConsistent: no RM committed while another aborted. */
      TCConsistent: (s) => !(s.rm.includes("committed") && s.rm.includes("aborted")),
    },
    encode,
    decode,
    describe: (_from, a) => ({ actor: a.name.split("(")[0]!.startsWith("RM") ? `r${a.name.match(/r(\d)/)?.[1] ?? "?"}` : "leader/acceptors", label: a.name }),
  };
}

export const paxosCommitFactory: ModelFactory = {
  name: "PaxosCommit",
  description: "PaxosCommit.tla, RM = {r1, r2}, 3 acceptors, Ballot = {0, 1}, counting successors as TLC does",
  params: {},
  mutants: [],
  build: () => paxosCommit(),
};
