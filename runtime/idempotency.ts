/**
 * Idempotency keys for POST /transfer: the same key returns the first
 * outcome and never applies the transfer twice, also when the two requests
 * race and across a restart (docs/operations.md, "Idempotency").
 *
 * A key is claimed durably before anything runs: an etcd CAS create of
 * `<prefix>idem/<sha256(key)>` holding the transaction id it runs as and a
 * fingerprint of the transfer. Only the claimant runs a coordinator; it
 * writes the outcome into the record once the coordinator replied (committed
 * or aborted; in_doubt is not an outcome, it is left open), and only then
 * answers the client.
 *
 * The crash window: the claimant dies after the claim and before the
 * outcome write. A later request with the key then finds a record without
 * outcome whose transaction no coordinator runs any more: the process that
 * claimed it is gone, and its epoch fence keeps any of its log writes still
 * in flight from landing. What happened is settled from durable facts
 * (runtime/durable.ts): the decision record, else history rows (committed),
 * else a prepared branch (in_doubt for now: ask again), else aborted.
 * A settled outcome is written into the record like a live one.
 *
 * Retention: a claim is attached to an etcd lease (runtime/retention.ts) and
 * is gone `retention_ms` (at least) after it was made; a request with its key
 * after that is a new transfer. A claim whose outcome is still unknown is put
 * on a fresh lease whenever a request finds it so, so that it lives as long
 * as clients keep asking. Why a claim cannot expire under a transfer still in
 * flight: docs/operations.md, "Idempotency".
 */
import { createHash } from "node:crypto";
import { EtcdLeaseInvalidError, type Namespace } from "etcd3";
import { Schema } from "effect";
import type { Outcome, TxId } from "../spec/kernel/effects.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { TxlogEtcd } from "./adapters/txlog-etcd.ts";
import { DurableUnavailable, settledOutcome } from "./durable.ts";
import { DEFAULT_PROTOCOL } from "../spec/protocols/registry.ts";
import { answerOfClaim, storable } from "../spec/server/idempotency.ts";
import { newTxId, NotReady, Overloaded, ShuttingDown, type Engine } from "./engine.ts";
import { RetentionLeases } from "./retention.ts";
import { BadRequest, IDEMPOTENCY_KEY_LENGTH_MAX, type TransferRequest } from "./transfer.ts";
import type { TraceParent } from "./tracing.ts";

export const IDEMPOTENCY_PREFIX = "idem/";

const OutcomeSchema = Schema.Union([
  Schema.Struct({ status: Schema.Literal("committed") }),
  Schema.Struct({
    status: Schema.Literal("aborted"),
    reason: Schema.Literals(["insufficient_funds", "conflict", "deadlock", "timeout", "shard_unavailable", "resolver"]),
  }),
]);

const RecordSchema = Schema.Struct({
  tx: Schema.String,
  fingerprint: Schema.String,
  shards: Schema.Array(Schema.String),
  /** The claimed transfer's protocol (absent in claims written before the speculative path existed: 2pc). */
  protocol: Schema.optional(Schema.String),
  outcome: Schema.optional(OutcomeSchema),
});

type IdemRecord = typeof RecordSchema.Type;

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
}

export interface IdempotencyDeps {
  readonly ns: Namespace;
  readonly engine: Engine;
  readonly xa: XaMysql;
  readonly log: TxlogEtcd;
  /** How long a claim is kept at least (config idempotency_retention_ms). */
  readonly retention_ms: number;
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

export const idempotencyEtcdKey = (key: string): string => IDEMPOTENCY_PREFIX + createHash("sha256").update(key).digest("hex");

export class Idempotency {
  /** Requests of this process per key, so that concurrent ones here share one claim. Bounded by in_flight_max. */
  private readonly local = new Map<string, Promise<IdempotentResult>>();

  private readonly leases: RetentionLeases;

  constructor(private readonly deps: IdempotencyDeps) {
    this.leases = new RetentionLeases(deps.ns, deps.retention_ms);
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

  private async replay(key: string, fingerprint: string, r: IdempotentResult): Promise<IdempotentResult> {
    // The shared claim was checked against its own request; this one may differ.
    const rec = await this.read(idempotencyEtcdKey(key));
    if (rec !== null && rec.record.fingerprint !== fingerprint) throw this.mismatch(rec.record.tx);
    return { ...r, replayed: true };
  }

  private mismatch(tx: TxId): IdempotencyConflict {
    return new IdempotencyConflict(422, "this idempotency key was used for a different transfer; use a new key for a new transfer", tx);
  }

  private async read(etcdKey: string): Promise<{ record: IdemRecord; version: number } | null> {
    const res = await this.deps.ns.get(etcdKey).exec();
    const kv = res.kvs[0];
    if (kv === undefined) return null;
    return { record: decodeRecord(etcdKey, kv.value.toString("utf8")), version: Number(kv.version) };
  }

  /** `onTx`: told the new transaction's id once the claim is ours, before its branches run. */
  private async claimAndRun(key: string, request: TransferRequest, fingerprint: string, parent?: TraceParent, onTx?: (tx: TxId) => void): Promise<IdempotentResult> {
    const etcdKey = idempotencyEtcdKey(key);
    const tx = newTxId();
    const claim: IdemRecord = { tx, fingerprint, shards: request.branches.map((b) => b.shard), protocol: request.protocol };
    const res = await this.create(etcdKey, claim);
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv === undefined) throw new IdempotencyConflict(503, "the idempotency record changed while it was read; retry with the same idempotency_key");
      const rec = decodeRecord(etcdKey, kv.value.toString("utf8"));
      if (rec.fingerprint !== fingerprint) throw this.mismatch(rec.tx);
      return this.earlier(etcdKey, rec, Number(kv.version));
    }
    onTx?.(tx);
    let started;
    try {
      started = this.deps.engine.submit(request.branches, request.protocol, tx, undefined, parent);
    } catch (e) {
      if (e instanceof Overloaded || e instanceof ShuttingDown || e instanceof NotReady) {
        // Give the key back so the client's retry runs the transfer; should the delete fail, the retry settles it as aborted.
        await this.deps.ns.if(etcdKey, "Version", "==", 1).then(this.deps.ns.delete().key(etcdKey)).commit().catch(() => undefined);
      }
      throw e;
    }
    const outcome = await started.outcome;
    await this.record(etcdKey, claim, 1, outcome);
    return { tx, outcome, replayed: false };
  }

  /** The CAS create of a claim, on the retention lease of now; a lease etcd no longer knows is replaced once. */
  private async create(etcdKey: string, claim: IdemRecord) {
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.leases.current();
        return await this.deps.ns
          .if(etcdKey, "Version", "==", 0)
          .then(this.deps.ns.put(etcdKey).value(JSON.stringify(claim)).lease(lease))
          .else(this.deps.ns.get(etcdKey))
          .commit();
      } catch (e) {
        if (e instanceof EtcdLeaseInvalidError && attempt === 1) {
          this.leases.forget();
          continue;
        }
        // The claim may or may not exist; either way nothing ran, and a retry with the key finds out.
        throw new IdempotencyConflict(503, `the transaction log did not answer (${(e as Error).message}); retry with the same idempotency_key`);
      }
    }
  }

  /**
   * Stores a final outcome in the record, on the lease the record has (compare on the version read, so a settled
   * outcome is never overwritten). An outcome still unknown moves the record to the lease of now instead.
   */
  private async record(etcdKey: string, rec: IdemRecord, version: number, outcome: Outcome): Promise<void> {
    const next: IdemRecord = outcome.status === "in_doubt" ? rec : { ...rec, outcome };
    try {
      const put = this.deps.ns.put(etcdKey).value(JSON.stringify(next));
      await this.deps.ns.if(etcdKey, "Version", "==", version).then(outcome.status === "in_doubt" ? put.lease(await this.leases.current()) : put.ignoreLease()).commit();
    } catch (e) {
      // Not fatal: a later request with the key settles the outcome from the txlog and the shards (and renews the lease).
      console.error(`idempotency ${etcdKey}: ${outcome.status === "in_doubt" ? "lease not renewed" : "outcome not stored"} (${(e as Error).message})`);
    }
  }

  /** A request with a key that was claimed before. */
  private async earlier(etcdKey: string, rec: IdemRecord, version: number): Promise<IdempotentResult> {
    const running = rec.outcome === undefined ? this.deps.engine.outcomeOf(rec.tx) : undefined;
    const told = running === undefined ? undefined : await running;
    const held = told === undefined ? undefined : { told, endedInDoubt: this.deps.engine.inDoubt(rec.tx) !== undefined };
    // The rule is spec/server/idempotency.ts answerOfClaim: the runtime only gathers what it reads.
    const answer = answerOfClaim(rec.outcome, held);
    if (answer.from !== "read-back") return { tx: rec.tx, outcome: answer.outcome, replayed: true };
    const outcome = await this.settle(rec);
    // A transaction this process still holds answers GET /transactions/:id with the same outcome from now on.
    this.deps.engine.settled(rec.tx, outcome);
    await this.record(etcdKey, rec, version, outcome);
    return { tx: rec.tx, outcome, replayed: true };
  }

  /** The outcome of a claimed transaction whose claimant is gone, or answered in_doubt: from durable facts (runtime/durable.ts). */
  private async settle(rec: IdemRecord): Promise<Outcome> {
    let outcome;
    try {
      outcome = await settledOutcome(rec.tx, rec, this.deps);
    } catch (e) {
      if (!(e instanceof DurableUnavailable)) throw e;
      throw new IdempotencyConflict(503, `cannot settle the earlier transaction ${rec.tx}: ${e.message}; retry with the same idempotency_key`, rec.tx);
    }
    if (outcome !== "probe") return outcome;
    return this.deps.engine.probe(rec.tx, rec);
  }
}

function decodeRecord(etcdKey: string, text: string): IdemRecord {
  try {
    return Schema.decodeUnknownSync(RecordSchema)(JSON.parse(text), { onExcessProperty: "error" });
  } catch (e) {
    throw new Error(`idempotency record ${etcdKey}: ${(e as Error).message}`);
  }
}
