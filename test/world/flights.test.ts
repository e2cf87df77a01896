/**
 * spec/world/flights.ts's sortFlights: the order Array#sort gives with the
 * same comparison (stable, by the flights' canonical keys), so that worlds
 * with the same flights are the same state, in the same order as ever.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { flightKeys, sortFlights } from "../../spec/world/flights.ts";
import type { Flight } from "../../spec/world/types.ts";

const flight = fc.record({
  owner: fc.integer({ min: -1, max: 2 }),
  fx: fc.oneof(fc.record({ t: fc.constant("timer"), id: fc.constantFrom("a", "b") }), fc.record({ t: fc.constant("xa.prepare"), shard: fc.constantFrom("s1", "s2"), xid: fc.constantFrom("t1", "t2") })),
  orphan: fc.boolean(),
  inc: fc.integer({ min: 0, max: 1 }),
}) as fc.Arbitrary<unknown> as fc.Arbitrary<Flight>;

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
