/**
 * A role is a protocol participant written as one pure step function
 * (DESIGN.md, "Roles"): an input in, the new volatile state and a list of
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
