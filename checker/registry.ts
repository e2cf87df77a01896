/**
 * Every model the CLI, the suite and the worker threads can load by name.
 * Adding a model is one line here (plus its entries in suite.config.ts).
 */
import type { ModelFactory } from "../spec/kernel/model.ts";
import { twoPhaseFactory } from "../spec/reference/twophase.ts";
import { tcommitFactory } from "../spec/reference/tcommit.ts";
import { countdownFactory } from "../spec/reference/countdown.ts";
import { twopcFactory } from "../spec/protocols/twopc/model.ts";
import { parallelFactory } from "../spec/protocols/parallel/model.ts";
import { mixedFactory } from "../spec/protocols/mixed/model.ts";
import { speculativeFactory } from "../spec/protocols/speculative/model.ts";

export const registry: readonly ModelFactory[] = [twoPhaseFactory, tcommitFactory, countdownFactory, twopcFactory, speculativeFactory, parallelFactory, mixedFactory];
