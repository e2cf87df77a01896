/**
 * TCommit.tla (Gray & Lamport, "Consensus on Transaction Commit", 2006;
 * tlaplus/Examples specifications/transaction_commit): the specification of
 * transaction commit itself, with no TM and no messages. Each RM is working,
 * prepared, committed or aborted; an RM may commit only when every RM is
 * prepared or committed (canCommit), and abort only while none has committed
 * (notCommitted). TCConsistent says no RM commits while another aborts.
 *
 * The state is the rmState array (an ordinary, unpacked model: it exercises
 * the engine's generic path). RMs are interchangeable: the sorted array is an
 * exact canonical form.
 */
import type { Model, ModelFactory } from "../kernel/model.ts";

export const TC_STATES = ["working", "prepared", "committed", "aborted"] as const;
export type TCState = readonly number[];
export type TCAction = { kind: "Prepare" | "Commit" | "Abort"; rm: number };

const WORKING = 0;
const PREPARED = 1;
const COMMITTED = 2;
const ABORTED = 3;

export const tcommitMutants = [
  /** Decide(r) commits r when r is prepared, without canCommit. */
  "commitWithoutAllPrepared",
  /** Decide(r) aborts r even after another RM committed (notCommitted dropped). */
  "abortAfterCommit",
] as const;
export type TCommitMutant = (typeof tcommitMutants)[number];

export function tcommit(n: number, mutant?: TCommitMutant): Model<TCState, TCAction> {
  if (!Number.isInteger(n) || n < 1 || n > 255) throw new Error(`TCommit: RM must be an integer from 1 to 255, got ${n}`);
  const rmName = (i: number) => `rm${i + 1}`;
  const canCommit = (s: TCState) => s.every((st) => st === PREPARED || st === COMMITTED);
  const notCommitted = (s: TCState) => s.every((st) => st !== COMMITTED);
  const set = (s: TCState, rm: number, st: number) => s.map((old, i) => (i === rm ? st : old));

  function* actions(s: TCState): Iterable<TCAction> {
    for (let rm = 0; rm < n; rm++) {
      const st = s[rm]!;
      if (st === WORKING) yield { kind: "Prepare", rm };
      // Decide(r), first disjunct.
      if (st === PREPARED && (mutant === "commitWithoutAllPrepared" || canCommit(s))) yield { kind: "Commit", rm };
      // Decide(r), second disjunct.
      if ((st === WORKING || st === PREPARED) && (mutant === "abortAfterCommit" || notCommitted(s))) yield { kind: "Abort", rm };
    }
  }

  return {
    name: "TCommit",
    init: () => [Array.from({ length: n }, () => WORKING)],
    actions,
    next: (s, a) => set(s, a.rm, a.kind === "Prepare" ? PREPARED : a.kind === "Commit" ? COMMITTED : ABORTED),
    invariants: {
      TCTypeOK: (s) => s.length === n && s.every((st) => Number.isInteger(st) && st >= WORKING && st <= ABORTED),
      TCConsistent: (s) => !(s.includes(ABORTED) && s.includes(COMMITTED)),
    },
    encode: (s) => Uint8Array.from(s),
    decode: (b) => Array.from(b),
    canonical: (s) => [...s].sort((a, b) => a - b),
    describe: (_from, a) => ({ actor: rmName(a.rm), label: a.kind === "Prepare" ? "Prepare" : `Decide: ${a.kind}` }),
    view: (s) => Object.fromEntries(s.map((st, i) => [rmName(i), TC_STATES[st]])),
    actors: () => Array.from({ length: n }, (_, i) => rmName(i)),
  };
}

export const tcommitFactory: ModelFactory = {
  name: "TCommit",
  description: "The transaction commit specification, TCommit.tla (Gray & Lamport): RM resource managers",
  params: { RM: 3 },
  mutants: tcommitMutants,
  build: (params, mutant) => tcommit(Number(params.RM), mutant as TCommitMutant | undefined),
};
