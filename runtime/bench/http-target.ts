/**
 * The coordinator over HTTP: POST /transfer on keep-alive connections, the
 * answer mapped to an Outcome (docs/operations.md, "POST /transfer").
 * `protocol` goes into every request when set, so one server can be measured
 * under several protocols in one run.
 */
import http from "node:http";
import type { Outcome, PhaseTotals, TransferTarget } from "./target.ts";
import type { Transfer } from "./workload.ts";

/** Bound on one request: well above the server's own bounds (vote timeout 5 s, statement timeout 10 s). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Errors that prove the request never reached a server. */
const NOT_SENT = new Set(["ECONNREFUSED", "EADDRNOTAVAIL"]);

export interface HttpTargetOptions {
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** The request's "protocol" field; absent: the server's default. */
  readonly protocol?: string;
  /** Keep-alive sockets at most: one per client is enough in a closed loop. */
  readonly sockets: number;
}

export class HttpTarget implements TransferTarget {
  readonly name: string;
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(private readonly opts: HttpTargetOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== "http:") throw new Error(`target URL must be http:// (got ${opts.url})`);
    this.host = u.hostname;
    this.port = Number(u.port || 80);
    this.name = opts.protocol ?? "server";
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.sockets, maxFreeSockets: opts.sockets });
  }

  transfer(t: Transfer): Promise<Outcome> {
    const payload = JSON.stringify(this.opts.protocol !== undefined ? { ops: t.ops, protocol: this.opts.protocol } : { ops: t.ops });
    return new Promise<Outcome>((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          path: "/transfer",
          method: "POST",
          agent: this.agent,
          timeout: REQUEST_TIMEOUT_MS,
          headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => resolve({ kind: "unknown", reason: errorName(e) }));
          res.on("end", () => {
            // An answer the benchmark cannot classify ends the run (load.ts): reject, never throw from the event handler.
            try {
              resolve(outcomeOf(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")));
            } catch (e) {
              reject(e as Error);
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("request timed out"), { code: "TIMEOUT" })));
      req.on("error", (e) => {
        const name = errorName(e);
        resolve(NOT_SENT.has(name) ? { kind: "rejected", reason: name } : { kind: "unknown", reason: name });
      });
      req.end(payload);
    });
  }

  /**
   * From the server's GET /metrics: speccommit_phase_duration_seconds per
   * phase (exec, prepare, log, commit), and speccommit_transaction_duration_seconds
   * of committed transfers as "in_server" (request to reply inside the server).
   */
  async phaseTotals(): Promise<PhaseTotals> {
    return phaseTotalsOf(await this.metricsText(), this.opts.protocol);
  }

  /** The server's GET /metrics page (Prometheus text). */
  metricsText(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: this.host, port: this.port, path: "/metrics", agent: this.agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`GET /metrics answered ${res.statusCode}`));
          resolve(Buffer.concat(chunks).toString("utf8"));
        });
      });
      req.on("timeout", () => req.destroy(new Error("GET /metrics timed out")));
      req.on("error", reject);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

function errorName(e: Error): string {
  return (e as NodeJS.ErrnoException).code ?? e.message;
}

/** The server answered something that is no transfer outcome: a request it refuses (a wrong --protocol) or its own failure. */
export class UnexpectedAnswer extends Error {}

/**
 * 200 committed, 409 aborted, 202 in doubt, 503 rejected, 408 (node's request
 * timeout) unknown. Anything else (400,
 * 422, 500) means the benchmark sent what the server refuses or the server
 * failed: an error that stops the run, not an outcome to count.
 */
export function outcomeOf(status: number, text: string): Outcome {
  // node's own 408 (requestTimeout or headersTimeout passed: an event loop too starved to read the request in time, as
  // on a saturated machine): the server may or may not have started the transfer, as with a lost answer.
  if (status === 408) return { kind: "unknown", reason: "408 request timeout" };
  let body: { tx?: unknown; status?: unknown; reason?: unknown; error?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new UnexpectedAnswer(`POST /transfer answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  const tx = typeof body.tx === "string" ? body.tx : undefined;
  if (status === 200 && body.status === "committed" && tx !== undefined) return { kind: "committed", tx };
  if (status === 409 && body.status === "aborted" && tx !== undefined) return { kind: "aborted", tx, reason: String(body.reason) };
  if (status === 202 && body.status === "in_doubt" && tx !== undefined) return { kind: "in_doubt", tx };
  // Numbers in the message (in-flight counts, ms) would make every refusal its own reason.
  if (status === 503) return { kind: "rejected", reason: `503 ${String(body.error ?? "").replace(/\d+/g, "N")}`.slice(0, 80) };
  throw new UnexpectedAnswer(`POST /transfer answered ${status}: ${text.slice(0, 300)}`);
}

/**
 * A counter of a Prometheus text page by one label, e.g.
 * speccommit_speculations_total by result (hit, rollback, in_doubt: the
 * speculative transactions answered since the server started) or
 * speccommit_compensations_total by who ran them.
 */
export function counterByLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = `${name}{`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const m = /^[^{]+\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const value = new RegExp(`(?:^|,)${label}="([^"]*)"`).exec(m[1]!)?.[1];
    if (value !== undefined) out[value] = (out[value] ?? 0) + Number(m[2]);
  }
  return out;
}

const METRIC_LINE = /^speccommit_(phase|transaction)_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$/;

/** Sums and counts of the phase and transaction histograms in a Prometheus text page, for one protocol (all when undefined). */
function phaseTotalsOf(text: string, protocol: string | undefined): PhaseTotals {
  const out: PhaseTotals = {};
  for (const line of text.split("\n")) {
    const m = METRIC_LINE.exec(line);
    if (m === null) continue;
    const labels = Object.fromEntries([...m[3]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (protocol !== undefined && labels["protocol"] !== protocol) continue;
    let phase: string;
    if (m[1] === "phase") phase = labels["phase"] ?? "?";
    else if (labels["outcome"] === "committed") phase = "in_server";
    else continue;
    const entry = (out[phase] ??= { sum_s: 0, count: 0 });
    if (m[2] === "sum") entry.sum_s += Number(m[4]);
    else entry.count += Number(m[4]);
  }
  return out;
}
