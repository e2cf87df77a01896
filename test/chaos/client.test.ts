// The chaos run's key replay (runtime/bench/chaos-client.ts) against a fake
// coordinator on loopback: a server that keeps a key's first answer passes;
// the mutant that runs a replayed key again (a new tx, or another outcome)
// is caught as "answered two ways".
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ChaosTarget } from "../../runtime/bench/chaos-client.ts";
import type { Transfer } from "../../runtime/bench/workload.ts";

let server: http.Server | undefined;

afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A coordinator that answers committed with a tx per key; `mutant` makes a replay run the key again (a new tx) or flip it to aborted. */
async function fakeCoordinator(mutant: "none" | "new-tx" | "aborted"): Promise<string> {
  const seen = new Map<string, string>();
  let n = 0;
  server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const key = String(req.headers["idempotency-key"]);
      const first = seen.get(key);
      let body: object;
      let status = 200;
      if (first === undefined) {
        const tx = `n1.tx-${n++}`;
        seen.set(key, tx);
        body = { tx, status: "committed" };
      } else if (mutant === "new-tx") body = { tx: `n1.tx-${n++}`, status: "committed", replayed: true };
      else if (mutant === "aborted") {
        status = 409;
        body = { tx: first, status: "aborted", reason: "resolver", replayed: true };
      } else body = { tx: first, status: "committed", replayed: true };
      res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

const transfer: Transfer = { ops: [{ shard_id: "shard-a", account_id: 1, delta: -5 }, { shard_id: "shard-b", account_id: 2, delta: 5 }] } as unknown as Transfer;

async function replayAgainst(mutant: "none" | "new-tx" | "aborted") {
  const url = await fakeCoordinator(mutant);
  const target = new ChaosTarget({ urls: [url], keyPrefix: "k", requestTimeoutMs: 2_000, transferTimeoutMs: 5_000, retryDelayMs: 10 });
  for (let i = 0; i < 5; i++) expect((await target.transfer(transfer)).kind).toBe("committed");
  const r = await target.replayKeys(10);
  await target.close();
  return r;
}

describe("ChaosTarget.replayKeys", () => {
  it("passes a coordinator that answers a replayed key with its first outcome", async () => {
    expect(await replayAgainst("none")).toEqual({ replayed: 5, mismatches: [] });
  });

  it("catches the mutant that runs a replayed key again (a new tx)", async () => {
    const r = await replayAgainst("new-tx");
    expect(r.mismatches).toHaveLength(5);
    expect(r.mismatches[0]).toMatch(/^k-0: first committed n1\.tx-0, replay committed n1\.tx-5$/);
  });

  it("catches the mutant that answers a replayed key with another outcome", async () => {
    const r = await replayAgainst("aborted");
    expect(r.mismatches).toHaveLength(5);
    expect(r.mismatches[0]).toMatch(/replay aborted n1\.tx-0/);
  });
});
