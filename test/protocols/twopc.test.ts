/**
 * 2PC with presumed abort: the roles as transcripts (input in, effects out),
 * the composed model's exact size on its smallest configuration (so a change
 * of semantics shows at once), and the suite's promise that every property
 * of the model is shown able to fail.
 */
import { describe, expect, it } from "vitest";
import { coordinator, defaultCoordinatorOptions, type CoordinatorInput, type CoordinatorState } from "../../spec/protocols/twopc/coordinator.ts";
import { resolver, type ResolverInput, type ResolverState } from "../../spec/protocols/xa/resolver.ts";
import { twopcFactory } from "../../spec/protocols/twopc/model.ts";
import type { Effect } from "../../spec/kernel/effects.ts";
import { check } from "../../checker/engine.ts";
import { loadSuite } from "../../checker/suite.ts";
import { transcript as runTranscript } from "./transcript.ts";

/** The suite as `speccommit suite` reads it (model files resolved and loaded). */
const suite = await loadSuite();

const branches = [
  { shard: "s1", ops: [{ account: 1, delta: -30 }] },
  { shard: "s2", ops: [{ account: 2, delta: 30 }] },
];

/** A transcript of `role` over `inputs`, effects shown as this file's `show` draws them. */
function transcript<St, In>(role: { start(): St; step(st: St, i: In): { st: St; effects: Effect[] } }, inputs: In[]): { lines: string[][]; st: St } {
  return runTranscript(role, inputs, show);
}

function show(e: Effect): string {
  switch (e.t) {
    case "xa.exec":
      return `exec ${e.shard}${e.guard ? "" : " UNGUARDED"}${e.fence !== undefined ? ` fence e${e.fence}` : ""}`;
    case "xa.commit":
      return `commit ${e.shard}${e.onePhase ? " one phase" : ""}`;
    case "xa.prepare":
    case "xa.rollback":
      return `${e.t.slice(3)} ${e.shard}`;
    case "xa.recover":
      return `recover ${e.shard}`;
    case "log.put":
      return `put ${e.key} ${e.value.kind === "decision" ? e.value.decision : "epoch"} if v${e.ifVersion}${e.fence ? ` fence v${e.fence.version}` : ""}`;
    case "log.list":
      return `list ${e.prefix}`;
    case "log.delete":
      return `delete ${e.key}${e.fence ? ` fence v${e.fence.version}` : ""}`;
    case "reply":
      return `reply ${e.outcome.status}${e.outcome.status === "aborted" ? ` ${e.outcome.reason}` : ""}`;
    case "timer":
      return `timer ${e.id}`;
    default:
      return e.t;
  }
}

describe("2PC coordinator", () => {
  const role = coordinator(defaultCoordinatorOptions);
  const ok = { ok: true } as const;

  it("commits: exec and prepare each branch, make the decision durable, answer, commit, forget", () => {
    const inputs: CoordinatorInput[] = [
      { t: "request", tx: "t1", branches, epoch: 3 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.exec", tx: "t1", shard: "s2", r: ok, conn: null },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: ok },
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 1 } },
      { t: "xa.commit", tx: "t1", shard: "s1", r: ok },
      { t: "xa.commit", tx: "t1", shard: "s2", r: { ok: false, err: "NOTA" } },
      { t: "log.delete", key: "tx/t1", r: { ok: true } },
    ];
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, inputs);
    expect(lines).toEqual([
      ["exec s1", "exec s2", "timer vote"],
      ["prepare s1"],
      ["prepare s2"],
      [],
      ["put tx/t1 commit if v0 fence v3"],
      ["reply committed", "commit s1", "commit s2"],
      [],
      ["delete tx/t1 fence v3"],
      [],
    ]);
    expect(st.phase).toBe("done");
  });

  it("aborts without a log write when a branch lacks funds, and rolls back a branch whose exec was still running", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: { ok: false, err: "INSUFFICIENT_FUNDS" }, conn: null },
      { t: "xa.exec", tx: "t1", shard: "s2", r: ok, conn: null },
      { t: "xa.rollback", tx: "t1", shard: "s1", r: ok },
      { t: "xa.rollback", tx: "t1", shard: "s2", r: ok },
    ]);
    expect(lines).toEqual([["exec s1", "exec s2", "timer vote"], ["reply aborted insufficient_funds", "rollback s1"], ["rollback s2"], [], []]);
    expect(st.phase).toBe("done");
  });

  it("treats a CAS failure that shows its own COMMIT as durable, and one that shows the resolver's ABORT as abort", () => {
    const prepared: CoordinatorInput[] = [
      { t: "request", tx: "t1", branches, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.exec", tx: "t1", shard: "s2", r: ok, conn: null },
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: ok },
    ];
    const own = transcript<CoordinatorState, CoordinatorInput>(role, [...prepared, { t: "log.put", key: "tx/t1", r: { ok: false, err: "CAS", current: { kind: "decision", decision: "commit", branches: ["s1", "s2"] }, version: 1 } }]);
    expect(own.lines.at(-1)).toEqual(["reply committed", "commit s1", "commit s2"]);
    const resolverWon = transcript<CoordinatorState, CoordinatorInput>(role, [...prepared, { t: "log.put", key: "tx/t1", r: { ok: false, err: "CAS", current: { kind: "decision", decision: "abort", branches: ["s1"] }, version: 1 } }]);
    expect(resolverWon.lines.at(-1)).toEqual(["reply aborted resolver", "rollback s1", "rollback s2"]);
  });

  it("answers in doubt when the log stays unavailable, and never rolls back then", () => {
    const r = coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2 });
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(r, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.exec", tx: "t1", shard: "s2", r: ok, conn: null },
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: ok },
      { t: "log.put", key: "tx/t1", r: { ok: false, err: "UNAVAILABLE" } },
      { t: "timeout", id: "log" },
      { t: "log.put", key: "tx/t1", r: { ok: false, err: "UNAVAILABLE" } },
    ]);
    expect(lines.slice(5)).toEqual([["timer log"], ["put tx/t1 commit if v0 fence v1"], ["reply in_doubt"]]);
    expect(st.phase).toBe("done");
  });

  it("commits a single-branch transaction in one phase: no prepare, no record; a lost connection then is in doubt", () => {
    const one = [{ shard: "s1", ops: [{ account: 1, delta: -30 }, { account: 3, delta: 30 }] }];
    const committed = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches: one, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.commit", tx: "t1", shard: "s1", r: ok },
    ]);
    // The one branch is fenced on its shard by the coordinator's epoch (no record a fenced log write could stop).
    expect(committed.lines).toEqual([["exec s1 fence e1", "timer vote"], ["commit s1 one phase"], ["reply committed"]]);
    const lost = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches: one, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.commit", tx: "t1", shard: "s1", r: { ok: false, err: "UNAVAILABLE" } },
    ]);
    expect(lost.lines.at(-1)).toEqual(["reply in_doubt"]);
    expect(lost.st.phase).toBe("done");
  });

  it("a single branch fenced on its shard (a survivor took its node over): rolled back, answered aborted as the survivor reads it", () => {
    const one = [{ shard: "s1", ops: [{ account: 1, delta: -30 }, { account: 3, delta: 30 }] }];
    const fenced = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches: one, epoch: 4 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: { ok: false, err: "FENCED" }, conn: null },
    ]);
    expect(fenced.lines).toEqual([["exec s1 fence e4", "timer vote"], ["reply aborted resolver", "rollback s1"]]);
    // Two branches are never fenced on their shards: their decision record is (the log fence).
    const two = transcript<CoordinatorState, CoordinatorInput>(role, [{ t: "request", tx: "t1", branches, epoch: 4 }]);
    expect(two.lines).toEqual([["exec s1", "exec s2", "timer vote"]]);
  });

  it("does not stop while an exec is in flight: an abandoned branch waits for the others", () => {
    const r = coordinator({ ...defaultCoordinatorOptions, attemptsMax: 1 });
    const { st } = transcript<CoordinatorState, CoordinatorInput>(r, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      { t: "xa.exec", tx: "t1", shard: "s1", r: ok, conn: null },
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "timeout", id: "vote" },
      { t: "xa.rollback", tx: "t1", shard: "s1", r: { ok: false, err: "UNAVAILABLE" } },
    ]);
    expect(st.branches.map((b) => b.status)).toEqual(["abandoned", "executing"]);
    expect(st.phase).toBe("aborting");
  });
});

describe("XA resolver on 2PC records", () => {
  const role = resolver({ shards: ["s1", "s2"] });
  const boot: ResolverInput[] = [
    { t: "scan", active: [] },
    { t: "log.list", r: { ok: true, entries: [] } },
    { t: "log.put", key: "epoch", r: { ok: true, version: 4 } },
  ];
  const scan = (prepared: { tx: string; shard: string }[]): ResolverInput[] => [
    { t: "log.list", r: { ok: true, entries: [] } },
    { t: "xa.recover", shard: "s1", r: { ok: true, prepared: prepared.filter((x) => x.shard === "s1") } },
    { t: "xa.recover", shard: "s2", r: { ok: true, prepared: prepared.filter((x) => x.shard === "s2") } },
  ];

  it("takes an epoch, lists, then recovers shard by shard, and presumes abort only on the second sighting", () => {
    const inDoubt = [{ tx: "t9", shard: "s2" }];
    const { lines, st } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan(inDoubt),
      { t: "scan", active: [] },
      ...scan(inDoubt),
      { t: "log.put", key: "tx/t9", r: { ok: true, version: 1 } },
      { t: "xa.rollback", tx: "t9", shard: "s2", r: { ok: true } },
    ]);
    expect(lines).toEqual([
      ["list epoch"],
      ["put epoch epoch if v0"],
      ["list tx/"],
      ["recover s1"],
      ["recover s2"],
      [],
      ["list tx/"],
      ["recover s1"],
      ["recover s2"],
      ["put tx/t9 abort if v0 fence v4"],
      ["rollback s2"],
      [],
    ]);
    expect(st.phase).toBe("idle");
  });

  it("leaves transactions with a live coordinator alone", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot.slice(0, 2),
      { t: "log.put", key: "epoch", r: { ok: true, version: 1 } },
      ...scan([{ tx: "t1", shard: "s1" }]),
      { t: "scan", active: ["t1"] },
      ...scan([{ tx: "t1", shard: "s1" }]),
    ]);
    expect(lines.slice(-3)).toEqual([["recover s1"], ["recover s2"], []]);
  });
});

describe("2PC composed model", () => {
  it("has exactly the known size on 2 shards x 1 transfer without faults", () => {
    const model = twopcFactory.build({ ...twopcFactory.params, scenario: "transfer", crash: 0, shardCrash: 0 });
    const r = check(model);
    expect({ distinct: r.distinct, generated: r.generated, depth: r.depth, violations: r.violations.length }).toEqual({
      distinct: 536,
      generated: 1242,
      depth: 20,
      violations: 0,
    });
  });

  it("is shown able to fail on every property: each has a suite entry with a mutant it catches alone", () => {
    const model = twopcFactory.build({ ...twopcFactory.params });
    const properties = [...Object.keys(model.invariants), ...Object.keys(model.eventually ?? {})];
    const shown = new Set(suite.filter((e) => e.model === "twopc" && e.mutant !== undefined).flatMap((e) => e.properties ?? []));
    expect(properties.filter((p) => !shown.has(p))).toEqual([]);
  });
});
