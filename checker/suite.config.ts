/**
 * The verification suite (`npm run check`): model x configuration x expected
 * outcome. One entry is one line; `mutantsOf` adds one entry per mutant of a
 * model. The runner (suite.ts) fails on any entry whose outcome differs.
 *
 * The reference counts are TLC's (tlaplus/Examples, TwoPhase.tla and
 * TCommit.tla); the symmetry counts are the number of orbits of the
 * reachable states (test/checker/symmetry.test.ts computes them without
 * symmetry reduction).
 */
import type { SuiteEntry } from "./suite.ts";
import { mutantsOf } from "./suite.ts";
import { findFactory } from "./load.ts";

const twoPhaseTlc = [
  { RM: 3, distinct: 288, generated: 1_146, depth: 11 },
  { RM: 4, distinct: 1_568, generated: 8_258, depth: 14 },
  { RM: 5, distinct: 8_832, generated: 58_146, depth: 17 },
  { RM: 6, distinct: 50_816, generated: 402_306, depth: 20 },
  { RM: 7, distinct: 296_448, generated: 2_744_706, depth: 23 },
];

export const suite: SuiteEntry[] = [
  // Reference models: the engine must explore exactly what TLC explores.
  ...twoPhaseTlc.map(({ RM, ...counts }): SuiteEntry => ({ model: "TwoPhase", params: { RM }, expect: "ok", counts })),
  { model: "TwoPhase", params: { RM: 7 }, workers: 2, expect: "ok", counts: { distinct: 296_448, generated: 2_744_706, depth: 23 } },
  { model: "TwoPhase", params: { RM: 7 }, symmetry: true, expect: "ok", counts: { distinct: 920 } },
  { model: "TCommit", params: { RM: 3 }, expect: "ok", counts: { distinct: 34 } },
  { model: "TCommit", params: { RM: 4 }, expect: "ok", counts: { distinct: 96 } },
  { model: "TCommit", params: { RM: 5 }, expect: "ok", counts: { distinct: 274 } },
  { model: "TCommit", params: { RM: 6 }, expect: "ok", counts: { distinct: 792 } },
  { model: "TCommit", params: { RM: 6 }, symmetry: true, expect: "ok", counts: { distinct: 34 } },

  // Mutants: each must be caught, with the shortest counterexample's length.
  { model: "TwoPhase", params: { RM: 3 }, mutant: "commitWithoutAllPrepared", expect: "violates TCConsistent", length: 3 },
  { model: "TwoPhase", params: { RM: 3 }, mutant: "abortAfterPrepare", expect: "violates TCConsistent", length: 9 },
  { model: "TwoPhase", params: { RM: 3 }, mutant: "commitAfterAbort", expect: "violates TCConsistent", length: 10 },
  { model: "TwoPhase", params: { RM: 5 }, mutant: "abortAfterPrepare", workers: 2, expect: "violates TCConsistent", length: 13 },
  ...mutantsOf("TCommit", { RM: 3 }),

  // The toy model: deadlock with a terminal state, possibility liveness.
  { model: "Countdown", params: { N: 3 }, deadlock: true, expect: "ok", counts: { distinct: 7, depth: 4 } },
  { model: "Countdown", params: { N: 3 }, mutant: "noRepair", expect: "violates Done", length: 1 },
  { model: "Countdown", params: { N: 3 }, mutant: "noRepair", deadlock: true, expect: "deadlock", length: 1 },

  // 2PC with presumed abort (spec/protocols/twopc): the roles the server runs, over the
  // XA shard and txlog models, with crashes. Scenarios: transfer = 2 shards x 1 transfer;
  // conflict = 2 shards x 2 transfers on the same accounts (interchangeable: symmetry); three = 3 shards x 2 transfers
  // sharing an account; triple = 3 identical transfers (symmetry: the suite's symmetric entries below). docs/protocols/2pc.md gives the cost of each and of larger ones.
  { model: "twopc", params: { scenario: "transfer", crash: 0, shardCrash: 0 }, expect: "ok", counts: { distinct: 536, generated: 1_242, depth: 20 } },
  { model: "twopc", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 }, expect: "ok", counts: { distinct: 290_586, generated: 823_999, depth: 49 } },
  { model: "twopc", params: { scenario: "conflict", crash: 1, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 531_578, generated: 1_863_682, depth: 50 } },
  { model: "twopc", params: { scenario: "conflict", crash: 0, shardCrash: 1, timeouts: false }, expect: "ok", counts: { distinct: 762_194, generated: 2_600_335, depth: 37 } },
  { model: "twopc", params: { scenario: "three", crash: 1, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 1_167_585, generated: 4_155_912, depth: 69 } },
  { model: "twopc", params: { scenario: "three", crash: 0, shardCrash: 1, timeouts: false }, expect: "ok", counts: { distinct: 1_035_161, generated: 3_681_674, depth: 42 } },
  { model: "twopc", params: { scenario: "local", crash: 1, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 28_012, generated: 80_800, depth: 47 } },
  { model: "twopc", params: { scenario: "local", crash: 0, shardCrash: 1, timeouts: false }, expect: "ok", counts: { distinct: 44_387, generated: 137_138, depth: 31 } },
  // Group commit (runtime/adapters/txlog-etcd.ts, batch_max): two transfers on disjoint accounts, so that their
  // decision writes are in flight together; logBatch=on lets the log fail a set of writes as one etcd transaction
  // (all written or none, every asker hears UNAVAILABLE) for one log fault: more states than logFault alone
  // (85,754 with logBatch=off), every property holds. The negative control: an adapter that acknowledges a batch
  // while only its first write is durable (acked-unwritten) is caught.
  { model: "twopc", params: { scenario: "pair", crash: 0, shardCrash: 0, logFault: 1, timeouts: false, logBatch: "on" }, expect: "ok", counts: { distinct: 97_286, generated: 315_530, depth: 33 } },
  { model: "twopc", params: { scenario: "pair", crash: 0, shardCrash: 0, logFault: 1, timeouts: false, logBatch: "acked-unwritten" }, expect: "violates committed_reply_is_durable", properties: ["committed_reply_is_durable"], length: 14 },
  // Expected result: with the process down for good, prepared branches stay prepared (2PC blocks).
  { model: "twopc", params: { scenario: "transfer", crash: 1, shardCrash: 0, restart: false }, expect: "violates AC5_terminates" },
  // Each mutant, on the smallest configuration that exposes it, caught by the named
  // property checked alone; together these show that every property can fail.
  ...twopcMutant("reply-before-durable", "transfer", "committed_reply_is_durable", 8),
  ...twopcMutant("commit-before-durable", "transfer", "money_conserved", 9),
  ...twopcMutant("commit-despite-failed-prepare", "transfer", "AC1_agreement", 11, { shardCrash: 1 }),
  ...twopcMutant("commit-despite-failed-prepare", "transfer", "applied_exactly_once", 10, { shardCrash: 1 }),
  ...twopcMutant("no-funds-check", "conflict", "no_negative_balance", 18, { timeouts: false }),
  ...twopcMutant("nota-retries-forever", "transfer", "AC5_terminates", 15, { shardCrash: 1 }),
  ...twopcMutant("forget-before-commit", "transfer", "committed_reply_is_durable", 10),
  ...twopcMutant("timeout-keeps-voting", "transfer", "aborted_reply_is_final", 10),
  ...twopcMutant("no-epoch-fence", "transfer", "AC2_irrevocable", 31, { crash: 1 }),
  ...twopcMutant("presume-commit", "transfer", "AC3_commit_needs_all_yes", 12, { crash: 1 }),
  ...twopcMutant("rollback-committed", "transfer", "AC1_agreement", 16, { crash: 1 }),
  ...twopcMutant("ignore-active", "transfer", "AC4_all_yes_commits", 17),
  ...twopcMutant("gc-without-recover", "transfer", "committed_reply_is_durable", 13),
  ...twopcMutant("one-phase-lost-is-commit", "local", "committed_reply_is_durable", 7, { shardCrash: 1, timeouts: false }),

  // Parallel commit (spec/protocols/parallel): STAGING written with the prepares; committed =
  // STAGING durable + every branch prepared; recovery KILLs the recorded connections before it
  // decides. docs/protocols/parallel-commit.md gives the cost of each configuration.
  { model: "parallel", params: { scenario: "transfer", crash: 0, shardCrash: 0 }, expect: "ok", counts: { distinct: 641, generated: 1_581, depth: 21 } },
  { model: "parallel", params: { scenario: "transfer", crash: 1, shardCrash: 1 }, expect: "ok", counts: { distinct: 84_375, generated: 263_679, depth: 55 } },
  { model: "parallel", params: { scenario: "conflict", crash: 1, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 660_050, generated: 2_297_738, depth: 50 } },
  ...parallelMutant("no-fence", "AC2_irrevocable", 22, { crash: 1 }),
  ...parallelMutant("no-fence", "implicit_commit_is_final", 24, { crash: 1 }),
  ...parallelMutant("reply-before-staging", "committed_reply_is_committed", 8),
  ...parallelMutant("staging-without-conns", "AC2_irrevocable", 28, { crash: 1 }),
  ...parallelMutant("commit-before-record", "AC1_agreement", 30, { crash: 1 }),
  ...parallelMutant("record-before-prepared", "committed_reply_is_committed", 7),
  ...parallelMutant("record-before-prepared", "AC3_commit_needs_all_yes", 10, { shardCrash: 1 }),
  ...parallelMutant("commit-before-staging", "money_conserved", 9),
  ...parallelMutant("timeout-after-staging", "aborted_reply_is_final", 10),
  ...parallelMutant("no-funds-check", "no_negative_balance", 20, { scenario: "conflict", timeouts: false }),
  ...parallelMutant("missing-is-commit", "AC3_commit_needs_all_yes", 28, { crash: 1 }),
  ...parallelMutant("missing-is-commit", "applied_exactly_once", 26, { crash: 1 }),
  ...parallelMutant("ignore-active", "AC4_all_yes_commits", 17),
  ...parallelMutant("keep-records", "AC5_terminates", 7, { crash: 1 }),

  // One resolver for both protocols (spec/server/model.ts, model mixed): the parallel-commit resolver, the one the
  // server runs, under 2PC coordinators (coordinators=2pc, one-phase commit included; the 2PC
  // properties) and under a 2PC and a parallel coordinator side by side (coordinators=mixed; on
  // local, the one-phase transfer by 2PC and the cross-shard one by parallel commit). Under 2PC
  // coordinators the counts are twopc's: on 2PC's records it does what the 2PC resolver does.
  // docs/protocols/parallel-commit.md, "One resolver for both protocols".
  { model: "mixed", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 }, expect: "ok", counts: { distinct: 290_586, generated: 823_999, depth: 49 } },
  { model: "mixed", params: { scenario: "local", crash: 1, shardCrash: 0, logFault: 1, timeouts: false }, expect: "ok", counts: { distinct: 116_671, generated: 349_699, depth: 50 } },
  { model: "mixed", params: { scenario: "local", coordinators: "mixed", crash: 1, shardCrash: 0, logFault: 1, timeouts: false }, expect: "ok", counts: { distinct: 176_801, generated: 522_999, depth: 50 } },
  ...mixedMutant("ignore-active", "AC4_all_yes_commits", 17, { scenario: "transfer" }),
  ...mixedMutant("keep-records", "AC5_terminates", 7, { scenario: "transfer", crash: 1 }),
  // Acts on STAGING records only, so 2PC coordinators alone never expose it: shown on the parallel transfer.
  ...mixedMutant("missing-is-commit", "AC3_commit_needs_all_yes", 28, { scenario: "local", coordinators: "mixed", crash: 1, timeouts: false }),

  // Speculative path with undo (spec/protocols/speculative): one-phase local transactions with
  // escrowed credits and undo rows under a write-once key; rollback by tombstone + compensation.
  // transfer = 2 shards x 1 transfer; same = 2 x 2 transfers from the same account (one
  // mis-speculates); misspec = a branch fails for insufficient funds after the other committed.
  // docs/protocols/speculative.md gives the cost of each and of larger ones.
  { model: "speculative", params: { scenario: "transfer", crash: 0, shardCrash: 0 }, expect: "ok", counts: { distinct: 1_100, generated: 2_652, depth: 20 } },
  { model: "speculative", params: { scenario: "transfer", crash: 1, shardCrash: 1 }, expect: "ok", counts: { distinct: 88_880, generated: 305_186, depth: 42 } },
  { model: "speculative", params: { scenario: "transfer", crash: 1, shardCrash: 0, logFault: 1 }, expect: "ok", counts: { distinct: 32_828, generated: 104_932, depth: 40 } },
  { model: "speculative", params: { scenario: "misspec", crash: 1, shardCrash: 1 }, expect: "ok", counts: { distinct: 68_935, generated: 247_742, depth: 38 } },
  { model: "speculative", params: { scenario: "same", crash: 0, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 11_057, generated: 30_795, depth: 27 } },
  { model: "speculative", params: { scenario: "same", crash: 1, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 105_122, generated: 326_868, depth: 40 } },
  { model: "speculative", params: { scenario: "spend", crash: 0, shardCrash: 0, timeouts: false }, expect: "ok", counts: { distinct: 11_679, generated: 31_697, depth: 27 } },
  ...speculativeMutant("spendable-credits", "no_negative_balance", 11, { scenario: "spend" }),
  ...speculativeMutant("spendable-credits", "iso_credits_pending_until_final", 5),
  ...speculativeMutant("undo-separate", "undo_durable_with_write", 5),
  ...speculativeMutant("undo-separate", "rollback_restores_total", 7),
  ...speculativeMutant("compensate-keeps-row", "compensated_at_most_once", 12, { shardCrash: 1 }),
  ...speculativeMutant("rollback-without-tombstone", "terminal_record_is_final", 8),
  ...speculativeMutant("reply-early", "committed_never_rolled_back", 7),
  ...speculativeMutant("release-early", "iso_released_only_when_committed", 6),
  ...speculativeMutant("release-deletes-row", "committed_never_rolled_back", 21, { crash: 1 }),
  ...speculativeMutant("settle-at-first-sight", "no_spurious_rollback", 11, { timeouts: false }),
  // Forgets the record once SPEC_EXECUTING is durable, before the branches are final: the terminal record is never written.
  // (compensate-keeps-row no longer shows every_speculation_ends: with records forgotten, the resolver re-settles its
  // never-retired row forever, compensating again each round, so that state space is infinite.)
  ...speculativeMutant("delete-before-final", "every_speculation_ends", 8),
  // The same mutants shown caught by each remaining property alone.
  ...speculativeMutant("spendable-credits", "iso_debits_visible_at_once", 5),
  ...speculativeMutant("undo-separate", "money_conserved", 5),
  ...speculativeMutant("undo-separate", "balances_conserved_when_settled", 5),
  ...speculativeMutant("rollback-without-tombstone", "aborted_is_final", 5),

  // Liveness under weak fairness (checker/fairness.ts; docs/checker.md, "Liveness under fairness"): AC5 and
  // "every speculation ends" as leads-to, true ~> finished, under weak fairness of every non-fault step. Lengths
  // are the lasso's shortest prefix. retry-on-conflict makes two conflicting transfers take turns blocking each
  // other forever: the possibility check passes on it (a way out exists at every turn), the leads-to finds the cycle.
  { model: "twopc", params: { scenario: "conflict", crash: 0, shardCrash: 0, timeouts: false }, mutant: "retry-on-conflict", expect: "ok", properties: ["AC5_terminates"] },
  { model: "twopc", params: { scenario: "conflict", crash: 0, shardCrash: 0, timeouts: false }, mutant: "retry-on-conflict", expect: "violates AC5_finishes", properties: ["AC5_finishes"], length: 13 },
  // With the process down for good, 2PC blocks: the lasso stutters in a state with prepared branches.
  { model: "twopc", params: { scenario: "transfer", crash: 1, shardCrash: 0, restart: false }, expect: "violates AC5_finishes", properties: ["AC5_finishes"], length: 10 },
  // The mutants the possibility check catches are caught by the leads-to too, each on every protocol.
  { model: "twopc", params: { scenario: "transfer", crash: 0, shardCrash: 1 }, mutant: "nota-retries-forever", expect: "violates AC5_finishes", properties: ["AC5_finishes"], length: 19 },
  ...parallelMutant("keep-records", "AC5_finishes", 17, { crash: 1 }),
  ...mixedMutant("keep-records", "AC5_finishes", 16, { scenario: "transfer", crash: 1 }),
  ...speculativeMutant("delete-before-final", "every_speculation_finishes", 15),
  // Symmetry reduction (spec/world/symmetry.ts; docs/checker.md, "Symmetry"): the twin scenarios' interchangeable
  // transactions. Distinct = the number of orbits of the unreduced reachable states (test/checker/symmetry-world.test.ts
  // computes them without reduction): twopc 23,505 states -> 11,758; parallel 32,159 -> 16,085; speculative 11,057 -> 5,538.
  symmetric("twopc", { scenario: "conflict", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 11_758, generated: 34_800, depth: 27 }),
  symmetric("parallel", { scenario: "conflict", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 16_085, generated: 48_623, depth: 28 }),
  symmetric("speculative", { scenario: "same", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 5_538, generated: 15_426, depth: 27 }),
  // Out of reach without symmetry (issue 12): three interchangeable transactions on the same accounts (`triple`:
  // every pair conflicts) for each protocol, and the twins under a coordinator crash and a shard crash together.
  // The triples take about a minute of CPU each, the crash pairs two to four and up to 1.5 GB (`npm run check` runs
  // two entries at once: --jobs 2); test/checker/symmetry-world.test.ts checks the triples' reduction against the
  // unreduced search up to depth 15-16.
  symmetric("twopc", { scenario: "triple", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 446_766, generated: 1_719_154, depth: 37 }),
  symmetric("parallel", { scenario: "triple", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 641_657, generated: 2_482_959, depth: 39 }),
  symmetric("speculative", { scenario: "triple", crash: 0, shardCrash: 0, timeouts: false }, { distinct: 198_580, generated: 734_713, depth: 38 }),
  symmetric("twopc", { scenario: "conflict", crash: 1, shardCrash: 1, timeouts: false }, { distinct: 5_096_050, generated: 18_189_863, depth: 64 }),
  symmetric("speculative", { scenario: "same", crash: 1, shardCrash: 1, timeouts: false }, { distinct: 5_838_546, generated: 20_068_207, depth: 62 }),
  symmetric("parallel", { scenario: "conflict", crash: 1, shardCrash: 1, timeouts: false }, { distinct: 10_764_547, generated: 41_262_523, depth: 84 }),
  // The server's own composition (spec/server/model.ts): its coordinator (protocol per request, one-phase
  // path for one branch) and its process resolver over every registered part, on shards running XA and
  // local transactions; a 2PC or parallel-commit transfer beside a speculation, under a process crash.
  { model: "server", params: { scenario: "2pc+speculative", crash: 0 }, expect: "ok", counts: { distinct: 16_936, generated: 52_513, depth: 34 } },
  { model: "server", params: { scenario: "2pc+speculative", crash: 1 }, expect: "ok", counts: { distinct: 327_509, generated: 1_066_788, depth: 70 } },
  { model: "server", params: { scenario: "parallel+speculative", crash: 1 }, expect: "ok", counts: { distinct: 406_502, generated: 1_304_928, depth: 70 } },
  { model: "server", params: { scenario: "one-phase+speculative", crash: 1 }, expect: "ok", counts: { distinct: 10_800, generated: 28_452, depth: 42 } },
  // Bugs of the composition itself: later resolver parts scanning with an empty `active` set settle a live
  // speculation; a scan that runs the first part only leaves a dead coordinator's speculation unfinished.
  { model: "server", params: { scenario: "2pc+speculative", crash: 1 }, mutant: "stale-active", expect: "violates no_spurious_rollback", properties: ["no_spurious_rollback"], length: 21 },
  { model: "server", params: { scenario: "2pc+speculative", crash: 1 }, mutant: "first-part-only", expect: "violates every_transaction_ends", properties: ["every_transaction_ends"], length: 6 },
  // The read-back rules (spec/server/readback.ts) the server answers GET /transactions/:id and settles in-doubt
  // answers with: a staging record read as committed; "nothing durable" of a speculation read as aborted; and
  // "nothing durable" read as aborted without the settle fence while a statement of a dead coordinator is in flight
  // (settle_sound_in_flight, checked behind settleInFlight; it adds no state: the same counts as without it).
  // settle-nothing-is-aborted was caught in 5 steps before the fence; the reader now answers only once its
  // process holds a new epoch (restart and a scan's epoch write come first): 9 steps.
  { model: "server", params: { scenario: "parallel+speculative", crash: 1 }, mutant: "readback-staging-is-commit", expect: "violates readback_sound", properties: ["readback_sound"], length: 9 },
  { model: "server", params: { scenario: "2pc+speculative", crash: 1, settleInFlight: true }, mutant: "settle-nothing-is-aborted", expect: "violates settle_sound_in_flight", properties: ["settle_sound_in_flight"], length: 9 },
  { model: "server", params: { scenario: "2pc+speculative", crash: 1, settleInFlight: true }, expect: "ok", counts: { distinct: 327_509, generated: 1_066_788, depth: 70 } },
  { model: "server", params: { scenario: "parallel+speculative", crash: 1, settleInFlight: true }, expect: "ok", counts: { distinct: 406_502, generated: 1_304_928, depth: 70 } },
  { model: "server", params: { scenario: "one-phase+speculative", crash: 1, settleInFlight: true }, expect: "ok", counts: { distinct: 10_800, generated: 28_452, depth: 42 } },
  { model: "server", params: { scenario: "one-phase+speculative", crash: 1, settleInFlight: true }, mutant: "settle-unfenced", expect: "violates settle_sound_in_flight", properties: ["settle_sound_in_flight"], length: 6 },
  // Idempotency keys (spec/server/idempotency.ts): the claim in front of every coordinator, claim -> run -> store ->
  // reply with a process crash between any two steps (parameter idempotency, off elsewhere: it adds the claim and
  // store writes, so the entries above keep their counts); idempotent_answer: a key is never answered two ways and
  // a stored answer is the transaction's outcome. Mutant: the claim stores "committed" before the transaction ran.
  { model: "server", params: { scenario: "one-phase+speculative", crash: 1, idempotency: true }, expect: "ok", counts: { distinct: 33_643, generated: 97_977, depth: 46 } },
  { model: "server", params: { scenario: "one-phase+speculative", crash: 1, idempotency: true }, mutant: "store-before-outcome", expect: "violates idempotent_answer", properties: ["idempotent_answer"], length: 9 },
  // Concluding by hand (spec/server/conclude.ts): the operator's direction taken as the outcome.
  { model: "server", params: { scenario: "2pc+speculative", crash: 1 }, mutant: "conclude-as-asked", expect: "violates conclude_sound", properties: ["conclude_sound"], length: 8 },

  // Failover (spec/failover, docs/protocols/failover.md): coordinator nodes n1 and n2, each its server coordinator and
  // process resolver in its own txlog namespace; n2 runs t1 and may crash (restart=false: for good), its lease expires
  // only once it is down, and the survivor's takeover role claims owners/n2 by CAS and runs a process resolver over n2's
  // namespace under a new epoch of n2's (the fence). survivors=2 adds n3 watching n2 too; survivors=0 is today's single
  // coordinator (2PC blocks: every_transaction_ends violated). Mutants: no fence (the dead node's late COMMIT lands
  // after the survivor aborted and forgot t1), a lost claim taken as won, the lease expiring under a live node (its
  // COMMIT fenced into doubt in a run where nothing failed: AC4), STAGING read by 2PC's rule.
  { model: "failover", params: { protocol: "2pc" }, expect: "ok", counts: { distinct: 9_252, generated: 21_886, depth: 46 } },
  { model: "failover", params: { protocol: "parallel" }, expect: "ok", counts: { distinct: 8_688, generated: 21_248, depth: 46 } },
  { model: "failover", params: { protocol: "2pc", survivors: 2 }, expect: "ok", counts: { distinct: 46_627, generated: 136_668, depth: 48 } },
  { model: "failover", params: { protocol: "2pc", logFault: 1 }, expect: "ok", counts: { distinct: 45_211, generated: 110_879, depth: 49 } },
  { model: "failover", params: { protocol: "2pc", shardCrash: 1 }, expect: "ok", counts: { distinct: 129_831, generated: 361_652, depth: 52 } },
  { model: "failover", params: { protocol: "2pc", restart: true, timeouts: false }, expect: "ok", counts: { distinct: 50_369, generated: 167_863, depth: 55 } },
  { model: "failover", params: { protocol: "parallel", restart: true, timeouts: false }, expect: "ok", counts: { distinct: 68_117, generated: 219_290, depth: 55 } },
  { model: "failover", params: { protocol: "2pc", survivors: 0 }, expect: "violates every_transaction_ends", properties: ["every_transaction_ends"], length: 7 },
  { model: "failover", params: { protocol: "2pc" }, mutant: "takeover-unfenced", expect: "violates AC2_irrevocable", properties: ["AC2_irrevocable"], length: 32 },
  { model: "failover", params: { protocol: "2pc", survivors: 2 }, mutant: "ignore-cas", expect: "violates one_survivor_resolves", properties: ["one_survivor_resolves"], length: 6 },
  { model: "failover", params: { protocol: "2pc" }, mutant: "lease-early", expect: "violates AC4_all_yes_commits", properties: ["AC4_all_yes_commits"], length: 15 },
  { model: "failover", params: { protocol: "parallel" }, mutant: "wrong-rule", expect: "violates implicit_commit_is_final", properties: ["implicit_commit_is_final"], length: 21 },
  // The speculative path on the failover model (shards running XA and local transactions, every resolver part, the
  // server model's ghost and properties): the survivor settles n2's speculation records and undo rows by the
  // speculative rule. survivorTx: n1 runs t2 of its own (survivorBranches=1: one branch, 2PC's one-phase path) with its
  // own resolver beside its takeover resolver. Mutants: the survivor's speculative part settles by 2PC's presumed abort
  // (a released branch taken for never applied: a committed speculation compensated); every resolver's shard scans
  // show every node's branches (n1's own resolver aborts n2's committed t1).
  { model: "failover", params: { protocol: "speculative" }, expect: "ok", counts: { distinct: 10_778, generated: 34_021, depth: 43 } },
  { model: "failover", params: { protocol: "speculative", logFault: 1 }, expect: "ok", counts: { distinct: 76_564, generated: 249_203, depth: 54 } },
  { model: "failover", params: { protocol: "speculative", restart: true, timeouts: false }, expect: "ok", counts: { distinct: 19_887, generated: 65_721, depth: 61 } },
  { model: "failover", params: { protocol: "2pc", survivorTx: true, survivorBranches: 1, timeouts: false }, expect: "ok", counts: { distinct: 180_623, generated: 696_692, depth: 58 } },
  { model: "failover", params: { protocol: "speculative", survivorTx: true, survivorBranches: 1, timeouts: false }, expect: "ok", counts: { distinct: 79_805, generated: 299_737, depth: 59 } },
  { model: "failover", params: { protocol: "speculative", survivors: 0 }, expect: "violates every_transaction_ends", properties: ["every_transaction_ends"], length: 6 },
  { model: "failover", params: { protocol: "speculative" }, mutant: "spec-presumed-abort", expect: "violates committed_never_rolled_back", properties: ["committed_never_rolled_back"], length: 29 },
  { model: "failover", params: { protocol: "2pc", survivorTx: true, survivorBranches: 1, timeouts: false }, mutant: "namespace-leak", expect: "violates AC2_irrevocable", properties: ["AC2_irrevocable"], length: 20 },
  // Rule 5 (issue 11, spec/failover/takeover.ts detachBeforeSettle): n2 hangs (frozen or cut off, its shard sessions
  // open, its prepared branches attached to them: another process's XA COMMIT/ROLLBACK answers NOTA) instead of crashing;
  // the survivor kills those sessions once it owns n2 and its fence is durable, then settles. 1.7 s, 1.5 s, 1.0 s in `suite --only failover` (load ~5).
  // Mutant no-detach: never kill, the branch stays attached and prepared for ever.
  { model: "failover", params: { protocol: "2pc", hang: true }, expect: "ok", counts: { distinct: 23_164, generated: 35_635, depth: 44 } },
  { model: "failover", params: { protocol: "parallel", hang: true }, expect: "ok", counts: { distinct: 26_224, generated: 40_596, depth: 49 } },
  { model: "failover", params: { protocol: "2pc", hang: true }, mutant: "no-detach", expect: "violates every_transaction_ends", properties: ["every_transaction_ends"], length: 7 },

  // PaxosCommit.tla (spec/reference/paxoscommit.ts, named by path as a user's model is). TLC's configuration (RM = {r1, r2},
  // 3 acceptors, Ballot = {0, 1}: 1,321,761 distinct, 16,959,159 generated, depth 28) takes minutes on one thread, so it
  // runs from test/checker/paxoscommit-tlc.suite.ts (`speccommit suite --suite ...`); here smaller configurations, whose
  // counts are this engine's (test/checker/paxoscommit.test.ts re-counts them with a plain search), and the mutants on
  // TLC's configuration (a violation stops the search early). Symmetry: RMs x acceptors, distinct = orbits.
  { model: "../spec/reference/paxoscommit.ts", params: { RM: 1, acceptors: 3, ballots: 2 }, expect: "ok", counts: { distinct: 1_461, generated: 9_936, depth: 15 } },
  { model: "../spec/reference/paxoscommit.ts", params: { RM: 3, acceptors: 3, ballots: 1 }, expect: "ok", counts: { distinct: 12_353, generated: 149_641, depth: 17 } },
  { model: "../spec/reference/paxoscommit.ts", params: { RM: 3, acceptors: 3, ballots: 1 }, symmetry: true, expect: "ok", counts: { distinct: 642 } },
  ...paxosCommitMutant("decideWithoutMajority", "TCConsistent", 14),
  ...paxosCommitMutant("acceptLowerBallot", "OneValueChosen", 9),
  ...paxosCommitMutant("phase2aIgnoresReports", "OneValueChosen", 9),
  ...paxosCommitMutant("abortAfterPrepare", "TCConsistent", 9),
  ...paxosCommitMutant("promiseNextBallot", "PCTypeOK", 2),

  // Three-phase commit (spec/reference/threepc.ts): crash failures, a perfect failure detector and the termination
  // protocol: Agreement and NonBlocking (every live RM decides) hold. With a partition (an imperfect detector, each side
  // running termination alone) Agreement fails: vote x3, preCommit, partition, p1 commits alone, p2 aborts (7 steps;
  // docs/protocols/three-phase-commit.md draws it). Mutants: 2PC's commit with 3PC's termination, commit before the
  // pre-commits are in, no termination protocol (blocks, as 2PC does).
  { model: "ThreePC", params: { N: 3, crashes: 2, partition: false }, expect: "ok", counts: { distinct: 442, generated: 1_083, depth: 14 } },
  { model: "ThreePC", params: { N: 4, crashes: 3, partition: false }, expect: "ok", counts: { distinct: 2_987, generated: 9_302, depth: 19 } },
  { model: "ThreePC", params: { N: 3, crashes: 0, partition: true }, expect: "violates Agreement", properties: ["Agreement"], length: 7 },
  { model: "ThreePC", params: { N: 3, crashes: 2 }, mutant: "skipPreCommit", expect: "violates Agreement", properties: ["Agreement"], length: 6 },
  { model: "ThreePC", params: { N: 3, crashes: 2 }, mutant: "commitBeforeAcks", expect: "violates Agreement", properties: ["Agreement"], length: 7 },
  { model: "ThreePC", params: { N: 3, crashes: 2 }, mutant: "noTermination", expect: "violates NonBlocking", properties: ["NonBlocking"], length: 3 },

  // Cross-shard deadlocks (spec/deadlock): the detector's victim choice over every wait-for snapshot of
  // txs transactions on shards shards, at most `waits` waits and `settled` transactions with a durable fact.
  // docs/deadlock.md.
  { model: "deadlock", params: { txs: 2, shards: 2, waits: 4, settled: 2 }, expect: "ok", counts: { distinct: 256, generated: 1_025, depth: 9 } },
  { model: "deadlock", params: { txs: 3, shards: 3, waits: 3, settled: 3 }, expect: "ok", counts: { distinct: 53_440, generated: 308_929, depth: 10 } },
  { model: "deadlock", params: { txs: 4, shards: 2, waits: 4, settled: 1 }, expect: "ok", counts: { distinct: 96_967, generated: 480_017, depth: 7 } },
  { model: "deadlock", params: { txs: 4, shards: 4, waits: 4, settled: 0 }, expect: "ok", counts: { distinct: 163_669, generated: 637_249, depth: 5 } },
  ...deadlockMutant("victim-decided", "never_victim_decided", 3),
  ...deadlockMutant("victim-prepared", "never_victim_prepared_everywhere", 3),
  ...deadlockMutant("first-cycle-only", "every_cycle_broken", 4),
  ...deadlockMutant("victim-off-cycle", "no_victim_without_cycle", 3),
  ...deadlockMutant("whole-cycle", "minimal", 2),
  ...deadlockMutant("whole-cycle", "one_victim_per_lone_cycle", 2),

  // Commit timestamps and snapshot reads (spec/time): the HLC of spec/time/hlc.ts over an abstract physical
  // clock that may jump back, transfers under two-phase locking, snapshot reads that wait for safe time.
  // docs/protocols/timestamps.md.
  { model: "timestamps", params: { txs: 2, ticks: 2, jumps: 1, reads: 1 }, expect: "ok", counts: { distinct: 66_000, generated: 202_855, depth: 17 } },
  { model: "timestamps", params: { txs: 2, ticks: 2, jumps: 1, reads: 2 }, expect: "ok", counts: { distinct: 238_760, generated: 724_487, depth: 19 } },
  ...timeMutant("observe-no-advance", "client_causal", 3),
  ...timeMutant("read-no-wait", "snapshot_stable", 5),
  ...timeMutant("read-no-wait", "snapshot_atomic", 6),
  ...timeMutant("ts-at-begin", "dependent_later", 7),

  // Safe time across two coordinator nodes (spec/time/nodes-model.ts, spec/time/cluster.ts): published values, a
  // death, a takeover. docs/protocols/timestamps.md, "Several nodes". About 2 s in all.
  { model: "safe-nodes", params: { max: 4, reads: 1 }, expect: "ok", counts: { distinct: 39_982, generated: 93_688, depth: 14 } },
  { model: "safe-nodes", params: { max: 4, reads: 1 }, mutant: "own-only", expect: "violates snapshot_stable", properties: ["snapshot_stable"], length: 4 },
  { model: "safe-nodes", params: { max: 4, reads: 1 }, mutant: "dead-ignored", expect: "violates snapshot_stable", properties: ["snapshot_stable"], length: 6 },
];

/** A timestamps mutant entry: the property that catches it alone and its shortest trace, on the default configuration. */
function timeMutant(mutant: string, property: string, length: number): SuiteEntry[] {
  return [{ model: "timestamps", params: { txs: 2, ticks: 2, jumps: 1, reads: 1 }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A deadlock-detector mutant entry: the property that catches it alone and its shortest trace, on 3 transactions over 2 shards. */
function deadlockMutant(mutant: string, property: string, length: number): SuiteEntry[] {
  return [{ model: "deadlock", params: { txs: 3, shards: 2, waits: 4, settled: 2 }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A 2PC mutant entry: the property that must catch it, its shortest trace's length in steps, on a scenario with no faults unless given. */
function twopcMutant(mutant: string, scenario: string, property: string, length: number, faults: Record<string, number | boolean> = {}): SuiteEntry[] {
  return [{ model: "twopc", params: { scenario, crash: 0, shardCrash: 0, ...faults }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A parallel-commit mutant entry: the property that catches it alone, its shortest trace, on 2 shards x 1 transfer with no faults unless given. */
function parallelMutant(mutant: string, property: string, length: number, params: Record<string, string | number | boolean> = {}): SuiteEntry[] {
  return [{ model: "parallel", params: { scenario: "transfer", crash: 0, shardCrash: 0, ...params }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A mutant of the parallel-commit resolver in the mixed model: the property that catches it alone and its shortest trace, with no faults unless given. */
function mixedMutant(mutant: string, property: string, length: number, params: Record<string, string | number | boolean>): SuiteEntry[] {
  return [{ model: "mixed", params: { crash: 0, shardCrash: 0, ...params }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A speculative mutant entry: the property that catches it alone, its shortest trace, on 2 shards x 1 transfer with no faults unless given. */
function speculativeMutant(mutant: string, property: string, length: number, params: Record<string, string | number | boolean> = {}): SuiteEntry[] {
  return [{ model: "speculative", params: { scenario: "transfer", crash: 0, shardCrash: 0, ...params }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/** A PaxosCommit mutant on TLC's configuration: the property that catches it alone and its shortest trace. */
function paxosCommitMutant(mutant: string, property: string, length: number): SuiteEntry[] {
  return [{ model: "../spec/reference/paxoscommit.ts", params: { RM: 2, acceptors: 3, ballots: 2 }, mutant, expect: `violates ${property}`, properties: [property], length }];
}

/**
 * The properties a symmetry-reduced entry checks: every invariant and `eventually` property of the model. Leads-to is
 * refused under symmetry (its fair actions name processes, which a permutation renames: checker/graph.ts); the
 * unreduced entries check it.
 */
function underSymmetry(model: string, params: Record<string, string | number | boolean>): string[] {
  const f = findFactory(model);
  const m = f.build({ ...f.params, ...params }, undefined);
  return [...Object.keys(m.invariants), ...Object.keys(m.eventually ?? {})];
}

/** A protocol model's entry with symmetry reduction (spec/world/symmetry.ts): interchangeable transactions of a twin scenario. */
function symmetric(model: string, params: Record<string, string | number | boolean>, counts: { distinct: number; generated: number; depth: number }): SuiteEntry {
  return { model, params, symmetry: true, properties: underSymmetry(model, params), expect: "ok", counts };
}

// --- checker12's block ---
/**
 * The three protocol configurations issue 12 measured one worker's states/s on (a quiet machine), with those
 * states/s: `npm run bench:checker` runs each before (`--before`) and now, against the issue's 5x goal. Each must
 * be an "ok" entry of `suite` above with its counts (the bench takes them from there).
 */
export const ISSUE_12_BENCH: ReadonlyArray<{ model: string; params: Record<string, string | number | boolean>; statesPerSecond: number }> = [
  { model: "twopc", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 }, statesPerSecond: 22_264 },
  { model: "speculative", params: { scenario: "transfer", crash: 1, shardCrash: 1 }, statesPerSecond: 15_988 },
  { model: "parallel", params: { scenario: "conflict", crash: 1, shardCrash: 0, timeouts: false }, statesPerSecond: 12_661 },
];
// --- end of checker12's block ---
