/**
 * Parallel commit as the server runs it (spec/protocols/one-phase.ts):
 * one branch takes 2PC's one-phase path, two or more take parallel commit.
 */
import { describe, expect, it } from "vitest";
import { withOnePhase } from "../../spec/protocols/one-phase.ts";
import * as parallel from "../../spec/protocols/parallel/coordinator.ts";
import * as speculative from "../../spec/protocols/speculative/coordinator.ts";
import type { Effect } from "../../spec/kernel/effects.ts";

type OnePhaseOrParallelInput = parallel.CoordinatorInput;
import { transcript } from "./transcript.ts";

const opts = { voteTimeoutMs: 1_000, retryDelayMs: 50, maxAttempts: 3 };
const ok = { ok: true } as const;
const show = (e: Effect): string =>
  e.t === "log.put" ? `put ${e.value.kind}` : e.t === "xa.commit" ? `commit ${e.shard}${e.onePhase === true ? " one-phase" : ""}` : "shard" in e ? `${e.t} ${e.shard}` : e.t;

describe("one-branch transactions take 2PC's one-phase path", () => {
  const { role, done: coordinatorDone } = withOnePhase(opts, parallel.coordinator(opts), parallel.coordinatorDone);

  it("one branch: XA COMMIT ONE PHASE after the exec, no prepare, no record; then done", () => {
    const { lines, st } = transcript<ReturnType<typeof role.start>, OnePhaseOrParallelInput, Effect>(
      role,
      [
        { t: "request", tx: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }, { account: 2, delta: 5 }] }], epoch: 1 },
        { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: "b:1" },
        { t: "xa.commit", tx: "t1", shard: "s1", r: ok },
      ],
      show,
    );
    expect(lines).toEqual([["xa.exec s1", "timer"], ["commit s1 one-phase"], ["reply"]]);
    expect(st.path).toBe("one_phase");
    expect(coordinatorDone(st)).toBe(true);
  });

  it("two branches: parallel commit (prepare at once, STAGING once every connection is known)", () => {
    const { lines, st } = transcript<ReturnType<typeof role.start>, OnePhaseOrParallelInput, Effect>(
      role,
      [
        { t: "request", tx: "t2", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }] }, { shard: "s2", ops: [{ account: 2, delta: 5 }] }], epoch: 1 },
        { t: "xa.exec", tx: "t2", shard: "s1", r: ok, conn: "b:1" },
        { t: "xa.exec", tx: "t2", shard: "s2", r: ok, conn: "b:2" },
      ],
      show,
    );
    expect(lines).toEqual([["xa.exec s1", "xa.exec s2", "timer"], ["xa.prepare s1"], ["xa.prepare s2", "put staging"]]);
    expect(st.path).toBe("many");
    expect(coordinatorDone(st)).toBe(false);
  });

  it("the speculative path too: one branch is one-phase XA, two are local transactions with undo rows", () => {
    const { role: spec } = withOnePhase(opts, speculative.coordinator({ applyTimeoutMs: 1_000, retryDelayMs: 50, maxRetries: 3 }), speculative.coordinatorDone);
    const one = spec.step(spec.start(), { t: "request", tx: "t3", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }, { account: 2, delta: 5 }] }], epoch: 1 });
    expect(one.effects.map((e) => e.t)).toEqual(["xa.exec", "timer"]);
    const two = spec.step(spec.start(), {
      t: "request",
      tx: "t4",
      branches: [
        { shard: "s1", ops: [{ account: 1, delta: -5 }] },
        { shard: "s2", ops: [{ account: 2, delta: 5 }] },
      ],
      epoch: 1,
    });
    expect(two.effects.map((e) => e.t)).toEqual(["local.apply", "local.apply", "timer"]);
  });
});
