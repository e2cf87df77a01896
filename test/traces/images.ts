/**
 * Regenerates the diagrams in docs/img/ (linked from docs/traces.md):
 * `npx tsx test/traces/images.ts`. Needs the system Graphviz (`dot`) for PNG.
 *
 * The live transfers are recorded the way test/traces/golden.test.ts records
 * them (the server's engine over the in-memory environment models on virtual
 * time, a fixed seed and transaction id), so the pictures are the goldens'
 * pictures; the counterexamples are found by the checker, as the suite does.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { runCheck } from "../../checker/run.ts";
import type { Trace } from "../../spec/kernel/trace.ts";
import type { ProtocolName as Protocol } from "../../spec/protocols/registry.ts";
import { toDot } from "../../traces/render.ts";
import { RESOLVER_INTERVAL_MS, world } from "../runtime/sim.ts";

const dir = new URL("../../docs/img/", import.meta.url).pathname;
/** Small enough for a page: 60 dots per inch (the DOT is in points, 72 per inch). */
const dpi = 60;

/** A live transfer over three shards; `txlogDown`: the txlog fails from 6 ms on, so the decision's write is retried (a folded run) and the client hears in_doubt. */
async function live(protocol: Protocol, txlogDown = false): Promise<Trace> {
  const w = world(7, { withLocal: true });
  const scanned = w.engine.scanNow();
  await w.clock.run(RESOLVER_INTERVAL_MS);
  if (!(await scanned)) throw new Error("the resolver's first scan did not finish");
  const branches = [
    { shard: "shard-a", ops: [{ account: 1, delta: -700 }] },
    { shard: "shard-b", ops: [{ account: 101, delta: 500 }] },
    { shard: "shard-c", ops: [{ account: 201, delta: 200 }] },
  ];
  const tx = "9f3c2a1e-5b7d-4c8e-a0f1-2d3e4f5a6b7c";
  if (txlogDown) w.clock.setTimer(6, () => (w.log.available = false));
  const started = w.engine.submit(branches, protocol, tx);
  await w.clock.run(w.clock.now_ms() + 5_000);
  const outcome = await started.outcome;
  if (outcome.status !== (txlogDown ? "in_doubt" : "committed")) throw new Error(`${protocol}: ${JSON.stringify(outcome)}`);
  const view = w.engine.transaction(tx)!;
  w.engine.stop();
  return { header: { ...view.trace!.header, started_ms: 0 }, steps: [...view.trace!.steps] };
}

async function counterexample(model: string, mutant: string, property: string, params: Record<string, string | number | boolean> = {}): Promise<Trace> {
  const r = await runCheck({ model, mutant, params, properties: [property] });
  const v = r.violations.find((x) => x.name === property);
  if (v === undefined) throw new Error(`${model} ${mutant}: no violation of ${property}`);
  return v.trace;
}

function png(name: string, t: Trace): void {
  const file = `${dir}${name}.png`;
  execFileSync("dot", ["-Kneato", "-n", "-Tpng", `-Gdpi=${dpi}`, "-o", file], { input: toDot(t) });
  console.log(`wrote docs/img/${name}.png`);
}

for (const p of ["2pc", "parallel", "speculative"] as const) png(`live-${p}`, await live(p));
png("live-2pc-txlog-down", await live("2pc", true));
png("twopc-forget-before-commit", await counterexample("twopc", "forget-before-commit", "committed_reply_is_durable"));
png("parallel-no-fence", await counterexample("parallel", "no-fence", "AC2_irrevocable", { scenario: "transfer", crash: 1, shardCrash: 0 }));
png("parallel-keep-records", await counterexample("parallel", "keep-records", "AC5_finishes", { scenario: "transfer", crash: 1, shardCrash: 0 }));
