/**
 * Authentication and authorization of the HTTP API (docs/security.md).
 *
 * Credentials are bearer tokens. The server never holds a token, only its
 * SHA-256: the tokens file (`--tokens-file`) has one credential a line,
 *
 *   # name      scopes             sha256 of the token (64 hex)   [not after, ISO 8601]
 *   teller-1    transfer,read      9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
 *   ops         admin,read,metrics 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 2027-01-01T00:00:00Z
 *
 * several at once (rotation: add the new token, move clients, remove the old
 * one; SIGHUP rereads the file). A request's token is hashed and compared with
 * every credential's hash in constant time.
 *
 * Scopes: transfer (POST /transfer), read (GET /transactions/:id,
 * GET /transactions?account=, GET /accounts, GET /accounts/:shard/:id and its
 * /history), accounts (POST /accounts, which moves the opening balance from a
 * funding account, and POST /accounts/:shard/:id/close), admin (/admin/*),
 * metrics (GET /metrics). The probes (/healthz, /health, /ready) are open.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export const SCOPES = ["transfer", "read", "admin", "metrics", "accounts"] as const;
export type Scope = (typeof SCOPES)[number];

/** The bound on configured credentials: their names are metric labels, so their number bounds those series. */
export const CREDENTIALS_MAX = 1_000;
const NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export interface Credential {
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** SHA-256 of the token, 32 bytes. */
  readonly hash: Buffer;
  /** Past this instant (ms since the epoch) the token is refused as expired. */
  readonly not_after_ms?: number;
}

export class TokensFileError extends Error {}

/**
 * Which credential started each recent transaction: shown in its view and
 * trace header, and written into the shards' history rows of its branches
 * (the adapters ask `get` when they insert them). Bounded: the oldest go
 * past `max`.
 */
export class TxCredentials {
  private readonly byTx = new Map<string, string>();
  constructor(private readonly max: number) {}
  remember(tx: string, name: string): void {
    if (this.byTx.has(tx)) return;
    this.byTx.set(tx, name);
    for (const oldest of this.byTx.keys()) {
      if (this.byTx.size <= this.max) break;
      this.byTx.delete(oldest);
    }
  }
  get(tx: string): string | undefined {
    return this.byTx.get(tx);
  }
}

/** A credential's name as an SQL literal for the history rows (NULL when none). Names are checked by NAME, so no quoting is needed; anything else is refused. */
export function credentialSql(name: string | undefined): string {
  if (name === undefined) return "NULL";
  if (!NAME.test(name)) throw new Error(`not a credential name: ${JSON.stringify(name)}`);
  return `'${name}'`;
}

export const sha256 = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

/** Parses a tokens file's text; throws TokensFileError naming the line. */
export function parseTokens(text: string, where: string): Credential[] {
  const out: Credential[] = [];
  const names = new Set<string>();
  const hashes = new Set<string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    const fail = (why: string): never => {
      throw new TokensFileError(`${where}:${i + 1}: ${why}; expected "name scope[,scope...] sha256-hex [not-after ISO 8601]"`);
    };
    const f = line.split(/\s+/);
    if (f.length < 3 || f.length > 4) fail(`${f.length} fields`);
    const [name, scopeText, hex, notAfter] = f as [string, string, string, string | undefined];
    if (!NAME.test(name)) fail(`name ${JSON.stringify(name)} is not 1-64 characters of a-z 0-9 _ . - (starting with a letter or digit)`);
    if (names.has(name)) fail(`name ${name} given twice`);
    const scopes = scopeText.split(",");
    for (const s of scopes) if (!(SCOPES as readonly string[]).includes(s)) fail(`scope ${JSON.stringify(s)} is not one of ${SCOPES.join(", ")}`);
    // The hash is not secret, but a token pasted here by mistake is: never echo the field.
    if (!HEX64.test(hex)) fail("the third field is not a SHA-256 in 64 lowercase hex digits (the hash of the token, not the token)");
    if (hashes.has(hex)) fail("the same token hash is given twice");
    let not_after_ms: number | undefined;
    if (notAfter !== undefined) {
      not_after_ms = Date.parse(notAfter);
      if (!/^\d{4}-\d\d-\d\d/.test(notAfter) || Number.isNaN(not_after_ms)) fail(`not-after ${JSON.stringify(notAfter)} is not an ISO 8601 date`);
    }
    names.add(name);
    hashes.add(hex);
    out.push({ name, scopes: new Set(scopes as Scope[]), hash: Buffer.from(hex, "hex"), ...(not_after_ms !== undefined ? { not_after_ms } : {}) });
    if (out.length > CREDENTIALS_MAX) fail(`more than ${CREDENTIALS_MAX} credentials`);
  });
  return out;
}

/** Why a request was refused; the label of speccommit_http_auth_failures_total. */
export type AuthFailure = "missing" | "malformed" | "invalid" | "expired" | "scope";

export type AuthResult = { ok: true; credential: string | null } | { ok: false; reason: AuthFailure; status: 401 | 403 };

export class Authenticator {
  constructor(
    /** "none": only the scopes some credential has are guarded (the legacy admin_token and metrics_token); the rest is open. */
    private readonly mode: "tokens" | "none",
    private credentials: readonly Credential[],
    private readonly now_ms: () => number = Date.now,
  ) {}

  get count(): number {
    return this.credentials.length;
  }

  get names(): string[] {
    return this.credentials.map((c) => c.name);
  }

  /** Rotation: the new set replaces the old one for every request from now on. */
  replace(credentials: readonly Credential[]): void {
    this.credentials = credentials;
  }

  /** Whether requests needing `scope` must carry a credential. */
  guards(scope: Scope): boolean {
    return this.mode === "tokens" || this.credentials.some((c) => c.scopes.has(scope));
  }

  /** `authorization`: the request's Authorization header. Scope null: an open route. */
  check(authorization: string | undefined, scope: Scope | null): AuthResult {
    if (scope === null || !this.guards(scope)) return { ok: true, credential: null };
    if (authorization === undefined || authorization === "") return { ok: false, reason: "missing", status: 401 };
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization);
    if (m === null) return { ok: false, reason: "malformed", status: 401 };
    const given = sha256(m[1]!);
    let found: Credential | undefined;
    // Every credential is compared (no early exit), each in constant time.
    for (const c of this.credentials) if (timingSafeEqual(given, c.hash) && found === undefined) found = c;
    if (found === undefined) return { ok: false, reason: "invalid", status: 401 };
    if (found.not_after_ms !== undefined && this.now_ms() > found.not_after_ms) return { ok: false, reason: "expired", status: 401 };
    if (!found.scopes.has(scope)) return { ok: false, reason: "scope", status: 403 };
    return { ok: true, credential: found.name };
  }
}

/** The scope a request needs; null for the probes and unknown routes (404 to anyone). */
export function scopeOf(path: string, method = "GET"): Scope | null {
  if (path === "/transfer") return "transfer";
  // Opening (which moves the opening balance from the funding account) and closing accounts.
  if ((path === "/accounts" && method === "POST") || /^\/accounts\/[^/]+\/[^/]+\/close$/.test(path)) return "accounts";
  if (/^\/transactions(\/[^/]+)?$/.test(path) || /^\/accounts(\/[^/]+\/[^/]+(\/history)?)?$/.test(path) || path === "/ui/summary" || path === "/snapshot") return "read";
  if (path === "/admin" || path.startsWith("/admin/")) return "admin";
  if (path === "/metrics") return "metrics";
  return null;
}

/**
 * One token bucket per credential: `rate_per_s` tokens a second, at most
 * `burst` saved. Rate 0: no limit. Buckets exist only for credentials that
 * made a request, so there are at most as many as credentials configured.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at_ms: number }>();

  constructor(
    private readonly rate_per_s: number,
    private readonly burst: number,
    private readonly now_ms: () => number = Date.now,
  ) {}

  /** 0 when `name` may go on (one token taken); otherwise the whole seconds until a token is there (Retry-After). */
  take(name: string): number {
    if (this.rate_per_s === 0) return 0;
    const now = this.now_ms();
    const b = this.buckets.get(name) ?? { tokens: this.burst, at_ms: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at_ms) * this.rate_per_s) / 1000);
    b.at_ms = now;
    this.buckets.set(name, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate_per_s));
  }

  /** Buckets of credentials no longer configured go (rotation). */
  keepOnly(names: readonly string[]): void {
    const keep = new Set(names);
    for (const n of this.buckets.keys()) if (!keep.has(n)) this.buckets.delete(n);
  }
}

/** Every occurrence of a secret in `text` replaced by "(redacted)"; secrets shorter than 4 characters are not searched (they would hit everywhere). */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s !== undefined && s.length >= 4) out = out.split(s).join("(redacted)");
  return out;
}

/** The settings credentials come from (runtime/config.ts). */
export interface AuthSettings {
  readonly auth: "tokens" | "none";
  readonly tokens_file?: string;
  readonly admin_token?: string;
  readonly metrics_token?: string;
}

/**
 * Every configured credential: the tokens file's, plus the legacy single
 * tokens as credentials of their own (`admin_token` with scope admin,
 * `metrics_token` with scope metrics). Reads the file now (also on SIGHUP).
 */
export function credentialsOf(s: AuthSettings, readFile: (path: string) => string): Credential[] {
  const out = s.tokens_file !== undefined ? parseTokens(readFile(s.tokens_file), s.tokens_file) : [];
  const legacy = [
    ["admin_token", "admin", s.admin_token],
    ["metrics_token", "metrics", s.metrics_token],
  ] as const;
  for (const [name, scope, token] of legacy) {
    if (token === undefined) continue;
    if (out.some((c) => c.name === name)) throw new TokensFileError(`${s.tokens_file}: the name ${name} is taken by --${name.replace("_", "-")}`);
    out.push({ name, scopes: new Set([scope]), hash: sha256(token) });
  }
  return out;
}
