// What the observe tests check in PromQL: the expressions of the Grafana
// dashboard (ops/grafana/speccommit.json), the metric names an expression
// reads, and the names a server's /metrics text exports.

/** Every panel target's expression, in panel order. */
export function dashboardExprs(dashboard: { panels?: Array<{ targets?: Array<{ expr?: string }> }> }): string[] {
  return (dashboard.panels ?? []).flatMap((p) => (p.targets ?? []).map((t) => t.expr).filter((e): e is string => typeof e === "string"));
}

/** Grafana's variables replaced by what Prometheus accepts. */
export const forPrometheus = (expr: string): string => expr.replaceAll("$__rate_interval", "30s");

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"]);

/** The metric names an expression reads: identifiers that are not functions, keywords, labels or strings. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const id = m[1]!;
    if (m[2] !== undefined || KEYWORDS.has(id.toLowerCase())) continue;
    names.add(id);
  }
  return [...names];
}

/** Series names a Prometheus text exposition exports (histograms and summaries with their _bucket/_sum/_count). */
export function exportedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

/** Names an expression reads that the exposition does not export. */
export const unknownMetrics = (expr: string, exported: Set<string>): string[] => metricNames(expr).filter((n) => !exported.has(n));
