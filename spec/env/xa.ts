/**
 * One MariaDB 10.11 XA shard as a coordinator sees it (docs/xa-model.md).
 * Pure, deterministic, immutable: every function returns a new state
 * and never mutates its input. The state is plain data in canonical form
 * (arrays sorted by key) so that the model checker can fingerprint it.
 *
 * Every rule below was measured on the real server (docs/xa-model.md gives the
 * evidence) and is re-checked by the model-based test in
 * test/env/xa-model.test.ts. Where the server and this file disagree, this
 * file is wrong.
 *
 * The bank schema the runtime uses: accounts(id, balance >= 0) and
 * history(xid, account_id, delta) with PRIMARY KEY (xid, account_id). InnoDB
 * runs at REPEATABLE READ with innodb_rollback_on_timeout=OFF.
 *
 * Blocked statements. A `transfer` whose row is locked by another branch
 * answers `blocked`; its connection then has `waiting` set and may issue
 * nothing else. The wait ends in exactly one of these ways:
 *  - the lock is released (commit, rollback, disconnect, deadlock victim):
 *    InnoDB grants it at once, first come first served, so the waiting
 *    statement runs inside the same transition that released the lock, and
 *    its result is parked in `conn.reply` until the client reads it with
 *    `takeReply`;
 *  - `lockWaitTimeout` (enabled whenever `waiting` is set): the statement ends
 *    with 1205 and the branch stays ACTIVE with everything it did before;
 *  - it is chosen as a deadlock victim: `reply` is 1213;
 *  - `killConnection`, or the server crashes: the connection is gone (the
 *    client sees a lost connection).
 * A client that closes a connection while its statement waits leaves a
 * "closed" connection behind: the server only notices the closed socket when
 * the wait ends, and only then rolls the branch back.
 *
 * Crashes. An acknowledged XA ROLLBACK of a prepared branch is not durable
 * until the redo log is next flushed, so kill -9 has several possible
 * outcomes: `crashOutcomes` lists them all, `crash` is the one where every
 * rollback reached the disk.
 */

export type Xid = string;
export type ConnId = string;
export type Account = number;
export type Cents = number;
export type BranchState = "ACTIVE" | "IDLE" | "PREPARED";

export interface Branch {
  readonly xid: Xid;
  readonly state: BranchState;
  /** The connection the branch belongs to; null once that connection is gone (only PREPARED branches outlive it). */
  readonly owner: ConnId | null;
  /** Balance changes of this branch in execution order; empty means read-only (XA COMMIT by another connection answers 1402). */
  readonly writes: readonly (readonly [account: Account, delta: Cents])[];
  /** Set by a deadlock: InnoDB already rolled the work back; only XA ROLLBACK (ok) or XA COMMIT (1614) ends the branch. */
  readonly rollbackOnly: boolean;
  /** Sorted accounts whose row this branch holds an exclusive lock on (an UPDATE locks the row even when it matches 0 rows). */
  readonly locks: readonly Account[];
  /** The read view (committed balances, sorted) taken at the branch's first plain SELECT; null before it. */
  readonly snapshot: readonly (readonly [account: Account, cents: Cents])[] | null;
}

export interface Wait {
  readonly account: Account;
  readonly delta: Cents;
  readonly guard: boolean;
  /** The branch holding the lock the statement waits for. */
  readonly on: Xid;
  /** Position in the row's lock queue, 0 = next to be granted. */
  readonly rank: number;
}

export interface Conn {
  readonly id: ConnId;
  /** The XA branch attached to this connection (in any state), or null. */
  readonly xid: Xid | null;
  readonly waiting: Wait | null;
  /** Result of a statement that was blocked and has completed, not yet read by the client (see takeReply). */
  readonly reply: Outcome | null;
  /** The client closed the socket while the statement was waiting; the server drops the connection when the wait ends. */
  readonly closed: boolean;
}

export interface ShardState {
  readonly up: boolean;
  /** Committed balances, sorted by account. */
  readonly balances: readonly (readonly [account: Account, cents: Cents])[];
  /** Sorted by id. */
  readonly conns: readonly Conn[];
  /** Live branches (any state), sorted by xid. */
  readonly branches: readonly Branch[];
  /** Committed history rows, sorted by (xid, account). */
  readonly history: readonly (readonly [xid: Xid, account: Account, delta: Cents])[];
  /**
   * PREPARED branches with writes that XA ROLLBACK ended but whose rollback is
   * not on disk yet, oldest first. InnoDB does not flush the redo log for a
   * rollback: the next commit or prepare that changed data does, and so does
   * the background flush about once a second. Until then kill -9 brings the
   * branch back PREPARED (see crashOutcomes).
   */
  readonly unflushedRollbacks: readonly UnflushedRollback[];
}

export interface UnflushedRollback {
  readonly xid: Xid;
  readonly writes: Branch["writes"];
}

export type Stmt =
  | { readonly op: "start"; readonly xid: Xid }
  | { readonly op: "end"; readonly xid: Xid }
  | { readonly op: "prepare"; readonly xid: Xid }
  | { readonly op: "commit"; readonly xid: Xid; readonly onePhase?: boolean }
  | { readonly op: "rollback"; readonly xid: Xid }
  | { readonly op: "recover" }
  /**
   * UPDATE accounts SET balance = balance + delta WHERE id = account AND balance + delta >= 0,
   * then, if it changed the row, INSERT INTO history (xid, account_id, delta).
   * affected 0: insufficient funds or no such account. Only inside an ACTIVE branch.
   * `guard: false` drops the `AND balance + delta >= 0` and stands for a schema
   * without the CHECK (balance >= 0) constraint, so the balance may go below
   * zero: it exists only for the protocol mutant that forgets the
   * insufficient-funds check. The real schema has the CHECK, and there such an
   * UPDATE fails with 4025 (ER.CONSTRAINT_FAILED), keeping its row lock; the
   * model-based test runs guarded transfers only.
   */
  | { readonly op: "transfer"; readonly account: Account; readonly delta: Cents; readonly guard?: boolean }
  /** SELECT balance FROM accounts WHERE id = account (a consistent, non-locking read). */
  | { readonly op: "select"; readonly account: Account };

export type Outcome =
  | { readonly kind: "ok"; readonly affected?: number; readonly xids?: readonly Xid[]; readonly balance?: Cents }
  | { readonly kind: "error"; readonly code: number }
  | { readonly kind: "blocked"; readonly on: Xid };

export interface Result {
  readonly s: ShardState;
  readonly out: Outcome;
}

/** Server error codes (MariaDB 10.11) and the client codes the runtime maps connection failures to. */
export const ER = {
  LOCK_WAIT_TIMEOUT: 1205,
  LOCK_DEADLOCK: 1213,
  XAER_NOTA: 1397,
  XAER_INVAL: 1398,
  XAER_RMFAIL: 1399,
  XAER_OUTSIDE: 1400,
  XA_RBROLLBACK: 1402,
  XAER_DUPID: 1440,
  XA_RBDEADLOCK: 1614,
  /** CHECK constraint failed: what the real schema answers to an unguarded overdraft. */
  CONSTRAINT_FAILED: 4025,
  /** Cannot connect: the server is down. */
  CONN_REFUSED: 2003,
  /** A statement on a connection that no longer exists (the server crashed or dropped it). */
  SERVER_GONE: 2006,
  /** The connection broke while the statement ran (server crash). */
  SERVER_LOST: 2013,
} as const;

const OK: Outcome = { kind: "ok" };
const err = (code: number): Outcome => ({ kind: "error", code });

// ---------------------------------------------------------------- queries

export function initShard(balances: readonly (readonly [Account, Cents])[]): ShardState {
  for (const [account, cents] of balances) {
    if (!Number.isSafeInteger(account) || !Number.isSafeInteger(cents) || cents < 0) {
      throw new Error(`initShard: account ${account} with ${cents} cents: both must be integers, the balance >= 0`);
    }
  }
  const sorted = [...balances].map(([a, c]) => [a, c] as const).sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]![0] === sorted[i - 1]![0]) throw new Error(`initShard: account ${sorted[i]![0]} given twice`);
  }
  return { up: true, balances: sorted, conns: [], branches: [], history: [], unflushedRollbacks: [] };
}

/** What XA RECOVER lists: every PREPARED branch, whoever owns it, sorted. */
export function recoverXids(s: ShardState): Xid[] {
  return s.branches.filter((b) => b.state === "PREPARED").map((b) => b.xid);
}

export function lockHolder(s: ShardState, account: Account): Xid | null {
  return s.branches.find((b) => b.locks.includes(account))?.xid ?? null;
}

export function committedBalance(s: ShardState, account: Account): Cents | null {
  return s.balances.find(([a]) => a === account)?.[1] ?? null;
}

export function findConn(s: ShardState, id: ConnId): Conn | null {
  return s.conns.find((c) => c.id === id) ?? null;
}

export function findBranch(s: ShardState, xid: Xid): Branch | null {
  return s.branches.find((b) => b.xid === xid) ?? null;
}

// ---------------------------------------------------------------- transitions

/** A new client connection. Fails with 2003 while the server is down. */
export function connect(s: ShardState, id: ConnId): Result {
  if (!s.up) return { s, out: err(ER.CONN_REFUSED) };
  if (findConn(s, id)) throw new Error(`connect: connection ${id} already exists`);
  return { s: putConn(s, { id, xid: null, waiting: null, reply: null, closed: false }), out: OK };
}

/**
 * Every outcome the server may give for `stmt` on connection `conn`. Usually
 * one; a transfer that closes a wait-for cycle has one outcome per possible
 * deadlock victim (InnoDB picks the lightest transaction; the model does not
 * track weights, so it allows any member of the cycle).
 */
export function execute(s: ShardState, conn: ConnId, stmt: Stmt): readonly Result[] {
  const c = findConn(s, conn);
  if (!c) return [{ s, out: err(ER.SERVER_GONE) }];
  if (c.waiting || c.reply || c.closed) {
    throw new Error(`execute: connection ${conn} still has a statement in flight; a client sends one statement at a time`);
  }
  const b = c.xid === null ? null : findBranch(s, c.xid);
  switch (stmt.op) {
    case "start":
      return [xaStart(s, c, b, stmt.xid)];
    case "end":
      if (!b || b.state !== "ACTIVE" || b.rollbackOnly) return [{ s, out: err(ER.XAER_RMFAIL) }];
      if (stmt.xid !== b.xid) return [{ s, out: err(ER.XAER_NOTA) }];
      return [{ s: putBranch(s, { ...b, state: "IDLE" }), out: OK }];
    case "prepare":
      if (!b || b.state !== "IDLE" || b.rollbackOnly) return [{ s, out: err(ER.XAER_RMFAIL) }];
      if (stmt.xid !== b.xid) return [{ s, out: err(ER.XAER_NOTA) }];
      return [{ s: flushLog(putBranch(s, { ...b, state: "PREPARED", snapshot: null }), b), out: OK }];
    case "commit":
      return [stmt.onePhase ? commitOnePhase(s, c, b, stmt.xid) : commitTwoPhase(s, c, b, stmt.xid)];
    case "rollback":
      return [xaRollback(s, c, b, stmt.xid)];
    case "recover":
      return [{ s, out: { kind: "ok", xids: recoverXids(s) } }];
    case "transfer":
      return transfer(s, c, b, stmt.account, stmt.delta, stmt.guard !== false);
    case "select":
      return [select(s, b, stmt.account)];
  }
}

/** The waiting statement of `conn` gives up after innodb_lock_wait_timeout: 1205, the branch keeps its earlier work. */
export function lockWaitTimeout(s: ShardState, conn: ConnId): readonly Result[] {
  const c = findConn(s, conn);
  if (!c?.waiting) throw new Error(`lockWaitTimeout: connection ${conn} is not waiting for a lock`);
  const out = err(ER.LOCK_WAIT_TIMEOUT);
  const dequeued = leaveQueue(s, c);
  return [{ s: c.closed ? dropConn(dequeued, conn) : putConn(dequeued, { ...c, waiting: null }), out }];
}

/** The client reads the result of its formerly blocked statement; null if none is ready. */
export function takeReply(s: ShardState, conn: ConnId): Result | null {
  const c = findConn(s, conn);
  if (!c?.reply) return null;
  return { s: putConn(s, { ...c, reply: null }), out: c.reply };
}

/**
 * The client closes the connection. ACTIVE and IDLE branches are rolled back;
 * a PREPARED branch survives with owner null and keeps its locks, except a
 * read-only one, whose locks go (it stays listed by XA RECOVER). If the
 * connection is waiting for a lock, the server notices only when the wait
 * ends (see the file comment).
 */
export function disconnect(s: ShardState, conn: ConnId): ShardState {
  const c = findConn(s, conn);
  if (!c) return s;
  if (c.waiting) return putConn(s, { ...c, closed: true });
  return dropConn(s, conn);
}

/**
 * KILL CONNECTION from another session (how the runtime makes sure a dead
 * owner is gone): like a disconnect, except that a waiting statement is
 * interrupted at once instead of holding the connection until its wait ends.
 */
export function killConnection(s: ShardState, conn: ConnId): ShardState {
  return findConn(s, conn) ? dropConn(s, conn) : s;
}

/**
 * kill -9 when every XA ROLLBACK so far has reached the disk: every
 * connection is gone, unprepared and read-only branches vanish, prepared ones
 * survive. The first of crashOutcomes; a checker that wants every behaviour
 * of the server uses crashOutcomes.
 */
export function crash(s: ShardState): ShardState {
  return crashOutcomes(s)[0]!;
}

/**
 * Every state kill -9 may leave. The redo log is flushed in order, so the
 * rollbacks that reach the disk are the oldest k of `unflushedRollbacks`, for
 * some k; the newer ones come back as PREPARED branches without an owner,
 * holding the locks of the rows they changed, as after any restart.
 */
export function crashOutcomes(s: ShardState): readonly ShardState[] {
  const survivors = s.branches
    .filter((b) => b.state === "PREPARED" && b.writes.length > 0)
    .map((b): Branch => ({ ...b, owner: null, snapshot: null, locks: writtenAccounts(b) }));
  const down: ShardState = { ...s, up: false, conns: [], branches: survivors, unflushedRollbacks: [] };
  const outcomes: ShardState[] = [];
  for (let durable = s.unflushedRollbacks.length; durable >= 0; durable--) {
    let next = down;
    for (const r of s.unflushedRollbacks.slice(durable)) {
      const writes = r.writes;
      const back: Branch = { xid: r.xid, state: "PREPARED", owner: null, writes, rollbackOnly: false, locks: writtenAccounts({ writes }), snapshot: null };
      next = putBranch(next, back);
    }
    outcomes.push(next);
  }
  return outcomes;
}

/**
 * Crash recovery re-locks only the rows a prepared branch changed: the lock an
 * UPDATE took on a row it did not change is gone after a restart.
 */
export function restart(s: ShardState): ShardState {
  return { ...s, up: true };
}

// ---------------------------------------------------------------- statements

function xaStart(s: ShardState, c: Conn, b: Branch | null, xid: Xid): Result {
  if (b) return { s, out: err(ER.XAER_RMFAIL) };
  if (findBranch(s, xid)) return { s, out: err(ER.XAER_DUPID) };
  const branch: Branch = { xid, state: "ACTIVE", owner: c.id, writes: [], rollbackOnly: false, locks: [], snapshot: null };
  return { s: putConn(putBranch(s, branch), { ...c, xid }), out: OK };
}

function commitTwoPhase(s: ShardState, c: Conn, b: Branch | null, xid: Xid): Result {
  if (b) {
    if (xid !== b.xid) return { s, out: err(ER.XAER_OUTSIDE) };
    if (b.rollbackOnly) return { s: endBranch(s, b, false), out: err(ER.XA_RBDEADLOCK) };
    if (b.state !== "PREPARED") return { s, out: err(ER.XAER_RMFAIL) };
    return { s: endBranch(s, b, true), out: OK };
  }
  return resolveDetached(s, xid, true);
}

function commitOnePhase(s: ShardState, c: Conn, b: Branch | null, xid: Xid): Result {
  if (!b) return { s, out: err(ER.XAER_INVAL) };
  if (xid !== b.xid) return { s, out: err(ER.XAER_OUTSIDE) };
  if (b.rollbackOnly) return { s: endBranch(s, b, false), out: err(ER.XA_RBDEADLOCK) };
  if (b.state === "PREPARED") return { s, out: err(ER.XAER_INVAL) };
  if (b.state !== "IDLE") return { s, out: err(ER.XAER_RMFAIL) };
  return { s: endBranch(s, b, true), out: OK };
}

function xaRollback(s: ShardState, c: Conn, b: Branch | null, xid: Xid): Result {
  if (b) {
    if (xid !== b.xid) return { s, out: err(ER.XAER_OUTSIDE) };
    if (b.state === "ACTIVE" && !b.rollbackOnly) return { s, out: err(ER.XAER_RMFAIL) };
    return { s: endBranch(s, b, false), out: OK };
  }
  return resolveDetached(s, xid, false);
}

/**
 * XA COMMIT / XA ROLLBACK from a connection without a branch: only a PREPARED
 * branch whose connection is gone can be resolved; a live connection's branch
 * is invisible (1397). A read-only one answers 1402 and is gone either way.
 */
function resolveDetached(s: ShardState, xid: Xid, commit: boolean): Result {
  const target = findBranch(s, xid);
  if (!target || target.owner !== null || target.state !== "PREPARED") return { s, out: err(ER.XAER_NOTA) };
  if (target.writes.length === 0) return { s: endBranch(s, target, false), out: err(ER.XA_RBROLLBACK) };
  return { s: endBranch(s, target, commit), out: OK };
}

function select(s: ShardState, b: Branch | null, account: Account): Result {
  if (!b) return { s, out: balanceOut(committedBalance(s, account)) };
  if (b.state !== "ACTIVE" || b.rollbackOnly) return { s, out: err(ER.XAER_RMFAIL) };
  const snapshot = b.snapshot ?? s.balances;
  const next = b.snapshot ? s : putBranch(s, { ...b, snapshot });
  const own = b.writes.some(([a]) => a === account);
  // A row this branch changed is read in its own newest version: the branch has
  // held its lock since the change, so that is the committed value plus its deltas.
  const cents = own ? committedBalance(s, account)! + ownDelta(b, account) : (snapshot.find(([a]) => a === account)?.[1] ?? null);
  return { s: next, out: balanceOut(cents) };
}

function transfer(s: ShardState, c: Conn, b: Branch | null, account: Account, delta: Cents, guard: boolean): readonly Result[] {
  if (!b) throw new Error(`transfer on ${c.id} outside an XA branch: autocommit writes are not modelled`);
  if (!Number.isSafeInteger(delta) || delta === 0) throw new Error(`transfer: delta ${delta} must be a non-zero integer`);
  if (b.state !== "ACTIVE" || b.rollbackOnly) return [{ s, out: err(ER.XAER_RMFAIL) }];
  if (committedBalance(s, account) === null) return [{ s, out: { kind: "ok", affected: 0 } }];
  const holder = lockHolder(s, account);
  const free = holder === null || holder === b.xid;
  const changes = !guard || committedBalance(s, account)! + ownDelta(b, account) + delta >= 0;
  if ((!free || changes) && (b.writes.some(([a]) => a === account) || s.history.some(([x, a]) => x === b.xid && a === account))) {
    // The history INSERT would fail with 1062 and leave a next-key lock on the
    // history index that blocks other branches' inserts: gap locks are not modelled.
    throw new Error(`transfer: branch ${b.xid} already has a history row for account ${account}; a second one is not modelled`);
  }
  if (free) {
    const r = applyUpdate(s, b, account, delta, guard);
    return [{ s: r.s, out: r.out }];
  }
  const waiting: Wait = { account, delta, guard, on: holder, rank: queueOf(s, account).length };
  const queued = putConn(s, { ...c, waiting });
  const cycle = waitCycle(queued, holder, b.xid);
  if (cycle === null) return [{ s: queued, out: { kind: "blocked", on: holder } }];
  const results: Result[] = [];
  for (const victim of [c.id, ...cycle]) {
    const after = victimize(queued, victim);
    const me = findConn(after, c.id)!;
    if (me.reply) results.push({ s: putConn(after, { ...me, reply: null }), out: me.reply });
    else results.push({ s: after, out: { kind: "blocked", on: me.waiting!.on } });
  }
  return results;
}

/**
 * The UPDATE, its row lock granted, then the history INSERT if it changed the
 * row. The lock stays even when the row is not changed (REPEATABLE READ).
 */
function applyUpdate(s: ShardState, b: Branch, account: Account, delta: Cents, guard: boolean): { s: ShardState; out: Outcome } {
  const locks = b.locks.includes(account) ? b.locks : [...b.locks, account].sort((x, y) => x - y);
  const cents = committedBalance(s, account)! + ownDelta(b, account);
  if (guard && cents + delta < 0) return { s: putBranch(s, { ...b, locks }), out: { kind: "ok", affected: 0 } };
  const next = putBranch(s, { ...b, locks, writes: [...b.writes, [account, delta] as const] });
  return { s: next, out: { kind: "ok", affected: 1 } };
}

// ---------------------------------------------------------------- locks

/**
 * The other connections in the wait-for cycle that a new wait of branch `me`
 * on `holder` would close, or null if it closes none. Locks are exclusive, so
 * each connection waits for one branch and the chain is a simple path.
 */
function waitCycle(s: ShardState, holder: Xid, me: Xid): ConnId[] | null {
  const members: ConnId[] = [];
  let cur: Xid = holder;
  for (let hops = 0; hops <= s.conns.length; hops++) {
    if (cur === me) return members;
    const owner = findBranch(s, cur)?.owner ?? null;
    const oc = owner === null ? null : findConn(s, owner);
    if (!oc?.waiting) return null;
    members.push(oc.id);
    cur = oc.waiting.on;
  }
  throw new Error("waitCycle: a wait-for cycle that does not pass through the new waiter; deadlocks must be resolved when they form");
}

/** InnoDB rolls the victim's transaction back; the XA branch stays, ROLLBACK ONLY, and its statement fails with 1213. */
function victimize(s: ShardState, conn: ConnId): ShardState {
  const c = findConn(s, conn)!;
  const b = findBranch(s, c.xid!)!;
  const dequeued = leaveQueue(s, c);
  if (c.closed) return dropConn(dequeued, conn);
  const marked = putBranch(putConn(dequeued, { ...c, waiting: null, reply: err(ER.LOCK_DEADLOCK) }), {
    ...b,
    rollbackOnly: true,
    writes: [],
    locks: [],
    snapshot: null,
  });
  return releaseLocks(marked, b.locks);
}

function queueOf(s: ShardState, account: Account): Conn[] {
  return s.conns.filter((c) => c.waiting?.account === account).sort((x, y) => x.waiting!.rank - y.waiting!.rank);
}

function leaveQueue(s: ShardState, c: Conn): ShardState {
  const w = c.waiting;
  if (!w) return s;
  let next = putConn(s, { ...c, waiting: null });
  for (const o of queueOf(next, w.account)) {
    if (o.waiting!.rank > w.rank) next = putConn(next, { ...o, waiting: { ...o.waiting!, rank: o.waiting!.rank - 1 } });
  }
  return next;
}

/**
 * The locks on `accounts` are free: each goes to the first statement queued on
 * it, which runs at once. A closed connection that gets the lock is dropped
 * by the server right after, so its branch rolls back and the lock moves on.
 */
function releaseLocks(s: ShardState, accounts: readonly Account[]): ShardState {
  let next = s;
  for (const account of accounts) {
    for (;;) {
      if (lockHolder(next, account) !== null) break;
      const first = queueOf(next, account)[0];
      if (!first) break;
      const w = first.waiting!;
      next = leaveQueue(next, first);
      if (first.closed) {
        next = dropConn(next, first.id);
        continue;
      }
      const r = applyUpdate(next, findBranch(next, first.xid!)!, account, w.delta, w.guard);
      next = putConn(r.s, { ...findConn(r.s, first.id)!, reply: r.out });
      for (const o of queueOf(next, account)) next = putConn(next, { ...o, waiting: { ...o.waiting!, on: first.xid! } });
      break;
    }
  }
  return next;
}

/** Commit applies the writes and the history rows; either way the branch is gone and its locks are granted onwards. */
function endBranch(s: ShardState, b: Branch, commit: boolean): ShardState {
  let next: ShardState = { ...s, branches: s.branches.filter((x) => x.xid !== b.xid) };
  if (commit) next = flushLog(next, b);
  else if (b.state === "PREPARED" && b.writes.length > 0) {
    next = { ...next, unflushedRollbacks: [...next.unflushedRollbacks, { xid: b.xid, writes: b.writes }] };
  }
  if (b.owner !== null) {
    const owner = findConn(next, b.owner);
    if (owner) next = putConn(next, { ...owner, xid: null });
  }
  if (commit) next = applyWrites(next, b);
  return releaseLocks(next, b.locks);
}

function applyWrites(s: ShardState, b: Branch): ShardState {
  const balances = s.balances.map(([a, c]) => [a, c + ownDelta(b, a)] as const);
  const history = [...s.history];
  for (const [account, delta] of b.writes) history.push([b.xid, account, delta]);
  history.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
  return { ...s, balances, history };
}

/** The server drops the connection: its unprepared branch rolls back, a prepared one is orphaned. */
function dropConn(s: ShardState, conn: ConnId): ShardState {
  const c = findConn(s, conn)!;
  let next = leaveQueue(s, c);
  next = { ...next, conns: next.conns.filter((x) => x.id !== conn) };
  const b = c.xid === null ? null : findBranch(next, c.xid);
  if (!b) return next;
  if (b.state !== "PREPARED") return endBranch(next, b, false);
  if (b.writes.length > 0) return putBranch(next, { ...b, owner: null });
  return releaseLocks(putBranch(next, { ...b, owner: null, locks: [] }), b.locks);
}

// ---------------------------------------------------------------- helpers

function ownDelta(b: Branch, account: Account): Cents {
  let sum = 0;
  for (const [a, d] of b.writes) if (a === account) sum += d;
  return sum;
}

/**
 * A commit or prepare that changed data flushes the redo log
 * (innodb_flush_log_at_trx_commit=1), and with it every earlier rollback.
 * Read-only ones write nothing to flush: assuming they flush nothing allows
 * more behaviours, never fewer.
 */
function flushLog(s: ShardState, b: Branch): ShardState {
  return b.writes.length > 0 && s.unflushedRollbacks.length > 0 ? { ...s, unflushedRollbacks: [] } : s;
}

function writtenAccounts(b: Pick<Branch, "writes">): Account[] {
  return [...new Set(b.writes.map(([a]) => a))].sort((x, y) => x - y);
}

function balanceOut(cents: Cents | null): Outcome {
  return cents === null ? OK : { kind: "ok", balance: cents };
}

function putConn(s: ShardState, c: Conn): ShardState {
  return { ...s, conns: upsertSorted(s.conns, c, c.id, connId) };
}

function putBranch(s: ShardState, b: Branch): ShardState {
  return { ...s, branches: upsertSorted(s.branches, b, b.xid, branchXidOf) };
}

const connId = (c: Conn): string => c.id;
const branchXidOf = (b: Branch): string => b.xid;

/**
 * `xs` (sorted by a unique key) with `x` in place of the element with key `k`, or inserted at its place:
 * what filtering it out, appending and sorting give, without a sort (runs on most shard steps).
 */
function upsertSorted<T>(xs: readonly T[], x: T, k: string, keyOf: (x: T) => string): T[] {
  let i = 0;
  while (i < xs.length && keyOf(xs[i]!) < k) i++;
  const out = xs.slice();
  if (i < xs.length && keyOf(xs[i]!) === k) out[i] = x;
  else out.splice(i, 0, x);
  return out;
}
