import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runtime/config.ts";

const load = (argv: string[], env: Record<string, string> = {}) => {
  const r = loadConfig({ argv: ["--auth", "none", ...argv], env });
  if (r.help) throw new Error("help");
  return r.config;
};

describe("--node and --lease-ttl-ms", () => {
  it("default to n1 and 3000 ms: a single coordinator is unchanged", () => {
    const c = load([]);
    expect(c.node).toBe("n1");
    expect(c.lease_ttl_ms).toBe(3_000);
  });
  it("take a name from the flag or the environment", () => {
    expect(load(["--node", "n2"]).node).toBe("n2");
    expect(load([], { SPECCOMMIT_NODE: "coord-3" }).node).toBe("coord-3");
    expect(load(["--lease-ttl-ms", "5000"]).lease_ttl_ms).toBe(5_000);
  });
  it("refuse a name that would not fit an xid or a key", () => {
    for (const bad of ["", "N1", "n.1", "n/1", "a".repeat(17)]) expect(() => load(["--node=" + bad])).toThrow(ConfigError);
    expect(() => load(["--lease-ttl-ms", "500"])).toThrow(/lease-ttl-ms: 500 is not allowed/);
  });
});
