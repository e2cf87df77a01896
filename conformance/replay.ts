/**
 * Replaying a trace against the roles that produced it: each role instance
 * of the trace (a role's actor and, for a coordinator, its transaction),
 * started fresh and fed its recorded inputs in order, must ask for exactly
 * the recorded effects at every step. The same check for a live transaction
 * (the server's coordinator, rebuilt from the header's settings) and for a
 * counterexample (the model's roles, rebuilt from the header's model, params
 * and mutant): the one trace dialect (docs/traces.md) makes them the same.
 *
 * A step of the process crashing (`process`, input `crash`) restarts every
 * role from `start()`, as the crash does. The environment's steps (shards,
 * log, client) are drawn, not replayed: a role sees them only as its inputs.
 */
import type { Trace, TraceHeader, TraceStep } from "../spec/kernel/trace.ts";
import { COORDINATOR_ACTOR, IDEMPOTENCY_ACTOR, PROCESS_ACTOR, PROCESS_CRASH } from "../spec/kernel/trace.ts";
import { ProtocolViolation, type Role } from "../spec/kernel/role.ts";
import type { ModelFactory } from "../spec/kernel/model.ts";
import { protocolOfTraceModel, REGISTRY } from "../spec/protocols/registry.ts";
import { serverCoordinator } from "../spec/server/coordinator.ts";
import { claimRole } from "../spec/server/idempotency.ts";
import { mixedFactory, serverFactory } from "../spec/server/model.ts";

/** The roles a trace's steps are replayed against, by actor name. */
export type Roles = Readonly<Record<string, Role<any, any, any>>>;

export type ReplayResult =
  | { ok: true; steps: number }
  | { ok: false; step: number; message: string; expected: unknown; got: unknown };

/** The models whose counterexamples record role steps: every protocol's own, and the server's compositions. */
const ROLE_MODELS: readonly ModelFactory[] = [...REGISTRY.map((p) => p.model), mixedFactory, serverFactory];

/** The coordinator a runtime trace header names, with the settings it ran with, and the idempotency claim role that ran beside it (a keyed transfer). */
function runtimeRoles(h: TraceHeader): Roles {
  if (protocolOfTraceModel(h.model ?? "") === undefined) {
    const known = REGISTRY.map((d) => d.traceModel);
    throw new Error(`trace model ${JSON.stringify(h.model)}: only runtime coordinator traces (${known.join(", ")}) can be replayed`);
  }
  const p = h.params ?? {};
  const num = (name: string): number => {
    const v = p[name];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new Error(`trace header params.${name}: expected an integer, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    [COORDINATOR_ACTOR]: serverCoordinator({ voteTimeoutMs: num("voteTimeoutMs"), retryDelayMs: num("retryDelayMs"), attemptsMax: num("attemptsMax") }),
    [IDEMPOTENCY_ACTOR]: claimRole(),
  };
}

/** The roles of the model a counterexample header names, built with its params and `mutant` (none: the correct roles). */
function checkerRoles(h: TraceHeader, mutant: string | undefined): Roles {
  const f = ROLE_MODELS.find((m) => m.name === h.model);
  if (f === undefined) {
    throw new Error(`trace model ${JSON.stringify(h.model)}: its steps are not role steps (role models: ${ROLE_MODELS.map((m) => m.name).join(", ")})`);
  }
  if (mutant !== undefined && !f.mutants.includes(mutant)) throw new Error(`trace header mutant ${JSON.stringify(mutant)}: ${f.name} has no such mutant`);
  const roles = f.build({ ...f.params, ...(h.params ?? {}) }, mutant).roles?.();
  if (roles === undefined) throw new Error(`model ${f.name} declares no roles (Model.roles)`);
  return roles;
}

/**
 * The roles a trace header names: the server's coordinator for a live
 * trace; for a counterexample, its model's roles, with the header's mutant
 * unless `correct` asks for the model without it.
 */
export function rolesOfHeader(h: TraceHeader, opts: { correct?: boolean } = {}): Roles {
  if (h.source === "runtime") return runtimeRoles(h);
  return checkerRoles(h, opts.correct ? undefined : h.mutant);
}

/** Feeds every role's recorded inputs to fresh roles and compares the effects each asks for with the recorded ones. */
export function replayTrace(trace: Trace, roles: Roles = rolesOfHeader(trace.header)): ReplayResult {
  const states = new Map<string, unknown>();
  const instance = (s: TraceStep) => `${s.actor}\u0000${s.tx ?? trace.header.tx ?? ""}`;
  let replayed = 0;
  for (const s of trace.steps) {
    if (s.step === 0) continue;
    if (s.actor === PROCESS_ACTOR && s.input === PROCESS_CRASH) states.clear();
    const role = roles[s.actor];
    if (role === undefined) continue;
    const at = instance(s);
    let out: { st: unknown; effects: unknown[] };
    try {
      out = role.step(states.has(at) ? states.get(at) : role.start(), s.input);
    } catch (e) {
      if (!(e instanceof ProtocolViolation)) throw e;
      return { ok: false, step: s.step, message: `step ${s.step} (${whose(s)}): the role asserts ${e.message}`, expected: s.effects, got: e.message };
    }
    if (canonical(out.effects) !== canonical(s.effects)) {
      return { ok: false, step: s.step, message: `step ${s.step} (${whose(s)}): the role asks for different effects than the trace recorded`, expected: s.effects, got: out.effects };
    }
    // A live step may record the role's state; a counterexample's step records the whole world's.
    if (trace.header.source === "runtime" && s.state !== undefined && canonical(s.state) !== canonical(out.st)) {
      return { ok: false, step: s.step, message: `step ${s.step} (${whose(s)}): the role reaches a different state than the runtime recorded`, expected: s.state, got: out.st };
    }
    states.set(at, out.st);
    replayed++;
  }
  return { ok: true, steps: replayed };
}

const whose = (s: TraceStep): string => (s.tx === undefined ? s.actor : `${s.actor} of ${s.tx}`);

/** JSON with object keys sorted, so that key order never counts as a difference. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}
