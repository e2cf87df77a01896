/**
 * The chaos run's client: a TransferTarget over several coordinators that
 * gives every transfer its own idempotency key and, when a coordinator does
 * not answer (connection refused or reset, a timeout, 503), sends the same
 * body with the same key to the next coordinator, within a bound. A retry
 * with the key can never apply the transfer twice (docs/operations.md,
 * "Idempotency"), so the ledger counts one outcome per transfer.
 *
 * It also keeps what the audit needs beyond the ledger: the first final
 * answer per key (replayKeys asks again: a key answered two ways is a
 * defect), when definite answers
 * arrived (the share of time some coordinator accepted transfers), and the
 * in-doubt answers with the time until each was settled (asked again with
 * GET /transactions/:id).
 */
import http from "node:http";
import { outcomeOf } from "./http-target.ts";
import type { Outcome, PhaseTotals, TransferTarget } from "./target.ts";
import type { Transfer } from "./workload.ts";

export interface FailoverClientOptions {
  readonly urls: readonly string[];
  /** Prefix of the idempotency keys (unique per run). */
  readonly keyPrefix: string;
  /** Bound on one HTTP request: a frozen coordinator is left after this. */
  readonly requestTimeoutMs: number;
  /** Bound on one transfer, all attempts together; past it the answer counts as lost (unknown). */
  readonly transferTimeoutMs: number;
  /** Pause before the next attempt. */
  readonly retryDelayMs: number;
  readonly sockets: number;
}

/** A final answer to a key: status and transaction id. */
interface KeyAnswer {
  readonly status: "committed" | "aborted";
  readonly tx: string;
}

export interface InDoubtRecord {
  readonly tx: string;
  readonly key: string;
  readonly answeredAt: number;
  /** When a GET /transactions/:id first said committed or aborted; undefined while unknown. */
  settledAt?: number;
  final?: "committed" | "aborted";
}

const IN_DOUBT_POLL_MS = 250;
const IN_DOUBT_POLL_MAX_MS = 120_000;

type Attempt = { kind: "answer"; outcome: Outcome } | { kind: "retry"; reason: string };

export class FailoverClient implements TransferTarget {
  readonly name = "chaos";
  private readonly agent: http.Agent;
  private next = 0;
  private seq = 0;
  private closed = false;
  /** Every final answer per key, in order of arrival. */
  readonly answers = new Map<string, KeyAnswer[]>();
  /** The key and body of each transfer answered committed or aborted, to ask again at the end. */
  readonly bodies = new Map<string, string>();
  /** performance.now() of each committed or aborted answer. */
  readonly definiteAt: number[] = [];
  readonly inDoubt: InDoubtRecord[] = [];
  /** Attempts that went to another coordinator (or the same one again) after a failure, by reason. */
  readonly retries: Record<string, number> = {};
  private readonly pollers: Array<Promise<void>> = [];

  constructor(private readonly o: FailoverClientOptions) {
    if (o.urls.length === 0) throw new Error("FailoverClient: no coordinator URL");
    this.agent = new http.Agent({ keepAlive: true, maxSockets: o.sockets, maxFreeSockets: o.sockets });
  }

  async transfer(t: Transfer): Promise<Outcome> {
    const key = `${this.o.keyPrefix}-${this.seq++}`;
    const body = JSON.stringify({ ops: t.ops, idempotency_key: key });
    const deadline = performance.now() + this.o.transferTimeoutMs;
    let start = this.next++ % this.o.urls.length;
    let last = "none";
    while (performance.now() < deadline && !this.closed) {
      const url = this.o.urls[start % this.o.urls.length]!;
      const a = await this.post(url, body, Math.min(this.o.requestTimeoutMs, Math.max(1, deadline - performance.now())));
      if (a.kind === "answer") return this.record(key, body, a.outcome);
      last = a.reason;
      this.retries[a.reason] = (this.retries[a.reason] ?? 0) + 1;
      start++;
      await new Promise((r) => setTimeout(r, this.o.retryDelayMs));
    }
    return { kind: "unknown", reason: `gave up after ${this.o.transferTimeoutMs} ms (last: ${last})` };
  }

  private record(key: string, body: string, o: Outcome): Outcome {
    if (o.kind === "committed" || o.kind === "aborted") {
      const list = this.answers.get(key) ?? [];
      list.push({ status: o.kind, tx: o.tx });
      this.answers.set(key, list);
      this.bodies.set(key, body);
      this.definiteAt.push(performance.now());
    } else if (o.kind === "in_doubt") {
      const rec: InDoubtRecord = { tx: o.tx, key, answeredAt: performance.now() };
      this.inDoubt.push(rec);
      this.pollers.push(this.pollInDoubt(rec));
    }
    return o;
  }

  /** One POST; an answer that names no outcome (refused, reset, timeout, 503) is a reason to retry. */
  private post(url: string, body: string, timeoutMs: number): Promise<Attempt> {
    const u = new URL(url);
    return new Promise<Attempt>((resolve, reject) => {
      const req = http.request(
        { host: u.hostname, port: Number(u.port), path: "/transfer", method: "POST", agent: this.agent, timeout: timeoutMs, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => resolve({ kind: "retry", reason: errorName(e) }));
          res.on("end", () => {
            try {
              const o = outcomeOf(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"));
              resolve(o.kind === "rejected" ? { kind: "retry", reason: o.reason } : { kind: "answer", outcome: o });
            } catch (e) {
              reject(e as Error);
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("request timed out"), { code: "TIMEOUT" })));
      req.on("error", (e) => resolve({ kind: "retry", reason: errorName(e) }));
      req.end(body);
    });
  }

  /** Asks every coordinator in turn for the transaction until one says committed or aborted (bounded). */
  private async pollInDoubt(rec: InDoubtRecord): Promise<void> {
    const until = rec.answeredAt + IN_DOUBT_POLL_MAX_MS;
    let i = 0;
    while (performance.now() < until && !this.closed) {
      const status = await this.getStatus(this.o.urls[i++ % this.o.urls.length]!, rec.tx);
      if (status === "committed" || status === "aborted") {
        rec.settledAt = performance.now();
        rec.final = status;
        return;
      }
      await new Promise((r) => setTimeout(r, IN_DOUBT_POLL_MS));
    }
  }

  private getStatus(url: string, tx: string): Promise<string | undefined> {
    const u = new URL(url);
    return new Promise((resolve) => {
      const req = http.get({ host: u.hostname, port: Number(u.port), path: `/transactions/${encodeURIComponent(tx)}`, agent: this.agent, timeout: this.o.requestTimeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => resolve(undefined));
        res.on("end", () => {
          try {
            resolve(res.statusCode === 200 ? String((JSON.parse(Buffer.concat(chunks).toString("utf8")) as { status?: unknown }).status) : undefined);
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(undefined));
    });
  }

  /**
   * Sends the body of up to `max` keys answered committed or aborted again,
   * with the same key, to the coordinators in turn: each must answer the
   * first outcome (same status, same tx). Returns the keys answered two ways.
   */
  async replayKeys(max: number): Promise<{ replayed: number; mismatches: string[] }> {
    const mismatches: string[] = [];
    let replayed = 0;
    for (const [key, body] of [...this.bodies].slice(0, max)) {
      const first = this.answers.get(key)![0]!;
      const a = await this.post(this.o.urls[replayed % this.o.urls.length]!, body, this.o.requestTimeoutMs);
      replayed++;
      if (a.kind !== "answer") {
        mismatches.push(`${key}: no answer on replay (${a.reason})`);
        continue;
      }
      const o = a.outcome;
      if (o.kind !== first.status || (o.kind === "committed" || o.kind === "aborted" ? o.tx : "") !== first.tx) {
        mismatches.push(`${key}: first ${first.status} ${first.tx}, replay ${o.kind} ${"tx" in o ? o.tx : ""}`);
      }
    }
    return { replayed, mismatches };
  }

  /** Waits (bounded by the poll bound) until every in-doubt answer was settled or given up on. */
  async settleInDoubt(): Promise<void> {
    await Promise.all(this.pollers);
  }

  async phaseTotals(): Promise<PhaseTotals> {
    return {};
  }

  async close(): Promise<void> {
    this.closed = true;
    this.agent.destroy();
  }
}

function errorName(e: Error): string {
  return (e as NodeJS.ErrnoException).code ?? e.message;
}
