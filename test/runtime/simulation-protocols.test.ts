// Deterministic simulation of the engine running parallel commit and the
// speculative path: the same interpreter, coordinators and process resolver
// as in production, over the spec's environment models (MemoryXa,
// MemoryLocal, MemoryTxlog) on virtual time, with a shard crash, a txlog
// outage and a coordinator process crash in the middle of the load. A failure
// prints its seed; `SEED=<n> npx vitest run test/runtime/simulation-protocols.test.ts` replays it.
import { describe, expect, it } from "vitest";
import { Engine } from "../../runtime/engine.ts";
import { Metrics } from "../../runtime/metrics.ts";
import type { ProtocolName } from "../../spec/protocols/registry.ts";
import { replayTrace } from "../../conformance/replay.ts";
import { rowOf } from "../../spec/env/local.ts";
import { expectedHistory, historyOf, newEngine, randomTransfer, RESOLVER_INTERVAL_MS, SHARDS, submit, TOTAL_CENTS, world as simWorld, type Sent, type World } from "./sim.ts";

const TRANSFERS = 120;

/** Resolver actions over every engine of this file, by action: the crash runs must make the resolver work. */
const resolverWork = new Map<string, number>();

function countingMetrics(): Metrics {
  const metrics = new Metrics();
  const count = metrics.resolverActions.inc.bind(metrics.resolverActions);
  metrics.resolverActions.inc = ((labels: { action: string }) => {
    resolverWork.set(labels.action, (resolverWork.get(labels.action) ?? 0) + 1);
    count(labels);
  }) as typeof metrics.resolverActions.inc;
  return metrics;
}

const world = (seed: number): World => simWorld(seed, { withLocal: true, metrics: countingMetrics });
const localOf = (w: World) => w.local!;

function auditParallel(w: World, sent: Sent[], where: string): void {
  expect(w.xa.total(), `${where}: total`).toBe(TOTAL_CENTS);
  expect(w.xa.prepared(), `${where}: branches left prepared`).toEqual([]);
  for (const s of sent) {
    const applied = SHARDS.map((shard) => historyOf(w, s.tx, shard));
    const expected = expectedHistory(s);
    const none = SHARDS.map(() => []);
    if (s.outcome?.status === "committed") expect(applied, `${where}: committed ${s.tx}`).toEqual(expected);
    else if (s.outcome?.status === "aborted") expect(applied, `${where}: aborted ${s.tx}`).toEqual(none);
    else expect([expected, none], `${where}: ${s.tx} half applied`).toContainEqual(applied);
  }
  expect(w.log.state.entries.filter((e) => e.key.startsWith("tx/")), `${where}: decision or STAGING records left`).toEqual([]);
}

function auditSpeculative(w: World, sent: Sent[], where: string): void {
  expect(localOf(w).total(), `${where}: total (balances + pending)`).toBe(TOTAL_CENTS);
  for (const s of localOf(w).state.values()) {
    for (const [account, balance, pending] of s.accounts) {
      expect(balance, `${where}: account ${account} balance`).toBeGreaterThanOrEqual(0);
      // Every speculation is final: no credit is held back any more.
      expect(pending, `${where}: account ${account} pending`).toBe(0);
    }
  }
  expect(localOf(w).undoLeft(), `${where}: undo rows left`).toEqual([]);
  // One-branch transfers took 2PC's one-phase path (spec/server/coordinator.ts): audited as XA.
  auditParallel(w, sent.filter((s) => new Set(s.ops.map((o) => o.shard)).size === 1), `${where} (one-branch, one-phase XA)`);
  for (const s of sent) {
    const shards = [...new Set(s.ops.map((o) => o.shard))];
    if (shards.length === 1) continue;
    const states = shards.map((shard) => rowOf(localOf(w).state.get(shard)!, s.tx, shard)?.state ?? "none");
    const committed = states.every((x) => x === "released");
    const rolledBack = states.every((x) => x === "tombstone" || x === "compensated" || x === "none") && (s.outcome?.status !== "aborted" || states.some((x) => x !== "none"));
    if (s.outcome?.status === "committed") expect(committed, `${where}: committed ${s.tx}: ${states.join(",")}`).toBe(true);
    else if (s.outcome?.status === "aborted") expect(rolledBack, `${where}: aborted ${s.tx}: ${states.join(",")}`).toBe(true);
    else expect(committed || rolledBack, `${where}: ${s.tx} neither committed nor rolled back: ${states.join(",")}`).toBe(true);
  }
  const open = w.log.state.entries.filter((e) => e.value.kind === "speculation" && e.value.state === "SPEC_EXECUTING");
  expect(open, `${where}: SPEC_EXECUTING records left`).toEqual([]);
}

function replayAll(engines: Engine[], sent: Sent[]): number {
  let checked = 0;
  for (const s of sent) {
    const view = engines.map((e) => e.transaction(s.tx)).find((v) => v !== undefined);
    if (view === undefined || view.trace === null) continue;
    checked++;
    const trace = { header: view.trace.header, steps: [...view.trace.steps] };
    expect(replayTrace(trace), `replay ${s.tx}`).toMatchObject({ ok: true });
  }
  return checked;
}

const seeds = process.env.SEED !== undefined ? [Number(process.env.SEED)] : Array.from({ length: 8 }, (_, i) => 2_000 + i);
const PROTOCOLS: ProtocolName[] = ["parallel", "speculative"];

describe.each(PROTOCOLS)("simulation: %s over the environment models", (protocol) => {
  const audit = protocol === "parallel" ? auditParallel : auditSpeculative;

  it.each(seeds)("seed %i: no faults: atomic, conserved, every trace replays", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 2_000), () => submit(w, sent, randomTransfer(w.rng), protocol));
    await w.clock.run(10_000);
    expect(sent.length).toBe(TRANSFERS);
    expect(sent.every((s) => s.outcome !== null)).toBe(true);
    const statuses = new Set(sent.map((s) => (s.outcome!.status === "aborted" ? s.outcome!.reason : s.outcome!.status)));
    expect(statuses).toContain("committed");
    expect(statuses).toContain("insufficient_funds");
    // With no fault, nothing is left in doubt.
    expect(statuses).not.toContain("in_doubt");
    audit(w, sent, `${protocol} seed ${seed}`);
    expect(replayAll([w.engine], sent)).toBe(sent.length);
    w.engine.stop();
  });

  it.each(seeds)("seed %i: shard crash, log outage, coordinator crash: the resolver settles everything", async (seed) => {
    const w = world(seed);
    w.engine.startResolver();
    await w.clock.run(RESOLVER_INTERVAL_MS);
    const sent: Sent[] = [];
    for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 3_000), () => submit(w, sent, randomTransfer(w.rng), protocol));
    const victim = SHARDS[seed % SHARDS.length]!;
    // The XA and the local model stand for the same MariaDB server: it crashes for both.
    w.clock.setTimer(w.rng.int(200, 800), () => {
      w.xa.crashShard(victim);
      localOf(w).crashShard(victim);
    });
    w.clock.setTimer(w.rng.int(900, 1_300), () => {
      w.xa.restartShard(victim);
      localOf(w).restartShard(victim);
    });
    w.clock.setTimer(w.rng.int(1_400, 1_700), () => (w.log.available = false));
    w.clock.setTimer(w.rng.int(1_800, 2_100), () => (w.log.available = true));
    await w.clock.run(w.rng.int(2_200, 2_600));
    const crashed = w.engine;
    w.engine.stop();
    w.xa.crashProcess();
    w.engine = newEngine(w, countingMetrics());
    w.engine.startResolver();
    await w.clock.run(30_000);
    audit(w, sent, `${protocol} seed ${seed}`);
    replayAll([crashed, w.engine], sent);
    w.engine.stop();
  });

  it("the crash runs above made the resolver recover this protocol's transactions", () => {
    // Over all seeds (a single one may crash at a quiet moment): parallel's STAGING fences and decisions, the speculative settling.
    const work = protocol === "parallel" ? ["fence", "staging_commit"] : ["tombstone", "release"];
    for (const action of work) expect(resolverWork.get(action) ?? 0, `${action}: ${JSON.stringify([...resolverWork])}`).toBeGreaterThan(0);
  });
});
