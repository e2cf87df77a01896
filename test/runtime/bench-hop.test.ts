// runtime/bench/http-hop.ts: its flags are checked, and a short run measures a real echo process over HTTP.
import { describe, expect, it } from "vitest";
import { measureHop, parseHopArgs } from "../../runtime/bench/http-hop.ts";

describe("bench: the HTTP hop", () => {
  it("checks its flags: defaults, bounds, unknown flags", () => {
    expect(parseHopArgs([])).toEqual({ clients: 1, duration_s: 5, warmup_s: 1 });
    expect(parseHopArgs(["--clients", "64", "--duration", "2", "--warmup", "0"])).toEqual({ clients: 64, duration_s: 2, warmup_s: 0 });
    expect(() => parseHopArgs(["--clients", "0"])).toThrow(/--clients: expected an integer from 1 to 1024 \(got 0\)/);
    expect(() => parseHopArgs(["--duration", "1.5"])).toThrow(/--duration/);
    expect(() => parseHopArgs(["--clients"])).toThrow(/got nothing/);
    expect(() => parseHopArgs(["--rounds", "2"])).toThrow(/unknown flag --rounds/);
  });

  it("measures round trips to a child process that answers every POST /transfer, and that process's CPU", async () => {
    const r = await measureHop({ clients: 2, duration_s: 1, warmup_s: 0 });
    expect(r.clients).toBe(2);
    expect(r.requests).toBeGreaterThan(10);
    expect(r.per_s).toBe(r.requests);
    expect(r.p50_ms).toBeGreaterThan(0);
    expect(r.p99_ms!).toBeGreaterThanOrEqual(r.p50_ms!);
    expect(r.child_cpu_ms_per_request).not.toBeNull();
    expect(r.child_cpu_ms_per_request!).toBeGreaterThan(0);
  });
});
