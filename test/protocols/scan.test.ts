// The scan scaffolding every resolver part builds on (spec/protocols/scan.ts),
// the action map the server counts resolver actions with, and the recovery
// seam the engine counts STAGING recoveries through (ResolverPart.recoveryOf).
import { describe, expect, it } from "vitest";
import { actionMap, scan, type OwnInput, type ScanState } from "../../spec/protocols/scan.ts";
import { EPOCH_KEY, type Effect, type LogEntry } from "../../spec/kernel/effects.ts";
import { RESOLVER_PARTS } from "../../spec/protocols/registry.ts";
import { resolverActionOf } from "../../spec/server/resolver.ts";

interface St extends ScanState {
  readonly carried: number;
  readonly records: readonly LogEntry[];
  readonly own: readonly string[];
}
const start: St = { phase: "idle", epoch: null, active: [], carried: 7, records: [], own: [] };
const step = scan<St>({
  prefix: "p/",
  idle: (st) => ({ ...start, epoch: st.epoch, carried: st.carried }),
  listed: (st, records) => ({ st: { ...st, phase: "working", records }, effects: [] }),
  own: (st, input: OwnInput) => ({ st: { ...st, own: [...st.own, input.t] }, effects: [] }),
});
const entry = (key: string, version: number): LogEntry => ({ key, value: { kind: "epoch" }, version });

describe("scan scaffolding", () => {
  it("boots: lists the epoch key, takes the next epoch by CAS, then lists its prefix and hands on the records sorted", () => {
    let out = step(start, { t: "scan", active: ["t2", "t1"] });
    expect(out.st).toMatchObject({ phase: "booting", active: ["t1", "t2"] });
    expect(out.effects).toEqual([{ t: "log.list", prefix: EPOCH_KEY }]);
    out = step(out.st, { t: "log.list", r: { ok: true, entries: [entry(EPOCH_KEY, 4)] } });
    expect(out.effects).toEqual([{ t: "log.put", key: EPOCH_KEY, value: { kind: "epoch" }, ifVersion: 4 }]);
    out = step(out.st, { t: "log.put", key: EPOCH_KEY, r: { ok: true, version: 5 } });
    expect(out.st).toMatchObject({ phase: "listing", epoch: 5 });
    expect(out.effects).toEqual([{ t: "log.list", prefix: "p/" }]);
    out = step(out.st, { t: "log.list", r: { ok: true, entries: [entry("p/b", 1), entry("p/a", 2)] } });
    expect(out.st).toMatchObject({ phase: "working", records: [entry("p/a", 2), entry("p/b", 1)] });
  });

  it("a refused epoch CAS or an unanswered listing ends the scan (idle, carrying over what idle keeps); a tick mid-scan is ignored", () => {
    const booting = step(start, { t: "scan", active: [] }).st;
    expect(step(booting, { t: "log.put", key: EPOCH_KEY, r: { ok: false, err: "CAS", current: null, version: 9 } }).st).toEqual({ ...start, carried: 7 });
    const listing: St = { ...start, phase: "listing", epoch: 3, carried: 1 };
    expect(step(listing, { t: "log.list", r: { ok: false, err: "UNAVAILABLE" } })).toEqual({ st: { ...start, epoch: 3, carried: 1 }, effects: [] });
    expect(step(listing, { t: "scan", active: ["t9"] })).toEqual({ st: listing, effects: [] });
  });

  it("with an epoch, a tick lists at once; every other input goes to the resolver's own step", () => {
    const idle: St = { ...start, epoch: 2 };
    expect(step(idle, { t: "scan", active: [] }).effects).toEqual([{ t: "log.list", prefix: "p/" }]);
    const working: St = { ...idle, phase: "working" };
    expect(step(working, { t: "log.put", key: "p/x", r: { ok: true, version: 1 } }).st.own).toEqual(["log.put"]);
    expect(step(working, { t: "log.put", key: EPOCH_KEY, r: { ok: true, version: 1 } }).st.own).toEqual(["log.put"]);
    expect(step(working, { t: "xa.recover", shard: "s1", r: { ok: true, prepared: [] } }).st.own).toEqual(["xa.recover"]);
  });
});

describe("resolver actions and recoveries", () => {
  const put = (key: string, value: Extract<Effect, { t: "log.put" }>["value"], ifVersion: number): Effect => ({ t: "log.put", key, value, ifVersion });

  it("actionMap: listed kinds by name or function, a delete is forget, the rest (reads) null", () => {
    const of = actionMap({ "xa.commit": "commit", "log.put": (e) => (e.ifVersion > 0 ? "cas" : null) });
    expect(of({ t: "xa.commit", tx: "t1", shard: "s1" })).toBe("commit");
    expect(of({ t: "log.delete", key: "k" })).toBe("forget");
    expect(of(put("k", { kind: "epoch" }, 1))).toBe("cas");
    expect(of(put("k", { kind: "epoch" }, 0))).toBeNull();
    expect(of({ t: "xa.recover", shard: "s1" })).toBeNull();
  });

  it("the registered parts count what they did before this change: staging decisions, presumed aborts, settlements", () => {
    const decision = (d: "commit" | "abort", v: number) => put("tx/t1", { kind: "decision", decision: d, branches: ["s1", "s2"] }, v);
    expect(resolverActionOf(RESOLVER_PARTS, decision("commit", 3))).toBe("staging_commit");
    expect(resolverActionOf(RESOLVER_PARTS, decision("abort", 0))).toBe("presume_abort");
    expect(resolverActionOf(RESOLVER_PARTS, { t: "xa.kill", shard: "s1", conn: "c1" })).toBe("fence");
    expect(resolverActionOf(RESOLVER_PARTS, { t: "local.release", tx: "t1", shard: "s1", row: "retire" })).toBe("release");
    expect(resolverActionOf(RESOLVER_PARTS, { t: "log.list", prefix: "tx/" })).toBeNull();
    const recovery = (e: Effect) => RESOLVER_PARTS.map((p) => p.recoveryOf?.(e) ?? null).find((x) => x !== null) ?? null;
    expect(recovery(decision("commit", 3))).toBe("commit");
    expect(recovery(decision("abort", 2))).toBe("abort");
    expect(recovery(decision("abort", 0))).toBeNull();
    expect(recovery({ t: "log.delete", key: "tx/t1" })).toBeNull();
  });
});
