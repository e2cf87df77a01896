// The failing-over client (runtime/client.ts) against small real HTTP servers on loopback: which answers it retries
// elsewhere, that every attempt carries the same Idempotency-Key, and where it gives up.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FailoverClient, NoAnswer } from "../../runtime/client.ts";

interface Seen {
  key: string | undefined;
  body: string;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(() => r(undefined)));
});

/** A server answering the i-th request with answers[i] (the last one repeated); "hang": never answers. */
async function fake(answers: Array<number | "hang">, seen: Seen[]): Promise<string> {
  let n = 0;
  const s = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ key: req.headers["idempotency-key"] as string | undefined, body });
      const a = answers[Math.min(n++, answers.length - 1)]!;
      if (a === "hang") return;
      res.writeHead(a, { "Content-Type": "application/json" });
      res.end(JSON.stringify(a === 200 ? { tx: "n1.t", status: "committed" } : a === 409 ? { tx: "n1.t", status: "aborted", reason: "conflict" } : { error: "busy" }));
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** A URL nothing listens on (a port taken, then freed). */
async function refused(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(() => r(undefined)));
  return `http://127.0.0.1:${port}`;
}

describe("FailoverClient", () => {
  it("goes on to the next coordinator on a refused connection and on 503, with the same key each time", async () => {
    const seenB: Seen[] = [];
    const seenC: Seen[] = [];
    const a = await refused();
    const b = await fake([503], seenB);
    const c = await fake([200], seenC);
    const client = new FailoverClient({ urls: [a, b, c], retry_delay_ms: 5 });
    const r = await client.transfer({ ops: [] }, "order-4711");
    expect(r).toMatchObject({ status: 200, url: c, attempts: 3, idempotency_key: "order-4711", body: { status: "committed" } });
    expect([...seenB, ...seenC].map((s) => s.key)).toEqual(["order-4711", "order-4711"]);
    expect(seenC[0]!.body).toBe(JSON.stringify({ ops: [] }));
    // The one that answered is asked first next time.
    const again = await client.transfer({ ops: [] });
    expect(again.url).toBe(c);
    expect(again.attempts).toBe(1);
    expect(again.idempotency_key).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("goes on after an attempt that timed out, and keeps the key", async () => {
    const seenA: Seen[] = [];
    const seenB: Seen[] = [];
    const a = await fake(["hang"], seenA);
    const b = await fake([200], seenB);
    const r = await new FailoverClient({ urls: [a, b], request_timeout_ms: 200, retry_delay_ms: 5 }).transfer({ ops: [] }, "k1");
    expect(r.url).toBe(b);
    expect(seenA.map((s) => s.key)).toEqual(["k1"]);
    expect(seenB.map((s) => s.key)).toEqual(["k1"]);
  });

  it("takes 409 (and every answer but 429/502/503/504) as the transfer's: no second attempt", async () => {
    const seenA: Seen[] = [];
    const seenB: Seen[] = [];
    const a = await fake([409], seenA);
    const b = await fake([200], seenB);
    const r = await new FailoverClient({ urls: [a, b], retry_delay_ms: 5 }).transfer({ ops: [] });
    expect(r.status).toBe(409);
    expect(seenA.length + seenB.length).toBe(1);
  });

  it("gives up at the deadline with NoAnswer naming the key (the transfer may have run: retry it with that key)", async () => {
    const seen: Seen[] = [];
    const a = await fake([503], seen);
    const b = await refused();
    const p = new FailoverClient({ urls: [a, b], deadline_ms: 2_000, retry_delay_ms: 50 }).transfer({ ops: [] }, "k2");
    await expect(p).rejects.toBeInstanceOf(NoAnswer);
    await expect(p).rejects.toThrow(/k2/);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((s) => s.key === "k2")).toBe(true);
  });

  it("refuses a key the server would not take, and a list without URLs", () => {
    expect(() => new FailoverClient({ urls: [] })).toThrow(/at least one/);
    expect(() => new FailoverClient({ urls: ["localhost:8080"] })).toThrow(/base URL/);
    const c = new FailoverClient({ urls: ["http://127.0.0.1:1"] });
    return expect(c.transfer({}, '"quoted"')).rejects.toThrow(/printable/);
  });
});
