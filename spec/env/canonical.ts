/**
 * Canonical bytes for plain-data states: JSON with object keys sorted, so two
 * equal states encode to the same bytes whatever order their keys were
 * created in. Used by models whose states are ordinary objects.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Object keys as JSON writes them, quoted once per distinct key. */
const quoted = new Map<string, string>();

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") {
    if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`canonicalJson: ${v} is not encodable`);
    if (v === undefined) throw new Error("canonicalJson: undefined is not encodable (use null)");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) {
    let out = "[";
    for (let i = 0; i < v.length; i++) out += i === 0 ? canonicalJson(v[i]) : `,${canonicalJson(v[i])}`;
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  // Insertion sort: objects have few keys; the order is Array#sort's (UTF-16 code units).
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > k; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = k;
  }
  let out = "{";
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    let q = quoted.get(k);
    if (q === undefined) quoted.set(k, (q = JSON.stringify(k)));
    out += `${out.length === 1 ? "" : ","}${q}:${canonicalJson(x)}`;
  }
  return `${out}}`;
}

/**
 * The same function written plainly, as it was before canonicalJson was made
 * faster: the state encoder's benchmark baseline (collapse.ts, `--encoder
 * json`) uses it, so that "before" is what ran before.
 */
export function canonicalJsonPlain(v: unknown): string {
  if (v === null || typeof v !== "object") {
    if (typeof v === "number" && !Number.isFinite(v)) throw new Error(`canonicalJson: ${v} is not encodable`);
    if (v === undefined) throw new Error("canonicalJson: undefined is not encodable (use null)");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJsonPlain).join(",")}]`;
  const keys = Object.keys(v as object)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJsonPlain((v as Record<string, unknown>)[k])}`).join(",")}}`;
}

export const encodeCanonical = (v: unknown): Uint8Array => encoder.encode(canonicalJson(v));
export const decodeCanonical = <T>(b: Uint8Array): T => JSON.parse(decoder.decode(b)) as T;
