// readBackWithout (spec/server/readback.ts) in every reachable state of the server model: with any one shard not
// answering, its answer is null or exactly what readBack says on the full facts (which readback_sound checks
// against what is final). So answering from a decision record while a shard is down can never contradict the
// answer with every shard up. (Reading the partial facts as if the missing shard held nothing happens to agree
// too in these configurations, counted as asIfEmptyDiffers = 0: the completions' caution is not exercised here,
// only their soundness.)
import { describe, expect, it } from "vitest";
import { serverModel, serverScenario } from "../../spec/server/model.ts";
import { factsOf } from "../../spec/server/readback-sound.ts";
import { readBack, readBackWithout, REGISTERED_RULES } from "../../spec/server/readback.ts";
import type { DurableFacts } from "../../spec/protocols/protocol.ts";

const without = (f: DurableFacts, s: string): DurableFacts => ({
  records: f.records,
  history: f.history.filter((x) => x !== s),
  prepared: f.prepared.filter((x) => x !== s),
  undo: f.undo.filter((u) => u.branch !== s),
});

function explore(scenario: string, crash: number) {
  const sc = serverScenario(scenario);
  const model = serverModel({ scenario: sc, budget: { crash, shardCrash: 0, logFault: 0 }, timeouts: false });
  const seen = new Set<string>();
  const queue = [...model.init()];
  let states = 0;
  let answered = 0;
  let differs = 0;
  let asIfEmptyDiffers = 0;
  while (queue.length > 0) {
    const w = queue.pop()!;
    const k = Buffer.from(model.encode(w)).toString("base64");
    if (seen.has(k)) continue;
    seen.add(k);
    states++;
    sc.txs.forEach((tx, t) => {
      const full = factsOf(sc, w as never, t, REGISTERED_RULES);
      const truth = readBack(tx.id, full);
      for (const s of sc.shards) {
        const part = without(full, s);
        const o = readBackWithout(tx.id, part, [s]);
        if (o !== null) {
          answered++;
          if (o.status !== truth?.status) differs++;
        }
        const naive = readBack(tx.id, part);
        if (naive !== null && naive.status !== "in_doubt" && naive.status !== truth?.status) asIfEmptyDiffers++;
      }
    });
    for (const a of model.actions(w)) queue.push(model.next(w, a));
  }
  return { states, answered, differs, asIfEmptyDiffers };
}

describe("readBackWithout never answers otherwise than readBack on the full facts", () => {
  it("server 2pc+speculative, no crash: every reachable state, every shard down in turn", () => {
    const r = explore("2pc+speculative", 0);
    expect(r.states).toBe(16_936);
    expect(r.answered).toBeGreaterThan(0);
    expect(r.differs).toBe(0);
    expect(r.asIfEmptyDiffers).toBe(0);
  }, 600_000);
  it("server one-phase+speculative, a process crash: every reachable state, every shard down in turn", () => {
    const r = explore("one-phase+speculative", 1);
    expect(r.states).toBe(10_800);
    expect(r.answered).toBeGreaterThan(0);
    expect(r.differs).toBe(0);
  }, 600_000);
});
