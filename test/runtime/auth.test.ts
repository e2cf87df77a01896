// Authentication, authorization and rate limits (runtime/auth.ts,
// docs/security.md): the parts without a cluster, then a real server on real
// MariaDB and etcd, where no refused request may change anything.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authenticator, parseTokens, RateLimiter, redact, scopeOf, sha256, TokensFileError } from "../../runtime/auth.ts";
import { ConfigError, loadConfig } from "../../runtime/config.ts";
import type { RunningServer } from "../../runtime/server.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";
import { closeAgents, request, serverOn, snapshot } from "./support.ts";

const hex = (token: string) => sha256(token).toString("hex");

describe("credentials and scopes", () => {
  const creds = parseTokens(
    [
      "# comment",
      `teller transfer ${hex("tok-teller-0123456789")}`,
      `ops admin,read,metrics ${hex("tok-ops-0123456789")}`,
      `old read ${hex("tok-old-0123456789")} 2020-01-01T00:00:00Z`,
    ].join("\n"),
    "tokens",
  );
  const auth = new Authenticator("tokens", creds);

  it("admits a token only for its scopes; missing, malformed, unknown and expired tokens are 401, a missing scope 403", () => {
    expect(auth.check("Bearer tok-teller-0123456789", "transfer")).toEqual({ ok: true, credential: "teller" });
    expect(auth.check("Bearer tok-teller-0123456789", "read")).toEqual({ ok: false, reason: "scope", status: 403 });
    expect(auth.check("Bearer tok-ops-0123456789", "admin")).toEqual({ ok: true, credential: "ops" });
    expect(auth.check(undefined, "read")).toMatchObject({ reason: "missing", status: 401 });
    expect(auth.check("tok-ops-0123456789", "read")).toMatchObject({ reason: "malformed", status: 401 });
    expect(auth.check("Bearer tok-ops-012345678", "read")).toMatchObject({ reason: "invalid", status: 401 });
    expect(auth.check("Bearer tok-old-0123456789", "read")).toMatchObject({ reason: "expired", status: 401 });
    // The probes are open.
    expect(auth.check(undefined, scopeOf("/ready"))).toEqual({ ok: true, credential: null });
  });

  it("with auth none guards only the scopes a legacy token has", () => {
    const none = new Authenticator("none", [{ name: "admin_token", scopes: new Set(["admin"] as const), hash: sha256("adm-token-1") }]);
    expect(none.check(undefined, "transfer")).toEqual({ ok: true, credential: null });
    expect(none.check(undefined, "admin")).toMatchObject({ status: 401 });
    expect(none.check("Bearer adm-token-1", "admin")).toEqual({ ok: true, credential: "admin_token" });
  });

  it("rotation: a replaced set refuses the removed token at once", () => {
    const a = new Authenticator("tokens", creds);
    a.replace(creds.filter((c) => c.name !== "teller"));
    expect(a.check("Bearer tok-teller-0123456789", "transfer")).toMatchObject({ reason: "invalid", status: 401 });
  });

  it.each([
    [`Teller transfer ${hex("x")}`, /name "Teller"/],
    [`a transfer,root ${hex("x")}`, /scope "root"/],
    ["a transfer tok-in-clear-123", /not a SHA-256/],
    [`a transfer ${hex("x")}\nb read ${hex("x")}`, /same token hash/],
    [`a transfer ${hex("x")} tomorrow`, /not-after "tomorrow"/],
  ])("refuses the tokens file %j, naming the line", (text, message) => {
    expect(() => parseTokens(text, "f")).toThrow(TokensFileError);
    expect(() => parseTokens(text, "f")).toThrow(message);
    // A token pasted in clear is never echoed.
    try {
      parseTokens(text, "f");
    } catch (e) {
      expect((e as Error).message).not.toContain("tok-in-clear-123");
    }
  });

  it("the token bucket: burst, then the rate; Retry-After in whole seconds", () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    expect([limiter.take("a"), limiter.take("a"), limiter.take("a"), limiter.take("a")]).toEqual([0, 0, 0, 1]);
    expect(limiter.take("b")).toBe(0);
    now = 500; // one token back at 2/s
    expect([limiter.take("a"), limiter.take("a")]).toEqual([0, 1]);
    expect(new RateLimiter(0, 1, () => now).take("a")).toBe(0);
  });

  it("the example tokens file of docs/security.md is one the server reads", () => {
    const doc = readFileSync(new URL("../../docs/security.md", import.meta.url), "utf8");
    const example = /```\n(# name[^`]*)```/.exec(doc)![1]!;
    expect(parseTokens(example, "docs/security.md").map((c) => [c.name, [...c.scopes].join(",")])).toEqual([
      ["teller-1", "transfer,read"],
      ["prometheus", "metrics"],
      ["ops", "admin,read"],
    ]);
  });

  it("redacts every occurrence of a secret", () => {
    expect(redact("pw=hunter22; again hunter22", ["hunter22", undefined])).toBe("pw=(redacted); again (redacted)");
  });

  it("authentication is off only when said; a tokens file implies it is on", () => {
    expect(() => loadConfig({ argv: [], env: {} })).toThrow(/authentication is not configured/);
    expect(() => loadConfig({ argv: ["--auth", "none", "--tokens-file", "x"], env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ argv: ["--auth", "tokens"], env: {} })).toThrow(/needs --tokens-file/);
    const r = loadConfig({ argv: ["--tokens-file", "x"], env: {} });
    expect(!r.help && r.config.auth).toBe("tokens");
    const w = loadConfig({ argv: ["--auth", "none", "--mysql-password", "pw-on-argv"], env: {} });
    expect(!w.help && w.warnings.join()).toMatch(/--mysql-password on the command line is visible/);
  });
});

const TOKENS = { teller: "tok-teller-aaaaaaaaaaaa", reader: "tok-reader-bbbbbbbbbbbb", ops: "tok-ops-cccccccccccc", scraper: "tok-scraper-dddddddddd", old: "tok-old-eeeeeeeeeeee", rotated: "tok-rotated-ffffffffff" } as const;
type Who = keyof typeof TOKENS | "none" | "bad" | "malformed";
const SCOPES_OF: Record<keyof typeof TOKENS, string[]> = { teller: ["transfer"], reader: ["read"], ops: ["admin"], scraper: ["metrics"], old: ["transfer", "read", "admin", "metrics"], rotated: ["transfer", "read", "admin", "metrics"] };
const PREFIX = "auth/";

function tokensFile(dir: string, names: Array<keyof typeof TOKENS>): string {
  const file = join(dir, "tokens");
  const line = (n: keyof typeof TOKENS) => `${n} ${SCOPES_OF[n].join(",")} ${hex(TOKENS[n])}${n === "old" ? " 2021-06-01T00:00:00Z" : ""}`;
  writeFileSync(file, names.map(line).join("\n") + "\n");
  return file;
}

describe("a real server with tokens", () => {
  let cluster: TestCluster;
  let server: RunningServer;
  let dir: string;
  let file: string;

  beforeAll(async () => {
    cluster = await startTestCluster({ shards: 2 });
    dir = mkdtempSync(join(tmpdir(), "speccommit-auth-"));
    file = tokensFile(dir, ["teller", "reader", "ops", "scraper", "old", "rotated"]);
    server = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--tokens-file", file]);
    // Rotated out: in the file at start, gone after the reload.
    tokensFile(dir, ["teller", "reader", "ops", "scraper", "old"]);
    expect(server.reloadCredentials()).toBe(5);
  });

  afterAll(async () => {
    closeAgents();
    await server?.close(1_000);
    await cluster?.stop();
  });

  const ENDPOINTS = [
    { method: "POST", path: "/transfer", scope: "transfer", json: { ops: [{ shard_id: "shard-a", account_id: 1, delta: -1 }, { shard_id: "shard-b", account_id: 101, delta: 1 }] } },
    { method: "GET", path: "/accounts/shard-a/1", scope: "read" },
    { method: "GET", path: "/transactions/00000000-0000-0000-0000-000000000000", scope: "read" },
    { method: "GET", path: "/admin/shards", scope: "admin" },
    { method: "POST", path: "/admin/transactions/00000000-0000-0000-0000-000000000000/conclude", scope: "admin", json: { direction: "rollback" } },
    { method: "GET", path: "/metrics", scope: "metrics" },
    { method: "GET", path: "/ui/summary", scope: "read" },
  ] as const;
  const WHO: Who[] = ["none", "bad", "malformed", "teller", "reader", "ops", "scraper", "old", "rotated"];
  const header = (who: Who): Record<string, string> =>
    who === "none" ? {} : who === "bad" ? { Authorization: "Bearer tok-guessed-000000000" } : who === "malformed" ? { Authorization: `Token ${TOKENS.ops}` } : { Authorization: `Bearer ${TOKENS[who]}` };
  const allowed = (who: Who, scope: string) => who === "teller" || who === "reader" || who === "ops" || who === "scraper" ? SCOPES_OF[who].includes(scope) : false;

  async function durable(): Promise<unknown> {
    const s = await snapshot(cluster);
    const keys = (await cluster.etcdClient().getAll().prefix(PREFIX).keys()).sort();
    return { history: [...s.history], balances: [...s.balances], prepared: s.prepared, keys };
  }

  it("property: over endpoints x credentials, a request without the right scope gets 401/403 and changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS), fc.constantFrom(...WHO), async (ep, who) => {
        const before = await durable();
        const r = await request(server.url, ep.method, ep.path, { headers: header(who), ...("json" in ep ? { json: ep.json } : {}) });
        if (allowed(who, ep.scope)) {
          expect([401, 403, 429]).not.toContain(r.status);
          // A transfer's commit phase and forgetting go on after its answer: let them end, or the next case's
          // before/after would see them (a flake seen under load, not a refused request changing anything).
          for (let i = 0; i < 500 && server.engine.inFlight > 0; i++) await new Promise((done) => setTimeout(done, 10));
          return;
        }
        const expected = who === "none" || who === "bad" || who === "malformed" || who === "old" || who === "rotated" ? 401 : 403;
        expect(r.status, `${who} ${ep.path}`).toBe(expected);
        if (expected === 401) expect(r.headers["www-authenticate"]).toBe("Bearer");
        expect(await durable()).toEqual(before);
      }),
      { numRuns: 60 },
    );
  });

  it("the page's HTML is open (no data in it); what it shows, /ui/summary, needs scope read", async () => {
    const page = await request(server.url, "GET", "/ui");
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain("/ui/summary");
    expect((await request(server.url, "GET", "/ui/summary")).status).toBe(401);
    expect((await request(server.url, "GET", "/ui/summary", { headers: header("scraper") })).status).toBe(403);
    const r = await request(server.url, "GET", "/ui/summary", { headers: header("reader") });
    expect(r.status).toBe(200);
    expect(r.body.shards.map((x: { shard: string }) => x.shard)).toEqual(["shard-a", "shard-b"]);
  });

  it("names the credential in the transaction's view, its trace header and the metrics; counts refusals by reason", async () => {
    const t = await request(server.url, "POST", "/transfer", { headers: header("teller"), json: ENDPOINTS[0].json });
    expect(t.status).toBe(200);
    const view = await request(server.url, "GET", `/transactions/${t.body.tx}`, { headers: header("reader") });
    expect(view.body.credential).toBe("teller");
    const nd = await request(server.url, "GET", `/transactions/${t.body.tx}?format=ndjson`, { headers: header("reader") });
    expect(JSON.parse(String(nd.body).split("\n")[0]!).header.params.credential).toBe("teller");
    await request(server.url, "GET", "/admin/shards", { headers: header("teller") });
    const m = await request(server.url, "GET", "/metrics", { headers: header("scraper") });
    expect(m.body).toMatch(/speccommit_http_requests_by_credential_total\{credential="teller",route="\/transfer",code="200"\} [1-9]/);
    expect(m.body).toMatch(/speccommit_http_auth_failures_total\{reason="scope"\} [1-9]/);
  });

  it("writes the credential into the history rows of every branch: each protocol, and through an idempotency key", async () => {
    const historyOf = async (tx: string) => {
      const rows: Array<{ shard: string; credential: string | null }> = [];
      for (const shard of ["shard-a", "shard-b"]) {
        const c = await cluster.shard(shard).connect();
        try {
          const [r] = await c.query("SELECT credential FROM history WHERE xid = ?", [tx]);
          for (const row of r as Array<{ credential: string | null }>) rows.push({ shard, credential: row.credential });
        } finally {
          await c.end();
        }
      }
      return rows;
    };
    const bodies = [
      { ...ENDPOINTS[0].json, protocol: "2pc" },
      { ...ENDPOINTS[0].json, protocol: "parallel" },
      { ...ENDPOINTS[0].json, protocol: "speculative" },
      { ...ENDPOINTS[0].json, idempotency_key: `history-credential-${Date.now()}` },
    ];
    for (const json of bodies) {
      const t = await request(server.url, "POST", "/transfer", { headers: header("teller"), json });
      expect(t.status, JSON.stringify(t.body)).toBe(200);
      // The rows are written at exec (XA) or apply (speculative), before the answer, but 2PC and parallel commit
      // answer before their XA COMMITs: the rows are visible once the coordinator is done.
      for (let i = 0; i < 500 && server.engine.inFlight > 0; i++) await new Promise((done) => setTimeout(done, 10));
      expect(server.engine.inFlight).toBe(0);
      expect(await historyOf(String(t.body.tx)), JSON.stringify(json)).toEqual([
        { shard: "shard-a", credential: "teller" },
        { shard: "shard-b", credential: "teller" },
      ]);
    }
  });

  it("rate limit per credential: past the burst 429 with Retry-After, counted; other credentials go on", async () => {
    const limited = await serverOn(cluster, ["--etcd-prefix", PREFIX, "--tokens-file", file, "--rate-limit-per-s", "1", "--rate-limit-burst", "2"]);
    try {
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push(await request(limited.url, "GET", "/accounts/shard-a/2", { headers: header("reader") }));
      expect(codes.map((r) => r.status)).toEqual([200, 200, 429]);
      expect(codes[2]!.headers["retry-after"]).toBe("1");
      expect((await request(limited.url, "GET", "/metrics", { headers: header("scraper") })).body).toMatch(/speccommit_http_rate_limited_total\{credential="reader"\} 1/);
    } finally {
      await limited.close(1_000);
    }
  });
});

describe("secrets stay out of every output", () => {
  const PASSWORD = "pw-Xq7-secret-9182";
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startTestCluster({ shards: 2 });
    for (const s of cluster.shards) {
      const c = await s.connect();
      await c.query(`CREATE USER 'sc_app'@'localhost' IDENTIFIED BY '${PASSWORD}'`);
      await c.query(`CREATE USER 'sc_app'@'%' IDENTIFIED BY '${PASSWORD}'`);
      await c.query("GRANT ALL PRIVILEGES ON *.* TO 'sc_app'@'localhost', 'sc_app'@'%'");
      await c.end();
    }
  });

  afterAll(async () => {
    closeAgents();
    await cluster?.stop();
  });

  it("a server given a shard password (file) and tokens prints neither: stdout, stderr, /admin, /metrics, traces, errors, argv", async () => {
    const dir = mkdtempSync(join(tmpdir(), "speccommit-secret-"));
    const clusterFile = join(dir, "cluster.json");
    writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
    const pwFile = join(dir, "pw");
    writeFileSync(pwFile, PASSWORD + "\n");
    const tokens = tokensFile(dir, ["teller", "reader", "ops", "scraper"]);
    const BIN = new URL("../../bin/speccommit.js", import.meta.url).pathname;
    const args = ["serve", "--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "secret/", "--mysql-user", "sc_app", "--mysql-password-file", pwFile, "--tokens-file", tokens];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    for (let i = 0; i < 600 && !/listening on/.test(out); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    expect(url, out).toBeDefined();
    const bodies: string[] = [readFileSync(`/proc/${child.pid}/cmdline`, "utf8")];
    const get = async (method: string, path: string, who: Who, json?: unknown) => {
      const r = await request(url!, method, path, { headers: header(who), ...(json !== undefined ? { json } : {}) });
      bodies.push(JSON.stringify(r.headers), typeof r.body === "string" ? r.body : JSON.stringify(r.body));
      return r;
    };
    const t = await get("POST", "/transfer", "teller", { ops: [{ shard_id: "shard-a", account_id: 1, delta: -1 }, { shard_id: "shard-b", account_id: 101, delta: 1 }] });
    expect(t.status).toBe(200);
    await get("POST", "/transfer", "teller", { ops: [{ shard_id: "shard-a", account_id: 1, delta: "x" }] });
    await get("GET", `/transactions/${t.body.tx}`, "reader");
    await get("GET", `/transactions/${t.body.tx}?format=ndjson`, "reader");
    await get("GET", "/accounts/shard-a/1", "reader");
    expect((await get("GET", "/admin/shards", "ops")).status).toBe(200);
    await get("GET", "/admin/shards", "bad");
    await get("GET", "/metrics", "scraper");
    child.kill("SIGHUP");
    await new Promise((resolve) => setTimeout(resolve, 200));
    child.kill("SIGTERM");
    await exited;
    // Also a failed start that names the password's user: the error must not carry the password.
    const wrong = join(dir, "pw-wrong");
    writeFileSync(wrong, `${PASSWORD}-not`);
    const failed = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [BIN, ...args.map((a) => (a === pwFile ? wrong : a)), "--statement-timeout-ms", "1000"], { stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      c.stdout.on("data", (b: Buffer) => (text += b.toString()));
      c.stderr.on("data", (b: Buffer) => (text += b.toString()));
      const timer = setTimeout(() => c.kill("SIGTERM"), 8_000);
      c.once("exit", () => (clearTimeout(timer), resolve(text)));
    });
    const everything = [out, failed, ...bodies].join("\n");
    expect(everything).toContain("sc_app"); // the outputs are there, and talk about the user
    for (const secret of [PASSWORD, ...Object.values(TOKENS)]) expect(everything).not.toContain(secret);
  });
});

const header = (who: Who): Record<string, string> =>
  who === "none" ? {} : who === "bad" ? { Authorization: "Bearer tok-guessed-000000000" } : who === "malformed" ? { Authorization: `Token ${TOKENS.ops}` } : { Authorization: `Bearer ${TOKENS[who]}` };
