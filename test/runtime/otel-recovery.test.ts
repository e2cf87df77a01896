// The resolver's OpenTelemetry spans after a kill -9, with the real servers:
// a coordinator (a child process) prepares both branches of a 2PC transfer
// while etcd is paused (so its decision cannot be written), is killed -9, and
// the restarted server's resolver presumes abort and rolls both branches back
// (or, when the decision it had sent lands once etcd resumes, commits both);
// the spans it exports to a real OTLP receiver show that, under one `resolver
// scan`, with the transaction's id.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { preparedBranches } from "../../runtime/bench/audit.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { spanTree, startOtlpReceiver, type OtlpReceiver } from "../support/otlp.ts";
import { balance, closeAgents, inDoubtAfterKill9, request, serverOn } from "./support.ts";

const PREFIX = "otel-recovery/";
let cluster: TestCluster;
let receiver: OtlpReceiver;
let dir: string;
let restarted: RunningServer | undefined;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  receiver = await startOtlpReceiver();
  dir = mkdtempSync(join(tmpdir(), "speccommit-otel-"));
});

afterAll(async () => {
  closeAgents();
  await restarted?.close(1_000);
  await receiver?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("resolver spans", () => {
  it("after kill -9 of a coordinator with both branches prepared: presume_abort and two rollbacks under one resolver scan", async () => {
    const before = [await balance(cluster, "shard-a", 1), await balance(cluster, "shard-b", 101)];
    const { tx, shards } = await inDoubtAfterKill9(cluster, {
      dir,
      prefix: PREFIX,
      ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: 101, delta: 100 }],
      flags: ["--otlp-endpoint", receiver.url],
    });

    // The restart: its first scan finds both branches prepared and no decision record.
    restarted = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--otlp-endpoint", receiver.url]);
    for (let i = 0; i < 5 && (await preparedBranches(shards, XID_FORMAT_ID)).length > 0; i++) await restarted.engine.scanNow();
    expect(await preparedBranches(shards, XID_FORMAT_ID)).toEqual([]);
    await restarted.tracing!.flush();

    const scans = spanTree(receiver.spans).filter((n) => n.span.name === "resolver scan");
    const mine = scans.filter((n) => n.children.some((c) => c.span.attributes["speccommit.tx_id"] === tx));
    expect(mine.length).toBeGreaterThanOrEqual(1);
    const actions = mine.flatMap((n) => n.children).filter((c) => c.span.attributes["speccommit.tx_id"] === tx);
    const shown = actions.map((c) => `${c.span.name}${c.span.attributes["speccommit.shard"] !== undefined ? ` ${c.span.attributes["speccommit.shard"]}` : ""}`);
    // The decision the coordinator had sent when etcd was paused may still be applied once etcd resumes (its
    // request sits in etcd's socket buffer after the kill -9): then the restarted resolver finds COMMIT and
    // commits both branches; otherwise it presumes abort (written first, so that no late coordinator can
    // commit) and rolls both back. Either way the spans say which, and the balances agree with them.
    const committed = shown.some((x) => x.startsWith("resolver commit"));
    if (committed) {
      expect(shown.filter((x) => x.startsWith("resolver commit")).sort()).toEqual(["resolver commit shard-a", "resolver commit shard-b"]);
      expect(shown.some((x) => x.startsWith("resolver rollback") || x === "resolver presume_abort")).toBe(false);
    } else {
      expect(shown[0]).toBe("resolver presume_abort");
      expect(shown.filter((x) => x.startsWith("resolver rollback")).sort()).toEqual(["resolver rollback shard-a", "resolver rollback shard-b"]);
    }
    for (const c of actions) {
      expect(c.span.attributes["speccommit.result"]).toBe("ok");
      expect(c.span.startNs).toBeGreaterThanOrEqual(mine[0]!.span.startNs);
    }
    for (const n of mine) expect(n.span.attributes["speccommit.actions"]).toBe(n.children.length);
    expect(receiver.errors).toEqual([]);
    const after = [await balance(cluster, "shard-a", 1), await balance(cluster, "shard-b", 101)];
    if (committed) {
      // Committed: both branches applied, and durable state says so.
      expect(after).toEqual([before[0]! - 100n, before[1]! + 100n]);
    } else {
      // Rolled back: nothing moved, and durable state says it never committed.
      expect(after).toEqual(before);
      expect((await request(restarted.url, "GET", `/transactions/${tx}`)).status).toBe(404);
    }
  });
});
