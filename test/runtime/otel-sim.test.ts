// OpenTelemetry span events under faults, in the deterministic simulation
// (test/runtime/sim.ts: the engine over the spec's environment models), with
// the real SDK exporting to a real OTLP receiver: retries after a log outage,
// vote timeouts after a shard crash, the resolver's fences of parallel
// commit's STAGING connections after a coordinator crash, and a coordinator
// fenced by a newer process epoch. Every root span's outcome is the one the
// engine answered.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTracing, type Tracing } from "../../runtime/tracing.ts";
import type { ProtocolName } from "../../spec/protocols/registry.ts";
import { spanTree, startOtlpReceiver, type OtlpReceiver, type SpanNode } from "../support/otlp.ts";
import { newEngine, randomTransfer, RESOLVER_INTERVAL_MS, SHARDS, submit, world, type Sent, type World } from "./sim.ts";

const TRANSFERS = 40;
const seeds = [1, 2, 3, 4, 5, 6];
let receiver: OtlpReceiver;
let tracing: Tracing;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  tracing = await startTracing({ url: `${receiver.url}/v1/traces`, serviceName: "sim" });
});

afterAll(async () => {
  await tracing?.shutdown();
  await receiver?.close();
});

/** Shard crash, log outage, coordinator crash, then a new engine that settles everything (as test/runtime/simulation-protocols.test.ts). */
async function faults(seed: number, protocol: ProtocolName, sent: Sent[]): Promise<World> {
  const w = world(seed, { withLocal: true, tracing });
  w.engine.startResolver();
  await w.clock.run(RESOLVER_INTERVAL_MS);
  for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 3_000), () => submit(w, sent, randomTransfer(w.rng), protocol));
  const victim = SHARDS[seed % SHARDS.length]!;
  w.clock.setTimer(w.rng.int(200, 800), () => {
    w.xa.crashShard(victim);
    w.local!.crashShard(victim);
  });
  w.clock.setTimer(w.rng.int(900, 1_300), () => {
    w.xa.restartShard(victim);
    w.local!.restartShard(victim);
  });
  w.clock.setTimer(w.rng.int(1_400, 1_700), () => (w.log.available = false));
  w.clock.setTimer(w.rng.int(1_800, 2_100), () => (w.log.available = true));
  await w.clock.run(w.rng.int(2_200, 2_600));
  w.engine.stop();
  w.xa.crashProcess();
  w.engine = newEngine(w, undefined, tracing);
  w.engine.startResolver();
  await w.clock.run(30_000);
  w.engine.stop();
  return w;
}

/** A second process takes over (a newer epoch) while the first still runs its transfers: their writes are fenced. */
async function takeover(seed: number, sent: Sent[]): Promise<void> {
  const w = world(seed, { withLocal: true, tracing });
  w.engine.startResolver();
  await w.clock.run(RESOLVER_INTERVAL_MS);
  for (let i = 0; i < TRANSFERS; i++) w.clock.setTimer(w.rng.int(0, 1_000), () => submit(w, sent, randomTransfer(w.rng), "2pc"));
  const first = w.engine;
  let second: ReturnType<typeof newEngine> | undefined;
  w.clock.setTimer(w.rng.int(300, 600), () => {
    second = newEngine(w, undefined, tracing);
    second.startResolver();
  });
  await w.clock.run(10_000);
  first.stop();
  second?.stop();
}

const events = (n: SpanNode) => n.span.events.map((e) => e.name);

describe("span events under faults (simulation, real SDK and receiver)", () => {
  it("retries, timeouts, fences and fenced writes are span events; every root's outcome is the engine's", async () => {
    const sent: Sent[] = [];
    for (const seed of seeds) for (const protocol of ["2pc", "parallel", "speculative"] as const) await faults(seed, protocol, sent);
    for (const seed of seeds) await takeover(seed, sent);
    await tracing.flush();
    expect(receiver.errors).toEqual([]);
    const roots = spanTree(receiver.spans);
    const transfers = new Map(roots.filter((n) => n.span.name === "transfer").map((n) => [n.span.attributes["speccommit.tx_id"] as string, n]));
    // Every transfer that started has its root span, with the outcome its client got (a stopped coordinator: in_doubt).
    expect(sent.length).toBeGreaterThan(0);
    for (const s of sent) {
      const root = transfers.get(s.tx);
      expect(root, s.tx).toBeDefined();
      expect(root!.span.attributes["speccommit.outcome"], s.tx).toBe(s.outcome?.status ?? "in_doubt");
    }
    const all = [...transfers.values()];
    // A retry: the same branch or key asked again; its earlier attempt's span failed, each attempt is its own span.
    const retried = all.filter((n) => events(n).includes("retry"));
    expect(retried.length).toBeGreaterThan(0);
    for (const n of retried) {
      for (const ev of n.span.events.filter((e) => e.name === "retry")) {
        const attempts = n.children.filter((c) => c.span.name === ev.attributes["speccommit.effect"] && c.span.attributes["speccommit.shard"] === ev.attributes["speccommit.shard"] && c.span.attributes["speccommit.key"] === ev.attributes["speccommit.key"]);
        const n_ = ev.attributes["speccommit.attempt"] as number;
        expect(attempts.map((c) => c.span.attributes["speccommit.attempt"])).toContain(n_);
        const earlier = attempts.find((c) => c.span.attributes["speccommit.attempt"] === n_ - 1)!;
        expect(earlier.span.attributes["speccommit.result"]).not.toBe("ok");
      }
    }
    expect(all.some((n) => events(n).includes("timeout"))).toBe(true);
    // A coordinator of the first process, fenced by the second's epoch.
    const fenced = all.filter((n) => events(n).includes("fenced"));
    expect(fenced.length).toBeGreaterThan(0);
    for (const n of fenced) expect(n.children.some((c) => c.span.attributes["speccommit.result"] === "FENCED" && c.span.status === 2)).toBe(true);
    // The resolver: scans that acted, each action a child; parallel commit's STAGING connections fenced (xa.kill).
    const scans = roots.filter((n) => n.span.name === "resolver scan");
    expect(scans.length).toBeGreaterThan(0);
    for (const n of scans) {
      expect(n.children.length).toBeGreaterThan(0);
      expect(n.span.attributes["speccommit.actions"]).toBe(n.children.length);
      for (const c of n.children) expect(c.span.name).toMatch(/^resolver [a-z_]+$/);
    }
    const fences = scans.filter((n) => events(n).includes("fence"));
    expect(fences.length).toBeGreaterThan(0);
    for (const n of fences) expect(n.children.filter((c) => c.span.name === "resolver fence").length).toBe(n.span.events.filter((e) => e.name === "fence").length);
    const actions = new Set(scans.flatMap((n) => n.children.map((c) => c.span.name)));
    console.log(`${sent.length} transfers, ${receiver.spans.length} spans in ${receiver.posts} exports: ${retried.length} transfers with retries, ${fenced.length} fenced, ${scans.length} resolver scans that acted (${fences.length} with fences); actions: ${[...actions].sort().join(", ")}`);
    for (const a of ["resolver fence", "resolver staging_commit", "resolver rollback", "resolver tombstone"]) expect(actions).toContain(a);
  }, 120_000);
});
