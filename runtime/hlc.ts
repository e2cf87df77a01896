/**
 * The coordinator process's hybrid logical clock (spec/time/hlc.ts) over the
 * system clock (Date.now, wall-clock ms), or an injected one for tests. One
 * instance per process; every commit timestamp is issued by `now()`, every
 * timestamp seen elsewhere (txlog records, clients' X-Speccommit-Timestamp,
 * the shards' history at start) goes through `observe()`.
 */
import { HLC_ZERO, formatTs, now, observe, stateOf, tsOf, type HlcState } from "../spec/time/hlc.ts";

/** Default bound on how far ahead of this clock an observed timestamp may be (`hlc_max_skew_ms`). */
export const HLC_MAX_SKEW_MS_DEFAULT = 500;

/** An observed timestamp too far ahead of this process's clock. */
export class ClockSkewError extends Error {
  constructor(
    readonly ts: bigint,
    readonly aheadMs: number,
    readonly maxSkewMs: number,
  ) {
    super(`timestamp ${formatTs(ts)} is ${aheadMs} ms ahead of this server's clock (hlc_max_skew_ms is ${maxSkewMs})`);
  }
}

export class HybridClock {
  private state: HlcState = HLC_ZERO;

  constructor(
    readonly maxSkewMs: number = HLC_MAX_SKEW_MS_DEFAULT,
    private readonly physical: () => number = Date.now,
  ) {}

  /** A new timestamp, greater than every one issued or observed before. */
  now(): bigint {
    this.state = now(this.state, this.physical());
    return tsOf(this.state);
  }

  /** The last timestamp issued or observed (every later `now()` is greater). */
  current(): bigint {
    return tsOf(this.state);
  }

  /** Takes in a timestamp seen elsewhere; throws ClockSkewError when it is beyond the skew bound. */
  observe(ts: bigint): void {
    const r = observe(this.state, stateOf(ts), this.physical(), this.maxSkewMs);
    if (!r.ok) throw new ClockSkewError(ts, r.aheadMs, this.maxSkewMs);
    this.state = r.clock;
  }

  /** As observe, for timestamps this process must take in whatever their skew (its own history, records it wrote). */
  observeTrusted(ts: bigint): void {
    const r = observe(this.state, stateOf(ts), Number.MAX_SAFE_INTEGER, 0);
    if (r.ok) this.state = r.clock;
  }
}
