/**
 * Every suite mutant's counterexample, in the one trace dialect
 * (docs/traces.md): replayed against the roles it was found with (the
 * model's roles with the mutant), every role step asks for exactly the
 * recorded effects; replayed against the correct roles, it parts ways at a
 * role step, the first where the mutant's roles ask for something else. A
 * mutant that changes no role (only what the world or a ghost does) replays
 * against the correct roles too: ENVIRONMENT_ONLY names those, with why.
 */
import { describe, expect, it } from "vitest";
import { loadSuite } from "../../checker/suite.ts";
import { runCheck } from "../../checker/run.ts";
import { replayTrace, rolesOfHeader } from "../../conformance/replay.ts";
import { replayOnInterpreter } from "./interpreter-replay.ts";
import { CANNOT_EXPRESS_WHY, replayOnMemory, type CannotExpress } from "./memory-replay.ts";

/** The suite as `speccommit suite` reads it (model files resolved and loaded). */
const suite = await loadSuite();

/** Mutants whose roles are the correct ones: the bug is in the environment or a ghost the world runs. */
const ENVIRONMENT_ONLY: Readonly<Record<string, string>> = {
  // The read-back rules (spec/server/readback.ts) are not a role: the server runs them when it answers
  // GET /transactions/:id or settles an in-doubt answer, and the model checks them in every state (readback_sound,
  // settle_sound_in_flight) without a step of their own. Their mutants leave every role as it is.
  "server/readback-staging-is-commit": "a read-back rule (reads a staging record as committed), checked in every state, not a role step",
  "server/settle-nothing-is-aborted": "a settle rule (nothing durable read as aborted), checked in every state, not a role step",
  "server/settle-unfenced": "a settle rule (nothing durable read as aborted without the settle fence), checked in every state, not a role step",
  "server/conclude-as-asked": "concluding by hand (spec/server/conclude.ts) is a verdict from read-back, checked in every state, not a role step",
};

/**
 * Possibility liveness (`eventually`): the counterexample is a shortest path
 * to a state from which the goal can no longer be reached; the mutant's
 * roles differ only in what they would do after it, so the path itself
 * replays against the correct roles too. The same mutants' lassos (the
 * `*_finishes` entries) show the differing steps, and replay apart.
 */
const DIFFERS_AFTER_PREFIX: Readonly<Record<string, string>> = {
  "twopc/nota-retries-forever/AC5_terminates": "retries a NOTA answer forever, after the shard crash the path ends with",
  "parallel/keep-records/AC5_terminates": "never deletes the record once the path has ended",
  "mixed/keep-records/AC5_terminates": "never deletes the record once the path has ended",
  "server/first-part-only/every_transaction_ends": "the later scans that never run the speculative part come after the path",
};

/** Mutants whose counterexample asks for an effect with a mutant-only field (spec/kernel/effects.ts), which the interpreter refuses to run. */
const REFUSED: readonly string[] = [
  "twopc/no-funds-check",
  "parallel/no-funds-check",
  "parallel/staging-without-conns",
  "speculative/spendable-credits",
  "speculative/undo-separate",
  "speculative/compensate-keeps-row",
  "speculative/release-deletes-row",
];

/**
 * Counterexamples that meet a fault of the model the memory adapters cannot
 * produce (memory-replay.ts CANNOT_EXPRESS_WHY says why): their replay with
 * the memory adapters is checked up to that step and stops there.
 */
const CANNOT_EXPRESS: Readonly<Record<string, CannotExpress>> = {
  "twopc/presume-commit/AC3_commit_needs_all_yes": "resolver-on-branch-connection",
  "twopc/rollback-committed/AC1_agreement": "resolver-on-branch-connection",
};

const ROLE_MODELS = new Set(["twopc", "parallel", "speculative", "mixed", "server"]);
const entries = suite.filter((e) => e.mutant !== undefined && ROLE_MODELS.has(e.model) && e.expect.startsWith("violates ") && (e.workers ?? 1) === 1);

describe("suite mutants' counterexamples replay against the roles", () => {
  it("every counterexample listed as meeting a fault the memory adapters cannot produce is a suite entry", () => {
    const ids = new Set(entries.map((e) => `${e.model}/${e.mutant}/${e.properties?.join(",") ?? ""}`));
    for (const id of Object.keys(CANNOT_EXPRESS)) expect(ids, id).toContain(id);
  });

  it.each(entries.map((e) => [`${e.model} ${e.mutant} ${e.properties?.join(",") ?? ""} ${JSON.stringify(e.params)}`, e] as const))("%s", async (_name, e) => {
    const r = await runCheck({ model: e.model, params: e.params, mutant: e.mutant, properties: e.properties });
    const v = r.violations[0]!;
    expect(v.trace.header.mutant).toBe(e.mutant);
    const withMutant = replayTrace(v.trace);
    expect(withMutant).toMatchObject({ ok: true });
    // The same role steps on the real interpreter: the same effects come out, or it refuses a mutant-only effect.
    const onInterpreter = await replayOnInterpreter(v.trace, rolesOfHeader(v.trace.header));
    if (!onInterpreter.ok && onInterpreter.refused === true) {
      expect(REFUSED, `${e.model}/${e.mutant}: the interpreter refuses step ${onInterpreter.step}: ${onInterpreter.message}`).toContain(`${e.model}/${e.mutant}`);
    } else {
      expect(onInterpreter).toMatchObject({ ok: true, steps: withMutant.ok ? withMutant.steps : -1 });
    }
    const key = `${e.model}/${e.mutant}`;
    // The same schedule on the interpreter with the memory adapters as the environment: they produce every answer.
    const onMemory = await replayOnMemory(v.trace, rolesOfHeader(v.trace.header));
    const id = `${key}/${e.properties?.join(",") ?? ""}`;
    if (!onMemory.ok && onMemory.refused === true) {
      expect(REFUSED, `${key}: refused with the memory adapters at step ${onMemory.step}`).toContain(key);
      expect(onMemory.step).toBe(onInterpreter.ok ? -1 : onInterpreter.step);
    } else if (!onMemory.ok && onMemory.cannot !== undefined) {
      expect(CANNOT_EXPRESS[id], `${id}: ${onMemory.message}`).toBe(onMemory.cannot);
      expect(CANNOT_EXPRESS_WHY[onMemory.cannot]).toBeDefined();
    } else {
      expect(CANNOT_EXPRESS[id], `${id} is listed as meeting a fault the memory adapters cannot produce, and replays whole`).toBeUndefined();
      expect(onMemory).toMatchObject({ ok: true, steps: withMutant.ok ? withMutant.steps : -1 });
    }
    const correct = replayTrace(v.trace, rolesOfHeader(v.trace.header, { correct: true }));
    const prefixOnly = DIFFERS_AFTER_PREFIX[`${key}/${e.properties?.join(",")}`];
    if (prefixOnly !== undefined) {
      expect(correct, `${key}: ${prefixOnly}`).toMatchObject({ ok: true });
      return;
    }
    if (ENVIRONMENT_ONLY[key] !== undefined) {
      expect(correct, `${key} is declared environment-only: ${ENVIRONMENT_ONLY[key]}`).toMatchObject({ ok: true });
      return;
    }
    expect(correct.ok, `${key}: the correct roles reproduce the whole counterexample`).toBe(false);
    if (correct.ok) return;
    // The divergence is a role step, at or before the violation.
    const at = v.trace.steps[correct.step]!;
    expect(at.step).toBe(correct.step);
    expect(["coordinator", "resolver"]).toContain(at.actor);
    expect(correct.step).toBeLessThanOrEqual(v.trace.steps.length - 1);
    expect(correct.got).not.toEqual(correct.expected);
  }, 300_000);
});
