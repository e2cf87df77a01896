/**
 * Speculative path with undo: the one-phase local shard model (unique key,
 * escrow, compensation idempotence), the roles as transcripts (input in,
 * effects out), the composed model's exact size on its smallest
 * configuration, every mutant caught by the property its suite entry names,
 * and every property shown able to fail.
 */
import { describe, expect, it } from "vitest";
import * as local from "../../spec/env/local.ts";
import { coordinator, defaultCoordinatorOptions, type CoordinatorInput, type CoordinatorState } from "../../spec/protocols/speculative/coordinator.ts";
import { resolver, type ResolverInput, type ResolverState } from "../../spec/protocols/speculative/resolver.ts";
import { speculativeFactory } from "../../spec/protocols/speculative/model.ts";
import type { LogEntry, Effect } from "../../spec/kernel/effects.ts";
import { check } from "../../checker/engine.ts";
import { onlyProperties } from "../../checker/run.ts";
import { loadSuite } from "../../checker/suite.ts";
import { transcript as runTranscript } from "./transcript.ts";

/** The suite as `speccommit suite` reads it (model files resolved and loaded). */
const suite = await loadSuite();

const branches = [
  { shard: "s1", ops: [{ account: 1, delta: -30 }] },
  { shard: "s2", ops: [{ account: 2, delta: 30 }] },
];
const shards = ["s1", "s2"];
const ok = { ok: true } as const;

describe("local shard (one-phase transactions)", () => {
  const s0 = local.initLocal([[1, 100], [2, 50]]);
  const debit = [{ account: 1, delta: -30 }];
  const credit = [{ account: 2, delta: 30 }];

  it("applies a debit, holds a credit as pending, and inserts the undo row with every branch", () => {
    const a = local.apply(s0, "t1", "s1", [...debit, ...credit], shards);
    expect(a.r).toEqual(ok);
    expect(a.s.accounts).toEqual([[1, 70, 0], [2, 50, 30]]);
    expect(local.rowsOf(a.s, "t1")).toEqual([{ tx: "t1", branch: "s1", state: "undo", branches: shards }]);
  });

  it("refuses a second apply and an apply after a tombstone on the unique key, changing nothing", () => {
    const a = local.apply(s0, "t1", "s1", debit, shards).s;
    expect(local.apply(a, "t1", "s1", debit, shards)).toEqual({ s: a, r: { ok: false, err: "DUPLICATE" } });
    const t = local.tombstone(s0, "t1", "s1").s;
    expect(local.apply(t, "t1", "s1", debit, shards)).toEqual({ s: t, r: { ok: false, err: "DUPLICATE" } });
    expect(t.accounts).toEqual(s0.accounts);
  });

  it("a tombstone on an applied branch fails and says what holds the key", () => {
    const a = local.apply(s0, "t1", "s1", debit, shards).s;
    expect(local.tombstone(a, "t1", "s1").r).toEqual({ ok: false, err: "DUPLICATE", existing: "undo" });
    const c = local.compensate(a, "t1", "s1").s;
    expect(local.tombstone(c, "t1", "s1").r).toEqual({ ok: false, err: "DUPLICATE", existing: "compensated" });
  });

  it("an overdraft fails the whole local transaction: no write, no undo row, the key stays free", () => {
    const r = local.apply(s0, "t1", "s1", [{ account: 2, delta: 10 }, { account: 1, delta: -101 }], shards);
    expect(r).toEqual({ s: s0, r: { ok: false, err: "INSUFFICIENT_FUNDS" } });
    expect(local.tombstone(s0, "t1", "s1").r).toEqual(ok);
  });

  it("compensates once: the inverse applied and the row retired together; a retry is a no-op", () => {
    const a = local.apply(s0, "t1", "s1", [...debit, ...credit], shards).s;
    const c1 = local.compensate(a, "t1", "s1");
    expect(c1.applied).toBe(true);
    expect(c1.s.accounts).toEqual(s0.accounts);
    expect(local.rowOf(c1.s, "t1", "s1")?.state).toBe("compensated");
    const c2 = local.compensate(c1.s, "t1", "s1");
    expect(c2).toEqual({ s: c1.s, applied: false });
    expect(local.compensate(s0, "t9", "s1")).toEqual({ s: s0, applied: false });
  });

  it("escrow: a pending credit cannot be spent until released", () => {
    const a = local.apply(s0, "t1", "s1", credit, shards).s;
    expect(local.apply(a, "t2", "s1", [{ account: 2, delta: -80 }], shards).r).toEqual({ ok: false, err: "INSUFFICIENT_FUNDS" });
    const rel = local.release(a, "t1", "s1");
    expect(rel.applied).toBe(true);
    expect(rel.s.accounts).toEqual([[1, 100, 0], [2, 80, 0]]);
    expect(local.apply(rel.s, "t2", "s1", [{ account: 2, delta: -80 }], shards).r).toEqual(ok);
    expect(local.release(rel.s, "t1", "s1").applied).toBe(false);
    expect(local.compensate(rel.s, "t1", "s1").applied).toBe(false);
  });

  it("a crash loses nothing committed; a shard that is down answers UNAVAILABLE and changes nothing", () => {
    const a = local.apply(s0, "t1", "s1", debit, shards).s;
    const down = local.crash(a);
    expect(local.restart(down)).toEqual(a);
    const fx = { t: "local.apply", tx: "t2", shard: "s1", ops: debit, branches: shards, escrow: true, parts: "both" } as const;
    expect(local.execute(down, fx)).toEqual({ s: down, r: { t: "local.apply", tx: "t2", shard: "s1", r: { ok: false, err: "UNAVAILABLE" } } });
  });

  it("scan lists only rows still in state undo", () => {
    const a = local.apply(local.apply(s0, "t1", "s1", debit, shards).s, "t2", "s1", credit, shards).s;
    const r = local.release(local.tombstone(a, "t3", "s1").s, "t2", "s1").s;
    expect(local.scan(r).map((x) => x.tx)).toEqual(["t1"]);
  });
});

/** A transcript of `role` over `inputs`, effects shown as this file's `show` draws them. */
function transcript<St, In>(role: { start(): St; step(st: St, i: In): { st: St; effects: Effect[] } }, inputs: In[]): { lines: string[][]; st: St } {
  return runTranscript(role, inputs, show);
}

function show(e: Effect): string {
  switch (e.t) {
    case "local.apply":
      return `apply ${e.shard}`;
    case "local.tombstone":
    case "local.compensate":
    case "local.release":
      return `${e.t.slice(6)} ${e.shard}`;
    case "local.scan":
      return `scan ${e.shard}`;
    case "log.put":
      return `put ${e.key} ${e.value.kind === "speculation" ? e.value.state : e.value.kind} if v${e.ifVersion}${e.fence ? ` fence v${e.fence.version}` : ""}`;
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

const request: CoordinatorInput = { t: "request", tx: "t1", branches, epoch: 3 };
const applied = (shard: string): CoordinatorInput => ({ t: "local.apply", tx: "t1", shard, r: ok });
const putOk = (version: number): CoordinatorInput => ({ t: "log.put", key: "speculative/t1", r: { ok: true, version } });
const deleted: CoordinatorInput = { t: "log.delete", key: "speculative/t1", r: ok };

describe("speculative coordinator", () => {
  const role = coordinator(defaultCoordinatorOptions);

  it("one round trip: answers committed when every branch applied, then EXECUTING, releases, COMMITTED, then forgets the record", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      request,
      applied("s2"),
      applied("s1"),
      putOk(1),
      { t: "local.release", tx: "t1", shard: "s1", r: { ok: true, applied: true } },
      { t: "local.release", tx: "t1", shard: "s2", r: { ok: true, applied: true } },
      putOk(2),
      deleted,
    ]);
    expect(lines).toEqual([
      ["apply s1", "apply s2", "timer apply"],
      [],
      ["reply committed", "put speculative/t1 SPEC_EXECUTING if v0 fence v3"],
      ["release s1", "release s2"],
      [],
      ["put speculative/t1 SPEC_COMMITTED if v1 fence v3"],
      ["delete speculative/t1 fence v3"],
      [],
    ]);
    expect(st.phase).toBe("done");
  });

  /** Up to the terminal put of a committed speculation (SPEC_EXECUTING at v1). */
  const upToTerminal: CoordinatorInput[] = [
    request,
    applied("s1"),
    applied("s2"),
    putOk(1),
    { t: "local.release", tx: "t1", shard: "s1", r: { ok: true, applied: true } },
    { t: "local.release", tx: "t1", shard: "s2", r: { ok: true, applied: true } },
  ];

  it("a terminal put that finds the record gone is done: another settler wrote the end and forgot it", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      ...upToTerminal,
      { t: "log.put", key: "speculative/t1", r: { ok: false, err: "CAS", current: null, version: 0 } },
    ]);
    expect(lines.at(-1)).toEqual([]);
    expect(st.phase).toBe("done");
  });

  it("a terminal put that finds a terminal record (another settler's, or its own with the answer lost) forgets it", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      ...upToTerminal,
      { t: "log.put", key: "speculative/t1", r: { ok: false, err: "CAS", current: { kind: "speculation", state: "SPEC_COMMITTED", branches: shards }, version: 2 } },
      deleted,
    ]);
    expect(lines.slice(-2)).toEqual([["delete speculative/t1 fence v3"], []]);
    expect(st.phase).toBe("done");
  });

  it("a delete that fails is retried, then left behind for the resolver; a fenced one is not retried", () => {
    const unavailable: CoordinatorInput = { t: "log.delete", key: "speculative/t1", r: { ok: false, err: "UNAVAILABLE" } };
    const one = coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2 });
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(one, [...upToTerminal, putOk(2), unavailable, { t: "timeout", id: "settle:t1" }, unavailable]);
    expect(lines.slice(-4)).toEqual([["delete speculative/t1 fence v3"], ["timer settle:t1"], ["delete speculative/t1 fence v3"], []]);
    expect(st.phase).toBe("done");
    const fenced = transcript<CoordinatorState, CoordinatorInput>(one, [...upToTerminal, putOk(2), { t: "log.delete", key: "speculative/t1", r: { ok: false, err: "FENCED" } }]);
    expect(fenced.lines.at(-1)).toEqual([]);
    expect(fenced.st.phase).toBe("done");
  });

  it("mis-speculation: tombstones the failed branch, answers aborted once it wins, compensates the applied one", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      request,
      applied("s2"),
      { t: "local.apply", tx: "t1", shard: "s1", r: { ok: false, err: "INSUFFICIENT_FUNDS" } },
      { t: "local.tombstone", tx: "t1", shard: "s1", r: ok },
      putOk(1),
      { t: "local.compensate", tx: "t1", shard: "s2", r: { ok: true, applied: true } },
      putOk(2),
      deleted,
    ]);
    expect(lines).toEqual([
      ["apply s1", "apply s2", "timer apply"],
      [],
      ["tombstone s1"],
      ["reply aborted insufficient_funds", "put speculative/t1 SPEC_EXECUTING if v0 fence v3"],
      ["compensate s2"],
      ["put speculative/t1 SPEC_ROLLED_BACK if v1 fence v3"],
      ["delete speculative/t1 fence v3"],
      [],
    ]);
    expect(st.phase).toBe("done");
  });

  it("a branch with no answer in time is probed; the key holding its undo row means it applied: committed after all", () => {
    const { lines } = transcript<CoordinatorState, CoordinatorInput>(role, [
      request,
      applied("s1"),
      { t: "timeout", id: "apply" },
      { t: "local.tombstone", tx: "t1", shard: "s2", r: { ok: false, err: "DUPLICATE", existing: "undo" } },
      { t: "local.apply", tx: "t1", shard: "s2", r: ok },
    ]);
    expect(lines).toEqual([["apply s1", "apply s2", "timer apply"], [], ["tombstone s2"], ["reply committed", "put speculative/t1 SPEC_EXECUTING if v0 fence v3"], []]);
  });

  it("a probe that cannot reach its shard is retried once, then left to the resolver with in_doubt", () => {
    const unavailable: CoordinatorInput = { t: "local.tombstone", tx: "t1", shard: "s2", r: { ok: false, err: "UNAVAILABLE" } };
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(coordinator({ ...defaultCoordinatorOptions, attemptsMax: 2 }), [
      request,
      applied("s1"),
      { t: "local.apply", tx: "t1", shard: "s2", r: { ok: false, err: "UNAVAILABLE" } },
      unavailable,
      { t: "timeout", id: "settle:t1" },
      unavailable,
    ]);
    expect(lines.slice(2)).toEqual([["tombstone s2"], ["timer settle:t1"], ["tombstone s2"], ["reply in_doubt"]]);
    expect(st.phase).toBe("done");
  });
});

describe("speculative resolver", () => {
  const role = resolver({ shards });
  const executing: LogEntry = { key: "speculative/t1", value: { kind: "speculation", state: "SPEC_EXECUTING", branches: shards }, version: 1 };
  const boot: ResolverInput[] = [
    { t: "scan", active: [] },
    { t: "log.list", r: { ok: true, entries: [] } },
    { t: "log.put", key: "epoch", r: { ok: true, version: 4 } },
  ];
  const scan = (records: LogEntry[], undoOn: string[]): ResolverInput[] => [
    { t: "log.list", r: { ok: true, entries: records } },
    ...shards.map((shard): ResolverInput => ({
      t: "local.scan",
      shard,
      r: { ok: true, rows: undoOn.includes(shard) ? [{ tx: "t1", branch: shard, state: "undo", branches: shards }] : [] },
    })),
  ];

  it("settles an orphaned speculation on its second sighting: tombstone the missing branch, then compensate, then ROLLED_BACK", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan([], ["s1"]),
      { t: "scan", active: [] },
      ...scan([], ["s1"]),
      { t: "local.tombstone", tx: "t1", shard: "s2", r: ok },
      { t: "log.put", key: "speculative/t1", r: { ok: true, version: 1 } },
      { t: "local.compensate", tx: "t1", shard: "s1", r: { ok: true, applied: true } },
      { t: "log.put", key: "speculative/t1", r: { ok: true, version: 2 } },
      { t: "log.delete", key: "speculative/t1", r: ok },
    ]);
    expect(lines).toEqual([
      ["list epoch"],
      ["put epoch epoch if v0"],
      ["list speculative/"],
      ["scan s1"],
      ["scan s2"],
      [],
      ["list speculative/"],
      ["scan s1"],
      ["scan s2"],
      ["tombstone s2"],
      ["put speculative/t1 SPEC_EXECUTING if v0 fence v4"],
      ["compensate s1"],
      ["put speculative/t1 SPEC_ROLLED_BACK if v1 fence v4"],
      ["delete speculative/t1 fence v4"],
      [],
    ]);
  });

  it("finishes a committed speculation whose coordinator died before releasing: every key holds the branch", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan([executing], ["s1", "s2"]),
      { t: "scan", active: [] },
      ...scan([executing], ["s1", "s2"]),
      { t: "local.release", tx: "t1", shard: "s1", r: { ok: true, applied: true } },
      { t: "local.release", tx: "t1", shard: "s2", r: { ok: true, applied: true } },
    ]);
    expect(lines.slice(-3)).toEqual([["release s1", "release s2"], [], ["put speculative/t1 SPEC_COMMITTED if v1 fence v4"]]);
  });

  it("deletes a terminal record left behind at first sight, fenced; not one whose coordinator is live", () => {
    const committed: LogEntry = { key: "speculative/t1", value: { kind: "speculation", state: "SPEC_COMMITTED", branches: shards }, version: 2 };
    const { lines, st } = transcript<ResolverState, ResolverInput>(role, [...boot, ...scan([committed], []), { t: "log.delete", key: "speculative/t1", r: ok }]);
    expect(lines.slice(-2)).toEqual([["delete speculative/t1 fence v4"], []]);
    expect(st.phase).toBe("idle");
    const live = transcript<ResolverState, ResolverInput>(role, [{ t: "scan", active: ["t1"] }, ...boot.slice(1), ...scan([committed], [])]);
    expect(live.lines.at(-1)).toEqual([]);
  });

  it("leaves a speculation with a live coordinator alone", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [...boot, ...scan([executing], ["s1"]), { t: "scan", active: ["t1"] }, ...scan([executing], ["s1"])]);
    expect(lines.at(-1)).toEqual([]);
  });
});

describe("speculative composed model", () => {
  it("has exactly the known size on 2 shards x 1 transfer without faults", () => {
    const r = check(speculativeFactory.build({ ...speculativeFactory.params, scenario: "transfer", crash: 0, shardCrash: 0 }));
    expect({ distinct: r.distinct, generated: r.generated, depth: r.depth, violations: r.violations.length }).toEqual({
      distinct: 1100,
      generated: 2652,
      depth: 20,
      violations: 0,
    });
  });

  it("mis-speculation without faults: every property (rollback_restores_total, money_conserved, ...) holds in every reachable state", () => {
    const r = check(speculativeFactory.build({ ...speculativeFactory.params, scenario: "misspec", crash: 0, shardCrash: 0 }));
    expect(r.complete).toBe(true);
    expect(r.violations).toEqual([]);
  });

  const entries = suite.filter((e) => e.model === "speculative" && e.mutant !== undefined);

  it("has a suite entry for every mutant", () => {
    expect(speculativeFactory.mutants.filter((m) => !entries.some((e) => e.mutant === m))).toEqual([]);
  });

  for (const e of entries) {
    it(`catches ${e.mutant} with ${e.expect.replace("violates ", "")} alone`, () => {
      const model = onlyProperties(speculativeFactory.build({ ...speculativeFactory.params, ...e.params }, e.mutant), e.properties);
      const r = check(model);
      expect(r.violations.map((v) => v.name)).toEqual([e.expect.replace("violates ", "")]);
      if (e.length !== undefined) expect(r.violations[0]!.length).toBe(e.length);
    }, 60_000);
  }

  it("is shown able to fail on every property: each has a suite entry with a mutant it catches alone", () => {
    const model = speculativeFactory.build({ ...speculativeFactory.params });
    const properties = [...Object.keys(model.invariants), ...Object.keys(model.eventually ?? {})];
    const shown = new Set(entries.flatMap((e) => e.properties ?? []));
    expect(properties.filter((p) => !shown.has(p))).toEqual([]);
  });
});
