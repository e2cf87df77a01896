/**
 * State compression by component tables, as SPIN's COLLAPSE mode does: a
 * state made of a few large, slowly changing parts (shards, roles, the log,
 * the messages in flight) is stored as one small integer per part, each an
 * index into a table of the distinct values that part has taken. Distinct
 * parts are far fewer than distinct states, so the checker's per-state bytes
 * shrink from kilobytes of JSON to 4 bytes per part.
 *
 * Interning is structural and recursive (hash-consing, class Interner):
 * every object or array inside a state gets an id, found from its fields,
 * each nested object standing as its own id, so a step that changes one field
 * of one role re-hashes only the objects on the path to it, and no JSON is
 * built. A part shared with the parent state (the same object) costs one
 * WeakMap look-up; a fresh copy equal to the parent's part costs a
 * comparison with it.
 *
 * Two values get the same id exactly when their canonical JSON
 * (./canonical.ts: keys sorted, undefined-valued keys left out) is the same;
 * test/env/collapse.test.ts checks it against canonicalJson. Values must not
 * be mutated once encoded (decode hands back the interned objects
 * themselves).
 *
 * The indices are those of this process: a collapsed encoding is canonical
 * within one checker run (equal parts get equal indices), which is what
 * fingerprints need; it is not a format to store or to share between worker
 * threads (the parallel engine sends the parts themselves: checker/portable.ts).
 */
import { canonicalJsonPlain as canonicalJson } from "./canonical.ts";

export interface Collapser<S extends object> {
  encode(s: S): Uint8Array;
  /** encode's bytes in this collapser's own buffer: valid until its next encode or view (Model.encodeView). */
  view(s: S): Uint8Array;
  decode(b: Uint8Array): S;
  /**
   * The id field `f` of a state would get when holding `v` (the number `encode` writes for it): equal
   * values, equal ids. Symmetry (spec/world/symmetry.ts) compares renamed states part by part with it.
   */
  part(f: keyof S & string, v: unknown): number;
  /**
   * A 53-bit structural hash of the value field `f` holds, the same in every thread and process (equal
   * values, equal ranks; different values differ but for a 2^-53 chance): symmetry orders renamed states
   * by it, so that worker threads, each with its own ids, pick the same representative of an orbit.
   */
  rank(f: keyof S & string, v: unknown): number;
  /**
   * The interned value equal to `v` (equal values, one object: the one `decode` hands back), so that a model
   * may keep its results in that form (spec/world/memo.ts) and have them found by identity when encoded;
   * `v` itself for the json baseline.
   */
  canon<T>(v: T): T;
}

/**
 * Which implementation `collapser` builds: "interned" (this file's
 * hash-consing, the default) or "json", the one it replaced (each part keyed
 * by its canonical JSON), kept as the baseline `npm run bench:checker`
 * measures against (`speccommit check --encoder json`). Both give the same
 * states, so the same counts.
 */
export type Encoder = "interned" | "json";
let encoder: Encoder = "interned";
export function useEncoder(e: Encoder): void {
  encoder = e;
}

/** A collapser for records whose fields, in `fields` order, are each interned. */
export function collapser<S extends object>(fields: readonly (keyof S & string)[]): Collapser<S> {
  if (encoder === "json") return jsonCollapser(fields);
  const interner = new Interner();
  const n = fields.length;
  const ids = new Uint32Array(n);
  const bytes = new Uint8Array(ids.buffer);
  // The parts of the state decoded last, and their ids: the checker decodes a
  // state, then encodes its successors, whose parts are mostly that state's
  // own (the same object: its id is known) or equal to them (the hint).
  const none = Symbol("none");
  const last: unknown[] = fields.map(() => none);
  const lastIds = new Uint32Array(n);
  const fill = (s: S): void => {
    for (let f = 0; f < n; f++) {
      const v = s[fields[f]!];
      ids[f] = v === last[f] ? lastIds[f]! : interner.id(v, last[f]);
    }
  };
  return {
    encode(s) {
      fill(s);
      return bytes.slice();
    },
    view(s) {
      fill(s);
      return bytes;
    },
    decode(b) {
      const view = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2) : new Uint32Array(b.slice().buffer);
      const s: Record<string, unknown> = {};
      for (let f = 0; f < n; f++) s[fields[f]!] = last[f] = interner.value((lastIds[f] = view[f]!));
      return s as S;
    },
    part(f, v) {
      const i = fields.indexOf(f);
      return v === last[i] ? lastIds[i]! : interner.id(v, last[i]);
    },
    rank(f, v) {
      const i = fields.indexOf(f);
      return interner.rank(v === last[i] ? lastIds[i]! : interner.id(v, last[i]));
    },
    canon: (v) => interner.value(interner.id(v)) as typeof v,
  };
}

/** The baseline: one table per field, each part keyed by its canonical JSON (array parts by their elements' ids). */
function jsonCollapser<S extends object>(fields: readonly (keyof S & string)[]): Collapser<S> {
  const tables = fields.map(() => new JsonTable());
  const elements = fields.map(() => new JsonTable());
  const intern = (f: number, v: unknown): number => {
    const t = tables[f]!;
    if (!Array.isArray(v)) return t.intern(v, canonicalJson);
    const hit = t.byRef.get(v);
    if (hit !== undefined) return hit;
    const el = elements[f]!;
    let key = "";
    for (const x of v) key += `${el.intern(x, canonicalJson)},`;
    return t.intern(v, () => key);
  };
  const encode = (s: S): Uint8Array => {
    const ids = new Uint32Array(fields.length);
    for (let f = 0; f < fields.length; f++) ids[f] = intern(f, s[fields[f]!]);
    return new Uint8Array(ids.buffer);
  };
  return {
    encode,
    view: encode,
    decode(b) {
      const ids = new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      const s: Record<string, unknown> = {};
      for (let f = 0; f < fields.length; f++) s[fields[f]!] = tables[f]!.value(ids[f]!);
      return s as S;
    },
    part: (f, v) => intern(fields.indexOf(f), v),
    rank: (_f, v) => jsonRank(canonicalJson(v)),
    canon: (v) => v,
  };
}

/** The baseline's tables: distinct values by canonical JSON, with a cache by object identity. */
class JsonTable {
  readonly byKey = new Map<string, number>();
  readonly values: unknown[] = [];
  readonly byRef = new WeakMap<object, number>();

  intern(v: unknown, keyOf: (v: unknown) => string): number {
    const isObj = typeof v === "object" && v !== null;
    if (isObj) {
      const hit = this.byRef.get(v);
      if (hit !== undefined) return hit;
    }
    const key = keyOf(v);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(v);
      this.byKey.set(key, id);
    }
    if (isObj) this.byRef.set(v, id);
    return id;
  }

  value(id: number): unknown {
    if (id >= this.values.length) throw new Error(`collapse: no value with id ${id}`);
    return this.values[id];
  }
}

const isObject = (x: unknown): x is object => typeof x === "object" && x !== null;

/** The json baseline's rank: two 32-bit hashes of the canonical JSON, as 53 bits. */
function jsonRank(json: string): number {
  return (stringHash2(json) & RANK_HI_MASK) * 2 ** 32 + stringHash(json);
}

/** MurmurHash3's finaliser: a bijection on 32 bits with full avalanche. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function stringHash(x: string): number {
  let h = 0x811c9dc5 ^ x.length;
  for (let i = 0; i < x.length; i++) h = Math.imul(h ^ x.charCodeAt(i), 0x01000193);
  return fmix(h);
}

/** A second string hash (other seed and multiplier): with stringHash, 64 bits. */
function stringHash2(x: string): number {
  let h = 0x9747b28c ^ Math.imul(x.length, 0x85ebca6b);
  for (let i = 0; i < x.length; i++) h = Math.imul(h ^ x.charCodeAt(i), 0x5bd1e995) ^ (h >>> 15);
  return fmix(h ^ 0x2f6b1c33);
}

/** Ranks keep 21 bits of the high word: 53 bits in all, exact in a double. */
const RANK_HI_MASK = 0x1fffff;

const float = new Float64Array(1);
const floatWords = new Uint32Array(float.buffer);

/**
 * A hash of a primitive, equal for primitives that are ===, refusing what
 * canonical JSON (./canonical.ts) cannot encode: undefined, NaN and the
 * infinities (and functions, symbols, bigints, which are not plain data).
 */
function primitiveHash(x: unknown): number {
  switch (typeof x) {
    case "number":
      // Small integers, -0 included (-0 | 0 is 0, as JSON writes it).
      if ((x | 0) === x) return fmix((x | 0) ^ 0x2545f491);
      if (!Number.isFinite(x)) throw new Error(`canonicalJson: ${x} is not encodable`);
      float[0] = x;
      return fmix(floatWords[0]! ^ fmix(floatWords[1]!));
    case "string":
      return stringHash(x);
    case "boolean":
      return x ? 0x51ed2701 : 0x2b3c4d5e;
    case "object":
      return 0x6e2f1a3b;
    case "undefined":
      throw new Error("canonicalJson: undefined is not encodable (use null)");
    default:
      throw new Error(`canonicalJson: a ${typeof x} is not plain data`);
  }
}

/**
 * The high word of a primitive's portable hash (its low word is primitiveHash): together 64 bits that
 * depend on the value alone, never on an id, so they are the same in every thread.
 */
function primitiveHash2(x: unknown): number {
  switch (typeof x) {
    case "number":
      if ((x | 0) === x) return fmix((x | 0) ^ 0x7f4a7c15);
      float[0] = x;
      return fmix(floatWords[1]! ^ fmix(floatWords[0]! ^ 0x165667b1));
    case "string":
      return stringHash2(x);
    case "boolean":
      return x ? 0x1b873593 : 0x68e31da4;
    default:
      return 0x3c6ef372;
  }
}

/** How an interned child stands in its parent's hash. */
const childHash = (id: number): number => fmix(Math.imul(id, 0x9e3779b1) ^ 0x27d4eb2f);

/**
 * Hash-consing of plain data: one id per distinct canonical value, no string
 * built on the way.
 *
 * A value is found first by identity (a WeakMap of the objects interned), then
 * by a 32-bit hash of its fields (each an interned child's id or a primitive)
 * in an open-addressing table, every candidate compared field by field, so a
 * hash collision costs a comparison, never a wrong id. An object's hash adds
 * up its fields' hashes, so it does not depend on their order, as canonical
 * JSON does not. `id(v, hint)` may be given a hint, the interned value at the
 * same place in a similar state (the parent's): it is compared first, and
 * its fields are the hints of `v`'s fields. A value is remembered by identity
 * when first interned (it is the one `value` hands back), and so are its
 * object children: a decoded state's parts, and theirs, are found by
 * identity, and a candidate's children are compared by their ids.
 */
export class Interner {
  private readonly byPrimitive = new Map<unknown, number>();
  private readonly byRef = new WeakMap<object, number>();
  private readonly names = new Map<string, number>();
  private readonly values: unknown[] = [];
  /** Per id: the number of defined fields (objects) or elements (arrays); -1 for a primitive. */
  private readonly sizes: number[] = [];
  private readonly hashes: number[] = [];
  /** Per id: its portable 64-bit hash (high, low words), from its content alone (rank). */
  private readonly portHi: number[] = [];
  private readonly portLo: number[] = [];
  /** Open addressing: id + 1 per slot, 0 when empty; at most half full. */
  private slots = new Int32Array(1 << 10);
  private objects = 0;
  /**
   * The ids of the object children of the values being interned, innermost last: `stack[0..sp)`, a typed
   * array with its own top (setting a JS array's length back, once per value, was 1.7% of a search's time).
   */
  private stack = new Int32Array(256);
  private sp = 0;

  private pushChild(id: number): void {
    if (this.sp === this.stack.length) {
      const bigger = new Int32Array(this.stack.length * 2);
      bigger.set(this.stack);
      this.stack = bigger;
    }
    this.stack[this.sp++] = id;
  }

  /** The id of `v`: equal canonical JSON, equal id. */
  id(v: unknown, hint?: unknown): number {
    if (!isObject(v)) return this.primitiveId(v);
    const hit = this.byRef.get(v);
    if (hit !== undefined) return hit;
    const base = this.sp;
    const isArray = Array.isArray(v);
    const hintId = isObject(hint) && Array.isArray(hint) === isArray ? this.byRef.get(hint) : undefined;
    const h = hintId === undefined ? undefined : (hint as Record<string, unknown>);
    let hash: number;
    let n: number;
    if (isArray) {
      n = v.length;
      hash = this.arrayHash(v, h as readonly unknown[] | undefined);
    } else {
      const sum = this.objectHash(v as Record<string, unknown>, h);
      n = this.fieldCount;
      hash = fmix(sum ^ Math.imul(n, 0xcc9e2d51));
    }
    if (hintId !== undefined && this.hashes[hintId] === hash && this.equals(v, hintId, n, base)) {
      this.sp = base;
      return hintId;
    }
    const id = this.lookup(v, hash, n, base);
    this.sp = base;
    return id;
  }

  value(id: number): unknown {
    if (id >= this.values.length) throw new Error(`collapse: no value with id ${id}`);
    return this.values[id];
  }

  /**
   * The portable rank of value `id`: 53 bits of a structural hash computed from the value alone (primitives
   * hashed, an object's (key, field) pairs summed so key order does not matter, an array's elements in
   * order), so equal values have equal ranks in every thread, whatever ids each gave them.
   */
  rank(id: number): number {
    return (this.portHi[id]! & RANK_HI_MASK) * 2 ** 32 + (this.portLo[id]! >>> 0);
  }

  /** How many distinct values were interned. */
  get size(): number {
    return this.values.length;
  }

  private primitiveId(v: unknown): number {
    let id = this.byPrimitive.get(v);
    if (id === undefined) {
      id = this.push(v, -1, primitiveHash(v));
      this.portHi.push(primitiveHash2(v));
      this.portLo.push(this.hashes[id]!);
      this.byPrimitive.set(v, id);
    }
    return id;
  }

  private push(v: unknown, size: number, hash: number): number {
    const id = this.values.length;
    this.values.push(v);
    this.sizes.push(size);
    this.hashes.push(hash);
    return id;
  }

  /** Interns the children (ids pushed on the stack) and hashes them in order. */
  private arrayHash(v: readonly unknown[], h: readonly unknown[] | undefined): number {
    let hash = 0x3c6ef372 ^ v.length;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      let xh: number;
      if (isObject(x)) {
        const id = this.id(x, h?.[i]);
        this.pushChild(id);
        xh = childHash(id);
      } else xh = primitiveHash(x);
      hash = Math.imul(((hash << 5) | (hash >>> 27)) ^ xh, 0x9e3779b1);
    }
    return hash;
  }

  /** The number of defined fields objectHash counted last (a field, not a returned pair: no allocation per object). */
  private fieldCount = 0;

  /** Interns the defined fields' object values (ids pushed on the stack); their order-free hash (their count in fieldCount). */
  private objectHash(v: Record<string, unknown>, h: Record<string, unknown> | undefined): number {
    let n = 0;
    let sum = 0;
    for (const k in v) {
      const x = v[k];
      if (x === undefined) continue;
      n++;
      let xh: number;
      if (isObject(x)) {
        const id = this.id(x, h?.[k]);
        this.pushChild(id);
        xh = childHash(id);
      } else xh = primitiveHash(x);
      let kh = this.names.get(k);
      if (kh === undefined) this.names.set(k, (kh = stringHash(k)));
      sum = (sum + fmix(kh ^ Math.imul(xh, 0x85ebca6b))) | 0;
    }
    this.fieldCount = n;
    return sum;
  }

  /** Whether `v`, with `n` defined fields and its children's ids on the stack from `base`, equals value `id`. */
  private equals(v: object, id: number, n: number, base: number): boolean {
    if (this.sizes[id] !== n) return false;
    const c = this.values[id] as Record<string, unknown>;
    if (Array.isArray(v) !== Array.isArray(c)) return false;
    const stack = this.stack;
    let j = base;
    if (Array.isArray(v)) {
      for (let i = 0; i < n; i++) {
        const x = v[i];
        const cx = (c as unknown as unknown[])[i];
        if (isObject(x) ? !isObject(cx) || this.byRef.get(cx) !== stack[j++] : x !== cx) return false;
      }
      return true;
    }
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (x === undefined) continue;
      const cx = c[k];
      if (isObject(x) ? !isObject(cx) || this.byRef.get(cx) !== stack[j++] : x !== cx) return false;
    }
    return true;
  }

  /** The id of the value equal to `v` in the table, or a new one. */
  private lookup(v: object, hash: number, n: number, base: number): number {
    const mask = this.slots.length - 1;
    let i = hash & mask;
    for (let e = this.slots[i]!; e !== 0; e = this.slots[i]!) {
      if (this.hashes[e - 1] === hash && this.equals(v, e - 1, n, base)) return e - 1;
      i = (i + 1) & mask;
    }
    const id = this.push(v, n, hash);
    this.portable(v, base);
    this.slots[i] = id + 1;
    this.byRef.set(v, id);
    this.rememberChildren(v, base);
    if (++this.objects * 2 > this.slots.length) this.grow();
    return id;
  }

  /** Pushes a new value's portable hash: its children's are known (their ids on the stack from `base`). */
  private portable(v: object, base: number): void {
    let j = base;
    let hi: number;
    let lo: number;
    if (Array.isArray(v)) {
      hi = 0x243f6a88 ^ v.length;
      lo = 0x85a308d3 ^ v.length;
      for (const x of v) {
        const c = isObject(x) ? this.stack[j++]! : -1;
        const xh = c < 0 ? primitiveHash2(x) : this.portHi[c]!;
        const xl = c < 0 ? primitiveHash(x) : this.portLo[c]!;
        hi = Math.imul(((hi << 7) | (hi >>> 25)) ^ xh, 0xcc9e2d51);
        lo = Math.imul(((lo << 5) | (lo >>> 27)) ^ xl, 0x1b873593);
      }
    } else {
      let n = 0;
      hi = 0;
      lo = 0;
      for (const k in v) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        n++;
        const c = isObject(x) ? this.stack[j++]! : -1;
        const xh = c < 0 ? primitiveHash2(x) : this.portHi[c]!;
        const xl = c < 0 ? primitiveHash(x) : this.portLo[c]!;
        hi = (hi + fmix(stringHash2(k) ^ Math.imul(xh, 0xcc9e2d51) ^ xl)) | 0;
        lo = (lo + fmix(stringHash(k) ^ Math.imul(xl, 0x85ebca6b) ^ xh)) | 0;
      }
      hi ^= Math.imul(n, 0x27d4eb2f) ^ 0x13198a2e;
      lo ^= Math.imul(n, 0x165667b1) ^ 0x03707344;
    }
    this.portHi.push(fmix(hi));
    this.portLo.push(fmix(lo));
  }

  /** A new value's object children, whose ids are on the stack from `base`, in its field order. */
  private rememberChildren(v: object, base: number): void {
    let j = base;
    if (Array.isArray(v)) {
      for (const x of v) if (isObject(x)) this.byRef.set(x, this.stack[j++]!);
      return;
    }
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      if (isObject(x)) this.byRef.set(x, this.stack[j++]!);
    }
  }

  private grow(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let id = 0; id < this.values.length; id++) {
      if (this.sizes[id] === -1) continue;
      let i = this.hashes[id]! & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = id + 1;
    }
    this.slots = slots;
  }
}
