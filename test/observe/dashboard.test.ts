// The dashboard's expressions read only metrics the server exports (a fresh
// Metrics registry here; test/observe/prometheus.test.ts reads a live server's
// /metrics and evaluates each one in a real Prometheus), and the check fails
// on a misspelled name.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Metrics } from "../../runtime/metrics.ts";
import { dashboardExprs, exportedNames, metricNames, unknownMetrics } from "./promql.ts";

const dashboard = JSON.parse(readFileSync(new URL("../../ops/grafana/speccommit.json", import.meta.url), "utf8"));

describe("the metric-name check", () => {
  it("finds the metrics of an expression and no functions, labels, keywords or strings", () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, protocol) (rate(speccommit_transaction_duration_seconds_bucket{outcome="x_total"}[$__rate_interval])))')).toEqual(["speccommit_transaction_duration_seconds_bucket"]);
    expect(metricNames("time() - max by (instance) (a_b) / on(job) group_left c offset 5m")).toEqual(["a_b", "c"]);
  });
  it("flags a misspelled metric, passes the exported ones", async () => {
    const exported = exportedNames(await new Metrics().registry.metrics());
    expect(unknownMetrics("sum(rate(speccommit_transaction_total[1m]))", exported)).toEqual(["speccommit_transaction_total"]);
    expect(unknownMetrics("sum(rate(speccommit_transactions_total[1m]))", exported)).toEqual([]);
    expect(unknownMetrics("speccommit_phase_duration_seconds_bucket", exported)).toEqual([]);
  });
});

describe("ops/grafana/speccommit.json", () => {
  it("has the panels the issue asks for, and every expression reads exported metrics only", async () => {
    const titles = dashboard.panels.map((p: { title: string }) => p.title).join(" | ");
    for (const t of [/Throughput/, /Latency/, /Phases/, /In-doubt/, /Prepared branches per shard/, /Resolver actions/, /Speculation hit rate/, /Rollbacks and compensations/]) expect(titles).toMatch(t);
    const exprs = dashboardExprs(dashboard);
    expect(exprs.length).toBeGreaterThan(15);
    const exported = exportedNames(await new Metrics().registry.metrics());
    for (const e of exprs) {
      expect(metricNames(e).length, e).toBeGreaterThan(0);
      expect(unknownMetrics(e, exported), e).toEqual([]);
    }
  });
});
