/**
 * Runs one sequence of XA commands against the XA shard model
 * (spec/env/xa.ts) and a real MariaDB at the same time, and fails at the first
 * step where the server does something the model does not allow.
 *
 * After every command it checks: the statement's result (the real one must be
 * one of the model's outcomes; the run continues from that outcome's state),
 * the results of statements that were waiting for a lock and completed, XA
 * RECOVER, the committed balances and the history rows.
 *
 * Blocked statements are pending promises on the real side. A wait ends in
 * the model in the step that frees the lock; the harness then awaits the real
 * promise and compares. Lock wait timeouts (1205) are only let happen in a
 * `wait` command or just before a command once a wait is old enough, so that
 * no timeout can race a step that frees a lock (TIMEOUT_SAFE_MS).
 *
 * Used by xa-model.test.ts (random sequences) and regressions/ (fixed ones).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql, { type Connection } from "mysql2/promise";
import { startMariaDb, type MariaDbProcess } from "../../runtime/cluster/mariadb.ts";
import { createSchema, DATABASE } from "../../runtime/cluster/schema.ts";
import * as xa from "../../spec/env/xa.ts";

/** The accounts of every run: small balances so that overdrafts happen. Account 4 does not exist. */
const BALANCES: readonly (readonly [number, number])[] = [
  [1, 100],
  [2, 50],
  [3, 10],
];
export const XIDS = ["a", "b", "c"] as const;
export const CONNS = 3;

/** "own": the xid of the branch the connection has, resolved when the command runs (so shrinking keeps its meaning). */
type XidRef = string;
export type StmtSpec =
  | { readonly op: "start" | "end" | "prepare" | "rollback"; readonly xid: XidRef }
  | { readonly op: "commit"; readonly xid: XidRef; readonly onePhase?: boolean }
  | { readonly op: "recover" }
  | { readonly op: "transfer"; readonly account: number; readonly delta: number }
  | { readonly op: "select"; readonly account: number };

export type Cmd =
  | { readonly t: "stmt"; readonly conn: number; readonly stmt: StmtSpec }
  /**
   * What a client would plausibly do next on this connection, given its
   * branch's state, chosen by `pick` (see nextStep). Random statements alone
   * rarely get a branch to PREPARED or two branches into a lock conflict.
   */
  | { readonly t: "next"; readonly conn: number; readonly pick: number }
  /** The client closes the connection. */
  | { readonly t: "disconnect"; readonly conn: number }
  /** KILL CONNECTION of the connection's server thread from another session (also of one closed while waiting). */
  | { readonly t: "kill"; readonly conn: number }
  /** kill -9 of the server, then restart (crash recovery). */
  | { readonly t: "crash" }
  /** Sleep until every waiting statement has timed out (innodb_lock_wait_timeout). */
  | { readonly t: "wait" };

const LOCK_WAIT_TIMEOUT_S = 1;
/** A wait older than this is flushed (timed out) before the next command: no command takes the remaining time. */
const TIMEOUT_SAFE_MS = 600;
/** How long a statement the model says completes may take on the server. */
const COMPLETE_MS_MAX = 1_500;
/** How long to watch a statement the model says waits before calling it blocked. */
const BLOCKED_WATCH_MS = 40;
/** After a deadlock, how long to let every statement in the cycle report before picking the model outcome that fits. */
const DEADLOCK_SETTLE_MS = 60;
/** How long to wait for the result of an earlier blocked statement the model says has completed. */
const REPLY_MS_MAX = 1_500;
const THREAD_GONE_MS_MAX = 5_000;
/** ER_CONNECTION_KILLED: what a statement interrupted by KILL CONNECTION may report. */
const ER_CONNECTION_KILLED = 1927;
const TIMEOUT_WAIT_MS_MAX = 5_000;

type RealOut =
  | { kind: "ok"; affected?: number; balance?: number; xids?: string[] }
  | { kind: "error"; code: number }
  /** The client lost the connection (server killed). */
  | { kind: "lost" };

interface Pending {
  readonly promise: Promise<RealOut>;
  settled: RealOut | null;
  readonly startedMs: number;
  readonly label: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function realError(e: unknown): RealOut {
  const err = e as { errno?: number; fatal?: boolean; code?: string };
  if (typeof err.errno === "number" && err.errno > 0 && !err.fatal) return { kind: "error", code: err.errno };
  return { kind: "lost" };
}

function sqlOf(stmt: xa.Stmt): string {
  switch (stmt.op) {
    case "start":
      return `XA START '${stmt.xid}'`;
    case "end":
      return `XA END '${stmt.xid}'`;
    case "prepare":
      return `XA PREPARE '${stmt.xid}'`;
    case "commit":
      return `XA COMMIT '${stmt.xid}'${stmt.onePhase ? " ONE PHASE" : ""}`;
    case "rollback":
      return `XA ROLLBACK '${stmt.xid}'`;
    case "recover":
      return "XA RECOVER";
    case "transfer":
      return `transfer(${stmt.account}, ${stmt.delta})`;
    case "select":
      return `SELECT balance FROM accounts WHERE id = ${stmt.account}`;
  }
}

/** The statement as the runtime sends it; `xid` is the branch of the connection (for the history row). */
async function runReal(c: Connection, stmt: xa.Stmt, xid: xa.Xid | null): Promise<RealOut> {
  try {
    switch (stmt.op) {
      case "transfer": {
        const [r] = await c.query("UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance + ? >= 0", [stmt.delta, stmt.account, stmt.delta]);
        const affected = (r as { affectedRows: number }).affectedRows;
        if (affected === 1) {
          await c.query("INSERT INTO history (xid, account_id, delta, at_us) VALUES (?, ?, ?, 0)", [xid, stmt.account, stmt.delta]);
        }
        return { kind: "ok", affected };
      }
      case "select": {
        const [rows] = await c.query("SELECT balance FROM accounts WHERE id = ?", [stmt.account]);
        const row = (rows as { balance: string }[])[0];
        return row === undefined ? { kind: "ok" } : { kind: "ok", balance: Number(row.balance) };
      }
      case "recover": {
        const [rows] = await c.query("XA RECOVER");
        return { kind: "ok", xids: (rows as { data: Buffer | string }[]).map((r) => r.data.toString()).sort() };
      }
      default:
        await c.query(sqlOf(stmt));
        return { kind: "ok" };
    }
  } catch (e) {
    return realError(e);
  }
}

function matches(model: xa.Outcome, real: RealOut): boolean {
  if (model.kind === "blocked") return false;
  if (model.kind === "error") return real.kind === "error" && real.code === model.code;
  if (real.kind !== "ok") return false;
  if ((model.affected ?? null) !== (real.affected ?? null)) return false;
  if ((model.balance ?? null) !== (real.balance ?? null)) return false;
  return JSON.stringify(model.xids ? [...model.xids].sort() : null) === JSON.stringify(real.xids ?? null);
}

const show = (o: xa.Outcome | RealOut | null | "pending"): string => (o === null ? "none" : o === "pending" ? "pending" : JSON.stringify(o));

/** A real MariaDB for the harness, with the project's schema, reset between runs. */
export class RealShard {
  private admin: Connection | null = null;

  private constructor(
    readonly db: MariaDbProcess,
    private readonly dir: string,
  ) {}

  static async start(): Promise<RealShard> {
    const dir = mkdtempSync(join(tmpdir(), "speccommit-xa-mbt-"));
    const db = await startMariaDb({ dataDir: join(dir, "db"), lockWaitTimeoutS: LOCK_WAIT_TIMEOUT_S, bufferPoolMb: 16, maxConnections: 50 });
    const shard = new RealShard(db, dir);
    const c = await mysql.createConnection(db.connectionOptions());
    try {
      await createSchema(c);
      await c.query(`INSERT INTO accounts (id, balance) VALUES ${BALANCES.map(([a, b]) => `(${a}, ${b})`).join(", ")}`);
    } finally {
      c.destroy();
    }
    return shard;
  }

  async connect(): Promise<Connection> {
    const c = await mysql.createConnection(this.db.connectionOptions({ database: DATABASE }));
    // A killed server makes the socket emit 'error'; the pending query reports it.
    c.on("error", () => undefined);
    return c;
  }

  async adminConn(): Promise<Connection> {
    this.admin ??= await this.connect();
    return this.admin;
  }

  async threadGone(thread: number): Promise<void> {
    const admin = await this.adminConn();
    const deadline = Date.now() + THREAD_GONE_MS_MAX;
    for (;;) {
      const [rows] = await admin.query("SELECT id FROM information_schema.processlist WHERE id = ?", [thread]);
      if ((rows as unknown[]).length === 0) return;
      if (Date.now() > deadline) throw new Error(`server thread ${thread} still present ${THREAD_GONE_MS_MAX} ms after its client closed it`);
      await sleep(2);
    }
  }

  /** Committed balances, history rows and XA RECOVER, read on the admin connection (consistent, non-locking reads). */
  async committed(): Promise<{ balances: [number, number][]; history: [string, number, number][]; recover: string[] }> {
    const admin = await this.adminConn();
    const [b] = await admin.query("SELECT id, balance FROM accounts ORDER BY id");
    const [h] = await admin.query("SELECT xid, account_id, delta FROM history ORDER BY xid, account_id");
    const [r] = await admin.query("XA RECOVER");
    return {
      balances: (b as { id: string; balance: string }[]).map((x) => [Number(x.id), Number(x.balance)]),
      history: (h as { xid: string; account_id: string; delta: string }[]).map((x) => [x.xid, Number(x.account_id), Number(x.delta)]),
      recover: (r as { data: Buffer | string }[]).map((x) => x.data.toString()).sort(),
    };
  }

  /** Back to BALANCES with no branch and no history, without a restart. */
  async reset(threads: readonly number[]): Promise<void> {
    const admin = await this.adminConn();
    for (const t of threads) {
      const [rows] = await admin.query("SELECT id FROM information_schema.processlist WHERE id = ?", [t]);
      // A connection closed while it waited for a lock lingers until the wait ends: end it now.
      if ((rows as unknown[]).length > 0) await admin.query(`KILL ${t}`).catch(() => undefined);
      await this.threadGone(t);
    }
    const [rec] = await admin.query("XA RECOVER");
    for (const r of rec as { data: Buffer | string }[]) {
      // 1402: a read-only prepared branch; it is gone all the same.
      await admin.query(`XA ROLLBACK '${r.data.toString()}'`).catch((e: { errno?: number }) => {
        if (e.errno !== xa.ER.XA_RBROLLBACK) throw e;
      });
    }
    // XA ROLLBACK is not flushed to the redo log: without this a kill -9 in the next run would bring these back.
    await admin.query("FLUSH ENGINE LOGS");
    await admin.query("DELETE FROM history");
    for (const [a, b] of BALANCES) await admin.query("UPDATE accounts SET balance = ? WHERE id = ?", [b, a]);
    const [left] = await admin.query("XA RECOVER");
    const [others] = await admin.query("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user = 'root'");
    if ((left as unknown[]).length > 0 || (others as unknown[]).length > 0) {
      throw new Error(`reset left ${JSON.stringify(left)} prepared and connections ${JSON.stringify(others)}`);
    }
  }

  async kill(thread: number): Promise<void> {
    const admin = await this.adminConn();
    await admin.query(`KILL CONNECTION ${thread}`);
  }

  async crash(): Promise<void> {
    this.admin?.destroy();
    this.admin = null;
    await this.db.kill9();
    await this.db.restart();
  }

  async stop(): Promise<void> {
    this.admin?.destroy();
    this.admin = null;
    await this.db.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const ACCOUNTS_NEXT = [1, 2, 1, 2, 3] as const;
const DELTAS_NEXT = [-8, -30, 25, -60] as const;

/** A protocol-like next step for a connection whose branch is `own` (if any). */
function nextStep(s: xa.ShardState, own: xa.Xid | null, pick: number): xa.Stmt | "disconnect" {
  const b = own === null ? null : xa.findBranch(s, own);
  if (!b) {
    const orphans = s.branches.filter((x) => x.owner === null);
    const orphan = orphans[pick % Math.max(orphans.length, 1)];
    if (orphan && pick % 4 === 0) return pick % 8 === 0 ? { op: "rollback", xid: orphan.xid } : { op: "commit", xid: orphan.xid };
    const free = XIDS.filter((x) => !xa.findBranch(s, x));
    return { op: "start", xid: free[pick % Math.max(free.length, 1)] ?? XIDS[pick % XIDS.length]! };
  }
  if (b.rollbackOnly) return pick % 2 === 0 ? { op: "rollback", xid: b.xid } : { op: "commit", xid: b.xid };
  switch (b.state) {
    case "ACTIVE": {
      // Mostly updates on two hot accounts: lock waits and deadlocks need branches that hold some rows and want others.
      const k = pick % 8;
      const account = ACCOUNTS_NEXT[(pick >> 3) % ACCOUNTS_NEXT.length]!;
      if (k <= 4) return { op: "transfer", account, delta: DELTAS_NEXT[(pick >> 6) % DELTAS_NEXT.length]! };
      if (k === 5) return { op: "select", account };
      return { op: "end", xid: b.xid };
    }
    case "IDLE": {
      const k = pick % 4;
      return k <= 1 ? { op: "prepare", xid: b.xid } : k === 2 ? { op: "commit", xid: b.xid, onePhase: true } : { op: "rollback", xid: b.xid };
    }
    case "PREPARED": {
      // Disconnecting here is a coordinator crash between prepare and decision.
      const k = pick % 4;
      return k <= 1 ? { op: "commit", xid: b.xid } : k === 2 ? { op: "rollback", xid: b.xid } : "disconnect";
    }
  }
}

/** How often each kind of event happened, over all runs: shows what the random sequences reach. */
export const coverage = new Map<string, number>();
const count = (key: string) => coverage.set(key, (coverage.get(key) ?? 0) + 1);

/** One run: the model and the server side by side. */
export class Run {
  private model: xa.ShardState = xa.initShard(BALANCES);
  private readonly conns = new Map<xa.ConnId, { c: Connection; thread: number }>();
  private readonly pending = new Map<xa.ConnId, Pending>();
  /** Connections closed while waiting: their server thread and when the wait began. */
  private readonly zombies = new Map<xa.ConnId, { thread: number; startedMs: number }>();
  private readonly threads: number[] = [];
  private readonly trace: string[] = [];

  constructor(private readonly real: RealShard) {}

  /** Runs the commands, then leaves the server clean for the next run (also after a failure). */
  async execute(cmds: readonly Cmd[]): Promise<void> {
    try {
      for (const cmd of cmds) await this.step(cmd);
    } finally {
      for (const { c } of this.conns.values()) c.destroy();
      await this.real.reset(this.threads);
    }
  }

  private fail(msg: string): never {
    throw new Error(`${msg}\n--- trace (model outcome | real outcome) ---\n${this.trace.join("\n")}\n--- model state ---\n${JSON.stringify(this.model)}`);
  }

  private async step(cmd: Cmd): Promise<void> {
    await this.flushOldWaits();
    switch (cmd.t) {
      case "stmt":
        await this.stmt(`c${cmd.conn}`, cmd.stmt);
        break;
      case "next": {
        const id = `c${cmd.conn}`;
        const next = nextStep(this.model, xa.findConn(this.model, id)?.xid ?? null, cmd.pick);
        await (next === "disconnect" ? this.disconnect(id) : this.stmt(id, next));
        break;
      }
      case "disconnect":
        await this.disconnect(`c${cmd.conn}`);
        break;
      case "kill":
        await this.kill(`c${cmd.conn}`);
        break;
      case "crash":
        await this.crash();
        break;
      case "wait":
        await this.timeOutAll();
        break;
    }
    await this.reconcile();
    await this.compareCommitted();
  }

  private async open(id: xa.ConnId): Promise<void> {
    const r = xa.connect(this.model, id);
    if (r.out.kind !== "ok") this.fail(`model refused to connect ${id}: ${show(r.out)}`);
    this.model = r.s;
    const c = await this.real.connect();
    this.conns.set(id, { c, thread: c.threadId! });
    this.threads.push(c.threadId!);
  }

  private resolveStmt(spec: StmtSpec, own: xa.Xid | null): xa.Stmt {
    if (spec.op === "recover" || spec.op === "transfer" || spec.op === "select") return spec;
    const xid = spec.xid === "own" ? (own ?? XIDS[0]) : spec.xid;
    return spec.op === "commit" ? { op: "commit", xid, onePhase: spec.onePhase ?? false } : { op: spec.op, xid };
  }

  private async stmt(id: xa.ConnId, spec: StmtSpec): Promise<void> {
    if (!xa.findConn(this.model, id)) await this.open(id);
    const mc = xa.findConn(this.model, id)!;
    // A client sends nothing on a connection whose statement is still running.
    if (mc.waiting || mc.closed) return;
    const stmt = this.resolveStmt(spec, mc.xid);
    let candidates: readonly xa.Result[];
    try {
      candidates = xa.execute(this.model, id, stmt);
    } catch (e) {
      if (/not modelled/.test(String(e))) return;
      throw e;
    }
    const label = `${id}: ${sqlOf(stmt)}`;
    const p: Pending = { promise: runReal(this.conns.get(id)!.c, stmt, mc.xid), settled: null, startedMs: Date.now(), label };
    void p.promise.then((r) => (p.settled = r));
    this.pending.set(id, p);
    const mayBlock = candidates.some((c) => c.out.kind === "blocked");
    await within(p.promise, mayBlock ? BLOCKED_WATCH_MS : COMPLETE_MS_MAX);
    if (candidates.length > 1) {
      // A deadlock: which statement the server picked as the victim shows in the other connections' results.
      await sleep(DEADLOCK_SETTLE_MS);
    }
    const chosen = candidates.find((c) => this.consistent(id, c));
    if (!chosen) {
      this.fail(
        `${label}: the server's result ${show(p.settled ?? "pending")} is none of the model's: ${candidates.map((c) => show(c.out)).join(" / ")}` +
          `; other waiting statements: ${[...this.pending].filter(([k]) => k !== id).map(([k, q]) => `${k}=${show(q.settled ?? "pending")}`).join(", ") || "none"}`,
      );
    }
    this.trace.push(`${label} -> ${show(chosen.out)} | ${show(p.settled ?? "pending")}`);
    count(`${stmt.op}${stmt.op === "commit" && stmt.onePhase ? " one phase" : ""} -> ${chosen.out.kind === "error" ? chosen.out.code : chosen.out.kind === "ok" && stmt.op === "transfer" ? `affected ${chosen.out.affected}` : chosen.out.kind}`);
    if (candidates.length > 1) count(`deadlock, ${candidates.length} possible victims`);
    this.model = chosen.s;
    if (chosen.out.kind !== "blocked") this.pending.delete(id);
  }

  /** Whether the server's observations so far fit this outcome of the model. */
  private consistent(id: xa.ConnId, c: xa.Result): boolean {
    const own = this.pending.get(id)!;
    if (c.out.kind === "blocked" ? own.settled !== null : own.settled === null || !matches(c.out, own.settled)) return false;
    for (const [other, q] of this.pending) {
      if (other === id || q.settled === null) continue;
      const mc = xa.findConn(c.s, other);
      if (mc?.reply) {
        if (!matches(mc.reply, q.settled)) return false;
      } else if (!(mc?.waiting && this.timedOut(q))) return false;
    }
    return true;
  }

  private timedOut(q: Pending): boolean {
    return q.settled?.kind === "error" && q.settled.code === xa.ER.LOCK_WAIT_TIMEOUT && Date.now() - q.startedMs >= LOCK_WAIT_TIMEOUT_S * 1000 - 50;
  }

  private async disconnect(id: xa.ConnId): Promise<void> {
    const mc = xa.findConn(this.model, id);
    if (!mc || mc.closed) return;
    const conn = this.conns.get(id)!;
    this.conns.delete(id);
    const b = mc.xid === null ? null : xa.findBranch(this.model, mc.xid);
    this.model = xa.disconnect(this.model, id);
    this.trace.push(`${id}: disconnect${mc.waiting ? " (while waiting)" : ""}`);
    count(`disconnect${mc.waiting ? " while waiting" : ""}${b ? ` with ${b.rollbackOnly ? "rollback-only" : b.state} branch${b.writes.length === 0 ? " (read-only)" : ""}` : ""}`);
    conn.c.destroy();
    if (mc.waiting) {
      this.zombies.set(id, { thread: conn.thread, startedMs: this.pending.get(id)!.startedMs });
      this.pending.delete(id);
    } else {
      await this.real.threadGone(conn.thread);
    }
  }

  private async kill(id: xa.ConnId): Promise<void> {
    const mc = xa.findConn(this.model, id);
    if (!mc) return;
    const live = this.conns.get(id);
    const thread = live?.thread ?? this.zombies.get(id)!.thread;
    this.trace.push(`${id}: KILL CONNECTION${mc.waiting ? " (while waiting)" : ""}${mc.closed ? " (closed)" : ""}`);
    count(`kill connection${mc.waiting ? " while waiting" : ""}${mc.closed ? " (closed)" : ""}`);
    this.model = xa.killConnection(this.model, id);
    await this.real.kill(thread);
    const q = this.pending.get(id);
    if (q) {
      const r = await within(q.promise, REPLY_MS_MAX);
      // The interrupted statement reports the kill (1927) or just the lost connection.
      if (r === "timeout" || !(r.kind === "lost" || (r.kind === "error" && r.code === ER_CONNECTION_KILLED))) this.fail(`${q.label}: killed while waiting, but ended with ${show(r === "timeout" ? "pending" : r)}`);
      this.pending.delete(id);
    }
    live?.c.destroy();
    this.conns.delete(id);
    this.zombies.delete(id);
    await this.real.threadGone(thread);
  }

  private async crash(): Promise<void> {
    this.trace.push("kill -9, restart");
    count(`crash with ${xa.recoverXids(this.model).length} prepared`);
    await this.real.crash();
    for (const [id, q] of this.pending) {
      const r = await within(q.promise, TIMEOUT_WAIT_MS_MAX);
      if (r === "timeout" || r.kind !== "lost") this.fail(`${q.label} was waiting when the server was killed, but ended with ${show(r === "timeout" ? "pending" : r)} (${id})`);
    }
    this.pending.clear();
    this.zombies.clear();
    // Thread ids start again after a restart: the old ones must not be killed later.
    this.threads.length = 0;
    for (const { c } of this.conns.values()) c.destroy();
    this.conns.clear();
    // Rollbacks not yet flushed may come back: XA RECOVER says which of the model's outcomes happened.
    const recovered = JSON.stringify((await this.real.committed()).recover);
    const outcomes = xa.crashOutcomes(this.model);
    const after = outcomes.find((o) => JSON.stringify(xa.recoverXids(o)) === recovered);
    if (!after) this.fail(`after kill -9 the server has ${recovered} prepared, the model allows ${outcomes.map((o) => JSON.stringify(xa.recoverXids(o))).join(" or ")}`);
    if (after !== outcomes[0]) count("crash brought back a rolled-back prepared branch");
    this.model = xa.restart(after);
  }

  private startOf(id: xa.ConnId): number {
    return this.pending.get(id)?.startedMs ?? this.zombies.get(id)?.startedMs ?? this.fail(`no waiting statement known for ${id}`);
  }

  private async flushOldWaits(): Promise<void> {
    const now = Date.now();
    if (this.model.conns.some((c) => c.waiting && now - this.startOf(c.id) > TIMEOUT_SAFE_MS)) await this.timeOutAll();
  }

  /** Every waiting statement times out, oldest first, as on the server; a timeout may free locks for the others. */
  private async timeOutAll(): Promise<void> {
    for (;;) {
      const waiting = this.model.conns.filter((c) => c.waiting);
      if (waiting.length === 0) return;
      const first = waiting.reduce((a, b) => (this.startOf(a.id) <= this.startOf(b.id) ? a : b));
      const zombie = this.zombies.get(first.id);
      if (zombie) {
        await this.real.threadGone(zombie.thread);
        this.zombies.delete(first.id);
      } else {
        const q = this.pending.get(first.id)!;
        const r = await within(q.promise, TIMEOUT_WAIT_MS_MAX);
        if (r === "timeout" || !this.timedOut(q)) this.fail(`${q.label}: expected a lock wait timeout (1205), the server gave ${show(r === "timeout" ? "pending" : r)}`);
        this.pending.delete(first.id);
      }
      this.trace.push(`${first.id}: lock wait timeout${zombie ? " (closed connection)" : ""}`);
      count(`lock wait timeout${zombie ? " of a closed connection" : ""}`);
      this.model = xa.lockWaitTimeout(this.model, first.id)[0]!.s;
      await this.reconcile();
    }
  }

  /**
   * Statements that were waiting: each one the model has completed must have
   * completed on the server with the same result; none the model still has
   * waiting may have completed, except by a genuine timeout.
   */
  private async reconcile(): Promise<void> {
    for (const mc of this.model.conns) {
      if (!mc.reply) continue;
      const q = this.pending.get(mc.id);
      if (!q) this.fail(`model completed a waiting statement on ${mc.id} that the server never had`);
      const r = await within(q.promise, REPLY_MS_MAX);
      if (r === "timeout" || !matches(mc.reply, r)) this.fail(`${q.label}: the model completes it with ${show(mc.reply)}, the server gave ${show(r === "timeout" ? "pending" : r)}`);
      this.trace.push(`${q.label} (was waiting) -> ${show(mc.reply)}`);
      count(`wait ended by lock release -> ${mc.reply.kind === "error" ? mc.reply.code : `affected ${mc.reply.kind === "ok" ? mc.reply.affected : "?"}`}`);
      this.model = xa.takeReply(this.model, mc.id)!.s;
      this.pending.delete(mc.id);
    }
    for (const [id, q] of this.pending) {
      if (q.settled === null) continue;
      if (!this.timedOut(q)) this.fail(`${q.label}: the server completed it with ${show(q.settled)}, the model still has it waiting`);
      this.trace.push(`${q.label}: lock wait timeout`);
      this.model = xa.lockWaitTimeout(this.model, id)[0]!.s;
      this.pending.delete(id);
    }
    for (const [id, z] of this.zombies) {
      if (xa.findConn(this.model, id)) continue;
      // The model has ended the closed connection's wait; the server drops it right after.
      await this.real.threadGone(z.thread);
      this.zombies.delete(id);
    }
  }

  private async compareCommitted(): Promise<void> {
    const real = await this.real.committed();
    const model = {
      balances: this.model.balances.map(([a, b]) => [a, b]),
      history: this.model.history.map(([x, a, d]) => [x, a, d]),
      recover: xa.recoverXids(this.model),
    };
    for (const key of ["balances", "history", "recover"] as const) {
      if (JSON.stringify(model[key]) !== JSON.stringify(real[key])) {
        this.fail(`${key} differ: model ${JSON.stringify(model[key])}, server ${JSON.stringify(real[key])}`);
      }
    }
  }
}
