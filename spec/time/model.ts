/**
 * The `timestamps` model: commit timestamps and snapshot reads over an
 * abstract clock (docs/protocols/timestamps.md).
 *
 * One coordinator process with the HLC of ./hlc.ts over a physical clock of
 * a few ticks that may also jump back; transfers over accounts on two
 * shards, each under two-phase locking as the XA branches are (an account's
 * row lock is held from the branch's statement until that branch commits);
 * a client that reads snapshots. A transfer:
 *   begin -> lock (all its accounts at once, when free: it reads the effects
 *   of every transfer that committed a branch on them before) -> decide (its
 *   commit timestamp: HLC now, pending until every branch is stamped) ->
 *   commit its branch on each shard, one by one (the history row stamped with
 *   the timestamp, the lock released).
 * A transfer may also give up before it decides (its locks released, no row).
 * A client may send, with a transfer, a timestamp it got from another
 * coordinator (one tick ahead: within the skew bound); the server observes it.
 * A read: the client names `at` (the clock now, one tick in the future, or a
 * decided transfer's timestamp: read-your-writes); the server observes it
 * (./hlc.ts observe) and serves it once ./safe.ts `readable`; the snapshot is
 * the history rows with a timestamp <= at.
 *
 * Properties:
 *   dependent_later     a transfer that read another's effects has a greater
 *                       commit timestamp;
 *   snapshot_atomic     every snapshot served shows all or none of every
 *                       transfer's branches, and the seeded total;
 *   client_causal       a transfer's timestamp is greater than the one its
 *                       client sent (observed before it decides);
 *   snapshot_stable     a transfer with a timestamp <= a served read's `at`
 *                       was whole in that snapshot (no commit lands below a
 *                       snapshot already served).
 * Mutants: `observe-no-advance` (a timestamp sent by a client, with a read or a
 * transfer, not observed),
 * `read-no-wait` (served without waiting for safe time), `ts-at-begin` (the
 * timestamp chosen when the transfer begins, before its dependencies').
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import { HLC_ZERO, LOGICAL_LIMIT, now, observe, stateOf, tsOf, type HlcState } from "./hlc.ts";
import { readable } from "./safe.ts";

export type TimeMutant = "observe-no-advance" | "read-no-wait" | "ts-at-begin";
export const TIME_MUTANTS: readonly TimeMutant[] = ["observe-no-advance", "read-no-wait", "ts-at-begin"];

export interface TimeParams {
  /** Transfers: 2 or 3 (T1 a->b, T2 b->c, T3 c->a; a and c on shard 0, b on shard 1). */
  readonly txs: number;
  /** Last physical tick. */
  readonly ticks: number;
  /** Physical clock jumps back allowed. */
  readonly jumps: number;
  /** Snapshot reads served at most. */
  readonly reads: number;
}

/** Phases of a transfer. */
const IDLE = 0,
  BEGUN = 1,
  LOCKED = 2,
  DECIDED = 3,
  GAVE_UP = 4;

export interface TxState {
  readonly phase: number;
  /** Its commit timestamp (a small integer of ./hlc.ts's encoding), -1 none. */
  readonly ts: number;
  /** Bit s: its branch on shard s is committed (history row stamped, lock released). */
  readonly committed: number;
  /** Ghost: bit j: it read the effects of transfer j. */
  readonly deps: number;
  /** The timestamp its client sent with the request (X-Speccommit-Timestamp: seen from another coordinator), -1 none. */
  readonly seen: number;
}

export interface Read {
  readonly at: number;
  /** Bit 2*i+s: transfer i's row on shard s is in the snapshot. */
  readonly seen: number;
}

export interface TimeState {
  readonly pt: number;
  readonly jumps: number;
  readonly clock: HlcState;
  readonly txs: readonly TxState[];
  /** The read asked and not served yet (-1 none). */
  readonly asking: number;
  readonly reads: readonly Read[];
}

export type TimeAction =
  | { readonly t: "tick" }
  | { readonly t: "jump" }
  | { readonly t: "begin"; readonly tx: number; readonly seen: number }
  | { readonly t: "lock" | "decide" | "give-up"; readonly tx: number }
  | { readonly t: "commit"; readonly tx: number; readonly shard: number }
  | { readonly t: "ask"; readonly at: number }
  | { readonly t: "serve" };

/** Transfer i's accounts, one per shard: [account on shard 0, account on shard 1]. Accounts: 0 = a, 1 = b (shard 1), 2 = c. */
const ACCOUNTS: readonly (readonly [number, number])[] = [
  [0, 1],
  [2, 1],
  [2, 1],
];
/** Transfer i moves one unit: -1 on shard DEBIT[i], +1 on the other. */
const DEBIT = [0, 1, 0];
const delta = (tx: number, shard: number): number => (shard === DEBIT[tx] ? -1 : 1);

const n = (ts: bigint): number => Number(ts);
const holds = (t: TxState): boolean => t.phase === LOCKED || t.phase === DECIDED;

function locked(s: TimeState, account: number): boolean {
  return s.txs.some((t, i) => holds(t) && ACCOUNTS[i]!.some((a, shard) => a === account && (t.committed & (1 << shard)) === 0));
}

function* txActions(s: TimeState): Iterable<TimeAction> {
  for (let tx = 0; tx < s.txs.length; tx++) {
    const t = s.txs[tx]!;
    if (t.phase === IDLE) for (const seen of [-1, n(tsOf({ wall: s.pt + 1, logical: 0 }))]) yield { t: "begin", tx, seen };
    if (t.phase === BEGUN && ACCOUNTS[tx]!.every((a) => !locked(s, a))) yield { t: "lock", tx };
    if (t.phase === BEGUN || t.phase === LOCKED) yield { t: "give-up", tx };
    if (t.phase === LOCKED) yield { t: "decide", tx };
    if (t.phase === DECIDED) for (const shard of [0, 1]) if ((t.committed & (1 << shard)) === 0) yield { t: "commit", tx, shard };
  }
}

function* actionsOf(p: TimeParams, m: TimeMutant | undefined, s: TimeState): Iterable<TimeAction> {
  if (s.pt < p.ticks) yield { t: "tick" };
  if (s.jumps > 0 && s.pt > 0) yield { t: "jump" };
  yield* txActions(s);
  if (s.asking >= 0) {
    if (m === "read-no-wait" || readable(BigInt(s.asking), viewOf(s))) yield { t: "serve" };
  } else if (s.reads.length < p.reads) {
    const ats = new Set([n(tsOf(s.clock)), n(tsOf({ wall: s.pt + 1, logical: 0 })), ...s.txs.filter((t) => t.ts >= 0).map((t) => t.ts)]);
    for (const at of [...ats].sort((x, y) => x - y)) yield { t: "ask", at };
  }
}

/** What safe time is decided from: the clock and the timestamps chosen whose rows are not all stamped. */
const viewOf = (s: TimeState) => ({
  clock: tsOf(s.clock),
  pending: s.txs.filter((t) => t.ts >= 0 && t.phase !== GAVE_UP && t.committed !== 3).map((t) => BigInt(t.ts)),
  ready: true,
});

function stamp(s: TimeState): { clock: HlcState; ts: number } {
  const clock = now(s.clock, s.pt);
  return { clock, ts: n(tsOf(clock)) };
}

function txNext(s: TimeState, m: TimeMutant | undefined, a: Extract<TimeAction, { tx: number }>): TimeState {
  const t = s.txs[a.tx]!;
  const put = (u: Partial<TxState>, rest: Partial<TimeState> = {}): TimeState => ({ ...s, ...rest, txs: s.txs.map((x, i) => (i === a.tx ? { ...x, ...u } : x)) });
  switch (a.t) {
    case "begin": {
      const r = a.seen < 0 || m === "observe-no-advance" ? null : observe(s.clock, stateOf(BigInt(a.seen)), s.pt, 1);
      if (r !== null && !r.ok) return s;
      const s1 = r === null ? s : { ...s, clock: r.clock };
      if (m !== "ts-at-begin") return { ...s1, txs: s.txs.map((x, i) => (i === a.tx ? { ...x, phase: BEGUN, seen: a.seen } : x)) };
      const st = stamp(s1);
      return { ...s1, clock: st.clock, txs: s.txs.map((x, i) => (i === a.tx ? { ...x, phase: BEGUN, seen: a.seen, ts: st.ts } : x)) };
    }
    case "lock": {
      // It reads the effects of every transfer that committed a branch on one of its accounts.
      let deps = 0;
      s.txs.forEach((o, j) => {
        if (j !== a.tx && ACCOUNTS[j]!.some((acc, shard) => (o.committed & (1 << shard)) !== 0 && ACCOUNTS[a.tx]!.includes(acc))) deps |= 1 << j;
      });
      return put({ phase: LOCKED, deps });
    }
    case "give-up":
      return put({ phase: GAVE_UP, ts: -1 });
    case "decide": {
      if (t.ts >= 0) return put({ phase: DECIDED });
      const st = stamp(s);
      return put({ phase: DECIDED, ts: st.ts }, { clock: st.clock });
    }
    case "commit":
      return put({ committed: t.committed | (1 << a.shard) });
  }
}

function nextOf(m: TimeMutant | undefined, s: TimeState, a: TimeAction): TimeState {
  switch (a.t) {
    case "tick":
      return { ...s, pt: s.pt + 1 };
    case "jump":
      return { ...s, pt: s.pt - 1, jumps: s.jumps - 1 };
    case "ask": {
      if (m === "observe-no-advance") return { ...s, asking: a.at };
      const r = observe(s.clock, stateOf(BigInt(a.at)), s.pt, 1);
      return r.ok ? { ...s, clock: r.clock, asking: a.at } : s;
    }
    case "serve": {
      let seen = 0;
      s.txs.forEach((t, i) => [0, 1].forEach((sh) => (t.phase === DECIDED && (t.committed & (1 << sh)) !== 0 && t.ts <= s.asking ? (seen |= 1 << (2 * i + sh)) : 0)));
      return { ...s, asking: -1, reads: [...s.reads, { at: s.asking, seen }] };
    }
    default:
      return txNext(s, m, a);
  }
}

const whole = (r: Read, i: number): boolean => ((r.seen >> (2 * i)) & 3) === 3;
const none = (r: Read, i: number): boolean => ((r.seen >> (2 * i)) & 3) === 0;

function total(r: Read, txs: number): number {
  let sum = 0;
  for (let i = 0; i < txs; i++) for (const sh of [0, 1]) if ((r.seen & (1 << (2 * i + sh))) !== 0) sum += delta(i, sh);
  return sum;
}

export const timeInvariants = (txs: number): Record<string, (s: TimeState) => boolean> => ({
  client_causal: (s) => s.txs.every((t) => t.phase !== DECIDED || t.ts > t.seen),
  dependent_later: (s) => s.txs.every((t) => t.phase !== DECIDED || s.txs.every((o, j) => (t.deps & (1 << j)) === 0 || o.ts < t.ts)),
  snapshot_atomic: (s) => s.reads.every((r) => total(r, txs) === 0 && s.txs.every((_, i) => whole(r, i) || none(r, i))),
  snapshot_stable: (s) => s.reads.every((r) => s.txs.every((t, i) => t.phase !== DECIDED || t.ts > r.at || whole(r, i))),
});

/** A state as small integers: timestamps fit since wall <= ticks + 1 and logical stays small in these configurations. */
function encode(s: TimeState): Uint8Array {
  const out: number[] = [s.pt, s.jumps, s.clock.wall, s.clock.logical, s.asking + 1];
  for (const t of s.txs) out.push(t.phase, t.ts + 1, t.committed, t.deps, t.seen + 1);
  for (const r of s.reads) out.push(r.at, r.seen);
  return encodeInts(out);
}

/** Little-endian 32-bit words. */
function encodeInts(xs: readonly number[]): Uint8Array {
  const b = new Uint8Array(xs.length * 4);
  const v = new DataView(b.buffer);
  xs.forEach((x, i) => v.setUint32(i * 4, x, true));
  return b;
}

function decode(txs: number, b: Uint8Array): TimeState {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const w = (i: number): number => v.getUint32(i * 4, true);
  const tx: TxState[] = [];
  for (let i = 0; i < txs; i++) tx.push({ phase: w(5 + 5 * i), ts: w(6 + 5 * i) - 1, committed: w(7 + 5 * i), deps: w(8 + 5 * i), seen: w(9 + 5 * i) - 1 });
  const reads: Read[] = [];
  for (let k = 5 + 5 * txs; k < b.byteLength / 4; k += 2) reads.push({ at: w(k), seen: w(k + 1) });
  return { pt: w(0), jumps: w(1), clock: { wall: w(2), logical: w(3) }, asking: w(4) - 1, txs: tx, reads };
}

function checkParams(p: TimeParams): void {
  const ok = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!ok(p.txs, 2, 3) || !ok(p.ticks, 0, 4) || !ok(p.jumps, 0, 2) || !ok(p.reads, 0, 2)) {
    throw new Error(`timestamps: want txs 2..3, ticks 0..4, jumps 0..2, reads 0..2 (got ${JSON.stringify(p)})`);
  }
  if (LOGICAL_LIMIT < 16) throw new Error("timestamps: the logical counter must hold a few steps");
}

export function timeModel(p: TimeParams, mutant?: TimeMutant): Model<TimeState, TimeAction> {
  checkParams(p);
  const txs: TxState[] = Array.from({ length: p.txs }, () => ({ phase: IDLE, ts: -1, committed: 0, deps: 0, seen: -1 }));
  return {
    name: "timestamps",
    init: () => [{ pt: 0, jumps: p.jumps, clock: HLC_ZERO, txs, asking: -1, reads: [] }],
    actions: (s) => actionsOf(p, mutant, s),
    next: (s, a) => nextOf(mutant, s, a),
    invariants: timeInvariants(p.txs),
    terminal: () => true,
    encode,
    decode: (b) => decode(p.txs, b),
    describe: (_from, a, to) => describeOf(a, to),
  };
}

function describeOf(a: TimeAction, to: TimeState): { actor: string; label: string } {
  const ts = (x: number) => `${x >> 16}.${x & 0xffff}`;
  switch (a.t) {
    case "tick":
    case "jump":
      return { actor: "clock", label: `physical ${a.t === "tick" ? "ticks" : "jumps back"} to ${to.pt}` };
    case "ask":
      return { actor: "client", label: `snapshot at ${ts(a.at)} (clock ${ts(n(tsOf(to.clock)))})` };
    case "serve":
      return { actor: "server", label: `snapshot at ${ts(to.reads[to.reads.length - 1]!.at)} served` };
    case "commit":
      return { actor: `shard-${a.shard}`, label: `T${a.tx + 1} committed, row stamped ${ts(to.txs[a.tx]!.ts)}` };
    default:
      return { actor: "coordinator", label: `T${a.tx + 1} ${a.t}${to.txs[a.tx]!.ts >= 0 ? ` (ts ${ts(to.txs[a.tx]!.ts)})` : ""}` };
  }
}

export const timeFactory: ModelFactory = {
  name: "timestamps",
  description: "HLC commit timestamps under two-phase locking and snapshot reads that wait for safe time (spec/time)",
  params: { txs: 2, ticks: 2, jumps: 1, reads: 1 },
  mutants: TIME_MUTANTS,
  build: (params, mutant) =>
    timeModel({ txs: Number(params.txs), ticks: Number(params.ticks), jumps: Number(params.jumps), reads: Number(params.reads) }, mutant as TimeMutant | undefined),
};
