/**
 * A listing concludes absence only for the listed node's transactions
 * (runtime/timestamps.ts `listed`, its `node`): a takeover resolver lists
 * another node's namespace through the same pending set as the node's own
 * resolver, and keys are relative to the namespace, so `tx/<id>` of n2's
 * listing says nothing of n1's records. Found while building the safe-time
 * exchange: without the node, n2's listing dropped n1's pending timestamps
 * (whose records were in n1's namespace), and safe time passed them.
 * In memory, over any mix of pending transactions of three nodes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decisionKey, type LogRecord } from "../../spec/kernel/effects.ts";
import { HybridClock } from "../../runtime/hlc.ts";
import { CommitTimestamps } from "../../runtime/timestamps.ts";

const NODES = ["n1", "n2", "n3"] as const;
const record = (ts: bigint): LogRecord => ({ kind: "decision", decision: "commit", branches: ["a", "b"], commit_ts: ts.toString() }) as unknown as LogRecord;

describe("a listing drops only the listed node's pending timestamps", () => {
  it("whatever is pending, whichever node's namespace is listed and whatever it shows", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ node: fc.constantFrom(...NODES), shown: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(...NODES),
        (txs, listedNode) => {
          const ts = new CommitTimestamps(new HybridClock(500), () => []);
          const ids = txs.map((t, i) => `${t.node}.tx${i}`);
          // Every transaction's record learned from its own namespace's listing: pending.
          for (const n of NODES) ts.listed("tx/", ids.filter((id) => id.startsWith(`${n}.`)).map((id, k) => ({ key: decisionKey(id), value: record(1000n + BigInt(k)), version: 1 })), n);
          expect(ts.pendingCount).toBe(ids.length);
          // One node's namespace listed again, showing some of its records.
          const shown = ids.filter((id, i) => id.startsWith(`${listedNode}.`) && txs[i]!.shown);
          ts.listed("tx/", shown.map((id) => ({ key: decisionKey(id), value: record(1000n), version: 1 })), listedNode);
          const dropped = ids.filter((id, i) => id.startsWith(`${listedNode}.`) && !txs[i]!.shown);
          return ts.pendingCount === ids.length - dropped.length;
        },
      ),
      { numRuns: 500 },
    );
  });

  it("without the node (as before), another node's listing drops this node's pending timestamps", () => {
    const ts = new CommitTimestamps(new HybridClock(500), () => []);
    ts.listed("tx/", [{ key: decisionKey("n1.mine"), value: record(1000n) }], "n1");
    ts.listed("tx/", [], "n2");
    expect(ts.pendingCount).toBe(1);
    ts.listed("tx/", []);
    expect(ts.pendingCount).toBe(0);
  });
});
