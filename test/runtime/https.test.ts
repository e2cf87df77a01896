// HTTPS (--tls-cert/--tls-key, runtime/server.ts): `speccommit serve` as a
// child process serves over TLS only, a real TLS client that trusts the test
// CA commits a transfer, and SIGHUP swaps the certificate for new connections
// without dropping an open keep-alive connection; a wrong pair on SIGHUP
// leaves the old one serving.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import { ensureCertificates, type TlsFiles } from "../../runtime/cluster/tls.ts";
import { loadConfig } from "../../runtime/config.ts";
import { startTestCluster, type TestCluster } from "../support/cluster.ts";

let cluster: TestCluster;
let dir: string;
let first: TlsFiles;
let second: TlsFiles;
let server: ServerProcess;
const certFile = () => join(dir, "live.crt");
const keyFile = () => join(dir, "live.key");

beforeAll(async () => {
  cluster = await startTestCluster({ shards: 2, accountsPerShard: 100 });
  dir = mkdtempSync(join(tmpdir(), "speccommit-https-"));
  // Two CAs, each with a server certificate for 127.0.0.1: the server starts on the first and is moved to the second.
  first = await ensureCertificates(join(dir, "one"));
  second = await ensureCertificates(join(dir, "two"));
  copyFileSync(first.cert, certFile());
  copyFileSync(first.key, keyFile());
  const clusterFile = join(dir, "cluster.json");
  writeFileSync(clusterFile, JSON.stringify(cluster.describe()));
  server = await startServerProcess(["--cluster-file", clusterFile, "--port", "0", "--etcd-prefix", "https/", "--tls-cert", certFile(), "--tls-key", keyFile()]);
});

afterAll(async () => {
  await server?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  /** The TLS socket the request went over (to tell a reused connection from a new one). */
  socket: TLSSocket;
  /** SHA-256 of the certificate the server presented on this connection. */
  fingerprint: string;
}

function call(agent: https.Agent, path: string, json?: unknown): Promise<Answer> {
  const url = new URL(path, server.url);
  const payload = json === undefined ? undefined : JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: payload === undefined ? "GET" : "POST", agent, headers: payload === undefined ? {} : { "Content-Type": "application/json" } },
      (res) => {
        // Read before the end: then the agent takes the socket back.
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), socket, fingerprint }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const agentTrusting = (files: TlsFiles, keepAlive = true) => new https.Agent({ ca: readFileSync(files.ca), keepAlive, maxSockets: 1 });

describe("HTTPS", () => {
  it("listens on https only; a client trusting the CA commits a transfer; plain HTTP gets no answer; a client trusting another CA is refused", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const agent = agentTrusting(first);
    const r = await call(agent, "/transfer", { ops: [{ shard_id: "shard-a", account_id: 1, delta: -100 }, { shard_id: "shard-b", account_id: 101, delta: 100 }] });
    expect([r.status, JSON.parse(r.body).status]).toEqual([200, "committed"]);
    agent.destroy();

    const plain = await fetch(server.url.replace("https:", "http:") + "/healthz", { signal: AbortSignal.timeout(2_000) }).then(
      (res) => `answered ${res.status}`,
      (e: Error) => `error ${e.message}`,
    );
    expect(plain).not.toMatch(/^answered 200/);

    const stranger = agentTrusting(second, false);
    await expect(call(stranger, "/healthz")).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    stranger.destroy();
  });

  it("SIGHUP: new connections get the new certificate, an open keep-alive connection goes on; a wrong pair keeps the current one", async () => {
    const held = agentTrusting(first);
    const before = await call(held, "/healthz");
    expect(before.status).toBe(200);

    copyFileSync(second.cert, certFile());
    copyFileSync(second.key, keyFile());
    const logged = waitFor(() => server.output().includes("certificate reloaded for new connections"));
    process.kill(server.pid, "SIGHUP");
    await logged;

    // The held connection was not dropped: the same socket answers, still with the certificate it began with.
    const again = await call(held, "/healthz");
    expect(again.status).toBe(200);
    expect(again.socket).toBe(before.socket);
    expect(before.fingerprint).toBe(new X509Certificate(readFileSync(first.cert)).fingerprint256);
    expect(again.fingerprint).toBe(before.fingerprint);
    held.destroy();

    // A new connection gets the new certificate: refused by a client of the old CA, accepted by one of the new.
    const old = agentTrusting(first, false);
    await expect(call(old, "/healthz")).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    old.destroy();
    const fresh = agentTrusting(second, false);
    const renewed = await call(fresh, "/healthz");
    expect([renewed.status, renewed.fingerprint]).toEqual([200, new X509Certificate(readFileSync(second.cert)).fingerprint256]);

    // A key that does not belong to the certificate: the reload fails, the second pair keeps serving.
    copyFileSync(first.key, keyFile());
    const refused = waitFor(() => server.output().includes("certificate unchanged"));
    process.kill(server.pid, "SIGHUP");
    await refused;
    expect(server.output()).toMatch(/certificate unchanged: tls_cert .* and tls_key .*: .*key values mismatch/);
    expect((await call(fresh, "/healthz")).status).toBe(200);
    fresh.destroy();
  });

  it("refuses a certificate without its key at start (exit 2 names the settings)", () => {
    expect(() => loadConfig({ argv: ["--auth", "none", "--tls-cert", certFile()], env: {} })).toThrow(/tls_cert and tls_key go together/);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
