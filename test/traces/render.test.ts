/**
 * The rules that make a diagram read at a glance (traces/render.ts,
 * docs/traces.md "The diagram"), each on the DOT the renderer writes: the
 * legend and the title's outcome and duration, crash / restart / fence boxes,
 * time down the page for live traces, long runs folded.
 */
import { describe, expect, it } from "vitest";
import { stepKind, timeGapPt, toDot } from "../../traces/render.ts";
import type { Msg, Trace, TraceStep } from "../../spec/kernel/trace.ts";

const msg = (id: string, from: string, to: string, label = id): Msg => ({ id, from, to, label });

/** A live trace: the client asks, the coordinator answers, at the given times (ms since the request). */
function live(times: number[], extra: Partial<TraceStep>[] = []): Trace {
  const steps: TraceStep[] = times.map((at_ms, i) => ({ step: i + 1, actor: i % 2 === 0 ? "coordinator" : "shard-a", input: `s${i + 1}`, label: `s${i + 1}`, effects: [], at_ms, ...extra[i] }));
  return { header: { source: "runtime", model: "twopc.coordinator", actors: ["client", "coordinator", "shard-a"], tx: "t", started_ms: 0 }, steps };
}

/** The box of a step number: its DOT line. */
const box = (dot: string, step: number): string => dot.split("\n").find((l) => new RegExp(`^ {2}a\\d+_\\d+ \\[.*label="${step}\\. `).test(l)) ?? "";
/** A pinned node's y, in points. */
const yOf = (line: string): number => Number(/pos="-?\d+,(-?\d+)!"/.exec(line)?.[1]);
const legendOf = (dot: string): string => dot.split("// the legend")[1] ?? "";

describe("legend and title", () => {
  it("the legend names only the marks the diagram has", () => {
    const plain = legendOf(toDot(live([0, 1])));
    expect(plain).toContain('label="step: number. label"');
    expect(plain).toContain("time down the page: log scale, gaps over 255 ms cut");
    expect(plain).not.toMatch(/crash|restart|fence|folded|never taken|violates/);
    const crashed = live([0, 1, 2, 3], [{}, { input: "crash", label: "CRASH (kill -9)" }, {}, { input: "restart", label: "restart" }]);
    crashed.steps[0]!.sends = [msg("m1", "coordinator", "txlog")];
    const withAll = legendOf(toDot(crashed));
    for (const mark of ["crash (kill -9)", "restart", "never taken"]) expect(withAll).toContain(`label="${mark}"`);
  });

  it("a live trace's title says the outcome the coordinator replied, when, and when the last step ran", () => {
    const t = live([0, 2.5, 8, 15.25], [{}, {}, { effects: [{ t: "reply", tx: "t", outcome: { status: "committed" } }] }]);
    expect(toDot(t)).toMatch(/label="twopc.coordinator[^"]*\\ncommitted in 8\.0 ms, last step at \+15\.3 ms\\n/);
    const aborted = live([0, 3], [{ effects: [{ t: "reply", tx: "t", outcome: { status: "aborted", reason: "conflict" } }] }]);
    expect(toDot(aborted)).toContain("\\naborted (conflict) in 0.0 ms, last step at +3.0 ms\\n");
    expect(toDot(live([0, 700]))).toContain("\\nno reply in the trace, last step at +700.0 ms\\n");
  });

  it("a counterexample's title keeps the violated property and says what the client was told", () => {
    const t: Trace = {
      header: { source: "checker", model: "twopc", violation: "committed_reply_is_durable" },
      steps: [
        { step: 0, actor: "client", input: "Init", effects: [] },
        { step: 1, actor: "coordinator", input: "x", effects: [{ t: "reply", tx: "t1", outcome: { status: "committed" } }] },
      ],
    };
    expect(toDot(t)).toContain('label="twopc\\nviolates committed_reply_is_durable\\nclient told committed\\nchecker trace, 1 step"');
  });
});

describe("crash, restart and fence events", () => {
  it("are told apart from other steps by input, answer and effect", () => {
    const s = (x: Partial<TraceStep>): TraceStep => ({ step: 1, actor: "s1", input: "x", effects: [], ...x });
    expect(stepKind(s({ input: "crash", label: "CRASH (kill -9)" }))).toBe("crash");
    expect(stepKind(s({ actor: "process", input: "crash" }))).toBe("crash");
    expect(stepKind(s({ label: "apply shard-b -> UNAVAILABLE (committed, then CRASH)" }))).toBe("crash");
    expect(stepKind(s({ input: "restart", label: "restart" }))).toBe("restart");
    expect(stepKind(s({ actor: "resolver", effects: [{ t: "xa.kill", shard: "s1", conn: "c1" }] }))).toBe("fence");
    expect(stepKind(s({ actor: "resolver", input: { t: "xa.kill", shard: "s1", conn: "c1", r: { ok: true } } }))).toBe("fence");
    expect(stepKind(s({ label: "KILL shard-a conn 12 -> ok" }))).toBe("fence");
    expect(stepKind(s({ label: "put COMMIT -> FENCED" }))).toBe("fence");
    expect(stepKind(s({ label: "put new epoch -> v1" }))).toBe("fence");
    expect(stepKind(s({ label: "PREPARE s1 -> UNAVAILABLE" }))).toBe("step");
    expect(stepKind(s({ label: "drops dead connection c1", input: "notice" }))).toBe("step");
  });

  it("are drawn distinctly: a crash square with crossed corners, a restart green, a fence amber", () => {
    const t = live([0, 1, 2, 3], [{ label: "KILL shard-a conn 3 -> ok" }, { input: "crash", label: "CRASH (kill -9)" }, {}, { input: "restart", label: "restart" }]);
    const dot = toDot(t);
    expect(box(dot, 1)).toContain('fillcolor="#fdf2c4"');
    expect(box(dot, 2)).toMatch(/style="filled,bold,diagonals".*fillcolor="#f6d5c3"/);
    expect(box(dot, 3)).toContain('style="rounded,filled", fillcolor="#ffffff"');
    expect(box(dot, 4)).toContain('fillcolor="#dff3e4"');
  });
});

describe("time down the page (live traces)", () => {
  it("rows are a row apart, plus a log of the time between them, capped", () => {
    expect([0, 1, 3, 7, 63, 255, 10_000].map(timeGapPt)).toEqual([0, 10, 20, 30, 60, 80, 80]);
    const dot = toDot(live([0, 0, 1, 8, 5_000]));
    const ys = [1, 2, 3, 4, 5].map((n) => yOf(box(dot, n)));
    expect(ys.slice(1).map((y, i) => ys[i]! - y)).toEqual([34, 34 + 10, 34 + 30, 34 + 80]);
  });

  it("a gap cut short says how long it was; checker traces keep even rows", () => {
    const dot = toDot(live([0, 1, 5_000]));
    expect(dot).toMatch(/time_gap_2 \[[^\]]*label="\(4999 ms\)"/);
    expect(dot).not.toContain("time_gap_1 ");
    const checker = toDot({ header: { source: "checker" }, steps: [0, 1, 2].map((n) => ({ step: n, actor: "a", input: `x${n}`, effects: [] })) });
    const ys = [0, 1, 2].map((n) => yOf(box(checker, n)));
    expect([ys[0]! - ys[1]!, ys[1]! - ys[2]!]).toEqual([34, 34]);
    expect(checker).not.toContain("time down the page");
  });
});

describe("long runs folded", () => {
  it("N identical rows in a row are one box marked xN, with the time of the first and the last", () => {
    const t = live([0, 1, 2, 3, 4, 5, 6], [{}, ...Array.from({ length: 5 }, () => ({ actor: "resolver", label: "scan" })), {}]);
    const dot = toDot(t);
    expect(box(dot, 2)).toContain('label="2. scan  x5"');
    expect(box(dot, 2)).toContain("5 times: steps 2, 3, 4, 5, 6");
    for (const n of [3, 4, 5, 6]) expect(box(dot, n)).toBe("");
    expect(dot).toMatch(/time_1 \[[^\]]*label="\+1\.0\.\.\+5\.0"/);
    // The next row is spaced from the run's last time (+5.0 to +6.0: 1 ms), not its first (+1.0).
    expect(yOf(box(dot, 2)) - yOf(box(dot, 7))).toBe(34 + 10);
    expect(dot).toContain('label="runtime trace, 7 steps, tx t, started 1970-01-01T00:00:00.000Z"'.slice(7, -1));
    expect(legendOf(dot)).toContain('label="xN: N identical rows folded"');
  });

  it("a block repeated back to back is folded, and the messages into and out of the run stay drawn", () => {
    // A retry loop: the coordinator asks, the shard says UNAVAILABLE, three times; then ok.
    const steps: TraceStep[] = [{ step: 1, actor: "client", input: "go", label: "go", effects: [], sends: [msg("r", "client", "coordinator")] }];
    for (let i = 0; i < 3; i++) {
      steps.push({ step: steps.length + 1, actor: "coordinator", input: "x", label: "PREPARE s1", effects: [], receives: [i === 0 ? msg("r", "client", "coordinator") : msg(`a${i - 1}`, "s1", "coordinator")], sends: [msg(`q${i}`, "coordinator", "s1")] });
      steps.push({ step: steps.length + 1, actor: "s1", input: "x", label: "PREPARE s1 -> UNAVAILABLE", effects: [], receives: [msg(`q${i}`, "coordinator", "s1")], sends: [msg(`a${i}`, "s1", "coordinator")] });
    }
    steps.push({ step: 8, actor: "coordinator", input: "x", label: "give up", effects: [], receives: [msg("a2", "s1", "coordinator")] });
    const dot = toDot({ header: { source: "simulation", actors: ["client", "coordinator", "s1"] }, steps });
    expect(box(dot, 2)).toContain('label="2. PREPARE s1  x3"');
    expect(box(dot, 3)).toContain('label="3. PREPARE s1 -> UNAVAILABLE  x3"');
    for (const n of [4, 5, 6, 7]) expect(box(dot, n)).toBe("");
    // rows: 0 go, 1 and 2 the folded block, 3 give up. In: client -> row 1; within the first repetition: row 1 -> row 2; out: row 2 -> row 3.
    expect(dot).toMatch(/a0_0 -> a1_1 \[/);
    expect(dot).toMatch(/a1_1 -> a2_2 \[/);
    expect(dot).toMatch(/a2_2 -> a1_3 \[/);
    expect(dot).not.toMatch(/in flight \/ lost|sent before the trace/);
    expect(dot).toContain("simulation trace, 8 steps");
  });

  it("never folds the violating step nor a lasso's cycle", () => {
    const rows = (n: number): TraceStep[] => Array.from({ length: n }, (_, i) => ({ step: i + 1, actor: "a", input: "x", label: "same", effects: [] }));
    const violating = toDot({ header: { source: "checker", violation: "P" }, steps: rows(4) });
    expect(box(violating, 1)).toContain('label="1. same  x3"');
    expect(box(violating, 4)).toContain("violates P");
    const lasso = toDot({ header: { source: "checker", loop: 3 }, steps: rows(5) });
    expect(box(lasso, 1)).toContain('label="1. same  x2"');
    for (const n of [3, 4, 5]) expect(box(lasso, n)).toContain(`label="${n}. same"`);
  });
});
