/**
 * Unit tests of the XA shard model (spec/env/xa.ts), without a server: the
 * measured behaviours one by one (docs/xa-model.md gives the evidence), then a
 * property over random statement sequences for the invariants every state
 * must keep (canonical order, one holder per lock, consistent wait queues, no
 * leftover wait-for cycle, inputs never mutated).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as xa from "../../spec/env/xa.ts";

const { ER } = xa;

/** Runs statements that must each have exactly one outcome; returns the last state and every outcome. */
function script(s0: xa.ShardState, steps: readonly [xa.ConnId, xa.Stmt][]): { s: xa.ShardState; outs: xa.Outcome[] } {
  let s = s0;
  const outs: xa.Outcome[] = [];
  for (const [conn, stmt] of steps) {
    if (!xa.findConn(s, conn)) s = xa.connect(s, conn).s;
    const r = xa.execute(s, conn, stmt);
    expect(r, `${conn} ${JSON.stringify(stmt)}`).toHaveLength(1);
    s = r[0]!.s;
    outs.push(r[0]!.out);
  }
  return { s, outs };
}

const init = () => xa.initShard([[2, 50], [1, 100], [3, 10]]);
const start = (xid: string): xa.Stmt => ({ op: "start", xid });
const end = (xid: string): xa.Stmt => ({ op: "end", xid });
const prepare = (xid: string): xa.Stmt => ({ op: "prepare", xid });
const commit = (xid: string, onePhase = false): xa.Stmt => ({ op: "commit", xid, onePhase });
const rollback = (xid: string): xa.Stmt => ({ op: "rollback", xid });
const transfer = (account: number, delta: number, guard?: boolean): xa.Stmt => ({ op: "transfer", account, delta, ...(guard === undefined ? {} : { guard }) });
const select = (account: number): xa.Stmt => ({ op: "select", account });
const ok: xa.Outcome = { kind: "ok" };
const code = (c: number): xa.Outcome => ({ kind: "error", code: c });
const affected = (n: number): xa.Outcome => ({ kind: "ok", affected: n });

/** A connection c1 with branch "a" in the given state (ACTIVE and IDLE with one write on account 1). */
function withBranch(state: "ACTIVE" | "IDLE" | "PREPARED" | "RO_PREPARED"): xa.ShardState {
  const steps: [xa.ConnId, xa.Stmt][] = [["c1", start("a")]];
  if (state !== "RO_PREPARED") steps.push(["c1", transfer(1, -8)]);
  if (state !== "ACTIVE") steps.push(["c1", end("a")]);
  if (state === "PREPARED" || state === "RO_PREPARED") steps.push(["c1", prepare("a")]);
  return script(init(), steps).s;
}

describe("initShard", () => {
  it("sorts the accounts and starts empty and up", () => {
    const s = init();
    expect(s.balances).toEqual([[1, 100], [2, 50], [3, 10]]);
    expect(s).toMatchObject({ up: true, conns: [], branches: [], history: [], unflushedRollbacks: [] });
  });
  it("rejects negative balances, fractions and duplicate accounts", () => {
    expect(() => xa.initShard([[1, -1]])).toThrow(/balance >= 0/);
    expect(() => xa.initShard([[1, 1.5]])).toThrow(/integers/);
    expect(() => xa.initShard([[1, 1], [1, 2]])).toThrow(/given twice/);
  });
});

describe("XA statements by branch state (as measured on MariaDB 10.11)", () => {
  // [state of c1's branch "a", statement on c1, expected outcome]
  const table: [string, xa.Stmt, xa.Outcome][] = [
    ["ACTIVE", start("b"), code(ER.XAER_RMFAIL)],
    ["ACTIVE", end("b"), code(ER.XAER_NOTA)],
    ["ACTIVE", prepare("a"), code(ER.XAER_RMFAIL)],
    ["ACTIVE", commit("a"), code(ER.XAER_RMFAIL)],
    ["ACTIVE", commit("a", true), code(ER.XAER_RMFAIL)],
    ["ACTIVE", rollback("a"), code(ER.XAER_RMFAIL)],
    ["ACTIVE", commit("b"), code(ER.XAER_OUTSIDE)],
    ["ACTIVE", rollback("b"), code(ER.XAER_OUTSIDE)],
    ["ACTIVE", end("a"), ok],
    ["IDLE", start("b"), code(ER.XAER_RMFAIL)],
    ["IDLE", end("a"), code(ER.XAER_RMFAIL)],
    ["IDLE", prepare("b"), code(ER.XAER_NOTA)],
    ["IDLE", commit("a"), code(ER.XAER_RMFAIL)],
    ["IDLE", commit("b", true), code(ER.XAER_OUTSIDE)],
    ["IDLE", transfer(2, -1), code(ER.XAER_RMFAIL)],
    ["IDLE", select(2), code(ER.XAER_RMFAIL)],
    ["IDLE", prepare("a"), ok],
    ["IDLE", commit("a", true), ok],
    ["IDLE", rollback("a"), ok],
    ["PREPARED", start("b"), code(ER.XAER_RMFAIL)],
    ["PREPARED", end("a"), code(ER.XAER_RMFAIL)],
    ["PREPARED", prepare("a"), code(ER.XAER_RMFAIL)],
    ["PREPARED", commit("a", true), code(ER.XAER_INVAL)],
    ["PREPARED", rollback("b"), code(ER.XAER_OUTSIDE)],
    ["PREPARED", transfer(2, -1), code(ER.XAER_RMFAIL)],
    ["PREPARED", commit("a"), ok],
    ["PREPARED", rollback("a"), ok],
    ["RO_PREPARED", commit("a"), ok],
    ["RO_PREPARED", rollback("a"), ok],
  ];
  it.each(table)("%s: %j -> %j", (state, stmt, expected) => {
    const r = xa.execute(withBranch(state as "ACTIVE"), "c1", stmt);
    expect(r.map((x) => x.out)).toEqual([expected]);
  });

  it("a connection without a branch: 1399 for END/PREPARE, 1398 for any ONE PHASE, 1397 for a branch another live connection owns", () => {
    let s = withBranch("PREPARED");
    s = xa.connect(s, "c2").s;
    const outs = ["x", "a"].flatMap((x) => [end(x), prepare(x), commit(x, true), commit(x), rollback(x)].map((st) => xa.execute(s, "c2", st)[0]!.out));
    expect(outs).toEqual([
      code(ER.XAER_RMFAIL), code(ER.XAER_RMFAIL), code(ER.XAER_INVAL), code(ER.XAER_NOTA), code(ER.XAER_NOTA),
      code(ER.XAER_RMFAIL), code(ER.XAER_RMFAIL), code(ER.XAER_INVAL), code(ER.XAER_NOTA), code(ER.XAER_NOTA),
    ]);
    expect(xa.execute(s, "c2", start("a"))[0]!.out).toEqual(code(ER.XAER_DUPID));
  });

  it("once the owner is gone any connection commits a prepared branch, and the writes and history become visible", () => {
    let s = xa.disconnect(withBranch("PREPARED"), "c1");
    expect(xa.findBranch(s, "a")).toMatchObject({ owner: null, state: "PREPARED", locks: [1] });
    const r = script(s, [["c2", commit("a")]]);
    s = r.s;
    expect(r.outs).toEqual([ok]);
    expect(xa.committedBalance(s, 1)).toBe(92);
    expect(s.history).toEqual([["a", 1, -8]]);
    expect(xa.recoverXids(s)).toEqual([]);
  });

  it("a read-only prepared branch: listed by XA RECOVER, 1402 from another connection once the owner is gone, and gone after that", () => {
    let s = xa.disconnect(withBranch("RO_PREPARED"), "c1");
    expect(xa.recoverXids(s)).toEqual(["a"]);
    const r = script(s, [["c2", commit("a")], ["c2", rollback("a")], ["c2", { op: "recover" }]]);
    expect(r.outs).toEqual([code(ER.XA_RBROLLBACK), code(ER.XAER_NOTA), { kind: "ok", xids: [] }]);
  });
});

describe("transfers and row locks", () => {
  it("debits within the balance, answers affected 0 on insufficient funds or a missing account", () => {
    const r = script(init(), [["c1", start("a")], ["c1", transfer(3, -8)], ["c1", transfer(3, -8)], ["c1", transfer(9, 5)], ["c1", select(3)]]);
    expect(r.outs.slice(1)).toEqual([affected(1), affected(0), affected(0), { kind: "ok", balance: 2 }]);
  });

  it("an UPDATE that matches no row still locks it, in every state up to PREPARED, and IDLE keeps locks", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(3, -60)]]).s;
    expect(xa.lockHolder(s, 3)).toBe("a");
    s = script(s, [["c1", end("a")]]).s;
    expect(xa.lockHolder(s, 3)).toBe("a");
    s = script(s, [["c1", prepare("a")]]).s;
    expect(xa.lockHolder(s, 3)).toBe("a");
    // A read-only prepared branch lets its locks go when its connection closes.
    expect(xa.lockHolder(xa.disconnect(s, "c1"), 3)).toBeNull();
  });

  it("a locked row makes the statement wait; the commit of the holder runs it and parks the result for takeReply", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -8)], ["c2", start("b")]]).s;
    const blocked = xa.execute(s, "c2", transfer(1, -95));
    expect(blocked.map((x) => x.out)).toEqual([{ kind: "blocked", on: "a" }]);
    s = blocked[0]!.s;
    expect(() => xa.execute(s, "c2", select(1))).toThrow(/in flight/);
    expect(xa.takeReply(s, "c2")).toBeNull();
    s = script(s, [["c1", end("a")], ["c1", commit("a", true)]]).s;
    expect(xa.lockHolder(s, 1)).toBe("b");
    const reply = xa.takeReply(s, "c2")!;
    // The waiting UPDATE sees the committed 92: 92 - 95 < 0.
    expect(reply.out).toEqual(affected(0));
    expect(xa.findConn(reply.s, "c2")).toMatchObject({ waiting: null, reply: null });
  });

  it("waiters are served first come first served, and the later one then waits for the new holder", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -1)], ["c2", start("b")], ["c3", start("c")]]).s;
    s = xa.execute(s, "c2", transfer(1, -2))[0]!.s;
    s = xa.execute(s, "c3", transfer(1, -3))[0]!.s;
    expect(xa.findConn(s, "c3")!.waiting).toMatchObject({ on: "a", rank: 1 });
    s = script(s, [["c1", end("a")], ["c1", rollback("a")]]).s;
    expect(xa.findConn(s, "c2")!.reply).toEqual(affected(1));
    expect(xa.findConn(s, "c3")!.waiting).toMatchObject({ on: "b", rank: 0 });
  });

  it("a lock wait timeout ends only the statement: 1205, the branch keeps its earlier work and stays ACTIVE", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -1)], ["c2", start("b")], ["c2", transfer(2, -5)]]).s;
    s = xa.execute(s, "c2", transfer(1, -1))[0]!.s;
    const t = xa.lockWaitTimeout(s, "c2");
    expect(t.map((x) => x.out)).toEqual([code(ER.LOCK_WAIT_TIMEOUT)]);
    expect(xa.findBranch(t[0]!.s, "b")).toMatchObject({ state: "ACTIVE", writes: [[2, -5]], locks: [2] });
    expect(() => xa.lockWaitTimeout(t[0]!.s, "c2")).toThrow(/not waiting/);
  });

  it("a connection closed while waiting lingers until the wait ends, then its branch rolls back", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -1)], ["c2", start("b")], ["c2", transfer(2, -5)]]).s;
    s = xa.execute(s, "c2", transfer(1, -1))[0]!.s;
    s = xa.disconnect(s, "c2");
    expect(xa.findConn(s, "c2")).toMatchObject({ closed: true });
    expect(xa.execute(xa.connect(s, "c3").s, "c3", start("b"))[0]!.out).toEqual(code(ER.XAER_DUPID));
    s = xa.lockWaitTimeout(s, "c2")[0]!.s;
    expect(xa.findConn(s, "c2")).toBeNull();
    expect(xa.findBranch(s, "b")).toBeNull();
    expect(xa.lockHolder(s, 2)).toBeNull();
  });
});

describe("KILL CONNECTION", () => {
  it("interrupts a waiting statement at once: the branch rolls back and its locks go to the next waiter", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -1)], ["c2", start("b")], ["c2", transfer(2, -5)], ["c3", start("c")]]).s;
    s = xa.execute(s, "c2", transfer(1, -1))[0]!.s;
    s = xa.execute(s, "c3", transfer(2, -1))[0]!.s;
    s = xa.killConnection(xa.disconnect(s, "c2"), "c2");
    expect(xa.findConn(s, "c2")).toBeNull();
    expect(xa.findBranch(s, "b")).toBeNull();
    expect(xa.findConn(s, "c3")!.reply).toEqual(affected(1));
  });

  it("orphans a prepared branch like a disconnect", () => {
    const s = xa.killConnection(withBranch("PREPARED"), "c1");
    expect(xa.findBranch(s, "a")).toMatchObject({ owner: null, locks: [1] });
    expect(xa.killConnection(s, "c1")).toBe(s);
  });
});

describe("deadlocks", () => {
  const cycle = () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(1, -1)], ["c2", start("b")], ["c2", transfer(2, -1)]]).s;
    s = xa.execute(s, "c1", transfer(2, -1))[0]!.s;
    return xa.execute(s, "c2", transfer(1, -1));
  };

  it("closing a cycle gives one outcome per possible victim", () => {
    const outs = cycle();
    expect(outs.map((x) => x.out)).toEqual([code(ER.LOCK_DEADLOCK), affected(1)]);
    // Victim c2: c1's waiting UPDATE goes through.
    expect(xa.findConn(outs[0]!.s, "c1")!.reply).toEqual(affected(1));
    // Victim c1: its waiting statement ends with 1213, c2 got the lock at once.
    expect(xa.findConn(outs[1]!.s, "c1")!.reply).toEqual(code(ER.LOCK_DEADLOCK));
  });

  it("the victim's branch is rolled back but stays ROLLBACK ONLY: 1399 for statements, 1614 for XA COMMIT, XA ROLLBACK works", () => {
    const s = cycle()[0]!.s;
    expect(xa.findBranch(s, "b")).toMatchObject({ rollbackOnly: true, writes: [], locks: [] });
    for (const st of [transfer(3, -1), select(3), end("b"), prepare("b"), start("c")]) expect(xa.execute(s, "c2", st)[0]!.out).toEqual(code(ER.XAER_RMFAIL));
    expect(xa.execute(s, "c2", commit("b"))[0]!.out).toEqual(code(ER.XA_RBDEADLOCK));
    expect(xa.execute(s, "c2", commit("b", true))[0]!.out).toEqual(code(ER.XA_RBDEADLOCK));
    expect(xa.execute(s, "c2", rollback("b"))[0]!.out).toEqual(ok);
    expect(xa.execute(xa.connect(s, "c3").s, "c3", start("b"))[0]!.out).toEqual(code(ER.XAER_DUPID));
  });
});

describe("reads", () => {
  it("the read view starts at the first SELECT of the branch; the branch's own changes are visible", () => {
    const r = script(init(), [
      ["c1", start("a")],
      ["c2", start("b")], ["c2", transfer(1, -1)], ["c2", end("b")], ["c2", commit("b", true)],
      ["c1", select(1)],
      ["c2", start("c")], ["c2", transfer(1, -1)], ["c2", transfer(2, -1)], ["c2", end("c")], ["c2", commit("c", true)],
      ["c1", select(1)], ["c1", select(2)], ["c1", transfer(2, -10)], ["c1", select(2)],
      ["c3", select(1)],
    ]);
    const balances = r.outs.filter((o) => o.kind === "ok" && o.balance !== undefined).map((o) => (o as { balance: number }).balance);
    expect(balances).toEqual([99, 99, 50, 39, 98]);
  });
});

describe("disconnect, crash, restart", () => {
  it("disconnect rolls back ACTIVE and IDLE branches and frees their locks", () => {
    for (const st of ["ACTIVE", "IDLE"] as const) {
      const s = xa.disconnect(withBranch(st), "c1");
      expect(s.branches).toEqual([]);
      expect(xa.lockHolder(s, 1)).toBeNull();
    }
  });

  it("kill -9: connections gone, prepared branches with writes survive without owner and lock only the rows they changed", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(3, -60)], ["c1", transfer(1, -8)], ["c1", end("a")], ["c1", prepare("a")], ["c2", start("b")], ["c2", end("b")], ["c2", prepare("b")], ["c3", start("c")]]).s;
    s = xa.crash(s);
    expect(s.up).toBe(false);
    expect(s.conns).toEqual([]);
    expect(s.branches).toEqual([{ xid: "a", state: "PREPARED", owner: null, writes: [[1, -8]], rollbackOnly: false, locks: [1], snapshot: null }]);
    expect(xa.connect(s, "c1").out).toEqual(code(ER.CONN_REFUSED));
    expect(xa.execute(s, "c1", { op: "recover" })[0]!.out).toEqual(code(ER.SERVER_GONE));
    s = xa.restart(s);
    expect(xa.connect(s, "c1").out).toEqual(ok);
  });

  it("XA ROLLBACK of a prepared branch is not durable until a commit or prepare with writes flushes the log", () => {
    const rolledBack = script(withBranch("PREPARED"), [["c1", rollback("a")]]).s;
    expect(rolledBack.unflushedRollbacks).toEqual([{ xid: "a", writes: [[1, -8]] }]);
    const outcomes = xa.crashOutcomes(rolledBack);
    expect(outcomes.map((o) => xa.recoverXids(o))).toEqual([[], ["a"]]);
    expect(xa.crash(rolledBack)).toEqual(outcomes[0]);
    expect(xa.findBranch(outcomes[1]!, "a")).toMatchObject({ owner: null, locks: [1] });
    const flushed = script(rolledBack, [["c2", start("b")], ["c2", transfer(2, -1)], ["c2", end("b")], ["c2", commit("b", true)]]).s;
    expect(flushed.unflushedRollbacks).toEqual([]);
    expect(xa.crashOutcomes(flushed)).toHaveLength(1);
  });

  it("the rollbacks that survive a crash are always the newest ones (the log is flushed in order)", () => {
    let s = init();
    for (const x of ["a", "b", "c"]) {
      s = script(s, [[`c${x}`, start(x)], [`c${x}`, transfer(x === "a" ? 1 : x === "b" ? 2 : 3, -1)], [`c${x}`, end(x)], [`c${x}`, prepare(x)]]).s;
    }
    s = script(s, [["ca", rollback("a")], ["cc", rollback("c")], ["cb", rollback("b")]]).s;
    expect(xa.crashOutcomes(s).map((o) => xa.recoverXids(o))).toEqual([[], ["b"], ["b", "c"], ["a", "b", "c"]]);
  });
});

describe("what the model refuses to model", () => {
  it("throws on a transfer outside a branch and on a second history row for the same (xid, account)", () => {
    const s = xa.connect(init(), "c1").s;
    expect(() => xa.execute(s, "c1", transfer(1, -1))).toThrow(/not modelled/);
    const twice = script(s, [["c1", start("a")], ["c1", transfer(1, -1)]]).s;
    expect(() => xa.execute(twice, "c1", transfer(1, -1))).toThrow(/not modelled/);
    const reused = script(twice, [["c1", end("a")], ["c1", commit("a", true)], ["c1", start("a")]]).s;
    expect(() => xa.execute(reused, "c1", transfer(1, -1))).toThrow(/not modelled/);
    expect(xa.execute(reused, "c1", transfer(2, -1))[0]!.out).toEqual(affected(1));
  });

  it("guard false (the mutant's schema without the CHECK) lets a balance go below zero, also after a lock wait", () => {
    let s = script(init(), [["c1", start("a")], ["c1", transfer(3, -5)], ["c2", start("b")]]).s;
    s = xa.execute(s, "c2", transfer(3, -60, false))[0]!.s;
    s = script(s, [["c1", end("a")], ["c1", commit("a", true)]]).s;
    expect(xa.findConn(s, "c2")!.reply).toEqual(affected(1));
    s = xa.takeReply(s, "c2")!.s;
    s = script(s, [["c2", end("b")], ["c2", commit("b", true)]]).s;
    expect(xa.committedBalance(s, 3)).toBe(-55);
  });
});

// ------------------------------------------------------------ invariants

const XIDS = ["a", "b", "c"];
const CONNS = ["c0", "c1", "c2"];

type Op =
  | { t: "stmt"; conn: string; stmt: xa.Stmt }
  | { t: "disconnect"; conn: string }
  | { t: "timeout"; conn: string }
  | { t: "reply"; conn: string }
  | { t: "kill"; conn: string }
  | { t: "crash"; pick: number };

const xidArb = fc.constantFrom(...XIDS);
const stmtArb: fc.Arbitrary<xa.Stmt> = fc.oneof(
  xidArb.map((xid) => start(xid)),
  xidArb.map((xid) => end(xid)),
  xidArb.map((xid) => prepare(xid)),
  fc.tuple(xidArb, fc.boolean()).map(([xid, one]) => commit(xid, one)),
  xidArb.map((xid) => rollback(xid)),
  fc.constant<xa.Stmt>({ op: "recover" }),
  fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.constantFrom(-60, -8, 25)).map(([a, d]) => transfer(a, d)),
  fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.constantFrom(-60, -8, 25)).map(([a, d]) => transfer(a, d)),
  fc.constantFrom(1, 2, 4).map((a) => select(a)),
);
const connArb = fc.constantFrom(...CONNS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ t: fc.constant("stmt" as const), conn: connArb, stmt: stmtArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("disconnect" as const), conn: connArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("kill" as const), conn: connArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("timeout" as const), conn: connArb }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("reply" as const), conn: connArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("crash" as const), pick: fc.nat() }) },
);

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

const sortedBy = <T>(xs: readonly T[], key: (x: T) => string | number) => xs.every((x, i) => i === 0 || key(xs[i - 1]!) < key(x));

function checkInvariants(s: xa.ShardState): void {
  expect(sortedBy(s.balances, (b) => b[0])).toBe(true);
  expect(sortedBy(s.conns, (c) => c.id)).toBe(true);
  expect(sortedBy(s.branches, (b) => b.xid)).toBe(true);
  expect(sortedBy(s.history, (h) => `${h[0]}\u0000${String(h[1]).padStart(6, "0")}`)).toBe(true);
  const holders = new Map<number, string>();
  for (const b of s.branches) {
    expect(sortedBy(b.locks, (a) => a)).toBe(true);
    for (const a of b.locks) {
      expect(holders.has(a), `account ${a} locked twice`).toBe(false);
      holders.set(a, b.xid);
    }
    if (b.owner !== null) expect(xa.findConn(s, b.owner)?.xid).toBe(b.xid);
    else expect(b.state).toBe("PREPARED");
    if (b.rollbackOnly) expect(b).toMatchObject({ state: "ACTIVE", writes: [], locks: [] });
    for (const [a] of b.writes) expect(b.locks).toContain(a);
  }
  for (const c of s.conns) {
    if (c.xid !== null) expect(xa.findBranch(s, c.xid)?.owner).toBe(c.id);
    if (c.closed) expect(c.waiting).not.toBeNull();
    if (c.waiting) {
      expect(c.reply).toBeNull();
      expect(xa.lockHolder(s, c.waiting.account)).toBe(c.waiting.on);
      expect(c.waiting.on).not.toBe(c.xid);
    }
  }
  for (const [a] of s.balances) {
    const ranks = s.conns.filter((c) => c.waiting?.account === a).map((c) => c.waiting!.rank).sort();
    expect(ranks).toEqual(ranks.map((_, i) => i));
  }
  // No wait-for cycle outlives the statement that would close it.
  for (const c of s.conns) {
    let cur: xa.Conn | null = c;
    for (let hops = 0; cur?.waiting; hops++) {
      expect(hops).toBeLessThan(s.conns.length);
      const owner: string | null = xa.findBranch(s, cur.waiting.on)?.owner ?? null;
      cur = owner === null ? null : xa.findConn(s, owner);
    }
  }
  if (!s.up) expect(s.conns).toEqual([]);
}

function apply(s: xa.ShardState, op: Op): readonly xa.ShardState[] {
  switch (op.t) {
    case "stmt": {
      let st = s;
      if (!xa.findConn(st, op.conn)) {
        const r = xa.connect(st, op.conn);
        if (r.out.kind !== "ok") return [st];
        st = r.s;
      }
      const c = xa.findConn(st, op.conn)!;
      if (c.waiting || c.reply) return [st];
      try {
        return xa.execute(st, op.conn, op.stmt).map((r) => r.s);
      } catch (e) {
        if (/not modelled/.test(String(e))) return [st];
        throw e;
      }
    }
    case "disconnect":
      return [xa.disconnect(s, op.conn)];
    case "kill":
      return [xa.killConnection(s, op.conn)];
    case "timeout":
      return xa.findConn(s, op.conn)?.waiting ? xa.lockWaitTimeout(s, op.conn).map((r) => r.s) : [s];
    case "reply":
      return [xa.takeReply(s, op.conn)?.s ?? s];
    case "crash": {
      const outcomes = xa.crashOutcomes(s);
      return [xa.restart(outcomes[op.pick % outcomes.length]!)];
    }
  }
}

describe("invariants over random statement sequences", () => {
  it("every reachable state is canonical and consistent, and no transition mutates its input or depends on anything else", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), fc.nat(), (ops, choose) => {
        let s = deepFreeze(init());
        for (const op of ops) {
          const before = JSON.stringify(s);
          const outs = apply(s, op);
          expect(JSON.stringify(s)).toBe(before);
          expect(JSON.stringify(apply(s, op))).toBe(JSON.stringify(outs));
          for (const o of outs) checkInvariants(o);
          s = deepFreeze(outs[choose % outs.length]!);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("with guarded transfers, the committed total only moves by committed deltas and no balance goes below zero", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        let s = init();
        const total = (x: xa.ShardState) => x.balances.reduce((n, [, c]) => n + c, 0);
        for (const op of ops) {
          s = apply(s, op)[0]!;
          expect(s.balances.every(([, c]) => c >= 0)).toBe(true);
          expect(total(s)).toBe(160 + s.history.reduce((n, [, , d]) => n + d, 0));
        }
      }),
      { numRuns: 500 },
    );
  });
});
