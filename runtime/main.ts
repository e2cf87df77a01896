/**
 * `speccommit serve` (`npm start`): the coordinator server.
 *
 * Without --cluster-file or --shards/--etcd it brings the local cluster up in
 * --cluster-dir (runtime/cluster, reusing servers that already run), then
 * serves. With them it only connects, which is how tests and the benchmark
 * start it as a child process:
 *
 *   node bin/speccommit.js serve --cluster-file /tmp/x/cluster.json --port 0
 *
 * Once it listens it prints one line `speccommit: listening on <url>` (the
 * port resolved when --port 0), then the URLs and a curl example. SIGTERM or
 * SIGINT: drain (running transactions finish for up to shutdown_grace_ms,
 * every request read is answered, docs/operations.md "Shutdown"), exit 0; a
 * second signal exits at once.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Schema } from "effect";
import type { ShardAddress, ShardTls } from "./adapters/mysql-pool.ts";
import type { EtcdTls } from "./adapters/txlog-etcd.ts";
import { up } from "./cluster/cluster.ts";
import { DATABASE } from "./cluster/schema.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { credentialsOf, redact, TokensFileError } from "./auth.ts";
import { startServer, type ClusterAddresses, type RunningServer } from "./server.ts";

const ClusterFileSchema = Schema.Struct({
  shards: Schema.Array(
    Schema.Struct({
      name: Schema.String,
      port: Schema.Int,
      /** Where it is reached over TCP (default 127.0.0.1): a coordinator in a network namespace reaches the shards at the veth pair's root side (runtime/cluster/netns.ts). */
      host: Schema.optional(Schema.String),
      dataDir: Schema.optional(Schema.String),
      user: Schema.optional(Schema.String),
      passwordFile: Schema.optional(Schema.String),
    }),
  ),
  etcd: Schema.Struct({ clientUrl: Schema.String }),
  /** Several etcd members (`cluster up --etcd-members 3`): every client URL goes to the client. */
  etcdMembers: Schema.optional(Schema.Array(Schema.Struct({ clientUrl: Schema.String }))),
  tls: Schema.optional(Schema.Struct({ ca: Schema.String, clientCert: Schema.String, clientKey: Schema.String })),
});

/** TLS files (paths) for the shards and etcd; a cluster file made by `cluster up --tls` fills what is absent. */
export interface TlsPaths {
  readonly mysql_ssl_ca?: string;
  readonly mysql_ssl_cert?: string;
  readonly mysql_ssl_key?: string;
  readonly etcd_ca?: string;
  readonly etcd_cert?: string;
  readonly etcd_key?: string;
}

function readTlsFile(setting: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    // Names the file, never its content (a key).
    throw new ConfigError(`${setting} ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
  }
}

/** mysql2's `ssl` for the shards, when TLS to them is configured. */
export function shardTlsOf(t: TlsPaths): ShardTls | undefined {
  if (t.mysql_ssl_ca === undefined) return undefined;
  return {
    ca: readTlsFile("mysql_ssl_ca", t.mysql_ssl_ca),
    ...(t.mysql_ssl_cert !== undefined ? { cert: readTlsFile("mysql_ssl_cert", t.mysql_ssl_cert) } : {}),
    ...(t.mysql_ssl_key !== undefined ? { key: readTlsFile("mysql_ssl_key", t.mysql_ssl_key) } : {}),
    rejectUnauthorized: true,
    verifyIdentity: true,
  };
}

/** etcd3's credentials, when a CA for etcd is configured. */
export function etcdTlsOf(t: TlsPaths): EtcdTls | undefined {
  if (t.etcd_ca === undefined) return undefined;
  return {
    ca: Buffer.from(readTlsFile("etcd_ca", t.etcd_ca)),
    ...(t.etcd_cert !== undefined ? { cert: Buffer.from(readTlsFile("etcd_cert", t.etcd_cert)) } : {}),
    ...(t.etcd_key !== undefined ? { key: Buffer.from(readTlsFile("etcd_key", t.etcd_key)) } : {}),
  };
}

/** The configured TLS paths, completed by a TLS cluster file's CA and client certificate. */
function tlsPathsWith(t: TlsPaths, file: { ca: string; clientCert: string; clientKey: string } | undefined): TlsPaths {
  if (file === undefined) return t;
  const etcdOwn = t.etcd_cert !== undefined;
  return {
    ...t,
    mysql_ssl_ca: t.mysql_ssl_ca ?? file.ca,
    etcd_ca: t.etcd_ca ?? file.ca,
    etcd_cert: etcdOwn ? t.etcd_cert : file.clientCert,
    etcd_key: etcdOwn ? t.etcd_key : file.clientKey,
  };
}

export interface AddressOptions {
  /** Absent (and no password): each shard's own user and password file from the cluster description (`cluster up` makes them), else root. */
  readonly user?: string;
  /** With `user`: the password for every shard. */
  readonly password?: string;
  /** Talk to a shard over its unix socket (<dataDir>/mysqld.sock) when it exists and TLS is not configured; default true. */
  readonly unixSocket?: boolean;
  readonly tls?: TlsPaths;
}

export function addressesFromClusterFile(path: string, opts: AddressOptions = {}): ClusterAddresses {
  let file: typeof ClusterFileSchema.Type;
  try {
    file = Schema.decodeUnknownSync(ClusterFileSchema)(JSON.parse(readFileSync(path, "utf8")));
  } catch (e) {
    throw new ConfigError(`cluster file ${path}: ${(e as Error).message}`);
  }
  return addressesOfCluster(file, opts);
}

/**
 * The addresses in a cluster description (cluster.json's content, or a test
 * cluster's describe()). A local shard is reached over its unix socket when
 * there is one: a statement then costs about half the CPU of loopback TCP
 * (measured here: 13-25 us against 22-48 us per round trip).
 */
export function addressesOfCluster(file: typeof ClusterFileSchema.Type, opts: AddressOptions = {}): ClusterAddresses {
  const tls = tlsPathsWith(opts.tls ?? {}, file.tls);
  const ssl = shardTlsOf(tls);
  const etcdTls = etcdTlsOf(tls);
  return {
    ...(etcdTls !== undefined ? { etcdTls } : {}),
    shards: file.shards.map((s) => {
      const socket = s.dataDir !== undefined ? join(s.dataDir, "mysqld.sock") : undefined;
      // TLS configured means TLS used: not the socket, which would carry the traffic without it.
      const useSocket = (opts.unixSocket ?? true) && ssl === undefined && socket !== undefined && existsSync(socket);
      const own = opts.user === undefined && opts.password === undefined && s.user !== undefined;
      const password = own ? (s.passwordFile !== undefined ? readPasswordFile(s.passwordFile, s.name) : undefined) : opts.password;
      return shardAddress(s.name, s.host ?? "127.0.0.1", s.port, own ? s.user! : (opts.user ?? "root"), password, useSocket ? socket : undefined, ssl);
    }),
    etcd: (file.etcdMembers ?? [file.etcd]).map((m) => m.clientUrl),
  };
}

function readPasswordFile(path: string, shard: string): string {
  try {
    return readFileSync(path, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    // The error names the file, never its content.
    throw new ConfigError(`${shard}: password file ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
  }
}

function shardAddress(name: string, host: string, port: number, user: string, password?: string, socketPath?: string, ssl?: ShardTls): ShardAddress {
  return {
    name,
    host,
    port,
    user,
    database: DATABASE,
    ...(password !== undefined ? { password } : {}),
    ...(socketPath !== undefined ? { socketPath } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
  };
}

/** The cluster to use: the one named by the configuration, else the local one, brought up now. */
export async function clusterAddresses(config: Config, log: (line: string) => void): Promise<ClusterAddresses> {
  const opts: AddressOptions = {
    unixSocket: config.shard_unix_socket,
    ...(config.mysql_user !== undefined ? { user: config.mysql_user } : {}),
    ...(config.mysql_password !== undefined ? { password: config.mysql_password } : {}),
    tls: config,
  };
  if (config.cluster_file !== undefined) return addressesFromClusterFile(config.cluster_file, opts);
  if (config.shards !== undefined && config.etcd !== undefined) {
    const ssl = shardTlsOf(config);
    const etcdTls = etcdTlsOf(config);
    return {
      shards: config.shards.split(",").map((part) => {
        const [name, addr] = part.split("=") as [string, string];
        const i = addr.lastIndexOf(":");
        return shardAddress(name, addr.slice(0, i), Number(addr.slice(i + 1)), config.mysql_user ?? "root", config.mysql_password, undefined, ssl);
      }),
      etcd: config.etcd.split(","),
      ...(etcdTls !== undefined ? { etcdTls } : {}),
    };
  }
  const r = await up({ dir: config.cluster_dir, log });
  log(`cluster in ${r.cluster.dir}: ${r.reused.length > 0 ? `reused ${r.reused.join(", ")}` : "started"} (${r.totalMs} ms)`);
  return addressesFromClusterFile(`${r.cluster.dir}/cluster.json`, opts);
}

export async function main(argv: string[]): Promise<number> {
  // Several coordinator processes, supervised (runtime/cluster/supervise.ts).
  if (argv.some((a) => a === "--coordinators" || a.startsWith("--coordinators="))) return (await import("./cluster/supervise.ts")).superviseCoordinators(argv);
  let config: Config;
  try {
    const loaded = loadConfig({ argv, env: process.env });
    if (loaded.help) {
      console.log(loaded.usage);
      return 0;
    }
    config = loaded.config;
    for (const w of loaded.warnings) console.error(`speccommit serve: warning: ${w}`);
    // A wrong tokens file stops the start before a cluster is brought up.
    credentialsOf(config, (p) => readFileSync(p, "utf8"));
  } catch (e) {
    if (e instanceof ConfigError || e instanceof TokensFileError || (e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "EACCES") {
      console.error(`speccommit serve: ${(e as Error).message}`);
      return 2;
    }
    throw e;
  }
  let server: RunningServer;
  try {
    const cluster = await clusterAddresses(config, (line) => console.log(line));
    server = await startServer(config, cluster);
  } catch (e) {
    const text = e instanceof ConfigError ? e.message : ((e as Error).stack ?? String(e));
    console.error(`speccommit serve: ${redact(text, [config.mysql_password, config.admin_token, config.metrics_token])}`);
    return 1;
  }
  console.log(`speccommit: listening on ${server.url} (node ${config.node})\n${banner(server, config)}`);
  if (config.auth === "none") console.error(AUTH_OFF);
  if (config.auth === "none" && !["127.0.0.1", "::1", "localhost"].includes(config.host)) {
    console.error(`  !!! and it listens on ${config.host}, not loopback: other hosts can reach it. !!!\n`);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        console.error(`speccommit: ${signal} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      console.log(`speccommit: ${signal}: finishing running transactions (up to ${config.shutdown_grace_ms} ms)`);
      void server.close().then(
        () => {
          console.log("speccommit: stopped");
          resolve(0);
        },
        (e: unknown) => {
          console.error(`speccommit: shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on("SIGHUP", () => {
      try {
        console.log(`speccommit: SIGHUP: ${server.reloadCredentials()} credentials loaded`);
      } catch (e) {
        console.error(`speccommit: SIGHUP: credentials unchanged: ${(e as Error).message}`);
      }
      try {
        const notAfter = server.reloadTls();
        if (notAfter !== null) console.log(`speccommit: SIGHUP: certificate reloaded for new connections (valid until ${notAfter})`);
      } catch (e) {
        console.error(`speccommit: SIGHUP: certificate unchanged: ${(e as Error).message}`);
      }
    });
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}

const AUTH_OFF = [
  "",
  "  !!! AUTHENTICATION IS OFF (--auth none): anyone who can reach this port can move money. !!!",
  "  !!! Local development only. For anything else: --tokens-file (docs/security.md).        !!!",
  "",
].join("\n");

function banner(s: RunningServer, config: Config): string {
  const shards = s.accounts.shards;
  const a = shards[0]!;
  const b = shards[1] ?? a;
  const from = s.accounts.describe(a)?.first ?? 1;
  const to = b === a ? from + 1 : (s.accounts.describe(b)?.first ?? 1);
  const body = JSON.stringify({
    ops: [
      { shard_id: a, account_id: from, delta: "-50.00" },
      { shard_id: b, account_id: to, delta: "50.00" },
    ],
  });
  return [
    `  POST ${s.url}/transfer`,
    `  GET  ${s.url}/transactions/<tx>   ${s.url}/accounts/${a}/${from}`,
    `  GET  ${s.url}/healthz   ${s.url}/ready   ${s.url}/admin/shards   ${s.url}/metrics`,
    config.auth === "none"
      ? `auth: NONE (every route open${config.admin_token !== undefined ? "; /admin/* needs admin_token" : ""}${config.metrics_token !== undefined ? "; /metrics needs metrics_token" : ""})`
      : `auth: bearer tokens, ${s.credentials} credentials (${config.tokens_file ?? "legacy tokens"}); the probes /healthz /health /ready are open`,
    `node: ${config.node} (lease ${config.lease_ttl_ms} ms)   shards: ${shards.join(", ")} (epoch ${s.engine.epoch})`,
    s.tracing !== undefined ? `OpenTelemetry: spans to ${s.tracing.url} (OTLP/HTTP)` : "OpenTelemetry: off (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT turns it on)",
    "try:",
    `  curl -s${s.url.startsWith("https:") ? " --cacert <CA of tls_cert>" : ""} -X POST ${s.url}/transfer -H 'Content-Type: application/json'${config.auth === "none" ? "" : " -H \"Authorization: Bearer $TOKEN\""} -d '${body}'`,
  ].join("\n");
}
