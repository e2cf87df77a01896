/**
 * Safe time across nodes (spec/time/cluster.ts), in a deterministic
 * in-memory simulation of two coordinator processes (no etcd, no MariaDB:
 * the real exchange runs in test/time/snapshot-nodes.test.ts). Each node has
 * its own clock (they drift apart: one may tick ahead), its pending commit
 * timestamps, and publishes its safe time as runtime/safe-exchange.ts does
 * (clock advanced, then spec/time/safe.ts safeTime, tagged with its lease).
 * Node n2 may die with timestamps pending; n1 then takes it over (learns
 * them, observes them) and covers it once it did. A read at a node is served
 * when its own safe time and `clusterSafeTime` over the published values
 * reach `at`.
 *
 * Property (snapshot stability): no commit is ever stamped at or below a
 * snapshot already served, whatever the interleaving. The mutant `own-only`
 * (a node reads at its own safe time only) breaks it, and fast-check finds
 * the interleaving.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clusterSafeTime, contribution, holdingBack, type ClusterMutant, type ClusterView, type Publication } from "../../spec/time/cluster.ts";
import { safeTime } from "../../spec/time/safe.ts";

type Step =
  | { t: "begin"; node: 0 | 1 }
  | { t: "stamp"; node: 0 | 1 }
  | { t: "tick"; node: 0 | 1; by: number }
  | { t: "publish"; node: 0 | 1 }
  | { t: "read"; node: 0 | 1; back: number }
  | { t: "kill" }
  | { t: "takeover" };

const NODES = ["n1", "n2"] as const;

interface Node {
  clock: bigint;
  pending: bigint[];
  alive: boolean;
  ready: boolean;
}

/** Runs the steps; returns the first violation (a commit stamped at or below a served snapshot), or null. */
function simulate(steps: readonly Step[], mutant?: ClusterMutant): string | null {
  const nodes: Node[] = [
    { clock: 100n, pending: [], alive: true, ready: true },
    { clock: 100n, pending: [], alive: true, ready: true },
  ];
  const published = new Map<string, Publication>();
  const owners = new Map<string, string>();
  let covered = false;
  let servedMax = -1n;
  const view = (): ClusterView => ({
    members: [...NODES],
    alive: new Map(NODES.flatMap((n, i) => (nodes[i]!.alive ? [[n, "lease-1"] as const] : []))),
    owners,
    published,
  });
  for (const s of steps) {
    if (s.t === "kill") {
      nodes[1]!.alive = false;
      continue;
    }
    if (s.t === "takeover") {
      // n1's resolver over n2's namespace: n2's records (its pending timestamps) learned and observed, then covered.
      if (nodes[1]!.alive || covered) continue;
      owners.set("n2", "n1");
      for (const p of nodes[1]!.pending) {
        nodes[0]!.pending.push(p);
        if (p > nodes[0]!.clock) nodes[0]!.clock = p;
      }
      nodes[1]!.pending = [];
      covered = true;
      continue;
    }
    const n = nodes[s.node]!;
    if (!n.alive) continue;
    if (s.t === "begin") {
      n.clock += 1n;
      n.pending.push(n.clock);
    } else if (s.t === "stamp") {
      const ts = n.pending.shift();
      if (ts !== undefined && ts <= servedMax) return `a commit stamped at ${ts} after a snapshot was served at ${servedMax}`;
    } else if (s.t === "tick") {
      n.clock += BigInt(s.by);
    } else if (s.t === "publish") {
      n.clock += 1n;
      const safe = safeTime({ clock: n.clock, pending: n.pending, ready: n.ready })!;
      published.set(NODES[s.node], { node: NODES[s.node], lease: "lease-1", safe, covers: s.node === 0 && covered ? ["n2"] : [] });
    } else {
      // A read at the clock or a little before it (a timestamp a client was given).
      const at = n.clock - BigInt(s.back);
      const local = safeTime({ clock: n.clock, pending: n.pending, ready: n.ready })!;
      const c = clusterSafeTime(view(), NODES[s.node], mutant);
      if (local >= at && c.safe !== null && c.safe >= at && at > servedMax) servedMax = at;
    }
  }
  return null;
}

const node = fc.constantFrom(0 as const, 1 as const);
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant("begin" as const), node }),
  fc.record({ t: fc.constant("stamp" as const), node }),
  fc.record({ t: fc.constant("tick" as const), node, by: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ t: fc.constant("publish" as const), node }),
  fc.record({ t: fc.constant("read" as const), node, back: fc.integer({ min: 0, max: 3 }) }),
  fc.constant({ t: "kill" as const }),
  fc.constant({ t: "takeover" as const }),
);

describe("safe time across nodes (spec/time/cluster.ts, in-memory simulation)", () => {
  it("reads are served (the property is not vacuous)", () => {
    const served = [{ t: "publish", node: 0 }, { t: "publish", node: 1 }, { t: "read", node: 0, back: 0 }] as const;
    expect(simulate(served)).toBeNull();
    expect(simulate([...served, { t: "begin", node: 1 }, { t: "stamp", node: 1 }])).toBeNull();
  });

  it("no commit is stamped at or below a snapshot served, in any interleaving of two nodes, a death and a takeover", () => {
    fc.assert(fc.property(fc.array(step, { minLength: 5, maxLength: 40, size: "max" }), (steps) => simulate(steps) === null), { numRuns: 3_000 });
  });

  it("the mutant own-only (each node reads at its own safe time) is caught", () => {
    // A hand-made one: n2 begins a commit, n1's clock runs ahead and reads; n2 then stamps below it.
    expect(
      simulate(
        [{ t: "publish", node: 1 }, { t: "begin", node: 1 }, { t: "tick", node: 0, by: 5 }, { t: "publish", node: 0 }, { t: "read", node: 0, back: 0 }, { t: "stamp", node: 1 }],
        "own-only",
      ),
    ).toMatch(/stamped at 102 after a snapshot was served at 106/);
    const r = fc.check(fc.property(fc.array(step, { minLength: 5, maxLength: 40, size: "max" }), (steps) => simulate(steps, "own-only") === null), { numRuns: 3_000, seed: 7 });
    expect(r.failed, "fast-check found no counterexample").toBe(true);
  });

  it("each member's contribution: alive with its lease, not published since it started, dead covered, dead holding back, never published", () => {
    const pub = (node: string, lease: string, safe: bigint, covers: string[] = []): Publication => ({ node, lease, safe, covers });
    const v: ClusterView = {
      members: ["n1", "n2", "n3", "n4", "n5"],
      alive: new Map([
        ["n1", "L1"],
        ["n2", "L2b"],
      ]),
      owners: new Map([
        ["n3", "n1"],
        ["n4", "n2"],
      ]),
      published: new Map([
        ["n1", pub("n1", "L1", 50n, ["n3"])],
        ["n2", pub("n2", "L2a", 40n)],
        ["n3", pub("n3", "L3", 10n)],
        ["n4", pub("n4", "L4", 30n)],
      ]),
    };
    expect(contribution("n1", v)).toEqual({ node: "n1", state: "alive", safe: 50n });
    expect(contribution("n2", v)).toEqual({ node: "n2", state: "not_published", safe: null });
    expect(contribution("n3", v)).toEqual({ node: "n3", state: "covered", safe: undefined });
    // n4's owner n2 publishes under a lease it no longer holds: not covered, n4's last value holds back.
    expect(contribution("n4", v)).toEqual({ node: "n4", state: "dead", safe: 30n });
    expect(contribution("n5", v)).toEqual({ node: "n5", state: "dead_never_published", safe: null });
    expect(clusterSafeTime(v, "n1").safe).toBeNull();
    const alive2 = { ...v, members: ["n1", "n3", "n4"], alive: new Map([["n1", "L1"]]) };
    const s = clusterSafeTime(alive2, "n1");
    expect(s.safe).toBe(30n);
    expect(holdingBack(s, 45n).map((c) => c.node)).toEqual(["n4"]);
  });
});
