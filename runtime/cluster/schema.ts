/**
 * The schema of every shard, in one place, and the seeding of accounts.
 *
 * Money is integer cents in BIGINT columns. Connections made with
 * `MariaDbProcess.connectionOptions()` return BIGINT and DECIMAL values as
 * strings (mysql2 `supportBigNumbers` + `bigNumberStrings`), so a balance or a
 * SUM never passes through a float: read them with `toCents`.
 *
 * `balance >= 0` is a CHECK constraint: an UPDATE that would overdraw fails
 * with MariaDB error 4025 (ER_CONSTRAINT_FAILED), which is how a branch learns
 * of insufficient funds without a separate read.
 *
 * A later protocol adds its tables by appending to SHARD_TABLES; createSchema
 * creates whatever is missing, so existing clusters gain them on next `up`.
 */
import type { Connection, PoolConnection } from "mysql2/promise";

export const DATABASE = "speccommit";

/** The node fence table (SHARD_TABLES, below). */
export const FENCE_TABLE = "node_fence";

/** The one-phase branches' fence rows (SHARD_TABLES, below). */
export const OPEN_BRANCH_TABLE = "open_branch";

/** Makes node `node`'s fence row at epoch 0 (fences nothing) if it is missing; `node` must be a checked node name. */
export const fenceRowInsert = (node: string): string => `INSERT IGNORE INTO ${FENCE_TABLE} (node, epoch) VALUES ('${node}', 0)`;

/** MariaDB error number of a violated CHECK constraint (an overdraft). */
export const ER_CONSTRAINT_FAILED = 4025;

/**
 * The largest balance, in cents: the range of a BIGINT column. Every reader
 * takes money as a decimal string or a bigint (toCents), so this, not 2^53,
 * is where exactness ends; MariaDB refuses arithmetic past it (error 1690,
 * ER_DATA_OUT_OF_RANGE), so an UPDATE that would credit a balance beyond it
 * fails and its transfer aborts. The speculative apply checks it for the
 * balance its credit will be released into (runtime/adapters/local-mysql.ts).
 */
export const BALANCE_CENTS_MAX = 2n ** 63n - 1n;

/** A privilege the shard user holds on one table (docs/operations.md, "The shard user"). */
/** A column list after INSERT or UPDATE grants it on those columns only. */
export type TablePrivilege = "SELECT" | "INSERT" | "UPDATE" | "DELETE" | `INSERT (${string})` | `UPDATE (${string})`;

export interface TableDdl {
  readonly name: string;
  /** A CREATE TABLE IF NOT EXISTS statement, in DATABASE. */
  readonly create: string;
  /** What the server does to this table, no more: the shard user's grants on it. */
  readonly grants: readonly TablePrivilege[];
  /** Statements that bring a table made by an earlier version to `create`'s shape (idempotent: IF NOT EXISTS). */
  readonly upgrade?: readonly string[];
}

export const SHARD_TABLES: readonly TableDdl[] = [
  {
    name: "accounts",
    create: `CREATE TABLE IF NOT EXISTS accounts (
      id BIGINT NOT NULL PRIMARY KEY,
      balance BIGINT NOT NULL DEFAULT 0,
      status ENUM('open','opening','closed','failed') NOT NULL DEFAULT 'open',
      opening_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL,
      opening_tx VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
      opening_request CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
      opening_protocol VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
      CONSTRAINT balance_not_negative CHECK (balance >= 0),
      UNIQUE KEY accounts_opening_key (opening_key)
    ) ENGINE=InnoDB`,
    // The banking API (runtime/banking.ts): an account made by POST /accounts is inserted at balance 0 in state
    // 'opening' with its Idempotency-Key, the SHA-256 of its request and the id of its opening transfer; it becomes 'open' once that transfer
    // committed ('failed' when it aborted), 'closed' at zero. Seeded accounts are 'open'. Added after the first
    // clusters were made: a shard made before gets the columns.
    upgrade: [
      "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS status ENUM('open','opening','closed','failed') NOT NULL DEFAULT 'open'",
      "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS opening_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
      "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS opening_tx VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL",
      "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS opening_request CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL",
      "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS opening_protocol VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL",
      "ALTER TABLE accounts ALTER COLUMN balance SET DEFAULT 0",
      "ALTER TABLE accounts ADD UNIQUE KEY IF NOT EXISTS accounts_opening_key (opening_key)",
      // utf8mb4_bin is a PAD SPACE collation ("k" and "k " were one key); NO PAD compares every byte. Keeps the rows
      // (no two of them can be equal under NO PAD that were not under PAD SPACE); a no-op once done.
      "ALTER TABLE accounts MODIFY COLUMN opening_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL",
    ],
    // Read (GET /accounts, recovery) and changed by the branches. INSERT for POST /accounts on every column but
    // balance, so an account the server inserts starts at the column's default, 0: the opening balance is moved into
    // it by a transfer, and the shard itself refuses an insert that would mint money (ER_COLUMNACCESS_DENIED).
    // No DELETE: a closed account stays, closed.
    grants: ["SELECT", "INSERT (id, status, opening_key, opening_tx, opening_request, opening_protocol)", "UPDATE"],
  },
  {
    // One row per applied delta; (xid, account_id) is unique so a branch applied twice fails loudly.
    name: "history",
    create: `CREATE TABLE IF NOT EXISTS history (
      xid VARCHAR(160) NOT NULL,
      account_id BIGINT NOT NULL,
      delta BIGINT NOT NULL,
      at_us BIGINT NOT NULL,
      credential VARCHAR(64) NULL,
      commit_ts BIGINT UNSIGNED NULL,
      seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      PRIMARY KEY (xid, account_id),
      UNIQUE KEY history_seq (seq),
      KEY history_account (account_id),
      KEY history_commit_ts (commit_ts),
      KEY history_account_seq (account_id, seq)
    ) ENGINE=InnoDB`,
    // The credential (runtime/auth.ts) whose request started the transfer; NULL with --auth none. Added after the
    // first clusters were made: a shard made before gets the column.
    // commit_ts: the transaction's HLC commit timestamp (spec/time/hlc.ts), stamped when its branch commits
    // (XA) or is released (speculative); NULL until then (runtime/timestamps.ts). Snapshot reads use it.
    // seq: the shard's insertion order of history rows (runtime/history.ts). A branch inserts its rows after its
    // UPDATEs of the accounts, under their row locks, so of two committed transfers that changed the same account the
    // later one's row has the larger seq: the per-account conflict order the serializability audit reads. It is also
    // the stable cursor of GET /accounts/:shard/:id/history. No statement names it (the INSERTs leave it to InnoDB).
    upgrade: [
      "ALTER TABLE history ADD COLUMN IF NOT EXISTS credential VARCHAR(64) NULL",
      "ALTER TABLE history ADD COLUMN IF NOT EXISTS commit_ts BIGINT UNSIGNED NULL",
      "ALTER TABLE history ADD INDEX IF NOT EXISTS history_commit_ts (commit_ts)",
      "ALTER TABLE history ADD COLUMN IF NOT EXISTS seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY IF NOT EXISTS history_seq (seq)",
      "ALTER TABLE history ADD KEY IF NOT EXISTS history_account_seq (account_id, seq)",
    ],
    // Written by every branch, read by recovery; a speculative compensation deletes the rows it undoes; the commit
    // timestamp is stamped by UPDATE, of that column only (a delta is never updated).
    grants: ["SELECT", "INSERT", "UPDATE (commit_ts)", "DELETE"],
  },
  {
    // The speculative path (spec/env/local.ts): credits escrowed until their transaction is final.
    // Money here is part of the shard's total (shardTotalCents).
    name: "speculative_pending",
    create: `CREATE TABLE IF NOT EXISTS speculative_pending (
      account_id BIGINT NOT NULL PRIMARY KEY,
      cents BIGINT NOT NULL,
      CONSTRAINT pending_not_negative CHECK (cents >= 0)
    ) ENGINE=InnoDB`,
    // INSERT ... ON DUPLICATE KEY UPDATE needs both; rows are emptied, never deleted.
    grants: ["SELECT", "INSERT", "UPDATE"],
  },
  {
    // The speculative path's undo log and write-once key per branch (spec/env/local.ts): a row is retired
    // (released, compensated), never deleted. tx and branch compare as bytes, as the model orders them.
    name: "speculative_undo",
    create: `CREATE TABLE IF NOT EXISTS speculative_undo (
      tx VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      branch VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      state ENUM('undo','released','compensated','tombstone') NOT NULL,
      inverse TEXT NOT NULL,
      branches TEXT NOT NULL,
      escrow BOOLEAN NOT NULL DEFAULT 1,
      PRIMARY KEY (tx, branch),
      KEY speculative_undo_state (state)
    ) ENGINE=InnoDB`,
    // A row is written once and retired by UPDATE; SELECT ... FOR UPDATE needs SELECT.
    grants: ["SELECT", "INSERT", "UPDATE"],
  },
  {
    // The node fence (spec/kernel/effects.ts xa.exec `fence`; spec/server/readback.ts SETTLE_FENCE): per coordinator
    // node, the newest epoch a survivor fenced it at on this shard. A one-phase branch reads its node's row, shared,
    // and gives up (FENCED) when it holds an epoch newer than its coordinator's; a survivor writes the row (waiting
    // for every branch that read it) before it reads "nothing found" of that node's transaction as aborted. One row
    // per node that ever ran a one-phase branch here: made at epoch 0 by the node, raised (never lowered) by a survivor.
    name: FENCE_TABLE,
    create: `CREATE TABLE IF NOT EXISTS ${FENCE_TABLE} (
      node VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
      epoch BIGINT UNSIGNED NOT NULL
    ) ENGINE=InnoDB`,
    // INSERT IGNORE (the node's row) and INSERT ... ON DUPLICATE KEY UPDATE (the fence) need both; never deleted.
    grants: ["SELECT", "INSERT", "UPDATE"],
  },
  {
    // The shard fence's hold on a one-phase branch (spec/server/readback.ts SETTLE_FENCE; runtime/durable.ts
    // shardFence): a one-phase exec inserts its transaction's row here, and its commit writes the history rows
    // (stamped) and deletes this row, inside the transaction it commits. So from its exec to its end the branch holds
    // a row of its own locked, where a two-phase branch holds its history rows (inserted at its exec, since a prepared
    // branch cannot write them later), and the fence's locking read of both waits for either. A row lives only while
    // its branch does (a rollback takes the insert back): the table stays as small as the branches in flight.
    name: OPEN_BRANCH_TABLE,
    create: `CREATE TABLE IF NOT EXISTS ${OPEN_BRANCH_TABLE} (
      tx VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY
    ) ENGINE=InnoDB`,
    // The fence's locking read needs SELECT.
    grants: ["SELECT", "INSERT", "DELETE"],
  },
];

type Queryable = Connection | PoolConnection;

/** Creates DATABASE and every table of SHARD_TABLES that is missing. Leaves the connection using DATABASE. */
export async function createSchema(conn: Queryable): Promise<void> {
  await conn.query(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`);
  await conn.query(`USE ${DATABASE}`);
  for (const table of SHARD_TABLES) {
    await conn.query(table.create);
    for (const stmt of table.upgrade ?? []) await conn.query(stmt);
  }
}

/** The MariaDB user the server connects as (`cluster up` creates it on every shard). */
export const SHARD_USER = "speccommit";

/**
 * Where the shard user may connect from: 127.0.0.1 over TCP (the server runs
 * with --skip-name-resolve, so the address is matched as written) and
 * localhost, which is how MariaDB names a unix-socket connection.
 */
export const SHARD_USER_HOSTS = ["127.0.0.1", "localhost"] as const;

/**
 * The shard user's one global privilege: PROCESS, for the cross-shard
 * deadlock detector (runtime/deadlock.ts), which reads
 * information_schema.INNODB_LOCK_WAITS and INNODB_TRX (MariaDB refuses both,
 * error 1227, without it). It lets the user see every session's statement in
 * the process list and InnoDB's status; it changes nothing.
 */
export const SHARD_USER_GLOBAL_GRANTS = ["PROCESS"] as const;

/**
 * Creates (or brings back to exactly this) the shard user: the password
 * given, the grants of SHARD_TABLES and nothing else (any other privilege it
 * was given is revoked). `requireSsl`: the account itself refuses a
 * connection without TLS over TCP (REQUIRE SSL; the unix socket is local and
 * does not carry it). Needs a connection as root.
 *
 * What is not granted, on purpose: XA RECOVER, KILL of the user's own
 * sessions and reading its own sessions in information_schema.PROCESSLIST
 * need no privilege in MariaDB (verified on 10.11: docs/operations.md).
 * Reading the lock waits does: SHARD_USER_GLOBAL_GRANTS.
 */
export async function createShardUser(conn: Queryable, user: string, password: string, opts: { requireSsl?: boolean; extraHosts?: readonly string[] } = {}): Promise<void> {
  if (!/^[a-z][a-z0-9_]{0,31}$/.test(user)) throw new Error(`shard user name must be 1-32 characters of a-z 0-9 _ starting with a letter (got ${JSON.stringify(user)})`);
  // extraHosts: coordinators connecting over a veth pair (netns.ts): an IPv4 address, or address/netmask (one account for all of them).
  for (const h of opts.extraHosts ?? []) if (!/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,3}(\.\d{1,3}){3})?$/.test(h)) throw new Error(`shard user host must be an IPv4 address or address/netmask (got ${JSON.stringify(h)})`);
  for (const host of [...SHARD_USER_HOSTS, ...(opts.extraHosts ?? [])]) {
    const account = `'${user}'@'${host}'`;
    await conn.query(`CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ?`, [password]);
    await conn.query(`ALTER USER ${account} IDENTIFIED BY ? REQUIRE ${opts.requireSsl === true && host !== "localhost" ? "SSL" : "NONE"}`, [password]);
    await conn.query(`REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${account}`);
    for (const table of SHARD_TABLES) await conn.query(`GRANT ${table.grants.join(", ")} ON ${DATABASE}.${table.name} TO ${account}`);
    await conn.query(`GRANT ${SHARD_USER_GLOBAL_GRANTS.join(", ")} ON *.* TO ${account}`);
  }
}

export interface SeedSpec {
  accounts: number;
  balanceCents: number;
  firstId: number;
}

/** Rows per INSERT: 1,000 rows of two BIGINTs is about 30 KB, far under max_allowed_packet. */
const SEED_ROWS_PER_INSERT = 1_000;

function assertSafeInteger(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`seed: ${name} must be an integer >= ${min} (got ${v})`);
}

/**
 * Inserts accounts firstId .. firstId+accounts-1, each with balanceCents, in
 * one transaction of multi-row INSERTs. Expects the schema and DATABASE in use
 * (createSchema). Fails, inserting nothing, if any of the ids exists.
 */
export async function seed(conn: Queryable, spec: SeedSpec): Promise<void> {
  assertSafeInteger("accounts", spec.accounts, 0);
  assertSafeInteger("balanceCents", spec.balanceCents, 0);
  assertSafeInteger("firstId", spec.firstId, 1);
  assertSafeInteger("last id", spec.firstId + spec.accounts - 1, 0);
  await conn.query("START TRANSACTION");
  try {
    for (let start = 0; start < spec.accounts; start += SEED_ROWS_PER_INSERT) {
      const count = Math.min(SEED_ROWS_PER_INSERT, spec.accounts - start);
      const rows: string[] = [];
      for (let i = 0; i < count; i++) rows.push(`(${spec.firstId + start + i},${spec.balanceCents})`);
      await conn.query(`INSERT INTO ${DATABASE}.accounts (id, balance) VALUES ${rows.join(",")}`);
    }
    await conn.query("COMMIT");
  } catch (e) {
    await conn.query("ROLLBACK");
    throw e;
  }
}

/** Number of rows in accounts: 0 means the shard has not been seeded. */
export async function accountCount(conn: Queryable): Promise<number> {
  const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${DATABASE}.accounts`);
  return Number((rows as Array<{ n: string | number }>)[0]?.n ?? 0);
}

/**
 * The money on one shard, in cents: every balance plus every pending
 * (escrowed) credit of the speculative path. This is the conserved quantity:
 * a speculative branch moves a credit into speculative_pending and its release moves
 * it into the balance.
 */
export async function shardTotalCents(conn: Queryable): Promise<bigint> {
  const [rows] = await conn.query(
    `SELECT (SELECT COALESCE(SUM(balance), 0) FROM ${DATABASE}.accounts) + (SELECT COALESCE(SUM(cents), 0) FROM ${DATABASE}.speculative_pending) AS total`,
  );
  return toCents((rows as Array<{ total: unknown }>)[0]?.total);
}

/** Undo rows of the speculative path still in state 'undo' on one shard: after recovery has run, none may be left behind. */
export async function undoRowsLeft(conn: Queryable): Promise<number> {
  const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${DATABASE}.speculative_undo WHERE state = 'undo'`);
  return Number((rows as Array<{ n: string | number }>)[0]?.n ?? 0);
}

/**
 * A money value read from MariaDB (a BIGINT or DECIMAL column, a SUM) as
 * bigint cents. Accepts integer strings, bigints and safe integers; anything
 * else (a fraction, a float, null) is an error, never a rounding.
 */
export function toCents(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  // SUM over BIGINT is DECIMAL; MariaDB prints it without a fractional part, but accept "123.0".
  if (typeof value === "string" && /^-?\d+\.0+$/.test(value)) return BigInt(value.slice(0, value.indexOf(".")));
  throw new Error(`not an integer number of cents: ${typeof value} ${String(value)}`);
}

/** Shard names in order: shard-a, shard-b, ... (26 at most). */
export const SHARD_COUNT_MAX = 26;

export function shardName(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= SHARD_COUNT_MAX) {
    throw new Error(`shard index must be an integer from 0 to ${SHARD_COUNT_MAX - 1} (got ${index})`);
  }
  return `shard-${String.fromCharCode(97 + index)}`;
}

/** Account ids are global: shard i holds i*accountsPerShard+1 .. (i+1)*accountsPerShard. */
export function firstAccountId(index: number, accountsPerShard: number): number {
  return index * accountsPerShard + 1;
}
