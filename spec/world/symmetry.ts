/**
 * Symmetry reduction for the world every protocol model runs in
 * (./world.ts): interchangeable transactions. A scenario declares which of
 * its transactions are interchangeable (`Scenario.interchangeable`: classes
 * of ids whose transfers are identical but for the id); any permutation
 * inside each class is then an automorphism of the model, and the model's
 * `canonical(s)` picks one representative per orbit.
 *
 * Written once, generic over the world state: a permutation renames the
 * transaction ids everywhere in the state (as whole tokens inside strings:
 * `t1`, `t1.s1`, `tx/t1`, `t1/s1@0`, `xa.commit:t1:s1`), moves the per-
 * transaction slots (coordinators, what the client heard, each per-
 * transaction ghost array, a flight's owner index), and puts back in order
 * the arrays the model keeps sorted (sets: flights, log entries, branches,
 * connections, undo rows, sorted id lists), which a rename may unsort.
 *
 * The representative is the renamed state that is smallest in an order on
 * states (its parts' portable ranks, `Collapser.rank`: 53-bit structural
 * hashes of the values, compared part by part): the set of renamings of an
 * orbit is the same from every member, so every member gets the same
 * representative, and it is a member itself. The ranks depend on the values
 * alone, not on any thread's interned ids, so worker threads pick the same
 * representative (`--symmetry --workers N`). Two different parts with the
 * same rank (a 2^-53 chance per pair) would tie: the first renaming left
 * wins, still a member of the orbit, so a tie can only cost reduction (an
 * orbit stored twice), never a verdict. Exact, at the
 * cost of renaming, for each of the |G| permutations (2 for twins, 6 for
 * three), the parts up to the first one that tells them apart (usually the
 * coordinators); renamed parts are cached per object, so a part shared
 * between states is renamed once.
 *
 * That the permutations really are automorphisms (every renamed reachable
 * state is reachable, successors commute with the renaming, properties give
 * the same verdict on both) is checked on the reachable states of small
 * configurations by test/checker/symmetry-world.test.ts, and the reduced
 * search against the unreduced one (orbit counts, verdicts, counterexamples).
 */
import type { TxId } from "../kernel/effects.ts";
import { canonicalJson } from "../env/canonical.ts";
import { fmix as mix, stringHash as textHash } from "../env/collapse.ts";
import { flightKeys, sortFlights } from "./flights.ts";
import type { Flight, Scenario, World } from "./types.ts";

/** A permutation of the scenario's transaction indices: transaction i becomes transaction p[i]. */
export type Permutation = readonly number[];

/** Every permutation of `0..n-1` that maps each class (a set of indices) onto itself; the identity first. */
export function permutationsWithin(n: number, classes: readonly (readonly number[])[]): Permutation[] {
  let out: number[][] = [Array.from({ length: n }, (_, i) => i)];
  for (const cls of classes) {
    const next: number[][] = [];
    for (const base of out) {
      for (const order of arrangements(cls)) {
        const p = base.slice();
        cls.forEach((from, k) => (p[from] = order[k]!));
        next.push(p);
      }
    }
    out = next;
  }
  return out;
}

function arrangements(xs: readonly number[]): number[][] {
  if (xs.length <= 1) return [xs.slice()];
  return xs.flatMap((x, i) => arrangements([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

/**
 * The permutations a scenario declares (none: undefined). Refuses a class
 * whose transactions differ in anything but their id: they would not be
 * interchangeable.
 */
export function scenarioPermutations(sc: Scenario): Permutation[] | undefined {
  if (sc.interchangeable === undefined || sc.interchangeable.length === 0) return undefined;
  const classes = sc.interchangeable.map((ids) =>
    ids.map((id) => {
      const i = sc.txs.findIndex((t) => t.id === id);
      if (i < 0) throw new Error(`symmetry: unknown transaction ${id}`);
      return i;
    }),
  );
  const seen = new Set<number>();
  for (const cls of classes) {
    const shape = (i: number) => canonicalJson({ ...sc.txs[i]!, id: null });
    for (const i of cls) {
      if (seen.has(i)) throw new Error(`symmetry: transaction ${sc.txs[i]!.id} is in two classes`);
      seen.add(i);
      if (shape(i) !== shape(cls[0]!)) throw new Error(`symmetry: ${sc.txs[i]!.id} and ${sc.txs[cls[0]!]!.id} are not the same transfer, so not interchangeable`);
    }
    if (!/^[A-Za-z0-9_]+$/.test(sc.txs[cls[0]!]!.id)) throw new Error("symmetry: transaction ids must be word characters (they are renamed as tokens)");
  }
  return permutationsWithin(sc.txs.length, classes);
}

/** A generic order for the elements of the arrays the model keeps sorted: by id-like fields, then by canonical JSON. */
function compare(a: unknown, b: unknown): number {
  if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < a.length && i < b.length; i++) {
      const c = compare(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const x = a as Record<string, unknown>;
    const y = b as Record<string, unknown>;
    for (const k of ID_FIELDS) {
      if (k in x && k in y) {
        const c = compare(x[k], y[k]);
        if (c !== 0) return c;
      }
    }
  }
  const [ja, jb] = [jsonOf(a), jsonOf(b)];
  return ja < jb ? -1 : ja > jb ? 1 : 0;
}
/** canonicalJson, kept per object (values are never mutated): the sorted arrays' ties are compared often. */
const jsonCache = new WeakMap<object, string>();
function jsonOf(v: unknown): string {
  if (v === null || typeof v !== "object") return canonicalJson(v);
  let j = jsonCache.get(v);
  if (j === undefined) jsonCache.set(v, (j = canonicalJson(v)));
  return j;
}
/** The fields the model's sorted arrays are sorted by (log entries: key; XA branches: xid; connections: id; undo rows: tx, branch). */
const ID_FIELDS = ["key", "xid", "id", "tx", "branch", "shard"] as const;

const isSorted = (xs: readonly unknown[]): boolean => xs.every((x, i) => i === 0 || compare(xs[i - 1], x) <= 0);
/** Elements all strings, all numbers, all arrays or all objects: a list, not a tuple (a tuple such as a history row [xid, account, cents] is never re-sorted). */
const kind = (x: unknown): string => (Array.isArray(x) ? "array" : x === null ? "null" : typeof x);
const sameKind = (xs: readonly unknown[]): boolean => xs.every((x) => kind(x) === kind(xs[0]));

/** Transaction ids as whole tokens inside a string (`t1` in `t1.s1`, `tx/t1`; not in `t10`). */
const idTokens = (ids: readonly TxId[]): RegExp =>
  new RegExp(`(?<![A-Za-z0-9_])(${ids.map((id) => id.replace(/[^A-Za-z0-9_]/g, "")).join("|")})(?![A-Za-z0-9_])`, "g");

/** Renames transaction ids inside any plain value, with one cache per permutation. */
class Renamer {
  private cache = new WeakMap<object, unknown>();
  private readonly token: RegExp;
  private readonly to: Map<string, string>;
  readonly p: Permutation;

  constructor(ids: readonly TxId[], p: Permutation) {
    this.p = p;
    this.to = new Map(ids.map((id, i) => [id, ids[p[i]!]!]));
    const moved = ids.filter((id) => this.to.get(id) !== id);
    this.token = idTokens(moved);
  }

  forget(): void {
    this.cache = new WeakMap();
  }

  str(s: string): string {
    return s.replace(this.token, (id) => this.to.get(id)!);
  }

  /** The value with every id renamed; the same object when nothing in it changes. */
  value<V>(v: V): V {
    if (typeof v === "string") return this.str(v) as V;
    if (v === null || typeof v !== "object") return v;
    const hit = this.cache.get(v);
    if (hit !== undefined) return hit as V;
    const out = Array.isArray(v) ? this.array(v) : this.object(v as Record<string, unknown>);
    this.cache.set(v, out);
    return out as V;
  }

  private array(v: readonly unknown[]): readonly unknown[] {
    const out = v.map((x) => this.value(x));
    if (out.every((x, i) => x === v[i])) return v;
    return sameKind(v) && isSorted(v) ? out.sort(compare) : out;
  }

  private object(v: Record<string, unknown>): Record<string, unknown> {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const x = this.value(v[k]);
      if (x !== v[k]) changed = true;
      out[k] = x;
    }
    return changed ? out : v;
  }

  /** An array whose positions mean something (not a set): each element renamed where it is; the same array when none changes. */
  positional<T>(xs: readonly T[]): readonly T[] {
    const hit = this.cache.get(xs);
    if (hit !== undefined) return hit as readonly T[];
    const out = xs.map((x) => this.value(x));
    const same = out.every((x, i) => x === xs[i]);
    this.cache.set(xs, same ? xs : out);
    return same ? xs : out;
  }

  /** Moves per-transaction slots: slot i goes to p[i], its content renamed. */
  slots<T>(xs: readonly T[]): T[] {
    const out = new Array<T>(xs.length);
    xs.forEach((x, i) => (out[this.p[i]!] = this.value(x)));
    return out;
  }

  flight(f: Flight): Flight {
    const hit = this.cache.get(f);
    if (hit !== undefined) return hit as Flight;
    const out: Flight = { ...f, owner: f.owner < 0 ? f.owner : this.p[f.owner]!, fx: this.value(f.fx) };
    this.cache.set(f, out);
    return out;
  }
}

/** The flights' own order (./flights.ts sorts them by canonical JSON). */
const flightKey = flightKeys();

/** The parts of a world a rename changes, in the order the representative compares them (./world.ts encodes them in this order too). */
const PARTS = ["coords", "resolver", "shards", "log", "flights", "told", "ghost"] as const;
type Part = (typeof PARTS)[number];

/** One part of the world renamed by `r`: ids everywhere, per-transaction slots moved, sorted arrays re-sorted. */
function renamePart<W extends World>(w: W, part: Part, r: Renamer): unknown {
  switch (part) {
    case "coords":
      return r.slots(w.coords);
    case "told":
      return r.slots(w.told);
    case "shards":
      // Positional (shard i is the scenario's i-th shard): each renamed in place, never re-sorted as a set.
      return r.positional(w.shards);
    case "flights":
      return sortFlights(
        w.flights.map((f) => r.flight(f)),
        flightKey,
      );
    case "ghost": {
      const ghost = w.ghost as Record<string, unknown>;
      const g: Record<string, unknown> = {};
      for (const k of Object.keys(ghost)) {
        const v = ghost[k];
        if (!Array.isArray(v)) g[k] = r.value(v);
        else if (v.length === w.coords.length) g[k] = r.slots(v);
        else throw new Error(`symmetry: ghost field ${k} is an array that is not per transaction`);
      }
      return g;
    }
    default:
      return r.value(w[part]);
  }
}

/** The world with its transactions renamed by `r`. */
export function renameWorld<W extends World>(w: W, r: Renamer): W {
  const out = { ...w } as Record<string, unknown>;
  for (const part of PARTS) out[part] = renamePart(w, part, r);
  return out as W;
}

/** The renamers of a scenario's permutations, identity excluded. */
export function renamers(sc: Scenario, perms: readonly Permutation[]): Renamer[] {
  const ids = sc.txs.map((t) => t.id);
  return perms.filter((p) => p.some((x, i) => x !== i)).map((p) => new Renamer(ids, p));
}

/**
 * A structural hash of a value with every interchangeable id (every id a
 * permutation may move) replaced by one placeholder, arrays and objects
 * combined order-free (sums of their elements' and fields' hashes): so a
 * value and any renaming of it (Renamer.value: ids replaced by ids of the
 * same class, sorted arrays re-sorted) get the same signature. It is
 * computed from the content alone (string hashes, never interned ids), so it
 * is the same in every thread. Cached per object (states are never mutated).
 */
class Signer {
  private readonly cache = new WeakMap<object, number>();
  private strings = new Map<string, number>();
  /** Field names' hashes (a model has a few dozen). */
  private readonly keys = new Map<string, number>();
  private readonly token: RegExp;

  constructor(ids: readonly TxId[]) {
    this.token = idTokens(ids);
  }

  of(v: unknown): number {
    switch (typeof v) {
      case "string": {
        let h = this.strings.get(v);
        if (h === undefined) {
          if (this.strings.size >= 1 << 16) this.strings = new Map();
          this.strings.set(v, (h = textHash(`s${v.replace(this.token, "\u0000")}`)));
        }
        return h;
      }
      case "number":
        return (v | 0) === v ? mix((v | 0) ^ 0x2545f491) : textHash(`n${String(v)}`);
      case "boolean":
        return v ? 0x51ed2701 : 0x2b3c4d5e;
      case "object":
        break;
      default:
        return 0x1b873593;
    }
    if (v === null) return 0x68e31da4;
    const hit = this.cache.get(v);
    if (hit !== undefined) return hit;
    let sum = 0;
    let n = 0;
    if (Array.isArray(v)) {
      for (const x of v) sum = (sum + mix(this.of(x) ^ 0x3c6ef372)) | 0;
      n = v.length;
    } else {
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        n++;
        let kh = this.keys.get(k);
        if (kh === undefined) this.keys.set(k, (kh = textHash(k)));
        sum = (sum + mix(kh ^ Math.imul(this.of(x), 0x85ebca6b))) | 0;
      }
    }
    const h = mix(sum ^ Math.imul(n + (Array.isArray(v) ? 0x100000 : 0), 0xcc9e2d51));
    this.cache.set(v, h);
    return h;
  }
}

/**
 * Model.canonical for a world whose scenario declares interchangeable
 * transactions (undefined when it declares none): the member of the state's
 * orbit that is smallest in an order on states, every key of which is a
 * function of the (renamed) state alone, so every member of an orbit, in any
 * thread, has the same minimum:
 *
 * 1. the transactions' signatures in slot order (`Signer`: a hash of a
 *    transaction's coordinator slot and what its client heard, ids
 *    abstracted). A renaming moves slot i to p[i] and leaves signatures as
 *    they are, so this key needs no renaming: the candidates left are the
 *    permutations that sort the transactions by signature (one, unless two
 *    transactions are in the same state);
 * 2. then, among those, the parts' ranks (`rank`, the collapser's portable
 *    hash), coords first, then resolver, shards, ...: renames go part by
 *    part and stop as soon as one candidate is left.
 */
export function worldCanonical<W extends World>(sc: Scenario, rank: (part: Part, v: unknown) => number): ((w: W) => W) | undefined {
  const perms = scenarioPermutations(sc);
  if (perms === undefined) return undefined;
  const rs = renamers(sc, perms);
  const ids = sc.txs.map((t) => t.id);
  const signer = new Signer(ids.filter((id, i) => perms.some((p) => p[i] !== i)));
  // Where each candidate puts each slot's content: slot j of the renamed state holds transaction from[c][j].
  const from = [null, ...rs].map((r) => {
    const inv = ids.map((_, i) => i);
    if (r !== null) r.p.forEach((to, i) => (inv[to] = i));
    return inv;
  });
  const n = ids.length;
  const sig = new Array<number>(n);
  // Candidate c: the identity (null) or renamer c - 1. Defined once: a closure made per call costs (tsx names each).
  const renamer = (c: number): Renamer | null => (c === 0 ? null : rs[c - 1]!);
  let sets = 0;
  return (w) => {
    // Renamed parts are cached per object; the interner keeps those objects alive, so start afresh now and then.
    if (++sets % 20_000 === 0) rs.forEach((r) => r.forget());
    for (let i = 0; i < n; i++) sig[i] = (signer.of(w.coords[i]) + Math.imul(signer.of(w.told[i]), 0x9e3779b1)) >>> 0;
    let alive: number[] = [0];
    for (let c = 1; c < from.length; c++) {
      const f = from[c]!;
      const g = from[alive[0]!]!;
      let d = 0;
      for (let j = 0; j < n && d === 0; j++) d = sig[f[j]!]! - sig[g[j]!]!;
      if (d < 0) alive = [c];
      else if (d === 0) alive.push(c);
    }
    // The parts renamed while comparing, kept for the winner: part `part` renamed by candidate cands[k] is values[k].
    const computed: { part: Part; cands: number[]; values: unknown[] }[] = [];
    if (alive.length > 1) {
      for (const part of PARTS) {
        let best = Infinity;
        const values: unknown[] = [];
        const ranks = alive.map((c, k) => {
          const r = renamer(c);
          const v = r === null ? w[part] : renamePart(w, part, r);
          values[k] = v;
          const id = rank(part, v);
          if (id < best) best = id;
          return id;
        });
        computed.push({ part, cands: alive, values });
        alive = alive.filter((_, k) => ranks[k] === best);
        if (alive.length === 1) break;
      }
    }
    const win = alive[0]!;
    const winner = renamer(win);
    if (winner === null) return w;
    const out = { ...w } as Record<string, unknown>;
    for (const { part, cands, values } of computed) out[part] = values[cands.indexOf(win)];
    for (let k = computed.length; k < PARTS.length; k++) out[PARTS[k]!] = renamePart(w, PARTS[k]!, winner);
    return out as W;
  };
}

export type { Renamer };
