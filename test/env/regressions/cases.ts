/**
 * Fixed command sequences, each a counterexample the model-based test found
 * (shrunk) or a behaviour measured by hand that the random sequences reach
 * only rarely. regressions.test.ts runs each against the model and a real
 * MariaDB, like xa-model.test.ts does with random ones.
 */
import type { Cmd, StmtSpec } from "../xa-harness.ts";

const on = (conn: number, stmt: StmtSpec): Cmd => ({ t: "stmt", conn, stmt });
const start = (conn: number, xid: string) => on(conn, { op: "start", xid });
const end = (conn: number, xid: string) => on(conn, { op: "end", xid });
const prepare = (conn: number, xid: string) => on(conn, { op: "prepare", xid });
const commit = (conn: number, xid: string, onePhase = false) => on(conn, { op: "commit", xid, onePhase });
const rollback = (conn: number, xid: string) => on(conn, { op: "rollback", xid });
const transfer = (conn: number, account: number, delta: number) => on(conn, { op: "transfer", account, delta });
const select = (conn: number, account: number) => on(conn, { op: "select", account });
const recover = (conn: number) => on(conn, { op: "recover" });
const disconnect = (conn: number): Cmd => ({ t: "disconnect", conn });
const kill = (conn: number): Cmd => ({ t: "kill", conn });
const crash: Cmd = { t: "crash" };
const wait: Cmd = { t: "wait" };

export interface RegressionCase {
  readonly name: string;
  /** What the server does here, and what the model got wrong when the case was found. */
  readonly why: string;
  readonly cmds: readonly Cmd[];
}

export const cases: readonly RegressionCase[] = [
  {
    name: "lock passes over a closed connection to the next waiter",
    why:
      "c2 closed its connection while waiting for account 1. When a commits, the server grants the lock to c2's statement, " +
      "notices the closed socket, rolls b back and grants the lock to c1. The model dropped c2 but left the lock free with c1 still waiting.",
    cmds: [
      start(0, "a"),
      transfer(0, 1, -8),
      start(2, "b"),
      transfer(2, 1, -8),
      disconnect(2),
      start(1, "c"),
      end(0, "a"),
      transfer(1, 1, -8),
      commit(0, "a", true),
      end(1, "c"),
      commit(1, "c", true),
    ],
  },
  {
    name: "XA ROLLBACK of a prepared branch is lost by kill -9 until the redo log is flushed",
    why:
      "InnoDB does not flush the log for a rollback, so after kill -9 the branch is PREPARED again with its locks. " +
      "The model had rollbacks durable at once; found by the model-based test when one run's clean-up was undone by the next run's crash.",
    cmds: [start(0, "a"), transfer(0, 1, -8), end(0, "a"), prepare(0, "a"), disconnect(0), rollback(1, "a"), crash, recover(1), start(2, "b"), transfer(2, 1, -8), commit(1, "a"), end(2, "b"), commit(2, "b", true)],
  },
  {
    name: "a commit with writes makes an earlier rollback durable",
    why: "The commit flushes the redo log up to its own record, which comes after the rollback's: after kill -9 the rolled-back branch stays gone.",
    cmds: [start(0, "a"), transfer(0, 1, -8), end(0, "a"), prepare(0, "a"), rollback(0, "a"), start(1, "b"), transfer(1, 2, -8), end(1, "b"), commit(1, "b", true), crash, recover(2)],
  },
  {
    name: "deadlock between two branches of equal weight",
    why: "InnoDB picks the lighter transaction as the victim; the model allows either. Here the requester is the victim: 1213, the branch is ROLLBACK ONLY, XA END says 1399, XA COMMIT says 1614.",
    cmds: [
      start(0, "a"),
      transfer(0, 1, -8),
      start(1, "b"),
      transfer(1, 2, -8),
      transfer(0, 2, -8),
      transfer(1, 1, -8),
      end(1, "b"),
      end(1, "c"),
      prepare(1, "c"),
      commit(1, "c"),
      rollback(1, "c"),
      recover(1),
      start(2, "b"),
      transfer(1, 3, -8),
      select(1, 3),
      commit(1, "b"),
      end(0, "a"),
      commit(0, "a", true),
    ],
  },
  {
    name: "deadlock victim is the waiting, lighter branch",
    why: "b changed two rows, a one: the server rolls a back (its waiting statement answers 1213) and b's request goes through at once.",
    cmds: [start(0, "a"), transfer(0, 1, -8), start(1, "b"), transfer(1, 2, -8), transfer(1, 3, -8), transfer(0, 2, -8), transfer(1, 1, -8), rollback(0, "a"), start(0, "a"), end(1, "b"), commit(1, "b", true)],
  },
  {
    name: "three-branch deadlock, then the survivors time out",
    why: "A cycle through three connections: one victim, and the other two wait in a chain until innodb_lock_wait_timeout or a grant.",
    cmds: [start(0, "a"), transfer(0, 1, -8), start(1, "b"), transfer(1, 2, -8), start(2, "c"), transfer(2, 3, -8), transfer(0, 2, -8), transfer(1, 3, -8), transfer(2, 1, -8), wait, recover(0)],
  },
  {
    name: "read-only prepared branch: locks kept while the owner lives, dropped on disconnect, 1402 from another connection",
    why: "An UPDATE that matched no row (insufficient funds) still locks it; a read-only prepared branch stays listed by XA RECOVER after disconnect, but holds no lock, and XA COMMIT from elsewhere answers 1402. A restart forgets it.",
    cmds: [start(0, "a"), transfer(0, 3, -60), end(0, "a"), prepare(0, "a"), start(1, "b"), transfer(1, 3, -8), wait, disconnect(0), transfer(1, 3, -8), recover(2), commit(2, "a"), start(0, "c"), end(0, "c"), prepare(0, "c"), disconnect(0), crash, recover(0)],
  },
  {
    name: "prepared branch survives disconnect and kill -9 with its locks; only the owner may commit while it lives",
    why: "ENVIRONMENT.md: 1397 from another connection while the owner lives; after the restart only rows the branch changed stay locked.",
    cmds: [start(0, "a"), transfer(0, 2, -60), transfer(0, 1, -8), end(0, "a"), prepare(0, "a"), commit(1, "a"), rollback(1, "a"), start(1, "a"), crash, start(1, "b"), transfer(1, 2, -8), transfer(1, 1, -8), wait, end(1, "b"), commit(1, "b", true), commit(2, "a"), select(2, 1)],
  },
  {
    name: "KILL CONNECTION ends a wait at once, also of a connection closed while waiting",
    why: "What the runtime does to make sure a dead owner is gone. The killed waiter's branch rolls back and the next waiter gets the row; a prepared branch is orphaned.",
    cmds: [start(0, "a"), transfer(0, 1, -8), start(1, "b"), transfer(1, 2, -8), transfer(1, 1, -8), start(2, "c"), transfer(2, 2, -8), kill(1), end(2, "c"), prepare(2, "c"), start(1, "b"), transfer(1, 3, -8), transfer(1, 2, -8), disconnect(1), kill(1), kill(2), end(0, "a"), rollback(0, "a"), commit(0, "c"), recover(0)],
  },
  {
    name: "consistent reads: the read view starts at the first SELECT, own changes are visible",
    why: "REPEATABLE READ: XA START takes no snapshot; the first SELECT does; an UPDATE reads the latest committed row.",
    cmds: [start(0, "a"), start(1, "b"), transfer(1, 1, -8), end(1, "b"), commit(1, "b", true), select(0, 1), start(1, "c"), transfer(1, 1, -8), transfer(1, 2, -8), end(1, "c"), commit(1, "c", true), select(0, 1), select(0, 2), transfer(0, 2, -8), select(0, 2), select(0, 1)],
  },
  {
    name: "statements in the wrong state",
    why: "1399 for the wrong state, 1397 for another xid where the state is right, 1400 for commit/rollback of another xid while the connection has a branch, 1398 for ONE PHASE without a branch or on a prepared one.",
    cmds: [start(0, "a"), start(0, "b"), prepare(0, "a"), commit(0, "a"), commit(0, "b", true), end(0, "b"), start(1, "a"), commit(1, "a", true), end(0, "a"), transfer(0, 1, -8), select(0, 1), prepare(0, "b"), prepare(0, "a"), commit(0, "a", true), rollback(0, "b"), rollback(0, "a")],
  },
];
