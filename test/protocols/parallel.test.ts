/**
 * Parallel commit: the roles as transcripts (input in, effects out), the
 * composed model's exact size on its smallest configuration (so a change of
 * semantics shows at once), every mutant caught by the property its suite
 * entry names, and every property shown able to fail.
 */
import { describe, expect, it } from "vitest";
import { coordinator, defaultCoordinatorOptions, type CoordinatorInput, type CoordinatorState } from "../../spec/protocols/parallel/coordinator.ts";
import { resolver, type ResolverInput, type ResolverState } from "../../spec/protocols/xa/resolver.ts";
import { parallelFactory } from "../../spec/protocols/parallel/model.ts";
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
const ok = { ok: true } as const;

/** A transcript of `role` over `inputs`, effects shown as this file's `show` draws them. */
function transcript<St, In>(role: { start(): St; step(st: St, i: In): { st: St; effects: Effect[] } }, inputs: In[]): { lines: string[][]; st: St } {
  return runTranscript(role, inputs, show);
}

function show(e: Effect): string {
  switch (e.t) {
    case "xa.exec":
      return `exec ${e.shard}`;
    case "xa.prepare":
    case "xa.commit":
    case "xa.rollback":
      return `${e.t.slice(3)} ${e.shard}`;
    case "xa.recover":
      return `recover ${e.shard}`;
    case "xa.kill":
      return `kill ${e.shard} ${e.conn}`;
    case "log.put": {
      const v = e.value;
      const what = v.kind === "decision" ? v.decision : v.kind === "staging" ? `staging ${v.branches.map((b) => `${b.shard}=${b.conn}`).join(",")}` : v.kind;
      return `put ${e.key} ${what} if v${e.ifVersion}${e.fence ? ` fence v${e.fence.version}` : ""}`;
    }
    case "log.list":
      return `list ${e.prefix}`;
    case "log.delete":
      return `delete ${e.key}`;
    case "reply":
      return `reply ${e.outcome.status}${e.outcome.status === "aborted" ? ` ${e.outcome.reason}` : ""}`;
    case "timer":
      return `timer ${e.id}`;
    default:
      return e.t;
  }
}

const exec = (shard: string, conn: string): CoordinatorInput => ({ t: "xa.exec", tx: "t1", shard, r: ok, conn });

describe("parallel-commit coordinator", () => {
  const role = coordinator(defaultCoordinatorOptions);

  it("sends STAGING with the connection ids once every branch executed, while the prepares run; answers at STAGING + all prepared", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches, epoch: 3 },
      exec("s1", "11"),
      exec("s2", "12"),
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 1 } },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: ok },
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 2 } },
      { t: "xa.commit", tx: "t1", shard: "s1", r: ok },
      { t: "xa.commit", tx: "t1", shard: "s2", r: { ok: false, err: "NOTA" } },
      { t: "log.delete", key: "tx/t1", r: ok },
    ]);
    expect(lines).toEqual([
      ["exec s1", "exec s2", "timer vote"],
      ["prepare s1"],
      ["prepare s2", "put tx/t1 staging s1=11,s2=12 if v0 fence v3"],
      [],
      [],
      // The commit point: the client hears it before the COMMITTED record and the XA COMMITs.
      ["reply committed", "put tx/t1 commit if v1 fence v3"],
      ["commit s1", "commit s2"],
      [],
      ["delete tx/t1"],
      [],
    ]);
    expect(st.phase).toBe("done");
  });

  it("answers when the last of STAGING and the prepares arrives, whichever it is", () => {
    const { lines } = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      exec("s1", "11"),
      exec("s2", "12"),
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: ok },
      { t: "log.put", key: "tx/t1", r: { ok: false, err: "CAS", current: { kind: "staging", branches: [] }, version: 1 } },
    ]);
    expect(lines.slice(3)).toEqual([[], [], ["reply committed", "put tx/t1 commit if v1 fence v1"]]);
  });

  it("aborts at once on a definite failure, and deletes the STAGING record once its write has answered", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      exec("s1", "11"),
      exec("s2", "12"),
      { t: "xa.prepare", tx: "t1", shard: "s2", r: { ok: false, err: "RMFAIL" } },
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "xa.rollback", tx: "t1", shard: "s1", r: ok },
      { t: "xa.rollback", tx: "t1", shard: "s2", r: { ok: false, err: "NOTA" } },
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 1 } },
      { t: "log.delete", key: "tx/t1", r: ok },
    ]);
    expect(lines.slice(3)).toEqual([["reply aborted shard_unavailable", "rollback s2"], ["rollback s1"], [], [], ["delete tx/t1"], []]);
    expect(st.phase).toBe("done");
  });

  it("hands over (in doubt, own connections killed) when a prepare's outcome is unknown after STAGING went out", () => {
    const { lines, st } = transcript<CoordinatorState, CoordinatorInput>(role, [
      { t: "request", tx: "t1", branches, epoch: 1 },
      exec("s1", "11"),
      exec("s2", "12"),
      { t: "xa.prepare", tx: "t1", shard: "s1", r: ok },
      { t: "xa.prepare", tx: "t1", shard: "s2", r: { ok: false, err: "UNAVAILABLE" } },
    ]);
    expect(lines.at(-1)).toEqual(["reply in_doubt", "kill s1 11", "kill s2 12"]);
    expect(st.phase).toBe("done");
  });

  it("aborts on the vote timer only while STAGING is unsent", () => {
    const before = transcript<CoordinatorState, CoordinatorInput>(role, [{ t: "request", tx: "t1", branches, epoch: 1 }, exec("s1", "11"), { t: "timeout", id: "vote" }]);
    expect(before.lines.at(-1)).toEqual(["reply aborted timeout"]);
    const after = transcript<CoordinatorState, CoordinatorInput>(role, [{ t: "request", tx: "t1", branches, epoch: 1 }, exec("s1", "11"), exec("s2", "12"), { t: "timeout", id: "vote" }]);
    expect(after.lines.at(-1)).toEqual([]);
    expect(after.st.phase).toBe("voting");
  });
});

describe("parallel-commit resolver", () => {
  const role = resolver({ shards: ["s1", "s2"] });
  const boot: ResolverInput[] = [
    { t: "scan", active: [] },
    { t: "log.list", r: { ok: true, entries: [] } },
    { t: "log.put", key: "epoch", r: { ok: true, version: 4 } },
  ];
  const staging: LogEntry = { key: "tx/t1", version: 1, value: { kind: "staging", branches: [{ shard: "s1", conn: "11" }, { shard: "s2", conn: "12" }] } };
  const scan = (entries: LogEntry[], prepared: string[]): ResolverInput[] => [
    { t: "log.list", r: { ok: true, entries } },
    { t: "xa.recover", shard: "s1", r: { ok: true, prepared: prepared.filter((s) => s === "s1").map((shard) => ({ tx: "t1", shard })) } },
    { t: "xa.recover", shard: "s2", r: { ok: true, prepared: prepared.filter((s) => s === "s2").map((shard) => ({ tx: "t1", shard })) } },
  ];
  const kills: ResolverInput[] = [
    { t: "xa.kill", shard: "s1", conn: "11", r: ok },
    { t: "xa.kill", shard: "s2", conn: "12", r: ok },
  ];

  it("a STAGING transaction: first sighting, then KILL of every recorded connection (one at a time), then XA RECOVER again and commit when all are prepared", () => {
    const { lines, st } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan([staging], ["s1"]),
      { t: "scan", active: [] },
      ...scan([staging], ["s1"]),
      ...kills,
      { t: "scan", active: [] },
      ...scan([staging], ["s1", "s2"]),
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 2 } },
    ]);
    expect(lines.slice(5)).toEqual([
      [],
      ["list tx/"],
      ["recover s1"],
      ["recover s2"],
      ["kill s1 11"],
      ["kill s2 12"],
      [],
      ["list tx/"],
      ["recover s1"],
      ["recover s2"],
      ["put tx/t1 commit if v1 fence v4"],
      ["commit s1", "commit s2"],
    ]);
    expect(st.phase).toBe("resolving");
  });

  it("aborts a fenced STAGING transaction with a branch missing, and rolls back the prepared one", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan([staging], ["s1"]),
      { t: "scan", active: [] },
      ...scan([staging], ["s1"]),
      ...kills,
      { t: "scan", active: [] },
      ...scan([staging], ["s1"]),
      { t: "log.put", key: "tx/t1", r: { ok: true, version: 2 } },
    ]);
    expect(lines.slice(-2)).toEqual([["put tx/t1 abort if v1 fence v4"], ["rollback s1"]]);
  });

  it("does not decide after a failed kill: it kills again on the next scan", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot,
      ...scan([staging], ["s1"]),
      { t: "scan", active: [] },
      ...scan([staging], ["s1"]),
      { t: "xa.kill", shard: "s1", conn: "11", r: ok },
      { t: "xa.kill", shard: "s2", conn: "12", r: { ok: false, err: "UNAVAILABLE" } },
      { t: "scan", active: [] },
      ...scan([staging], ["s1"]),
    ]);
    expect(lines.at(-1)).toEqual(["kill s1 11"]);
  });

  it("leaves a STAGING transaction with a live coordinator alone", () => {
    const { lines } = transcript<ResolverState, ResolverInput>(role, [
      ...boot.slice(0, 2),
      { t: "log.put", key: "epoch", r: { ok: true, version: 1 } },
      ...scan([staging], ["s1"]),
      { t: "scan", active: ["t1"] },
      ...scan([staging], ["s1"]),
    ]);
    expect(lines.slice(-3)).toEqual([["recover s1"], ["recover s2"], []]);
  });
});

describe("parallel-commit composed model", () => {
  it("has exactly the known size on 2 shards x 1 transfer without faults", () => {
    const r = check(parallelFactory.build({ ...parallelFactory.params, scenario: "transfer", crash: 0, shardCrash: 0 }));
    expect({ distinct: r.distinct, generated: r.generated, depth: r.depth, violations: r.violations.length }).toEqual({
      distinct: 641,
      generated: 1581,
      depth: 21,
      violations: 0,
    });
  });

  const entries = suite.filter((e) => e.model === "parallel" && e.mutant !== undefined);

  it("has a suite entry for every mutant", () => {
    expect(parallelFactory.mutants.filter((m) => !entries.some((e) => e.mutant === m))).toEqual([]);
  });

  for (const e of entries) {
    it(`catches ${e.mutant} with ${e.expect.replace("violates ", "")} alone`, () => {
      const model = onlyProperties(parallelFactory.build({ ...parallelFactory.params, ...e.params }, e.mutant), e.properties);
      const r = check(model);
      expect(r.violations.map((v) => v.name)).toEqual([e.expect.replace("violates ", "")]);
      if (e.length !== undefined) expect(r.violations[0]!.length).toBe(e.length);
    }, 60_000);
  }

  it("is shown able to fail on every property: each has a suite entry with a mutant it catches alone", () => {
    const model = parallelFactory.build({ ...parallelFactory.params });
    const properties = [...Object.keys(model.invariants), ...Object.keys(model.eventually ?? {})];
    const shown = new Set(entries.flatMap((e) => e.properties ?? []));
    expect(properties.filter((p) => !shown.has(p))).toEqual([]);
  });
});
