/**
 * The HTTP API (node:http, JSON), docs/operations.md "API":
 *
 *   POST /transfer              run a transfer with a coordinator; answer its outcome
 *   GET  /transactions/:id      status, timings and recorded trace of a recent transaction
 *   GET  /accounts/:shard/:id   committed (spendable) balance, and pending speculative credits
 *   POST /accounts, GET /accounts, POST /accounts/:shard/:id/close, GET /accounts/:shard/:id/history,
 *   GET  /transactions?account= the banking API (runtime/banking.ts)
 *   GET  /healthz, /health      the process is up
 *   GET  /ready                 etcd and every shard answer, and the resolver has caught up
 *   GET  /admin/shards          per shard: health, connections, prepared branches
 *   GET  /metrics               Prometheus
 *   GET  /ui                    the operator's page (runtime/ui.ts), open: no data in it
 *   GET  /ui/summary            what the page shows (scope read)
 *
 * Every route but the probes needs a bearer token whose credential has the
 * route's scope (runtime/auth.ts, docs/security.md), unless `auth` is "none".
 *
 * `startServer` wires the live adapters, the engine and the HTTP server; it
 * is what `speccommit serve` runs and what tests and the benchmark start.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createSecureContext } from "node:tls";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import type { Outcome, ShardId, TxId } from "../spec/kernel/effects.ts";
import { Accounts } from "./accounts.ts";
import { systemClock } from "./adapters/ports.ts";
import type { ShardAddress } from "./adapters/mysql-pool.ts";
import { EtcdCompactor, etcdClient, TxlogEtcd, type EtcdTls } from "./adapters/txlog-etcd.ts";
import { XaMysql } from "./adapters/xa-mysql.ts";
import { DeadlockDetector, EtcdPeerSessions } from "./deadlock.ts";
import { MysqlLocal } from "./adapters/local-mysql.ts";
import { HybridClock } from "./hlc.ts";
import { CommitTimestamps, withTimestamps } from "./timestamps.ts";
import { SafeExchange } from "./safe-exchange.ts";
import { handleSnapshot, mysqlSnapshotQuery, observeClientTimestamp, SnapshotReads, SnapshotRefused, TIMESTAMP_HEADER } from "./snapshot.ts";
import { formatTs, stateOf } from "../spec/time/hlc.ts";
import type { Config } from "./config.ts";
import { Authenticator, credentialsOf, RateLimiter, redact, scopeOf, TxCredentials, type AuthResult, type Scope } from "./auth.ts";
import { afterScan, conclude, type ConcludeDirection } from "../spec/server/conclude.ts";
import { DurableUnavailable, durableOutcome, settledOutcome } from "./durable.ts";
import { Engine, NotReady, Overloaded, ShuttingDown, type TransactionView } from "./engine.ts";
import { Idempotency, IdempotencyConflict, idempotencyKeyOf } from "./idempotency.ts";
import { Metrics } from "./metrics.ts";
import { BadRequest, decodeTransfer, formatCents } from "./transfer.ts";
import { toCents } from "./cluster/schema.ts";
import { formatTrace } from "../traces/ndjson.ts";
import { startTracing, type TraceParent, type Tracing } from "./tracing.ts";
import { toSvg } from "../traces/render.ts";
import { UI_HTML, uiSummary } from "./ui.ts";
import { Banking, bankingRoute } from "./banking.ts";
import { Failover, type TakeoverResolver } from "./failover.ts";
import { FIRST_NODE, inDoubtOf, NodeLocal, nodeOfTx, nodePrefix, NodeXa } from "./nodes.ts";
import type { DurableRoute } from "./idempotency.ts";

/** A resolver over another node's namespace, with its engine (its probe settles a speculation of that node). */
interface NodeResolver extends TakeoverResolver {
  readonly engine: Engine;
}

export interface ClusterAddresses {
  readonly shards: readonly ShardAddress[];
  readonly etcd: readonly string[];
  /** With https:// etcd URLs: the CA and the client certificate. */
  readonly etcdTls?: EtcdTls;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly engine: Engine;
  readonly accounts: Accounts;
  /** OpenTelemetry spans, when configured (otlp_endpoint or the OTEL_* variables); undefined: off, no SDK loaded. */
  readonly tracing: Tracing | undefined;
  /** This node among several (runtime/failover.ts): its lease, its takeovers of dead nodes. */
  readonly failover: Failover;
  /** The cross-shard deadlock detector (runtime/deadlock.ts); null when deadlock_interval_ms is 0. */
  readonly deadlocks: DeadlockDetector | null;
  /** Rereads the tokens file (rotation; SIGHUP in `speccommit serve`); the old set stays when the file is wrong (the error says why). Answers the number of credentials. */
  reloadCredentials(): number;
  /** Credentials configured now. */
  readonly credentials: number;
  /**
   * HTTPS: rereads tls_cert and tls_key and serves new connections with them
   * (SIGHUP in `speccommit serve`); open connections keep theirs, none is
   * dropped. A file that cannot be read, or a key that does not match its
   * certificate, leaves the old pair in place and throws why. Answers the new
   * certificate's expiry; null without HTTPS.
   */
  reloadTls(): string | null;
  /** Drains (see `shutdown`): running transactions finish for up to `grace_ms`, every request read is answered, then every connection closes. */
  close(grace_ms?: number): Promise<void>;
}

/** Retry-After (seconds) on 503 when too many transactions are in flight. */
const RETRY_AFTER_S = 1;
const ADMIN_PROBE_TIMEOUT_MS = 2_000;
const BOOT_SCAN_WAIT_MS = 10_000;
/** Longest interval between node's checks of the headers and request timeouts. */
const CONNECTIONS_CHECK_MS_MAX = 1_000;
const SHUTDOWN_POLL_MS = 10;
/** After the grace period: how long answers already decided (in_doubt of stopped coordinators, 503s) may take to go out. */
const ANSWERS_FLUSH_MS = 1_000;

/** The HTTPS certificate and key, read and checked to belong together (createSecureContext throws otherwise). */
function serverTls(config: Config): { cert: Buffer; key: Buffer; notAfter: string } | undefined {
  if (config.tls_cert === undefined || config.tls_key === undefined) return undefined;
  const read = (setting: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      // Names the file, never its content.
      throw new Error(`${setting} ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
    }
  };
  const cert = read("tls_cert", config.tls_cert);
  const key = read("tls_key", config.tls_key);
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`tls_cert ${config.tls_cert} and tls_key ${config.tls_key}: ${(e as Error).message}`);
  }
  return { cert, key, notAfter: new X509Certificate(cert).validTo };
}

export async function startServer(config: Config, cluster: ClusterAddresses): Promise<RunningServer> {
  const metrics = new Metrics();
  // Before anything connects: a wrong certificate or key stops the start.
  const tls = serverTls(config);
  // Before anything connects: a wrong tokens file stops the start.
  const auth = new Authenticator(config.auth, credentialsOf(config, (p) => readFileSync(p, "utf8")));
  const xaLimits = {
    connections_max: config.shard_connections_max,
    waiters_max: config.in_flight_max * 2,
    acquire_timeout_ms: config.statement_timeout_ms,
    connect_timeout_ms: Math.min(config.statement_timeout_ms, 5_000),
    statement_timeout_ms: config.statement_timeout_ms,
  };
  const observer = {
    onError: (shard: ShardId, code: string) => metrics.shardErrors.inc({ shard, code }),
    onShardBatch: (shard: ShardId, work: "retire" | "stamp", jobs: number) => metrics.shardBatch.observe({ shard, work }, jobs),
  };
  // Which credential started each recent transaction: its view, its trace header and its branches' history rows.
  const txCredentials = new TxCredentials(Math.max(1, Math.min(config.retain_transactions, CREDENTIAL_OF_TX_MAX)));
  const credentialOf = (tx: TxId) => txCredentials.get(tx);
  const batching = { batch_max: config.batch_max, batch_wait_ms: config.batch_wait_ms };
  const xa = new XaMysql({ shards: cluster.shards, limits: xaLimits, observer, credentialOf, stampBatching: batching });
  const client = etcdClient({
    hosts: cluster.etcd,
    prefix: config.etcd_prefix,
    call_timeout_ms: config.etcd_timeout_ms,
    dial_timeout_ms: config.etcd_timeout_ms,
    ...(cluster.etcdTls !== undefined ? { tls: cluster.etcdTls } : {}),
  });
  const onWrite = {
    onWrite: (op: "put" | "delete", seconds: number, ok: boolean) => metrics.txlogWriteOf.of(op, ok ? "ok" : "error").observe(seconds),
    onBatch: (writes: number) => metrics.txlogBatch.observe(writes),
  };
  // This node's namespace (runtime/nodes.ts); the base prefix holds what every node shares (claims, members, leases, owners).
  const node = config.node;
  const txlog = new TxlogEtcd(client, nodePrefix(config.etcd_prefix, node), onWrite, batching);
  const shared = node === FIRST_NODE ? txlog : new TxlogEtcd(client, config.etcd_prefix, onWrite, batching);
  /** Other nodes' namespaces, one adapter each, kept for the members only (a name read from a request is not kept). */
  const logs = new Map<string, TxlogEtcd>([[node, txlog]]);
  let isMember: (n: string) => boolean = () => false;
  const logOf = (n: string): TxlogEtcd => {
    let l = logs.get(n);
    if (l !== undefined) return l;
    l = new TxlogEtcd(client, nodePrefix(config.etcd_prefix, n), onWrite, batching);
    if (isMember(n)) logs.set(n, l);
    return l;
  };
  const pools = new Map(xa.shards.map((s) => [s, xa.pool(s)] as const));
  // The speculative path's local transactions share the XA executor's pools (one connection budget per shard).
  const local = new MysqlLocal({ shards: cluster.shards, limits: xaLimits, observer, pools, credentialOf, retireBatching: batching });
  let accounts: Accounts;
  try {
    accounts = await Accounts.load(pools);
  } catch (e) {
    xa.close();
    client.close();
    throw e;
  }
  const tracing = config.otlp_traces_url === undefined ? undefined : await startTracing({ url: config.otlp_traces_url, serviceName: config.otel_service_name ?? "speccommit" });
  // Commit timestamps (runtime/timestamps.ts): the HLC starts past every timestamp already on the shards.
  const hlc = new HybridClock(config.hlc_max_skew_ms);
  await observeHistory(hlc, pools);
  let engineRef: Engine | undefined;
  let exchangeRef: SafeExchange | undefined;
  const timestamps = new CommitTimestamps(hlc, () => engineRef?.active() ?? [], () => engineRef?.caughtUp ?? false, (n) => exchangeRef?.publishedOf(n) ?? -1n);
  timestamps.selfNode = node;
  const engine = new Engine({
    // This node's resolver sees its own branches and undo rows only (its xids carry its name).
    adapters: withTimestamps({ xa: new NodeXa(xa, node), log: txlog, clock: systemClock, local: new NodeLocal(local, node) }, timestamps, (tx, shard, ts) => xa.stampHistory(tx, shard, ts), node, (tx, shard, onePhase, ts) => xa.commitStamped(tx, shard, onePhase, ts)),
    node,
    shards: xa.shards,
    coordinator: { voteTimeoutMs: config.vote_timeout_ms, retryDelayMs: config.retry_delay_ms, attemptsMax: config.attempts_max },
    resolver_interval_ms: config.resolver_interval_ms,
    in_flight_max: config.in_flight_max,
    retain_transactions: config.retain_transactions,
    retain_trace_bytes_max: config.retain_trace_bytes_max,
    record_traces: config.record_traces,
    metrics,
    ...(tracing !== undefined ? { tracing } : {}),
  });
  engineRef = engine;
  // Safe time across the nodes (runtime/safe-exchange.ts): published and read through etcd.
  const exchange = new SafeExchange(
    {
      ns: client.namespace(config.etcd_prefix),
      node,
      ts: timestamps,
      leaseId: () => failover.leaseId(),
      covers: () => failover.owning.filter((n) => (failover.resolverOf(n) as NodeResolver | undefined)?.engine.caughtUp === true),
      onCycle: (s) => metrics.safeTime(s.safe === null ? null : stateOf(s.safe).wall),
    },
    config.etcd_prefix,
  );
  exchangeRef = exchange;
  const snapshots = new SnapshotReads(timestamps, xa.shards, mysqlSnapshotQuery(pools), {
    wait_ms: config.snapshot_wait_ms,
    cluster: exchange,
    observe: (outcome, waited_s) => {
      metrics.snapshotReads.inc({ outcome });
      metrics.snapshotWait.observe(waited_s);
    },
  });
  const coordinatorSettings = { voteTimeoutMs: config.vote_timeout_ms, retryDelayMs: config.retry_delay_ms, attemptsMax: config.attempts_max };
  /** A resolver over node n's namespace and xids, while this node owns n (runtime/failover.ts). */
  const startResolver = (n: string): NodeResolver => {
    const e = new Engine({
      // Its commits stamp the history rows as this node's own do (runtime/timestamps.ts).
      // Its XA RECOVER detaches n's prepared branches from n's live sessions first, once the fence is up (spec/failover/takeover.ts rule 5);
      // its undo-row scan likewise frees n's undo rows a session of n holds locked (a release or compensate frozen mid-way).
      adapters: withTimestamps(
        { xa: new NodeXa(xa, n, failover.beforeSettle(n, () => e.epoch)), log: logOf(n), clock: systemClock, local: new NodeLocal(local, n, failover.beforeSettle(n, () => e.epoch, "speculative_undo")) },
        timestamps,
        (tx, shard, ts) => xa.stampHistory(tx, shard, ts),
        n,
        (tx, shard, onePhase, ts) => xa.commitStamped(tx, shard, onePhase, ts),
      ),
      node: n,
      shards: xa.shards,
      coordinator: coordinatorSettings,
      resolver_interval_ms: config.resolver_interval_ms,
      in_flight_max: 1,
      retain_transactions: 0,
      record_traces: false,
    });
    e.startResolver();
    return { engine: e, get epoch() { return e.epoch; }, stop: () => e.stop() };
  };
  const failover = new Failover({
    client,
    base: config.etcd_prefix,
    node,
    lease_ttl_ms: config.lease_ttl_ms,
    adapters: { xa, log: shared, clock: systemClock },
    startResolver,
    inDoubtOf: (n) => inDoubtOf({ log: logOf(n), xa: new NodeXa(xa, n), local: new NodeLocal(local, n), running: (tx) => n === node && engine.isRunning(tx) }),
    audit_interval_ms: config.resolver_interval_ms,
    metrics,
    poolOf: (shard) => pools.get(shard),
  });
  isMember = (n) => failover.otherMembers()?.includes(n) === true || failover.resolverOf(n) !== undefined;
  /** Where the outcome of `tx` is read and fenced: its node's namespace, with the epoch this process holds of it (none: it is not ours). */
  const durableFor = (tx: TxId): DurableRoute => {
    const n = nodeOfTx(tx);
    if (n === node) return { node: n, log: txlog, epoch: () => engine.epoch, probe: (t, ran) => engine.probe(t, ran) };
    const r = failover.resolverOf(n) as NodeResolver | undefined;
    // Its sessions holding its fence row may be killed when rule 5 says so (spec/failover/takeover.ts detachBeforeSettle).
    if (r !== undefined) return { node: n, log: logOf(n), epoch: () => r.epoch, killFenced: failover.detaching(n, r.epoch), probe: (t, ran) => r.engine.probe(t, ran) };
    return { node: n, log: logOf(n), epoch: () => null };
  };
  const idempotency = new Idempotency({ ns: shared.ns, engine, xa, log: shared, retention_ms: config.idempotency_retention_ms, durableFor });
  // Registers the node and its lease (in the background while etcd does not answer).
  await failover.start();
  // Before the first scan (and so before any commit): the clock passes every safe time published (runtime/safe-exchange.ts).
  await withTimeout(exchange.join(), BOOT_SCAN_WAIT_MS, undefined).catch((e: Error) => console.error(`speccommit: safe times not read at start: ${e.message}`));
  const compactor = new EtcdCompactor(client, { interval_ms: config.etcd_compaction_interval_ms, revisions_kept: config.etcd_compaction_revisions_kept });
  // The first scan takes the process epoch; wait for it (bounded) so that a server that says it listens can take transfers.
  await withTimeout(engine.scanNow(), BOOT_SCAN_WAIT_MS, false);
  engine.startResolver();
  exchange.start();
  const deadlocks =
    config.deadlock_interval_ms > 0
      ? new DeadlockDetector({
          xa,
          shards: cluster.shards,
          limits: xaLimits,
          interval_ms: config.deadlock_interval_ms,
          factsOf: (tx) => engine.deadlockFacts(tx),
          metrics,
          // Cycles through several nodes' transactions: the nodes name each other's sessions (runtime/deadlock.ts).
          peers: new EtcdPeerSessions(client, config.etcd_prefix, node, () => failover.otherMembers(), config.etcd_timeout_ms),
        })
      : null;
  deadlocks?.start();

  const api = new Api(config, engine, xa, txlog, accounts, idempotency, metrics, auth, txCredentials, { timestamps, snapshots }, failover, logOf, durableFor);
  // Openings left 'opening' (answered in_doubt, or a crash after their transfer ended: runtime/banking.ts); in the
  // background, bounded batches, every resolver interval until shutdown.
  api.banking.startSettling(config.resolver_interval_ms);
  const httpOptions = {
    headersTimeout: config.headers_timeout_ms,
    requestTimeout: config.request_timeout_ms,
    keepAliveTimeout: config.keep_alive_timeout_ms,
    // node enforces the two timeouts above only when this timer fires (30 s by default, which made a 10 s headers
    // timeout act after 30-55 s); a tenth of the headers timeout keeps both within 10% of what they say.
    connectionsCheckingInterval: Math.min(CONNECTIONS_CHECK_MS_MAX, config.headers_timeout_ms / 10),
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => void api.handle(req, res);
  // node's https server is its http server over TLS: the same options, timeouts, keep-alive and drain.
  const server: Server | HttpsServer =
    tls === undefined ? createServer(httpOptions, handler) : createHttpsServer({ ...httpOptions, cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, handler);
  // A connection past the cap is accepted and closed at once by node, before any byte is read.
  server.maxConnections = config.connections_max;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (e) {
    api.banking.stop();
    deadlocks?.stop();
    engine.stop();
    exchange.stop();
    await failover.stop(true);
    accounts.close();
    xa.close();
    client.close();
    await tracing?.shutdown();
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`);
  }
  const port = (server.address() as AddressInfo).port;
  compactor.start();
  await failover.announce(`${tls === undefined ? "http" : "https"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`);
  let closing: Promise<void> | null = null;
  return {
    url: `${tls === undefined ? "http" : "https"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`,
    port,
    engine,
    accounts,
    tracing,
    deadlocks,
    failover,
    reloadCredentials: () => api.reloadCredentials(),
    reloadTls: () => {
      if (tls === undefined) return null;
      const next = serverTls(config)!;
      (server as HttpsServer).setSecureContext({ cert: next.cert, key: next.key, minVersion: "TLSv1.2" });
      return next.notAfter;
    },
    get credentials() {
      return auth.count;
    },
    close: (grace_ms = config.shutdown_grace_ms) => {
      compactor.stop();
      // The deadlock detector keeps breaking cycles while the drain finishes transactions; it stops with them.
      // The spans of the transactions the drain finished go out before the exporter stops.
      return (closing ??= shutdown(server, api, engine, xa, client, grace_ms, accounts, (drained) => (exchange.stop(), failover.stop(true, drained))).then(() => {
        deadlocks?.stop();
        return tracing?.shutdown();
      }));
    },
  };
}

/**
 * The drain (docs/operations.md, "Shutdown"): every request the server has
 * read is answered. The listener and the keep-alive connections stay open
 * while running transactions finish, so a request already on its way is
 * read and answered (503 + Retry-After when it has no coordinator yet)
 * instead of meeting a closed socket; every answer from then on says
 * `Connection: close`, so each connection ends after its answer.
 */
async function shutdown(server: Server | HttpsServer, api: Api, engine: Engine, xa: XaMysql, client: { close(): void }, grace_ms: number, accounts: Accounts, leave: (drained: boolean) => Promise<void>): Promise<void> {
  const deadline_ms = Date.now() + grace_ms;
  api.closing = true;
  api.banking.stop();
  await engine.drain(grace_ms);
  // Idempotent transfers store their outcome after the coordinator replied, and bodies may still be arriving: let those be answered too.
  await untilClosedOrLate(api, deadline_ms);
  // Past the grace period: coordinators still running end, and their clients get in_doubt (202). Their effects may
  // still land after that, so a node that did not drain must not leave the members (spec/failover/forget.ts).
  const drained = engine.inFlight === 0;
  engine.stop();
  await untilClosedOrLate(api, Date.now() + ANSWERS_FLUSH_MS);
  // Stops listening and closes the idle keep-alive connections (node's close()); the others end after their answer.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await withTimeout(closed, ANSWERS_FLUSH_MS, undefined);
  // A request whose body has not arrived by now is cut.
  server.closeAllConnections();
  await closed;
  // Nothing of this node runs any more: its lease goes now, so a survivor settles what it left without waiting for the TTL.
  await leave(drained);
  accounts.close();
  xa.close();
  client.close();
}

async function untilClosedOrLate(api: Api, deadline_ms: number): Promise<void> {
  while (api.transfersOpen > 0 && Date.now() < deadline_ms) await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS));
}

/**
 * The page holds no data (what it shows comes from /ui/summary, which needs scope read): it may be served without a
 * token, which a browser cannot send on navigation. It loads nothing from elsewhere and may not be framed.
 */
const UI_HEADERS = {
  "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src blob:; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
};

/** How long a conclude by hand keeps asking the resolver to scan (each scan bounded by the statement and etcd timeouts) until durable state says. */
const CONCLUDE_WAIT_MS = 5_000;

/** Bound on remembered transaction -> credential names when retain_transactions is larger. */
const CREDENTIAL_OF_TX_MAX = 100_000;

/** Whether a Prefer header (RFC 7240: comma-separated preferences, each maybe with parameters) asks for `commit-ts`. */
export function prefersCommitTs(h: string | string[] | undefined): boolean {
  const values = h === undefined ? [] : Array.isArray(h) ? h : [h];
  return values.some((v) => v.split(",").some((p) => p.split(";")[0]!.trim().toLowerCase() === "commit-ts"));
}

/** The routes below the method check of Api.handle, which answer GET (and HEAD) only. */
const GET_ROUTES = [/^\/(healthz|health|ready|metrics|ui|ui\/summary|admin\/shards|admin\/nodes)$/, /^\/transactions\/[^/]+$/, /^\/accounts\/[^/]+\/[^/]+$/];
const isGetRoute = (path: string): boolean => GET_ROUTES.some((r) => r.test(path));

class Api {
  closing = false;
  transfersOpen = 0;
  private readonly limiter: RateLimiter;
  /** The credential of each answered request (for speccommit_http_requests_by_credential_total). */
  private readonly credentialOf = new WeakMap<ServerResponse, string>();
  private readonly secrets: readonly (string | undefined)[];
  /** The banking API (runtime/banking.ts): accounts opened and closed, listings, history. */
  readonly banking: Banking;

  constructor(
    private readonly config: Config,
    private readonly engine: Engine,
    private readonly xa: XaMysql,
    private readonly txlog: TxlogEtcd,
    private readonly accounts: Accounts,
    private readonly idempotency: Idempotency,
    private readonly metrics: Metrics,
    private readonly auth: Authenticator,
    /** Which credential started a recent transaction (its view, trace header and history rows); bounded. */
    private readonly txCredential: TxCredentials,
    /** Commit timestamps and snapshot reads (runtime/timestamps.ts, runtime/snapshot.ts). */
    private readonly time: { timestamps: CommitTimestamps; snapshots: SnapshotReads },
    private readonly failover: Failover,
    /** Node n's namespace (runtime/nodes.ts). */
    private readonly logOf: (n: string) => TxlogEtcd,
    /** Where the outcome of a transaction is read and fenced: its node's namespace (startServer's durableFor). */
    durableFor?: (tx: TxId) => DurableRoute,
  ) {
    this.limiter = new RateLimiter(config.rate_limit_per_s, config.rate_limit_burst);
    this.secrets = [config.mysql_password, config.admin_token, config.metrics_token];
    this.banking = new Banking({
      engine,
      xa,
      txlog,
      accounts,
      send: (res, route, status, body, headers) => this.send(res, route, status, body, headers),
      readBody: (req) => this.readBody(req),
      ...(durableFor !== undefined ? { durableFor } : {}),
    });
  }

  reloadCredentials(): number {
    const creds = credentialsOf(this.config, (p) => readFileSync(p, "utf8"));
    this.auth.replace(creds);
    this.limiter.keepOnly(creds.map((c) => c.name));
    return creds.length;
  }

  /**
   * Authentication, authorization and the rate limit, before anything else
   * happens (no body read, no state touched). False: the request was answered
   * (401, 403 or 429).
   */
  private admit(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const scope = scopeOf(path, req.method);
    const r = this.auth.check(req.headers.authorization, scope);
    const route = routeOf(path);
    if (!r.ok) {
      this.metrics.authFailures.inc({ reason: r.reason });
      this.send(res, route, r.status, { error: refusal(path, scope!, r) }, { ...(r.status === 401 ? { "WWW-Authenticate": "Bearer" } : {}), ...closeIfBody(req) });
      return false;
    }
    if (r.credential === null) return true;
    this.credentialOf.set(res, r.credential);
    const wait_s = this.limiter.take(r.credential);
    if (wait_s === 0) return true;
    this.metrics.rateLimited.inc({ credential: r.credential });
    this.send(res, route, 429, { error: `credential ${r.credential} is over its rate limit (${this.config.rate_limit_per_s}/s, burst ${this.config.rate_limit_burst})` }, { "Retry-After": String(wait_s), ...closeIfBody(req) });
    return false;
  }

  private rememberCredential(tx: string, res: ServerResponse): void {
    const name = this.credentialOf.get(res);
    if (name !== undefined) this.txCredential.remember(tx, name);
  }

  /** A view or trace header with the name of the credential that started the transaction (when known). */
  private withCredential(view: TransactionView): TransactionView & { credential?: string } {
    const credential = this.txCredential.get(view.tx);
    if (credential === undefined) return view;
    const trace = view.trace === null ? null : { ...view.trace, header: { ...view.trace.header, params: { ...view.trace.header.params, credential } } };
    return { ...view, credential, trace };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    let route = "other";
    // HEAD is GET without the body (RFC 9110 9.3.2): node's response already drops the body of a HEAD request
    // (decided when the response was made), so every GET route answers HEAD with the same status and headers.
    if (req.method === "HEAD") req.method = "GET";
    try {
      if (!this.admit(req, res, path)) return;
      if (await handleSnapshot(this.time.snapshots, this.time.timestamps, this.xa.shards, req, res, url, (r, rt, st, b, h) => this.send(r, (route = rt), st, b, h))) return;
      if (path === "/transfer") {
        route = "/transfer";
        if (req.method !== "POST") return this.send(res, route, 405, { error: "use POST /transfer" }, { Allow: "POST" });
        return await this.transfer(req, res);
      }
      if (bankingRoute(path) !== null) {
        route = bankingRoute(path)!;
        if (this.closing && req.method === "POST") return this.send(res, route, 503, { error: "the server is shutting down; retry" }, { "Retry-After": String(RETRY_AFTER_S) });
        await this.banking.handle(req, res, url);
        return;
      }
      const concludePath = /^\/admin\/transactions\/([^/]+)\/conclude$/.exec(path);
      if (concludePath !== null) {
        route = "/admin/transactions/:id/conclude";
        if (req.method !== "POST") return this.send(res, route, 405, { error: `use POST ${path}` }, { Allow: "POST" });
        return await this.conclude(req, res, decodeURIComponent(concludePath[1]!));
      }
      if (req.method !== "GET") {
        if (!isGetRoute(path)) return this.send(res, route, 404, { error: `no route ${req.method} ${path}` });
        return this.send(res, route, 405, { error: `${req.method} is not allowed on ${path}` }, { Allow: "GET, HEAD" });
      }
      // /health too: the name many load balancers and monitors probe by default.
      if (path === "/healthz" || path === "/health") return this.send(res, (route = path), 200, { status: "ok" });
      if (path === "/ready") return await this.ready(res);
      if (path === "/metrics") {
        route = "/metrics";
        return this.sendText(res, route, 200, this.metrics.registry.contentType, await this.metrics.registry.metrics());
      }
      let m = /^\/transactions\/([^/]+)$/.exec(path);
      if (m !== null) return await this.transaction(res, decodeURIComponent(m[1]!), url.searchParams.get("format"));
      m = /^\/accounts\/([^/]+)\/([^/]+)$/.exec(path);
      if (m !== null) return await this.account(res, decodeURIComponent(m[1]!), m[2]!);
      if (path === "/admin/shards") {
        route = "/admin/shards";
        return await this.adminShards(res);
      }
      if (path === "/admin/nodes") {
        route = "/admin/nodes";
        return this.send(res, route, 200, { node: this.config.node, owning: this.failover.owning, nodes: await this.failover.nodes() });
      }
      if (path === "/ui") return this.sendText(res, (route = path), 200, "text/html; charset=utf-8", UI_HTML, UI_HEADERS);
      if (path === "/ui/summary") {
        route = path;
        const summary = await uiSummary({ engine: this.engine, metrics: this.metrics, xa: this.xa, txlog: this.txlog, redact: (t) => redact(t, this.secrets) });
        return this.send(res, route, 200, summary, { "Cache-Control": "no-store" });
      }
      return this.send(res, route, 404, { error: `no route ${req.method} ${path}` });
    } catch (e) {
      console.error(redact(`${req.method} ${path}: ${(e as Error).stack ?? String(e)}`, this.secrets));
      if (!res.headersSent) this.send(res, route, 500, { error: "internal error; see the server log" });
      else res.destroy();
    }
  }

  private send(res: ServerResponse, route: string, status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.sendText(res, route, status, "application/json", JSON.stringify(body), headers);
  }

  /** While draining, every answer closes its connection: the client opens a new one elsewhere instead of reusing this one. */
  private sendText(res: ServerResponse, route: string, status: number, contentType: string, text: string, headers: Record<string, string> = {}): void {
    // Every 503 says when to come back (RFC 9110 10.2.3), whichever path answered it.
    if (status === 503 && headers["Retry-After"] === undefined) headers = { ...headers, "Retry-After": String(RETRY_AFTER_S) };
    this.metrics.httpOf.of(route, String(status)).inc();
    const credential = this.credentialOf.get(res);
    if (credential !== undefined) this.metrics.byCredential.inc({ credential, route, code: String(status) });
    res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text), ...headers, ...(this.closing ? { Connection: "close" } : {}) });
    res.end(text);
  }

  /** The body, or a BadRequest(413) past body_bytes_max (the rest of the body is not read). */
  private readBody(req: IncomingMessage): Promise<string> {
    const max = this.config.body_bytes_max;
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > max) return Promise.reject(new BadRequest(413, `body of ${declared} bytes is over the limit of ${max} bytes`));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > max) {
          req.removeAllListeners("data");
          req.resume();
          reject(new BadRequest(413, `body over the limit of ${max} bytes`));
          return;
        }
        chunks.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });
  }

  private async transfer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = "/transfer";
    if (this.closing) return this.send(res, route, 503, { error: "the server is shutting down; retry (another instance, or this one once restarted)" }, { "Retry-After": String(RETRY_AFTER_S) });
    // Requests still reading their body or claiming an idempotency key are not coordinators yet; bound them too.
    if (this.transfersOpen >= this.config.in_flight_max * 2) {
      this.metrics.rejected.inc({ reason: "overload" });
      return this.send(res, route, 503, { error: `${this.transfersOpen} transfer requests open` }, { "Retry-After": String(RETRY_AFTER_S) });
    }
    this.transfersOpen++;
    try {
      return await this.runTransfer(req, res);
    } finally {
      this.transfersOpen--;
    }
  }

  private async runTransfer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let release = () => {};
    try {
      return await this.runHeldTransfer(req, res, (r) => (release = r));
    } finally {
      release();
    }
  }

  private async runHeldTransfer(req: IncomingMessage, res: ServerResponse, held: (release: () => void) => void): Promise<void> {
    const route = "/transfer";
    let release: (() => void) | undefined;
    let request;
    try {
      const ct = req.headers["content-type"];
      if (ct !== undefined && !/^application\/json\b/i.test(ct)) throw new BadRequest(400, `Content-Type ${ct}: send application/json`);
      const text = await this.readBody(req);
      let first = decodeTransfer(text, this.accounts, this.config.protocol, { deferRefusal: true, deferMissing: true });
      // Accounts this node's cache does not know: their shards say (503 if one does not answer); then decoded again,
      // synchronously, so that the checks below and the hold run in one turn (runtime/accounts.ts).
      if (first.missing !== undefined) first = decodeTransfer(text, this.accounts.withFound(await this.accounts.lookup(first.missing)), this.config.protocol, { deferRefusal: true });
      const { refusal, missing: _missing, ...decoded } = first;
      const key = idempotencyKeyOf(req.headersDistinct["idempotency-key"], decoded.idempotency_key);
      request = key === undefined ? decoded : { ...decoded, idempotency_key: key };
      // An account closed (or not open yet) since: refused, unless this is the retry of a transfer the key already
      // ran, which is answered as it was (a 409 there would tell the client its transfer did not happen).
      if (refusal !== undefined) {
        const ran = key === undefined ? false : await this.idempotency.claimed(key);
        if (ran === null) throw new BadRequest(503, `${refusal}; and whether idempotency key ${JSON.stringify(key)} already ran a transfer cannot be read now: retry`);
        if (!ran) throw new BadRequest(409, refusal);
      }
      // In the turn of the decode's account checks: a close of one of these accounts waits for this transfer (runtime/banking.ts).
      release = this.accounts.hold(request.branches.flatMap((b) => b.ops.map((op) => ({ shard: b.shard, account: op.account }))));
    } catch (e) {
      if (e instanceof BadRequest) {
        release?.();
        const headers: Record<string, string> = e.status === 413 ? { Connection: "close" } : e.status === 503 ? { "Retry-After": String(RETRY_AFTER_S) } : {};
        return this.send(res, route, e.status, { error: e.message }, headers);
      }
      throw e;
    }
    if (release !== undefined) held(release);
    // A committed transfer's answer carries its commit timestamp (runtime/timestamps.ts): a read at it sees the transfer.
    let answered = false;
    const waitTs = prefersCommitTs(req.headers.prefer);
    const answer = (tx: string, o: Outcome, replayed?: boolean, ranWith?: string): void => {
      if (answered) return;
      answered = true;
      // Chosen now only by this process's running coordinator (the speculative path answers before its record); a
      // replayed or read-back answer gives the timestamp only when this process knows it. Told only once durable
      // (runtime/timestamps.ts toTell: a one-branch answer waits for its stamp, bounded; none waits for the txlog).
      const known = o.status !== "committed" ? undefined : this.engine.isRunning(tx) ? this.time.timestamps.choose(tx) : this.time.timestamps.tsOf(tx);
      // `Prefer: commit-ts` (RFC 7240): the client waits for a durable timestamp on every path, the speculative one
      // included (bounded; Preference-Applied says it was honoured).
      const told = known === undefined ? undefined : waitTs ? this.time.timestamps.toTellWaiting(tx, known) : this.time.timestamps.toTell(tx, known);
      if (told instanceof Promise) void told.then((t) => send(tx, o, t, replayed, ranWith));
      else send(tx, o, told, replayed, ranWith);
    };
    const send = (tx: string, o: Outcome, known: bigint | undefined, replayed?: boolean, ranWith?: string): void => {
      const commitTs = known === undefined ? undefined : formatTs(known);
      this.send(
        res,
        route,
        o.status === "committed" ? 200 : o.status === "aborted" ? 409 : 202,
        {
          tx,
          status: o.status,
          ...(o.status === "aborted" ? { reason: o.reason } : {}),
          ...(commitTs !== undefined ? { commit_ts: commitTs } : {}),
          // A replay names the protocol its transaction ran with (its claim's), which this node's default may not be.
          protocol: ranWith ?? request.protocol,
          ...(replayed !== undefined ? { idempotency_key: request.idempotency_key, replayed } : {}),
        },
        { ...(commitTs !== undefined ? { [TIMESTAMP_HEADER]: commitTs } : {}), ...(waitTs ? { "Preference-Applied": "commit-ts" } : {}) },
      );
    };
    try {
      observeClientTimestamp(req, this.time.timestamps);
    } catch (e) {
      if (e instanceof SnapshotRefused) return this.send(res, route, e.status, { error: e.message });
      throw e;
    }
    try {
      if (request.idempotency_key !== undefined) {
        // The credential is known before the branches run, so that their history rows carry it.
        const r = await this.idempotency.run(request.idempotency_key, request, traceParentOf(req), (tx) => this.rememberCredential(tx, res));
        this.rememberCredential(r.tx, res);
        return answer(r.tx, r.outcome, r.replayed, r.protocol);
      }
      // Answered from inside the coordinator's step, so the response is written before that step's commits are sent.
      const tx = this.engine.newTx();
      this.rememberCredential(tx, res);
      const outcome = await this.engine.submit(request.branches, request.protocol, tx, (o) => answer(tx, o), traceParentOf(req)).outcome;
      // A coordinator stopped at shutdown ends without a reply: its outcome (in_doubt) is still the client's due.
      if (!res.headersSent) answer(tx, outcome);
    } catch (e) {
      if (e instanceof Overloaded || e instanceof ShuttingDown || e instanceof NotReady) {
        this.metrics.rejected.inc({ reason: e instanceof Overloaded ? "overload" : e instanceof ShuttingDown ? "shutdown" : "not_ready" });
        return this.send(res, route, 503, { error: e.message }, { "Retry-After": String(RETRY_AFTER_S) });
      }
      if (e instanceof IdempotencyConflict) return this.send(res, route, e.status, { error: e.message, ...(e.tx !== undefined ? { tx: e.tx } : {}) });
      throw e;
    }
  }

  /** JSON view; with ?format=ndjson the recorded trace alone, as `speccommit trace render|validate` read it. */
  private async transaction(res: ServerResponse, tx: string, format: string | null): Promise<void> {
    const route = "/transactions/:id";
    const found = this.engine.transaction(tx);
    if (found === undefined) return this.durableTransaction(res, tx);
    const view = this.withCredential(found);
    if (format === null || format === "json") return this.send(res, route, 200, this.withCredential(await this.settledView(found)));
    if (format !== "ndjson" && format !== "svg") return this.send(res, route, 400, { error: `format ${JSON.stringify(format)}: use json, ndjson or svg` });
    if (view.trace === null) return this.send(res, route, 404, { error: "traces are not recorded (record_traces is false)" });
    // The sequence diagram, drawn by the renderer of counterexamples (traces/render.ts).
    if (format === "svg") return this.sendText(res, route, 200, "image/svg+xml", await toSvg({ header: view.trace.header, steps: [...view.trace.steps] }));
    this.sendText(res, route, 200, "application/x-ndjson", formatTrace({ header: view.trace.header, steps: [...view.trace.steps] }));
  }

  /**
   * A coordinator that answered in_doubt and ended has said all it knows: the
   * outcome is then what durable state says, by the rule a restarted server
   * reads it with (runtime/durable.ts), and once final it is kept as this
   * process's answer. While durable state does not say, in_doubt stands.
   */
  private async settledView(view: TransactionView): Promise<TransactionView | (TransactionView & { durable_error: string })> {
    const ran = this.engine.inDoubt(view.tx);
    if (ran === undefined) return view;
    let outcome;
    try {
      outcome = await settledOutcome(view.tx, ran, { xa: this.xa, log: this.txlog, epoch: () => this.engine.epoch });
    } catch (e) {
      if (!(e instanceof DurableUnavailable)) throw e;
      return { ...view, durable_error: `cannot read the outcome from durable state yet: ${e.message}` };
    }
    // A speculation of which nothing is found stays in doubt: a GET does not write the probe's tombstones (a retry with its idempotency key does).
    if (outcome === "probe") return view;
    this.engine.settled(view.tx, outcome);
    return this.engine.transaction(view.tx) ?? view;
  }

  /** A transaction this process does not remember (older, or run before a restart): what the log and the shards say. */
  private async durableTransaction(res: ServerResponse, tx: string): Promise<void> {
    const route = "/transactions/:id";
    let d;
    try {
      // Its records are in the namespace of the node that ran it.
      d = await durableOutcome(tx, { xa: this.xa, log: this.logOf(nodeOfTx(tx)) });
    } catch (e) {
      if (e instanceof DurableUnavailable) return this.send(res, route, 503, { error: `cannot look up ${tx}: ${e.message}` });
      throw e;
    }
    if (d === null) {
      return this.send(res, route, 404, {
        error: `no trace of transaction ${tx} in memory, in the log or on any shard: it has not committed (aborted, or never ran; a speculative transfer's apply may still be on its way, and a retry with its idempotency_key settles it)`,
      });
    }
    const { outcome, found } = d;
    this.send(res, route, 200, { tx, status: outcome.status, source: "durable state (this process does not remember the transaction)", ...found });
  }

  /**
   * POST /admin/transactions/:id/conclude {"direction":"commit"|"rollback"}: the verdict is
   * spec/server/conclude.ts's from durable state; a transaction in doubt is handed to the resolver (one scan now)
   * and the answer is what the protocol decided. Audited: a log line (who, when, what, result) and
   * speccommit_concludes_total.
   */
  private async conclude(req: IncomingMessage, res: ServerResponse, tx: string): Promise<void> {
    const route = "/admin/transactions/:id/conclude";
    let direction: ConcludeDirection;
    try {
      const body = JSON.parse((await this.readBody(req)) || "{}") as { direction?: unknown };
      if (body.direction !== "commit" && body.direction !== "rollback") throw new BadRequest(400, 'the body must be {"direction":"commit"} or {"direction":"rollback"}');
      direction = body.direction;
    } catch (e) {
      if (e instanceof BadRequest) return this.send(res, route, e.status, { error: e.message });
      return this.send(res, route, 400, { error: `the body is not JSON: ${(e as Error).message}` });
    }
    const who = this.credentialOf.get(res) ?? "(auth none)";
    const done = (status: number, result: string, body: Record<string, unknown>) => {
      this.metrics.concludes.inc({ direction, result });
      console.log(`conclude ${tx} direction=${direction} by=${who} at=${new Date().toISOString()} result=${result}`);
      this.send(res, route, status, { tx, direction, result, ...body });
    };
    if (this.engine.isRunning(tx)) return done(409, "running", { error: "its coordinator is running in this process: it decides; wait for its answer" });
    const read = async () => (await durableOutcome(tx, { xa: this.xa, log: this.logOf(nodeOfTx(tx)) }))?.outcome ?? null;
    try {
      const v = conclude(await read(), direction);
      if (v.t === "unknown") return done(404, "unknown", { error: `no trace of ${tx} in the log or on any shard: nothing to conclude` });
      if (v.t === "refused") return done(409, "refused", { status: v.outcome, error: `refused: ${v.why}` });
      // Final: the resolver still finishes any branch left prepared; one scan.
      if (v.t === "final") {
        await this.engine.scanNow();
        return done(200, "final", { status: v.outcome });
      }
      // In doubt: the resolver decides as the protocol says. A scan may first have to take the epoch back (another
      // process fenced this one) or find a shard back up: scans, bounded in time, until durable state says.
      let after;
      const deadline = Date.now() + CONCLUDE_WAIT_MS;
      do {
        await this.engine.scanNow();
        after = afterScan(await read(), direction);
        if (after.outcome.status !== "in_doubt") break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } while (Date.now() < deadline);
      if (after.outcome.status === "in_doubt") return done(202, "in_doubt", { status: "in_doubt", error: `still in doubt after resolver scans for ${CONCLUDE_WAIT_MS / 1000} s: a shard or the log did not answer (GET /admin/shards), or a coordinator elsewhere owns it` });
      if (!after.matches) return done(409, "other", { status: after.outcome.status, error: `the protocol decided ${after.outcome.status}, not what was asked; nothing was done against it` });
      return done(200, "resolved", { status: after.outcome.status });
    } catch (e) {
      if (e instanceof DurableUnavailable) return done(503, "unavailable", { error: `cannot read ${tx}: ${e.message}` });
      throw e;
    }
  }

  private async account(res: ServerResponse, shard: ShardId, idText: string): Promise<void> {
    const route = "/accounts/:shard/:id";
    if (!this.xa.shards.includes(shard)) return this.send(res, route, 404, { error: `unknown shard ${JSON.stringify(shard)} (shards: ${this.xa.shards.join(", ")})` });
    if (!/^\d{1,16}$/.test(idText) || Number(idText) > Number.MAX_SAFE_INTEGER) return this.send(res, route, 400, { error: `account id ${JSON.stringify(idText)} is not a positive integer up to ${Number.MAX_SAFE_INTEGER}` });
    const id = Number(idText);
    const r = await this.xa
      .pool(shard)
      .run<Array<{ balance: string; pending: string }>>(`SELECT a.balance, COALESCE(p.cents, 0) AS pending FROM accounts a LEFT JOIN speculative_pending p ON p.account_id = a.id WHERE a.id = ${id}`);
    if (!r.ok) return this.send(res, route, 503, { error: `${shard} did not answer: ${redact(r.error.message, this.secrets)}` });
    const row = r.value[0];
    if (row === undefined) return this.send(res, route, 404, { error: `no account ${id} on ${shard}` });
    const cents = toCents(row.balance);
    const pending = toCents(row.pending);
    // balance: spendable, committed; pending: credits of speculations not final yet (escrow, docs/protocols/speculative.md).
    this.send(res, route, 200, { shard_id: shard, account_id: id, balance_cents: cents.toString(), balance: formatCents(cents), pending_cents: pending.toString() });
  }

  private async ready(res: ServerResponse): Promise<void> {
    const [etcd, shards] = await Promise.all([
      withTimeout(this.txlog.reachable(), ADMIN_PROBE_TIMEOUT_MS, false),
      Promise.all(this.xa.shards.map(async (s) => [s, (await withTimeout(this.xa.health(s), ADMIN_PROBE_TIMEOUT_MS, null))?.reachable ?? false] as const)),
    ]);
    const resolver = this.engine.caughtUp;
    const epoch = this.engine.epoch;
    const ok = etcd && resolver && epoch !== null && shards.every(([, up]) => up) && !this.closing;
    this.send(res, "/ready", ok ? 200 : 503, {
      ready: ok,
      etcd,
      shards: Object.fromEntries(shards),
      resolver_caught_up: resolver,
      epoch,
      shutting_down: this.closing,
    });
  }

  private async adminShards(res: ServerResponse): Promise<void> {
    const shards = await Promise.all(
      this.xa.shards.map(async (s) => {
        const [health, recovered, all] = await Promise.all([
          this.xa.health(s),
          this.xa.recover(s),
          this.xa.pool(s).run<unknown[]>("XA RECOVER"),
        ]);
        const a = this.xa.pool(s).address;
        return {
          shard: s,
          address: a.socketPath !== undefined ? `unix:${a.socketPath}` : `tcp:${a.host}:${a.port}`,
          reachable: health.reachable,
          latency_ms: health.latency_ms,
          error: health.error === undefined || health.error === null ? health.error : redact(health.error, this.secrets),
          connections: health.connections,
          branches_open: health.branches_open,
          accounts: this.accounts.describe(s),
          prepared: recovered.ok ? recovered.prepared.map((x) => x.tx) : null,
          prepared_foreign: all.ok && recovered.ok ? all.value.length - recovered.prepared.length : null,
        };
      }),
    );
    this.send(res, "/admin/shards", 200, {
      node: this.config.node,
      shards,
      in_flight: this.engine.inFlight,
      resolver: { caught_up: this.engine.caughtUp, last_scan: this.engine.lastScan, epoch: this.engine.epoch },
    });
  }
}

/** The W3C trace context headers of a request (one value each; a repeated header is ignored, as the W3C spec allows). */
function traceParentOf(req: IncomingMessage): TraceParent | undefined {
  const parent = req.headers.traceparent;
  if (typeof parent !== "string") return undefined;
  const state = req.headers.tracestate;
  return { traceparent: parent, ...(typeof state === "string" ? { tracestate: state } : {}) };
}

/** The route label of a path (speccommit_http_requests_total). */
function routeOf(path: string): string {
  const banking = bankingRoute(path);
  if (banking !== null) return banking;
  if (/^\/transactions\/[^/]+$/.test(path)) return "/transactions/:id";
  if (/^\/accounts\/[^/]+\/[^/]+$/.test(path)) return "/accounts/:shard/:id";
  if (/^\/admin\/transactions\/[^/]+\/conclude$/.test(path)) return "/admin/transactions/:id/conclude";
  if (["/transfer", "/snapshot", "/metrics", "/admin/shards", "/admin/nodes", "/healthz", "/health", "/ready", "/ui", "/ui/summary"].includes(path)) return path;
  return "other";
}

/** The 401/403 body: what is needed, never which part was wrong beyond that (no hint for guessing). */
function refusal(path: string, scope: Scope, r: Exclude<AuthResult, { ok: true }>): string {
  if (r.status === 403) return `the credential has no scope ${scope}, which ${path} needs`;
  const legacy = scope === "metrics" ? "metrics_token" : scope === "admin" ? "admin_token" : undefined;
  if (legacy !== undefined) return `${path} needs the header Authorization: Bearer <${legacy}> (or the token of a credential with scope ${scope})`;
  return `${path} needs the header Authorization: Bearer <token> of a credential with scope ${scope}`;
}

/** A refused request's body is not read: the connection ends after the answer rather than read a body for nothing. */
function closeIfBody(req: IncomingMessage): Record<string, string> {
  const declared = req.headers["content-length"];
  return (declared !== undefined && declared !== "0") || req.headers["transfer-encoding"] !== undefined ? { Connection: "close" } : {};
}

function withTimeout<T, D>(p: Promise<T>, ms: number, fallback: D): Promise<T | D> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<D>((resolve) => (t = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(t));
}

/** The HLC starts past every commit timestamp the shards hold (a restart after the clock went back never issues a smaller one). */
async function observeHistory(hlc: HybridClock, pools: ReadonlyMap<ShardId, { run<T>(sql: string): Promise<{ ok: true; value: T } | { ok: false; error: { message: string } }> }>): Promise<void> {
  await Promise.all(
    [...pools.values()].map(async (pool) => {
      const r = await pool.run<Array<{ m: string | null }>>("SELECT CAST(MAX(commit_ts) AS CHAR) AS m FROM history");
      const m = r.ok ? r.value[0]?.m : null;
      if (typeof m === "string" && /^\d+$/.test(m)) hlc.observeTrusted(BigInt(m));
    }),
  );
}
