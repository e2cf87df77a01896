/**
 * Server configuration: defaults, then a JSON file (--config / SPECCOMMIT_CONFIG),
 * then environment variables (SPECCOMMIT_<NAME>), then flags (--<name>), the
 * later winning. Every value is decoded with effect's Schema, one setting at a
 * time, so a wrong value gets a message naming the setting, where it came
 * from, what is wrong and what is allowed. docs/operations.md lists them.
 *
 * Names carry their unit (`_ms`, `_bytes`). In flags, `_` is written `-`:
 * `resolver_interval_ms` is `--resolver-interval-ms 2000` or
 * `SPECCOMMIT_RESOLVER_INTERVAL_MS=2000` or `"resolver_interval_ms": 2000`.
 */
import { readFileSync } from "node:fs";
import { Schema } from "effect";
import { DEFAULT_PROTOCOL, PROTOCOLS, type ProtocolName } from "../spec/protocols/registry.ts";
import { otlpTracesUrl } from "./tracing.ts";

const int = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }));

/** The deadlock detector's shortest interval: InnoDB's lock-wait tables are a cache refreshed only when unread for 100 ms. */
export const DEADLOCK_INTERVAL_MS_MIN = 110;

interface Setting {
  readonly schema: Schema.Top;
  readonly allowed: string;
  readonly doc: string;
  /** Absent: the setting is optional and has no default. */
  readonly default?: unknown;
  /** The value is a secret: never printed. */
  readonly secret?: boolean;
}

/** Below an hour a key could expire while a client still retries an answer it did not get; see checkBounds. */
const RETENTION_MS_MIN = 3_600_000;
/** An idempotency claim must outlive the longest a transfer's fate can stay open by this factor (checkBounds). */
const RETENTION_OVER_TRANSFER_MIN = 10;

/** A coordinator's name (--node): short, so that "<node>.<uuid>" fits an XA gtrid (64 bytes). */
export const NODE_PATTERN = /^[a-z0-9-]{1,16}$/;

const SHARDS_PATTERN = /^[a-z0-9][a-z0-9_.:-]{0,63}=[A-Za-z0-9_.-]+:\d{1,5}(,[a-z0-9][a-z0-9_.:-]{0,63}=[A-Za-z0-9_.-]+:\d{1,5})*$/;

export const SETTINGS = {
  port: { schema: int(0, 65535), allowed: "an integer from 0 to 65535 (0: any free port)", doc: "HTTP port", default: 8080 },
  host: { schema: Schema.NonEmptyString, allowed: "a host name or address", doc: "HTTP listen address", default: "127.0.0.1" },
  cluster_dir: {
    schema: Schema.NonEmptyString,
    allowed: "a directory path",
    doc: "local cluster directory: `npm start` brings the cluster up there (reusing what runs)",
    default: ".speccommit",
  },
  cluster_file: {
    schema: Schema.NonEmptyString,
    allowed: "the path of a cluster.json",
    doc: "connect to the cluster this file describes instead of bringing one up",
  },
  shards: {
    schema: Schema.String.check(Schema.isPattern(SHARDS_PATTERN)),
    allowed: "name=host:port[,name=host:port...], e.g. shard-a=127.0.0.1:3306,shard-b=127.0.0.1:3307",
    doc: "connect to these MariaDB shards (needs --etcd too) instead of bringing a cluster up",
  },
  etcd: {
    schema: Schema.String.check(Schema.isPattern(/^https?:\/\/[^,\s]+(,https?:\/\/[^,\s]+)*$/)),
    allowed: "etcd client URLs, comma-separated, e.g. http://127.0.0.1:2379",
    doc: "etcd endpoints (with --shards)",
  },
  mysql_user: {
    schema: Schema.NonEmptyString,
    allowed: "a MariaDB user name",
    doc: "user for every shard (default: with a cluster file, each shard's least-privilege user and password file that `cluster up` made; else root)",
  },
  mysql_password: {
    schema: Schema.String,
    allowed: "a string",
    doc: "password for every shard (prefer --mysql-password-file or the environment: a flag is visible in ps)",
    secret: true,
  },
  mysql_password_file: {
    schema: Schema.NonEmptyString,
    allowed: "a file path",
    doc: "file holding the shards' password (one trailing newline is dropped); not with mysql_password",
  },
  tls_cert: {
    schema: Schema.NonEmptyString,
    allowed: "a file path (PEM)",
    doc: "HTTPS: the server's certificate (chain), with tls_key; both reread on SIGHUP (connections open stay on the certificate they began with)",
  },
  tls_key: { schema: Schema.NonEmptyString, allowed: "a file path (PEM)", doc: "HTTPS: the key of tls_cert (keep it mode 0600)" },
  mysql_ssl_ca: {
    schema: Schema.NonEmptyString,
    allowed: "a file path (PEM)",
    doc: "TLS to every shard, verifying its certificate (and its IP or name) by this CA; shards are then reached over TCP, never the unix socket (default with a cluster file made by `cluster up --tls`: its CA)",
  },
  mysql_ssl_cert: { schema: Schema.NonEmptyString, allowed: "a file path (PEM)", doc: "client certificate for the shards (with mysql_ssl_key and mysql_ssl_ca)" },
  mysql_ssl_key: { schema: Schema.NonEmptyString, allowed: "a file path (PEM)", doc: "key of mysql_ssl_cert" },
  etcd_ca: {
    schema: Schema.NonEmptyString,
    allowed: "a file path (PEM)",
    doc: "CA that signed etcd's certificate, for https:// etcd URLs (default with a cluster file made by `cluster up --tls`: its CA)",
  },
  etcd_cert: { schema: Schema.NonEmptyString, allowed: "a file path (PEM)", doc: "client certificate for etcd (--client-cert-auth), with etcd_key (default with a TLS cluster file: its client certificate)" },
  etcd_key: { schema: Schema.NonEmptyString, allowed: "a file path (PEM)", doc: "key of etcd_cert" },
  shard_unix_socket: {
    schema: Schema.Boolean,
    allowed: "true or false",
    doc: "with a cluster file: reach each shard over its unix socket (<dataDir>/mysqld.sock) when it exists",
    default: true,
  },
  etcd_prefix: {
    schema: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.\/-]{1,128}$/)),
    allowed: "1-128 characters of A-Z a-z 0-9 _ . / -",
    doc: "namespace of every etcd key this server writes",
    default: "speccommit/",
  },
  node: {
    schema: Schema.String.check(Schema.isPattern(NODE_PATTERN)),
    allowed: "1-16 characters of a-z 0-9 -",
    doc: "this coordinator's name among several over one etcd and one set of shards: its records live under <etcd_prefix>nodes/<node>/ (n1: under etcd_prefix itself, as before nodes), its xids carry it (docs/operations.md, \"Several coordinators\")",
    default: "n1",
  },
  lease_ttl_ms: {
    schema: int(2_000, 600_000),
    allowed: "an integer from 2000 to 600000 (etcd counts whole seconds: rounded up)",
    doc: "this coordinator's liveness lease: another coordinator takes its transactions over once the lease has not been kept alive this long",
    default: 3_000,
  },
  protocol: {
    schema: Schema.Literals(PROTOCOLS),
    allowed: PROTOCOLS.join(", "),
    doc: "the commit protocol of a transfer whose body names none (a body's \"protocol\" field overrides it)",
    default: DEFAULT_PROTOCOL,
  },
  resolver_interval_ms: { schema: int(50, 3_600_000), allowed: "an integer from 50 to 3600000", doc: "time between resolver scans", default: 2_000 },
  batch_max: {
    schema: int(1, 64),
    allowed: "an integer from 1 to 64",
    doc: "group commit: at most this many transaction-log writes (of any transactions) in one etcd transaction, each with its own compare and answer; at most this many speculative releases and compensations in one round trip to a shard, each its own local transaction; at most this many two-phase branches' commit-timestamp stamps in one UPDATE on a shard; 1 turns batching off",
    default: 64,
  },
  batch_wait_ms: {
    schema: int(0, 100),
    allowed: "an integer from 0 to 100",
    doc: "group commit: how long a log write waits for others to share its etcd transaction, and a release, compensation or stamp for others to share its round trip to the shard (0: only those asked for in the same turn of the event loop)",
    default: 0,
  },
  deadlock_interval_ms: {
    // InnoDB refreshes its lock-wait tables only when they were last read more than 100 ms ago (trx_i_s cache):
    // read more often, they never change. Hence the floor.
    schema: Schema.Union([Schema.Literal(0), int(DEADLOCK_INTERVAL_MS_MIN, 60_000)]),
    allowed: `0 (off) or an integer from ${DEADLOCK_INTERVAL_MS_MIN} to 60000`,
    doc: "time between the cross-shard deadlock detector's reads of every shard's lock waits (above InnoDB's 100 ms cache of them); 0 turns it off",
    default: 120,
  },
  vote_timeout_ms: { schema: int(10, 600_000), allowed: "an integer from 10 to 600000", doc: "coordinator: abort when exec+prepare take longer", default: 5_000 },
  retry_delay_ms: { schema: int(1, 60_000), allowed: "an integer from 1 to 60000", doc: "coordinator: delay before retrying a commit, rollback or log write", default: 200 },
  attempts_max: { schema: int(1, 100), allowed: "an integer from 1 to 100", doc: "coordinator: attempts per commit, rollback or log write", default: 5 },
  statement_timeout_ms: {
    schema: int(100, 600_000),
    allowed: "an integer from 100 to 600000",
    doc: "bound on one shard statement (keep it above the shards' innodb_lock_wait_timeout)",
    default: 10_000,
  },
  snapshot_wait_ms: {
    schema: int(0, 600_000),
    allowed: "an integer from 0 to 600000",
    doc: "snapshot reads: how long a read waits for safe time to reach its timestamp before 504 (docs/operations.md, Snapshot reads)",
    default: 5_000,
  },
  hlc_max_skew_ms: {
    schema: int(0, 3_600_000),
    allowed: "an integer from 0 to 3600000",
    doc: "hybrid logical clock: a timestamp a client sends (X-Speccommit-Timestamp, ?at=) more than this ahead of the server's clock is refused (400)",
    default: 500,
  },
  etcd_timeout_ms: { schema: int(50, 600_000), allowed: "an integer from 50 to 600000", doc: "deadline of one etcd call", default: 2_000 },
  in_flight_max: { schema: int(1, 100_000), allowed: "an integer from 1 to 100000", doc: "transactions running at once; past it 503 + Retry-After", default: 512 },
  shard_connections_max: {
    schema: int(2, 10_000),
    allowed: "an integer from 2 to 10000",
    doc: "connections per shard (keep it under the shards' max_connections)",
    default: 150,
  },
  body_bytes_max: { schema: int(256, 16_777_216), allowed: "an integer from 256 to 16777216", doc: "largest request body; past it 413", default: 65_536 },
  auth: {
    schema: Schema.Literals(["tokens", "none"]),
    allowed: "tokens or none",
    doc: "tokens: every route but the probes needs a bearer token of tokens_file (implied by --tokens-file); none: no authentication, for local development only (must be said)",
  },
  tokens_file: {
    schema: Schema.NonEmptyString,
    allowed: "a file path",
    doc: "credentials, one a line: name scope[,scope] sha256-of-token [not-after] (docs/security.md); reread on SIGHUP",
  },
  rate_limit_per_s: {
    schema: int(0, 1_000_000),
    allowed: "an integer from 0 (no limit) to 1000000",
    doc: "requests a second per credential (token bucket); past it 429 + Retry-After",
    default: 1_000,
  },
  rate_limit_burst: { schema: int(1, 1_000_000), allowed: "an integer from 1 to 1000000", doc: "requests a credential may make at once above its rate", default: 2_000 },
  admin_token: {
    schema: Schema.String.check(Schema.isMinLength(8)),
    allowed: "a string of 8 characters or more",
    doc: "legacy: a credential named admin_token with scope admin (with auth none: /admin/* needs it when set)",
    secret: true,
  },
  metrics_token: {
    schema: Schema.String.check(Schema.isMinLength(8)),
    allowed: "a string of 8 characters or more",
    doc: "legacy: a credential named metrics_token with scope metrics (with auth none: GET /metrics needs it when set, and is open otherwise)",
    secret: true,
  },
  shutdown_grace_ms: { schema: int(0, 600_000), allowed: "an integer from 0 to 600000", doc: "on SIGTERM/SIGINT, how long running transactions may finish", default: 10_000 },
  retain_transactions: {
    schema: int(0, 1_000_000),
    allowed: "an integer from 0 to 1000000",
    doc: "finished transactions kept in memory for GET /transactions/:id",
    default: 10_000,
  },
  record_traces: { schema: Schema.Boolean, allowed: "true or false", doc: "record every coordinator step (GET /transactions/:id shows the trace)", default: true },
  retain_trace_bytes_max: {
    schema: int(0, 4_294_967_296),
    allowed: "an integer from 0 to 4294967296",
    doc: "estimated bytes of finished transactions kept in memory (each: its trace's JSON text, plus 1024); past it the oldest go",
    default: 16_777_216,
  },
  idempotency_retention_ms: {
    schema: int(RETENTION_MS_MIN, 2_592_000_000),
    allowed: `an integer from ${RETENTION_MS_MIN} (1 hour) to 2592000000 (30 days)`,
    doc: "an idempotency key is kept at least this long; a request with it after that is a new transfer",
    default: 86_400_000,
  },
  etcd_compaction_interval_ms: {
    schema: Schema.Union([Schema.Literal(0), int(1_000, 86_400_000)]),
    allowed: "0 (off: etcd compacts itself) or an integer from 1000 to 86400000",
    doc: "time between compactions of etcd's history",
    default: 60_000,
  },
  etcd_compaction_revisions_kept: {
    schema: int(1, 100_000_000),
    allowed: "an integer from 1 to 100000000",
    doc: "etcd revisions a compaction keeps behind the current one",
    default: 10_000,
  },
  otlp_endpoint: {
    schema: Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s]+$/)),
    allowed: "an http(s) URL, e.g. http://127.0.0.1:4318",
    doc: "export OpenTelemetry spans over OTLP/HTTP to this collector (<url>/v1/traces); also on with the standard OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER=otlp, off with OTEL_SDK_DISABLED=true",
  },
  connections_max: { schema: int(1, 65_536), allowed: "an integer from 1 to 65536", doc: "open HTTP connections; past it a new one is closed at once", default: 1_024 },
  headers_timeout_ms: { schema: int(1_000, 600_000), allowed: "an integer from 1000 to 600000", doc: "a connection that has not sent a request's headers within it is closed", default: 10_000 },
  request_timeout_ms: { schema: int(1_000, 3_600_000), allowed: "an integer from 1000 to 3600000", doc: "a request not received whole (headers and body) within it gets 408 and its connection is closed", default: 30_000 },
  keep_alive_timeout_ms: { schema: int(100, 600_000), allowed: "an integer from 100 to 600000", doc: "an idle keep-alive connection is closed this long (plus node's 1 s) after its last answer", default: 5_000 },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

export interface Config {
  port: number;
  host: string;
  cluster_dir: string;
  cluster_file?: string;
  shards?: string;
  etcd?: string;
  mysql_user?: string;
  mysql_password?: string;
  mysql_password_file?: string;
  tls_cert?: string;
  tls_key?: string;
  mysql_ssl_ca?: string;
  mysql_ssl_cert?: string;
  mysql_ssl_key?: string;
  etcd_ca?: string;
  etcd_cert?: string;
  etcd_key?: string;
  shard_unix_socket: boolean;
  etcd_prefix: string;
  node: string;
  lease_ttl_ms: number;
  protocol: ProtocolName;
  resolver_interval_ms: number;
  batch_max: number;
  batch_wait_ms: number;
  deadlock_interval_ms: number;
  vote_timeout_ms: number;
  retry_delay_ms: number;
  attempts_max: number;
  statement_timeout_ms: number;
  etcd_timeout_ms: number;
  snapshot_wait_ms: number;
  hlc_max_skew_ms: number;
  in_flight_max: number;
  shard_connections_max: number;
  body_bytes_max: number;
  auth: "tokens" | "none";
  tokens_file?: string;
  rate_limit_per_s: number;
  rate_limit_burst: number;
  admin_token?: string;
  metrics_token?: string;
  shutdown_grace_ms: number;
  retain_transactions: number;
  record_traces: boolean;
  retain_trace_bytes_max: number;
  idempotency_retention_ms: number;
  etcd_compaction_interval_ms: number;
  etcd_compaction_revisions_kept: number;
  connections_max: number;
  headers_timeout_ms: number;
  request_timeout_ms: number;
  keep_alive_timeout_ms: number;
  otlp_endpoint?: string;
  /** Derived: where OpenTelemetry spans go (runtime/tracing.ts `otlpTracesUrl`), undefined when tracing is off. */
  otlp_traces_url?: string;
  /** Derived: the spans' service.name (OTEL_SERVICE_NAME, else speccommit). */
  otel_service_name?: string;
}

export class ConfigError extends Error {}

const flagOf = (name: string) => `--${name.replaceAll("_", "-")}`;
const envOf = (name: string) => `SPECCOMMIT_${name.toUpperCase()}`;

/** A flag or variable is a string; turn the ones that look like numbers or booleans into those, the Schema judges the rest. */
function fromText(name: SettingName, text: string): unknown {
  const s: Setting = SETTINGS[name];
  if (s.schema === Schema.Boolean) return text === "true" ? true : text === "false" ? false : text;
  if (typeof s.default === "number" || name === "port") return /^-?\d+$/.test(text) ? Number(text) : text;
  return text;
}

export interface ConfigSources {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
}

/** Parses flags; `--help` is reported as `help: true`. Throws ConfigError on an unknown flag or a missing value. */
function parseFlags(argv: readonly string[]): { values: Map<SettingName, string>; config?: string; help: boolean } {
  const values = new Map<SettingName, string>();
  let config: string | undefined;
  let help = false;
  const byFlag = new Map(Object.keys(SETTINGS).map((n) => [flagOf(n), n as SettingName]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    let value = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const name = byFlag.get(flag);
    if (name === undefined && flag !== "--config") {
      throw new ConfigError(`unknown option ${JSON.stringify(arg)}; run with --help for the options`);
    }
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new ConfigError(`${flag} needs a value`);
      i++;
    }
    if (name === undefined) config = value;
    else values.set(name, value);
  }
  return { values, ...(config !== undefined ? { config } : {}), help };
}

function decodeSetting(name: SettingName, value: unknown, where: string): unknown {
  const s: Setting = SETTINGS[name];
  try {
    return Schema.decodeUnknownSync(s.schema as Schema.Codec<unknown, unknown>)(value);
  } catch (e) {
    const shown = s.secret ? "(hidden)" : JSON.stringify(value);
    const why = (e as Error).message.split("\n")[0];
    throw new ConfigError(`${where}: ${shown} is not allowed (${why}); expected ${s.allowed}`);
  }
}

/** `warnings`: things to print at start (a secret given as a flag, visible in ps). */
export type LoadResult = { help: true; usage: string } | { help: false; config: Config; warnings: string[] };

/** Builds the configuration from defaults, file, environment and flags. Throws ConfigError with a message for the user. */
export function loadConfig(src: ConfigSources): LoadResult {
  const flags = parseFlags(src.argv);
  if (flags.help) return { help: true, usage: usage() };
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(SETTINGS) as Array<[SettingName, Setting]>) if (s.default !== undefined) out[name] = s.default;

  const file = flags.config ?? src.env["SPECCOMMIT_CONFIG"];
  if (file !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ConfigError(`config file ${file}: ${(e as Error).message}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ConfigError(`config file ${file}: expected a JSON object of settings`);
    for (const [key, value] of Object.entries(json)) {
      if (!(key in SETTINGS)) throw new ConfigError(`config file ${file}: unknown setting ${JSON.stringify(key)} (settings: ${Object.keys(SETTINGS).join(", ")})`);
      out[key] = decodeSetting(key as SettingName, value, `config file ${file}: ${key}`);
    }
  }
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const text = src.env[envOf(name)];
    if (text !== undefined && text !== "") out[name] = decodeSetting(name, fromText(name, text), envOf(name));
  }
  const warnings: string[] = [];
  for (const [name, text] of flags.values) {
    out[name] = decodeSetting(name, fromText(name, text), flagOf(name));
    const s: Setting = SETTINGS[name];
    if (s.secret) warnings.push(`${flagOf(name)} on the command line is visible to every user of this host (ps); use ${envOf(name)} or a file instead`);
  }

  const config = out as unknown as Config;
  if ((config.shards === undefined) !== (config.etcd === undefined)) {
    throw new ConfigError("--shards and --etcd go together: give both to connect to an existing cluster, or neither");
  }
  if (config.shards !== undefined && config.cluster_file !== undefined) {
    throw new ConfigError("give either --cluster-file or --shards/--etcd, not both");
  }
  checkAuth(config);
  checkTls(config);
  readSecretFiles(config);
  const traces = otlpTracesUrl(config.otlp_endpoint, src.env);
  if (traces !== undefined) {
    config.otlp_traces_url = traces;
    config.otel_service_name = src.env["OTEL_SERVICE_NAME"]?.trim() || "speccommit";
  }
  checkBounds(config);
  return { help: false, config, warnings };
}

/** Authentication is off only when said (`auth: "none"`); a tokens file implies `auth: "tokens"`. */
function checkAuth(c: { auth?: "tokens" | "none"; tokens_file?: string }): void {
  if (c.auth === undefined && c.tokens_file === undefined) {
    throw new ConfigError(
      "authentication is not configured: give --tokens-file <file> (credentials, docs/security.md), or --auth none to run without authentication (local development only)",
    );
  }
  if (c.auth === "none" && c.tokens_file !== undefined) throw new ConfigError("--auth none and --tokens-file contradict each other: give one");
  if (c.auth === "tokens" && c.tokens_file === undefined) throw new ConfigError("--auth tokens needs --tokens-file <file> (docs/security.md)");
  c.auth ??= "tokens";
}

/** A certificate goes with its key; a client certificate needs the CA of the server it talks to. */
function checkTls(c: Config): void {
  for (const [cert, key] of [["tls_cert", "tls_key"], ["mysql_ssl_cert", "mysql_ssl_key"], ["etcd_cert", "etcd_key"]] as const) {
    if ((c[cert] === undefined) !== (c[key] === undefined)) throw new ConfigError(`${cert} and ${key} go together: give both or neither`);
  }
  if (c.mysql_ssl_cert !== undefined && c.mysql_ssl_ca === undefined && c.cluster_file === undefined) {
    throw new ConfigError("mysql_ssl_cert needs mysql_ssl_ca (the CA that signed the shards' certificates)");
  }
}

function readSecretFiles(c: Config): void {
  if (c.mysql_password_file === undefined) return;
  if (c.mysql_password !== undefined) throw new ConfigError("give the shards' password once: mysql_password or mysql_password_file, not both");
  try {
    c.mysql_password = readFileSync(c.mysql_password_file, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    // The error names the file, never its content.
    throw new ConfigError(`mysql_password_file ${c.mysql_password_file}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
  }
}

/**
 * The longest a transfer's fate (committed or not) can stay open after its
 * idempotency claim: the vote (exec and prepare, or the speculative applies),
 * a shard statement already sent, and every attempt at the decision write.
 * After it no coordinator can commit it any more (docs/operations.md,
 * "Idempotency").
 */
export const transferOpen_ms = (c: Pick<Config, "vote_timeout_ms" | "statement_timeout_ms" | "attempts_max" | "etcd_timeout_ms" | "retry_delay_ms">): number =>
  c.vote_timeout_ms + c.statement_timeout_ms + c.attempts_max * (c.etcd_timeout_ms + c.retry_delay_ms);

/** Settings that are only right together. */
function checkBounds(c: Config): void {
  const open_ms = transferOpen_ms(c);
  if (c.idempotency_retention_ms < RETENTION_OVER_TRANSFER_MIN * open_ms) {
    throw new ConfigError(
      `idempotency_retention_ms ${c.idempotency_retention_ms} is under ${RETENTION_OVER_TRANSFER_MIN} x ${open_ms} ms, the longest a transfer can stay open with these settings ` +
        "(vote_timeout_ms + statement_timeout_ms + attempts_max x (etcd_timeout_ms + retry_delay_ms)): raise idempotency_retention_ms or lower those",
    );
  }
  if (c.headers_timeout_ms > c.request_timeout_ms) {
    throw new ConfigError(`headers_timeout_ms ${c.headers_timeout_ms} is over request_timeout_ms ${c.request_timeout_ms}: the headers are part of the request; raise request_timeout_ms or lower headers_timeout_ms`);
  }
}

export function usage(): string {
  const lines = (Object.entries(SETTINGS) as Array<[SettingName, Setting]>).map(([name, s]) => {
    const dflt = s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : "";
    return `  ${flagOf(name).padEnd(26)} ${s.doc}${dflt}\n  ${"".padEnd(26)} ${envOf(name)}; ${s.allowed}`;
  });
  return [
    "usage: speccommit serve [options]",
    "",
    "Starts the coordinator. Without --cluster-file or --shards/--etcd it brings the local",
    "cluster up in --cluster-dir first (reusing servers that run).",
    "",
    "  speccommit serve --coordinators N [options]   N coordinator processes (nodes n1..nN, ports --port, --port+1, ...)",
    "                                                 over one cluster, supervised; SIGINT/SIGTERM stops them all",
    "                                                 (docs/operations.md, \"Several coordinators and etcd members\")",
    "",
    "options (also as environment variables, or as keys of a JSON file given with --config):",
    "  --config <file>            JSON object of settings (SPECCOMMIT_CONFIG)",
    ...lines,
  ].join("\n");
}
