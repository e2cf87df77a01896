/**
 * POST /transfer bodies: decoding and validation, pure. A body crosses a
 * boundary, so it is decoded with a Schema (unknown fields refused), then
 * checked for what a Schema does not say: money as exact integer cents (a
 * JSON number JSON.parse would not read exactly is refused from the text
 * before), deltas summing to zero exactly, known shards, existing accounts.
 *
 * Ops on the same account are merged and ops are grouped by shard into one
 * branch per shard (the history table keys rows by (xid, account)); an
 * account whose deltas cancel out is dropped.
 */
import { Schema } from "effect";
import type { BranchSpec, Op, ShardId } from "../spec/kernel/effects.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS, type ProtocolName } from "../spec/protocols/registry.ts";
import { DELTA_CENTS_MAX } from "../spec/kernel/effects.ts";

export const OPS_MAX = 64;
export { DELTA_CENTS_MAX };
/**
 * DELTA_CENTS_MAX (spec/kernel/effects.ts) bounds one op, and one account's
 * net change in one transfer. Why this keeps money exact:
 *
 * - It is below 2^53, so every amount the decoder passes on (Op.delta of
 *   spec/kernel/effects.ts) is a safe integer: exact as a JS number, as a JSON
 *   number in traces, undo rows and etcd, and as the SQL literal the adapters
 *   write (the decimal text of a safe integer is exact).
 * - A sum of several amounts is not bounded by 2^53 (64 x 10^15 > 2^53, and
 *   10 x 10^15 + 1 is already rounded as a double), so the zero-sum check and
 *   the merging per account add in bigint; a net change is range-checked
 *   before it becomes a number.
 * - JSON.parse reads a number token exactly when it is an integer of at most
 *   2^53 - 1 in magnitude; firstInexactNumber refuses every other token
 *   from the text before JSON.parse could round it.
 *
 * test/runtime/money.test.ts checks the bound and, by property, that a body
 * is accepted only when its exact sum (BigInt, from the text) is zero.
 */
const DELTA_MAX = BigInt(DELTA_CENTS_MAX);
export const IDEMPOTENCY_KEY_LENGTH_MAX = 200;

export class BadRequest extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 413 | 422 | 503,
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

/** Built once: a Schema decoder is a closure over its AST, rebuilding it per request costs more than the decode. */
export const decodeBody = Schema.decodeUnknownSync(BodySchema);

/**
 * The body in the shape BodySchema accepts, checked by hand: every request the bench sends takes this path, and the
 * Schema (whose messages say what is wrong) only sees bodies this refuses, so an accepted body is exactly one the
 * Schema accepts (`test/runtime/transfer.test.ts` checks both agree). null: not that shape.
 */
export function plainBody(json: unknown): typeof BodySchema.Type | null {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  let ops: unknown = undefined;
  for (const k in json) {
    const v = (json as Record<string, unknown>)[k];
    if (k === "ops") ops = v;
    else if (k === "idempotency_key" || k === "protocol") {
      if (typeof v !== "string") return null;
    } else return null;
  }
  if (!Array.isArray(ops)) return null;
  for (const op of ops as unknown[]) {
    if (typeof op !== "object" || op === null || Array.isArray(op)) return null;
    let n = 0;
    for (const k in op) {
      const v = (op as Record<string, unknown>)[k];
      if (k === "shard_id") {
        if (typeof v !== "string") return null;
      } else if (k === "account_id") {
        if (typeof v !== "number" || !Number.isSafeInteger(v)) return null;
      } else if (k === "delta") {
        if (typeof v !== "string" && typeof v !== "number") return null;
      } else return null;
      n++;
    }
    if (n !== 3) return null;
  }
  return json as typeof BodySchema.Type;
}

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
  /** Why the account takes no transfer now (not open: runtime/banking.ts), or null; refused with 409. */
  refusal?(shard: ShardId, account: number): string | null;
  /** Whether what the catalog knows of the account may be stale (with `deferMissing`, it is asked again). */
  stale?(shard: ShardId, account: number): boolean;
}

/** A request body as JSON whose every number is exact (firstInexactNumber); BadRequest(400) otherwise. */
export function parseExactJson(text: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BadRequest(400, `malformed JSON: ${(e as Error).message}`);
  }
  const inexact = firstInexactNumber(text);
  if (inexact !== null) throw new BadRequest(400, inexact);
  return json;
}

/** Throws BadRequest with a message that says what is wrong. */
/**
 * With `deferRefusal`, an account that takes no transfer now (AccountCatalog.refusal) does not throw: the first
 * such refusal comes back as `refusal` (the server first checks whether the request is the retry of a transfer its
 * idempotency key already ran: that one is answered as it was, whatever the accounts' state since).
 *
 * With `deferMissing`, an account the catalog does not know (or knows stale) does not throw: they come back as
 * `missing`, for the caller to ask their shards (runtime/accounts.ts `lookup`) and decode again with what the shards
 * said (`AccountCatalog` of the answer, without `deferMissing`). The decode stays synchronous, so the caller's
 * final checks and its hold of the accounts run in one turn of the event loop (runtime/server.ts runHeldTransfer).
 */
export function decodeTransfer(
  text: string,
  catalog: AccountCatalog,
  defaultProtocol: ProtocolName = DEFAULT_PROTOCOL,
  opts: { deferRefusal?: boolean; deferMissing?: boolean } = {},
): TransferRequest & { refusal?: string; missing?: Array<{ shard: ShardId; account: number }> } {
  const json = parseExactJson(text);
  let body: typeof BodySchema.Type;
  try {
    body = plainBody(json) ?? decodeBody(json, { onExcessProperty: "error" });
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
  const ops: CentsOp[] = [];
  let refusal: string | undefined;
  const missing: Array<{ shard: ShardId; account: number }> = [];
  let sum = 0n;
  body.ops.forEach((op, i) => {
    const at = `ops[${i}]`;
    const cents = centsOf(op.delta, `${at}.delta`);
    if (!catalog.shards.includes(op.shard_id)) {
      throw new BadRequest(422, `${at}.shard_id: unknown shard ${JSON.stringify(op.shard_id)} (shards: ${catalog.shards.join(", ")})`);
    }
    const valid = Number.isSafeInteger(op.account_id) && op.account_id > 0;
    const exists = valid ? catalog.hasAccount(op.shard_id, op.account_id) : false;
    if (valid && opts.deferMissing === true && (exists !== true || catalog.stale?.(op.shard_id, op.account_id) === true)) {
      missing.push({ shard: op.shard_id, account: op.account_id });
      ops.push({ shard: op.shard_id, account: op.account_id, cents });
      sum += cents;
      return;
    }
    if (exists === null) throw new BadRequest(503, `${op.shard_id} has not answered since the server started; retry shortly`);
    if (!exists) throw new BadRequest(422, `${at}.account_id: no account ${op.account_id} on ${op.shard_id}`);
    const refused = catalog.refusal?.(op.shard_id, op.account_id) ?? null;
    if (refused !== null) {
      if (opts.deferRefusal !== true) throw new BadRequest(409, `${at}: ${refused}`);
      refusal ??= `${at}: ${refused}`;
    }
    ops.push({ shard: op.shard_id, account: op.account_id, cents });
    sum += cents;
  });
  if (sum !== 0n) throw new BadRequest(422, `the deltas sum to ${formatCents(sum)}, not zero: a transfer moves money, it never creates or destroys it`);
  const branches = groupBranches(ops);
  if (branches.length === 0) throw new BadRequest(422, "the ops cancel out on every account: nothing to transfer");
  return {
    branches,
    protocol: protocol as ProtocolName,
    protocol_in_body: (body.protocol ?? null) as ProtocolName | null,
    ...(key !== undefined ? { idempotency_key: key } : {}),
    ...(refusal !== undefined ? { refusal } : {}),
    ...(missing.length > 0 ? { missing } : {}),
  };
}

/** One op of a request in exact cents, before merging. */
export interface CentsOp {
  readonly shard: ShardId;
  readonly account: number;
  readonly cents: bigint;
}

/**
 * Ops merged per account (in bigint) and grouped into one branch per shard,
 * shards by name and accounts by id; an account whose deltas cancel out is
 * dropped. A net change beyond DELTA_CENTS_MAX is refused (422): it would not
 * be a safe integer in Op.delta.
 */
export function groupBranches(ops: readonly CentsOp[]): BranchSpec[] {
  const merged = new Map<ShardId, Map<number, bigint>>();
  for (const op of ops) {
    const accounts = merged.get(op.shard) ?? new Map<number, bigint>();
    accounts.set(op.account, (accounts.get(op.account) ?? 0n) + op.cents);
    merged.set(op.shard, accounts);
  }
  const branches: BranchSpec[] = [];
  for (const shard of [...merged.keys()].sort()) {
    const changed = [...merged.get(shard)!].filter(([, net]) => net !== 0n).sort(([a], [b]) => a - b);
    for (const [account, net] of changed) {
      if (net > DELTA_MAX || net < -DELTA_MAX) {
        throw new BadRequest(422, `account ${account} on ${shard} changes by ${formatCents(net)} in this transfer, beyond the limit of ${formatCents(DELTA_MAX)} per account: split the transfer`);
      }
    }
    if (changed.length > 0) branches.push({ shard, ops: changed.map(([account, net]): Op => ({ account, delta: Number(net) })) });
  }
  return branches;
}

/** A decimal amount: any number of digits before the point (leading zeros allowed), at most two after. */
const DECIMAL = /^(-?)(\d+)(?:\.(\d{1,2}))?$/;
/** Digits of the limit's whole units: an amount with more (leading zeros aside) is beyond it, and is refused before BigInt reads it. */
const UNITS_DIGITS_MAX = String(DELTA_MAX / 100n).length;

/** A delta as exact integer cents: a JSON integer is cents, a string is a decimal amount with at most two decimals. */
export function centsOf(delta: string | number, at: string): bigint {
  const beyond = () => new BadRequest(400, `${at}: ${JSON.stringify(delta)} is beyond the limit of ${DELTA_CENTS_MAX} cents (${formatCents(DELTA_MAX)}) either way`);
  if (typeof delta === "number") {
    // firstInexactNumber let only integers up to 2^53 - 1 through to JSON.parse, which reads those exactly.
    if (!Number.isSafeInteger(delta)) throw new BadRequest(400, `${at}: ${delta} is not an integer number of cents`);
    const cents = BigInt(delta);
    if (cents > DELTA_MAX || cents < -DELTA_MAX) throw beyond();
    return cents;
  }
  const m = DECIMAL.exec(delta);
  if (m === null) {
    throw new BadRequest(400, `${at}: ${JSON.stringify(delta)} is not an amount: write a decimal string with at most two decimals ("-50.00", "12.5", "7") or integer cents (-5000)`);
  }
  const units = m[2]!.replace(/^0+(?=\d)/, "");
  if (units.length > UNITS_DIGITS_MAX) throw beyond();
  const abs = BigInt(units) * 100n + BigInt((m[3] ?? "").padEnd(2, "0"));
  if (abs > DELTA_MAX) throw beyond();
  return m[1] === "-" ? -abs : abs;
}

/** Cents as a decimal amount: -1n is "-0.01". Exact for any size. */
export function formatCents(cents: bigint): string {
  const abs = cents < 0n ? -cents : cents;
  return `${cents < 0n ? "-" : ""}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

const SAFE_MAX_DIGITS = String(Number.MAX_SAFE_INTEGER);

/**
 * Why the first number token of a JSON text JSON.parse would not read
 * exactly as an integer, or null: a fraction or an exponent (1.0 and 1e2
 * would become integers, 0.1 a float), or an integer beyond 2^53 - 1 in
 * magnitude (it would be rounded). The text is the only place left to see
 * what the client wrote. Expects valid JSON (run after JSON.parse accepted it).
 */
export function firstInexactNumber(text: string): string | null {
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
      if (/[.eE]/.test(token)) {
        return `JSON number ${token} is not an integer: amounts are integer cents (e.g. -5000) or decimal strings (e.g. "-50.00")`;
      }
      const digits = token.startsWith("-") ? token.slice(1) : token;
      if (digits.length > SAFE_MAX_DIGITS.length || (digits.length === SAFE_MAX_DIGITS.length && digits > SAFE_MAX_DIGITS)) {
        return `JSON number ${token} is beyond ${Number.MAX_SAFE_INTEGER} (2^53 - 1) in magnitude and cannot be read exactly; amounts are at most ${DELTA_CENTS_MAX} cents (${formatCents(DELTA_MAX)}) either way`;
      }
      continue;
    }
    i++;
  }
  return null;
}
