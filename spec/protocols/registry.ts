/**
 * The protocols the server runs, each as its spec role (spec/protocols/):
 * which coordinator role, built with which options, when it is done, and the
 * name its traces are recorded under (conformance/replay.ts builds the role back
 * from that name and the options). Nothing protocol-shaped is decided here.
 */
import type { Role } from "../kernel/role.ts";
import type { BranchSpec, TxId } from "../kernel/effects.ts";
import * as twopc from "./twopc/coordinator.ts";
import * as parallel from "./parallel/coordinator.ts";
import { doneWithOnePhase, withOnePhase } from "./one-phase.ts";
import * as speculative from "./speculative/coordinator.ts";
import type { Effect, Result } from "../kernel/effects.ts";

export const PROTOCOLS = ["2pc", "parallel", "speculative"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The server's coordinator settings (config.ts), shared by every protocol. */
export interface CoordinatorSettings {
  /** 2PC / parallel: how long executing (and preparing) may take; speculative: how long the applies may take before settling. */
  readonly voteTimeoutMs: number;
  readonly retryDelayMs: number;
  /** Attempts per commit, rollback or log write (speculative: retries of a settling statement). */
  readonly maxAttempts: number;
}

export type CoordinatorInput = { readonly t: "request"; readonly tx: TxId; readonly branches: readonly BranchSpec[]; readonly epoch: number } | Result;

/** A coordinator role as the engine drives it: opaque state, any protocol's effects. */
export type AnyCoordinator = Role<{ readonly phase: string }, CoordinatorInput, Effect>;

export interface ProtocolDef {
  readonly protocol: Protocol;
  /** The trace header's `model`. */
  readonly model: string;
  readonly role: (s: CoordinatorSettings) => AnyCoordinator;
  readonly done: (st: { readonly phase: string }) => boolean;
}

type Done = (st: { readonly phase: string }) => boolean;

const speculativeOptions = (s: CoordinatorSettings): speculative.CoordinatorOptions => ({ applyTimeoutMs: s.voteTimeoutMs, retryDelayMs: s.retryDelayMs, maxRetries: s.maxAttempts });

export const PROTOCOL_DEFS: Readonly<Record<Protocol, ProtocolDef>> = {
  "2pc": {
    protocol: "2pc",
    model: "twopc.coordinator",
    role: (s) => twopc.coordinator({ voteTimeoutMs: s.voteTimeoutMs, retryDelayMs: s.retryDelayMs, maxAttempts: s.maxAttempts }) as unknown as AnyCoordinator,
    done: twopc.coordinatorDone as Done,
  },
  parallel: {
    protocol: "parallel",
    model: "parallel.coordinator",
    // One branch: 2PC's one-phase path (spec/protocols/one-phase.ts); two or more: parallel commit.
    role: (s) => withOnePhase(s, parallel.coordinator(s), parallel.coordinatorDone).role as unknown as AnyCoordinator,
    done: doneWithOnePhase(parallel.coordinatorDone) as Done,
  },
  speculative: {
    protocol: "speculative",
    model: "speculative.coordinator",
    // One branch: 2PC's one-phase path (nothing to speculate on, nothing to undo); two or more: the speculative path.
    role: (s) => withOnePhase(s, speculative.coordinator(speculativeOptions(s)), speculative.coordinatorDone).role as unknown as AnyCoordinator,
    done: doneWithOnePhase(speculative.coordinatorDone) as Done,
  },
};

export const protocolOfModel = (model: string): ProtocolDef | undefined => Object.values(PROTOCOL_DEFS).find((d) => d.model === model);
