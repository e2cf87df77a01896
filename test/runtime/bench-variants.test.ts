// `npm run bench -- --variant ...` (runtime/bench/variants.ts): its options, and the flame graph script
// (runtime/bench/flame.ts) on a small hand-made CPU profile: self and total time per frame, areas, the SVG.
import { describe, expect, it } from "vitest";
import { parseVariantOptions } from "../../runtime/bench/variants.ts";
import { areaOf, callTree, flameSvg, topCosts } from "../../runtime/bench/flame.ts";
import { Latencies } from "../../runtime/bench/stats.ts";
import { mergeLoad, type LoadResult } from "../../runtime/bench/load.ts";

describe("bench --variant options", () => {
  it("reads variants, a checkout per variant, client lists; refuses the rest with the usage", () => {
    const o = parseVariantOptions(["--variant", "off=--batch-max 1", "--variant", "on=", "--variant-bin", "off=/tmp/old", "--clients", "64,256", "--cross-shard", "50"]);
    expect(o.variants).toEqual([
      { name: "off", args: ["--batch-max", "1"], bin: "/tmp/old/bin/speccommit.js" },
      { name: "on", args: [] },
    ]);
    expect(o.clients).toEqual([64, 256]);
    expect(o.cross_shard_share).toBeCloseTo(0.5);
    expect(() => parseVariantOptions(["--clients", "4"])).toThrow(/at least one --variant/);
    expect(() => parseVariantOptions(["--variant", "a=", "--variant", "a=x"])).toThrow(/given twice/);
    expect(() => parseVariantOptions(["--variant", "a=", "--variant-bin", "b=/x"])).toThrow(/no --variant b/);
    expect(() => parseVariantOptions(["--variant", "a=", "--clients", "0"])).toThrow(/--clients/);
    expect(() => parseVariantOptions(["--variant", "a=", "--bogus", "1"])).toThrow(/unknown option --bogus/);
  });
});

describe("abort latency", () => {
  it("is kept apart from commit latency and merged over rounds", () => {
    const part = (aborted: number[]): LoadResult => {
      const latencyAborted = new Latencies();
      for (const ms of aborted) latencyAborted.add(ms);
      const ledger = { committed: new Map(), aborted: new Map(), inDoubt: new Map(), unknown: 0, rejected: 0 };
      return { target: "t", clients: 1, measuredMs: 1, committed: 0, latency: new Latencies(), latencySingle: new Latencies(), latencyCross: new Latencies(), aborts: {}, latencyAborted, inDoubt: 0, rejected: {}, unknown: {}, ledger };
    };
    const a = part([1, 2]);
    const m = mergeLoad(a, { ...part([3]), ledger: a.ledger });
    expect(m.latencyAborted.count).toBe(3);
    expect(m.latencyAborted.percentiles([50])[50]).toBe(2);
    expect(m.latency.count).toBe(0);
  });
});

describe("flame graph", () => {
  // root -> main (spec) -> leaf (runtime); root -> (garbage collector); root -> (idle)
  const profile = {
    nodes: [
      { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 }, children: [2, 4, 5] },
      { id: 2, callFrame: { functionName: "step", url: "file:///x/spec/protocols/twopc/coordinator.ts", lineNumber: 9 }, children: [3] },
      { id: 3, callFrame: { functionName: "query", url: "file:///x/node_modules/mysql2/lib/base/connection.js", lineNumber: 0 }, children: [] },
      { id: 4, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 }, children: [] },
      { id: 5, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 }, children: [] },
    ],
    samples: [2, 3, 3, 4, 5, 5],
    timeDeltas: [100, 200, 300, 50, 1000, 1000],
  };

  it("adds self time per frame and its callees' into its total, by area", () => {
    const tree = callTree(profile);
    expect(tree.total).toBe(2650);
    const step = tree.children.find((c) => c.name.startsWith("step"))!;
    expect(step.self).toBe(100);
    expect(step.total).toBe(600);
    const t = topCosts(profile);
    expect(t.idle_us).toBe(2000);
    expect(t.byArea.find((a) => a.area === "npm:mysql2")!.self_us).toBe(500);
    expect(t.byArea.find((a) => a.area === "spec/protocols")!.self_us).toBe(100);
    expect(areaOf({ functionName: "x", url: "node:net", lineNumber: 0 })).toBe("node");
    expect(areaOf({ functionName: "x", url: "file:///x/runtime/adapters/xa-mysql.ts", lineNumber: 0 })).toBe("runtime/adapters/xa-mysql");
  });

  it("draws busy time only, one box per frame, widths by share", () => {
    const svg = flameSvg(callTree(profile), "t", 650);
    expect(svg).not.toContain("(idle)");
    // Busy: 650 µs over 650 px: step 600 px, query 500 px, GC 50 px.
    expect(svg).toMatch(/<title>step [^<]*\(92\.31%\)<\/title><rect x="0\.00" y="\d+" width="600\.00"/);
    expect(svg).toMatch(/width="500\.00"/);
    expect(svg).toMatch(/<title>\(garbage collector\) \(7\.69%\)<\/title>/);
  });
});

describe("answers the bench counts", () => {
  it("node's 408 is an unknown outcome (may have run), other unexpected answers stop the run", async () => {
    const { outcomeOf, UnexpectedAnswer } = await import("../../runtime/bench/http-target.ts");
    expect(outcomeOf(408, "")).toEqual({ kind: "unknown", reason: "408 request timeout" });
    expect(outcomeOf(200, JSON.stringify({ tx: "a", status: "committed" }))).toEqual({ kind: "committed", tx: "a" });
    expect(() => outcomeOf(500, "")).toThrow(UnexpectedAnswer);
  });
});
