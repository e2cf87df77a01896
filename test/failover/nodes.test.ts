// The per-node naming of runtime/nodes.ts: namespaces, transaction ids, and the executors that show a node's
// resolver its own branches and undo rows only (the rule that lets coordinators share shards).
import { describe, expect, it } from "vitest";
import type { Op, RecoverResult, ShardId, TxId, UndoRowView, XaResult } from "../../spec/kernel/effects.ts";
import type { LocalExecutor, XaExecutor } from "../../runtime/adapters/ports.ts";
import { FIRST_NODE, NodeLocal, nodeOfTx, nodePrefix, nodeTxId, NodeXa } from "../../runtime/nodes.ts";

const OK: XaResult = { ok: true };

/** An executor whose shard lists these prepared branches and undo rows, and records what it was asked. */
function shard(prepared: TxId[]): { xa: XaExecutor; local: LocalExecutor; asked: string[] } {
  const asked: string[] = [];
  const xa: XaExecutor = {
    shards: ["shard-a"],
    exec: async (tx: TxId, s: ShardId, _ops: readonly Op[]) => (asked.push(`exec ${tx} ${s}`), OK),
    prepare: async (tx) => (asked.push(`prepare ${tx}`), OK),
    commit: async (tx) => (asked.push(`commit ${tx}`), OK),
    rollback: async (tx) => (asked.push(`rollback ${tx}`), OK),
    recover: async (s): Promise<RecoverResult> => ({ ok: true, prepared: prepared.map((tx) => ({ tx, shard: s })) }),
    connectionOf: () => null,
    kill: async () => OK,
  };
  const rows: UndoRowView[] = prepared.map((tx) => ({ tx, branch: "shard-a", state: "undo", branches: ["shard-a"] }));
  const local = {
    shards: ["shard-a"],
    scan: async () => ({ ok: true as const, rows }),
    apply: async () => ({ ok: true as const }),
    tombstone: async () => ({ ok: true as const }),
    compensate: async () => ({ ok: true as const, applied: true }),
    release: async () => ({ ok: true as const, applied: true }),
  } as unknown as LocalExecutor;
  return { xa, local, asked };
}

describe("node naming", () => {
  it("n1's namespace is the base prefix (a log from before nodes is n1's); another node's is under nodes/", () => {
    expect(nodePrefix("speccommit/", FIRST_NODE)).toBe("speccommit/");
    expect(nodePrefix("speccommit/", "n2")).toBe("speccommit/nodes/n2/");
  });
  it("a transaction id names its node and fits an XA gtrid; a plain UUID is n1's", () => {
    const tx = nodeTxId("coord-12345678ab");
    expect(tx).toMatch(/^coord-12345678ab\.[0-9a-f-]{36}$/);
    expect(tx.length).toBeLessThanOrEqual(64);
    expect(nodeOfTx(tx)).toBe("coord-12345678ab");
    expect(nodeOfTx("5f0c9d1e-3b7a-4c55-9d2e-1b8f0a6c7e21")).toBe("n1");
  });
});

describe("NodeXa and NodeLocal: a node's resolver sees its own branches only", () => {
  const prepared = ["n1.a", "n2.b", "n2.c", "legacy-uuid", "n22.d"];
  it("XA RECOVER lists only the node's branches (n1 also the ids from before nodes)", async () => {
    const { xa } = shard(prepared);
    const of = async (node: string) => {
      const r = await new NodeXa(xa, node).recover("shard-a");
      return r.ok ? r.prepared.map((x) => x.tx) : null;
    };
    expect(await of("n2")).toEqual(["n2.b", "n2.c"]);
    expect(await of("n1")).toEqual(["n1.a", "legacy-uuid"]);
    expect(await of("n22")).toEqual(["n22.d"]);
    expect(await of("n3")).toEqual([]);
  });
  it("a scan lists only the node's undo rows", async () => {
    const { local } = shard(prepared);
    const r = await new NodeLocal(local, "n2").scan("shard-a");
    expect(r.ok ? r.rows.map((x) => x.tx) : null).toEqual(["n2.b", "n2.c"]);
  });
  it("every statement still goes through, for any transaction", async () => {
    const { xa, asked } = shard([]);
    const x = new NodeXa(xa, "n2");
    await x.commit("n1.a", "shard-a");
    await x.rollback("n2.b", "shard-a");
    expect(asked).toEqual(["commit n1.a", "rollback n2.b"]);
  });
  it("a shard that did not answer stays unanswered", async () => {
    const { xa } = shard([]);
    const down: XaExecutor = { ...xa, recover: async () => ({ ok: false, err: "UNAVAILABLE" }) };
    expect(await new NodeXa(down, "n2").recover("shard-a")).toEqual({ ok: false, err: "UNAVAILABLE" });
  });
});
