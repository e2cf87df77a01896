// When OpenTelemetry tracing is on (docs/operations.md, "OpenTelemetry"): the
// flag, the standard OTEL_* variables and their precedence; and that with
// tracing off the SDK is never loaded (a process of its own lists the
// packages node loaded).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../runtime/config.ts";
import { otlpTracesUrl } from "../../runtime/tracing.ts";

const configOf = (argv: string[], env: Record<string, string> = {}) => {
  const r = loadConfig({ argv: ["--auth", "none", ...argv], env });
  if (r.help) throw new Error("help");
  return r.config;
};

describe("tracing configuration", () => {
  it("is off by default, on with --otlp-endpoint, SPECCOMMIT_OTLP_ENDPOINT or the standard variables", () => {
    expect(configOf([]).otlp_traces_url).toBeUndefined();
    expect(configOf(["--otlp-endpoint", "http://collector:4318"]).otlp_traces_url).toBe("http://collector:4318/v1/traces");
    expect(configOf([], { SPECCOMMIT_OTLP_ENDPOINT: "http://c:4318/" }).otlp_traces_url).toBe("http://c:4318/v1/traces");
    expect(configOf([], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" })).toMatchObject({ otlp_traces_url: "http://c:4318/v1/traces", otel_service_name: "speccommit" });
    expect(configOf([], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom", OTEL_SERVICE_NAME: "payments" })).toMatchObject({
      otlp_traces_url: "http://c:4318/custom",
      otel_service_name: "payments",
    });
    expect(configOf([], { OTEL_TRACES_EXPORTER: "otlp" }).otlp_traces_url).toBe("http://localhost:4318/v1/traces");
    expect(configOf(["--otlp-endpoint", "http://a:1"], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://b:2" }).otlp_traces_url).toBe("http://a:1/v1/traces");
  });

  it("is off when the standard variables say so, whatever else is set", () => {
    expect(otlpTracesUrl("http://a:1", { OTEL_SDK_DISABLED: "true" })).toBeUndefined();
    expect(otlpTracesUrl(undefined, { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://b:2" })).toBeUndefined();
    expect(otlpTracesUrl(undefined, { OTEL_TRACES_EXPORTER: "console" })).toBeUndefined();
    expect(otlpTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "  " })).toBeUndefined();
  });

  it("refuses an endpoint that is not an http(s) URL, naming the setting", () => {
    expect(() => configOf(["--otlp-endpoint", "collector:4318"])).toThrow(/--otlp-endpoint: "collector:4318" is not allowed.*http\(s\) URL/);
  });

  it("loads no SDK package while off: only @opentelemetry/api, which prom-client loads anyway; starting tracing loads the SDK", () => {
    const script = join(import.meta.dirname, "fixtures", "otel-modules.mts");
    const r = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", timeout: 50_000, cwd: join(import.meta.dirname, "..", "..") });
    expect(r.stderr).toBe("");
    const { off, on } = JSON.parse(r.stdout) as { off: string[]; on: string[] };
    expect(off).toEqual(["@opentelemetry/api"]);
    for (const p of ["@opentelemetry/sdk-trace-base", "@opentelemetry/exporter-trace-otlp-http", "@opentelemetry/resources"]) expect(on).toContain(p);
  });
});
