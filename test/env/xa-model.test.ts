/**
 * Model-based test: random sequences of XA statements over three connections
 * and three accounts (plus a missing one), with disconnects, lock wait
 * timeouts and kill -9, run against the XA shard model and a real MariaDB
 * side by side (test/env/xa-harness.ts). If they disagree the model is wrong,
 * and so is every proof built on it.
 *
 * A failure prints fast-check's seed and the shrunk command list; keep the
 * latter as a case in test/env/regressions/cases.ts. XA_MBT_RUNS and
 * XA_MBT_SEED override the run count and the seed.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { CONNS, coverage, RealShard, Run, XIDS, type Cmd, type StmtSpec } from "./xa-harness.ts";

const RUNS = Number(process.env.XA_MBT_RUNS ?? 150);
const SEED = process.env.XA_MBT_SEED === undefined ? undefined : Number(process.env.XA_MBT_SEED);
const COMMANDS_MAX = 40;

const xid = fc.constantFrom<string>("own", "own", "own", ...XIDS);
const account = fc.constantFrom(1, 1, 2, 2, 3, 4);
const stmt: fc.Arbitrary<StmtSpec> = fc.oneof(
  { weight: 4, arbitrary: xid.map((x) => ({ op: "start", xid: x }) as const) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant("transfer" as const), account, delta: fc.constantFrom(-60, -30, -8, 25) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("select" as const), account }) },
  { weight: 3, arbitrary: xid.map((x) => ({ op: "end", xid: x }) as const) },
  { weight: 3, arbitrary: xid.map((x) => ({ op: "prepare", xid: x }) as const) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("commit" as const), xid, onePhase: fc.boolean() }) },
  { weight: 2, arbitrary: xid.map((x) => ({ op: "rollback", xid: x }) as const) },
  { weight: 1, arbitrary: fc.constant({ op: "recover" } as const) },
);
const conn = fc.integer({ min: 0, max: CONNS - 1 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 60, arbitrary: fc.record({ t: fc.constant("next" as const), conn, pick: fc.nat({ max: 255 }) }) },
  { weight: 20, arbitrary: fc.record({ t: fc.constant("stmt" as const), conn, stmt }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("disconnect" as const), conn }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("kill" as const), conn }) },
  { weight: 2, arbitrary: fc.constant({ t: "wait" } as const) },
  { weight: 1, arbitrary: fc.constant({ t: "crash" } as const) },
);

describe("XA shard model against a real MariaDB", () => {
  let real: RealShard;
  beforeAll(async () => {
    real = await RealShard.start();
  });
  afterAll(async () => {
    await real?.stop();
  });

  it(`agrees on ${RUNS} random command sequences`, { timeout: 600_000 }, async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 4, maxLength: COMMANDS_MAX, size: "max" }), async (cmds) => {
        await new Run(real).execute(cmds);
      }),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
    const seen = [...coverage].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `  ${k}: ${n}`);
    console.log(`XA model-based test: ${RUNS} runs in ${((Date.now() - started) / 1000).toFixed(1)} s\n${seen.join("\n")}`);
  });
});
