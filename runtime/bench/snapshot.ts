/**
 * `npm run bench -- --snapshots`: snapshot reads (runtime/snapshot.ts) under
 * the benchmark's load. One reader sends GET /snapshot (every shard's total
 * at now) and GET /accounts/:shard/:id (the plain read of one account, the
 * baseline) in turn, for as long as the load runs. Reported: the latency of
 * each (request to answer), the snapshot's wait for safe time (the answer's
 * waited_ms), the ratio of the snapshot's latency to the plain read's, both
 * measured in the same run under the same load, and the load average.
 */
import http from "node:http";
import { loadavg } from "node:os";
import { Latencies } from "./stats.ts";
import type { ShardRange } from "./workload.ts";

export interface SnapshotBenchReport {
  readonly snapshots: number;
  readonly refused: Record<string, number>;
  readonly snapshot_ms: Record<50 | 99, number | null>;
  readonly waited_ms: Record<50 | 99, number | null>;
  readonly plain_read_ms: Record<50 | 99, number | null>;
  /** Snapshot latency / plain read latency, p50 and p99. */
  readonly ratio_to_plain_read: Record<50 | 99, number | null>;
  readonly loadavg_start: number[];
  readonly loadavg_end: number[];
}

function get(agent: http.Agent, url: string): Promise<{ status: number; body: { waited_ms?: unknown } | null; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let body = null;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { waited_ms?: unknown };
        } catch {
          /* counted as refused below */
        }
        resolve({ status: body === null ? 0 : (res.statusCode ?? 0), body, ms: performance.now() - t0 });
      });
      res.on("error", () => resolve({ status: 0, body: null, ms: performance.now() - t0 }));
    });
    req.on("error", () => resolve({ status: 0, body: null, ms: performance.now() - t0 }));
    req.on("timeout", () => req.destroy());
  });
}

/** Starts the reader; `stop()` ends it and gives the report. */
export function startSnapshotProbe(url: string, shards: readonly ShardRange[]): { active: boolean; stop(): Promise<SnapshotBenchReport> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const snap = new Latencies();
  const waited = new Latencies();
  const plain = new Latencies();
  const refused: Record<string, number> = {};
  const loadavg_start = loadavg();
  let stopped = false;
  const probe = {
    /** Reads only while true: the server's rounds, not the floor's. */
    active: true,
    stop: async (): Promise<SnapshotBenchReport> => {
      stopped = true;
      await loop;
      return report();
    },
  };
  const loop = (async () => {
    for (let k = 0; !stopped; k++) {
      if (!probe.active) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const s = shards[k % shards.length]!;
      const r = await get(agent, `${url}/snapshot`);
      if (r.status === 200) {
        snap.add(r.ms);
        waited.add(Number(r.body?.waited_ms ?? 0));
      } else refused[String(r.status)] = (refused[String(r.status)] ?? 0) + 1;
      const p = await get(agent, `${url}/accounts/${s.name}/${s.firstAccountId + (k % (s.lastAccountId - s.firstAccountId + 1))}`);
      if (p.status === 200) plain.add(p.ms);
      else refused[`plain ${p.status}`] = (refused[`plain ${p.status}`] ?? 0) + 1;
    }
  })();
  const report = (): SnapshotBenchReport => {
      agent.destroy();
      const sp = snap.percentiles([50, 99] as const);
      const pp = plain.percentiles([50, 99] as const);
      const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b);
      return {
        snapshots: snap.count,
        refused,
        snapshot_ms: sp,
        waited_ms: waited.percentiles([50, 99] as const),
        plain_read_ms: pp,
        ratio_to_plain_read: { 50: ratio(sp[50], pp[50]), 99: ratio(sp[99], pp[99]) },
        loadavg_start,
        loadavg_end: loadavg(),
      };
  };
  return probe;
}

export function formatSnapshotReport(r: SnapshotBenchReport): string {
  const f = (x: number | null) => (x === null ? "-" : x.toFixed(1));
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  return [
    `snapshot reads under the load (${r.snapshots} served${Object.keys(r.refused).length > 0 ? `, refused ${JSON.stringify(r.refused)}` : ""}):`,
    `  GET /snapshot           p50 ${f(r.snapshot_ms[50])} ms  p99 ${f(r.snapshot_ms[99])} ms`,
    `    of which safe-time wait p50 ${f(r.waited_ms[50])} ms  p99 ${f(r.waited_ms[99])} ms`,
    `  GET /accounts (baseline) p50 ${f(r.plain_read_ms[50])} ms  p99 ${f(r.plain_read_ms[99])} ms`,
    `  ratio snapshot / plain read: p50 ${f(r.ratio_to_plain_read[50])}x  p99 ${f(r.ratio_to_plain_read[99])}x`,
    `  load average: ${la(r.loadavg_start)} at start, ${la(r.loadavg_end)} at end`,
  ].join("\n");
}
