/**
 * Beyond the suite's counterexamples: seeded random walks of each role model
 * with every fault in its budget (process crash, shard crash, a lost txlog
 * answer), drawn as traces (checker/rebuild.ts toTrace) and replayed on the
 * interpreter with the memory adapters (memory-replay.ts). Every walk must
 * replay whole, or stop at a fault the memory adapters cannot produce
 * (CANNOT_EXPRESS_WHY); and the walks together must meet every kind of
 * fault the replay arms, so that none of those paths goes unexercised.
 */
import { describe, expect, it } from "vitest";
import { resolveFactory } from "../../checker/load.ts";
import { buildModel, resolveParams } from "../../checker/run.ts";
import { toTrace } from "../../checker/rebuild.ts";
import { rolesOfHeader } from "../../conformance/replay.ts";
import { Rng } from "../../runtime/adapters/memory.ts";
import { replayOnMemory } from "./memory-replay.ts";

const WALKS = 80;
const LENGTH_MAX = 80;

const configs: readonly { model: string; params: Record<string, string | number | boolean> }[] = [
  { model: "twopc", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 } },
  { model: "twopc", params: { scenario: "conflict", crash: 1, shardCrash: 1, logFault: 1 } },
  { model: "parallel", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 } },
  { model: "speculative", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 } },
  { model: "mixed", params: { scenario: "transfer", crash: 1, shardCrash: 1, logFault: 1 } },
  { model: "server", params: { scenario: "2pc+speculative", crash: 1, shardCrash: 1, logFault: 1 } },
  // The idempotency claim in front of every coordinator (spec/server/idempotency.ts withIdempotency).
  { model: "server", params: { scenario: "2pc+speculative", crash: 1, shardCrash: 1, logFault: 1, idempotency: true } },
];

/** The environment's answers and faults whose replay sets an adapter's knob: each must occur in some walk. */
const FAULT_LABELS = [/ -> UNAVAILABLE \(written\)$/, / -> UNAVAILABLE \(not written\)$/, /^list .* -> UNAVAILABLE$/, /^CRASH \(kill -9\)$/, / -> committed, then CRASH$/, / -> CRASH before commit$/, /^CRASH \(coordinators/];

/** A fault is drawn a third as often as any other action, so that walks get past the start before the crashes. */
function pickAction(rng: Rng, as: readonly unknown[]): unknown {
  const isFault = (a: unknown) => {
    const x = a as { k?: string; fault?: boolean };
    return x.fault === true || x.k === "crash" || x.k === "shardCrash";
  };
  const weights = as.map((a) => (isFault(a) ? 1 : 3));
  let r = rng.next() * weights.reduce((x, y) => x + y, 0);
  for (let i = 0; i < as.length; i++) if ((r -= weights[i]!) < 0) return as[i];
  return as[as.length - 1];
}

describe("random walks with faults replay on the interpreter with the memory adapters", () => {
  const seen = new Map<string, number>();
  it.each(configs.map((c) => [`${c.model} ${JSON.stringify(c.params)}`, c] as const))("%s", async (_name, c) => {
    const f = await resolveFactory(c.model);
    const params = resolveParams(f, c.params);
    const model = buildModel(f, params);
    const rng = new Rng(0x5eed + c.model.length);
    const outcomes: Record<string, number> = {};
    for (let walk = 0; walk < WALKS; walk++) {
      const states: unknown[] = [[...model.init()][0]];
      const actions: unknown[] = [];
      for (let i = 0; i < LENGTH_MAX; i++) {
        const as = [...model.actions(states[i]!)];
        if (as.length === 0) break;
        const a = pickAction(rng, as);
        actions.push(a);
        states.push(model.next(states[i]!, a));
      }
      const drawn = toTrace(model, { states, actions }, { params, violation: "none (a random walk)" });
      const trace = { ...drawn, header: { ...drawn.header, model: f.name } };
      for (const s of trace.steps) for (const re of FAULT_LABELS) if (re.test(s.label ?? "")) seen.set(re.source, (seen.get(re.source) ?? 0) + 1);
      const r = await replayOnMemory(trace, rolesOfHeader(trace.header));
      const kind = r.ok ? "whole" : (r.cannot ?? "failed");
      outcomes[kind] = (outcomes[kind] ?? 0) + 1;
      expect(r.ok || r.cannot !== undefined, `${c.model} walk ${walk}: ${r.ok ? "" : r.message} ${r.ok ? "" : JSON.stringify({ expected: r.expected, got: r.got })}`).toBe(true);
    }
    expect(outcomes.whole ?? 0, JSON.stringify(outcomes)).toBeGreaterThan(WALKS / 2);
  }, 300_000);

  it("the walks meet every fault the replay arms", () => {
    for (const re of FAULT_LABELS) expect(seen.get(re.source) ?? 0, re.source).toBeGreaterThan(0);
  });
});
