/**
 * Moving the states of a model with a local encoding (Model.localEncoding:
 * ids interned in tables of one model instance, spec/env/collapse.ts)
 * between worker threads.
 *
 * Each worker builds its own instance, so its bytes mean nothing to a peer.
 * Such an encoding is a record of parts, one 32-bit id per part, in the order
 * of the keys of a decoded state (the collapser's fields); equal ids, equal
 * parts (their canonical JSON). Two things are needed, both independent of
 * any instance:
 *
 * - which worker owns a state: a 64-bit structural hash (ContentHash) of each
 *   part, equal for parts with the same canonical JSON (keys in any order,
 *   undefined-valued keys left out), computed once per local id (an array
 *   indexed by id: a successor mostly reuses its parent's parts), combined
 *   in part order;
 * - the state itself: it travels as its parts' hashes, and each part's value
 *   travels once to each peer (a dictionary: PartSender, PartReceiver). The
 *   owner rebuilds the record and encodes it with its own instance; only the
 *   owner stores a state, so its table stays consistent.
 *
 * Two different parts with the same 64-bit hash would be confused (the
 * probability is about n^2 / 2^65 for n distinct parts, as for the engine's
 * state fingerprints, hash.ts).
 */
import { KeySet, StateTable } from "./table.ts";
import { fmix32, mixSlot } from "./hash.ts";

const SEED_A = 0x3c6ef372;
const SEED_B = 0x5be0cd19;

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3's tail: the length folded in, then its finaliser (hash.ts). */
const finish = (h: number, n: number): number => fmix32(h ^ n);

const TAG_NULL = 1;
const TAG_BOOL = 2;
const TAG_INT = 3;
const TAG_FLOAT = 4;
const TAG_STRING = 5;
const TAG_ARRAY = 6;
const TAG_OBJECT = 7;

/** Structural 64-bit hashes of JSON-like values; `hash(v)` leaves the result in `hi` and `lo`. */
export class ContentHash {
  hi = 0;
  lo = 0;
  private readonly keys = new Map<string, number>();
  private readonly keyHis: number[] = [];
  private readonly keyLos: number[] = [];
  private readonly f64 = new Float64Array(1);
  private readonly u32 = new Uint32Array(this.f64.buffer);

  hash(v: unknown): void {
    switch (typeof v) {
      case "number":
        if (!Number.isFinite(v)) return this.word(TAG_NULL, 0);
        if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) return this.word(TAG_INT, v | 0);
        this.f64[0] = v;
        return this.words3(TAG_FLOAT, this.u32[0]!, this.u32[1]!);
      case "string":
        return this.string(v);
      case "boolean":
        return this.word(TAG_BOOL, v ? 1 : 0);
      case "object":
        if (v === null) return this.word(TAG_NULL, 0);
        return this.object(v);
      case "undefined":
      case "function":
      case "symbol":
        // As JSON inside an array; object keys with such values are left out before.
        return this.word(TAG_NULL, 0);
      default:
        throw new Error(`portable: cannot hash a ${typeof v} (states must be JSON-like)`);
    }
  }

  private word(tag: number, w: number): void {
    this.hi = finish(mix(mix(SEED_A, tag), w), 2);
    this.lo = finish(mix(mix(SEED_B, tag), w), 2);
  }

  private words3(tag: number, a: number, b: number): void {
    this.hi = finish(mix(mix(mix(SEED_A, tag), a), b), 3);
    this.lo = finish(mix(mix(mix(SEED_B, tag), a), b), 3);
  }

  /** A key's hash, from a cache (a state's records use few distinct keys). */
  private key(k: string): void {
    const at = this.keys.get(k);
    if (at !== undefined) {
      this.hi = this.keyHis[at]!;
      this.lo = this.keyLos[at]!;
      return;
    }
    this.string(k);
    this.keys.set(k, this.keyHis.length);
    this.keyHis.push(this.hi);
    this.keyLos.push(this.lo);
  }

  private string(s: string): void {
    let a = mix(SEED_A, TAG_STRING);
    let b = mix(SEED_B, TAG_STRING);
    const n = s.length;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
      a = mix(a, k);
      b = mix(b, k);
    }
    if (i < n) {
      a = mix(a, s.charCodeAt(i));
      b = mix(b, s.charCodeAt(i));
    }
    this.hi = finish(a, n + 1);
    this.lo = finish(b, n + 1);
  }

  private object(o: object): void {
    let a: number;
    let b: number;
    let n = 0;
    if (Array.isArray(o)) {
      a = mix(SEED_A, TAG_ARRAY);
      b = mix(SEED_B, TAG_ARRAY);
      for (const x of o) {
        this.hash(x);
        a = mix(mix(a, this.hi), this.lo);
        b = mix(mix(b, this.lo), this.hi);
        n++;
      }
    } else {
      // Keys in any order: each (key, value) pair's hash is summed (no sort, no allocation).
      let sa = 0;
      let sb = 0;
      const rec = o as Record<string, unknown>;
      for (const key in rec) {
        if (!Object.hasOwn(rec, key)) continue;
        const x = rec[key];
        if (x === undefined || typeof x === "function" || typeof x === "symbol") continue;
        this.key(key);
        const ka = this.hi;
        const kb = this.lo;
        this.hash(x);
        sa = (sa + finish(mix(mix(SEED_A, ka), this.hi), 2)) | 0;
        sb = (sb + finish(mix(mix(SEED_B, kb), this.lo), 2)) | 0;
        n++;
      }
      a = mix(mix(SEED_A, TAG_OBJECT), sa);
      b = mix(mix(SEED_B, TAG_OBJECT), sb);
    }
    this.hi = finish(a, n);
    this.lo = finish(b, n);
  }
}

/** What travels with a batch of states: each state's parts' hashes, and the parts the peer has not had yet. */
export interface PortableBatch {
  /** Per state: its content hash (hi, lo), its key in the owner's table (a duplicate is dropped without being rebuilt). */
  keys: Uint32Array;
  /** Per part of each state, in part order: hash hi, lo. */
  parts: Uint32Array;
  /** New part values: their hashes (hi, lo pairs), and the values (structured clone). */
  newHashes: Uint32Array;
  newValues: unknown[];
}

/** A growable array indexed by a local id. */
function grown(a: Uint32Array<ArrayBuffer>, id: number): Uint32Array<ArrayBuffer> {
  if (id < a.length) return a;
  const next = new Uint32Array(Math.max(id + 1, a.length * 2));
  next.set(a);
  return next;
}

/** The sending side, per worker: the owner hash of a state, and the batches of states to each peer. */
export class PartSender {
  private readonly content = new ContentHash();
  /** Per local id: its part's hash, and 1 + the peers' bits it was sent to (0: not hashed yet). */
  private his: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  private los: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  private flags: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  private readonly out: Array<{ keys: number[]; parts: number[]; newHashes: number[]; newValues: unknown[] }>;

  /** `keys`: a decoded state's keys, in the encoding's part order. */
  constructor(
    private readonly keys: readonly string[],
    workers: number,
  ) {
    if (workers > 31) throw new Error("portable: at most 31 workers");
    // The collapser writes its ids as a Uint32Array (platform order); PartSender.id reads them little-endian.
    if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error("portable: a little-endian platform is needed");
    this.out = Array.from({ length: workers }, () => ({ keys: [], parts: [], newHashes: [], newValues: [] }));
  }

  /** Local id k of a state's bytes (one little-endian 32-bit id per part), read without making a typed-array view per state. */
  private static id(bytes: Uint8Array, k: number): number {
    const at = 4 * k;
    return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  }

  private check(bytes: Uint8Array): void {
    if (bytes.length !== 4 * this.keys.length) throw new Error(`portable: a state of ${bytes.length} bytes, expected 4 per part (${this.keys.join(", ")})`);
  }

  /** Hashes part k of state s (local id `id`) if not done yet. */
  private part(id: number, s: Record<string, unknown>, k: number): void {
    if (id >= this.flags.length) {
      this.his = grown(this.his, id);
      this.los = grown(this.los, id);
      this.flags = grown(this.flags, id);
    }
    if (this.flags[id] !== 0) return;
    this.content.hash(s[this.keys[k]!]);
    this.his[id] = this.content.hi;
    this.los[id] = this.content.lo;
    this.flags[id] = 1;
  }

  /** The 64-bit content hash of the state ownerHash hashed last: its key in its owner's table, the same in every worker. */
  stateHi = 0;
  stateLo = 0;

  /** The slot hash of the state's content (ownerOf's input), the same in every worker; `bytes` is its local encoding. */
  ownerHash(bytes: Uint8Array, s: unknown): number {
    this.check(bytes);
    const n = this.keys.length;
    let a = SEED_A;
    let b = SEED_B;
    for (let k = 0; k < n; k++) {
      const id = PartSender.id(bytes, k);
      this.part(id, s as Record<string, unknown>, k);
      a = mix(mix(a, this.his[id]!), this.los[id]!);
      b = mix(mix(b, this.los[id]!), this.his[id]!);
    }
    this.stateHi = finish(a, n);
    this.stateLo = finish(b, n);
    return mixSlot(this.stateHi, this.stateLo);
  }

  /** Queues state s, hashed by ownerHash just before, for peer p. */
  add(p: number, bytes: Uint8Array, s: unknown): void {
    const box = this.out[p]!;
    box.keys.push(this.stateHi, this.stateLo);
    const bit = 2 << p;
    for (let k = 0; k < this.keys.length; k++) {
      const id = PartSender.id(bytes, k);
      box.parts.push(this.his[id]!, this.los[id]!);
      if ((this.flags[id]! & bit) === 0) {
        this.flags[id]! |= bit;
        box.newHashes.push(this.his[id]!, this.los[id]!);
        box.newValues.push((s as Record<string, unknown>)[this.keys[k]!]);
      }
    }
  }

  /** The batch for peer p (and its buffers, to transfer); empties the queue. */
  take(p: number): { batch: PortableBatch; transfer: ArrayBuffer[] } {
    const box = this.out[p]!;
    const batch: PortableBatch = { keys: Uint32Array.from(box.keys), parts: Uint32Array.from(box.parts), newHashes: Uint32Array.from(box.newHashes), newValues: box.newValues };
    this.out[p] = { keys: [], parts: [], newHashes: [], newValues: [] };
    return { batch, transfer: [batch.keys.buffer as ArrayBuffer, batch.parts.buffer as ArrayBuffer, batch.newHashes.buffer as ArrayBuffer] };
  }

  get bytes(): number {
    return this.his.byteLength + this.los.byteLength + this.flags.byteLength;
  }
}

/**
 * The receiving side, per worker: the parts its peers sent, and the states
 * rebuilt from them. A part received is a copy (structured clone): once a
 * state holding it has been encoded, `settle` swaps it for the owner's own
 * interned object (from decoding that state), so that later states holding it
 * are encoded by identity, not hashed again field by field.
 */
export class PartReceiver {
  private readonly index = new StateTable(12);
  private readonly values: unknown[] = [];
  /** Per value: 1 once it is the owner's interned object. */
  private settled = new Uint8Array(1024);
  /** The value indices of the state rebuilt last, and whether any is unsettled. */
  private readonly used: Int32Array;
  private unsettled = false;

  constructor(private readonly keys: readonly string[]) {
    this.used = new Int32Array(keys.length);
  }

  /** Takes in a batch's new parts; then `state(i)` rebuilds its states, in order. */
  open(b: PortableBatch): (i: number) => unknown {
    for (let i = 0; i < b.newValues.length; i++) {
      // The first value with a hash stays.
      if (this.index.findOrAdd(b.newHashes[2 * i]!, b.newHashes[2 * i + 1]!, this.values.length) < 0) this.values.push(b.newValues[i]);
    }
    if (this.settled.length < this.values.length) {
      const grown = new Uint8Array(Math.max(this.values.length, this.settled.length * 2));
      grown.set(this.settled);
      this.settled = grown;
    }
    const n = this.keys.length;
    return (i: number) => {
      const s: Record<string, unknown> = {};
      this.unsettled = false;
      for (let k = 0; k < n; k++) {
        const at = 2 * (i * n + k);
        const found = this.index.findOrAdd(b.parts[at]!, b.parts[at + 1]!, -2);
        if (found < 0) throw new Error("portable: a part arrived before its value");
        this.used[k] = found;
        if (this.settled[found] === 0) this.unsettled = true;
        s[this.keys[k]!] = this.values[found];
      }
      return s;
    };
  }

  /** Whether the state rebuilt last holds a part not yet settled (then decode it and call settle). */
  get needsSettle(): boolean {
    return this.unsettled;
  }

  /** `decoded`: the state rebuilt last, decoded from its local encoding (its parts are the interned objects). */
  settle(decoded: unknown): void {
    const rec = decoded as Record<string, unknown>;
    for (let k = 0; k < this.keys.length; k++) {
      const v = this.used[k]!;
      if (this.settled[v] === 1) continue;
      this.values[v] = rec[this.keys[k]!];
      this.settled[v] = 1;
    }
    this.unsettled = false;
  }

  get bytes(): number {
    return this.index.bytes + this.settled.byteLength;
  }
}

/** The keys of a model's decoded states, in part order (from its first initial state). */
export function partKeys(decoded: unknown): string[] {
  if (typeof decoded !== "object" || decoded === null || Array.isArray(decoded)) throw new Error("portable: a model with a local encoding must decode its states as records of parts");
  return Object.keys(decoded);
}
