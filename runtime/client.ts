/**
 * A failing-over client of several coordinators (docs/operations.md,
 * "Several coordinators"):
 *
 *   const c = new FailoverClient({ urls: ["http://10.0.0.1:8080", "http://10.0.0.2:8080"], token });
 *   const a = await c.transfer({ ops: [...] });            // a fresh Idempotency-Key
 *   const b = await c.transfer({ ops: [...] }, "order-4711"); // the caller's key
 *   a.status; a.body; a.url; a.attempts; a.idempotency_key
 *
 * Every attempt of one transfer carries the SAME Idempotency-Key, so the
 * coordinators apply it at most once whichever of them ran it (the claim is
 * shared by all, docs/operations.md "Idempotency"). An attempt that got no
 * answer (connection refused or reset, timeout) or an answer that says "not
 * now" (503, 502, 504, 429) is tried again on the next URL, after
 * `retry_delay_ms`, round the list until `deadline_ms`. Any other answer is
 * the transfer's: 200 committed, 409 aborted, 202 in doubt, 4xx the
 * request's fault. The URL that answered last is tried first next time.
 */
import { randomUUID } from "node:crypto";

export interface FailoverClientOptions {
  /** Coordinator base URLs (http:// or https://), tried in this order from the one that answered last. */
  readonly urls: readonly string[];
  /** A bearer token (scope transfer); absent: no Authorization header (a server with --auth none). */
  readonly token?: string;
  /** Bound on one attempt; default 10000. */
  readonly request_timeout_ms?: number;
  /** Bound on all attempts of one transfer; default 60000. */
  readonly deadline_ms?: number;
  /** Wait between attempts; default 200. */
  readonly retry_delay_ms?: number;
  /** The fetch to use (tests); default the global one. */
  readonly fetch?: typeof fetch;
}

export interface TransferAnswer {
  /** HTTP status of the answer. */
  readonly status: number;
  /** Its JSON body (`tx`, `status`, ... as POST /transfer answers). */
  readonly body: Record<string, unknown>;
  /** The coordinator that answered. */
  readonly url: string;
  /** Attempts made, this one included. */
  readonly attempts: number;
  readonly idempotency_key: string;
}

/** No coordinator gave an answer before the deadline: the transfer may or may not have run; retry it with the same key. */
export class NoAnswer extends Error {
  constructor(
    readonly idempotency_key: string,
    readonly attempts: number,
    readonly last: string,
  ) {
    super(`no coordinator answered transfer ${idempotency_key} in ${attempts} attempts (last: ${last}); retry with the same key`);
  }
}

/** Statuses that mean "not now, here": tried again elsewhere. */
export const RETRIED_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

export class FailoverClient {
  private next = 0;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: FailoverClientOptions) {
    if (opts.urls.length === 0) throw new Error("FailoverClient: give at least one coordinator URL");
    for (const u of opts.urls) if (!/^https?:\/\/[^\s/]+\/?$/.test(u)) throw new Error(`FailoverClient: ${JSON.stringify(u)} is not a base URL like http://host:port`);
    this.fetch = opts.fetch ?? fetch;
  }

  /** POST /transfer `body` with `idempotency_key` (default: a new UUID), failing over as the header says. */
  async transfer(body: object, idempotency_key: string = randomUUID()): Promise<TransferAnswer> {
    // Sent bare (the server also takes a Structured Field String): printable ASCII, not starting with a quote.
    if (!/^[\x21\x23-\x7e][\x20-\x7e]{0,199}$/.test(idempotency_key)) throw new Error(`FailoverClient: idempotency key ${JSON.stringify(idempotency_key)}: use 1-200 printable ASCII characters, not starting with a quote or a space`);
    const deadline = performance.now() + (this.opts.deadline_ms ?? 60_000);
    const text = JSON.stringify(body);
    let attempts = 0;
    let last = "nothing tried";
    for (;;) {
      const i = this.next % this.opts.urls.length;
      const url = this.opts.urls[i]!.replace(/\/$/, "");
      attempts++;
      const left = deadline - performance.now();
      try {
        const res = await this.fetch(`${url}/transfer`, {
          method: "POST",
          headers: {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            ...(this.opts.token !== undefined ? { Authorization: `Bearer ${this.opts.token}` } : {}),
          },
          body: text,
          signal: AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(this.opts.request_timeout_ms ?? 10_000, left)))),
        });
        const answer = await res.text();
        if (!RETRIED_STATUSES.has(res.status)) {
          return { status: res.status, body: parseBody(answer), url, attempts, idempotency_key };
        }
        last = `${url}: ${res.status} ${answer.slice(0, 200)}`;
      } catch (e) {
        last = `${url}: ${errorText(e)}`;
      }
      // This one did not answer: the next one first, from now on.
      this.next = i + 1;
      const delay = this.opts.retry_delay_ms ?? 200;
      if (performance.now() + delay >= deadline) throw new NoAnswer(idempotency_key, attempts, last);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function parseBody(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return { text: text.slice(0, 1000) };
  }
}

function errorText(e: unknown): string {
  const err = e as Error & { cause?: { code?: string } };
  return err.cause?.code ?? err.name ?? String(e);
}
