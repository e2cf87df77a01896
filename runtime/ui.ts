/**
 * The operator's page (docs/operations.md, "The page"): GET /ui serves one
 * self-contained HTML document (inline CSS and JS, no build step, nothing
 * fetched from elsewhere); the page polls GET /ui/summary, which this module
 * builds from what the server already knows: the engine's counters and
 * latency histogram by protocol, each shard's health and its prepared
 * branches now (XA RECOVER), the in-doubt list (branches prepared with no
 * coordinator of this process running them; age from when the resolver's
 * scans first saw them) with each transaction's decision record from the
 * log, and the newest transactions. A transaction's
 * sequence diagram and trace come from GET /transactions/:id?format=svg|ndjson.
 */
import { decisionKey, type LogRecord, type ShardId } from "../spec/kernel/effects.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { TxlogEtcd } from "./adapters/txlog-etcd.ts";
import type { Engine, RecentTransaction } from "./engine.ts";
import type { Metrics } from "./metrics.ts";

/** Bounds of one summary: in-doubt transactions listed (the total is counted), recent transactions listed. */
export const UI_IN_DOUBT_MAX = 50;
export const UI_RECENT_MAX = 20;
/** A shard's health probe or a log read that takes longer is shown as not answering. */
const PROBE_TIMEOUT_MS = 2_000;

export interface ProtocolSummary {
  committed: number;
  aborted: number;
  in_doubt: number;
  /** The latency histogram (all outcomes): cumulative counts per upper bound in seconds, as Prometheus keeps them. */
  latency: { buckets: Array<[number, number]>; count: number; sum_s: number };
}

export interface UiSummary {
  at: string;
  in_flight: number;
  protocols: Record<string, ProtocolSummary>;
  /** prepared: the shard's prepared branches now (XA RECOVER), null when it did not answer. */
  shards: Array<{ shard: ShardId; reachable: boolean; latency_ms: number | null; error: string | null; prepared: number | null }>;
  resolver: { caught_up: boolean; last_scan: { at: string; complete: boolean } | null; epoch: number | null };
  in_doubt: {
    total: number;
    list: Array<{ tx: string; protocol: string | null; age_s: number | null; prepared_on: string[]; log: LogRecord | null; log_error?: string }>;
  };
  recent: RecentTransaction[];
}

export interface UiDeps {
  engine: Engine;
  metrics: Metrics;
  xa: XaMysql;
  txlog: TxlogEtcd;
  redact: (text: string) => string;
}

export async function uiSummary(d: UiDeps, now_ms: number = Date.now()): Promise<UiSummary> {
  const [protocols, recovered] = await Promise.all([protocolSummaries(d.metrics), Promise.all(d.xa.shards.map((s) => shardNow(d, s)))]);
  // In doubt: prepared on some shard now, and no coordinator of this process running it.
  const byTx = new Map<string, string[]>();
  for (const r of recovered) for (const tx of r.prepared ?? []) if (!d.engine.isRunning(tx)) byTx.set(tx, [...(byTx.get(tx) ?? []), r.summary.shard]);
  const age = (tx: string) => {
    const since = d.metrics.preparedView.firstSeen(tx) ?? Date.parse(d.engine.transaction(tx)?.started_at ?? "");
    return Number.isFinite(since) ? Math.max(0, (now_ms - since) / 1000) : null;
  };
  const doubt = [...byTx].map(([tx, prepared_on]) => ({ tx, prepared_on, age_s: age(tx) })).sort((a, b) => (b.age_s ?? -1) - (a.age_s ?? -1) || (a.tx < b.tx ? -1 : 1));
  const list = await Promise.all(doubt.slice(0, UI_IN_DOUBT_MAX).map((e) => inDoubtEntry(d, e)));
  return {
    at: new Date(now_ms).toISOString(),
    in_flight: d.engine.inFlight,
    protocols,
    shards: recovered.map((r) => r.summary),
    resolver: { caught_up: d.engine.caughtUp, last_scan: d.engine.lastScan, epoch: d.engine.epoch },
    in_doubt: { total: doubt.length, list },
    recent: d.engine.recent(UI_RECENT_MAX),
  };
}

async function protocolSummaries(m: Metrics): Promise<Record<string, ProtocolSummary>> {
  const out: Record<string, ProtocolSummary> = {};
  const of = (p: string) => (out[p] ??= { committed: 0, aborted: 0, in_doubt: 0, latency: { buckets: [], count: 0, sum_s: 0 } });
  for (const v of (await m.transactions.get()).values) {
    const p = of(String(v.labels.protocol));
    const o = String(v.labels.outcome);
    if (o === "committed" || o === "aborted" || o === "in_doubt") p[o] += v.value;
  }
  const buckets = new Map<string, Map<number, number>>();
  for (const v of (await m.duration.get()).values) {
    const p = of(String(v.labels.protocol));
    const name = (v as { metricName?: string }).metricName ?? "";
    if (name.endsWith("_sum")) p.latency.sum_s += v.value;
    else if (name.endsWith("_count")) p.latency.count += v.value;
    else if (name.endsWith("_bucket")) {
      const bound = (v.labels as { le?: string | number }).le;
      const le = bound === "+Inf" ? Infinity : Number(bound);
      const b = buckets.get(String(v.labels.protocol)) ?? new Map<number, number>();
      b.set(le, (b.get(le) ?? 0) + v.value);
      buckets.set(String(v.labels.protocol), b);
    }
  }
  // JSON has no Infinity: the +Inf bucket is the count, so it is left out.
  for (const [p, b] of buckets) out[p]!.latency.buckets = [...b].filter(([le]) => Number.isFinite(le)).sort((x, y) => x[0] - y[0]);
  return out;
}

/** A shard's health and its prepared branches now (XA RECOVER; null when it did not answer in time). */
async function shardNow(d: UiDeps, shard: ShardId): Promise<{ summary: UiSummary["shards"][number]; prepared: string[] | null }> {
  const [h, r] = await Promise.all([withTimeout(d.xa.health(shard), PROBE_TIMEOUT_MS, null), withTimeout(d.xa.recover(shard), PROBE_TIMEOUT_MS, null)]);
  const prepared = r !== null && r.ok ? r.prepared.map((x) => x.tx) : null;
  const count = prepared?.length ?? null;
  if (h === null) return { summary: { shard, reachable: false, latency_ms: null, error: `no answer within ${PROBE_TIMEOUT_MS} ms`, prepared: count }, prepared };
  const error = h.error === undefined || h.error === null ? null : d.redact(h.error);
  return { summary: { shard, reachable: h.reachable, latency_ms: h.latency_ms ?? null, error, prepared: count }, prepared };
}

async function inDoubtEntry(d: UiDeps, e: { tx: string; prepared_on: string[]; age_s: number | null }): Promise<UiSummary["in_doubt"]["list"][number]> {
  const base = { ...e, protocol: d.engine.transaction(e.tx)?.protocol ?? null };
  const key = decisionKey(e.tx);
  const r = await withTimeout(d.txlog.list(key), PROBE_TIMEOUT_MS, null);
  if (r === null || !r.ok) return { ...base, log: null, log_error: r === null ? `etcd did not answer within ${PROBE_TIMEOUT_MS} ms` : "etcd unavailable" };
  return { ...base, log: r.entries.find((x) => x.key === key)?.value ?? null };
}

function withTimeout<T, D>(p: Promise<T>, ms: number, fallback: D): Promise<T | D> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<D>((resolve) => (t = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(t));
}

/** The page. Every value the server sends is put in with textContent (never as HTML); the diagram is an <img>, so nothing in it runs. */
export const UI_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>speccommit</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:20px;margin:.2em 0}h2{font-size:16px;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}.bad{color:#b00;font-weight:bold}.ok{color:#070}.muted{color:#888}
code,pre{font:12px ui-monospace,monospace}pre{background:#fff;border:1px solid #ddd;padding:6px;max-height:24em;overflow:auto}
a{color:#05c;cursor:pointer}#diagram img{max-width:100%;background:#fff;border:1px solid #ddd}
</style></head><body>
<h1>speccommit</h1>
<div>Token <input id="token" type="password" size="30" placeholder="bearer token (scope read)"> <button id="save">use</button>
 <span id="status" class="muted">loading</span></div>
<h2>Throughput and latency by protocol</h2>
<table id="protocols"><thead><tr><th>protocol</th><th>tx/s</th><th>p50 ms (30 s)</th><th>p99 ms (30 s)</th><th>p50 ms (all)</th><th>p99 ms (all)</th><th>committed</th><th>aborted</th><th>in doubt</th></tr></thead><tbody></tbody></table>
<div class="muted">tx/s over the last poll interval; quantiles over the last 30 s of polls and since the server started, as the upper bound of the histogram bucket they fall in</div>
<h2>Shards</h2>
<table id="shards"><thead><tr><th>shard</th><th>health</th><th>latency ms</th><th>prepared branches</th></tr></thead><tbody></tbody></table>
<div id="resolver" class="muted"></div>
<h2>In doubt <span id="doubtcount"></span></h2>
<table id="indoubt"><thead><tr><th>tx</th><th>protocol</th><th>age s</th><th>prepared on</th><th>log record</th></tr></thead><tbody></tbody></table>
<h2>Recent transactions</h2>
<table id="recent"><thead><tr><th>tx</th><th>protocol</th><th>status</th><th>phase</th><th>started</th><th>shards</th></tr></thead><tbody></tbody></table>
<h2>Transaction <span id="txid" class="muted">(pick one)</span></h2>
<div id="diagram"></div><pre id="trace"></pre>
<script>
"use strict";
const POLL_MS = 2000, WINDOW_MS = 30000;
let token = sessionStorage.getItem("speccommit-token") || "";
let prev = null, kept = [];
const $ = (id) => document.getElementById(id);
const headers = () => (token ? { Authorization: "Bearer " + token } : {});
$("save").onclick = () => { token = $("token").value.trim(); sessionStorage.setItem("speccommit-token", token); poll(); };
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
function txCell(tr, tx) { const td = cell(tr, ""); const a = document.createElement("a"); a.textContent = tx; a.onclick = () => show(tx); td.appendChild(a); }
function fill(id, rows, draw) { const body = $(id).tBodies[0]; body.replaceChildren(); for (const r of rows) { const tr = document.createElement("tr"); draw(tr, r); body.appendChild(tr); } }
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  for (const [le, c] of buckets) if (c >= q * total) return le * 1000;
  return null;
}
function minus(now, before) { if (!before) return now; const m = new Map(before); return now.map(([le, c]) => [le, c - (m.get(le) || 0)]); }
function render(s) {
  const dt = prev ? (Date.parse(s.at) - Date.parse(prev.at)) / 1000 : null;
  // The oldest summary of the last 30 s is the base of the windowed quantiles.
  kept = kept.filter((k) => Date.parse(s.at) - Date.parse(k.at) <= WINDOW_MS);
  const base = kept[0];
  fill("protocols", Object.entries(s.protocols).sort(), (tr, [p, v]) => {
    const was = prev && prev.protocols[p];
    const n = v.committed + v.aborted + v.in_doubt, n0 = was ? was.committed + was.aborted + was.in_doubt : 0;
    // The buckets end at the last finite bound (10 s): an answer slower than that counts in n, not in the quantiles.
    const old = base && base.protocols[p];
    // No base yet (first poll): no window. A protocol absent from the base: all its answers came after it.
    const w = !base ? [] : old ? minus(v.latency.buckets, old.latency.buckets) : v.latency.buckets;
    const all = v.latency.buckets;
    const f = (x) => (x === null ? "-" : x.toFixed(1));
    cell(tr, p); cell(tr, dt ? ((n - n0) / dt).toFixed(1) : "-");
    cell(tr, f(quantile(w, 0.5))); cell(tr, f(quantile(w, 0.99))); cell(tr, f(quantile(all, 0.5))); cell(tr, f(quantile(all, 0.99)));
    cell(tr, String(v.committed)); cell(tr, String(v.aborted)); cell(tr, String(v.in_doubt), v.in_doubt ? "bad" : "");
  });
  fill("shards", s.shards, (tr, h) => {
    cell(tr, h.shard); cell(tr, h.reachable ? "up" : "DOWN" + (h.error ? ": " + h.error : ""), h.reachable ? "ok" : "bad");
    cell(tr, h.latency_ms === null ? "-" : h.latency_ms.toFixed(1)); cell(tr, h.prepared === null ? "-" : String(h.prepared));
  });
  $("resolver").textContent = "resolver: " + (s.resolver.caught_up ? "caught up" : "NOT caught up") + ", last scan " + (s.resolver.last_scan ? s.resolver.last_scan.at + (s.resolver.last_scan.complete ? "" : " (incomplete)") : "none") + ", epoch " + s.resolver.epoch + "; in flight " + s.in_flight;
  $("doubtcount").textContent = "(" + s.in_doubt.total + (s.in_doubt.total > s.in_doubt.list.length ? ", oldest " + s.in_doubt.list.length + " shown" : "") + ")";
  fill("indoubt", s.in_doubt.list, (tr, d) => {
    tr.dataset.tx = d.tx;
    txCell(tr, d.tx); cell(tr, d.protocol || "?"); cell(tr, d.age_s === null ? "-" : d.age_s.toFixed(1), d.age_s !== null && d.age_s > 10 ? "bad" : ""); cell(tr, d.prepared_on.join(", "));
    cell(tr, d.log ? JSON.stringify(d.log) : d.log_error ? "unknown: " + d.log_error : "none (no decision written)");
  });
  fill("recent", s.recent, (tr, r) => {
    tr.dataset.tx = r.tx;
    txCell(tr, r.tx); cell(tr, r.protocol); cell(tr, r.status, r.status === "in_doubt" ? "bad" : r.status === "committed" ? "ok" : ""); cell(tr, r.phase); cell(tr, r.started_at); cell(tr, r.shards.join(", "));
  });
  prev = s;
  kept.push(s);
}
async function poll() {
  try {
    const r = await fetch("/ui/summary", { headers: headers() });
    if (!r.ok) { $("status").textContent = "GET /ui/summary: " + r.status + (r.status === 401 || r.status === 403 ? " (paste a token with scope read)" : ""); $("status").className = "bad"; return; }
    render(await r.json());
    $("status").textContent = "updated " + new Date().toLocaleTimeString(); $("status").className = "muted";
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) { $("status").textContent = "cannot reach the server: " + e; $("status").className = "bad"; }
}
async function show(tx) {
  $("txid").textContent = tx; $("txid").className = "";
  history.replaceState(null, "", "?tx=" + encodeURIComponent(tx));
  const p = "/transactions/" + encodeURIComponent(tx);
  const [svg, nd] = await Promise.all([fetch(p + "?format=svg", { headers: headers() }), fetch(p + "?format=ndjson", { headers: headers() })]);
  const d = $("diagram"); d.replaceChildren();
  if (svg.ok) {
    const img = document.createElement("img"); const blob = await svg.blob();
    img.alt = "sequence diagram of " + tx; img.dataset.bytes = String(blob.size);
    img.onload = () => { img.dataset.loaded = "yes"; }; img.src = URL.createObjectURL(blob); d.appendChild(img);
  } else d.textContent = "diagram: " + svg.status + " " + (await svg.text());
  $("trace").textContent = nd.ok ? await nd.text() : "trace: " + nd.status + " " + (await nd.text());
}
$("token").value = token;
const wanted = new URLSearchParams(location.search).get("tx");
if (wanted) show(wanted);
poll();
setInterval(poll, POLL_MS);
</script></body></html>
`;
