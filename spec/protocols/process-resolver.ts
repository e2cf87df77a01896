/**
 * The resolver one server process runs: the parallel-commit resolver
 * (./parallel/resolver.ts), which finishes 2PC and parallel-commit
 * transactions alike, then the speculative path's resolver
 * (./speculative/resolver.ts), one after the other on every scan, under ONE
 * process epoch.
 *
 * Why one role and not two instances: each sub-resolver takes a new process
 * epoch when it boots, and a second epoch fences every write of the first
 * (EpochRecord), so two of them in one process would fence each other in
 * turn. This role takes the epoch once (the same CAS on EPOCH_KEY as the
 * sub-resolvers do) and hands it to both; a sub-resolver that meets a newer
 * epoch (FENCED) resets itself to `start()`, and this role then takes a new
 * epoch at the next scan, for both.
 *
 * Why one after the other: a `log.list` answer does not say which prefix it
 * lists, so two scans running at once could not be told apart. It also keeps
 * a scan's load on the shards to one statement at a time, as each resolver
 * alone does.
 *
 * Decisions are the sub-resolvers' own: this role only routes. Each
 * sub-resolver sees exactly the inputs it would see alone (a scan, then the
 * answers to its own effects), only later: the XA scan's `active` set is
 * taken when the scan starts, and the speculative scan reuses it. That set
 * is older than the speculative scan's listing, which is safe for the reason
 * the speculative resolver waits for a second sighting: the NEXT scan's set,
 * taken after this listing, is what must cover a live coordinator.
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import type { Role, Step } from "../kernel/role.ts";
import { EPOCH_KEY, type Effect, type Result, type TxId } from "../kernel/effects.ts";
import * as xa from "./parallel/resolver.ts";
import * as spec from "./speculative/resolver.ts";
import type { ShardId } from "../kernel/effects.ts";

export type ProcessEffect = Effect | Effect;
export type ProcessResult = Result | Result;

export interface ProcessResolverState {
  /** idle between scans; booting while taking the epoch; xa / spec while that sub-resolver scans. */
  readonly phase: "idle" | "booting" | "xa" | "spec";
  readonly epoch: number | null;
  readonly active: readonly TxId[];
  readonly xa: xa.ResolverState;
  readonly spec: spec.ResolverState;
}

export type ProcessResolverInput = { readonly t: "scan"; readonly active: readonly TxId[] } | ProcessResult;

export interface ProcessResolverOptions {
  /** XA shards (XA RECOVER) and speculative shards (undo-row scans); the same shards in the server. */
  readonly shards: readonly ShardId[];
  /** Run the speculative resolver after the XA one (a process without the speculative path's tables leaves it out). Default true. */
  readonly speculative?: boolean;
}

export const processEpochOf = (st: ProcessResolverState): number | null => st.epoch;

type Out = Step<ProcessResolverState, ProcessEffect>;

export function processResolver(opts: ProcessResolverOptions): Role<ProcessResolverState, ProcessResolverInput, ProcessEffect> {
  const xaRole = xa.resolver({ shards: opts.shards });
  const specRole = spec.resolver({ shards: opts.shards });
  const start = (): ProcessResolverState => ({ phase: "idle", epoch: null, active: [], xa: xaRole.start(), spec: specRole.start() });

  /** A sub-resolver fenced (it forgot its epoch): the process must take a new one. */
  const lostEpoch = (st: ProcessResolverState): ProcessResolverState => ({ ...st, phase: "idle", epoch: null, xa: xaRole.start(), spec: specRole.start() });

  function startXa(st: ProcessResolverState): Out {
    const sub = xaRole.step({ ...st.xa, epoch: st.epoch }, { t: "scan", active: st.active });
    return afterXa({ ...st, phase: "xa", xa: sub.st }, sub.effects);
  }

  function afterXa(st: ProcessResolverState, effects: ProcessEffect[]): Out {
    if (st.xa.epoch === null) return { st: lostEpoch(st), effects };
    if (st.xa.phase !== "idle") return { st, effects };
    if (opts.speculative === false) return { st: { ...st, phase: "idle" }, effects };
    const sub = specRole.step({ ...st.spec, epoch: st.epoch }, { t: "scan", active: st.active });
    const next = afterSpec({ ...st, phase: "spec", spec: sub.st }, sub.effects);
    return { st: next.st, effects: [...effects, ...next.effects] };
  }

  function afterSpec(st: ProcessResolverState, effects: ProcessEffect[]): Out {
    if (st.spec.epoch === null) return { st: lostEpoch(st), effects };
    if (st.spec.phase !== "idle") return { st, effects };
    return { st: { ...st, phase: "idle" }, effects };
  }

  function step(st: ProcessResolverState, input: ProcessResolverInput): Out {
    if (input.t === "scan") {
      if (st.phase !== "idle") return { st, effects: [] };
      const next: ProcessResolverState = { ...st, active: [...input.active].sort() };
      if (st.epoch === null) return { st: { ...next, phase: "booting" }, effects: [{ t: "log.list", prefix: EPOCH_KEY }] };
      return startXa(next);
    }
    switch (st.phase) {
      case "idle":
        return { st, effects: [] };
      case "booting": {
        if (input.t === "log.list") {
          if (!input.r.ok) return { st: { ...st, phase: "idle" }, effects: [] };
          const version = input.r.entries.find((e) => e.key === EPOCH_KEY)?.version ?? 0;
          return { st, effects: [{ t: "log.put", key: EPOCH_KEY, value: { kind: "epoch" }, ifVersion: version }] };
        }
        if (input.t === "log.put" && input.key === EPOCH_KEY) {
          // Another process took the epoch first, or the log did not answer: try again next scan.
          if (!input.r.ok) return { st: { ...st, phase: "idle" }, effects: [] };
          return startXa({ ...st, epoch: input.r.version });
        }
        return { st, effects: [] };
      }
      case "xa": {
        if (isLocal(input)) return { st, effects: [] };
        const sub = xaRole.step(st.xa, input as xa.ResolverInput);
        return afterXa({ ...st, xa: sub.st }, sub.effects);
      }
      case "spec": {
        if (input.t === "xa.kill" || (input.t === "xa.exec" && "conn" in input)) return { st, effects: [] };
        const sub = specRole.step(st.spec, input as Result);
        return afterSpec({ ...st, spec: sub.st }, sub.effects);
      }
    }
  }

  return { start, step };
}

const isLocal = (r: ProcessResult): r is Extract<Result, { t: `local.${string}` }> => r.t.startsWith("local.");
