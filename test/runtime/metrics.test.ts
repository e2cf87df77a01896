// The names /metrics exposes (runtime/metrics.ts): ours under speccommit_,
// the process and runtime ones under the names every Prometheus client
// library gives them (process_cpu_seconds_total, ...), each name once.
import { describe, expect, it } from "vitest";
import { Children, Metrics } from "../../runtime/metrics.ts";

/** Prometheus metric names (data model: [a-zA-Z_:][a-zA-Z0-9_:]*). */
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

describe("metric names", () => {
  it("are speccommit_*, or prom-client's process_* and nodejs_* unprefixed, each once", async () => {
    const text = await new Metrics().registry.metrics();
    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(20);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) {
      expect(n).toMatch(NAME);
      expect(n).toMatch(/^(speccommit_|process_|nodejs_)/);
      expect(n).not.toMatch(/process_process|^speccommit_process_|^speccommit_nodejs_/);
    }
    for (const standard of ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(names).toContain(standard);
    }
  });
});

describe("cached metric children (Children)", () => {
  it("count what the labels object form counts, under the same series; one lookup per pair, at most 512 pairs kept", async () => {
    const m = new Metrics();
    for (let i = 0; i < 3; i++) m.httpOf.of("/transfer", "200").inc();
    m.http.inc({ route: "/transfer", code: "200" });
    m.phaseOf.of("2pc", "exec").observe(0.002);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^speccommit_http_requests_total\{route="\/transfer",code="200"\} 4$/m);
    expect(text).toMatch(/^speccommit_phase_duration_seconds_count\{protocol="2pc",phase="exec"\} 1$/m);
    let lookups = 0;
    const kids = new Children((a, b) => ({ a, b, n: ++lookups }));
    expect(kids.of("x", "1")).toBe(kids.of("x", "1"));
    expect(lookups).toBe(1);
    // Distinct pairs never share a child, even when their joined text would.
    expect(kids.of("x1", "")).not.toBe(kids.of("x", "1"));
    for (let i = 0; i < 600; i++) kids.of("k", String(i));
    const before = lookups;
    kids.of("k", "10");
    expect(lookups).toBe(before);
    // Past the bound a pair is looked up every time, never kept.
    kids.of("k", "599");
    kids.of("k", "599");
    expect(lookups).toBe(before + 2);
  });
});
