// runtime/bench/flame.ts on a profile made by hand: where a function's self time comes from (--callers), and the
// command line's errors.
import { describe, expect, it } from "vitest";
import { callersOf, callersTable, parseFlameArgs, topCosts } from "../../runtime/bench/flame.ts";

const frame = (functionName: string, url = "file:///x/runtime/a.ts") => ({ functionName, url, lineNumber: 0 });
// (root) -> a -> w, (root) -> b -> w, (root) -> b -> c -> w; w's self time: 30 under a, 10 under b, 5 under c; b's own: 7.
const profile = {
  nodes: [
    { id: 1, callFrame: frame("(root)", ""), children: [2, 3] },
    { id: 2, callFrame: frame("a"), children: [4] },
    { id: 3, callFrame: frame("b"), children: [5, 6] },
    { id: 4, callFrame: frame("w", "") },
    { id: 5, callFrame: frame("w", "") },
    { id: 6, callFrame: frame("c"), children: [7] },
    { id: 7, callFrame: frame("w", "") },
  ],
  samples: [4, 4, 4, 5, 3, 7],
  timeDeltas: [10, 10, 10, 10, 7, 5],
};

describe("flame.ts", () => {
  it("--callers: a function's self time by the call paths into it, nearest caller first, cut at the depth", () => {
    const deep = callersOf(profile, "w", 6);
    expect(deep.self_us).toBe(45);
    expect(deep.paths.map((p) => [p.path.map((f) => f.split(" ")[0]), p.self_us])).toEqual([
      [["a"], 30],
      [["b"], 10],
      [["c", "b"], 5],
    ]);
    // Depth 1: the paths through b and through c stay apart (their nearest callers differ); the total is the same.
    const near = callersOf(profile, "w", 1);
    expect(near.paths.reduce((s, p) => s + p.self_us, 0)).toBe(45);
    expect(near.paths.map((p) => p.path.length)).toEqual([1, 1, 1]);
    // The shares add up to the function's self time in topCosts.
    expect(topCosts(profile).byFunction.find((f) => f.name === "w")?.self_us).toBe(45);
    expect(callersTable("w", deep, 10)).toContain("| 66.7% | 0 | `a runtime/a.ts:1` |");
    expect(callersTable("nothing", callersOf(profile, "nothing", 3), 10)).toBe('no self time in a function named "nothing"');
  });

  it("the command line: --help, the defaults, and every wrong input named", () => {
    expect(parseFlameArgs(["--help"])).toEqual({ help: true });
    expect(parseFlameArgs(["p.cpuprofile"])).toMatchObject({ help: false, file: "p.cpuprofile", top: 20, depth: 6 });
    expect(parseFlameArgs(["p", "--callers", "writeBuffer", "--depth", "9", "--top", "3"])).toMatchObject({ callers: "writeBuffer", depth: 9, top: 3 });
    expect(() => parseFlameArgs([])).toThrow("no profile given");
    expect(() => parseFlameArgs(["a", "b"])).toThrow("one profile at a time");
    expect(() => parseFlameArgs(["p", "--top", "0"])).toThrow("--top must be a positive integer");
    expect(() => parseFlameArgs(["p", "--depth", "1.5"])).toThrow("--depth must be a positive integer");
    expect(() => parseFlameArgs(["p", "--callers"])).toThrow("--callers needs a value");
    expect(() => parseFlameArgs(["p", "--frobnicate"])).toThrow("unknown option --frobnicate");
  });
});
