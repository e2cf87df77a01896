/** The HLC (spec/time/hlc.ts, runtime/hlc.ts) under an injected clock that jumps back and forth. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { HLC_ZERO, LOGICAL_LIMIT, TS_LIMIT, formatTs, now, observe, parseTs, stateOf, tsOf } from "../../spec/time/hlc.ts";
import { ClockSkewError, HybridClock } from "../../runtime/hlc.ts";
import { readable, safeTime } from "../../spec/time/safe.ts";

const BASE = 1_800_000_000_000;
/** A step of the world around a clock: the physical clock moves (back too), a timestamp is issued, or one is observed. */
const stepArb = fc.oneof(
  fc.record({ t: fc.constant("move" as const), dms: fc.integer({ min: -5_000, max: 5_000 }) }),
  fc.record({ t: fc.constant("now" as const) }),
  fc.record({ t: fc.constant("observe" as const), aheadMs: fc.integer({ min: -3_000, max: 3_000 }), logical: fc.integer({ min: 0, max: LOGICAL_LIMIT - 1 }) }),
);

describe("hybrid logical clock", () => {
  it("never issues a timestamp that does not exceed every one issued or observed before, whatever the physical clock does", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 200 }), fc.integer({ min: 0, max: 2_000 }), (steps, skew) => {
        let pt = BASE;
        const clock = new HybridClock(skew, () => pt);
        let floor = -1n;
        for (const s of steps) {
          if (s.t === "move") pt += s.dms;
          else if (s.t === "now") {
            const ts = clock.now();
            expect(ts > floor).toBe(true);
            floor = ts;
          } else {
            const remote = tsOf({ wall: pt + s.aheadMs, logical: s.logical });
            if (s.aheadMs > skew) {
              expect(() => clock.observe(remote)).toThrow(ClockSkewError);
            } else {
              clock.observe(remote);
              if (remote > floor) floor = remote;
            }
          }
          expect(clock.current() >= floor).toBe(true);
        }
      }),
    );
  });

  it("keeps the physical time when it is ahead, and stays within the skew bound of the greatest physical time seen", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1_000, max: 1_000 }), { minLength: 1, maxLength: 100 }), (moves) => {
        let pt = BASE;
        let maxPt = pt;
        const clock = new HybridClock(0, () => pt);
        for (const d of moves) {
          pt += d;
          const ahead = pt > maxPt;
          maxPt = Math.max(maxPt, pt);
          const st = stateOf(clock.now());
          // Past every physical time seen before: the physical time itself.
          if (ahead) expect(st).toEqual({ wall: pt, logical: 0 });
          expect(st.wall).toBeLessThanOrEqual(maxPt + 1);
        }
      }),
    );
  });

  it("refuses an observed timestamp beyond the skew bound with a clear error, and leaves the clock as it was", () => {
    const pt = BASE;
    const clock = new HybridClock(500, () => pt);
    const before = clock.now();
    const remote = tsOf({ wall: pt + 501, logical: 0 });
    expect(() => clock.observe(remote)).toThrow(/501 ms ahead of this server's clock \(hlc_max_skew_ms is 500\)/);
    expect(clock.current()).toBe(before);
    clock.observe(tsOf({ wall: pt + 500, logical: 7 }));
    expect(stateOf(clock.now())).toEqual({ wall: pt + 500, logical: 8 });
  });

  it("moves to the next millisecond when the logical counter is full", () => {
    const c = now({ wall: 10, logical: LOGICAL_LIMIT - 1 }, 3);
    expect(c).toEqual({ wall: 11, logical: 0 });
    expect(observe(HLC_ZERO, { wall: 5, logical: 0 }, 4, 0)).toEqual({ ok: false, err: "SKEW", aheadMs: 1 });
  });

  it("encodes physical_ms * 65536 + logical as a decimal string below 2^63, and parses only those", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: TS_LIMIT - 1n }), (ts) => {
        expect(parseTs(formatTs(ts))).toBe(ts);
        expect(tsOf(stateOf(ts))).toBe(ts);
        const st = stateOf(ts);
        expect(BigInt(st.wall) * 65536n + BigInt(st.logical)).toBe(ts);
      }),
    );
    for (const bad of ["", "-1", "01", "1.5", "1e3", " 1", "9223372036854775808", "abc"]) expect(parseTs(bad)).toBeNull();
    expect(parseTs("9223372036854775807")).toBe(TS_LIMIT - 1n);
  });
});

describe("safe time", () => {
  it("is the clock, lowered below the least pending timestamp; nothing before the first scan", () => {
    expect(safeTime({ clock: 100n, pending: [], ready: false })).toBeNull();
    expect(safeTime({ clock: 100n, pending: [], ready: true })).toBe(100n);
    expect(safeTime({ clock: 100n, pending: [90n, 95n], ready: true })).toBe(89n);
    expect(readable(89n, { clock: 100n, pending: [90n], ready: true })).toBe(true);
    expect(readable(90n, { clock: 100n, pending: [90n], ready: true })).toBe(false);
    expect(readable(101n, { clock: 100n, pending: [], ready: true })).toBe(false);
  });
});
