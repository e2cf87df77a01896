// The prepared-branch and in-doubt gauges (runtime/metrics.ts PreparedView):
// counts per shard, in doubt only outside the scan's active set, ages from the
// transaction's start when known, otherwise from the first scan that listed it.
import { describe, expect, it } from "vitest";
import { Metrics, PreparedView } from "../../runtime/metrics.ts";

async function values(m: Metrics, name: string): Promise<Array<{ labels: Record<string, unknown>; value: number }>> {
  const metric = m.registry.getSingleMetric(name)!;
  return (await metric.get()).values.map((v) => ({ labels: { ...v.labels }, value: v.value }));
}

describe("PreparedView", () => {
  it("counts prepared branches per shard and in-doubt transactions outside the active set, with their ages", async () => {
    let now = 100_000;
    const m = new Metrics();
    m.preparedView = new PreparedView(() => now);
    const started = new Map([["t1", 90_000]]);
    m.preparedView.listed("shard-a", ["t1", "t2", "live"], ["live"], (tx) => started.get(tx));
    m.preparedView.listed("shard-b", ["t1"], ["live"], () => Number.NaN);
    now = 103_000;
    expect(await values(m, "speccommit_prepared_branches")).toEqual([
      { labels: { shard: "shard-a" }, value: 3 },
      { labels: { shard: "shard-b" }, value: 1 },
    ]);
    expect(await values(m, "speccommit_prepared_oldest_seconds")).toEqual([
      { labels: { shard: "shard-a" }, value: 13 },
      { labels: { shard: "shard-b" }, value: 3 },
    ]);
    expect((await values(m, "speccommit_in_doubt_transactions"))[0]!.value).toBe(2);
    expect((await values(m, "speccommit_in_doubt_oldest_seconds"))[0]!.value).toBe(13);
    // A shard that did not answer keeps its last listing; one that answered empty clears.
    m.preparedView.listed("shard-a", null, [], () => undefined);
    m.preparedView.listed("shard-b", [], [], () => undefined);
    expect((await values(m, "speccommit_in_doubt_transactions"))[0]!.value).toBe(2);
    m.preparedView.listed("shard-a", [], [], () => undefined);
    expect((await values(m, "speccommit_in_doubt_transactions"))[0]!.value).toBe(0);
    expect((await values(m, "speccommit_in_doubt_oldest_seconds"))[0]!.value).toBe(0);
  });
});
