/**
 * A local certificate authority and the certificates of a TLS cluster
 * (`cluster up --tls`), made with openssl (Debian's package, always present
 * with MariaDB). Layout of `<dir>/tls/` (the keys mode 0600):
 *
 *   ca.crt ca.key          the CA (EC P-256, 10 years): what every client trusts
 *   server.crt server.key  MariaDB's and etcd's certificate: SAN IP:127.0.0.1, DNS:localhost
 *   client.crt client.key  the client certificate etcd requires (--client-cert-auth), CN speccommit
 *
 * Made once; an existing complete set is kept (so a restart keeps the
 * clients' trust). Not for production: there the operator's own CA issues
 * them, and the server takes the files (docs/security.md).
 */
import { execFile } from "node:child_process";
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ShardTls } from "../adapters/mysql-pool.ts";
import { requireBinary } from "./system.ts";
import { makeDirsSync } from "../../traces/dirs.ts";

export interface TlsFiles {
  /** The CA that signed the servers' certificates: what a client verifies them with. */
  ca: string;
  cert: string;
  key: string;
  /** A client certificate signed by the same CA (etcd requires one). */
  clientCert: string;
  clientKey: string;
}

const DAYS = 3650;
const OPENSSL_TIMEOUT_MS = 30_000;

export const tlsDirOf = (dir: string) => join(resolve(dir), "tls");

export function tlsFilesIn(tlsDir: string): TlsFiles {
  return {
    ca: join(tlsDir, "ca.crt"),
    cert: join(tlsDir, "server.crt"),
    key: join(tlsDir, "server.key"),
    clientCert: join(tlsDir, "client.crt"),
    clientKey: join(tlsDir, "client.key"),
  };
}

function openssl(args: string[], cwd: string): Promise<void> {
  const bin = requireBinary("openssl");
  return new Promise((ok, fail) => {
    execFile(bin, args, { cwd, timeout: OPENSSL_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err) fail(new Error(`openssl ${args[0]} failed: ${err.message}\n${stderr.trim().split("\n").slice(-10).join("\n")}`));
      else ok();
    });
  });
}

async function issue(d: string, name: string, subject: string, ext: string): Promise<void> {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`], d);
  await openssl(["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`], d);
  writeFileSync(join(d, `${name}.ext`), ext);
  await openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", String(DAYS), "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`], d);
  rmSync(join(d, `${name}.csr`));
  rmSync(join(d, `${name}.ext`));
}

/** The CA and certificates in `<dir>/tls/`, made when missing (in a staging directory renamed into place). */
export async function ensureCertificates(dir: string): Promise<TlsFiles> {
  const tlsDir = tlsDirOf(dir);
  const files = tlsFilesIn(tlsDir);
  if (Object.values(files).every((f) => existsSync(f))) return files;
  const staging = `${tlsDir}.making`;
  rmSync(staging, { recursive: true, force: true });
  makeDirsSync(staging, 0o700);
  try {
    await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"], staging);
    await openssl(["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=speccommit local CA", "-days", String(DAYS), "-sha256", "-out", "ca.crt"], staging);
    await issue(staging, "server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
    await issue(staging, "client", "/CN=speccommit", "extendedKeyUsage=clientAuth\n");
    for (const key of ["ca.key", "server.key", "client.key"]) chmodSync(join(staging, key), 0o600);
    rmSync(tlsDir, { recursive: true, force: true });
    renameSync(staging, tlsDir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return files;
}

/** What mysql2's `ssl` option takes to verify a MariaDB server by this CA (and present a client certificate, when given). */
export type MysqlSsl = ShardTls;

export function mysqlSslOf(files: { ca: string; cert?: string; key?: string }): MysqlSsl {
  return {
    ca: readFileSync(files.ca, "utf8"),
    ...(files.cert !== undefined ? { cert: readFileSync(files.cert, "utf8") } : {}),
    ...(files.key !== undefined ? { key: readFileSync(files.key, "utf8") } : {}),
    rejectUnauthorized: true,
    verifyIdentity: true,
  };
}
