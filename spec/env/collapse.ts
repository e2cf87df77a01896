/**
 * State compression by component tables, as SPIN's COLLAPSE mode does: a
 * state made of a few large, slowly changing parts (shards, roles, the log,
 * the messages in flight) is stored as one small integer per part, each an
 * index into a table of the distinct values that part has taken. Distinct
 * parts are far fewer than distinct states, so the checker's per-state bytes
 * shrink from kilobytes of JSON to 4 bytes per part, and an unchanged part
 * (the same object, shared with the parent state) costs one WeakMap look-up.
 *
 * The indices are those of this process: a collapsed encoding is canonical
 * within one checker run (equal parts get equal indices), which is what
 * fingerprints need; it is not a format to store or to share between worker
 * threads (models that use it are checked with one worker).
 */
import { canonicalJson } from "./canonical.ts";

export interface Collapser<S extends object> {
  encode(s: S): Uint8Array;
  decode(b: Uint8Array): S;
}

/** A collapser for records whose fields, in `fields` order, are each interned in a table of their own. */
export function collapser<S extends object>(fields: readonly (keyof S & string)[]): Collapser<S> {
  const tables = fields.map(() => new Table());
  // An array-valued part is keyed by the ids of its elements, each interned on
  // its own: a step that changes one shard or one message re-serialises only that.
  const elements = fields.map(() => new Table());

  const intern = (f: number, v: unknown): number => {
    const t = tables[f]!;
    if (!Array.isArray(v)) return t.intern(v, canonicalJson);
    const hit = t.byRef.get(v);
    if (hit !== undefined) return hit;
    const el = elements[f]!;
    let key = "";
    for (const x of v) key += `${el.intern(x, canonicalJson)},`;
    return t.intern(v, () => key);
  };

  return {
    encode(s) {
      const ids = new Uint32Array(fields.length);
      for (let f = 0; f < fields.length; f++) ids[f] = intern(f, s[fields[f]!]);
      return new Uint8Array(ids.buffer);
    },
    decode(b) {
      const ids = new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      const s: Record<string, unknown> = {};
      for (let f = 0; f < fields.length; f++) s[fields[f]!] = tables[f]!.value(ids[f]!);
      return s as S;
    },
  };
}

/** Distinct values by key, with a cache by object identity for values already seen. */
class Table {
  readonly byKey = new Map<string, number>();
  readonly values: unknown[] = [];
  readonly byRef = new WeakMap<object, number>();

  intern(v: unknown, keyOf: (v: unknown) => string): number {
    const isObj = typeof v === "object" && v !== null;
    if (isObj) {
      const hit = this.byRef.get(v);
      if (hit !== undefined) return hit;
    }
    const key = keyOf(v);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(v);
      this.byKey.set(key, id);
    }
    if (isObj) this.byRef.set(v, id);
    return id;
  }

  value(id: number): unknown {
    if (id >= this.values.length) throw new Error(`collapse: no value with id ${id}`);
    return this.values[id];
  }
}
