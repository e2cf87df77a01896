// Group commit's settings (runtime/config.ts): batch_max 1..64 (1: no batching; 64 by default, etcd takes at most
// 128 operations in a transaction), batch_wait_ms 0..100 (0 by default: only the writes of one event-loop turn).
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../runtime/config.ts";

const cfg = (argv: string[]) => {
  const r = loadConfig({ argv: ["--auth", "none", ...argv], env: {} });
  if (r.help) throw new Error("unexpected --help");
  return { batch_max: r.config.batch_max, batch_wait_ms: r.config.batch_wait_ms };
};

describe("batch_max and batch_wait_ms", () => {
  it("default to 64 and 0; take any value in range", () => {
    expect(cfg([])).toEqual({ batch_max: 64, batch_wait_ms: 0 });
    expect(cfg(["--batch-max", "1", "--batch-wait-ms", "100"])).toEqual({ batch_max: 1, batch_wait_ms: 100 });
  });

  it("refuse values out of range, naming the setting", () => {
    expect(() => cfg(["--batch-max", "0"])).toThrow(/--batch-max/);
    expect(() => cfg(["--batch-max", "65"])).toThrow(/--batch-max/);
    expect(() => cfg(["--batch-wait-ms", "101"])).toThrow(/--batch-wait-ms/);
  });
});
