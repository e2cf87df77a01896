// A real Prometheus (Debian's package, scripts/install-system-deps.sh) on a
// free port with its own data directory scrapes a real server (MariaDB x2 and
// etcd started here) every second while the test sends transfers of every
// registered protocol, and is asked over its HTTP API: the committed count
// and rate, the p99 from the histogram, the in-doubt gauges with a
// transaction made in doubt by pausing etcd (as test/runtime/in-doubt does),
// the alerting rules (ops/prometheus/rules.yml, `promtool check rules`) loaded
// and, with thresholds lowered to 1 s, firing; and every expression of the
// Grafana dashboard evaluated.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../runtime/server.ts";
import { PROTOCOLS } from "../../spec/protocols/registry.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn } from "../runtime/support.ts";
import { dashboardExprs, exportedNames, forPrometheus, unknownMetrics } from "./promql.ts";

const RULES = new URL("../../ops/prometheus/rules.yml", import.meta.url).pathname;
const DASHBOARD = new URL("../../ops/grafana/speccommit.json", import.meta.url).pathname;
/** A decision write gives up after 2 attempts of 300 ms (test/runtime/in-doubt.test.ts). */
const FLAGS = ["--etcd-prefix", "obs/", "--etcd-timeout-ms", "300", "--attempts-max", "2", "--retry-delay-ms", "50"];
const PER_PROTOCOL = 20;

let cluster: TestCluster;
let server: RunningServer;
let prom: ChildProcess;
let promUrl: string;
let dir: string;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function api(pathAndQuery: string): Promise<any> {
  const res = await fetch(promUrl + pathAndQuery);
  const body = await res.json();
  return body;
}
async function query(expr: string, time?: number): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const body = await api(`/api/v1/query?query=${encodeURIComponent(expr)}${time === undefined ? "" : `&time=${time}`}`);
  if (body.status !== "success") throw new Error(`${expr}: ${JSON.stringify(body)}`);
  return body.data.result;
}
const scalarOf = async (expr: string, time?: number): Promise<number> => {
  const r = await query(expr, time);
  return r.length === 0 ? Number.NaN : Number(r[0]!.value[1]);
};
/** Waits until Prometheus has scraped the server after now (a successful scrape newer than `after`). */
async function scraped(after = Date.now() / 1000): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await query("timestamp(up)");
    if (r.length > 0 && Number(r[0]!.value[1]) > after + 0.01 && Number((await query("up"))[0]!.value[1]) === 1) return;
    await sleep(200);
  }
  throw new Error("Prometheus did not scrape the server");
}

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, lockWaitTimeoutS: 5 });
  server = await serverOn(cluster, FLAGS);
  dir = mkdtempSync(path.join(os.tmpdir(), "speccommit-prom-"));
  // The repository's rules, and a copy with every threshold lowered to 1 s so that the test can see them fire.
  const rules = readFileSync(RULES, "utf8");
  const lowered = rules.replace("name: speccommit", "name: speccommit-test").replace(/alert: (\w+)/g, "alert: $1Test").replace(/> \d+$/gm, "> 1");
  expect(lowered.match(/> 1$/gm)?.length).toBe(4);
  writeFileSync(path.join(dir, "rules-test.yml"), lowered);
  const target = new URL(server.url).host;
  writeFileSync(
    path.join(dir, "prometheus.yml"),
    [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      `rule_files: [${JSON.stringify(RULES)}, ${JSON.stringify(path.join(dir, "rules-test.yml"))}]`,
      "scrape_configs:",
      `  - { job_name: speccommit, metrics_path: /metrics, static_configs: [{ targets: [${JSON.stringify(target)}] }] }`,
    ].join("\n"),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prom = spawn("prometheus", [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${promUrl}/-/ready`)).ok) break;
    } catch {}
    if (i > 100) throw new Error("Prometheus did not start");
    await sleep(100);
  }
});

afterAll(async () => {
  prom?.kill("SIGKILL");
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const transfer = (protocol: string, i: number) =>
  request(server.url, "POST", "/transfer", {
    json: { protocol, ops: [{ shard_id: "shard-a", account_id: 1 + (i % 50), delta: -1 }, { shard_id: "shard-b", account_id: 101 + (i % 50), delta: 1 }] },
  });

describe("a real Prometheus scraping the server", () => {
  it("promtool accepts the rules file", () => {
    expect(execFileSync("promtool", ["check", "rules", RULES], { encoding: "utf8" })).toMatch(/SUCCESS: 4 rules found/);
  });

  it("counts the commits the test made, gives a finite p99, and shows the in-doubt transaction and its age; the alerts fire", async () => {
    // One transfer per protocol makes every series exist before the counted load.
    for (const p of PROTOCOLS) expect((await transfer(p, 0)).body.status).toBe("committed");
    await scraped();
    const t1 = Date.now() / 1000;
    await scraped(t1);
    const sent = new Map<string, number>();
    await Promise.all(
      [0, 1, 2, 3].map(async (lane) => {
        for (let i = lane; i < PER_PROTOCOL * PROTOCOLS.length; i += 4) {
          const p = PROTOCOLS[i % PROTOCOLS.length]!;
          const r = await transfer(p, i);
          if (r.body.status === "committed") sent.set(p, (sent.get(p) ?? 0) + 1);
        }
      }),
    );
    const t2 = Date.now() / 1000;
    await scraped(t2);
    const t3 = Date.now() / 1000;
    for (const p of PROTOCOLS) {
      const sel = `speccommit_transactions_total{protocol="${p}",outcome="committed"}`;
      // Exactly what the test sent, between a scrape before the load and one after it.
      expect((await scalarOf(sel, t3)) - (await scalarOf(sel, t1)), p).toBe(sent.get(p));
      expect(sent.get(p), p).toBeGreaterThan(PER_PROTOCOL / 2);
      const window = Math.ceil(t3 - t1) + 1;
      const rate = await scalarOf(`rate(${sel}[${window}s])`, t3);
      expect(rate, p).toBeGreaterThan(0);
      // increase() extrapolates to the window's edges: within a factor of 2 of the exact count.
      const increase = await scalarOf(`increase(${sel}[${window}s])`, t3);
      expect(increase, p).toBeGreaterThan(sent.get(p)! / 2);
      expect(increase, p).toBeLessThan(sent.get(p)! * 2);
      const p99 = await scalarOf(`histogram_quantile(0.99, sum by (le) (rate(speccommit_transaction_duration_seconds_bucket{protocol="${p}",outcome="committed"}[${window}s])))`, t3);
      expect(Number.isFinite(p99), `${p} p99 ${p99}`).toBe(true);
      expect(p99, p).toBeGreaterThan(0);
      expect(p99, p).toBeLessThanOrEqual(10);
      console.log(`${p}: ${sent.get(p)} committed, rate ${rate.toFixed(2)}/s, increase ${increase.toFixed(1)}, p99 ${(p99 * 1000).toFixed(1)} ms`);
    }

    // Nothing in doubt yet: the gauges exist and are 0.
    await server.engine.scanNow();
    await scraped();
    expect(await scalarOf("speccommit_in_doubt_transactions")).toBe(0);
    expect(await scalarOf("speccommit_in_doubt_oldest_seconds")).toBe(0);
    expect(await scalarOf("time() - speccommit_resolver_last_complete_scan_timestamp_seconds")).toBeLessThan(10);

    // A transfer answered in_doubt: etcd paused while it writes its decision.
    const started = Date.now();
    process.kill(cluster.etcd.pid, "SIGSTOP");
    let doubt;
    try {
      doubt = await transfer("2pc", 7);
    } finally {
      process.kill(cluster.etcd.pid, "SIGCONT");
    }
    expect(doubt.body.status).toBe("in_doubt");
    await sleep(2_500);
    await server.engine.scanNow();
    await scraped();
    const asked = Date.now();
    expect(await scalarOf("speccommit_in_doubt_transactions")).toBe(1);
    const age = await scalarOf("speccommit_in_doubt_oldest_seconds");
    // Its age counts from the transaction's start (this process ran it), give or take the scrape interval.
    expect(age).toBeGreaterThan(2.5 - 0.1);
    expect(age).toBeLessThanOrEqual((asked - started) / 1000 + 0.1);
    expect(await scalarOf('max(speccommit_prepared_branches{shard="shard-a"})')).toBeGreaterThanOrEqual(1);
    expect(await scalarOf('max(speccommit_prepared_oldest_seconds{shard="shard-b"})')).toBeGreaterThan(2.4);
    // The lowered copies of the in-doubt and prepared alerts fire (evaluated every second).
    let firing: string[] = [];
    for (let i = 0; i < 50; i++) {
      firing = (await api("/api/v1/alerts")).data.alerts.filter((a: any) => a.state === "firing").map((a: any) => a.labels.alertname);
      if (firing.includes("SpeccommitInDoubtTest") && firing.includes("SpeccommitBranchPreparedTooLongTest")) break;
      await sleep(200);
    }
    expect(firing).toContain("SpeccommitInDoubtTest");
    expect(firing).toContain("SpeccommitBranchPreparedTooLongTest");
    // The repository's own (60 s thresholds) are loaded and healthy, not firing.
    const groups = (await api("/api/v1/rules")).data.groups;
    const repo = groups.find((g: any) => g.name === "speccommit");
    expect(repo.rules.map((r: any) => r.name).sort()).toEqual(["SpeccommitBranchPreparedTooLong", "SpeccommitInDoubt", "SpeccommitProtocolViolation", "SpeccommitResolverNotCaughtUp"]);
    for (const r of repo.rules) expect([r.name, r.health, r.state]).toEqual([r.name, "ok", "inactive"]);

    // The resolver finishes it (presumed abort: no decision record): the gauge goes back to 0.
    for (let i = 0; i < 5; i++) await server.engine.scanNow();
    await scraped();
    expect(await scalarOf("speccommit_in_doubt_transactions")).toBe(0);
    expect(await scalarOf('max(speccommit_prepared_branches{shard="shard-a"})')).toBe(0);
  });

  it("every expression of the Grafana dashboard names exported metrics and evaluates in Prometheus", async () => {
    const exported = exportedNames((await request(server.url, "GET", "/metrics")).body as string);
    const exprs = dashboardExprs(JSON.parse(readFileSync(DASHBOARD, "utf8")));
    expect(exprs.length).toBeGreaterThan(15);
    let withData = 0;
    for (const e of exprs) {
      expect(unknownMetrics(e, exported), e).toEqual([]);
      const r = await query(forPrometheus(e));
      if (r.length > 0) withData++;
    }
    // Most panels have data after the load above (speculation rollbacks, staging recoveries and violations need not).
    expect(withData).toBeGreaterThan(exprs.length / 2);
    // A misspelled expression is refused by the same path.
    await expect(query("sum(rate(speccommit_transactions_total[30s]")).rejects.toThrow(/bad_data|parse/);
  });
});
