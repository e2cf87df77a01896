/**
 * Growable typed arrays for per-state data kept in discovery order: parent
 * links, packed states, the bytes of generic states, liveness edges. Each
 * doubles when full, so appending is amortised O(1) and nothing is allocated
 * per state.
 */

export class U32List {
  data: Uint32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Uint32Array(capacity);
  }
  /** Bytes allocated (capacity, not length). */
  get bytes(): number {
    return this.data.byteLength;
  }
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  private grow(min: number): void {
    const next = new Uint32Array(Math.max(min, this.data.length * 2));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
}

export class F64List {
  data: Float64Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Float64Array(capacity);
  }
  /** Bytes allocated (capacity, not length). */
  get bytes(): number {
    return this.data.byteLength;
  }
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  private grow(min: number): void {
    const next = new Float64Array(Math.max(min, this.data.length * 2));
    next.set(this.data.subarray(0, this.length));
    this.data = next;
  }
}

/** Variable-length byte strings appended end to end; string i is bytes [start[i], start[i+1]). */
export class ByteArena {
  private buf = new Uint8Array(1 << 16);
  private used = 0;
  private readonly starts = new F64List();

  /** Bytes allocated (capacity, not length). */
  get bytes(): number {
    return this.buf.byteLength + this.starts.bytes;
  }

  push(bytes: Uint8Array): void {
    if (this.used + bytes.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.used + bytes.length, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.used));
      this.buf = next;
    }
    this.starts.push(this.used);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** A view (not a copy) of string i; valid until the next push. */
  get(i: number): Uint8Array {
    const start = this.starts.data[i]!;
    const end = i + 1 < this.starts.length ? this.starts.data[i + 1]! : this.used;
    return this.buf.subarray(start, end);
  }
}
