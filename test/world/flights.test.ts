/**
 * spec/world/flights.ts's sortFlights: the order Array#sort gives with the
 * same comparison (stable, by the flights' canonical keys), so that worlds
 * with the same flights are the same state, in the same order as ever.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { dropFencedOrphans, flightKeys, launch, sortFlights, useBaselinePaths } from "../../spec/world/flights.ts";
import { EPOCH_KEY } from "../../spec/kernel/effects.ts";
import { canonicalJson } from "../../spec/env/canonical.ts";
import type { Effect } from "../../spec/kernel/effects.ts";
import type { Flight, World } from "../../spec/world/types.ts";

const flight = fc.record({
  owner: fc.integer({ min: -1, max: 2 }),
  fx: fc.oneof(fc.record({ t: fc.constant("timer"), id: fc.constantFrom("a", "b") }), fc.record({ t: fc.constant("xa.prepare"), shard: fc.constantFrom("s1", "s2"), xid: fc.constantFrom("t1", "t2") })),
  orphan: fc.boolean(),
  inc: fc.integer({ min: 0, max: 1 }),
}) as fc.Arbitrary<unknown> as fc.Arbitrary<Flight>;

describe("flightKeys", () => {
  it("is the flight's canonical JSON, for flights of the four fields in any key order, -0, and anything else", () => {
    const odd = fc.oneof(
      flight,
      flight.map((f) => ({ orphan: f.orphan, owner: f.owner, inc: f.inc, fx: f.fx })),
      flight.map((f) => ({ ...f, owner: -0 })),
      flight.map((f) => ({ ...f, extra: 1 })),
      flight.map((f) => ({ ...f, inc: undefined })),
      flight.map((f) => ({ ...f, inc: 0.5 })),
    ) as fc.Arbitrary<unknown> as fc.Arbitrary<Flight>;
    fc.assert(
      fc.property(fc.array(odd, { maxLength: 6 }), (fs) => {
        const key = flightKeys();
        // Orphaned copies share their effect object.
        for (const f of [...fs, ...fs.map((f) => ({ ...f, orphan: true }))]) expect(key(f)).toBe(canonicalJson(f));
      }),
      { numRuns: 500 },
    );
  });
});

describe("sortFlights", () => {
  it("sorts as Array#sort does by canonical key, keeping equal flights in their order", () => {
    fc.assert(
      fc.property(fc.array(flight, { maxLength: 8 }), (fs) => {
        const key = flightKeys();
        const expected = fs
          .map((f) => [key(f), f] as const)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([, f]) => f);
        const got = sortFlights(fs, key);
        expect(got.length).toBe(fs.length);
        got.forEach((f, i) => expect(f).toBe(expected[i]));
        expect(got).not.toBe(fs);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("launch (binary insertion into the sorted flights)", () => {
  const effect = fc.oneof(
    fc.record({ t: fc.constant("timer"), id: fc.constantFrom("a", "b") }),
    fc.record({ t: fc.constant("xa.prepare"), shard: fc.constantFrom("s1", "s2"), xid: fc.constantFrom("t1", "t2") }),
    fc.record({ t: fc.constant("reply"), tx: fc.constantFrom("t1", "t2"), outcome: fc.constantFrom("committed", "aborted") }),
  ) as fc.Arbitrary<unknown> as fc.Arbitrary<Effect>;
  it("gives the very flights (and what the client heard) that appending and re-sorting gave (useBaselinePaths)", () => {
    fc.assert(
      fc.property(fc.array(flight, { maxLength: 8 }), fc.array(effect, { maxLength: 4 }), fc.integer({ min: -1, max: 2 }), fc.boolean(), (fs, effects, owner, timeouts) => {
        const key = flightKeys();
        const w = { inc: 1, flights: sortFlights(fs, key), told: [null, null] } as unknown as World;
        const opts = { txIndex: (tx: string) => (tx === "t1" ? 0 : 1), timerOff: (id: string) => !timeouts && id === "b", key };
        useBaselinePaths(true);
        const before = launch(w, owner, effects, opts);
        useBaselinePaths(false);
        const now = launch(w, owner, effects, opts);
        expect(now.told).toEqual(before.told);
        expect(now.flights.length).toBe(before.flights.length);
        // Flights are compared by content and order (each launch makes its own new flight objects).
        expect(now.flights.map(key)).toEqual(before.flights.map(key));
        expect(now.flights).toEqual(before.flights);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("dropFencedOrphans", () => {
  const logFlight = fc.record({
    owner: fc.integer({ min: -1, max: 1 }),
    fx: fc.oneof(
      fc.record({ t: fc.constantFrom("log.put", "log.delete"), key: fc.constant("tx/t1"), fence: fc.option(fc.record({ key: fc.constant(EPOCH_KEY), version: fc.integer({ min: 0, max: 2 }) }), { nil: undefined }) }),
      fc.record({ t: fc.constant("xa.prepare"), shard: fc.constant("s1"), xid: fc.constant("t1") }),
    ),
    orphan: fc.boolean(),
    inc: fc.constant(0),
  }) as fc.Arbitrary<unknown> as fc.Arbitrary<Flight>;
  it("drops what the closure-based version dropped, and returns the same world object when nothing is dropped", () => {
    fc.assert(
      fc.property(fc.array(logFlight, { maxLength: 6 }), fc.integer({ min: 0, max: 2 }), (flights, epoch) => {
        const log = { entries: epoch === 0 ? [] : [{ key: EPOCH_KEY, value: { epoch }, version: epoch }] };
        const w = { flights, log } as unknown as World;
        useBaselinePaths(true);
        const before = dropFencedOrphans(w);
        useBaselinePaths(false);
        const now = dropFencedOrphans(w);
        expect(now.flights).toEqual(before.flights);
        expect(now === w).toBe(before === w);
      }),
      { numRuns: 2000 },
    );
  });
});
