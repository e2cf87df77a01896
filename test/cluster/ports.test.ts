// runtime/cluster/ports.ts freeConsecutivePorts on the real loopback: consecutive ports that bind, below the
// ephemeral range, never one in use, never the same twice in one process.
import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { freeConsecutivePorts } from "../../runtime/cluster/ports.ts";

const listen = (port: number): Promise<Server> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve(s));
  });
const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

/** A random() whose first answers put the first port at each of `firsts` in turn, then anything. */
const aiming = (...firsts: number[]) => {
  const queue = [...firsts];
  return () => {
    const f = queue.shift();
    return f === undefined ? Math.random() : (f - 20_000 + 0.5) / (32_000 - 20_000 - 3);
  };
};

describe("freeConsecutivePorts", () => {
  it("hands out `count` consecutive ports below the ephemeral range, each of which a server can then bind", async () => {
    const first = await freeConsecutivePorts(3);
    expect(first).toBeGreaterThanOrEqual(20_000);
    expect(first + 2).toBeLessThan(32_768);
    const servers = await Promise.all([0, 1, 2].map((i) => listen(first + i)));
    await Promise.all(servers.map(close));
  });

  it("skips a range in which one port is in use, and never hands out the same range twice", async () => {
    // Aims a little apart, somewhere in the range (other test files' servers take ports above it).
    const base = 21_000 + 10 * Math.floor(Math.random() * 900);
    // Hold base + 1: a first aim at base (3 ports) must be given up, the next aim taken.
    const held = await listen(base + 1);
    try {
      expect(await freeConsecutivePorts(3, aiming(base, base + 100))).toBe(base + 100);
    } finally {
      await close(held);
    }
    // base + 100 was handed out: aimed at again, it is skipped.
    expect(await freeConsecutivePorts(3, aiming(base + 100, base + 200))).toBe(base + 200);
  });

  it("refuses a count it cannot mean", async () => {
    await expect(freeConsecutivePorts(0)).rejects.toThrow("count must be 1..100");
    await expect(freeConsecutivePorts(1.5)).rejects.toThrow("count must be 1..100");
  });
});
