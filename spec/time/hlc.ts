/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks"; Kudu's
 * HybridTime): pure logic, the physical clock passed in by the caller.
 *
 * A clock state is the last timestamp issued or observed, as (wall, logical):
 * wall is milliseconds of the physical clock, logical a counter below
 * LOGICAL_LIMIT. The timestamp it stands for is wall * 65536 + logical, an
 * integer below 2^63 (a bigint: it does not fit a JS double); in JSON and
 * HTTP it travels as a decimal string (formatTs / parseTs), in MariaDB as
 * BIGINT UNSIGNED.
 *
 *   now(c, physical)              a timestamp greater than every one issued
 *                                 or observed before, whatever `physical` does
 *                                 (a clock that jumps back never makes a
 *                                 timestamp go back);
 *   observe(c, remote, physical, skew)
 *                                 the clock afterwards is at least `remote`,
 *                                 so every later `now` is greater; refused
 *                                 (SKEW) when remote's wall is more than
 *                                 `skew` ms ahead of `physical`.
 */

export const LOGICAL_BITS = 16n;
export const LOGICAL_LIMIT = 65_536;
/** Timestamps are below 2^63 (BIGINT UNSIGNED holds them, so does a signed BIGINT). */
export const TS_LIMIT = 1n << 63n;

export interface HlcState {
  /** Physical part, ms (a non-negative integer). */
  readonly wall: number;
  /** Logical part, 0 <= logical < LOGICAL_LIMIT. */
  readonly logical: number;
}

export const HLC_ZERO: HlcState = { wall: 0, logical: 0 };

/** The timestamp a clock state stands for. */
export const tsOf = (c: HlcState): bigint => (BigInt(c.wall) << LOGICAL_BITS) + BigInt(c.logical);

/** The clock state of a timestamp. */
export function stateOf(ts: bigint): HlcState {
  if (ts < 0n || ts >= TS_LIMIT) throw new RangeError(`timestamp out of range: ${ts}`);
  return { wall: Number(ts >> LOGICAL_BITS), logical: Number(ts & BigInt(LOGICAL_LIMIT - 1)) };
}

const before = (a: HlcState, b: HlcState): boolean => a.wall < b.wall || (a.wall === b.wall && a.logical < b.logical);
export const maxState = (a: HlcState, b: HlcState): HlcState => (before(a, b) ? b : a);

/** The successor of a clock state: logical + 1, or the next millisecond when the counter is full. */
const succ = (c: HlcState): HlcState => (c.logical + 1 < LOGICAL_LIMIT ? { wall: c.wall, logical: c.logical + 1 } : { wall: c.wall + 1, logical: 0 });

/** Issues a timestamp: the new clock state is the timestamp issued, greater than `c`. */
export function now(c: HlcState, physical: number): HlcState {
  const pt = Math.max(0, Math.floor(physical));
  return pt > c.wall ? { wall: pt, logical: 0 } : succ(c);
}

export type ObserveResult = { readonly ok: true; readonly clock: HlcState } | { readonly ok: false; readonly err: "SKEW"; readonly aheadMs: number };

/**
 * Takes in a timestamp seen elsewhere (a txlog record, another coordinator, a
 * client): the clock becomes at least `remote`. A remote wall more than
 * `maxSkewMs` ahead of the local physical clock is refused: it would drag
 * this clock (and every timestamp after) into the future.
 */
export function observe(c: HlcState, remote: HlcState, physical: number, maxSkewMs: number): ObserveResult {
  const aheadMs = remote.wall - Math.floor(physical);
  if (aheadMs > maxSkewMs) return { ok: false, err: "SKEW", aheadMs };
  return { ok: true, clock: maxState(c, remote) };
}

/** A timestamp as it travels in JSON and HTTP: a decimal string. */
export const formatTs = (ts: bigint): string => ts.toString(10);

/** Parses a decimal timestamp string; null when it is not one (not digits, leading zeros, 2^63 or more). */
export function parseTs(s: string): bigint | null {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(s)) return null;
  const v = BigInt(s);
  return v < TS_LIMIT ? v : null;
}
