// SIGTERM drain of a real `speccommit serve` child process with 48+ requests
// in flight on keep-alive connections (docs/operations.md, "Shutdown"): every
// request the server accepted gets an HTTP answer (none is reset), what runs
// finishes and is answered, a request that has not started a coordinator gets
// 503 + Retry-After + Connection: close, and every 200 was applied exactly once.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, totalBalance, type TestCluster } from "../support/cluster.ts";
import { snapshot } from "./support.ts";

const BIN = new URL("../../bin/speccommit.js", import.meta.url).pathname;
const LISTEN_WAIT_MS = 30_000;
/** Transfers held in their exec phase by a row lock when SIGTERM arrives: their coordinators run. */
const RUNNING = 16;
/** Requests whose body is half sent when SIGTERM arrives: no coordinator yet. */
const BODY_PENDING = 16;
/** Clients sending transfers back to back on their keep-alive connection through the signal. */
const LOOPING = 16;
/** Keep-alive connections idle at SIGTERM that send a transfer at the same moment, and others once the server took it. */
const IDLE = 8;
const ACCOUNTS = 100;
/** The running transfers wait for their locks as long as the test holds them: no vote or statement timeout ends them first. */
const PATIENT = ["--vote-timeout-ms", "60000", "--statement-timeout-ms", "40000"];
/** Bound on one looping client's requests (a server that never closes the connection fails the test instead of hanging it). */
const LOOP_MAX = 20_000;
/** Polls of 20 ms before a wait fails the test. */
const UNTIL_TRIES = 1_500;

let cluster: TestCluster;
let dir: string;
let clusterFile: string;

beforeAll(async () => {
  // Lock waits far longer than the test holds its locks, even on a machine so busy that it takes seconds.
  cluster = await startTestCluster({ shards: 2, accountsPerShard: ACCOUNTS, lockWaitTimeoutS: 30 });
  dir = mkdtempSync(join(tmpdir(), "speccommit-drain-"));
  clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function serve(args: string[]): Promise<{ child: ChildProcess; url: URL; output: () => string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--auth", "none", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve did not listen within ${LISTEN_WAIT_MS} ms:\n${out}`));
    }, LISTEN_WAIT_MS);
    child.stdout!.on("data", () => {
      const m = /speccommit: listening on (\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, url: new URL(m[1]!), output: () => out });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${out}`));
    });
  });
}

type Answer = { group: string; status: number; headers: http.IncomingHttpHeaders; body: any } | { group: string; error: string };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const transferBody = (from: number, to: number) =>
  JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: from, delta: -1 }, { shard_id: "shard-b", account_id: ACCOUNTS + to, delta: 1 }] });

/**
 * POST /transfer on `agent`. The body goes out in two halves; the second
 * after `rest` resolves (at once when absent).
 */
function post(url: URL, agent: http.Agent, group: string, body: string, rest?: Promise<unknown>): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: "/transfer", method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ group, status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
        res.on("error", (e: NodeJS.ErrnoException) => resolve({ group, error: e.code ?? e.message }));
      },
    );
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ group, error: e.code ?? e.message }));
    if (rest === undefined) {
      req.end(body);
      return;
    }
    const half = Math.floor(body.length / 2);
    req.write(body.slice(0, half));
    void rest.then(() => req.end(body.slice(half)));
  });
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < UNTIL_TRIES; i++) {
    if (await ok()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A GET's body, on a connection of its own. */
function get(url: URL, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: url.hostname, port: url.port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      })
      .on("error", reject);
  });
}

/** `n` keep-alive connections opened on `agent` and left idle in its pool. */
async function warm(url: URL, agent: http.Agent, n: number): Promise<void> {
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          http.get({ host: url.hostname, port: url.port, path: "/healthz", agent }, (res) => res.resume().on("end", () => resolve())).on("error", reject);
        }),
    ),
  );
}

describe("SIGTERM drain", () => {
  it("answers every accepted request (200/409/202 for what runs, 503 + Retry-After + Connection: close for what has not started), resets none, applies every 200 once", async () => {
    const total = await totalBalance(cluster);
    const { child, url, output } = await serve(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "drain/", "--shutdown-grace-ms", "60000", ...PATIENT]);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const agents = Array.from({ length: 5 }, () => new http.Agent({ keepAlive: true, maxSockets: 64 }));
    const [runningAgent, pendingAgent, loopAgent, idleAgent, racingAgent] = agents as [http.Agent, http.Agent, http.Agent, http.Agent, http.Agent];
    const holder = await cluster.shard("shard-a").connect();
    try {
      await warm(url, idleAgent, IDLE);
      await warm(url, racingAgent, IDLE);
      await warm(url, pendingAgent, BODY_PENDING);
      // Rows 1..RUNNING of shard-a locked: each running transfer waits in its exec phase, its coordinator started.
      await holder.query("START TRANSACTION");
      await holder.query(`SELECT balance FROM accounts WHERE id BETWEEN 1 AND ${RUNNING} FOR UPDATE`);
      const running = Array.from({ length: RUNNING }, (_, i) => post(url, runningAgent, "running", transferBody(1 + i, 1 + i)));

      let signalled!: () => void;
      const afterSignal = new Promise<void>((resolve) => (signalled = resolve));
      const pending = Array.from({ length: BODY_PENDING }, (_, i) => post(url, pendingAgent, "body_pending", transferBody(21 + i, 21 + i), afterSignal));

      const loopAnswers: Answer[][] = Array.from({ length: LOOPING }, () => []);
      const looping = loopAnswers.map(async (answers, i) => {
        // Until the server says it closes the connection, refuses, or fails to answer: what a keep-alive client sees.
        for (let n = 0; n < LOOP_MAX; n++) {
          const a = await post(url, loopAgent, "looping", transferBody(41 + i, 41 + i));
          answers.push(a);
          if ("error" in a || a.status === 503 || a.headers.connection === "close") break;
        }
        return answers;
      });

      // The signal lands on a loaded server: every running transfer's coordinator waits for its lock, every looping client has been answered.
      await until("the running transfers in flight and the looping clients answered", async () => {
        const m = /^speccommit_transactions_in_flight (\d+)/m.exec(await get(url, "/metrics"));
        return Number(m?.[1] ?? 0) >= RUNNING && loopAnswers.every((x) => x.length >= 3);
      });
      child.kill("SIGTERM");
      const racing = Array.from({ length: IDLE }, (_, i) => post(url, racingAgent, "idle_racing", transferBody(71 + i, 71 + i)));
      // Printed by the signal handler before anything else: from here on the server is draining.
      await until("the server took the signal", async () => output().includes("SIGTERM: finishing"));
      signalled();
      const idle = Array.from({ length: IDLE }, (_, i) => post(url, idleAgent, "idle_at_signal", transferBody(61 + i, 61 + i)));
      await sleep(300);
      await holder.query("ROLLBACK");

      const answers: Answer[] = [...(await Promise.all(running)), ...(await Promise.all(pending)), ...(await Promise.all(looping)).flat(), ...(await Promise.all(racing)), ...(await Promise.all(idle))];
      expect(await exited).toBe(0);

      const figures = new Map<string, number>();
      for (const a of answers) {
        const k = `${a.group} ${"error" in a ? a.error : a.status}`;
        figures.set(k, (figures.get(k) ?? 0) + 1);
      }
      console.log(`drain: ${RUNNING} running + ${BODY_PENDING} half-sent + ${LOOPING} clients looping at SIGTERM, ${IDLE} sent with it, ${IDLE} after it; ${answers.length} requests: ${JSON.stringify(Object.fromEntries([...figures].sort()))}`);
      expect(answers.filter((a) => "error" in a)).toEqual([]);
      const answered = answers as Array<Extract<Answer, { status: number }>>;
      expect(answered.filter((a) => ![200, 409, 202, 503].includes(a.status))).toEqual([]);
      expect(answered.filter((a) => a.group === "running").map((a) => a.status)).toEqual(Array(RUNNING).fill(200));
      for (const a of answered.filter((x) => x.group === "body_pending" || x.group === "idle_at_signal")) {
        expect([a.status, a.headers["retry-after"], a.headers.connection]).toEqual([503, "1", "close"]);
      }
      for (const a of answered.filter((x) => x.status === 503)) expect(a.headers["retry-after"]).toBe("1");
      // Each looping client was told to close its keep-alive connection (it stopped for that, not for LOOP_MAX).
      for (const x of loopAnswers) expect((x.at(-1) as Extract<Answer, { status: number }>).headers.connection).toBe("close");

      // Every 200 applied exactly once (one history row per shard); nothing else applied; nothing left prepared.
      const snap = await snapshot(cluster);
      const committed = new Set(answered.filter((a) => a.status === 200).map((a) => a.body.tx as string));
      for (const tx of committed) expect([snap.history.get(`shard-a|${tx}`), snap.history.get(`shard-b|${tx}`)], tx).toEqual([1, 1]);
      const applied = new Set([...snap.history.keys()].map((k) => k.slice(k.indexOf("|") + 1)));
      expect([...applied].filter((tx) => !committed.has(tx))).toEqual([]);
      expect(snap.prepared).toEqual([]);
      expect(await totalBalance(cluster)).toBe(total);
      expect(output()).toContain("speccommit: stopped");
    } finally {
      for (const a of agents) a.destroy();
      child.kill("SIGKILL");
    }
  });
});
