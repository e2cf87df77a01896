// The idempotency key of a request (runtime/idempotency.ts `idempotencyKeyOf`):
// the Idempotency-Key header, bare or as a Structured Field String, and the
// body's idempotency_key name one key space with one length limit; both
// present and different is a 400. Properties over keys of every printable
// ASCII character and every length around the limit.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { idempotencyKeyOf } from "../../runtime/idempotency.ts";
import { BadRequest, IDEMPOTENCY_KEY_LENGTH_MAX } from "../../runtime/transfer.ts";

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: IDEMPOTENCY_KEY_LENGTH_MAX });
/** Any header value as node decodes it (latin1: one character per byte). */
const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 300 });
/** What node hands over: leading and trailing whitespace is not part of a header value. */
const bare = printable.filter((k) => !k.startsWith('"') && k.trim() === k);
/** RFC 8941 3.3.3: "..." with \" and \\ escaped. */
const sfString = (k: string) => `"${k.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** The status of the BadRequest `f` throws, or the key it returns. */
function outcome(f: () => string | undefined): { key: string | undefined } | { status: number; message: string } {
  try {
    return { key: f() };
  } catch (e) {
    if (!(e instanceof BadRequest)) throw e;
    return { status: e.status, message: e.message };
  }
}

describe("idempotencyKeyOf", () => {
  it("reads the header, bare or as a Structured Field String, as the same key as the body field", () => {
    fc.assert(
      fc.property(printable, (k) => {
        expect(idempotencyKeyOf([sfString(k)], undefined)).toBe(k);
        expect(idempotencyKeyOf([sfString(k)], k)).toBe(k);
        expect(idempotencyKeyOf(undefined, k)).toBe(k);
        expect(idempotencyKeyOf([], k)).toBe(k);
      }),
    );
    fc.assert(
      fc.property(bare, (k) => {
        expect(idempotencyKeyOf([k], undefined)).toBe(k);
        expect(idempotencyKeyOf([k], k)).toBe(k);
      }),
    );
  });

  it("refuses a header and a body field that name different keys, with 400 naming both", () => {
    fc.assert(
      fc.property(printable, printable, fc.boolean(), (h, b, quoted) => {
        fc.pre(h !== b && (quoted || (!h.startsWith('"') && h.trim() === h)));
        const r = outcome(() => idempotencyKeyOf([quoted ? sfString(h) : h], b));
        expect(r).toMatchObject({ status: 400 });
        expect((r as { message: string }).message).toContain("differ");
      }),
    );
  });

  it("holds the header to the body field's length limit, in both spellings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(0, 1, IDEMPOTENCY_KEY_LENGTH_MAX, IDEMPOTENCY_KEY_LENGTH_MAX + 1), fc.integer({ min: 0, max: 3 * IDEMPOTENCY_KEY_LENGTH_MAX })), fc.boolean(), (n, quoted) => {
        const k = "k".repeat(n);
        const r = outcome(() => idempotencyKeyOf([quoted ? sfString(k) : k], undefined));
        if (n >= 1 && n <= IDEMPOTENCY_KEY_LENGTH_MAX) expect(r).toEqual({ key: k });
        else expect(r).toMatchObject({ status: 400, message: expect.stringMatching(/1 to 200 characters/) });
      }),
    );
  });

  it("answers any header value with a key of 1 to 200 printable characters or a 400, never anything else", () => {
    fc.assert(
      fc.property(fc.array(latin1, { maxLength: 3 }), fc.option(printable, { nil: undefined }), (header, body) => {
        const r = outcome(() => idempotencyKeyOf(header, body));
        if ("status" in r) expect(r.status).toBe(400);
        else if (r.key !== undefined) expect(r.key).toMatch(/^[\x20-\x7e]{1,200}$/);
        if (header.length > 1) expect(r).toMatchObject({ status: 400, message: expect.stringMatching(/send one/) });
      }),
    );
  });

  it("refuses a quoted value that is not a Structured Field String", () => {
    for (const v of ['"unterminated', '"a"b"', '"bad \\escape"', '"tab\there"']) {
      expect(outcome(() => idempotencyKeyOf([v], undefined)), v).toMatchObject({ status: 400, message: expect.stringMatching(/Structured Field String/) });
    }
  });
});
