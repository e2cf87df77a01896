/**
 * The banking API around the coordinator (docs/operations.md, "Accounts and
 * history"):
 *
 *   POST /accounts                          open an account with an opening balance moved from a funding account
 *   POST /accounts/:shard/:id/close         close an account at zero balance
 *   GET  /accounts?shard=&limit=&cursor=    list a shard's accounts
 *   GET  /accounts/:shard/:id/history       an account's history rows, newest first
 *   GET  /transactions?account=shard:id     the transactions that touched an account, every row of each
 *
 * Opening an account never creates money. The row is inserted at balance 0
 * in state 'opening', with the client's Idempotency-Key, the SHA-256 of the
 * request and, before anything runs, the id of its opening transfer
 * (`opening_tx`); then that transfer (funding -X, new account +X) runs
 * through the coordinator like any other (2PC or parallel commit). The
 * account takes no other transfer until it is 'open' (runtime/accounts.ts
 * `refusal`, 409), which it becomes only once the opening transfer
 * committed; an aborted opening leaves it 'failed' at 0.
 *
 * Crash safety: the row is the idempotency record, on the shard. A crash
 * after the insert leaves an empty 'opening' row (0 cents: nothing minted);
 * a retry with the key claims it and runs the transfer. A crash after
 * `opening_tx` was written leaves a transaction whose outcome durable state
 * tells (runtime/durable.ts `settledOutcome`, with the settle fence: nothing
 * found of a 2PC transaction is aborted, presumed abort), so a retry never
 * runs a second opening transfer: it settles the first, marks the account
 * open or failed and answers as the first request would have. A crash after
 * the commit and before the row says 'open' (or an opening answered in
 * doubt) leaves the money in an account still counted in every total; the
 * retry, or `settleOpenings` (at boot, then every resolver interval), marks
 * it open or failed. An opening the engine refuses (503) clears its
 * `opening_tx`: the retry runs it. One Idempotency-Key names one opening on
 * every shard (`claimRow`, `keyElsewhere`).
 *
 * Closing: the account is marked 'closing' in this process's catalog (new
 * transfers naming it get 409), the transfers that passed that check before
 * and still run are waited for (runtime/accounts.ts `hold`: from the decode,
 * in the same turn, to the outcome; bounded), then one local transaction locks the account's row
 * (SELECT ... FOR UPDATE waits for any XA branch still holding it), checks
 * balance 0, no speculative credit pending and no speculative debit that
 * could still be compensated into it, and sets 'closed'.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHash } from "node:crypto";
import mysql from "mysql2";
import { Schema } from "effect";
import type { BranchSpec, Outcome, ShardId, TxId } from "../spec/kernel/effects.ts";
import type { Accounts } from "./accounts.ts";
import type { XaMysql } from "./adapters/xa-mysql.ts";
import type { TxlogEtcd } from "./adapters/txlog-etcd.ts";
import type { PooledConnection, ShardPool } from "./adapters/mysql-pool.ts";
import { DurableUnavailable, settledOutcome, TX_ID } from "./durable.ts";
import { NotReady, Overloaded, ShuttingDown, type Engine, type ProtocolName } from "./engine.ts";
import type { TxlogStore } from "./adapters/ports.ts";
import { BadRequest, centsOf, formatCents, groupBranches, parseExactJson } from "./transfer.ts";
import { idempotencyKeyOf } from "./idempotency.ts";
import { toCents } from "./cluster/schema.ts";
import { DEFAULT_PROTOCOL, REGISTRY } from "../spec/protocols/registry.ts";
import { groupByTx, HistoryReader, HistoryUnavailable, parseCursor, parseLimit } from "./history.ts";

export type Send = (res: ServerResponse, route: string, status: number, body: unknown, headers?: Record<string, string>) => void;

export interface BankingDeps {
  readonly engine: Engine;
  readonly xa: XaMysql;
  readonly txlog: TxlogEtcd;
  readonly accounts: Accounts;
  readonly send: Send;
  readonly readBody: (req: IncomingMessage) => Promise<string>;
  /**
   * Where the outcome of `tx` is read and fenced: the namespace of the node that ran it and the epoch this process
   * holds of that node (runtime/server.ts durableFor, as the idempotency path uses). Absent: this node's own.
   */
  readonly durableFor?: (tx: TxId) => { readonly log: TxlogStore; readonly epoch: () => number | null };
}

/**
 * Protocols an opening may use: those of XA shards (2PC, parallel commit), whose history rows are visible only once
 * final. The speculative path would hold the opening credit as pending until its release.
 */
export const OPENING_PROTOCOLS: readonly string[] = REGISTRY.filter((p) => p.needs === "xa").map((p) => p.name);
/** How long a close waits for the transactions running when it started. */
const CLOSE_WAIT_MS = 5_000;
/** How long an opening waits for its transfer's outcome (the coordinator replies well before: vote timeout). */
const OPEN_WAIT_MS = 30_000;
const ID_MAX = Number.MAX_SAFE_INTEGER;
/** Bound on openings settled per shard in one round (at boot, then every resolver interval). */
const SETTLE_BATCH = 100;
/**
 * Ids from here up are taken only when a request names them (account_id): the allocator gives the smallest id above
 * every id below it, so an explicit id up there never exhausts allocation; an explicit id below it that leaves no id
 * above it makes the allocator look for the smallest id free on every shard (`freeId`).
 */
export const EXPLICIT_ID_FLOOR = 2 ** 52;
/** Rounds of `freeId` over the shards before 503 (each round moves past ids taken on some shard). */
const FREE_ID_ROUNDS = 16;

const OpenBody = Schema.Struct({
  shard_id: Schema.String,
  account_id: Schema.optional(Schema.Int),
  opening_balance: Schema.Union([Schema.String, Schema.Number]),
  funding: Schema.optional(Schema.Struct({ shard_id: Schema.String, account_id: Schema.Int })),
  protocol: Schema.optional(Schema.String),
  idempotency_key: Schema.optional(Schema.String),
});

/** What a retry with the same Idempotency-Key must repeat: the SHA-256 of the opening's decoded request (accounts.opening_request). */
export function openingFingerprint(o: { shard: ShardId; account_id: number | null; cents: bigint; funding: { shard: ShardId; account: number } | null; protocol: string }): string {
  return createHash("sha256")
    .update(JSON.stringify({ shard: o.shard, account_id: o.account_id, cents: o.cents.toString(), funding: o.funding, protocol: o.protocol }))
    .digest("hex");
}

/** The route label of a banking path, or null when the path is not one of the banking API. */
export function bankingRoute(path: string): string | null {
  if (path === "/accounts") return "/accounts";
  if (path === "/transactions") return "/transactions";
  if (/^\/accounts\/[^/]+\/[^/]+\/close$/.test(path)) return "/accounts/:shard/:id/close";
  if (/^\/accounts\/[^/]+\/[^/]+\/history$/.test(path)) return "/accounts/:shard/:id/history";
  return null;
}

const ACCOUNT_ID = /^[1-9]\d{0,15}$/;

function accountId(text: string, at: string): number {
  if (!ACCOUNT_ID.test(text) || Number(text) > ID_MAX) throw new BadRequest(400, `${at}: ${JSON.stringify(text)} is not an account id (a positive integer up to ${ID_MAX})`);
  return Number(text);
}

interface AccountRow {
  id: string;
  balance: string;
  status: "open" | "opening" | "closed" | "failed";
  opening_tx: string | null;
  opening_protocol?: string | null;
  opening_request: string | null;
}

export class Banking {
  readonly history: HistoryReader;
  /** Opening transfers between the write of their id and the engine taking them (bounded by the requests in flight). */
  private readonly claiming = new Set<TxId>();
  private settleTimer: NodeJS.Timeout | null = null;
  /** Per shard, the id after which the next settle round reads. */
  private readonly settleAfter = new Map<ShardId, number>();
  private stopped = false;

  constructor(private readonly d: BankingDeps) {
    this.history = new HistoryReader((s) => d.xa.pool(s));
  }

  private pool(shard: ShardId): ShardPool {
    return this.d.xa.pool(shard);
  }

  /** A shard named in a body or query (422), or in the path (`status` 404, as GET /accounts/:shard/:id). */
  private shard(text: string, at: string, status: 404 | 422 = 422): ShardId {
    if (!this.d.xa.shards.includes(text)) throw new BadRequest(status, `${at}: unknown shard ${JSON.stringify(text)} (shards: ${this.d.xa.shards.join(", ")})`);
    return text;
  }

  /** Answers the request when its path is the banking API's; false otherwise. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const route = bankingRoute(path);
    if (route === null) return false;
    const post = route === "/accounts/:shard/:id/close" || (route === "/accounts" && req.method === "POST");
    if (post && req.method !== "POST") {
      this.d.send(res, route, 405, { error: `use POST ${path}` }, { Allow: "POST" });
      return true;
    }
    if (!post && req.method !== "GET") {
      this.d.send(res, route, 405, { error: `${req.method} is not allowed on ${path}` }, { Allow: route === "/accounts" ? "GET, POST" : "GET" });
      return true;
    }
    try {
      if (route === "/accounts" && req.method === "POST") await this.open(req, res);
      else if (route === "/accounts") await this.list(res, url);
      else if (route === "/transactions") await this.transactions(res, url);
      else {
        const m = /^\/accounts\/([^/]+)\/([^/]+)\/(close|history)$/.exec(path)!;
        const shard = this.shard(decodeURIComponent(m[1]!), "shard", 404);
        const id = accountId(m[2]!, "account id");
        if (m[3] === "close") await this.close(res, shard, id);
        else await this.accountHistory(res, url, shard, id);
      }
    } catch (e) {
      if (e instanceof BadRequest) this.d.send(res, route, e.status, { error: e.message }, e.status === 503 ? { "Retry-After": "1" } : {});
      else if (e instanceof RangeError) this.d.send(res, route, 400, { error: e.message });
      else if (e instanceof HistoryUnavailable || e instanceof DurableUnavailable) this.d.send(res, route, 503, { error: e.message }, { "Retry-After": "1" });
      else if (e instanceof Overloaded || e instanceof ShuttingDown || e instanceof NotReady) this.d.send(res, route, 503, { error: e.message }, { "Retry-After": "1" });
      else throw e;
    }
    return true;
  }

  private async query<T>(shard: ShardId, sql: string): Promise<T> {
    const r = await this.pool(shard).run<T>(sql);
    if (!r.ok) {
      if (r.error.fatal) throw new BadRequest(503, `${shard} did not answer: ${r.error.message}`);
      throw new Error(`${shard}: ${r.error.message}`);
    }
    return r.value;
  }

  // ---------------------------------------------------------------- listing and history

  private async list(res: ServerResponse, url: URL): Promise<void> {
    const shardText = url.searchParams.get("shard");
    if (shardText === null) throw new BadRequest(400, `GET /accounts needs ?shard= (shards: ${this.d.xa.shards.join(", ")})`);
    const shard = this.shard(shardText, "shard");
    const limit = parseLimit(url.searchParams.get("limit"));
    const cursorText = url.searchParams.get("cursor");
    const after = cursorText === null || cursorText === "" ? 0 : accountId(cursorText, "cursor");
    const rows = await this.query<Array<AccountRow & { pending: string }>>(
      shard,
      `SELECT a.id, a.balance, a.status, COALESCE(p.cents, 0) AS pending FROM accounts a LEFT JOIN speculative_pending p ON p.account_id = a.id WHERE a.id > ${after} ORDER BY a.id LIMIT ${limit + 1}`,
    );
    const page = rows.slice(0, limit).map((r) => ({
      account_id: Number(r.id),
      status: this.d.accounts.state(shard, Number(r.id)) === "closing" ? "closing" : r.status,
      balance_cents: toCents(r.balance).toString(),
      balance: formatCents(toCents(r.balance)),
      pending_cents: toCents(r.pending).toString(),
    }));
    this.d.send(res, "/accounts", 200, { shard_id: shard, accounts: page, next_cursor: rows.length > limit ? String(page[page.length - 1]!.account_id) : null });
  }

  private async accountHistory(res: ServerResponse, url: URL, shard: ShardId, id: number): Promise<void> {
    const limit = parseLimit(url.searchParams.get("limit"));
    const cursor = parseCursor(url.searchParams.get("cursor"));
    if (!(await this.d.accounts.exists(shard, id))) throw new BadRequest(404, `no account ${id} on ${shard}`);
    const page = await this.history.accountPage(shard, id, limit, cursor);
    this.d.send(res, "/accounts/:shard/:id/history", 200, {
      shard_id: shard,
      account_id: id,
      rows: page.rows.map((r) => ({ tx: r.tx, delta_cents: r.delta_cents, commit_ts: r.commit_ts, seq: r.seq, at: r.at, credential: r.credential, final: r.final })),
      next_cursor: page.next,
    });
  }

  private async transactions(res: ServerResponse, url: URL): Promise<void> {
    const account = url.searchParams.get("account");
    const m = account === null ? null : /^([^:]+):(.+)$/.exec(account);
    if (m === null) throw new BadRequest(400, "GET /transactions needs ?account=<shard>:<id> (e.g. shard-a:1)");
    const shard = this.shard(m[1]!, "account");
    const id = accountId(m[2]!, "account");
    const limit = parseLimit(url.searchParams.get("limit"));
    const cursor = parseCursor(url.searchParams.get("cursor"));
    if (!(await this.d.accounts.exists(shard, id))) throw new BadRequest(404, `no account ${id} on ${shard}`);
    const page = await this.history.accountPage(shard, id, limit, cursor);
    const order = page.rows.map((r) => r.tx);
    const rows = await this.history.rowsOf(this.d.xa.shards, order);
    this.d.send(res, "/transactions", 200, { account: `${shard}:${id}`, transactions: groupByTx(order, rows), next_cursor: page.next });
  }

  // ---------------------------------------------------------------- opening

  private decodeOpen(text: string, header: readonly string[] | undefined) {
    const json = parseExactJson(text);
    let body: typeof OpenBody.Type;
    try {
      body = Schema.decodeUnknownSync(OpenBody)(json, { onExcessProperty: "error" });
    } catch (e) {
      throw new BadRequest(
        400,
        `invalid body: ${(e as Error).message.replaceAll("\n", "")}; expected {"shard_id":"shard-b","account_id"?:123,"opening_balance":"100.00","funding":{"shard_id":"shard-a","account_id":1},"protocol"?:${OPENING_PROTOCOLS.map((p) => JSON.stringify(p)).join("|")}}`,
      );
    }
    const key = idempotencyKeyOf(header, body.idempotency_key);
    if (key === undefined) throw new BadRequest(400, "POST /accounts needs an Idempotency-Key header (or idempotency_key in the body): a retry must not open a second account");
    const shard = this.shard(body.shard_id, "shard_id");
    const cents = centsOf(body.opening_balance, "opening_balance");
    if (cents < 0n) throw new BadRequest(422, `opening_balance ${formatCents(cents)} is negative`);
    if (body.account_id !== undefined && (!Number.isSafeInteger(body.account_id) || body.account_id < 1)) throw new BadRequest(400, `account_id ${body.account_id} is not a positive integer`);
    const protocol = body.protocol ?? (OPENING_PROTOCOLS.includes(DEFAULT_PROTOCOL) ? DEFAULT_PROTOCOL : OPENING_PROTOCOLS[0]!);
    if (!OPENING_PROTOCOLS.includes(protocol)) {
      throw new BadRequest(400, `protocol ${JSON.stringify(protocol)}: an opening runs with ${OPENING_PROTOCOLS.join(" or ")} (the speculative path would hold the opening credit as pending)`);
    }
    let funding: { shard: ShardId; account: number } | null = null;
    if (cents > 0n) {
      if (body.funding === undefined) throw new BadRequest(422, "an opening balance above zero is moved from a funding account: give funding {shard_id, account_id}");
      const fs = this.shard(body.funding.shard_id, "funding.shard_id");
      if (!Number.isSafeInteger(body.funding.account_id) || body.funding.account_id < 1) throw new BadRequest(422, `funding: no account ${body.funding.account_id} on ${fs}`);
      funding = { shard: fs, account: body.funding.account_id };
    }
    const fingerprint = openingFingerprint({ shard, account_id: body.account_id ?? null, cents, funding, protocol });
    return { key, shard, account: body.account_id ?? null, cents, funding, protocol, fingerprint };
  }

  private async open(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ct = req.headers["content-type"];
    if (ct !== undefined && !/^application\/json\b/i.test(ct)) throw new BadRequest(400, `Content-Type ${ct}: send application/json`);
    const o = this.decodeOpen(await this.d.readBody(req), req.headersDistinct["idempotency-key"]);
    if (o.funding !== null) {
      // This node's cache, else the funding account's shard (another node may have opened it).
      if (!(await this.d.accounts.exists(o.funding.shard, o.funding.account))) throw new BadRequest(422, `funding: no account ${o.funding.account} on ${o.funding.shard}`);
      const refused = this.d.accounts.refusal(o.funding.shard, o.funding.account);
      if (refused !== null) throw new BadRequest(409, `funding: ${refused}`);
    }
    // The funding account was checked open in this turn: a close of it waits for this opening.
    const release = this.d.accounts.hold(o.funding === null ? [] : [o.funding]);
    try {
      await this.openDecoded(o, res);
    } finally {
      release();
    }
  }

  private async openDecoded(o: ReturnType<Banking["decodeOpen"]>, res: ServerResponse): Promise<void> {
    if (o.funding !== null && o.funding.shard === o.shard && o.funding.account === o.account) throw new BadRequest(422, "the funding account is the account being opened");
    const row = await this.claimRow(o);
    if (row.opening_request !== o.fingerprint) {
      throw new BadRequest(409, `Idempotency-Key ${JSON.stringify(o.key)} opened account ${row.id} on ${o.shard} with another request: a key names one opening`);
    }
    const id = Number(row.id);
    // The account's address on every answer that names it (201 for an opening made now, funded or not; 200 replayed).
    const location = { Location: `/accounts/${encodeURIComponent(o.shard)}/${id}` };
    const answer = (status: number, outcome: Outcome | null, extra: Record<string, unknown> = {}) =>
      this.d.send(res, "/accounts", status, { shard_id: o.shard, account_id: id, opening_balance_cents: o.cents.toString(), opening_tx: row.opening_tx, ...(outcome !== null ? { outcome } : {}), ...extra }, location);
    if (row.status === "open") return answer(row.fresh === true ? 201 : 200, null, { status: "open", replayed: row.fresh !== true });
    if (row.status === "failed") return answer(409, null, { status: "failed", error: "the opening transfer aborted: open the account again with another key" });
    if (row.status === "closed") return answer(409, null, { status: "closed", error: `account ${id} on ${o.shard} was opened with this key and is closed since` });
    let tx = row.opening_tx;
    if (tx === null) {
      // Claim the opening: the transfer's id is durable in the row before the transfer may run.
      // This node's id (<node>.<uuid>): its resolver and no other node's settles the opening if this process dies.
      tx = this.d.engine.newTx();
      // Until the engine took it (or refused it), this process's settler leaves the opening alone (`settleOpenings`).
      this.claiming.add(tx);
      let run: Promise<Outcome>;
      try {
        const r = await this.query<{ affectedRows: number }>(o.shard, `UPDATE accounts SET opening_tx = '${tx}' WHERE id = ${id} AND status = 'opening' AND opening_tx IS NULL`);
        if (r.affectedRows !== 1) return answer(202, { status: "in_doubt" }, { status: "opening", error: "another request with this key is opening it; retry" });
        row.opening_tx = tx;
        try {
          run = this.runOpening(o, id, tx);
        } catch (e) {
          if (!(e instanceof Overloaded || e instanceof ShuttingDown || e instanceof NotReady)) throw e;
          // Refused before anything ran: the claim is undone so that the retry the 503 asks for runs the opening.
          // (Should this UPDATE fail too, the retry finds nothing of the transfer: presumed abort, 'failed'.)
          await this.pool(o.shard).run(`UPDATE accounts SET opening_tx = NULL WHERE id = ${id} AND status = 'opening' AND opening_tx = '${tx}'`);
          throw e;
        }
      } finally {
        this.claiming.delete(tx);
      }
      return this.finishOpening(o.shard, id, tx, await run, answer);
    }
    // A request with this key ran before: settle its transfer, never run another.
    const outcome = await this.outcomeOf(tx, o);
    return this.finishOpening(o.shard, id, tx, outcome, answer, true);
  }

  /** The account's row for this key: found, or inserted now at 0 in state 'opening' (or 'open' when the opening balance is 0). */
  private async claimRow(o: ReturnType<Banking["decodeOpen"]>): Promise<AccountRow & { fresh?: boolean }> {
    const find = async () => {
      // One key names one opening whatever shard it named: the key is looked for on every shard (one indexed read each).
      for (const s of this.d.xa.shards) {
        const r = (await this.query<AccountRow[]>(s, `SELECT id, balance, status, opening_tx, opening_request FROM accounts WHERE opening_key = ${mysql.escape(o.key)}`))[0];
        if (r === undefined) continue;
        if (s !== o.shard) throw new BadRequest(409, `Idempotency-Key ${JSON.stringify(o.key)} opened account ${r.id} on ${s}: a key names one opening`);
        return r;
      }
      return undefined;
    };
    const found = await find();
    if (found !== undefined) return found;
    const status = o.cents === 0n ? "open" : "opening";
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = o.account ?? (await this.nextId());
      const r = await this.pool(o.shard).run<unknown>(
        // No balance: the shard user may not insert one (runtime/cluster/schema.ts); the column's default is 0.
        `INSERT INTO accounts (id, status, opening_key, opening_request, opening_protocol) VALUES (${id}, '${status}', ${mysql.escape(o.key)}, '${o.fingerprint}', '${o.protocol}')`,
      );
      if (r.ok) {
        this.d.accounts.added(o.shard, id, status);
        await this.keyElsewhere(o, id);
        return { id: String(id), balance: "0", status, opening_tx: null, opening_request: o.fingerprint, fresh: true };
      }
      if (r.error.errno !== 1062) throw new BadRequest(503, `${o.shard} did not answer: ${r.error.message}`);
      // Duplicate: this key (a concurrent request with it), or the id.
      const again = await find();
      if (again !== undefined) return again;
      if (o.account !== null) throw new BadRequest(409, `account ${o.account} exists on ${o.shard}`);
    }
    throw new BadRequest(503, "could not allocate an account id (concurrent openings); retry");
  }

  /**
   * After inserting the row of key `o.key` on `o.shard`: when another shard holds the key too (two requests with the
   * key naming two shards at once; the unique key is per shard), this row steps back: 'failed' before anything ran
   * on it, and 409. Of two such requests the later always sees the earlier, so at most one opening runs per key
   * (both may step back: the client then opens again with another key).
   */
  private async keyElsewhere(o: ReturnType<Banking["decodeOpen"]>, id: number): Promise<void> {
    for (const s of this.d.xa.shards) {
      if (s === o.shard) continue;
      const r = await this.query<Array<{ id: string }>>(s, `SELECT id FROM accounts WHERE opening_key = ${mysql.escape(o.key)}`);
      if (r[0] === undefined) continue;
      await this.query(o.shard, `UPDATE accounts SET status = 'failed' WHERE id = ${id} AND opening_key = ${mysql.escape(o.key)} AND opening_tx IS NULL`);
      this.d.accounts.setState(o.shard, id, "failed");
      throw new BadRequest(409, `Idempotency-Key ${JSON.stringify(o.key)} is opening account ${r[0].id} on ${s}: a key names one opening`);
    }
  }

  /**
   * One more than the largest id below EXPLICIT_ID_FLOOR on any shard (ids are global by convention:
   * runtime/cluster/schema.ts); when that is no id below the floor (an explicit id took its top), the smallest id
   * free on every shard.
   */
  private async nextId(): Promise<number> {
    let max = 0;
    for (const s of this.d.xa.shards) {
      const r = await this.query<Array<{ m: string | null }>>(s, `SELECT MAX(id) AS m FROM accounts WHERE id < ${EXPLICIT_ID_FLOOR}`);
      max = Math.max(max, Number(r[0]?.m ?? 0));
    }
    if (max + 1 < EXPLICIT_ID_FLOOR) return max + 1;
    return this.freeId();
  }

  /** The smallest id free on every shard (bounded rounds: each asks every shard for its smallest free id from a candidate). */
  private async freeId(): Promise<number> {
    let c = 1;
    for (let round = 0; round < FREE_ID_ROUNDS; round++) {
      let next = c;
      for (const s of this.d.xa.shards) {
        const r = await this.query<Array<{ f: string | null }>>(
          s,
          `SELECT IF(NOT EXISTS (SELECT 1 FROM accounts WHERE id = ${next}), ${next}, (SELECT MIN(a.id) + 1 FROM accounts a WHERE a.id >= ${next} AND NOT EXISTS (SELECT 1 FROM accounts b WHERE b.id = a.id + 1))) AS f`,
        );
        next = Number(r[0]?.f ?? next);
      }
      if (next > ID_MAX) break;
      if (next === c) return c;
      c = next;
    }
    throw new BadRequest(503, "no free account id found (ids taken on some shard at every candidate); retry");
  }

  /** Submits the opening transfer (throws synchronously when the engine refuses it) and answers its outcome. */
  private runOpening(o: ReturnType<Banking["decodeOpen"]>, id: number, tx: TxId): Promise<Outcome> {
    const branches: BranchSpec[] = groupBranches([
      { shard: o.funding!.shard, account: o.funding!.account, cents: -o.cents },
      { shard: o.shard, account: id, cents: o.cents },
    ]);
    const run = this.d.engine.submit(branches, o.protocol as ProtocolName, tx);
    return withTimeout(run.outcome, OPEN_WAIT_MS, { status: "in_doubt" } as Outcome);
  }

  /** The log and epoch that settle `tx`: its node's (several coordinators), else this node's. */
  private routeOf(tx: TxId): { readonly log: TxlogStore; readonly epoch: () => number | null; readonly killFenced?: boolean } {
    if (this.d.durableFor !== undefined) return this.d.durableFor(tx);
    return { log: this.d.txlog, epoch: () => this.d.engine.epoch };
  }

  /** The outcome of an opening transfer run before (by this process or one before it). */
  private async outcomeOf(tx: TxId, o: { shard: ShardId; funding: { shard: ShardId } | null; protocol: string }): Promise<Outcome> {
    const known = this.d.engine.transaction(tx);
    if (known !== undefined && known.outcome !== null && known.outcome !== undefined && known.outcome.status !== "in_doubt") return known.outcome;
    if (this.d.engine.isRunning(tx)) return { status: "in_doubt" } as Outcome;
    const shards = [...new Set([o.funding!.shard, o.shard])].sort();
    const settled = await settledOutcome(tx, { protocol: o.protocol, shards }, { xa: this.d.xa, ...this.routeOf(tx) });
    return settled === "probe" ? ({ status: "in_doubt" } as Outcome) : settled;
  }

  private async finishOpening(shard: ShardId, id: number, tx: TxId, outcome: Outcome, answer: (status: number, outcome: Outcome | null, extra?: Record<string, unknown>) => void, replayed = false): Promise<void> {
    if (outcome.status === "in_doubt") return answer(202, outcome, { status: "opening", replayed, error: "the opening transfer is in doubt; retry with the same key to learn its outcome" });
    const next = outcome.status === "committed" ? "open" : "failed";
    await this.query(shard, `UPDATE accounts SET status = '${next}' WHERE id = ${id} AND status = 'opening' AND opening_tx = '${tx}'`);
    this.d.accounts.setState(shard, id, next);
    if (next === "open") return answer(201, outcome, { status: "open", replayed });
    return answer(409, outcome, { status: "failed", replayed, error: "the opening transfer aborted (the funding account's balance, or a shard): nothing moved" });
  }

  /**
   * Settles openings in the background: at once, then every `everyMs` (the
   * resolver's interval) until `stop`. An opening answered in_doubt is settled
   * here once its transfer is, without waiting for the client's retry.
   */
  startSettling(everyMs: number): void {
    const round = () => {
      if (this.stopped) return;
      void this.settleOpenings()
        .catch((e: unknown) => {
          if (!this.stopped) console.error(`settling account openings: ${(e as Error).message}`);
        })
        .finally(() => {
          if (this.stopped) return;
          this.settleTimer = setTimeout(round, everyMs);
          this.settleTimer.unref();
        });
    };
    round();
  }

  stop(): void {
    this.stopped = true;
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.settleTimer = null;
  }

  /**
   * Settles the openings left 'opening' with a transfer id (answered
   * in_doubt, or a crash between the commit and the row's update): marks them
   * open or failed from durable state. At most SETTLE_BATCH per shard, oldest
   * id first, skipping those still running here; one whose outcome is not
   * final yet (or whose transaction another live node runs: no fence can be
   * taken) stays for a later round. Answers how many were settled.
   */
  async settleOpenings(): Promise<number> {
    let n = 0;
    for (const shard of this.d.xa.shards) {
      // From where the last round stopped, so that openings not final yet never hide those after them.
      const after = this.settleAfter.get(shard) ?? 0;
      const r = await this.pool(shard).run<AccountRow[]>(`SELECT id, opening_tx, opening_protocol FROM accounts WHERE status = 'opening' AND opening_tx IS NOT NULL AND id > ${after} ORDER BY id LIMIT ${SETTLE_BATCH}`);
      if (!r.ok) continue;
      this.settleAfter.set(shard, r.value.length < SETTLE_BATCH ? 0 : Number(r.value[r.value.length - 1]!.id));
      for (const row of r.value) {
        if (this.stopped) return n;
        const tx = row.opening_tx!;
        if (this.claiming.has(tx) || this.d.engine.isRunning(tx)) continue;
        const shards = await this.shardsOf(tx);
        if (shards === null) continue;
        try {
          const protocol = row.opening_protocol ?? DEFAULT_PROTOCOL;
          const outcome = await settledOutcome(tx, { protocol, shards }, { xa: this.d.xa, ...this.routeOf(tx) });
          if (outcome === "probe" || outcome.status === "in_doubt") continue;
          const next = outcome.status === "committed" ? "open" : "failed";
          await this.query(shard, `UPDATE accounts SET status = '${next}' WHERE id = ${Number(row.id)} AND status = 'opening' AND opening_tx = '${tx}'`);
          this.d.accounts.setState(shard, Number(row.id), next);
          n++;
        } catch (e) {
          if (!(e instanceof DurableUnavailable)) throw e;
        }
      }
    }
    return n;
  }

  /** The shards that hold a history row or a prepared branch of `tx`; null when one did not answer. */
  private async shardsOf(tx: TxId): Promise<ShardId[] | null> {
    if (!TX_ID.test(tx)) return null; // the xid text durable.ts reads (node ids carry a dot)
    const out: ShardId[] = [];
    for (const s of this.d.xa.shards) {
      const r = await this.pool(s).run<Array<{ n: string }>>(`SELECT COUNT(*) AS n FROM history WHERE xid = '${tx}'`);
      if (!r.ok) return null;
      if (Number(r.value[0]!.n) > 0) out.push(s);
    }
    // Nothing committed anywhere: every shard may hold a prepared branch; settle reads them all.
    return out.length > 0 ? out : [...this.d.xa.shards];
  }

  // ---------------------------------------------------------------- closing

  private async close(res: ServerResponse, shard: ShardId, id: number): Promise<void> {
    const route = "/accounts/:shard/:id/close";
    // This node's cache, else the shard (asked again when the cache says 'opening': another node may have opened it).
    if (!(await this.d.accounts.exists(shard, id))) throw new BadRequest(404, `no account ${id} on ${shard}`);
    const st = this.d.accounts.state(shard, id);
    if (st === "closed") return this.d.send(res, route, 200, { shard_id: shard, account_id: id, status: "closed", replayed: true });
    if (st !== "open") throw new BadRequest(409, this.d.accounts.refusal(shard, id) ?? `account ${id} on ${shard} is ${st}`);
    // From now on transfers naming it are refused; those already past that check are running: wait for them.
    this.d.accounts.setState(shard, id, "closing");
    let closed = false;
    try {
      const deadline = Date.now() + CLOSE_WAIT_MS;
      while (this.d.accounts.holders(shard, id) > 0) {
        if (Date.now() > deadline) throw new BadRequest(409, `transfers are still in flight after ${CLOSE_WAIT_MS / 1000} s; retry the close`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const why = await this.closeRow(shard, id);
      if (why !== null) throw new BadRequest(409, why);
      closed = true;
      this.d.send(res, route, 200, { shard_id: shard, account_id: id, status: "closed" });
    } finally {
      // Not closed here: back to what the shard says (another node may have closed it meanwhile), not to 'open'.
      if (closed) this.d.accounts.setState(shard, id, "closed");
      else {
        this.d.accounts.setState(shard, id, "open");
        await this.d.accounts.lookup([{ shard, account: id }]).catch(() => undefined);
      }
    }
  }

  /** One local transaction: lock the row, check it is empty and settled, close it. Null: closed; else why not. */
  private async closeRow(shard: ShardId, id: number): Promise<string | null> {
    const pool = this.pool(shard);
    const c = await pool.acquire();
    if (c === null) throw new BadRequest(503, `no connection to ${shard}`);
    let ok = false;
    try {
      const q = async <T>(sql: string): Promise<T> => {
        const r = await pool.query<T>(c, sql);
        if (!r.ok) {
          if (r.error.errno === 1205) throw new BadRequest(409, `account ${id} on ${shard} is locked by a transfer in flight (lock wait timeout); retry the close`);
          throw new BadRequest(503, `${shard}: ${r.error.message}`);
        }
        return r.value;
      };
      await q("START TRANSACTION");
      const why = await this.closeChecks(q, shard, id);
      if (why !== null) {
        await q("ROLLBACK");
        ok = true;
        return why;
      }
      await q(`UPDATE accounts SET status = 'closed' WHERE id = ${id}`);
      await q("COMMIT");
      ok = true;
      return null;
    } finally {
      release(pool, c, ok);
    }
  }

  private async closeChecks(q: <T>(sql: string) => Promise<T>, shard: ShardId, id: number): Promise<string | null> {
    const rows = await q<Array<{ balance: string; status: string }>>(`SELECT balance, status FROM accounts WHERE id = ${id} FOR UPDATE`);
    const row = rows[0];
    if (row === undefined) return `no account ${id} on ${shard}`;
    if (row.status !== "open") return `account ${id} on ${shard} is ${row.status}`;
    const balance = toCents(row.balance);
    if (balance !== 0n) return `account ${id} on ${shard} holds ${formatCents(balance)}: only an account at zero is closed (move the money out first)`;
    const pending = await q<Array<{ cents: string }>>(`SELECT cents FROM speculative_pending WHERE account_id = ${id} FOR UPDATE`);
    if (pending[0] !== undefined && toCents(pending[0].cents) !== 0n) return `account ${id} on ${shard} has ${formatCents(toCents(pending[0].cents))} of speculative credits not final yet`;
    // A speculative debit not final yet could be compensated back into the account: its undo row names it in `inverse`.
    const undo = await q<Array<{ inverse: string }>>("SELECT inverse FROM speculative_undo WHERE state = 'undo' LIMIT 10001");
    if (undo.length > 10_000) return `${shard} has more than 10000 speculative branches not final; retry the close`;
    for (const u of undo) {
      const inv = JSON.parse(u.inverse) as Array<{ account: number; delta: number }>;
      if (inv.some((x) => x.account === id)) return `a speculative transfer on account ${id} on ${shard} is not final yet; retry the close`;
    }
    return null;
  }
}

function release(pool: ShardPool, c: PooledConnection, ok: boolean): void {
  if (ok) pool.release(c);
  else pool.discard(c);
}

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((resolve) => (t = setTimeout(() => resolve(fallback), ms)))]).finally(() => clearTimeout(t));
}
