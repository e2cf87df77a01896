/**
 * Latency samples and their percentiles. Exact (every sample kept, sorted on
 * demand) rather than a bucketed histogram: a run makes at most a few hundred
 * thousand transfers, and exact figures make the floor ratio easy to trust.
 */

/** Samples kept per series; at 8 bytes each this is 40 MB, far beyond any run of this machine (about 2,000 transfers/s). */
export const SAMPLES_MAX = 5_000_000;

export class Latencies {
  private samples = new Float64Array(1024);
  private n = 0;

  get count(): number {
    return this.n;
  }

  add(ms: number): void {
    if (!(ms >= 0)) throw new Error(`latency must be a non-negative number of ms (got ${ms})`);
    if (this.n === this.samples.length) {
      if (this.n >= SAMPLES_MAX) throw new Error(`more than ${SAMPLES_MAX} latency samples: shorten the run`);
      const bigger = new Float64Array(Math.min(SAMPLES_MAX, this.samples.length * 2));
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.n++] = ms;
  }

  /** Adds every sample of `other` (the rounds of one target make one series). */
  addAll(other: Latencies): void {
    for (let i = 0; i < other.n; i++) this.add(other.samples[i]!);
  }

  mean(): number | null {
    if (this.n === 0) return null;
    let sum = 0;
    for (let i = 0; i < this.n; i++) sum += this.samples[i]!;
    return sum / this.n;
  }

  /** Percentiles (0-100) by the nearest-rank method; null when there is no sample. */
  percentiles<K extends number>(ps: readonly K[]): Record<K, number | null> {
    const sorted = this.samples.slice(0, this.n).sort();
    const out = {} as Record<K, number | null>;
    for (const p of ps) {
      if (this.n === 0) {
        out[p] = null;
        continue;
      }
      const rank = Math.max(1, Math.ceil((p / 100) * this.n));
      out[p] = sorted[rank - 1]!;
    }
    return out;
  }
}
