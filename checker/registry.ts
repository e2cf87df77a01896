/**
 * Every model the CLI, the suite and the worker threads can load by name:
 * the reference models, every registered protocol's own model
 * (spec/protocols/registry.ts), and the server's composition
 * (spec/server/model.ts). A new protocol needs no line here.
 */
import type { ModelFactory } from "../spec/kernel/model.ts";
import { twoPhaseFactory } from "../spec/reference/twophase.ts";
import { tcommitFactory } from "../spec/reference/tcommit.ts";
import { countdownFactory } from "../spec/reference/countdown.ts";
import { REGISTRY } from "../spec/protocols/registry.ts";
import { mixedFactory, serverFactory } from "../spec/server/model.ts";
import { threePcFactory } from "../spec/reference/threepc.ts";
import { deadlockFactory } from "../spec/deadlock/model.ts";
import { failoverFactory } from "../spec/failover/model.ts";
import { timeFactory } from "../spec/time/model.ts";
import { nodesFactory } from "../spec/time/nodes-model.ts";

export const registry: readonly ModelFactory[] = [twoPhaseFactory, tcommitFactory, countdownFactory, ...REGISTRY.map((p) => p.model), mixedFactory, serverFactory, threePcFactory, deadlockFactory, failoverFactory, timeFactory, nodesFactory];
