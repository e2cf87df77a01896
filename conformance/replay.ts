/**
 * Replaying a recorded live trace against the role that produced it: a fresh
 * role, fed the recorded inputs in order, must ask for exactly the recorded
 * effects at every step. That is what "the runtime runs the spec unchanged"
 * means for one transaction, checked after the fact; `speccommit trace
 * validate` can call `replayTrace` on a trace read from NDJSON.
 *
 * The role is rebuilt from the trace header (`model` and `params`), so a
 * trace carries everything needed to check it.
 */
import type { Trace, TraceHeader } from "../spec/kernel/trace.ts";
import { COORDINATOR_ACTOR } from "../spec/kernel/trace.ts";
import type { Role } from "../spec/kernel/role.ts";
import type { Effect } from "../spec/kernel/effects.ts";
import type { CoordinatorInput } from "../spec/protocols/protocol.ts";
import { protocolOfTraceModel, REGISTRY } from "../spec/protocols/registry.ts";
import { serverCoordinator } from "../spec/server/coordinator.ts";

/** The coordinator role a live trace records: the server's (spec/server/coordinator.ts), which runs every protocol. */
type TracedRole = Role<any, CoordinatorInput, Effect>;

export type ReplayResult =
  | { ok: true; steps: number }
  | { ok: false; step: number; message: string; expected: unknown; got: unknown };

/** The role a runtime trace header names, with the options it ran with. */
export function roleOfHeader(h: TraceHeader): TracedRole {
  const def = protocolOfTraceModel(h.model ?? "");
  if (def === undefined) {
    const known = REGISTRY.map((d) => d.traceModel);
    throw new Error(`trace model ${JSON.stringify(h.model)}: only runtime coordinator traces (${known.join(", ")}) can be replayed`);
  }
  const p = h.params ?? {};
  const num = (name: string): number => {
    const v = p[name];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new Error(`trace header params.${name}: expected an integer, got ${JSON.stringify(v)}`);
    return v;
  };
  return serverCoordinator({ voteTimeoutMs: num("voteTimeoutMs"), retryDelayMs: num("retryDelayMs"), attemptsMax: num("attemptsMax") });
}

/** Feeds every recorded input to a fresh role and compares the effects it asks for with the recorded ones. */
export function replayTrace(trace: Trace, role: TracedRole = roleOfHeader(trace.header)): ReplayResult {
  let st = role.start();
  for (const s of trace.steps) {
    // Steps of the environment (shards, log, client) are drawn, not replayed: the role only sees their answers as inputs.
    if (s.step === 0 || s.actor !== COORDINATOR_ACTOR) continue;
    const out = role.step(st, s.input as CoordinatorInput);
    const got = canonical(out.effects);
    const expected = canonical(s.effects);
    if (got !== expected) {
      return { ok: false, step: s.step, message: `step ${s.step}: the role asks for different effects than the runtime recorded`, expected: s.effects, got: out.effects };
    }
    if (s.state !== undefined && canonical(s.state) !== canonical(out.st)) {
      return { ok: false, step: s.step, message: `step ${s.step}: the role reaches a different state than the runtime recorded`, expected: s.state, got: out.st };
    }
    st = out.st;
  }
  return { ok: true, steps: trace.steps.filter((s) => s.actor === COORDINATOR_ACTOR).length };
}

/** JSON with object keys sorted, so that key order never counts as a difference. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}
