/**
 * The effects in flight, as a multiset: sorted by a canonical key so that two
 * worlds with the same flights in another order are the same state.
 */
import { EPOCH_KEY, type Effect } from "../kernel/effects.ts";
import { canonicalJson } from "../env/canonical.ts";
import * as txlog from "../env/txlog.ts";
import type { Flight, World } from "./types.ts";

let baseline = false;
/**
 * Selects the code paths this file had before issue 12's optimisations (every flight re-sorted on each launch,
 * a closure per dropFencedOrphans call, each flight's whole canonical JSON as its key), kept as the baseline `speccommit check --before` and
 * `npm run bench:checker` measure against. The states, and so the counts, are the same either way.
 */
export function useBaselinePaths(on: boolean): void {
  baseline = on;
}
export const baselinePaths = (): boolean => baseline;

/** The canonical key of a flight (its canonical JSON), computed once per flight object. */
export function flightKeys(): (f: Flight) => string {
  const keys = new WeakMap<Flight, string>();
  return (f) => {
    let k = keys.get(f);
    if (k === undefined) keys.set(f, (k = baseline ? canonicalJson(f) : flightJson(f)));
    return k;
  };
}

/**
 * canonicalJson(f), written out for a flight of the four fields (keys sorted: fx, inc, orphan, owner), so
 * that only the effect is serialised generically (1.6x as fast); anything else goes the generic way.
 * test/world/flights.test.ts checks it against canonicalJson.
 */
function flightJson(f: Flight): string {
  let n = 0;
  for (const _ in f) n++;
  const { fx, inc, orphan, owner } = f;
  if (n !== 4 || typeof fx !== "object" || fx === null || typeof orphan !== "boolean" || !Number.isInteger(inc) || !Number.isInteger(owner)) return canonicalJson(f);
  // No cache of the effect's JSON by object: a WeakMap entry per effect cost more than it saved.
  return `{"fx":${canonicalJson(fx)},"inc":${inc},"orphan":${orphan},"owner":${owner}}`;
}

/** The flights in key order (a stable insertion sort: a few flights, mostly in order already). */
export function sortFlights(fs: readonly Flight[], key: (f: Flight) => string): Flight[] {
  const out = fs.slice();
  const keys = out.map(key);
  for (let i = 1; i < out.length; i++) {
    const f = out[i]!;
    const k = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > k; j--) {
      out[j + 1] = out[j]!;
      keys[j + 1] = keys[j]!;
    }
    out[j + 1] = f;
    keys[j + 1] = k;
  }
  return out;
}

/** What launching a role's effects does to the flights, and the replies it makes (transaction index, outcome). */
export interface Launched {
  readonly flights: readonly Flight[];
  readonly replies: readonly (readonly [number, Extract<Effect, { t: "reply" }>["outcome"]])[];
}

export interface LaunchOptions {
  readonly txIndex: (tx: string) => number;
  readonly timerOff: (id: string) => boolean;
  readonly key: (f: Flight) => string;
  /** launched() itself, or the world's memoised copy of it (./memo.ts). */
  readonly launched?: (flights: readonly Flight[], effects: readonly Effect[], owner: number, inc: number) => Launched;
}

/**
 * Adds the effects a role asked for. A timer replaces an older timer of the
 * same owner and id; a timeout timer the configuration turns off is never
 * set. A reply reaches the client at once: when the client hears it changes
 * nothing the system does, and the properties speak of what was said, which
 * only grows.
 */
export function launch<W extends World>(w: W, owner: number, effects: readonly Effect[], opts: LaunchOptions): W {
  if (effects.length === 0) return w;
  const out = opts.launched ? opts.launched(w.flights, effects, owner, w.inc) : launched(w.flights, effects, owner, w.inc, opts);
  let told = w.told;
  for (const [t, outcome] of out.replies) told = told.map((o, i) => (i === t ? outcome : o));
  return { ...w, flights: out.flights, told };
}

/** The flights after launching `effects` of `owner` (incarnation `inc`), and the replies among them: a pure function of its arguments. */
export function launched(flights0: readonly Flight[], effects: readonly Effect[], owner: number, inc: number, opts: LaunchOptions): Launched {
  let flights = flights0.slice();
  const replies: [number, Extract<Effect, { t: "reply" }>["outcome"]][] = [];
  for (const fx of effects) {
    if (fx.t === "reply") {
      replies.push([opts.txIndex(fx.tx), fx.outcome]);
      continue;
    }
    if (fx.t === "timer") {
      if (opts.timerOff(fx.id)) continue;
      flights = flights.filter((f) => !(f.owner === owner && f.fx.t === "timer" && f.fx.id === fx.id));
    }
    const f = baseline ? { owner, fx, orphan: false, inc } : flightOf(owner, fx, inc);
    if (baseline) flights.push(f);
    else insertSorted(flights, f, opts.key);
  }
  return { flights: baseline ? sortFlights(flights, opts.key) : flights, replies };
}

/**
 * The flight of effect `fx` asked by `owner` in incarnation `inc`: one object per (fx, owner, inc), so that an
 * effect met again (a memoised role step's, ./memo.ts) makes the same flight, whose key and interned id are then
 * found by identity. Entries go with their effect (a WeakMap).
 */
const flightsByEffect = new WeakMap<Effect, Flight[]>();
function flightOf(owner: number, fx: Effect, inc: number): Flight {
  let made = flightsByEffect.get(fx);
  if (made === undefined) flightsByEffect.set(fx, (made = []));
  for (const f of made) if (f.owner === owner && f.inc === inc) return f;
  const f = { owner, fx, orphan: false, inc };
  // Bounded: an effect is asked by a few owners and incarnations; past that, flights are made afresh.
  if (made.length < 8) made.push(f);
  return f;
}

/** The orphaned copy of a flight, one per flight (orphaned). */
const orphans = new WeakMap<Flight, Flight>();
function orphanOf(f: Flight): Flight {
  let o = orphans.get(f);
  if (o === undefined) orphans.set(f, (o = { ...f, orphan: true }));
  return o;
}

/**
 * Inserts f into flights, kept sorted by key, after every flight whose key is not greater: what sortFlights
 * (a stable sort) gives for the flights with f appended, at the cost of log n keys instead of n.
 */
function insertSorted(flights: Flight[], f: Flight, key: (f: Flight) => string): void {
  const k = key(f);
  let lo = 0;
  let hi = flights.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(flights[mid]!) > k) hi = mid;
    else lo = mid + 1;
  }
  flights.splice(lo, 0, f);
}

/**
 * An orphaned txlog write whose fence no longer holds can only answer
 * FENCED, to nobody: it is dropped as soon as a new epoch is taken, which
 * removes states without removing behaviours.
 */
export function dropFencedOrphans<W extends World>(w: W): W {
  if (baseline) return dropFencedOrphansBaseline(w);
  // Hot (after every step): no orphan, nothing to drop, and no closure made (tsx names each one it makes).
  let any = false;
  for (const f of w.flights) if (f.orphan) any = true;
  if (!any) return w;
  const epoch = txlog.get(w.log, EPOCH_KEY)?.version ?? 0;
  let kept: Flight[] | undefined;
  for (let i = 0; i < w.flights.length; i++) {
    const f = w.flights[i]!;
    if (fencedOut(f, epoch)) kept ??= w.flights.slice(0, i);
    else kept?.push(f);
  }
  return kept === undefined ? w : { ...w, flights: kept };
}

/** dropFencedOrphans as it was (useBaselinePaths). */
function dropFencedOrphansBaseline<W extends World>(w: W): W {
  const epoch = txlog.get(w.log, EPOCH_KEY)?.version ?? 0;
  const dead = (f: Flight) => f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== epoch;
  return w.flights.some(dead) ? { ...w, flights: w.flights.filter((f) => !dead(f)) } : w;
}

function fencedOut(f: Flight, epoch: number): boolean {
  return f.orphan && (f.fx.t === "log.put" || f.fx.t === "log.delete") && f.fx.fence !== undefined && f.fx.fence.version !== epoch;
}

/** What a process crash leaves in flight: statements and log writes already sent may still land; replies, timers and reads die. */
export function orphaned(flights: readonly Flight[], key: (f: Flight) => string): Flight[] {
  const reads = new Set<string>(["timer", "log.list", "xa.recover", "local.scan"]);
  return sortFlights(
    flights.filter((f) => !reads.has(f.fx.t)).map((f) => (baseline ? { ...f, orphan: true } : orphanOf(f))),
    key,
  );
}
