/**
 * The cross-check of the memory adapters (memory-replay.ts) can fail: the
 * same counterexample that replays whole on the interpreter with the memory
 * adapters stops, at the step the trace names, when one adapter is
 * deliberately wrong. mutants.test.ts replays every suite mutant's
 * counterexample with the correct adapters.
 */
import { describe, expect, it } from "vitest";
import { loadSuite } from "../../checker/suite.ts";
import { runCheck } from "../../checker/run.ts";
import { rolesOfHeader } from "../../conformance/replay.ts";
import type { ShardId, TxId, XaResult } from "../../spec/kernel/effects.ts";
import type { Trace } from "../../spec/kernel/trace.ts";
import { MemoryXa } from "../../runtime/adapters/memory.ts";
import { MemoryLocal } from "../../runtime/adapters/memory-local.ts";
import { replayOnMemory, type MemoryFactories } from "./memory-replay.ts";

/** The suite as `speccommit suite` reads it (model files resolved and loaded). */
const suite = await loadSuite();

/** A prepare that answers ok where the shard did not answer (it had crashed): the vote the coordinator must never count. */
class PrepareOkAfterCrash extends MemoryXa {
  override prepare(tx: TxId, shard: ShardId): Promise<XaResult> {
    return super.prepare(tx, shard).then((r) => (!r.ok && r.err === "UNAVAILABLE" ? { ok: true } : r));
  }
}

/** kill -9 that loses the prepared branches too (a shard without a durable prepare). */
class CrashLosesPrepared extends MemoryXa {
  override crashShard(shard: ShardId): void {
    super.crashShard(shard);
    const s = this.state.get(shard)!;
    this.state.set(shard, { ...s, branches: [] });
  }
}

/** A process crash whose connections the shards drop at once (MemoryXa before this check): no statement of the dead process lands. */
class DropsConnectionsAtCrash extends MemoryXa {
  override crashProcess(): void {
    super.crashProcess();
    for (const [shard, s] of this.state) for (const c of s.conns) if (c.id.endsWith(`@${this.incarnation - 1}`)) this.notice(shard, c.id);
  }
}

/** An apply that makes its credits spendable at once instead of holding them pending until the outcome is final. */
class ApplyWithoutEscrow extends MemoryLocal {
  override apply(...args: Parameters<MemoryLocal["apply"]>): ReturnType<MemoryLocal["apply"]> {
    const shard = args[1];
    return super.apply(...args).then((r) => {
      const s = this.state.get(shard)!;
      this.state.set(shard, { ...s, accounts: s.accounts.map(([a, balance, pending]) => [a, balance + pending, 0] as const) });
      return r;
    });
  }
}

async function counterexample(model: string, mutant: string, property: string): Promise<Trace> {
  const e = suite.find((x) => x.model === model && x.mutant === mutant && x.properties?.join(",") === property);
  if (e === undefined) throw new Error(`no suite entry ${model}/${mutant}/${property}`);
  const r = await runCheck({ model: e.model, params: e.params, mutant: e.mutant, properties: e.properties });
  return r.violations[0]!.trace;
}

const cases: readonly { name: string; entry: [string, string, string]; adapters: MemoryFactories; step: number; label: string; message: RegExp }[] = [
  {
    name: "a prepare that answers ok after the shard crashed",
    entry: ["twopc", "commit-despite-failed-prepare", "AC1_agreement"],
    adapters: { xa: (b, c, r) => new PrepareOkAfterCrash(b, c, r) },
    step: 14,
    label: "PREPARE s2 -> UNAVAILABLE",
    message: /the adapter answered PREPARE s2 with ok, the checker's world with UNAVAILABLE/,
  },
  {
    name: "a kill -9 that loses prepared branches",
    entry: ["twopc", "nota-retries-forever", "AC5_terminates"],
    adapters: { xa: (b, c, r) => new CrashLosesPrepared(b, c, r) },
    step: 24,
    label: "CRASH (kill -9)",
    message: /s1: MemoryXa holds another state than the world's/,
  },
  {
    name: "a process crash whose connections the shards drop at once",
    entry: ["parallel", "no-fence", "AC2_irrevocable"],
    adapters: { xa: (b, c, r) => new DropsConnectionsAtCrash(b, c, r) },
    step: 18,
    label: "list epoch* -> 1 record",
    message: /s1: MemoryXa holds another state than the world's/,
  },
  {
    name: "an apply whose credits are spendable at once",
    entry: ["speculative", "delete-before-final", "every_speculation_ends"],
    adapters: { local: (b, c, r) => new ApplyWithoutEscrow(b, c, r) },
    step: 9,
    label: "apply s2 -> ok",
    message: /s2: MemoryLocal holds another state than the world's/,
  },
];

describe("a wrong memory adapter fails the replay of a named counterexample", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const trace = await counterexample(...c.entry);
    const roles = rolesOfHeader(trace.header);
    // The correct adapters replay the whole counterexample: the failure below is the wrong adapter's.
    expect(await replayOnMemory(trace, roles)).toMatchObject({ ok: true });
    const r = await replayOnMemory(trace, roles, c.adapters);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.cannot).toBeUndefined();
    expect(r.refused).toBeUndefined();
    expect(r.step).toBe(c.step);
    expect(trace.steps.find((s) => s.step === c.step)?.label).toBe(c.label);
    expect(r.message).toMatch(c.message);
  }, 120_000);
});
