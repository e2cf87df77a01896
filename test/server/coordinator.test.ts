/**
 * The coordinator the server runs (spec/server/coordinator.ts): the request
 * names the protocol; one branch takes the one-phase path, two or more the
 * protocol's own coordinator.
 */
import { describe, expect, it } from "vitest";
import { serverCoordinator } from "../../spec/server/coordinator.ts";
import type { CoordinatorInput } from "../../spec/protocols/protocol.ts";
import type { Effect } from "../../spec/kernel/effects.ts";
import { ProtocolViolation } from "../../spec/kernel/role.ts";
import { transcript } from "../protocols/transcript.ts";

const opts = { voteTimeoutMs: 1_000, retryDelayMs: 50, attemptsMax: 3 };
const ok = { ok: true } as const;
const show = (e: Effect): string =>
  e.t === "log.put" ? `put ${e.value.kind}` : e.t === "xa.commit" ? `commit ${e.shard}${e.onePhase === true ? " one-phase" : ""}` : "shard" in e ? `${e.t} ${e.shard}` : e.t;

describe("one-branch transactions take 2PC's one-phase path", () => {
  const role = serverCoordinator(opts);
  const coordinatorDone = role.done;

  it("one branch: XA COMMIT ONE PHASE after the exec, no prepare, no record; then done", () => {
    const { lines, st } = transcript<ReturnType<typeof role.start>, CoordinatorInput, Effect>(
      role,
      [
        { t: "request", tx: "t1", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }, { account: 2, delta: 5 }] }], epoch: 1, protocol: "parallel" },
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
    const { lines, st } = transcript<ReturnType<typeof role.start>, CoordinatorInput, Effect>(
      role,
      [
        { t: "request", tx: "t2", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }] }, { shard: "s2", ops: [{ account: 2, delta: 5 }] }], epoch: 1, protocol: "parallel" },
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
    const one = role.step(role.start(), { t: "request", tx: "t3", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }, { account: 2, delta: 5 }] }], epoch: 1, protocol: "speculative" });
    expect(one.effects.map((e) => e.t)).toEqual(["xa.exec", "timer"]);
    const two = role.step(role.start(), {
      t: "request",
      tx: "t4",
      branches: [
        { shard: "s1", ops: [{ account: 1, delta: -5 }] },
        { shard: "s2", ops: [{ account: 2, delta: 5 }] },
      ],
      epoch: 1,
      protocol: "speculative",
    });
    expect(two.effects.map((e) => e.t)).toEqual(["local.apply", "local.apply", "timer"]);
  });

  it("a request that names no protocol runs the default (2PC): two branches are prepared", () => {
    const out = role.step(role.start(), { t: "request", tx: "t5", branches: [{ shard: "s1", ops: [{ account: 1, delta: -5 }] }, { shard: "s2", ops: [{ account: 2, delta: 5 }] }], epoch: 1 });
    expect(out.st.protocol).toBe("2pc");
    expect(out.effects.map((e) => e.t)).toEqual(["xa.exec", "xa.exec", "timer"]);
  });

  it("asserts what cannot happen: a second request, a result before any request, an unregistered protocol", () => {
    const started = role.step(role.start(), { t: "request", tx: "t6", branches: [{ shard: "s1", ops: [] }], epoch: 1 }).st;
    expect(() => role.step(started, { t: "request", tx: "t6", branches: [], epoch: 1 })).toThrow(ProtocolViolation);
    expect(() => role.step(role.start(), { t: "timeout", id: "vote" })).toThrow(ProtocolViolation);
    expect(() => role.step(role.start(), { t: "request", tx: "t7", branches: [], epoch: 1, protocol: "3pc" })).toThrow(/not registered/);
  });
});
