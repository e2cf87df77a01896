/**
 * Three-phase commit (Skeen, "Nonblocking commit protocols", 1981) with its
 * termination protocol, as a reference model: N processes p1..pN, each a
 * resource manager (RM); p1 is the first coordinator.
 *
 *   phase 1  canCommit?  every RM votes: yes (working -> uncertain) or no
 *                        (working -> aborted); the coordinator may time out
 *                        and abort while it collects votes.
 *   phase 2  preCommit   once every RM voted yes, the coordinator
 *                        pre-commits and sends preCommit; an uncertain RM
 *                        that receives it pre-commits (its ack is its state).
 *   phase 3  doCommit    once every RM it believes alive has pre-committed,
 *                        the coordinator commits and sends doCommit.
 *
 * Failures: a process crashes for good (at most `crashes` of them). The
 * failure detector is perfect: a process is suspected exactly when it has
 * crashed, and nothing it sent arrives once it crashed (a synchronous
 * network: its messages in flight are lost with it). Termination protocol:
 * when every process of lower index is suspected, a process becomes the
 * coordinator (an election among the survivors, lowest index wins), polls the
 * survivors and decides: any committed -> commit; else any aborted -> abort;
 * else any pre-committed -> send preCommit, then commit once every survivor
 * pre-committed; else (all uncertain or working) -> abort.
 *
 * Properties: Agreement (no RM committed while another aborted, crashed ones
 * included) and NonBlocking (every RM that does not crash decides: `true ~>
 * every live RM decided`, under weak fairness of every step but crashes and
 * the partition).
 *
 * `partition=true`: the failure detector is no longer perfect. The network
 * may split, once and for good, into two groups; each group suspects the
 * other (a process there looks crashed) and runs the termination protocol on
 * its own. Agreement then fails (the suite pins the shortest trace;
 * docs/protocols/three-phase-commit.md draws it).
 */
import type { Fairness, Model, ModelFactory, Msg, StepInfo } from "../kernel/model.ts";

export const RM3_STATES = ["working", "uncertain", "precommitted", "committed", "aborted"] as const;
const WORKING = 0;
const UNCERTAIN = 1;
const PRECOMMITTED = 2;
const COMMITTED = 3;
const ABORTED = 4;
/** A process's part as coordinator: never one, collecting votes (p1 at first), waiting for pre-commits, decided. */
export const LEAD = ["idle", "collect", "pre", "done"] as const;
const IDLE = 0;
const COLLECT = 1;
const PRE = 2;
const DONE = 3;
const KINDS = ["preCommit", "doCommit", "abort"] as const;
type Kind = (typeof KINDS)[number];

export const threePcMutants = [
  /** No preCommit phase: the coordinator commits as soon as every RM voted yes (two-phase commit with the termination protocol). */
  "skipPreCommit",
  /** The coordinator commits once it pre-committed itself, without waiting for every live RM to pre-commit. */
  "commitBeforeAcks",
  /** No termination protocol: when the coordinator crashes nobody takes over (the survivors wait, as in 2PC). */
  "noTermination",
] as const;
export type ThreePcMutant = (typeof threePcMutants)[number];

export interface ThreePcState {
  readonly st: readonly number[];
  readonly lead: readonly number[];
  readonly crashed: readonly boolean[];
  /** The group of each process: all 0 until a partition. */
  readonly group: readonly number[];
  /** Messages sent, as a bit set: bit 3*sender + kind. */
  readonly sent: number;
  readonly crashes: number;
}

export type ThreePcAction =
  | { k: "vote"; p: number; yes: boolean }
  | { k: "coordAbort" }
  | { k: "coordPreCommit" }
  | { k: "commit"; p: number }
  | { k: "terminate"; p: number }
  | { k: "receive"; p: number; from: number; kind: Kind }
  | { k: "crash"; p: number }
  | { k: "partition"; side: readonly number[] };

export interface ThreePcConfig {
  readonly n: number;
  readonly crashes: number;
  readonly partition: boolean;
  readonly mutant?: ThreePcMutant | undefined;
}

const name = (p: number) => `p${p + 1}`;
const bit = (from: number, kind: Kind) => 1 << (3 * from + KINDS.indexOf(kind));

export function threePc(c: ThreePcConfig): Model<ThreePcState, ThreePcAction> {
  const { n, mutant } = c;
  if (!Number.isInteger(n) || n < 2 || n > 5) throw new Error(`ThreePC: N must be 2..5, got ${n}`);
  if (!Number.isInteger(c.crashes) || c.crashes < 0 || c.crashes > n) throw new Error(`ThreePC: crashes must be 0..N, got ${c.crashes}`);
  const all = Array.from({ length: n }, (_, i) => i);
  const alive = (s: ThreePcState, p: number) => !s.crashed[p];
  /** p hears from q: q is alive and on p's side of the partition (with a perfect detector, the only side). */
  const hears = (s: ThreePcState, p: number, q: number) => alive(s, q) && s.group[p] === s.group[q];
  /** The processes p believes alive, itself included. */
  const survivors = (s: ThreePcState, p: number) => all.filter((q) => hears(s, p, q));
  const decided = (st: number) => st === COMMITTED || st === ABORTED;

  function* actions(s: ThreePcState): Iterable<ThreePcAction> {
    for (const p of all.filter((q) => alive(s, q))) {
      if (s.st[p] === WORKING) yield* [{ k: "vote", p, yes: true } as const, { k: "vote", p, yes: false } as const];
      if (p === 0 && s.lead[0] === COLLECT) {
        yield { k: "coordAbort" };
        // Every vote is yes and has reached p1 (a process since crashed may have voted before it crashed; one cut off has not).
        if (all.every((q) => s.st[q] === UNCERTAIN && (s.crashed[q] || hears(s, 0, q)))) yield { k: "coordPreCommit" };
      }
      if (s.lead[p] === PRE && (mutant === "commitBeforeAcks" || survivors(s, p).every((q) => s.st[q] === PRECOMMITTED || s.st[q] === COMMITTED))) yield { k: "commit", p };
      if (s.lead[p] === IDLE && mutant !== "noTermination" && all.filter((q) => q < p).every((q) => !hears(s, p, q))) yield { k: "terminate", p };
      for (const from of all) {
        if (from === p || !hears(s, p, from)) continue;
        for (const kind of KINDS) if ((s.sent & bit(from, kind)) !== 0 && receives(s.st[p]!, kind)) yield { k: "receive", p, from, kind };
      }
      if (s.crashes < c.crashes) yield { k: "crash", p };
    }
    if (c.partition && s.group.every((g) => g === 0)) {
      // Every split into two non-empty sides, named by the side without p1.
      for (let mask = 1; mask < 1 << n; mask += 2) if (mask !== (1 << n) - 1) yield { k: "partition", side: all.filter((q) => ((mask >> q) & 1) === 0) };
    }
  }

  /** What a message does to an RM in state st (a message that would change nothing is not a step). */
  function receives(st: number, kind: Kind): boolean {
    if (kind === "preCommit") return st === UNCERTAIN;
    if (kind === "doCommit") return st === UNCERTAIN || st === PRECOMMITTED;
    return st === WORKING || st === UNCERTAIN;
  }

  /** The termination protocol's rule, on the states of the processes the new coordinator polls. */
  function terminationRule(states: readonly number[]): "commit" | "abort" | "pre" {
    if (states.includes(COMMITTED)) return "commit";
    if (states.includes(ABORTED)) return "abort";
    if (states.includes(PRECOMMITTED)) return "pre";
    return "abort";
  }

  function next(s: ThreePcState, a: ThreePcAction): ThreePcState {
    const set = <T,>(xs: readonly T[], i: number, v: T) => xs.map((x, j) => (j === i ? v : x));
    switch (a.k) {
      case "vote":
        return { ...s, st: set(s.st, a.p, a.yes ? UNCERTAIN : ABORTED) };
      case "coordAbort":
        return { ...s, st: decided(s.st[0]!) ? s.st : set(s.st, 0, ABORTED), lead: set(s.lead, 0, DONE), sent: s.sent | bit(0, "abort") };
      case "coordPreCommit":
        return mutant === "skipPreCommit"
          ? { ...s, st: set(s.st, 0, COMMITTED), lead: set(s.lead, 0, DONE), sent: s.sent | bit(0, "doCommit") }
          : { ...s, st: set(s.st, 0, PRECOMMITTED), lead: set(s.lead, 0, PRE), sent: s.sent | bit(0, "preCommit") };
      case "commit":
        return { ...s, st: set(s.st, a.p, COMMITTED), lead: set(s.lead, a.p, DONE), sent: s.sent | bit(a.p, "doCommit") };
      case "terminate": {
        const rule = terminationRule(survivors(s, a.p).map((q) => s.st[q]!));
        if (rule === "pre") return { ...s, st: set(s.st, a.p, PRECOMMITTED), lead: set(s.lead, a.p, PRE), sent: s.sent | bit(a.p, "preCommit") };
        const st = rule === "commit" ? COMMITTED : ABORTED;
        return { ...s, st: set(s.st, a.p, st), lead: set(s.lead, a.p, DONE), sent: s.sent | bit(a.p, rule === "commit" ? "doCommit" : "abort") };
      }
      case "receive":
        return { ...s, st: set(s.st, a.p, a.kind === "preCommit" ? PRECOMMITTED : a.kind === "doCommit" ? COMMITTED : ABORTED) };
      case "crash":
        return { ...s, crashed: set(s.crashed, a.p, true), crashes: s.crashes + 1 };
      case "partition":
        return { ...s, group: all.map((q) => (a.side.includes(q) ? 1 : 0)) };
    }
  }

  /** Weak fairness of every step but a crash or the partition, one fair action per process and kind of step. */
  const fair: Fairness<ThreePcState, ThreePcAction> = (_s, a) => {
    switch (a.k) {
      case "crash":
      case "partition":
        return undefined;
      case "vote":
        return `vote ${a.p}`;
      case "coordAbort":
      case "coordPreCommit":
        return "coordinate";
      case "receive":
        return `receive ${a.p} ${a.from} ${a.kind}`;
      default:
        return `${a.k} ${a.p}`;
    }
  };

  return {
    name: "ThreePC",
    init: () => [{ st: all.map(() => WORKING), lead: all.map((p) => (p === 0 ? COLLECT : IDLE)), crashed: all.map(() => false), group: all.map(() => 0), sent: 0, crashes: 0 }],
    actions,
    next,
    invariants: {
      /** No RM committed while another aborted (crashed RMs included: what they decided stays decided). */
      Agreement: (s) => !(s.st.includes(COMMITTED) && s.st.includes(ABORTED)),
    },
    leadsTo: {
      /** Every RM that does not crash decides: the protocol does not block on a coordinator's crash. */
      NonBlocking: { from: () => true, to: (s) => all.every((p) => s.crashed[p] || decided(s.st[p]!)), fair },
    },
    encode: (s) => Uint8Array.from([...s.st, ...s.lead, ...s.crashed.map(Number), ...s.group, s.sent & 0xff, (s.sent >> 8) & 0xff, s.sent >> 16, s.crashes]),
    decode: (b) => ({
      st: Array.from(b.subarray(0, n)),
      lead: Array.from(b.subarray(n, 2 * n)),
      crashed: Array.from(b.subarray(2 * n, 3 * n), (x) => x === 1),
      group: Array.from(b.subarray(3 * n, 4 * n)),
      sent: b[4 * n]! | (b[4 * n + 1]! << 8) | (b[4 * n + 2]! << 16),
      crashes: b[4 * n + 3]!,
    }),
    describe: (from, a, to) => describeStep(from, a, to, n),
    view: (s) => ({
      st: Object.fromEntries(all.map((p) => [name(p), `${RM3_STATES[s.st[p]!]}${s.crashed[p] ? " (crashed)" : ""}`])),
      coordinators: Object.fromEntries(all.filter((p) => s.lead[p] !== IDLE).map((p) => [name(p), LEAD[s.lead[p]!]])),
      sides: s.group.some((g) => g !== 0) ? [0, 1].map((g) => all.filter((p) => s.group[p] === g).map(name)) : undefined,
      sent: all.flatMap((p) => KINDS.filter((k) => (s.sent & bit(p, k)) !== 0).map((k) => `${k} from ${name(p)}`)),
    }),
    actors: () => all.map(name),
  };
}

/** The diagram of a step: a broadcast is one message per other process, a receive matches the one addressed to it. */
function describeStep(s: ThreePcState, a: ThreePcAction, to: ThreePcState, n: number): StepInfo {
  const others = (p: number) => Array.from({ length: n }, (_, q) => q).filter((q) => q !== p && !s.crashed[q]);
  const broadcast = (p: number, kind: Kind): Msg[] => others(p).map((q) => ({ id: `${kind}:${name(p)}>${name(q)}`, from: name(p), to: name(q), label: kind }));
  switch (a.k) {
    case "vote":
      return { actor: name(a.p), label: a.yes ? "vote yes (uncertain)" : "vote no (aborted)" };
    case "coordAbort":
      return { actor: name(0), label: "coordinator: abort (timeout)", sends: broadcast(0, "abort") };
    case "coordPreCommit":
      return { actor: name(0), label: "coordinator: all yes, preCommit", sends: broadcast(0, "preCommit") };
    case "commit":
      return { actor: name(a.p), label: "coordinator: all pre-committed, doCommit", sends: broadcast(a.p, "doCommit") };
    case "terminate": {
      const kind: Kind = to.st[a.p] === PRECOMMITTED ? "preCommit" : to.st[a.p] === COMMITTED ? "doCommit" : "abort";
      return { actor: name(a.p), label: `new coordinator (termination): ${kind}`, sends: broadcast(a.p, kind) };
    }
    case "receive":
      return {
        actor: name(a.p),
        label: `receive ${a.kind} -> ${a.kind === "preCommit" ? "precommitted" : a.kind === "doCommit" ? "committed" : "aborted"}`,
        receives: [{ id: `${a.kind}:${name(a.from)}>${name(a.p)}`, from: name(a.from), to: name(a.p), label: a.kind }],
      };
    case "crash":
      return { actor: name(a.p), label: "CRASH (for good)" };
    case "partition":
      return { actor: name(a.side[0]!), label: `PARTITION: {${a.side.map(name).join(", ")}} cut off` };
  }
}

export const threePcFactory: ModelFactory = {
  name: "ThreePC",
  description: "Three-phase commit with crash failures and the termination protocol; partition=true: an imperfect failure detector (a network partition)",
  params: { N: 3, crashes: 2, partition: false },
  mutants: threePcMutants,
  build: (params, mutant) =>
    threePc({ n: Number(params.N ?? 3), crashes: Number(params.crashes ?? 2), partition: params.partition === true || params.partition === "true", mutant: mutant as ThreePcMutant | undefined }),
};
