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

  get size(): number {
    return this.count;
  }

  /** Bytes held by the table. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /**
   * Returns the index of the state with this key if it is present; otherwise
   * records it with index `index` and returns -1.
   */
  findOrAdd(hi: number, lo: number, index: number): number {
    return this.findOrAddHashed(mixSlot(hi, lo), hi, lo, index);
  }

  /** findOrAdd for a caller that already computed `hash = mixSlot(hi, lo)`. */
  findOrAddHashed(hash: number, hi: number, lo: number, index: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let slot = hash & mask;
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

  /** The index of the state with this key, or -1. */
  find(hi: number, lo: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let slot = mixSlot(hi, lo) & mask;
    for (;;) {
      const at = slot * STRIDE;
      const stored = slots[at + 2]!;
      if (stored === 0) return -1;
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
