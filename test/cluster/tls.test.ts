// `cluster up --tls` (runtime/cluster/tls.ts): a local CA, MariaDB with
// require_secure_transport and etcd with client-certificate auth, all real
// processes started here. A plain-text connection is refused by the shard and
// by etcd, a client that does not trust the CA is refused too, and
// `speccommit serve` (a child process, as an operator runs it) commits a
// transfer over TLS as the least-privilege user.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { down, readClusterFile } from "../../runtime/cluster/cluster.ts";
import { loadConfig } from "../../runtime/config.ts";
import { clusterAddresses } from "../../runtime/main.ts";
import { startServer } from "../../runtime/server.ts";
import { DATABASE, SHARD_USER } from "../../runtime/cluster/schema.ts";
import { ensureCertificates, type TlsFiles } from "../../runtime/cluster/tls.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
let tls: TlsFiles;
let otherDir: string;
/** A CA of its own, which signed none of the cluster's certificates. */
let foreign: TlsFiles;

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100, tls: true });
  tls = cluster.describe().tls!;
  otherDir = mkdtempSync(join(tmpdir(), "speccommit-foreign-ca-"));
  foreign = await ensureCertificates(otherDir);
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(otherDir, { recursive: true, force: true });
});

const port = (shard: string) => cluster.shard(shard).db.port;
const passwordOf = (shard: string) => readFileSync(cluster.describe().shards.find((s) => s.name === shard)!.passwordFile, "utf8").trim();

async function connectError(opts: mysql.ConnectionOptions): Promise<string> {
  try {
    const c = await mysql.createConnection({ host: "127.0.0.1", database: DATABASE, connectTimeout: 2_000, ...opts });
    await c.end();
    return "connected";
  } catch (e) {
    return (e as Error).message;
  }
}

/** One request to etcd's client port; the status, or the error's message. */
function etcdHttp(url: string, opts: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {}): Promise<string> {
  if (url.startsWith("http:")) {
    return fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      async (r) => `${r.status} ${await r.text()}`,
      (e: Error) => `error ${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`,
    );
  }
  return new Promise((resolve) => {
    const req = httpsRequest(url, { ...opts, timeout: 2_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(`${res.statusCode}`));
    });
    req.on("error", (e) => resolve(`error ${e.message}`));
    req.end();
  });
}

describe("cluster up --tls", () => {
  it("makes a CA, server and client certificates, keys of mode 0600", () => {
    for (const key of [tls.key, tls.clientKey]) expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(tls.ca, "utf8")).toMatch(/BEGIN CERTIFICATE/);
    expect(cluster.etcd.clientUrl).toMatch(/^https:\/\//);
  });

  it("the shard refuses a plain-text connection, for root and for the shard user; a TLS one works", async () => {
    // MariaDB 10.11 answers a plain connection under require_secure_transport with error 1045 "Access denied";
    // the same user and password over TLS get in, so the transport is what is refused.
    const ssl = { ca: readFileSync(tls.ca, "utf8"), rejectUnauthorized: true };
    for (const shard of ["shard-a", "shard-b"]) {
      expect(await connectError({ port: port(shard), user: "root" })).toMatch(/^Access denied for user 'root'/);
      expect(await connectError({ port: port(shard), user: "root", ssl })).toBe("connected");
      expect(await connectError({ port: port(shard), user: SHARD_USER, password: passwordOf(shard) })).toMatch(/^Access denied for user 'speccommit'/);
      expect(await connectError({ port: port(shard), user: SHARD_USER, password: passwordOf(shard), ssl })).toBe("connected");
    }
  });

  it("the shard user's account itself requires TLS (REQUIRE SSL), so require_secure_transport is not the only guard", async () => {
    const root = await cluster.shard("shard-a").connect();
    const [rows] = await root.query("SELECT ssl_type FROM mysql.user WHERE User = ? AND Host = '127.0.0.1'", [SHARD_USER]);
    expect(rows).toEqual([{ ssl_type: "ANY" }]);
    await root.end();
  });

  it("a client verifies the shard: one that trusts another CA is refused", async () => {
    const message = await connectError({ port: port("shard-a"), user: SHARD_USER, password: passwordOf("shard-a"), ssl: { ca: readFileSync(foreign.ca, "utf8"), rejectUnauthorized: true } });
    expect(message).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it("etcd refuses plain HTTP and a TLS client without a certificate of the CA; answers one with it", async () => {
    const httpsUrl = `${cluster.etcd.clientUrl}/health`;
    const plain = await etcdHttp(httpsUrl.replace("https:", "http:"));
    expect(plain).not.toMatch(/^200/);
    expect(plain).not.toMatch(/"health"/);
    const noCert = await etcdHttp(httpsUrl, { ca: readFileSync(tls.ca) });
    expect(noCert).toMatch(/^error/);
    const wrongCert = await etcdHttp(httpsUrl, { ca: readFileSync(tls.ca), cert: readFileSync(foreign.clientCert), key: readFileSync(foreign.clientKey) });
    expect(wrongCert).toMatch(/^error/);
    expect(await etcdHttp(httpsUrl, { ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey) })).toBe("200");

    // etcd3 (gRPC), as the server uses it: without credentials on the https URL's port, no answer.
    const plainClient = new Etcd3({ hosts: httpsUrl.replace("https:", "http:").replace("/health", ""), dialTimeout: 1_000 });
    await expect(plainClient.get("x").string()).rejects.toThrow();
    plainClient.close();
    expect(await cluster.etcdClient().put("tls-test").value("ok").then(() => "ok")).toBe("ok");
  });
});

describe("speccommit serve on a TLS cluster", () => {
  let server: ServerProcess | undefined;
  let dir: string;

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const sslAccepts = async (shard: string) => {
    const c = await cluster.shard(shard).connect();
    const [rows] = await c.query("SELECT VARIABLE_VALUE AS n FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SSL_FINISHED_ACCEPTS'");
    await c.end();
    return Number((rows as Array<{ n: string }>)[0]!.n);
  };

  it("commits a transfer over TLS to both shards and etcd, as the shard user", async () => {
    dir = mkdtempSync(join(tmpdir(), "speccommit-tls-serve-"));
    const clusterFile = join(dir, "cluster.json");
    writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
    const before = [await sslAccepts("shard-a"), await sslAccepts("shard-b")];
    server = await startServerProcess(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "tls/"]);
    const r = await fetch(`${server.url}/transfer`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: 1, delta: -250 }, { shard_id: "shard-b", account_id: 101, delta: 250 }] }),
    });
    const body = (await r.json()) as { status: string; tx: string };
    expect([r.status, body.status], server.output()).toEqual([200, "committed"]);

    // Every shard connection of the server is TLS: its sessions are of the shard user (REQUIRE SSL; root is this test) and
    // the shards counted new TLS handshakes; the decision went through etcd over TLS (the server has no other etcd).
    const after = [await sslAccepts("shard-a"), await sslAccepts("shard-b")];
    expect(after[0]).toBeGreaterThan(before[0]!);
    expect(after[1]).toBeGreaterThan(before[1]!);
    const root = await cluster.shard("shard-b").connect();
    const [users] = await root.query("SELECT DISTINCT USER AS u FROM information_schema.PROCESSLIST WHERE DB = ? AND USER <> 'root'", [DATABASE]);
    expect((users as Array<{ u: string }>).map((u) => u.u)).toEqual([SHARD_USER]);
    const [hist] = await root.query("SELECT delta FROM history WHERE xid = ?", [body.tx]);
    expect(hist).toEqual([{ delta: "250" }]);
    await root.end();
  });
});

describe("serve with the TLS files as flags (shards and etcd elsewhere, no cluster file)", () => {
  it("commits a transfer with --shards, https --etcd, --mysql-ssl-ca, --etcd-ca/cert/key and the shard user; refuses a certificate without its key", async () => {
    const d = cluster.describe();
    const argv = [
      "--auth", "none", "--port", "0", "--etcd-prefix", "flags/", "--resolver-interval-ms", "60000",
      "--shards", d.shards.map((s) => `${s.name}=127.0.0.1:${s.port}`).join(","),
      "--etcd", d.etcd.clientUrl,
      "--mysql-user", SHARD_USER, "--mysql-password-file", d.shards[0]!.passwordFile,
      "--mysql-ssl-ca", tls.ca,
      "--etcd-ca", tls.ca, "--etcd-cert", tls.clientCert, "--etcd-key", tls.clientKey,
    ];
    // One password for every shard with --shards: give shard-b shard-a's for this test.
    const root = await cluster.shard("shard-b").connect();
    await root.query(`ALTER USER '${SHARD_USER}'@'127.0.0.1' IDENTIFIED BY ?`, [passwordOf("shard-a")]);
    const loaded = loadConfig({ argv, env: {} });
    if (loaded.help) throw new Error("help");
    const server = await startServer(loaded.config, await clusterAddresses(loaded.config, () => {}));
    try {
      const r = await fetch(`${server.url}/transfer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: 2, delta: -10 }, { shard_id: "shard-b", account_id: 102, delta: 10 }] }),
      });
      expect([r.status, ((await r.json()) as { status: string }).status]).toEqual([200, "committed"]);
    } finally {
      await server.close(1_000);
      await root.query(`ALTER USER '${SHARD_USER}'@'127.0.0.1' IDENTIFIED BY ?`, [readFileSync(d.shards[1]!.passwordFile, "utf8").trim()]);
      await root.end();
    }
    const without = argv.filter((a, i) => a !== "--etcd-key" && argv[i - 1] !== "--etcd-key");
    expect(() => loadConfig({ argv: without, env: {} })).toThrow(/etcd_cert and etcd_key go together/);
  });
});

describe("speccommit cluster up --tls (the CLI, detached servers)", () => {
  const BIN = fileURLToPath(new URL("../../bin/speccommit.js", import.meta.url));
  const cli = (...args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [BIN, "cluster", ...args], { timeout: 90_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, out: stdout + stderr });
      });
    });
  let dir: string;

  afterAll(async () => {
    if (readClusterFile(dir) !== undefined) await down({ dir });
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts TLS-only servers, keeps TLS on the next up, status sees them up, and TLS stays required", async () => {
    dir = mkdtempSync(join(tmpdir(), "speccommit-tls-cli-"));
    const first = await cli("up", "--dir", dir, "--tls", "--shards", "1", "--accounts", "10");
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/TLS required on every shard and on etcd/);
    const file = readClusterFile(dir)!;
    expect(file.tls?.ca).toBe(join(dir, "tls", "ca.crt"));
    expect(file.etcd.clientUrl).toMatch(/^https:/);
    const plain = await connectError({ port: file.shards[0]!.port, user: "root" });
    expect(plain).toMatch(/^Access denied/);

    const again = await cli("up", "--dir", dir);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/reused shard-a, etcd/);
    expect((await cli("status", "--dir", dir)).code).toBe(0);
  });
});
