/**
 * How the server executes an XA effect, as a model over the XA shard model
 * (spec/env/xa.ts). runtime/adapters/xa-mysql.ts does the same with real
 * statements; this file is the contract it must keep:
 *
 *   - one connection per branch, `<tx>/<shard>@<incarnation>`, opened by
 *     xa.exec and used for every later statement of that branch while it
 *     lives (a prepared branch's XA COMMIT from another connection answers
 *     1397 while the owner lives: using the owner is what makes it work);
 *   - a branch whose connection died is addressed from a fresh connection,
 *     once the server has dropped the dead session (the model drops it at
 *     once; the runtime kills the session and waits until it has left the
 *     process list, since before that another connection gets 1397);
 *   - xa.exec = XA START, each op as a guarded update, XA END (also after a
 *     failed update, so the branch can be rolled back from IDLE); a blocked
 *     update either waits (the effect completes later, when the lock is free)
 *     or ends with a lock wait timeout;
 *   - a one-phase xa.exec (`onePhase`) leaves out XA END unless a statement
 *     failed with an SQL error (a guard that matched no row is not one): the
 *     branch stays ACTIVE, and its xa.commit ONE PHASE or xa.rollback sends
 *     XA END first, in the same round trip (a commit whose XA END fails
 *     answers that error and leaves the branch to the rollback);
 *   - once a commit or rollback has finished the branch, its connection goes
 *     back to the pool (modelled as closed: it holds nothing any more);
 *   - a shard that is down answers UNAVAILABLE and changes nothing.
 *
 * Simplification, stated: the statements of one xa.exec run as one atomic
 * step of the model once none of them would wait. Other branches only see a
 * branch through its row locks, and a lock is taken by the first statement
 * that writes the row, so what the model loses is the window in which a
 * multi-statement branch holds some of its locks and waits for another: a
 * deadlock between branches. Deadlocks are covered by the XA model itself
 * and its model-based test against MariaDB, not by the protocol models.
 */
import type { Effect, PreparedXid, Result, ShardId, TxId, XaError } from "../kernel/effects.ts";
import * as xa from "./xa.ts";

export type XaEffect = Extract<Effect, { t: "xa.exec" | "xa.prepare" | "xa.commit" | "xa.rollback" | "xa.recover" }>;

export const isXaEffect = (fx: Effect): fx is XaEffect =>
  fx.t === "xa.exec" || fx.t === "xa.prepare" || fx.t === "xa.commit" || fx.t === "xa.rollback" || fx.t === "xa.recover";

/** The model's xid of a branch; the runtime's xid layout is in docs/protocols/2pc.md. */
export const branchXid = (tx: TxId, shard: ShardId): xa.Xid => `${tx}.${shard}`;
const txOfXid = (xid: xa.Xid): TxId => xid.slice(0, xid.lastIndexOf("."));
const shardOfXid = (xid: xa.Xid): ShardId => xid.slice(xid.lastIndexOf(".") + 1);

/** The connection that carries a branch's statements, for one process incarnation. */
export const connOf = (tx: TxId, shard: ShardId, inc: number): xa.ConnId => `${tx}/${shard}@${inc}`;
const FRESH: xa.ConnId = "fresh";

const codeToError: Readonly<Record<number, XaError>> = {
  1397: "NOTA",
  1399: "RMFAIL",
  1402: "RBROLLBACK",
  1440: "DUPID",
  1205: "LOCK_TIMEOUT",
  1213: "DEADLOCK",
  1614: "DEADLOCK",
  1398: "RMFAIL",
  1400: "RMFAIL",
};

/** The XaError an outcome maps to; a code the protocol does not name is UNAVAILABLE (the runtime does the same). */
export function errorOf(out: xa.Outcome): XaError | null {
  if (out.kind !== "error") return null;
  return codeToError[out.code] ?? "UNAVAILABLE";
}

export interface ExecOutcome {
  readonly shard: xa.ShardState;
  readonly result: Result;
}

const hasConn = (s: xa.ShardState, conn: xa.ConnId | null): conn is xa.ConnId => conn !== null && s.conns.some((c) => c.id === conn);

/** Run one statement, expecting it not to block (the callers check locks first). */
function run(s: xa.ShardState, conn: xa.ConnId, stmt: xa.Stmt): { s: xa.ShardState; out: xa.Outcome }[] {
  return [...xa.execute(s, conn, stmt)];
}

/**
 * A commit or rollback on the branch's own connection: XA END first while the branch is ACTIVE (a one-phase exec
 * left it so). A commit stops at a failed XA END; a rollback goes on (XA ROLLBACK finishes a rollback-only branch
 * that XA END refuses).
 */
function runOwn(s: xa.ShardState, conn: xa.ConnId, stmt: xa.Stmt): { s: xa.ShardState; out: xa.Outcome }[] {
  const xid = s.conns.find((c) => c.id === conn)?.xid ?? null;
  const b = xid === null ? null : xa.findBranch(s, xid);
  if (b === null || b.state !== "ACTIVE" || (stmt.op !== "commit" && stmt.op !== "rollback")) return run(s, conn, stmt);
  return run(s, conn, { op: "end", xid: b.xid }).flatMap((e) => (e.out.kind === "error" && stmt.op === "commit" ? [e] : run(e.s, conn, stmt)));
}

/** Run a statement on a fresh connection that is closed afterwards. */
function runFresh(s: xa.ShardState, stmt: xa.Stmt): { s: xa.ShardState; out: xa.Outcome }[] {
  return run(xa.connect(s, FRESH).s, FRESH, stmt).map((o) => ({ s: xa.disconnect(o.s, FRESH), out: o.out }));
}

/**
 * Every way the shard may answer `fx`. `conn` is the branch's connection
 * (null for xa.recover). An xa.exec whose update would wait for a lock has
 * only the timeout outcome now; waiting is the effect staying in flight.
 */
export function executeXa(s: xa.ShardState, fx: XaEffect, conn: xa.ConnId | null): ExecOutcome[] {
  if (!s.up) {
    if (fx.t === "xa.recover") return [{ shard: s, result: { t: "xa.recover", shard: fx.shard, r: { ok: false, err: "UNAVAILABLE" } } }];
    return [{ shard: s, result: { t: fx.t, tx: fx.tx, shard: fx.shard, r: { ok: false, err: "UNAVAILABLE" } } as Result }];
  }
  switch (fx.t) {
    case "xa.recover": {
      const xids = xa.recoverXids(s);
      const prepared: PreparedXid[] = xids.map((x) => ({ tx: txOfXid(x), shard: shardOfXid(x) }));
      return [{ shard: s, result: { t: "xa.recover", shard: fx.shard, r: { ok: true, prepared } } }];
    }
    case "xa.exec":
      return execBranch(s, fx, conn!);
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback": {
      const xid = branchXid(fx.tx, fx.shard);
      const onePhase = fx.t === "xa.commit" && fx.onePhase === true;
      const stmt: xa.Stmt = fx.t === "xa.prepare" ? { op: "prepare", xid } : fx.t === "xa.commit" ? { op: "commit", xid, onePhase } : { op: "rollback", xid };
      const own = hasConn(s, conn);
      const outs = own ? runOwn(s, conn, stmt) : runFresh(s, stmt);
      return outs.map(({ s: s2, out }) => {
        const err = errorOf(out);
        // A finished branch gives its connection back.
        // (A failed one-phase commit leaves the branch IDLE on its connection, for the rollback.)
        const finished = fx.t !== "xa.prepare" && (err === null || (!onePhase && (err === "NOTA" || err === "RBROLLBACK")));
        const shard = own && finished ? xa.disconnect(s2, conn) : s2;
        const r = err === null ? ({ ok: true } as const) : ({ ok: false, err } as const);
        return { shard, result: { t: fx.t, tx: fx.tx, shard: fx.shard, r } as Result };
      });
    }
  }
}

function execBranch(s0: xa.ShardState, fx: Extract<XaEffect, { t: "xa.exec" }>, conn: xa.ConnId): ExecOutcome[] {
  const xid = branchXid(fx.tx, fx.shard);
  const result = (s: xa.ShardState, err: XaError | null): ExecOutcome => ({
    shard: s,
    result: { t: "xa.exec", tx: fx.tx, shard: fx.shard, r: err === null ? { ok: true } : { ok: false, err }, conn: err === null ? conn : null },
  });
  const blocked = fx.ops.some((op) => {
    const holder = xa.lockHolder(s0, op.account);
    return holder !== null && holder !== xid;
  });
  const outcomes: ExecOutcome[] = [];
  let states: { s: xa.ShardState; err: XaError | null }[] = [];
  for (const o of run(xa.connect(s0, conn).s, conn, { op: "start", xid })) {
    states.push({ s: o.s, err: errorOf(o.out) });
  }
  if (blocked) {
    // The update waited for innodb_lock_wait_timeout: 1205, then XA END.
    for (const st of states) {
      if (st.err !== null) {
        outcomes.push(result(st.s, st.err));
        continue;
      }
      for (const e of run(st.s, conn, { op: "end", xid })) outcomes.push(result(e.s, "LOCK_TIMEOUT"));
    }
    return outcomes;
  }
  for (const op of fx.ops) {
    const nextStates: { s: xa.ShardState; err: XaError | null }[] = [];
    for (const st of states) {
      if (st.err !== null) {
        nextStates.push(st);
        continue;
      }
      for (const o of run(st.s, conn, { op: "transfer", account: op.account, delta: op.delta, guard: fx.guard })) {
        const err = errorOf(o.out);
        const affected = o.out.kind === "ok" ? (o.out.affected ?? 0) : 0;
        nextStates.push({ s: o.s, err: err ?? (affected === 0 ? "INSUFFICIENT_FUNDS" : null) });
      }
    }
    states = nextStates;
  }
  for (const st of states) {
    if (st.err === "NOTA" || st.err === "DUPID" || st.err === "UNAVAILABLE") {
      outcomes.push(result(st.s, st.err));
      continue;
    }
    if (fx.onePhase === true && (st.err === null || st.err === "INSUFFICIENT_FUNDS")) {
      // No SQL error: the branch stays ACTIVE for its one-phase commit (or rollback) to end.
      outcomes.push(result(st.s, st.err));
      continue;
    }
    for (const e of run(st.s, conn, { op: "end", xid })) outcomes.push(result(e.s, st.err ?? errorOf(e.out)));
  }
  return outcomes;
}
