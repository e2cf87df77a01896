/**
 * Memoisation of the world's pure functions by the identity of their
 * arguments (./world.ts). The checker hands the model decoded states whose
 * parts are hash-consed (spec/env/collapse.ts: equal values, one object), and
 * the world keeps what these functions return in that same form
 * (`Collapser.canon`), so a role's state, a shard, a flight, the array of
 * flights met again in another state is the same object, and a pure function
 * of them (a role's step, a shard's answers, a flight removed) has the same
 * result: computed once, looked up after. The result looked up is the
 * interned value itself, so when the successor is encoded its parts are found
 * by identity instead of being hashed and compared again (most of the
 * encoder's work: a search meets a few thousand distinct parts, and millions
 * of fresh copies of them).
 *
 * Sound because the functions are pure (docs/architecture.md, "Roles") and
 * values are never mutated once made. Bounded: each table forgets everything
 * once it holds `limit` entries (a miss only costs the computation again).
 * A function that throws (a role's assertion) leaves nothing behind.
 *
 * The variants below are written out one by one, alike in shape, rather than
 * made from one generic helper over "an inner table": each closure then meets
 * one kind of inner table (array, WeakMap or Map) at its lookups, in the
 * checker's innermost loop, instead of all three at one shared call site.
 */
export const MEMO_LIMIT = 1 << 18;

/**
 * The outer level of a memo table: counts the results stored at every level and starts afresh (all levels
 * dropped) once there are `limit` of them.
 */
class Table<K extends object, V> {
  private map = new WeakMap<K, V>();
  private size = 0;
  constructor(private readonly limit: number) {}
  get(k: K): V | undefined {
    return this.map.get(k);
  }
  set(k: K, v: V): void {
    this.map.set(k, v);
  }
  /** One more result stored; false once the table was full (it is now empty: the caller starts from the top). */
  stored(): boolean {
    if (++this.size <= this.limit) return true;
    this.map = new WeakMap();
    this.size = 0;
    return false;
  }
}

/** f memoised on a. */
export function memo1<A extends object, R>(f: (a: A) => R, limit = MEMO_LIMIT): (a: A) => R {
  const table = new Table<A, R>(limit);
  return (a) => {
    const hit = table.get(a);
    if (hit !== undefined) return hit;
    const r = f(a);
    table.stored();
    table.set(a, r);
    return r;
  };
}

/** f memoised on (a, n): n a small non-negative integer (an index, a kind). */
export function memoIndexed<A extends object, R>(f: (a: A, n: number) => R, limit = MEMO_LIMIT): (a: A, n: number) => R {
  const table = new Table<A, R[]>(limit);
  return (a, n) => {
    let byN = table.get(a);
    if (byN !== undefined) {
      const r = byN[n];
      if (r !== undefined) return r;
    }
    const r = f(a, n);
    if (!table.stored() || byN === undefined) table.set(a, (byN = []));
    byN[n] = r;
    return r;
  };
}

/** f memoised on (a, b). */
export function memo2<A extends object, B extends object, R>(f: (a: A, b: B) => R, limit = MEMO_LIMIT): (a: A, b: B) => R {
  const table = new Table<A, WeakMap<B, R>>(limit);
  return (a, b) => {
    let byB = table.get(a);
    if (byB !== undefined) {
      const r = byB.get(b);
      if (r !== undefined) return r;
    }
    const r = f(a, b);
    if (!table.stored() || byB === undefined) table.set(a, (byB = new WeakMap()));
    byB.set(b, r);
    return r;
  };
}

/** f memoised on (a, b, n): n a small non-negative integer. */
export function memo2Indexed<A extends object, B extends object, R>(f: (a: A, b: B, n: number) => R, limit = MEMO_LIMIT): (a: A, b: B, n: number) => R {
  const table = new Table<A, WeakMap<B, R[]>>(limit);
  return (a, b, n) => {
    let byB = table.get(a);
    let byN = byB?.get(b);
    if (byN !== undefined) {
      const r = byN[n];
      if (r !== undefined) return r;
    }
    const r = f(a, b, n);
    if (!table.stored()) byB = byN = undefined;
    if (byB === undefined) table.set(a, (byB = new WeakMap()));
    if (byN === undefined) byB.set(b, (byN = []));
    byN[n] = r;
    return r;
  };
}

/** f memoised on (a, k): k a string. */
export function memoKeyed<A extends object, R>(f: (a: A, k: string) => R, limit = MEMO_LIMIT): (a: A, k: string) => R {
  const table = new Table<A, Map<string, R>>(limit);
  return (a, k) => {
    let byK = table.get(a);
    if (byK !== undefined) {
      const r = byK.get(k);
      if (r !== undefined) return r;
    }
    const r = f(a, k);
    if (!table.stored() || byK === undefined) table.set(a, (byK = new Map()));
    byK.set(k, r);
    return r;
  };
}

/** f memoised on (a, b, c). */
export function memo3<A extends object, B extends object, C extends object, R>(f: (a: A, b: B, c: C) => R, limit = MEMO_LIMIT): (a: A, b: B, c: C) => R {
  const table = new Table<A, WeakMap<B, WeakMap<C, R>>>(limit);
  return (a, b, c) => {
    let byB = table.get(a);
    let byC = byB?.get(b);
    if (byC !== undefined) {
      const r = byC.get(c);
      if (r !== undefined) return r;
    }
    const r = f(a, b, c);
    if (!table.stored()) byB = byC = undefined;
    if (byB === undefined) table.set(a, (byB = new WeakMap()));
    if (byC === undefined) byB.set(b, (byC = new WeakMap()));
    byC.set(c, r);
    return r;
  };
}
