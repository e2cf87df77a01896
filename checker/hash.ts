/**
 * Fingerprints: 64 bits as two independent 32-bit MurmurHash3 (x86_32) passes
 * over the canonical bytes, with fixed seeds so that every run (and every
 * worker thread) computes the same fingerprint for the same state.
 *
 * With 64-bit fingerprints the probability that two of n distinct states
 * collide (and one is wrongly taken as already seen) is about n^2 / 2^65:
 * 3e-6 for ten million states. Packed states (Model.packed) need no hash at
 * all: the packed integer is its own, exact, fingerprint; `mixSlot` only
 * spreads it over the table.
 */

const SEED_HI = 0x9747b28c;
const SEED_LO = 0x2545f491;

function murmur3(bytes: Uint8Array, seed: number): number {
  let h = seed | 0;
  const n = bytes.length;
  const whole = n & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    // The last 1-3 bytes, little-endian, mixed once (as in MurmurHash3).
    let k = bytes[whole]!;
    if (tail > 1) k |= bytes[whole + 1]! << 8;
    if (tail > 2) k |= bytes[whole + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  return fmix32(h);
}

/** MurmurHash3's finaliser: a bijection on 32 bits with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 64-bit fingerprint of `bytes`, as [high 32 bits, low 32 bits]. */
export function fingerprint(bytes: Uint8Array, out: Uint32Array): void {
  out[0] = murmur3(bytes, SEED_HI) >>> 0;
  out[1] = murmur3(bytes, SEED_LO) >>> 0;
}

/** Table slot hash of a 64-bit key given as two 32-bit halves. */
export function mixSlot(hi: number, lo: number): number {
  return fmix32((lo ^ Math.imul(fmix32(hi), 0x9e3779b1)) >>> 0);
}

export const TWO_POW_32 = 4294967296;

/**
 * The owner of a state from its slot hash (mixSlot): the hash's top bits,
 * scaled to [0, workers). The table indexes slots by the low bits, so one
 * worker's keys still spread over all of its table (up to 2^24 slots per
 * worker without any shared bit when there are 2 workers).
 */
export function ownerOf(hash: number, workers: number): number {
  return Math.floor((hash * workers) / 4294967296);
}
