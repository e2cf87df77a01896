/**
 * The set of visited states: an open-addressing hash table (linear probing)
 * in one growable Uint32Array, three words per slot:
 *
 *   [key high 32 bits, key low 32 bits, state index + 1]
 *
 * The key is the state's 64-bit fingerprint (or its packed value, which is
 * exact). The index is the state's position in discovery (BFS) order; 0 in
 * the third word marks an empty slot, so every 64-bit key is allowed.
 * 12 bytes a slot, at most 70% full before it doubles: about 17-34 bytes per
 * state. JS Set/Map are not used: they stop at 2^24 entries.
 */
import { mixSlot } from "./hash.ts";

const STRIDE = 3;
const MAX_LOAD = 0.7;

export class StateTable {
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  private growAt: number;

  constructor(capacityLog2 = 16) {
    const capacity = 2 ** capacityLog2;
    this.slots = new Uint32Array(capacity * STRIDE);
    this.mask = capacity - 1;
    this.growAt = Math.floor(capacity * MAX_LOAD);
  }

  /** Bytes allocated for the slots. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  get size(): number {
    return this.count;
  }

  /**
   * Returns the index of the state with this key if it is present; otherwise
   * records it with index `index` and returns -1.
   */
  findOrAdd(hi: number, lo: number, index: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let slot = mixSlot(hi, lo) & mask;
    for (;;) {
      const at = slot * STRIDE;
      const stored = slots[at + 2]!;
      if (stored === 0) {
        slots[at] = hi;
        slots[at + 1] = lo;
        slots[at + 2] = index + 1;
        if (++this.count > this.growAt) this.grow();
        return -1;
      }
      if (slots[at] === hi && slots[at + 1] === lo) return stored - 1;
      slot = (slot + 1) & mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    if (capacity * STRIDE > 2 ** 32) throw new Error(`state table cannot grow beyond ${this.mask + 1} slots`);
    const slots = new Uint32Array(capacity * STRIDE);
    const mask = capacity - 1;
    for (let at = 0; at < old.length; at += STRIDE) {
      if (old[at + 2] === 0) continue;
      const hi = old[at]!;
      const lo = old[at + 1]!;
      let slot = mixSlot(hi, lo) & mask;
      while (slots[slot * STRIDE + 2] !== 0) slot = (slot + 1) & mask;
      const to = slot * STRIDE;
      slots[to] = hi;
      slots[to + 1] = lo;
      slots[to + 2] = old[at + 2]!;
    }
    this.slots = slots;
    this.mask = mask;
    this.growAt = Math.floor(capacity * MAX_LOAD);
  }
}

/**
 * The visited set of packed states, which need no index (the packed engines
 * never look one up): two words a slot, [key high 32 bits + 1, key low 32
 * bits]. A packed key is below 2^53, so its high word is below 2^21 and
 * "+ 1" cannot overflow; 0 marks an empty slot. 8 bytes a slot instead of
 * 12: a third less memory traffic on the hottest structure.
 */
export class KeySet {
  private slots: Uint32Array;
  private mask: number;
  private count = 0;
  private growAt: number;

  constructor(capacityLog2 = 16) {
    const capacity = 2 ** capacityLog2;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
    this.growAt = Math.floor(capacity * MAX_LOAD);
  }

  /** Bytes allocated for the slots. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  get size(): number {
    return this.count;
  }

  /**
   * Reads the slot `hash` starts at, and nothing else. Touching the slots of
   * all of a state's successors before probing them lets the CPU fetch those
   * cache lines in parallel (JS has no prefetch instruction; independent
   * loads are the next best thing).
   */
  peek(hash: number): number {
    return this.slots[(hash & this.mask) * 2]!;
  }

  /** Adds the key (hi < 2^21); returns true if it was not there. `hash` is mixSlot(hi, lo). */
  add(hash: number, hi: number, lo: number): boolean {
    const slots = this.slots;
    const mask = this.mask;
    const tag = hi + 1;
    let at = (hash & mask) * 2;
    for (;;) {
      const stored = slots[at]!;
      if (stored === 0) {
        slots[at] = tag;
        slots[at + 1] = lo;
        if (++this.count > this.growAt) this.grow();
        return true;
      }
      if (stored === tag && slots[at + 1] === lo) return false;
      at = (at + 2) & (mask * 2 + 1);
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    if (capacity * 2 > 2 ** 32) throw new Error(`state table cannot grow beyond ${this.mask + 1} slots`);
    const slots = new Uint32Array(capacity * 2);
    const mask = capacity - 1;
    for (let at = 0; at < old.length; at += 2) {
      const tag = old[at]!;
      if (tag === 0) continue;
      const lo = old[at + 1]!;
      let to = (mixSlot(tag - 1, lo) & mask) * 2;
      while (slots[to] !== 0) to = (to + 2) & (mask * 2 + 1);
      slots[to] = tag;
      slots[to + 1] = lo;
    }
    this.slots = slots;
    this.mask = mask;
    this.growAt = Math.floor(capacity * MAX_LOAD);
  }
}
