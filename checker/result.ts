/** What a check is asked to do, and what it reports. Shared by the one-thread and the parallel engines. */
import { getHeapStatistics } from "node:v8";
import type { Trace } from "../spec/kernel/trace.ts";

export interface CheckOptions {
  /** Identify states by model.canonical(s) (symmetry reduction). */
  symmetry?: boolean;
  /** Report a state with no enabled action (that the model does not call terminal) as "deadlock". */
  deadlock?: boolean;
  /** Stop (INCOMPLETE) once this many distinct states are stored. */
  maxStates?: number;
  /**
   * Do not expand states at this depth (initial states are depth 1): their
   * invariants are checked, and their actions enumerated so that a deadlock
   * among them is reported, but no successor of theirs is stored or counted.
   * INCOMPLETE if any of them has an enabled action.
   */
  maxDepth?: number;
  /** Stop (INCOMPLETE) after this many seconds. */
  maxSeconds?: number;
  /** Where progress lines go (about every `progressMs`); none when absent. */
  progress?: (line: string) => void;
  progressMs?: number;
}

export type ViolationKind = "invariant" | "deadlock" | "eventually" | "leadsTo" | "eventuallyAlways";

export interface Violation {
  /** Invariant name, "deadlock", or the name of the liveness property. */
  name: string;
  kind: ViolationKind;
  /**
   * Steps (actions) from an initial state to the violating state: a shortest
   * such trace. For a lasso (leadsTo, eventuallyAlways): the steps of its
   * prefix, a shortest one, to the first state of the cycle.
   */
  length: number;
  /** A lasso's cycle: its steps, after which the behaviour is back where the cycle began (0: it stutters there forever). */
  cycle?: number;
  trace: Trace;
  /** Where the trace was written (NDJSON), once it has been. */
  file?: string;
}

export interface CheckResult {
  model: string;
  params: Record<string, string | number | boolean>;
  mutant?: string;
  workers: number;
  symmetry: boolean;
  /** Distinct states stored (after symmetry reduction when on), those outside the model's constraint left out as TLC does. */
  distinct: number;
  /** With Model.constraint: distinct states found outside it (stored, invariants checked, not expanded). */
  outside?: number;
  /** As TLC counts: initial states plus every (state, enabled action) pair expanded. */
  generated: number;
  /** Length of the longest shortest path, counting the initial state as 1 (as TLC). */
  depth: number;
  /**
   * When states were told apart by 64-bit fingerprints (every model but a packed one, whose packed
   * value is its own exact key): the chance that two distinct states shared one and a state was
   * wrongly taken as seen, estimated as TLC's "calculated (optimistic)" figure, n (g - n) / 2^64 for
   * n distinct and g generated states (collisionChance).
   */
  fingerprintCollision?: number;
  /** The search's own time (with workers: from when every thread has loaded the model and stored the initial states). */
  seconds: number;
  /** With workers: the threads' start-up (loading the TypeScript modules and the model, the initial states), apart from `seconds`. */
  startSeconds?: number;
  /**
   * The process's CPU time (user + system) over the search, every thread's
   * (workers included, with their start-up), which other jobs on a shared
   * machine disturb less than `seconds` (the benchmark compares encoders and
   * worker counts with it; garbage collection threads count).
   */
  cpuSeconds?: number;
  /**
   * This run's own memory for states, in MB: the visited set, the stored
   * keys, the parent links, the liveness graph and the constraint's marks
   * (capacity allocated, summed over workers). Unlike peakRssMb it is per
   * run, so it tells the runs of one process (`--mutants`) apart.
   */
  storeMb: number;
  /**
   * V8 heap used plus external memory (array buffers) right after the
   * search, summed over the threads that searched (the main thread and each
   * worker): what the states cost, divided by distinct in the benchmark.
   */
  heapBytes?: number;
  /** Peak resident set size of the whole process so far (every run it made, every thread), in MB. */
  peakRssMb: number;
  /** True only when every reachable state was explored: false when a limit stopped the search, or the first violating state did (invariant, deadlock). */
  complete: boolean;
  /** Which limit stopped it, when incomplete. */
  incomplete?: string;
  violations: Violation[];
}

/**
 * TLC's optimistic estimate of a fingerprint collision: each of the g - n generated states that were
 * found already seen could have been a new state with the same fingerprint as one of the n stored, each
 * with chance 1 / 2^64.
 */
export function collisionChance(distinct: number, generated: number): number {
  return (distinct * Math.max(0, generated - distinct)) / 2 ** 64;
}

/** Bytes as MB, to a tenth. */
export function toMb(bytes: number): number {
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}

/** Peak resident set size of this process (all its threads) so far, in MB. */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

export function progressLine(p: {
  distinct: number;
  generated: number;
  queue: number;
  depth: number;
  seconds: number;
}): string {
  const rate = p.seconds > 0 ? Math.round(p.distinct / p.seconds) : 0;
  const rss = Math.round(process.memoryUsage.rss() / 2 ** 20);
  return (
    `progress: ${p.seconds.toFixed(1)}s distinct=${p.distinct} generated=${p.generated} ` +
    `queue=${p.queue} depth=${p.depth} states/s=${rate} rss=${rss}MB`
  );
}

/** This thread's V8 heap used plus its external memory, in bytes. */
export function heapBytes(): number {
  const h = getHeapStatistics();
  return h.used_heap_size + h.external_memory;
}
