/**
 * Trace validation against the environment models: every answer the runtime
 * saw from a shard or from the transaction log must be one that the spec's
 * model of that component (spec/env/xa.ts through spec/env/executor.ts,
 * spec/env/txlog.ts) allows. Together with the role replay (replay.ts) this
 * checks a live run against the whole spec: the role asked for what the spec
 * says, and the world answered as the models say it can.
 *
 * A trace records one transaction, not the rest of the world, so the check
 * keeps the SET of model states consistent with what was seen so far (as
 * TLA+ trace validation does) and lets the unseen rest of the world act
 * between two answers, in the ways it can:
 *   - shard: a balance too low for a debit (INSUFFICIENT_FUNDS); a row locked
 *     by another branch (LOCK_TIMEOUT); a deadlock that picks this branch as
 *     victim; the cross-shard deadlock detector interrupting its blocked exec
 *     (DEADLOCK_VICTIM); a crash and restart; a lost answer (UNAVAILABLE: the statement
 *     never arrived, or ran and then the connection died, or the server
 *     crashed);
 *   - log: the resolver creating the ABORT record (presumed abort) or
 *     deleting the record; a newer process epoch (FENCED); a lost answer (the
 *     write happened or not).
 * An answer no state of the set allows is a violation; the result names the
 * step. The sets stay small: a few states per branch and per key.
 */
import type { BranchSpec, Effect, Fence, LogPutResult, LogDeleteResult, Result, ShardId, TxId, XaResult } from "../spec/kernel/effects.ts";
import * as txlog from "../spec/env/txlog.ts";
import * as xa from "../spec/env/xa.ts";
import { branchXid, connOf, executeXa, type XaEffect } from "../spec/env/executor.ts";
import type { Trace } from "../spec/kernel/trace.ts";
import { COORDINATOR_ACTOR } from "../spec/kernel/trace.ts";
import { effectKey, resultKey } from "../spec/kernel/keys.ts";
import { ONE_PHASE } from "../spec/protocols/registry.ts";
import { DELTA_CENTS_MAX } from "../spec/kernel/effects.ts";

/** The traces whose environment answers the models here cover: the XA and txlog effects of the one-phase protocol's coordinator (2PC). */
const COORDINATOR_MODEL = ONE_PHASE.traceModel;

export type ValidationResult = { ok: true; answers: number } | { ok: false; step: number; message: string };

/**
 * Balance of every account the transaction touches when "enough money" is
 * assumed: no debit is larger (runtime/transfer.ts), and the model's sums
 * (this plus one branch's delta per account) stay below 2^53.
 */
const RICH_CENTS = DELTA_CENTS_MAX;
const FOREIGN_CONN: xa.ConnId = "validate/foreign";
const FOREIGN_XID: xa.Xid = "validate.foreign";
/** Bound on the states kept per branch or key; more would mean the environment actions were modelled wrongly. */
const STATES_MAX = 256;

/** Whether validateEnvironment has models for this trace's protocol (2PC only, for now). */
export const environmentModelled = (trace: Trace): boolean => trace.header.model === COORDINATOR_MODEL;

export function validateEnvironment(trace: Trace): ValidationResult {
  // The environment models here are XA and the txlog as 2PC uses them; parallel commit's KILL and the speculative path's local transactions are not covered yet.
  if (trace.header.model !== COORDINATOR_MODEL) {
    return { ok: false, step: 0, message: `environment validation covers ${COORDINATOR_MODEL} traces only (this trace: ${JSON.stringify(trace.header.model)}); replay the role with replayTrace instead` };
  }
  const steps = trace.steps.filter((s) => s.actor === COORDINATOR_ACTOR);
  const first = steps[0]?.input as { t?: string; tx?: TxId; branches?: readonly BranchSpec[] } | undefined;
  if (first?.t !== "request" || first.tx === undefined || first.branches === undefined) {
    return { ok: false, step: steps[0]?.step ?? 0, message: "the trace does not start with the coordinator's request" };
  }
  const tx = first.tx;
  const shards = new Map<ShardId, xa.ShardState[]>();
  for (const b of first.branches) shards.set(b.shard, [xa.initShard(b.ops.map((op) => [op.account, RICH_CENTS] as const))]);
  const keys = new Map<string, txlog.TxlogState[]>();
  /** Effects asked for and not answered yet, by effect key, oldest first. */
  const asked = new Map<string, Effect[]>();
  let answers = 0;

  for (const s of steps) {
    const input = s.input as Result | { t: "request" };
    // Effects and answers pair as the interpreter recorded them (runtime/interpreter.ts).
    const key = resultKey(input as Parameters<typeof resultKey>[0]);
    if (key !== null) {
      const effect = asked.get(key)?.shift();
      if (effect === undefined) return { ok: false, step: s.step, message: `an answer (${input.t}) to an effect the coordinator never asked for` };
      const r = input as Result;
      if (effect.t === "xa.exec" || effect.t === "xa.prepare" || effect.t === "xa.commit" || effect.t === "xa.rollback") {
        const states = shards.get(effect.shard);
        if (states === undefined) return { ok: false, step: s.step, message: `${effect.t} on ${effect.shard}, which is not a branch of ${tx}` };
        const next = xaAnswers(states, effect, tx, (r as { r: XaResult }).r);
        if (next.length === 0) return { ok: false, step: s.step, message: `${effect.shard} answered ${JSON.stringify((r as { r: unknown }).r)} to ${effect.t}, which the XA model never does here` };
        shards.set(effect.shard, next.slice(0, STATES_MAX));
      } else if (effect.t === "log.put" || effect.t === "log.delete") {
        const states = keys.get(effect.key) ?? [initialLog(effect.fence)];
        const next = logAnswers(states, effect, (r as { r: LogPutResult | LogDeleteResult }).r);
        if (next.length === 0) return { ok: false, step: s.step, message: `the log answered ${JSON.stringify((r as { r: unknown }).r)} to ${effect.t} ${effect.key}, which the txlog model never does here` };
        keys.set(effect.key, next.slice(0, STATES_MAX));
      }
      answers++;
    }
    for (const e of s.effects as Effect[]) {
      const k = effectKey(e);
      asked.set(k, [...(asked.get(k) ?? []), e]);
    }
  }
  return { ok: true, answers };
}

// ---------------------------------------------------------------- XA

/** Every model state after `fx` in which the shard answers exactly `seen`, from any state of `states`. */
function xaAnswers(states: readonly xa.ShardState[], fx: Extract<XaEffect, { tx: TxId }>, tx: TxId, seen: XaResult): xa.ShardState[] {
  const conn = connOf(tx, fx.shard, 1);
  const out: xa.ShardState[] = [];
  const keep = (s: xa.ShardState, r: XaResult) => {
    if (sameJson(r, seen)) out.push(s);
  };
  for (const s0 of states) {
    for (const s of worldBefore(s0, fx)) {
      for (const o of executeXa(s, fx, conn)) {
        keep(o.shard, (o.result as { r: XaResult }).r);
        // The answer was lost after the statement ran: the connection died with it.
        keep(xa.disconnect(o.shard, conn), { ok: false, err: "UNAVAILABLE" });
      }
      if (fx.t === "xa.exec" && s.up) keep(deadlockVictim(s, fx, conn), { ok: false, err: "DEADLOCK" });
      if (fx.t === "xa.exec" && s.up) keep(interruptedExec(s, fx, conn), { ok: false, err: "DEADLOCK_VICTIM" });
      // The statement never arrived, or the server crashed around it.
      keep(xa.disconnect(s, conn), { ok: false, err: "UNAVAILABLE" });
      if (s.up) for (const c of xa.crashOutcomes(s)) keep(c, { ok: false, err: "UNAVAILABLE" });
    }
  }
  return dedupe(out);
}

/** What the rest of the world may have done to the shard before this statement. */
function worldBefore(s: xa.ShardState, fx: XaEffect): xa.ShardState[] {
  const worlds = [s];
  if (!s.up) worlds.push(xa.restart(s));
  if (s.up) for (const c of xa.crashOutcomes(s)) worlds.push(xa.restart(c));
  if (fx.t === "xa.exec" && s.up) {
    // Another transaction took money out first: a debit no longer fits.
    const poor = { ...s, balances: s.balances.map(([a, c]) => [a, fx.ops.some((op) => op.account === a && op.delta < 0) ? 0 : c] as const) };
    worlds.push(poor);
    // Another branch holds a row lock this branch needs.
    for (const op of fx.ops) {
      const locked = foreignLock(s, op.account);
      if (locked !== null) worlds.push(locked);
    }
  }
  return worlds;
}

/** `s` with a prepared branch of another transaction holding the lock of `account` (null if that is not possible). */
function foreignLock(s: xa.ShardState, account: number): xa.ShardState | null {
  if (xa.lockHolder(s, account) !== null || xa.findBranch(s, FOREIGN_XID) !== null) return null;
  let r = xa.connect(s, FOREIGN_CONN);
  for (const stmt of [
    { op: "start", xid: FOREIGN_XID },
    { op: "transfer", account, delta: 1 },
    { op: "end", xid: FOREIGN_XID },
    { op: "prepare", xid: FOREIGN_XID },
  ] as const) {
    const next = xa.execute(r.s, FOREIGN_CONN, stmt)[0];
    if (next === undefined || next.out.kind !== "ok") return null;
    r = next;
  }
  return xa.disconnect(r.s, FOREIGN_CONN);
}

/**
 * The branch as InnoDB leaves a deadlock victim: started, its work rolled
 * back and its locks released, marked rollback-only (the model's victimize;
 * the executor itself never waits, so it never meets a cycle).
 */
function deadlockVictim(s: xa.ShardState, fx: Extract<XaEffect, { t: "xa.exec" }>, conn: xa.ConnId): xa.ShardState {
  const xid = branchXid(fx.tx, fx.shard);
  const connected = xa.findConn(s, conn) === null ? xa.connect(s, conn).s : s;
  const started = xa.execute(connected, conn, { op: "start", xid })[0]!;
  if (started.out.kind !== "ok") return s;
  return { ...started.s, branches: started.s.branches.map((b) => (b.xid === xid ? { ...b, rollbackOnly: true, writes: [], locks: [], snapshot: null } : b)) };
}

/**
 * The cross-shard deadlock detector chose this transaction and interrupted
 * its blocked exec (KILL QUERY, runtime/deadlock.ts): as after a lock wait
 * timeout (spec/env/executor.ts), the waiting statement is rolled back and
 * the executor ends the branch (XA END), which keeps no write of its own.
 */
function interruptedExec(s: xa.ShardState, fx: Extract<XaEffect, { t: "xa.exec" }>, conn: xa.ConnId): xa.ShardState {
  const xid = branchXid(fx.tx, fx.shard);
  const connected = xa.findConn(s, conn) === null ? xa.connect(s, conn).s : s;
  const started = xa.execute(connected, conn, { op: "start", xid })[0]!;
  if (started.out.kind !== "ok") return s;
  const ended = xa.execute(started.s, conn, { op: "end", xid })[0]!;
  return ended.out.kind === "ok" ? ended.s : s;
}

// ---------------------------------------------------------------- txlog

function initialLog(fence: Fence | undefined): txlog.TxlogState {
  let s = txlog.emptyTxlog;
  if (fence !== undefined) for (let v = 0; v < fence.version; v++) s = txlog.put(s, fence.key, { kind: "epoch" }, v).s;
  return s;
}

function logAnswers(states: readonly txlog.TxlogState[], fx: Extract<Effect, { t: "log.put" | "log.delete" }>, seen: LogPutResult | LogDeleteResult): txlog.TxlogState[] {
  const out: txlog.TxlogState[] = [];
  for (const s0 of states) {
    for (const s of logWorldBefore(s0, fx)) {
      const r = fx.t === "log.put" ? txlog.put(s, fx.key, fx.value, fx.ifVersion, fx.fence) : txlog.del(s, fx.key, fx.fence, fx.ifVersion);
      if (sameJson(r.r, seen)) out.push(r.s);
      if (sameJson(seen, { ok: false, err: "UNAVAILABLE" })) out.push(r.s, s);
    }
  }
  return dedupe(out);
}

/** The resolver and newer processes act on the log concurrently with this coordinator. */
function logWorldBefore(s: txlog.TxlogState, fx: Extract<Effect, { t: "log.put" | "log.delete" }>): txlog.TxlogState[] {
  const worlds = [s];
  const abort = txlog.put(s, fx.key, { kind: "decision", decision: "abort", branches: [] }, 0);
  if (abort.r.ok) worlds.push(abort.s);
  if (txlog.get(s, fx.key) !== undefined) worlds.push(txlog.del(s, fx.key).s);
  if (fx.fence !== undefined) {
    const epoch = txlog.get(s, fx.fence.key);
    worlds.push(txlog.put(s, fx.fence.key, { kind: "epoch" }, epoch?.version ?? 0).s);
  }
  return worlds;
}

/** Decision records written by the resolver name branches this check cannot know; compare answers without them. */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(normal(a)) === JSON.stringify(normal(b));
}

function normal(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(normal);
  const o = v as Record<string, unknown>;
  const entries = Object.entries(o)
    .filter(([k]) => !(k === "branches" && o["kind"] === "decision" && o["decision"] === "abort"))
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([k, x]) => [k, normal(x)]);
  return Object.fromEntries(entries);
}

function dedupe<T>(states: T[]): T[] {
  const seen = new Set<string>();
  return states.filter((s) => {
    const k = JSON.stringify(s);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
