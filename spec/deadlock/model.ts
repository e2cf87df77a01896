/**
 * The `deadlock` model: every wait-for snapshot the detector can be given, for
 * `txs` transactions (2..4) over `shards` shards (2..4), checked against the
 * rules of the victim choice (./victims.ts, docs/deadlock.md).
 *
 * A state is a snapshot: which branch waits for which transaction on which
 * shard (one blocked statement per transaction and shard, at most `waits`
 * waits in all), and what durable state says of each transaction (decision
 * durable, prepared everywhere: independent facts, since the detector reads
 * the shards one after the other and a snapshot may mix moments; at most
 * `settled` transactions with a fact). Steps add a wait or a fact, so every
 * such snapshot is reached; the properties are checked on each one.
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import { chooseVictims, loneCycles, onCycle, unbrokenCycle, type VictimMutant, type WaitSnapshot } from "./victims.ts";

/** A transaction's facts as two bits: 1 = commit decision durable, 2 = prepared everywhere. */
export interface DeadlockState {
  readonly facts: readonly number[];
  /** Waits as codes (waiter * txs + holder) * shards + shard, sorted. */
  readonly waits: readonly number[];
}

export type DeadlockAction = { readonly t: "wait"; readonly code: number } | { readonly t: "fact"; readonly tx: number; readonly bit: 1 | 2 };

export interface DeadlockParams {
  readonly txs: number;
  readonly shards: number;
  readonly waits: number;
  readonly settled: number;
}

export const DEADLOCK_MUTANTS: readonly VictimMutant[] = ["victim-decided", "victim-prepared", "first-cycle-only", "victim-off-cycle", "whole-cycle"];

const txName = (i: number): string => `T${i + 1}`;
const shardName = (i: number): string => `shard-${String.fromCharCode(97 + i)}`;

/** The detector's input for a state. */
export function snapshotOf(p: DeadlockParams, s: DeadlockState): WaitSnapshot {
  const facts: Record<string, { decided: boolean; preparedEverywhere: boolean }> = {};
  s.facts.forEach((f, i) => (facts[txName(i)] = { decided: (f & 1) !== 0, preparedEverywhere: (f & 2) !== 0 }));
  const edges = s.waits.map((code) => {
    const shard = code % p.shards;
    const pair = Math.floor(code / p.shards);
    return { shard: shardName(shard), waiter: txName(Math.floor(pair / p.txs)), holder: txName(pair % p.txs) };
  });
  return { edges, facts };
}

function* actionsOf(p: DeadlockParams, s: DeadlockState): Iterable<DeadlockAction> {
  if (s.waits.length < p.waits) {
    // One blocked statement per transaction and shard: a (waiter, shard) that already waits waits for one holder.
    const busy = new Set(s.waits.map((c) => Math.floor(Math.floor(c / p.shards) / p.txs) * p.shards + (c % p.shards)));
    for (let w = 0; w < p.txs; w++)
      for (let h = 0; h < p.txs; h++)
        for (let sh = 0; sh < p.shards; sh++) if (w !== h && !busy.has(w * p.shards + sh)) yield { t: "wait", code: (w * p.txs + h) * p.shards + sh };
  }
  const withFacts = s.facts.filter((f) => f !== 0).length;
  for (let tx = 0; tx < p.txs; tx++) {
    if (s.facts[tx] === 0 && withFacts >= p.settled) continue;
    for (const bit of [1, 2] as const) if ((s.facts[tx]! & bit) === 0) yield { t: "fact", tx, bit };
  }
}

function nextOf(s: DeadlockState, a: DeadlockAction): DeadlockState {
  if (a.t === "wait") return { facts: s.facts, waits: [...s.waits, a.code].sort((x, y) => x - y) };
  return { facts: s.facts.map((f, i) => (i === a.tx ? f | a.bit : f)), waits: s.waits };
}

function checkParams(p: DeadlockParams): void {
  const ok = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!ok(p.txs, 2, 4) || !ok(p.shards, 2, 4) || !ok(p.waits, 0, 8) || !ok(p.settled, 0, p.txs)) {
    throw new Error(`deadlock: want txs 2..4, shards 2..4, waits 0..8, settled 0..txs (got ${JSON.stringify(p)})`);
  }
}

export function deadlockModel(p: DeadlockParams, mutant?: VictimMutant): Model<DeadlockState, DeadlockAction> {
  checkParams(p);
  // The properties look at one state's victims several times: computed once per state object.
  const memo = new WeakMap<DeadlockState, { snap: WaitSnapshot; victims: string[] }>();
  const of = (s: DeadlockState) => {
    let m = memo.get(s);
    if (m === undefined) {
      const snap = snapshotOf(p, s);
      memo.set(s, (m = { snap, victims: chooseVictims(snap, mutant).map((v) => v.tx) }));
    }
    return m;
  };
  return {
    name: "deadlock",
    init: () => [{ facts: Array.from({ length: p.txs }, () => 0), waits: [] }],
    actions: (s) => actionsOf(p, s),
    next: nextOf,
    invariants: {
      never_victim_decided: (s) => of(s).victims.every((v) => !of(s).snap.facts[v]!.decided),
      never_victim_prepared_everywhere: (s) => of(s).victims.every((v) => !of(s).snap.facts[v]!.preparedEverywhere),
      every_cycle_broken: (s) => unbrokenCycle(of(s).snap, new Set(of(s).victims)) === null,
      no_victim_without_cycle: (s) => of(s).victims.every((v) => onCycle(of(s).snap, v)),
      minimal: (s) => of(s).victims.every((v) => unbrokenCycle(of(s).snap, new Set(of(s).victims.filter((x) => x !== v))) !== null),
      one_victim_per_lone_cycle: (s) => loneCycles(of(s).snap).every((c) => c.filter((v) => of(s).victims.includes(v)).length <= 1),
    },
    terminal: () => true,
    encode: (s) => Uint8Array.from([...s.facts, ...s.waits]),
    decode: (b) => ({ facts: Array.from(b.subarray(0, p.txs)), waits: Array.from(b.subarray(p.txs)) }),
    describe: (_from, a) =>
      a.t === "wait"
        ? (() => {
            const e = snapshotOf(p, { facts: [], waits: [a.code] }).edges[0]!;
            return { actor: e.shard, label: `${e.waiter} waits for ${e.holder}` };
          })()
        : { actor: "durable state", label: `${txName(a.tx)} ${a.bit === 1 ? "decision durable" : "prepared everywhere"}` },
    view: (s) => ({ ...snapshotOf(p, s), victims: of(s).victims }),
  };
}

export const deadlockFactory: ModelFactory = {
  name: "deadlock",
  description: "Cross-shard deadlock detector's victim choice over every wait-for snapshot of txs transactions on shards shards",
  params: { txs: 2, shards: 2, waits: 4, settled: 2 },
  mutants: DEADLOCK_MUTANTS,
  build: (params, mutant) =>
    deadlockModel({ txs: Number(params.txs), shards: Number(params.shards), waits: Number(params.waits), settled: Number(params.settled) }, mutant as VictimMutant | undefined),
};
