/**
 * The coordinator the server runs for every transaction, whatever its
 * protocol: the request names the protocol (../protocols/registry.ts), and
 *   - a transaction of ONE branch takes the one-phase path (the registry's
 *     ONE_PHASE: 2PC's XA COMMIT ... ONE PHASE, no prepare, no txlog record):
 *     with one branch there is no one to agree with and nothing to undo, so
 *     parallel commit's STAGING record and the speculative path's undo row,
 *     escrow and records would be pure cost;
 *   - every other transaction, its protocol's own coordinator.
 * The choice is made once, from the request, and never changes, so the two
 * paths never share a transaction. Both paths are checked roles: each
 * protocol's model checks its own coordinator, and the server model
 * (./model.ts) checks this very role, with transactions of different
 * protocols side by side.
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import { assert, type Role, type Step } from "../kernel/role.ts";
import type { Effect } from "../kernel/effects.ts";
import type { CoordinatorInput, CoordinatorSettings, Phased, Protocol, Request } from "../protocols/protocol.ts";
import { DEFAULT_PROTOCOL, ONE_PHASE, protocolNamed } from "../protocols/registry.ts";

export type Path = "one_phase" | "many";

export type ServerCoordinatorState =
  | { readonly phase: "idle"; readonly protocol: null; readonly path: null; readonly inner: null }
  /** `phase` mirrors the inner coordinator's. */
  | { readonly phase: string; readonly protocol: string; readonly path: Path; readonly inner: Phased };

/** The path a request takes: the one-phase path for a single branch, else its protocol's own coordinator. */
export const pathOf = (branches: number): Path => (branches > 1 ? "many" : "one_phase");

/** The protocol whose coordinator runs a request of `branches` branches that named `protocol` (absent: the default). */
export const protocolRun = (protocol: string | undefined, branches: number): Protocol =>
  pathOf(branches) === "one_phase" ? ONE_PHASE : protocolNamed(protocol ?? DEFAULT_PROTOCOL);

/** The server's coordinator, with its own "nothing left to do" predicate. */
export function serverCoordinator(settings: CoordinatorSettings): Role<ServerCoordinatorState, CoordinatorInput, Effect> & { done(st: ServerCoordinatorState): boolean } {
  const roles = new Map<string, Role<Phased, CoordinatorInput, Effect>>();
  const roleOf = (protocol: Protocol, path: Path): Role<Phased, CoordinatorInput, Effect> => {
    const p = path === "one_phase" ? ONE_PHASE : protocol;
    let r = roles.get(p.name);
    if (r === undefined) roles.set(p.name, (r = p.coordinator(settings)));
    return r;
  };
  const start = (): ServerCoordinatorState => ({ phase: "idle", protocol: null, path: null, inner: null });

  function onRequest(st: ServerCoordinatorState, input: Request): Step<ServerCoordinatorState, Effect> {
    assert(st.protocol === null, () => `server coordinator: a second request for ${input.tx} (already running ${st.protocol})`);
    const protocol = protocolNamed(input.protocol ?? DEFAULT_PROTOCOL);
    const path = pathOf(input.branches.length);
    const role = roleOf(protocol, path);
    const out = role.step(role.start(), input);
    return { st: { phase: out.st.phase, protocol: protocol.name, path, inner: out.st }, effects: out.effects };
  }

  function step(st: ServerCoordinatorState, input: CoordinatorInput): Step<ServerCoordinatorState, Effect> {
    if (input.t === "request") return onRequest(st, input);
    assert(st.protocol !== null, () => `server coordinator: a ${input.t} result arrived before any request`);
    const out = roleOf(protocolNamed(st.protocol), st.path).step(st.inner, input);
    return { st: { phase: out.st.phase, protocol: st.protocol, path: st.path, inner: out.st }, effects: out.effects };
  }

  const done = (st: ServerCoordinatorState): boolean =>
    st.protocol !== null && (st.path === "one_phase" ? ONE_PHASE : protocolNamed(st.protocol)).done(st.inner);

  return { start, step, done };
}
