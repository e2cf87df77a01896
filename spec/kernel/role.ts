/**
 * A role is a protocol participant written as one pure step function
 * (docs/architecture.md, "Roles"): an input in, the new volatile state and a list of
 * effects out. The role never waits; the answer to an effect comes back as a
 * later input. The same role runs inside the model checker (composed with the
 * environment models in spec/env/) and inside the server (runtime/), which
 * executes the effects with real adapters.
 *
 * Effect ordering contract (like raft's Ready): the effects of one step are
 * independent requests and may be executed concurrently, in any order. A role
 * that needs A to happen before B asks for A, waits for A's result as an
 * input, and only then asks for B. Nothing in a role may assume an effect
 * completed until its result arrived.
 *
 * A crash resets a role to `start()`: whatever it must not forget lives in the
 * environment (the txlog, the shards), never in the role.
 */
export interface Role<St, In, Fx> {
  start(): St;
  step(st: St, input: In): Step<St, Fx>;
}

export interface Step<St, Fx> {
  st: St;
  effects: Fx[];
}

/**
 * A role's assertion failed: something the protocol says can never happen
 * did (a second reply, a commit before the decision is durable, an input the
 * role never asked for). It is a bug, in the protocol or in what fed the
 * role; the model checker and the server check the same assertions, and both
 * stop the instance rather than act on a state the protocol does not know.
 */
export class ProtocolViolation extends Error {
  override readonly name = "ProtocolViolation";
}

/** Asserts what must hold inside a role (as TigerBeetle does: assertions are documentation that runs). */
export function assert(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new ProtocolViolation(message());
}

/** An input arrived that answers an effect this role never asks for. */
export function cannotArrive(role: string, input: { readonly t: string }): never {
  throw new ProtocolViolation(`${role}: a ${input.t} result cannot arrive: this role never asks for ${input.t}`);
}
