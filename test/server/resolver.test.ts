/**
 * The process resolver (spec/server/resolver.ts): one epoch for every part,
 * the XA scan then the speculative scan, results routed to the part that
 * asked, a fenced part making the process take a new epoch, and whether the
 * last scan was complete. And the routing claim itself: each part, inside,
 * asks for exactly what it asks for alone.
 */
import { describe, expect, it } from "vitest";
import { processResolver } from "../../spec/server/resolver.ts";
import { RESOLVER_PARTS } from "../../spec/protocols/registry.ts";
import type { ResolverInput as ProcessResolverInput } from "../../spec/protocols/protocol.ts";
import * as xa from "../../spec/protocols/xa/resolver.ts";
import * as spec from "../../spec/protocols/speculative/resolver.ts";
import { EPOCH_KEY, type LogEntry } from "../../spec/kernel/effects.ts";
import { transcript, transcript as runTranscript } from "../protocols/transcript.ts";
import { prober, type ProbeInput, type ProbeState } from "../../spec/protocols/speculative/probe.ts";
import type { Effect } from "../../spec/kernel/effects.ts";

const SHARDS = ["s1", "s2"];

function show(e: Effect): string {
  switch (e.t) {
    case "log.list":
      return `list ${e.prefix}`;
    case "log.put":
      return `put ${e.key} ${e.value.kind === "decision" ? e.value.decision : e.value.kind === "speculation" ? e.value.state : e.value.kind} if v${e.ifVersion}${e.fence ? ` fence v${e.fence.version}` : ""}`;
    case "log.delete":
      return `delete ${e.key}`;
    case "xa.recover":
    case "local.scan":
      return `${e.t} ${e.shard}`;
    case "xa.kill":
      return `kill ${e.shard} ${e.conn}`;
    case "local.tombstone":
    case "local.compensate":
    case "local.release":
    case "xa.commit":
    case "xa.rollback":
      return `${e.t} ${e.tx} ${e.shard}`;
    default:
      return e.t;
  }
}

const listed = (entries: LogEntry[]): ProcessResolverInput => ({ t: "log.list", r: { ok: true, entries } });
const recovered = (shard: string, prepared: { tx: string; shard: string }[] = []): ProcessResolverInput => ({ t: "xa.recover", shard, r: { ok: true, prepared } });
const scanned = (shard: string, rows: { tx: string; branch: string; state: "undo"; branches: string[] }[] = []): ProcessResolverInput => ({ t: "local.scan", shard, r: { ok: true, rows } });
const epochTaken = (version: number): ProcessResolverInput => ({ t: "log.put", key: EPOCH_KEY, r: { ok: true, version } });

describe("process resolver", () => {
  const role = processResolver({ shards: SHARDS, parts: RESOLVER_PARTS });

  it("takes one epoch, then runs the XA scan and the speculative scan one after the other", () => {
    const { lines, st } = transcript(
      role,
      [
        { t: "scan", active: [] },
        listed([]),
        epochTaken(3),
        listed([]),
        recovered("s1"),
        recovered("s2"),
        listed([]),
        scanned("s1"),
        scanned("s2"),
      ],
      show,
    );
    expect(lines).toEqual([
      ["list epoch"],
      ["put epoch epoch if v0"],
      ["list tx/"],
      ["xa.recover s1"],
      ["xa.recover s2"],
      ["list speculative/"],
      ["local.scan s1"],
      ["local.scan s2"],
      [],
    ]);
    expect(st.phase).toBe("idle");
    expect(st.epoch).toBe(3);
    expect(st.parts.map((p) => p.epoch)).toEqual([3, 3]);
    expect(st.lastScan).toBe("complete");
  });

  it("without the speculative path, a scan ends with the XA scan", () => {
    const { lines, st } = transcript(
      processResolver({ shards: SHARDS, parts: RESOLVER_PARTS.filter((p) => p.needs === "xa") }),
      [{ t: "scan", active: [] }, listed([]), epochTaken(1), listed([]), recovered("s1"), recovered("s2"), { t: "scan", active: [] }],
      show,
    );
    expect(lines).toEqual([["list epoch"], ["put epoch epoch if v0"], ["list tx/"], ["xa.recover s1"], ["xa.recover s2"], [], ["list tx/"]]);
    expect(st.phase).toBe("scanning");
  });

  it("a scan in which a shard did not answer is partial", () => {
    const { st } = transcript(
      role,
      [{ t: "scan", active: [] }, listed([]), epochTaken(1), listed([]), recovered("s1"), { t: "xa.recover", shard: "s2", r: { ok: false, err: "UNAVAILABLE" } }, listed([]), scanned("s1"), scanned("s2")],
      show,
    );
    expect(st.phase).toBe("idle");
    expect(st.lastScan).toBe("partial");
  });

  it("a scan while one is under way is ignored; results nobody waits for change nothing", () => {
    const { lines } = transcript(
      role,
      [{ t: "scan", active: [] }, { t: "scan", active: [] }, scanned("s1"), listed([]), epochTaken(1)],
      show,
    );
    expect(lines).toEqual([["list epoch"], [], [], ["put epoch epoch if v0"], ["list tx/"]]);
  });

  it("a sub-resolver fenced by a newer epoch makes the process take a new one at the next scan", () => {
    // Two scans, so that the speculative resolver settles a transaction it saw twice; its fenced record write resets the epoch.
    const row = { tx: "t9", branch: "s1", state: "undo" as const, branches: ["s1", "s2"] };
    const scan = (): ProcessResolverInput[] => [{ t: "scan", active: [] }, listed([]), recovered("s1"), recovered("s2"), listed([]), scanned("s1", [row]), scanned("s2")];
    const { lines, st } = transcript(
      role,
      [
        { t: "scan", active: [] },
        listed([]),
        epochTaken(5),
        listed([]),
        recovered("s1"),
        recovered("s2"),
        listed([]),
        scanned("s1", [row]),
        scanned("s2"),
        ...scan(),
        { t: "local.tombstone", tx: "t9", shard: "s2", r: { ok: true } },
        { t: "log.put", key: "speculative/t9", r: { ok: false, err: "FENCED" } },
        { t: "scan", active: [] },
      ],
      show,
    );
    // Second scan: t9 is seen again, so it is settled: s2 not applied is probed with a tombstone.
    expect(lines[15]).toEqual(["local.tombstone t9 s2"]);
    // The tombstone won: rollback decided, SPEC_EXECUTING goes out under epoch 5.
    expect(lines[16]).toEqual(["put speculative/t9 SPEC_EXECUTING if v0 fence v5"]);
    expect(lines[17]).toEqual([]);
    expect(st.epoch).toBeNull();
    // The next scan boots again.
    expect(lines[18]).toEqual(["list epoch"]);
  });

  it("each sub-resolver asks for exactly what it asks for alone (same inputs, same epoch)", () => {
    const staging: LogEntry = { key: "tx/t1", value: { kind: "staging", branches: [{ shard: "s1", conn: "b:7" }, { shard: "s2", conn: "b:8" }] }, version: 4 };
    const decided: LogEntry = { key: "tx/t2", value: { kind: "decision", decision: "commit", branches: ["s1", "s2"] }, version: 2 };
    const xaInputs = (): xa.ResolverInput[] => [
      { t: "scan", active: [] },
      { t: "log.list", r: { ok: true, entries: [staging, decided] } },
      { t: "xa.recover", shard: "s1", r: { ok: true, prepared: [{ tx: "t1", shard: "s1" }, { tx: "t2", shard: "s1" }] } },
      { t: "xa.recover", shard: "s2", r: { ok: true, prepared: [{ tx: "t2", shard: "s2" }] } },
    ];
    // Alone: boot with epoch 2, then the same scan twice (the second fences t1's connections).
    const alone = transcript(
      xa.resolver({ shards: SHARDS }),
      [
        { t: "scan", active: [] },
        { t: "log.list", r: { ok: true, entries: [] } },
        { t: "log.put", key: EPOCH_KEY, r: { ok: true, version: 2 } },
        ...xaInputs().slice(1),
        { t: "xa.commit", tx: "t2", shard: "s1", r: { ok: true } },
        { t: "xa.commit", tx: "t2", shard: "s2", r: { ok: true } },
        ...xaInputs(),
      ],
      show,
    ).lines;
    const specAlone = (): ProcessResolverInput[] => [listed([]), scanned("s1"), scanned("s2")];
    const inside = transcript(
      role,
      [
        { t: "scan", active: [] },
        listed([]),
        epochTaken(2),
        ...(xaInputs().slice(1) as ProcessResolverInput[]),
        { t: "xa.commit", tx: "t2", shard: "s1", r: { ok: true } },
        { t: "xa.commit", tx: "t2", shard: "s2", r: { ok: true } },
        ...specAlone(),
        ...(xaInputs() as ProcessResolverInput[]),
      ],
      show,
    ).lines;
    // The process adds the speculative scan after the XA one ends; the XA effects are the same, step for step.
    const xaPart = (lines: string[][]) => lines.flat().filter((l) => !l.startsWith("list speculative/") && !l.startsWith("local."));
    expect(xaPart(inside)).toEqual(xaPart(alone));
    expect(alone.flat()).toContain("kill s1 b:7");
    // And the speculative resolver alone, given the same epoch, asks for the same scan as inside.
    const specLines = transcript(spec.resolver({ shards: SHARDS }), [{ t: "scan", active: [] }, { t: "log.list", r: { ok: true, entries: [] } }, { t: "log.put", key: EPOCH_KEY, r: { ok: true, version: 2 } }, { t: "log.list", r: { ok: true, entries: [] } }, scanned("s1") as spec.ResolverInput], show).lines.flat();
    expect(specLines.slice(2)).toEqual(["list speculative/", "local.scan s1", "local.scan s2"]);
  });
});

describe("speculation probe (spec/protocols/speculative/probe.ts)", () => {
  const role = prober({ attemptsMax: 2, retryDelayMs: 10 });
  const transcript = (r: typeof role, inputs: ProbeInput[], show: (e: Effect) => string) => runTranscript<ProbeState, ProbeInput, Effect>(r, inputs, show);
  const probe = { t: "probe" as const, tx: "t5", branches: ["s2", "s1"], epoch: 4 };

  it("tombstones every key; a tombstone that wins decides the rollback, answered before anything else", () => {
    const { lines } = transcript(
      role,
      [
        probe,
        { t: "local.tombstone", tx: "t5", shard: "s1", r: { ok: false, err: "DUPLICATE", existing: "undo" } },
        { t: "local.tombstone", tx: "t5", shard: "s2", r: { ok: true } },
      ],
      (e) => (e.t === "reply" ? `reply ${e.outcome.status}` : show(e as Effect)),
    );
    expect(lines).toEqual([["local.tombstone t5 s1", "local.tombstone t5 s2"], [], ["reply aborted", "put speculative/t5 SPEC_EXECUTING if v0 fence v4"]]);
  });

  it("every key holding the branch's undo row: the late applies won, committed", () => {
    const dup = (shard: string) => ({ t: "local.tombstone" as const, tx: "t5", shard, r: { ok: false as const, err: "DUPLICATE" as const, existing: "undo" as const } });
    const { lines } = transcript(role, [probe, dup("s1"), dup("s2")], (e) => (e.t === "reply" ? `reply ${e.outcome.status}` : show(e as Effect)));
    expect(lines[2]![0]).toBe("reply committed");
  });

  it("one tombstone that wins decides at once, even while another shard does not answer", () => {
    const lost = (shard: string) => ({ t: "local.tombstone" as const, tx: "t5", shard, r: { ok: false as const, err: "UNAVAILABLE" as const } });
    const { lines, st } = transcript(
      role,
      [probe, { t: "local.tombstone", tx: "t5", shard: "s1", r: { ok: true } }, lost("s2"), { t: "timeout", id: "settle:t5" }, lost("s2")],
      (e) => (e.t === "reply" ? `reply ${e.outcome.status}` : e.t === "timer" ? "timer" : show(e as Effect)),
    );
    // s1's tombstone won: the rollback is decided at once, whatever s2 says.
    expect(lines[1]).toEqual(["reply aborted", "put speculative/t5 SPEC_EXECUTING if v0 fence v4"]);
    expect(st.replied).toBe(true);
  });
});
