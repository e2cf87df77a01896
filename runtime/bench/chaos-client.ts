/**
 * The chaos run's load target: the failing-over client (runtime/client.ts:
 * one idempotency key per transfer, the same key on the next coordinator
 * after no answer or a 503/502/504/429, bounded by a deadline) as a
 * TransferTarget. A retry with the key never applies the transfer twice
 * (docs/operations.md, "Idempotency"), so the ledger counts one outcome per
 * transfer.
 *
 * It also keeps what the audit needs beyond the ledger: the first final
 * answer per key (replayKeys asks again: a key answered two ways is a
 * defect), when definite answers arrived (the share of time some
 * coordinator accepted transfers), and the in-doubt answers with the time
 * until each was settled (asked again with GET /transactions/:id).
 */
import http from "node:http";
import { FailoverClient, NoAnswer } from "../client.ts";
import { outcomeOf } from "./http-target.ts";
import type { Outcome, PhaseTotals, TransferTarget } from "./target.ts";
import type { Transfer } from "./workload.ts";

export interface ChaosTargetOptions {
  readonly urls: readonly string[];
  /** Prefix of the idempotency keys (unique per run). */
  readonly keyPrefix: string;
  /** Bound on one HTTP request: a frozen coordinator is left after this. */
  readonly requestTimeoutMs: number;
  /** Bound on one transfer, all attempts together; past it the answer counts as lost (unknown). */
  readonly transferTimeoutMs: number;
  /** Pause before the next attempt. */
  readonly retryDelayMs: number;
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
  /** When a GET /transactions/:id first said committed or aborted (or 404: it never committed); undefined while unknown. */
  settledAt?: number;
  final?: "committed" | "aborted";
}

const IN_DOUBT_POLL_MS = 250;
const IN_DOUBT_POLL_MAX_MS = 60_000;

export class ChaosTarget implements TransferTarget {
  readonly name = "chaos";
  private readonly client: FailoverClient;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private seq = 0;
  private closed = false;
  /** The first final answer per key. */
  readonly answers = new Map<string, KeyAnswer>();
  /** The ops of each transfer answered committed or aborted, to send again at the end. */
  readonly bodies = new Map<string, Transfer["ops"]>();
  /** performance.now() of each committed or aborted answer. */
  readonly definiteAt: number[] = [];
  /** The coordinator (URL) that gave each of those answers, same order. */
  readonly definiteUrl: string[] = [];
  readonly inDoubt: InDoubtRecord[] = [];
  /** Transfers answered after more than one attempt, and the attempts beyond the first; transfers no coordinator answered in time. */
  readonly failover = { transfers_retried: 0, extra_attempts: 0, no_answer: 0 };
  private readonly pollers: Array<Promise<void>> = [];

  constructor(private readonly o: ChaosTargetOptions) {
    this.client = new FailoverClient({ urls: o.urls, request_timeout_ms: o.requestTimeoutMs, deadline_ms: o.transferTimeoutMs, retry_delay_ms: o.retryDelayMs });
    // One failing-over client per coordinator to start with, transfers taken in turn: every coordinator gets load (one
    // client alone would send everything to the first URL until it fails).
    this.clients = o.urls.map((_, i) => new FailoverClient({ urls: [...o.urls.slice(i), ...o.urls.slice(0, i)], request_timeout_ms: o.requestTimeoutMs, deadline_ms: o.transferTimeoutMs, retry_delay_ms: o.retryDelayMs }));
  }

  private readonly clients: FailoverClient[];

  async transfer(t: Transfer): Promise<Outcome> {
    const n = this.seq++;
    const key = `${this.o.keyPrefix}-${n}`;
    try {
      const a = await this.clients[n % this.clients.length]!.transfer({ ops: t.ops }, key);
      if (a.attempts > 1) {
        this.failover.transfers_retried++;
        this.failover.extra_attempts += a.attempts - 1;
      }
      return this.record(key, t.ops, outcomeOf(a.status, JSON.stringify(a.body)), a.url);
    } catch (e) {
      if (!(e instanceof NoAnswer)) throw e;
      this.failover.no_answer++;
      return { kind: "unknown", reason: "no coordinator answered in time" };
    }
  }

  private record(key: string, ops: Transfer["ops"], o: Outcome, url: string): Outcome {
    if (o.kind === "committed" || o.kind === "aborted") {
      this.answers.set(key, { status: o.kind, tx: o.tx });
      this.bodies.set(key, ops);
      this.definiteAt.push(performance.now());
      this.definiteUrl.push(url);
    } else if (o.kind === "in_doubt") {
      const rec: InDoubtRecord = { tx: o.tx, key, answeredAt: performance.now() };
      this.inDoubt.push(rec);
      this.pollers.push(this.pollInDoubt(rec));
    }
    return o;
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
    const timeout = this.o.requestTimeoutMs;
    return new Promise((resolve) => {
      const req = http.get({ host: u.hostname, port: Number(u.port), path: `/transactions/${encodeURIComponent(tx)}`, agent: this.agent, timeout }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => resolve(undefined));
        res.on("end", () => {
          try {
            // 404: no decision record, no history row, no branch prepared: it never committed and never will (docs/operations.md, "GET /transactions/:id").
            if (res.statusCode === 404) resolve("aborted");
            else resolve(res.statusCode === 200 ? String((JSON.parse(Buffer.concat(chunks).toString("utf8")) as { status?: unknown }).status) : undefined);
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
   * Sends the ops of up to `max` keys answered committed or aborted again,
   * with the same key, through the failing-over client: each must get the
   * first outcome (same status, same tx). Returns the keys answered two ways.
   */
  async replayKeys(max: number): Promise<{ replayed: number; mismatches: string[] }> {
    const mismatches: string[] = [];
    let replayed = 0;
    for (const [key, ops] of [...this.bodies].slice(0, max)) {
      const first = this.answers.get(key)!;
      replayed++;
      let o: Outcome;
      try {
        const a = await this.client.transfer({ ops }, key);
        o = outcomeOf(a.status, JSON.stringify(a.body));
      } catch (e) {
        mismatches.push(`${key}: no answer on replay (${(e as Error).message})`);
        continue;
      }
      const tx = o.kind === "committed" || o.kind === "aborted" || o.kind === "in_doubt" ? o.tx : "";
      if (o.kind !== first.status || tx !== first.tx) mismatches.push(`${key}: first ${first.status} ${first.tx}, replay ${o.kind} ${tx}`);
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
