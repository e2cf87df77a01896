// The names /metrics exposes (runtime/metrics.ts): ours under speccommit_,
// the process and runtime ones under the names every Prometheus client
// library gives them (process_cpu_seconds_total, ...), each name once.
import { describe, expect, it } from "vitest";
import { Metrics } from "../../runtime/metrics.ts";

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
