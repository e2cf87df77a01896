/**
 * The trace format (NDJSON) and its sequence diagrams: round trips, errors that
 * name the line, the diagram's structure, SVG rendering with the bundled WASM
 * Graphviz, and the `speccommit trace` command as a user runs it.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { formatTrace, parseTrace, readTrace } from "../../traces/ndjson.ts";
import { toDot, toSvg } from "../../traces/render.ts";
import type { Trace } from "../../spec/kernel/trace.ts";

const run = promisify(execFile);
const sample = new URL("./testdata/twophase-counterexample.ndjson", import.meta.url).pathname;

const small: Trace = {
  header: { source: "checker", model: "Toy", params: { n: 1 }, actors: ["a", "b", "c"], violation: "Safe" },
  steps: [
    { step: 0, actor: "a", input: "Init", effects: [] },
    { step: 1, actor: "a", input: "send", effects: [], sends: [{ id: "m1", from: "a", to: "b", label: "hello" }, { id: "m2", from: "a", to: "c", label: "lost one" }] },
    { step: 2, actor: "b", input: "receive", effects: [], receives: [{ id: "m1", from: "a", to: "b", label: "hello" }] },
  ],
};

describe("NDJSON traces", () => {
  it("round-trips any trace", () => {
    const msg = fc.record({ id: fc.string(), from: fc.string(), to: fc.string(), label: fc.string() });
    const step = fc.record(
      { actor: fc.string(), input: fc.jsonValue(), effects: fc.array(fc.jsonValue()), sends: fc.array(msg), receives: fc.array(msg) },
      { requiredKeys: ["actor", "input", "effects"] },
    );
    const trace = fc.record({ header: fc.record({ source: fc.constantFrom("checker" as const, "simulation" as const, "runtime" as const), model: fc.string() }), steps: fc.array(step).map((ss) => ss.map((x, i) => ({ ...x, step: i }))) });
    fc.assert(
      fc.property(trace, (t) => {
        const back = parseTrace(formatTrace(t as Trace));
        expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(t)));
      }),
      { numRuns: 200 },
    );
  });

  it("keeps a live trace's OpenTelemetry trace id and refuses one that is not a W3C trace id", () => {
    const id = "4bf92f3577b34da6a3ce929d0e0e4736";
    const withId: Trace = { header: { ...small.header, source: "runtime", tx: "t1", trace_id: id }, steps: small.steps };
    expect(parseTrace(formatTrace(withId)).header.trace_id).toBe(id);
    for (const bad of ["4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6", "0".repeat(32), 42]) {
      const text = formatTrace(withId).replace(JSON.stringify(id), JSON.stringify(bad));
      expect(() => parseTrace(text)).toThrow(/header\.trace_id must be a (W3C trace id|string)/);
    }
  });

  it("names the line of a malformed step", () => {
    const text = formatTrace(small).split("\n");
    text[2] = '{"step": 1, "actor": 3}';
    expect(() => parseTrace(text.join("\n"))).toThrow(/line 3/);
  });
});

describe("sequence diagrams", () => {
  it("pins one lifeline per actor and one box per step, and matches messages by id", () => {
    const dot = toDot(small);
    for (const a of ["a", "b", "c"]) expect(dot).toContain(`label="${a}"`);
    expect(dot.split("// the legend")[0]!.match(/pos="/g)?.length).toBe(3 * 2 + 3 + 1 + 1); // heads, feet, steps, one lost marker, where the lost message meets c's lifeline
    expect(dot).toMatch(/a0_1 -> a1_2 \[color="#1f5fa8"[^\]]*label="hello"/);
    // Never received: straight across to c's lifeline, then down it to the marker.
    expect(dot).toMatch(/a0_1 -> wait_l0 \[style=dashed[^\]]*label="lost one"/);
    expect(dot).toMatch(/wait_l0 -> a2_lost \[/);
    expect(dot).toContain("violates Safe");
  });

  it("renders SVG with the bundled Graphviz (no system package)", async () => {
    const svg = await toSvg(await readTrace(sample));
    expect(svg).toMatch(/<svg[\s>]/);
    expect(svg).toContain("TCConsistent");
    expect(svg).toContain(">TM<");
  });
});

describe("speccommit trace", () => {
  const cli = (...args: string[]) => run("node", ["bin/speccommit.js", "trace", ...args], { cwd: new URL("../..", import.meta.url).pathname });

  it("renders a trace file to SVG", async () => {
    const dir = await mkdtemp(join(tmpdir(), "speccommit-trace-"));
    const out = join(dir, "x.svg");
    const { stdout } = await cli("render", sample, "-o", out);
    expect(stdout).toContain("wrote");
    expect(await readFile(out, "utf8")).toMatch(/<svg[\s>]/);
  });

  it("fails with a clear message on a bad file, an unknown option, or a reference model's trace given to validate", async () => {
    const dir = await mkdtemp(join(tmpdir(), "speccommit-trace-"));
    const bad = join(dir, "bad.ndjson");
    await writeFile(bad, '{"header":{"source":"checker"}}\nnot json\n');
    await expect(cli("render", bad)).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/line 2/) });
    await expect(cli("render", sample, "--frobnicate")).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown option/) });
    await expect(cli("render", join(dir, "missing.ndjson"))).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/no such file/) });
    // TwoPhase (TLA+'s reference model) has no roles: its steps are actions, nothing to replay.
    await expect(cli("validate", sample)).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/"TwoPhase": its steps are not role steps/) });
  });

  it("validates traces the engine recorded: 2PC fully (role and environment), parallel by its role; a tampered one fails", async () => {
    const { MemoryTxlog, MemoryXa, Rng, SimClock } = await import("../../runtime/adapters/memory.ts");
    const { Engine } = await import("../../runtime/engine.ts");
    const clock = new SimClock();
    const rng = new Rng(5);
    const balances = new Map([
      ["shard-a", [[1, 1_000] as const]],
      ["shard-b", [[101, 1_000] as const]],
    ]);
    const engine = new Engine({
      adapters: { xa: new MemoryXa(balances, clock, rng), log: new MemoryTxlog(clock, rng), clock },
      shards: ["shard-a", "shard-b"],
      coordinator: { voteTimeoutMs: 200, retryDelayMs: 20, attemptsMax: 3 },
      resolver_interval_ms: 500,
      in_flight_max: 10,
      retain_transactions: 10,
      record_traces: true,
    });
    const scanned = engine.scanNow();
    await clock.run(100);
    expect(await scanned).toBe(true);
    const branches = [
      { shard: "shard-a", ops: [{ account: 1, delta: -10 }] },
      { shard: "shard-b", ops: [{ account: 101, delta: 10 }] },
    ];
    const dir = await mkdtemp(join(tmpdir(), "speccommit-trace-"));
    const files: Record<string, string> = {};
    for (const protocol of ["2pc", "parallel"] as const) {
      const started = engine.submit(branches, protocol);
      await clock.run(clock.now_ms() + 1_000);
      expect(await started.outcome).toEqual({ status: "committed" });
      const view = engine.transaction(started.tx)!;
      files[protocol] = join(dir, `${protocol}.ndjson`);
      await writeFile(files[protocol]!, formatTrace({ header: view.trace!.header, steps: [...view.trace!.steps] }));
    }
    engine.stop();
    expect((await cli("validate", files["2pc"]!)).stdout).toMatch(/valid \(\d+ steps, 8 environment answers allowed by the models\)/);
    expect((await cli("validate", files.parallel!)).stdout).toMatch(/parallel\.coordinator roles reproduce every step .* NOT checked/);
    // A trace whose recorded effects the role would not ask for.
    const trace = parseTrace(await readFile(files["2pc"]!, "utf8"));
    const i = trace.steps.findIndex((x) => x.actor === "coordinator" && (x.effects as Array<{ t: string }>).some((e) => e.t === "xa.prepare"));
    const steps = trace.steps.map((x, j) => (j === i ? { ...x, effects: (x.effects as Array<{ t: string }>).filter((e) => e.t !== "xa.prepare") } : x));
    const tampered = join(dir, "tampered.ndjson");
    await writeFile(tampered, formatTrace({ header: trace.header, steps }));
    await expect(cli("validate", tampered)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/do not reproduce this trace: step \d+ \(coordinator of [0-9a-f-]+\): the role asks for different effects/) });
  });
});
