/**
 * Idempotency keys for POST /transfer: the same key returns the first
 * outcome and never applies the transfer twice, also when the two requests
 * race and across a restart (docs/operations.md, "Idempotency").
 *
 * This is an instantiation of the claim role (spec/server/idempotency.ts
 * `claimRole`, checked by the server model with its parameter idempotency):
 * the role decides, this file executes what it asks. Its writes go through
 * the txlog port (runtime/adapters/ports.ts TxlogStore): a claim record
 * (spec/kernel/effects.ts ClaimRecord) at `idem/<sha256(key)>`, made by a CAS
 * create before anything runs, holding the transaction id it runs as and a
 * fingerprint of the transfer; the outcome stored into it (CAS on the
 * version) once the coordinator replied, before the client hears it.
 * What it asks of its host: run the transaction (the engine), settle a claim
 * found without outcome (answerOfClaim: this process's coordinator, else
 * read-back with the settle fence, runtime/durable.ts), answer.
 *
 * Retention: a claim is attached to an etcd lease (runtime/retention.ts,
 * given to the txlog adapter as its claimLeases) and is gone `retention_ms`
 * (at least) after it was made; a request with its key after that is a new
 * transfer. A claim whose outcome is still unknown is written again on a
 * fresh lease whenever a request finds it so, so that it lives as long as
 * clients keep asking. Why a claim cannot expire under a transfer still in
 * flight: docs/operations.md, "Idempotency".
 *
 * Giving the key back when the engine refuses to run the transfer
 * (overloaded, shutting down, not ready) is the role's too: a log.delete
 * with a compare on the claim's version, through the txlog port.
 */
import { createHash } from "node:crypto";
import type { Namespace } from "etcd3";
import { claimKey, type ClaimRecord, type Outcome, type TxId } from "../spec/kernel/effects.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { TxlogEtcd } from "./adapters/txlog-etcd.ts";
import { DurableUnavailable, settledOutcome, type RanAs } from "./durable.ts";
import type { TxlogStore } from "./adapters/ports.ts";
import { DEFAULT_PROTOCOL } from "../spec/protocols/registry.ts";
import { answerOfClaim, claimRole, type ClaimEffect, type ClaimInput, type ClaimState } from "../spec/server/idempotency.ts";
import { IDEMPOTENCY_ACTOR } from "../spec/kernel/trace.ts";
import { NotReady, Overloaded, ShuttingDown, SIDE_STEPS_MAX, type Engine, type SideRecording } from "./engine.ts";
import { RetentionLeases } from "./retention.ts";
import { BadRequest, IDEMPOTENCY_KEY_LENGTH_MAX, type TransferRequest } from "./transfer.ts";
import type { TraceParent } from "./tracing.ts";

export const IDEMPOTENCY_PREFIX = claimKey("");

export class IdempotencyConflict extends Error {
  constructor(
    readonly status: 409 | 422 | 503,
    message: string,
    readonly tx?: TxId,
  ) {
    super(message);
  }
}

export interface IdempotentResult {
  tx: TxId;
  outcome: Outcome;
  /** The outcome is the one a previous request with this key got. */
  replayed: boolean;
  /** The protocol the transaction ran with, as its claim records it (a replay may reach a node whose default differs). */
  protocol?: string;
}

/**
 * Where a claimed transaction's outcome is read (runtime/nodes.ts): the namespace of the node that ran it, with the
 * epoch this process holds of that node (its own; or the one its resolver took of a node it took over; else none,
 * and a settle that needs the fence answers 503), and that node's probe when this process may run it.
 */
export interface DurableRoute {
  readonly node: string;
  readonly log: TxlogStore;
  readonly epoch: () => number | null;
  /** The node is one this process took over: its sessions holding its fence row are killed (runtime/durable.ts FenceDeps). */
  readonly killFenced?: boolean;
  readonly probe?: (tx: TxId, ran: RanAs) => Promise<Outcome>;
}

export interface IdempotencyDeps {
  readonly ns: Namespace;
  readonly engine: Engine;
  readonly xa: XaMysql;
  readonly log: TxlogEtcd;
  /** How long a claim is kept at least (config idempotency_retention_ms). */
  readonly retention_ms: number;
  /** Absent: every transaction is this process's (the engine's log, epoch and probe). */
  readonly durableFor?: (tx: TxId) => DurableRoute;
}

/**
 * What makes two requests "the same transfer": the branches, and the protocol as the BODY named it (the registry's
 * DEFAULT_PROTOCOL when it named none, the only default before --protocol existed), so that a retry of the same body after a restart with
 * another --protocol default is still the same transfer (the claim records the protocol that actually ran).
 */
const fingerprintOf = (r: TransferRequest): string =>
  createHash("sha256").update(JSON.stringify({ protocol: r.protocol_in_body ?? DEFAULT_PROTOCOL, branches: r.branches })).digest("hex");

/**
 * The idempotency key of a POST /transfer: the `Idempotency-Key` header, the
 * body's `idempotency_key`, or both when they name the same key (one key
 * space: a retry may move the key from one to the other). `header`: every
 * value of the header (node's headersDistinct). The header follows the IETF
 * httpapi draft (a Structured Field String, `"order-4711"`) and also takes
 * the bare value Stripe, PayPal and Adyen clients send (`order-4711`). The
 * key has the body field's limit (1 to IDEMPOTENCY_KEY_LENGTH_MAX
 * characters). Throws BadRequest(400) with what to send instead.
 */
export function idempotencyKeyOf(header: readonly string[] | undefined, body: string | undefined): string | undefined {
  if (header === undefined || header.length === 0) return body;
  if (header.length > 1) throw new BadRequest(400, `${header.length} Idempotency-Key headers: send one`);
  const key = headerKey(header[0]!);
  if (body !== undefined && body !== key) {
    throw new BadRequest(400, `the Idempotency-Key header (${JSON.stringify(key)}) and the body's idempotency_key (${JSON.stringify(body)}) differ: send the key once, or the same key in both`);
  }
  return key;
}

/** Printable ASCII, the characters a Structured Field String may hold (RFC 8941, 3.3.3). */
const PRINTABLE = /^[\x20-\x7e]*$/;

function headerKey(value: string): string {
  let key = value;
  if (value.startsWith('"')) {
    const m = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(value);
    if (m === null) throw new BadRequest(400, `Idempotency-Key: a quoted key is a Structured Field String ("..." with \\" and \\\\ as the only escapes); or send the key bare`);
    key = m[1]!.replace(/\\(["\\])/g, "$1");
  } else if (!PRINTABLE.test(value)) {
    throw new BadRequest(400, "Idempotency-Key: use printable ASCII characters (or put the key in the body's idempotency_key)");
  }
  if (key.length === 0 || key.length > IDEMPOTENCY_KEY_LENGTH_MAX) {
    throw new BadRequest(400, `Idempotency-Key must have 1 to ${IDEMPOTENCY_KEY_LENGTH_MAX} characters (got ${key.length})`);
  }
  return key;
}

/** The txlog key of a client's idempotency key's claim. */
export const idempotencyEtcdKey = (key: string): string => claimKey(createHash("sha256").update(key).digest("hex"));

export class Idempotency {
  /** Requests of this process per key, so that concurrent ones here share one claim. Bounded by in_flight_max. */
  private readonly local = new Map<string, Promise<IdempotentResult>>();

  constructor(private readonly deps: IdempotencyDeps) {
    deps.log.claimLeases = new RetentionLeases(deps.ns, deps.retention_ms);
  }

  async run(key: string, request: TransferRequest, parent?: TraceParent, onTx?: (tx: TxId) => void): Promise<IdempotentResult> {
    const fingerprint = fingerprintOf(request);
    const mine = this.local.get(key);
    if (mine !== undefined) {
      const r = await mine;
      return this.replay(key, fingerprint, r);
    }
    const p = this.claimAndRun(key, request, fingerprint, parent, onTx);
    this.local.set(key, p);
    try {
      return await p;
    } finally {
      this.local.delete(key);
    }
  }

  /** Whether a claim of this key is in the log (a transfer ran, or runs, under it); null: the log did not answer. */
  async claimed(key: string): Promise<boolean | null> {
    const etcdKey = idempotencyEtcdKey(key);
    const listed = await this.deps.log.list(etcdKey);
    if (!listed.ok) return null;
    return listed.entries.some((e) => e.key === etcdKey && e.value.kind === "claim");
  }

  private async replay(key: string, fingerprint: string, r: IdempotentResult): Promise<IdempotentResult> {
    // The shared claim was checked against its own request; this one may differ.
    const etcdKey = idempotencyEtcdKey(key);
    const listed = await this.deps.log.list(etcdKey);
    // Not checked, not answered: a request with another body must never be given the first one's outcome.
    if (!listed.ok) throw new IdempotencyConflict(503, "cannot check this idempotency key's transfer against the log right now; retry");
    const rec = listed.entries.find((e) => e.key === etcdKey)?.value;
    if (rec?.kind === "claim" && rec.fingerprint !== fingerprint) throw this.mismatch(rec.tx);
    return { ...r, replayed: true };
  }

  private mismatch(tx: TxId): IdempotencyConflict {
    return new IdempotencyConflict(422, "this idempotency key was used for a different transfer; use a new key for a new transfer", tx);
  }

  /**
   * Runs the claim role (spec/server/idempotency.ts claimRole) for one request: its txlog writes through the port,
   * its signals here. `onTx`: told the new transaction's id once the claim is ours, before its branches run.
   */
  private async claimAndRun(key: string, request: TransferRequest, fingerprint: string, parent?: TraceParent, onTx?: (tx: TxId) => void): Promise<IdempotentResult> {
    const etcdKey = idempotencyEtcdKey(key);
    const tx = this.deps.engine.newTx();
    const record: ClaimRecord = { kind: "claim", tx, fingerprint, shards: request.branches.map((b) => b.shard), ...(request.protocol !== undefined ? { protocol: request.protocol } : {}) };
    const role = claimRole();
    // The role's steps, drawn in the trace of the transaction it runs (when traces are recorded and the claim is ours).
    const side: SideRecording | undefined = this.deps.engine.recordsTraces ? { actor: IDEMPOTENCY_ACTOR, steps: [] } : undefined;
    const step = (st: ClaimState, input: ClaimInput) => {
      const o = role.step(st, input);
      if (side !== undefined && side.steps.length < SIDE_STEPS_MAX) side.steps.push({ input, effects: o.effects, now_ms: this.deps.engine.now_ms() });
      return o;
    };
    let out = step(role.start(), { t: "claim", key: etcdKey, record });
    /** The claim found in the log (a CAS answer, or the one to settle): a replay names its transaction's protocol. */
    let found: ClaimRecord | undefined;
    /** The engine's refusal to run the claimed transaction, thrown once the role gave the key back. */
    let refusal: Error | undefined;
    for (;;) {
      if (out.effects.length === 0 && refusal !== undefined) throw refusal;
      if (out.effects.length !== 1) throw new Error(`idempotency ${etcdKey}: the claim role asked for ${out.effects.length} things at once`);
      const fx: ClaimEffect = out.effects[0]!;
      let input: ClaimInput;
      switch (fx.t) {
        case "log.put":
          input = { t: "log.put", key: fx.key, r: await this.deps.log.put(fx.key, fx.value, fx.ifVersion) };
          if (!input.r.ok && input.r.err === "CAS" && input.r.current?.kind === "claim") found = input.r.current;
          if (!input.r.ok && input.r.err === "UNAVAILABLE" && fx.ifVersion > 0) console.error(`idempotency ${etcdKey}: claim not written again (the transaction log did not answer); a later request settles it`);
          break;
        case "log.delete":
          input = { t: "log.delete", key: fx.key, r: await this.deps.log.delete(fx.key, fx.fence, fx.ifVersion) };
          break;
        case "claim.run": {
          const started = this.runClaimed(request, tx, parent, side);
          if (started instanceof Error) {
            refusal = started;
            input = { t: "not.run" };
            break;
          }
          onTx?.(tx);
          input = { t: "told", outcome: await started };
          break;
        }
        case "claim.settle":
          found = fx.record;
          input = { t: "told", outcome: await this.earlier(fx.record) };
          break;
        case "claim.answer": {
          const protocol = fx.replayed ? (found?.tx === fx.tx ? found.protocol : undefined) : request.protocol;
          return { tx: fx.tx, outcome: fx.outcome, replayed: fx.replayed, ...(protocol !== undefined ? { protocol } : {}) };
        }
        case "claim.refused":
          if (fx.status === 422) throw this.mismatch(fx.tx);
          // The claim may or may not exist; either way nothing ran, and a retry with the key finds out.
          throw new IdempotencyConflict(503, "the transaction log did not answer the claim; retry with the same idempotency_key");
      }
      out = step(out.st, input);
    }
  }

  /**
   * The claim is ours: the engine runs the transaction; its coordinator's reply is the outcome. The engine's refusal
   * (overloaded, shutting down, not ready) is returned: the role gives the key back (a delete at the claim's version,
   * through the txlog port) so that the client's retry runs the transfer; should that fail, the retry settles it as aborted.
   */
  private runClaimed(request: TransferRequest, tx: TxId, parent?: TraceParent, side?: SideRecording): Promise<Outcome> | Error {
    try {
      return this.deps.engine.submit(request.branches, request.protocol, tx, undefined, parent, side).outcome;
    } catch (e) {
      if (e instanceof Overloaded || e instanceof ShuttingDown || e instanceof NotReady) return e;
      throw e;
    }
  }

  /** A request with a key claimed before, without outcome: answerOfClaim (spec/server/idempotency.ts) says where the answer comes from. */
  private async earlier(rec: ClaimRecord): Promise<Outcome> {
    const running = this.deps.engine.outcomeOf(rec.tx);
    const told = running === undefined ? undefined : await running;
    const held = told === undefined ? undefined : { told, endedInDoubt: this.deps.engine.inDoubt(rec.tx) !== undefined };
    const answer = answerOfClaim(undefined, held);
    if (answer.from !== "read-back") return answer.outcome;
    const outcome = await this.settle(rec);
    // A transaction this process still holds answers GET /transactions/:id with the same outcome from now on.
    if (outcome.status !== "in_doubt") this.deps.engine.settled(rec.tx, outcome);
    return outcome;
  }

  /** The outcome of a claimed transaction whose claimant is gone, or answered in_doubt: from durable facts (runtime/durable.ts). */
  private async settle(rec: ClaimRecord): Promise<Outcome> {
    const route: DurableRoute = this.deps.durableFor?.(rec.tx) ?? { node: "", log: this.deps.log, epoch: () => this.deps.engine.epoch, probe: (tx, ran) => this.deps.engine.probe(tx, ran) };
    let outcome;
    try {
      outcome = await settledOutcome(rec.tx, rec, { xa: this.deps.xa, log: route.log, epoch: route.epoch, killFenced: route.killFenced === true });
    } catch (e) {
      if (!(e instanceof DurableUnavailable)) throw e;
      throw new IdempotencyConflict(503, `cannot settle the earlier transaction ${rec.tx}: ${e.message}; retry with the same idempotency_key`, rec.tx);
    }
    if (outcome !== "probe") return outcome;
    if (route.probe === undefined) {
      throw new IdempotencyConflict(503, `the earlier transaction ${rec.tx} is coordinator node ${route.node}'s, which this one does not hold: retry with the same idempotency_key (on ${route.node}, or here once its lease expired)`, rec.tx);
    }
    return route.probe(rec.tx, rec);
  }

}
