// NodeXa and NodeLocal (runtime/nodes.ts) stand between every engine and the real executors. A wrapper that
// declares fewer parameters than the port silently drops the rest: merging commit timestamps with node
// namespaces did exactly that (NodeLocal.release dropped the speculation's commit_ts, so a released
// speculation's history rows stayed unstamped and snapshots never showed it). This test calls every
// forwarding method with more arguments than any port method takes and requires all of them to arrive.
import { describe, expect, it } from "vitest";
import type { LocalExecutor, XaExecutor } from "../../runtime/adapters/ports.ts";
import { NodeLocal, NodeXa } from "../../runtime/nodes.ts";

/** Methods that filter what they return (and are tested for it in nodes.test.ts); every other one forwards. */
const FILTERING = new Set(["recover", "scan"]);
const ARGS = ["n1.tx", "shard-a", { sentinel: 3 }, 4n, "five", 6] as const;

function recorder(): { inner: object; calls: Array<{ method: string; args: unknown[] }> } {
  const calls: Array<{ method: string; args: unknown[] }> = [];
  const inner = new Proxy({ shards: ["shard-a"] } as Record<string | symbol, unknown>, {
    get: (t, p) => (p in t ? t[p] : (...args: unknown[]) => (calls.push({ method: String(p), args }), Promise.resolve({ ok: true }))),
  });
  return { inner, calls };
}

function forwardingMethods(proto: object): string[] {
  return Object.getOwnPropertyNames(proto).filter((m) => m !== "constructor" && !FILTERING.has(m));
}

describe("node wrappers forward every argument", () => {
  for (const [name, make, proto] of [
    ["NodeXa", (inner: object) => new NodeXa(inner as XaExecutor, "n1"), NodeXa.prototype],
    ["NodeLocal", (inner: object) => new NodeLocal(inner as LocalExecutor, "n1"), NodeLocal.prototype],
  ] as const) {
    it(`${name}: each method passes all its arguments to the executor it wraps`, async () => {
      const methods = forwardingMethods(proto);
      expect(methods.length).toBeGreaterThan(3);
      for (const m of methods) {
        const { inner, calls } = recorder();
        const w = make(inner) as unknown as Record<string, (...a: unknown[]) => unknown>;
        await w[m]!(...ARGS);
        expect(calls, m).toEqual([{ method: m, args: [...ARGS] }]);
      }
    });
  }

  it("catches a wrapper that drops an optional argument (the bug this test is for)", async () => {
    class Dropping extends NodeLocal {
      override release(tx: string, shard: string): ReturnType<LocalExecutor["release"]> {
        return super.release(tx, shard);
      }
    }
    const { inner, calls } = recorder();
    await (new Dropping(inner as LocalExecutor, "n1") as LocalExecutor).release("n1.tx", "shard-a", 7n);
    expect(calls[0]!.args).not.toEqual(["n1.tx", "shard-a", 7n]);
  });
});
