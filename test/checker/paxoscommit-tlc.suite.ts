/**
 * PaxosCommit.tla on TLC's own configuration (PaxosCommit.cfg of
 * tlaplus/Examples: RM = {r1, r2}, Acceptor = {a1, a2, a3}, Majority = the
 * three pairs, Ballot = {0, 1}), at TLC's exact counts. Minutes on one
 * thread, so it is not in `npm run check`; run it with
 *
 *   node bin/speccommit.js suite --suite test/checker/paxoscommit-tlc.suite.ts
 *
 * (the suite has smaller configurations of the same model and its mutants).
 */
import type { SuiteEntry } from "../../checker/suite.ts";

const tlc = { distinct: 1_321_761, generated: 16_959_159, depth: 28 };

export const suite: SuiteEntry[] = [
  { model: "../../spec/reference/paxoscommit.ts", params: { RM: 2, acceptors: 3, ballots: 2 }, expect: "ok", counts: tlc },
  { model: "../../spec/reference/paxoscommit.ts", params: { RM: 2, acceptors: 3, ballots: 2 }, workers: 2, expect: "ok", counts: tlc },
];
