// The operator's page (GET /ui, docs/operations.md "The page") in a real
// headless Chromium (Debian's `chromium`, scripts/install-system-deps.sh)
// against a server on real MariaDB x2 and etcd: the page loads, polls
// /ui/summary, lists a transfer made by the test with its sequence diagram
// and trace; after etcd is paused and a coordinator process is killed with
// -9 between prepare and decision, it lists the in-doubt transaction with the
// shards its branches are prepared on, and once the resolver settled it the
// row is gone. Screenshots are saved under out/ (ui.png, ui-in-doubt.png) and their size checked.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scopeOf } from "../../runtime/auth.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { preparedBranches } from "../../runtime/bench/audit.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, inDoubtAfterKill9, request, serverOn } from "./support.ts";

const PREFIX = "ui/";
const CHROMIUM = "/usr/bin/chromium";
let cluster: TestCluster;
let server: RunningServer;
let dir: string;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, balanceCents: 100_000, lockWaitTimeoutS: 1 });
  server = await serverOn(cluster, ["--etcd-prefix", PREFIX]);
  dir = mkdtempSync(join(tmpdir(), "speccommit-ui-"));
});

afterAll(async () => {
  closeAgents();
  await server?.close(1_000);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs headless Chromium on `url` with `flags`; answers its stdout (the DOM with --dump-dom). */
function chromium(url: string, flags: string[]): Promise<string> {
  const args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", `--user-data-dir=${join(dir, "profile")}`, "--virtual-time-budget=4000", ...flags, url];
  return new Promise((resolve, reject) =>
    execFile(CHROMIUM, args, { timeout: 60_000, maxBuffer: 16 << 20 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))),
  );
}

/** The row of table `id` whose data-tx is `tx` (its cells' text), or undefined. */
function row(dom: string, id: string, tx: string): string | undefined {
  const table = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(dom)?.[1] ?? "";
  return new RegExp(`<tr data-tx="${tx}">([\\s\\S]*?)</tr>`).exec(table)?.[1]?.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
}

describe("GET /ui", () => {
  it("serves the page without a token and /ui/summary with scope read", () => {
    expect(scopeOf("/ui")).toBe(null);
    expect(scopeOf("/ui/summary")).toBe("read");
  });

  it("in Chromium: shows a transfer made by the test, its diagram and trace, per-protocol figures and shard health; a screenshot", async () => {
    const r = await request(server.url, "POST", "/transfer", { json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: 101, delta: 100 }], protocol: "2pc" } });
    expect(r.status).toBe(200);
    const tx = r.body.tx as string;
    for (let i = 0; i < 50 && !(await request(server.url, "GET", `/transactions/${tx}`)).body.done; i++) await sleep(20);

    const page = await request(server.url, "GET", "/ui");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["content-security-policy"]).toContain("default-src 'none'");
    const svg = await request(server.url, "GET", `/transactions/${tx}?format=svg`);
    expect(svg.status).toBe(200);
    expect(svg.headers["content-type"]).toBe("image/svg+xml");

    // What the page computes its figures from: the engine's counter and histogram for the one transfer.
    const summary = (await request(server.url, "GET", "/ui/summary")).body;
    expect(summary.protocols["2pc"]).toMatchObject({ committed: 1, aborted: 0, in_doubt: 0, latency: { count: 1 } });
    expect(summary.protocols["2pc"].latency.buckets.at(-1)).toEqual([10, 1]);
    expect(summary.recent.map((x: { tx: string }) => x.tx)).toEqual([tx]);
    expect(summary.shards.map((x: { shard: string; prepared: number }) => [x.shard, x.prepared])).toEqual([["shard-a", 0], ["shard-b", 0]]);

    const dom = await chromium(`${server.url}/ui?tx=${tx}`, ["--dump-dom"]);
    const polls = Number(/data-polls="(\d+)"/.exec(dom)?.[1] ?? 0);
    expect(polls).toBeGreaterThanOrEqual(1);
    expect(row(dom, "recent", tx)).toMatch(new RegExp(`^${tx} 2pc committed .* shard-a, shard-b$`));
    // Per protocol: the one committed transfer, whose latency is p50 and p99 since the start (the upper bound of its
    // bucket); none in the last 30 s of polls, as the page opened after it; per shard: both up.
    const bucket = summary.protocols["2pc"].latency.buckets.find(([, n]: [number, number]) => n >= 1)[0] as number;
    const ms = (bucket * 1000).toFixed(1);
    const cells = /<table id="protocols">[\s\S]*?<tr><td>2pc<\/td>([\s\S]*?)<\/tr>/.exec(dom)?.[1];
    const texts = [...(cells ?? "").matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map((x) => x[1]);
    // tx/s needs two polls (the virtual time budget gives two or three).
    expect(texts).toEqual([polls >= 2 ? "0.0" : "-", "-", "-", ms, ms, "1", "0", "0"]);
    expect(dom.match(/<td class="ok">up<\/td>/g)?.length).toBe(2);
    // The diagram (an <img> of the SVG, loaded) and the NDJSON trace of the transaction picked.
    expect(dom).toMatch(/<img alt="sequence diagram of [^"]+" data-bytes="\d+" src="blob:[^"]+" data-loaded="yes">/);
    const trace = />([^<]*)<\/pre>/.exec(dom)?.[1] ?? "";
    expect(trace.split("\n")[0]).toContain('"source":"runtime"');
    expect(trace).toContain(tx);

    mkdirSync("out", { recursive: true });
    const png = join("out", "ui.png");
    rmSync(png, { force: true });
    await chromium(`${server.url}/ui?tx=${tx}`, [`--screenshot=${png}`, "--window-size=1280,1400", "--hide-scrollbars"]);
    const bytes = statSync(png).size;
    expect(readFileSync(png).subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    // A blank 1280x1400 page compresses to a few KB; tables, text and a diagram do not.
    expect(bytes).toBeGreaterThan(30_000);
    expect(bytes).toBeLessThan(5_000_000);
  }, 120_000);

  it("in Chromium: lists a transaction in doubt after etcd paused + kill -9 of its coordinator, and drops it once settled", async () => {
    mkdirSync("out", { recursive: true });
    const { tx, shards } = await inDoubtAfterKill9(cluster, {
      dir,
      prefix: PREFIX,
      ops: [{ shard_id: "shard-a", account_id: 2, delta: -100 }, { shard_id: "shard-b", account_id: 102, delta: 100 }],
      whilePaused: async (tx) => {
        // etcd is still paused: the page's server has decided nothing, its XA RECOVER shows the branches, the log cannot be read.
        const dom = await chromium(`${server.url}/ui`, ["--dump-dom"]);
        const line = row(dom, "indoubt", tx);
        expect(line).toBeDefined();
        expect(line).toMatch(new RegExp(`^${tx} \\? (-|[0-9.]+) shard-a, shard-b unknown: etcd`));
      },
    });
    // etcd is back, the resolver has not scanned: still in doubt, now with what the log holds (the decision record,
    // when the commit write sent before the pause landed after it, with the commit timestamp it carries when one was
    // chosen, docs/protocols/timestamps.md; none otherwise).
    const back = await chromium(`${server.url}/ui`, ["--dump-dom"]);
    expect(row(back, "indoubt", tx)).toMatch(new RegExp(`^${tx} \\? (-|[0-9.]+) shard-a, shard-b (none \\(no decision written\\)|\\{"kind":"decision","decision":"commit","branches":\\["shard-a","shard-b"\\](,"commit_ts":"[0-9]+")?\\})$`));
    const png = join("out", "ui-in-doubt.png");
    rmSync(png, { force: true });
    await chromium(`${server.url}/ui`, [`--screenshot=${png}`, "--window-size=1280,900", "--hide-scrollbars"]);
    expect(readFileSync(png).subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(statSync(png).size).toBeGreaterThan(30_000);
    for (let i = 0; i < 5 && (await preparedBranches(shards, XID_FORMAT_ID)).length > 0; i++) await server.engine.scanNow();
    expect(await preparedBranches(shards, XID_FORMAT_ID)).toEqual([]);
    const after = await chromium(`${server.url}/ui`, ["--dump-dom"]);
    expect(Number(/data-polls="(\d+)"/.exec(after)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    expect(row(after, "indoubt", tx)).toBeUndefined();
    expect(after).toMatch(/<span id="doubtcount">\(0\)<\/span>/);
  }, 120_000);
});
