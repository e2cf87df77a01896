/**
 * Golden diagrams: the labels and the DOT of a recorded live transaction of
 * each protocol and of a counterexample, compared with the files in
 * testdata/. After a deliberate change to labels or layout, rewrite them
 * with `npx vitest run test/traces/golden.test.ts -u` and read the diff.
 *
 * The live transactions are recorded by the server's engine over the
 * in-memory environment models on virtual time (test/runtime/sim.ts), so that
 * they are the same on every run: a fixed seed, a fixed transaction id, and
 * the wall-clock start set to 0. test/traces/live.test.ts checks traces of a
 * real server.
 */
import { describe, expect, it } from "vitest";
import type { ProtocolName as Protocol } from "../../spec/protocols/registry.ts";
import { runCheck } from "../../checker/run.ts";
import { toDot } from "../../traces/render.ts";
import { lifelineOf, type Trace } from "../../spec/kernel/trace.ts";
import { RESOLVER_INTERVAL_MS, world } from "../runtime/sim.ts";

const golden = (name: string) => new URL(`./testdata/${name}.golden`, import.meta.url).pathname;

/** The steps as one line each (row, actor, time, what the box says), the messages, then the DOT. */
function goldenText(t: Trace): string {
  const lines = t.steps.map((s) => `${String(s.step).padStart(3)}  ${lifelineOf(s.actor, s.tx, t.header.tx).padEnd(16)} ${s.at_ms === undefined ? "" : `+${s.at_ms.toFixed(3)} ms  `}${s.label ?? String(s.input)}`);
  const msgs = t.steps.flatMap((s) => (s.sends ?? []).map((m) => `  ${m.from} -> ${m.to}: ${m.label}`));
  return [`# ${t.header.model}`, "", "## steps", ...lines, "", "## messages sent", ...msgs, "", "## dot", toDot(t)].join("\n");
}

/** `txlogDown`: the txlog fails from 6 ms on, so the decision's write is retried (a run the diagram folds) and the client hears in_doubt. */
async function recorded(protocol: Protocol, txlogDown = false): Promise<Trace> {
  const w = world(7, { withLocal: true });
  const scanned = w.engine.scanNow();
  await w.clock.run(RESOLVER_INTERVAL_MS);
  expect(await scanned).toBe(true);
  const branches = [
    { shard: "shard-a", ops: [{ account: 1, delta: -700 }] },
    { shard: "shard-b", ops: [{ account: 101, delta: 500 }] },
    { shard: "shard-c", ops: [{ account: 201, delta: 200 }] },
  ];
  const tx = "9f3c2a1e-5b7d-4c8e-a0f1-2d3e4f5a6b7c";
  if (txlogDown) w.clock.setTimer(6, () => (w.log.available = false));
  const started = w.engine.submit(branches, protocol, tx);
  await w.clock.run(w.clock.now_ms() + 5_000);
  expect(await started.outcome).toEqual({ status: txlogDown ? "in_doubt" : "committed" });
  const view = w.engine.transaction(tx)!;
  w.engine.stop();
  return { header: { ...view.trace!.header, started_ms: 0 }, steps: [...view.trace!.steps] };
}

describe("golden diagrams", () => {
  it.each(["2pc", "parallel", "speculative"] as const)("a live %s transfer over three shards", async (protocol) => {
    await expect(goldenText(await recorded(protocol))).toMatchFileSnapshot(golden(`live-${protocol}`));
  });

  it("a live 2PC transfer whose decision cannot be written: the retries folded", async () => {
    const t = await recorded("2pc", true);
    const text = goldenText(t);
    expect(text).toContain('label="17. timeout log  x2"');
    await expect(text).toMatchFileSnapshot(golden("live-2pc-txlog-down"));
  });

  it("a counterexample: 2PC forgetting the decision before the commits landed", async () => {
    const r = await runCheck({ model: "twopc", mutant: "forget-before-commit", properties: ["committed_reply_is_durable"] });
    expect(r.violations.map((v) => v.name)).toEqual(["committed_reply_is_durable"]);
    await expect(goldenText(r.violations[0]!.trace)).toMatchFileSnapshot(golden("twopc-forget-before-commit"));
  });
});
