/**
 * Canonical bytes for plain-data states: JSON with object keys sorted, so two
 * equal states encode to the same bytes whatever order their keys were
 * created in. Used by models whose states are ordinary objects.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") {
    if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`canonicalJson: ${v} is not encodable`);
    if (v === undefined) throw new Error("canonicalJson: undefined is not encodable (use null)");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(v as object)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
}

export const encodeCanonical = (v: unknown): Uint8Array => encoder.encode(canonicalJson(v));
export const decodeCanonical = <T>(b: Uint8Array): T => JSON.parse(decoder.decode(b)) as T;
