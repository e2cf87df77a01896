/**
 * A bounded pool of mysql2 connections to one shard, written here rather than
 * taken from mysql2 because the XA executor needs what mysql2's pool does not
 * give: a connection leaves the pool for as long as its XA branch lives (not
 * for one query), a dead connection is told apart at once (its session's
 * thread id and the server's boot are kept so the executor can make sure the
 * server dropped it, and name it to others), the wait for a connection is
 * bounded in time and in length, and the counts are visible to /admin/shards.
 *
 * Uses mysql2's callback API with `query()` only: XA statements fail as
 * server-side prepared statements.
 */
import mysql from "mysql2";

export interface ShardAddress {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
  /** A unix socket to use instead of host:port (a shard on this machine). */
  readonly socketPath?: string;
  /** TLS to the shard (mysql2's `ssl`): the server is verified by `ca` (and its host name, when addressed by one), `cert`/`key` a client certificate. */
  readonly ssl?: ShardTls;
}

export interface ShardTls {
  /** PEM text of the CA that signed the shard's certificate. */
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
  readonly rejectUnauthorized: true;
  /**
   * Check the certificate names the shard's host. mysql2 does it only for a
   * host name: a shard addressed by IP is verified by its CA alone.
   */
  readonly verifyIdentity: true;
}

export interface PoolLimits {
  /** Connections open at once, in use or idle. */
  readonly connections_max: number;
  /** Callers waiting for a connection; past it, acquire answers null at once. */
  readonly waiters_max: number;
  readonly acquire_timeout_ms: number;
  readonly connect_timeout_ms: number;
  /** Bound on every statement; past it the statement is UNAVAILABLE and its connection destroyed. */
  readonly statement_timeout_ms: number;
}

export interface PooledConnection {
  readonly raw: mysql.Connection;
  /** The server's id of this session (CONNECTION_ID()). */
  readonly threadId: number;
  /**
   * The boot of the server this connection was opened on: its start time in
   * unix seconds (UNIX_TIMESTAMP() - Uptime, both read at the same statement
   * start, so exact), as a string. MariaDB numbers sessions from 1 again after
   * a restart: a thread id names a session only together with its boot.
   */
  readonly boot: string;
  dead: boolean;
}

export interface QueryError {
  readonly errno: number | undefined;
  readonly code: string;
  /** The connection is unusable (lost, timed out, closed). */
  readonly fatal: boolean;
  readonly message: string;
}

export type QueryOutcome<T> = { ok: true; value: T } | { ok: false; error: QueryError };

export interface PoolStats {
  open: number;
  idle: number;
  in_use: number;
  waiting: number;
}

export class ShardPool {
  private readonly idle: PooledConnection[] = [];
  private readonly waiters: Array<{ resolve: (c: PooledConnection | null) => void; timer: NodeJS.Timeout }> = [];
  private open = 0;
  private closed = false;

  constructor(
    readonly address: ShardAddress,
    readonly limits: PoolLimits,
  ) {}

  stats(): PoolStats {
    return { open: this.open, idle: this.idle.length, in_use: this.open - this.idle.length, waiting: this.waiters.length };
  }

  /** A live connection, or null when none could be had within the bounds (shard down, pool exhausted). */
  async acquire(): Promise<PooledConnection | null> {
    if (this.closed) return null;
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (!c.dead) return c;
      this.open--;
    }
    if (this.open < this.limits.connections_max) {
      this.open++;
      const c = await this.connect();
      if (c === null) {
        this.open--;
        this.wakeOne();
      }
      return c;
    }
    if (this.waiters.length >= this.limits.waiters_max) return null;
    return new Promise((resolve) => {
      const waiter = {
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(null);
        }, this.limits.acquire_timeout_ms),
      };
      this.waiters.push(waiter);
    });
  }

  /** Gives back a connection that holds no XA branch. A dead one is dropped. */
  release(c: PooledConnection): void {
    if (c.dead || this.closed) {
      this.discard(c);
      return;
    }
    const w = this.waiters.shift();
    if (w !== undefined) {
      clearTimeout(w.timer);
      w.resolve(c);
      return;
    }
    this.idle.push(c);
  }

  /** Closes a connection for good (its server session, and any unprepared branch on it, goes with it). */
  discard(c: PooledConnection): void {
    c.dead = true;
    hardClose(c.raw);
    this.open--;
    this.wakeOne();
  }

  /** A waiter gets a new connection when room was made. */
  private wakeOne(): void {
    if (this.closed || this.waiters.length === 0 || this.open >= this.limits.connections_max) return;
    const w = this.waiters.shift()!;
    clearTimeout(w.timer);
    this.open++;
    void this.connect().then((c) => {
      if (c === null) this.open--;
      w.resolve(c);
    });
  }

  private connect(): Promise<PooledConnection | null> {
    return new Promise((resolve) => {
      const raw = mysql.createConnection({
        ...(this.address.socketPath !== undefined && this.address.ssl === undefined
          ? { socketPath: this.address.socketPath }
          : { host: this.address.host, port: this.address.port }),
        ...(this.address.ssl !== undefined ? { ssl: { ...this.address.ssl } } : {}),
        user: this.address.user,
        ...(this.address.password !== undefined ? { password: this.address.password } : {}),
        database: this.address.database,
        supportBigNumbers: true,
        bigNumberStrings: true,
        multipleStatements: true,
        // Every statement goes as text (query), none is prepared; mysql2's default cache of 16,000 prepared statements
        // preallocates four arrays of that length, about 512 KB of heap per connection.
        maxPreparedStatements: 1,
        // query() here takes whole statements, never values: mysql2 would otherwise scan every statement's text for
        // placeholders to fill with nothing (sql-escaper's format, about 1% of the coordinator's CPU in a profile).
        queryFormat: (sql: string) => sql,
        connectTimeout: this.limits.connect_timeout_ms,
      });
      const c: PooledConnection = { raw, threadId: 0, boot: "", dead: false };
      // Without a listener an idle connection's loss would be thrown; with it, the pool just skips the connection.
      raw.on("error", () => {
        c.dead = true;
      });
      raw.on("end", () => {
        c.dead = true;
      });
      raw.connect((err) => {
        if (err) {
          hardClose(raw);
          resolve(null);
          return;
        }
        (c as { threadId: number }).threadId = raw.threadId;
        // The server's boot, on the same round-trip budget as the connect.
        let settled = false;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          hardClose(raw);
          resolve(null);
        }, this.limits.connect_timeout_ms);
        raw.query({ sql: BOOT_SQL }, (qerr, rows) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const boot = qerr ? null : bootOf(rows);
          if (boot === null) {
            hardClose(raw);
            resolve(null);
            return;
          }
          (c as { boot: string }).boot = boot;
          resolve(c);
        });
      });
    });
  }

  /**
   * One statement (or several, `;`-separated), bounded by the statement
   * timeout. Past it the connection is closed at once, which ends the
   * statement for this client (mysql2's own query timeout would answer but
   * keep the connection waiting for the server, every later statement
   * queued behind it); the server-side session may still be running it,
   * which is why the XA executor kills a dead owner's session before
   * addressing its branch from another connection. A fatal error marks the
   * connection dead.
   */
  query<T>(c: PooledConnection, sql: string): Promise<QueryOutcome<T>> {
    return new Promise((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        c.dead = true;
        hardClose(c.raw);
        resolve({ ok: false, error: { errno: undefined, code: "STATEMENT_TIMEOUT", fatal: true, message: `no answer within ${this.limits.statement_timeout_ms} ms` } });
      }, this.limits.statement_timeout_ms);
      c.raw.query({ sql }, (err, result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          const e = err as mysql.QueryError & { errno?: number };
          const error: QueryError = { errno: e.errno, code: e.code ?? "UNKNOWN", fatal: e.fatal === true, message: e.message };
          if (error.fatal) c.dead = true;
          resolve({ ok: false, error });
          return;
        }
        resolve({ ok: true, value: result as T });
      });
    });
  }

  /** Runs `sql` on a pooled connection that holds no branch; for reads and admin statements. */
  async run<T>(sql: string): Promise<QueryOutcome<T>> {
    const c = await this.acquire();
    if (c === null) return { ok: false, error: { errno: undefined, code: "POOL_UNAVAILABLE", fatal: true, message: `no connection to ${this.address.name}` } };
    const r = await this.query<T>(c, sql);
    this.release(c);
    return r;
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    for (const c of this.idle.splice(0)) {
      c.dead = true;
      hardClose(c.raw);
      this.open--;
    }
  }
}

/** The server's start time, exact: Uptime is query_start - server_start_time, UNIX_TIMESTAMP() is query_start. */
const BOOT_SQL = "SELECT UNIX_TIMESTAMP() - VARIABLE_VALUE AS boot FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'";

function bootOf(rows: unknown): string | null {
  const v = Array.isArray(rows) ? Number((rows[0] as { boot?: unknown } | undefined)?.boot) : Number.NaN;
  return Number.isSafeInteger(v) && v > 0 ? String(v) : null;
}

/**
 * Closes a connection at once. mysql2's destroy() only half-closes (it ends
 * the socket and waits for the server), and a server busy with a statement,
 * in a lock wait for instance, does not close its side until the statement
 * ends: the socket, and the process, would linger that long. Destroying the
 * socket makes mysql2 fail whatever was queued on it as a lost connection.
 */
export function hardClose(raw: mysql.Connection): void {
  const stream = (raw as unknown as { stream?: { destroy(): void } }).stream;
  if (stream !== undefined) stream.destroy();
  else raw.destroy();
}
