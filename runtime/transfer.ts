/**
 * POST /transfer bodies: decoding and validation, pure. A body crosses a
 * boundary, so it is decoded with a Schema (unknown fields refused), then
 * checked for what a Schema does not say: money as integer cents (a JSON
 * number with a fraction or an exponent is refused before parsing could
 * round it), deltas summing to zero, known shards, existing accounts.
 *
 * Ops on the same account are merged and ops are grouped by shard into one
 * branch per shard (the history table keys rows by (xid, account)); an
 * account whose deltas cancel out is dropped.
 */
import { Schema } from "effect";
import type { BranchSpec, Op, ShardId } from "../spec/kernel/effects.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS, type ProtocolName } from "../spec/protocols/registry.ts";

export const OPS_MAX = 64;
/** |delta| at most 10^15 cents, so 64 of them sum exactly in a double. */
export const DELTA_CENTS_MAX = 1_000_000_000_000_000;
export const IDEMPOTENCY_KEY_LENGTH_MAX = 200;

export class BadRequest extends Error {
  constructor(
    readonly status: 400 | 413 | 422 | 503,
    message: string,
  ) {
    super(message);
  }
}

const BodySchema = Schema.Struct({
  ops: Schema.Array(
    Schema.Struct({
      shard_id: Schema.String,
      account_id: Schema.Int,
      delta: Schema.Union([Schema.String, Schema.Number]),
    }),
  ),
  idempotency_key: Schema.optional(Schema.String),
  protocol: Schema.optional(Schema.String),
});

export interface TransferRequest {
  readonly branches: readonly BranchSpec[];
  readonly protocol: ProtocolName;
  /** The protocol the body named; null when it named none and the server's default applies. */
  readonly protocol_in_body: ProtocolName | null;
  readonly idempotency_key?: string;
}

export interface AccountCatalog {
  readonly shards: readonly ShardId[];
  /** null: not known yet (the shard has not answered since boot). */
  hasAccount(shard: ShardId, account: number): boolean | null;
}

/** Throws BadRequest with a message that says what is wrong. */
export function decodeTransfer(text: string, catalog: AccountCatalog, defaultProtocol: ProtocolName = DEFAULT_PROTOCOL): TransferRequest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BadRequest(400, `malformed JSON: ${(e as Error).message}`);
  }
  const fractional = firstNonIntegerNumber(text);
  if (fractional !== null) {
    throw new BadRequest(400, `JSON number ${fractional} is not an integer: amounts are integer cents (e.g. -5000) or decimal strings (e.g. "-50.00")`);
  }
  let body: typeof BodySchema.Type;
  try {
    body = Schema.decodeUnknownSync(BodySchema)(json, { onExcessProperty: "error" });
  } catch (e) {
    throw new BadRequest(400, `invalid body: ${(e as Error).message.replaceAll("\n", "")}; expected {"ops":[{"shard_id":"shard-a","account_id":1,"delta":"-50.00"},...],"idempotency_key"?:"...","protocol"?:${PROTOCOLS.map((p) => `"${p}"`).join("|")}}`);
  }
  const protocol = body.protocol ?? defaultProtocol;
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new BadRequest(400, `protocol ${JSON.stringify(protocol)} is not supported; supported: ${PROTOCOLS.join(", ")}`);
  }
  const key = body.idempotency_key;
  if (key !== undefined && (key.length === 0 || key.length > IDEMPOTENCY_KEY_LENGTH_MAX)) {
    throw new BadRequest(400, `idempotency_key must have 1 to ${IDEMPOTENCY_KEY_LENGTH_MAX} characters (got ${key.length})`);
  }
  if (body.ops.length < 1 || body.ops.length > OPS_MAX) {
    throw new BadRequest(400, `a transfer has 1 to ${OPS_MAX} ops (got ${body.ops.length})`);
  }
  const merged = new Map<ShardId, Map<number, number>>();
  let sum = 0;
  body.ops.forEach((op, i) => {
    const at = `ops[${i}]`;
    const cents = centsOf(op.delta, `${at}.delta`);
    if (!catalog.shards.includes(op.shard_id)) {
      throw new BadRequest(422, `${at}.shard_id: unknown shard ${JSON.stringify(op.shard_id)} (shards: ${catalog.shards.join(", ")})`);
    }
    const exists = Number.isSafeInteger(op.account_id) && op.account_id > 0 ? catalog.hasAccount(op.shard_id, op.account_id) : false;
    if (exists === null) throw new BadRequest(503, `${op.shard_id} has not answered since the server started; retry shortly`);
    if (!exists) throw new BadRequest(422, `${at}.account_id: no account ${op.account_id} on ${op.shard_id}`);
    const accounts = merged.get(op.shard_id) ?? new Map<number, number>();
    accounts.set(op.account_id, (accounts.get(op.account_id) ?? 0) + cents);
    merged.set(op.shard_id, accounts);
    sum += cents;
  });
  if (sum !== 0) throw new BadRequest(422, `the deltas sum to ${formatCents(sum)}, not zero: a transfer moves money, it never creates or destroys it`);
  const branches: BranchSpec[] = [];
  for (const shard of [...merged.keys()].sort()) {
    const ops: Op[] = [...merged.get(shard)!]
      .filter(([, delta]) => delta !== 0)
      .sort(([a], [b]) => a - b)
      .map(([account, delta]) => ({ account, delta }));
    if (ops.length > 0) branches.push({ shard, ops });
  }
  if (branches.length === 0) throw new BadRequest(422, "the ops cancel out on every account: nothing to transfer");
  return {
    branches,
    protocol: protocol as ProtocolName,
    protocol_in_body: (body.protocol ?? null) as ProtocolName | null,
    ...(key !== undefined ? { idempotency_key: key } : {}),
  };
}

const DECIMAL = /^(-?)(\d{1,13})(?:\.(\d{1,2}))?$/;

/** A delta as integer cents: a JSON integer is cents, a string is a decimal amount with at most two decimals. */
export function centsOf(delta: string | number, at: string): number {
  if (typeof delta === "number") {
    if (!Number.isSafeInteger(delta) || Math.abs(delta) > DELTA_CENTS_MAX) {
      throw new BadRequest(400, `${at}: ${delta} is not an integer number of cents from -${DELTA_CENTS_MAX} to ${DELTA_CENTS_MAX}`);
    }
    return delta;
  }
  const m = DECIMAL.exec(delta);
  if (m === null) {
    throw new BadRequest(400, `${at}: ${JSON.stringify(delta)} is not an amount: write a decimal string with at most two decimals ("-50.00", "12.5", "7") or integer cents (-5000)`);
  }
  const cents = Number(m[2]) * 100 + Number((m[3] ?? "0").padEnd(2, "0"));
  return m[1] === "-" ? -cents : cents;
}

export function formatCents(cents: number): string {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/**
 * The first number token in a JSON text that has a fraction or an exponent,
 * or null. JSON.parse would turn 1.0 and 1e2 into integers and 0.1 into a
 * float; the text is the only place left to see what the client wrote.
 */
export function firstNonIntegerNumber(text: string): string | null {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < n && text.charCodeAt(i) !== 34) i += text.charCodeAt(i) === 92 /* \ */ ? 2 : 1;
      i++;
      continue;
    }
    if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      const start = i;
      while (i < n && /[0-9eE.+-]/.test(text[i]!)) i++;
      const token = text.slice(start, i);
      if (/[.eE]/.test(token)) return token;
      continue;
    }
    i++;
  }
  return null;
}
