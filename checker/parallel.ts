/**
 * The parallel engine: level-synchronous BFS over worker threads with
 * hash-partitioned ownership.
 *
 * Every state has one owner, `ownerOf(key) = hash'(key) mod N`. Each worker
 * keeps its own StateTable, state store and parent links for the states it
 * owns, so no table is shared and no lock or atomic is needed. A level:
 *
 *   1. the main thread tells every worker to expand its share of level L;
 *   2. a worker expands its states, inserts successors it owns, and batches
 *      the others (key + parent id) to their owner over a MessagePort;
 *      between chunks it takes in the batches its peers sent it;
 *   3. it sends "done" to each peer, waits for "done" from each peer (ports
 *      are FIFO: every batch arrived before), and reports to the main thread.
 *
 * Because a level only starts once the previous one is finished everywhere,
 * the set of states at each depth is exactly the one-thread BFS's: distinct,
 * generated and depth are identical, and a violation found in level L has a
 * shortest trace (the main thread picks the shallowest one reported). A
 * parent link is a global id `local index * N + worker`; to rebuild a trace
 * the main thread asks the owners for each key along the chain, then replays
 * it like the one-thread engine.
 *
 * Functions cannot cross threads, so a worker builds its own copy of the
 * model from the registry by name (or from its file, load.ts), parameters and mutant.
 */
import { readdirSync, readFileSync } from "node:fs";
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import type { Model } from "../spec/kernel/model.ts";
import type { CheckOptions, CheckResult, Violation, ViolationKind } from "./result.ts";
import { collisionChance, heapBytes, peakRssMb, progressLine, toMb } from "./result.ts";
import { replay, stateKeying, toTrace, type StateKey } from "./rebuild.ts";
import { UserError } from "./errors.ts";
import { assembleGraph, StateGraph, toViolation, type GraphParts } from "./graph.ts";

export interface WorkerSetup {
  /** A registry name or a model file's absolute path (load.ts). */
  model: string;
  params: Record<string, string | number | boolean>;
  mutant?: string;
  /** Only these properties (--property), as on the main thread. */
  properties?: readonly string[];
  id: number;
  workers: number;
  symmetry: boolean;
  deadlock: boolean;
  maxSeconds?: number;
  startedMs: number;
}

export interface FoundReport {
  gid: number;
  names: string[];
  kind: ViolationKind;
  /** Depth of the violating state (1 = initial). */
  depth: number;
}

export type ToWorker =
  | { type: "ports"; ports: Array<MessagePort | undefined> }
  | { type: "level"; level: number }
  /** The frontier is at the depth limit: enumerate its states' actions (deadlocks), expand nothing. */
  | { type: "probe"; level: number }
  | { type: "chain"; gid: number }
  /** The search is complete: send this worker's share of the state graph (liveness properties). */
  | { type: "graph" };

export type ToMain =
  | {
      type: "level";
      id: number;
      distinct: number;
      generated: number;
      added: number;
      bytes: number;
      /** This worker's V8 heap used + external memory (result.ts, heapBytes). */
      heap: number;
      /** With a state constraint: states stored outside it, and the depth of the deepest one inside (constraint.ts). */
      outside?: number;
      insideDepth?: number;
      found?: FoundReport;
      stopped?: string;
      /** The model threw while this worker expanded a state of the level (worker.ts). */
      failed?: string;
      /** SPECCOMMIT_WORKER_STATS=1: where this worker's time went, in seconds (worker.ts). */
      stats?: WorkerStats;
    }
  | { type: "graph"; id: number; parts: GraphParts }
  | { type: "probed"; id: number; enabled: boolean; found?: FoundReport }
  | { type: "progress"; id: number; distinct: number; generated: number; queue: number }
  /** The state's key; for a model with a local encoding, the state too (the main thread encodes it with its own instance). */
  | { type: "chain"; id: number; key: StateKey; state?: unknown; parent: number };

export interface WorkerStats {
  threadCpu: number;
  /** Time runnable but waiting for a CPU (other threads, other processes). */
  queued: number;
  expandCpu: number;
  receiveCpu: number;
  levelEndWait: number;
  batches: number;
}

/** SPECCOMMIT_WORKER_STATS=1: each worker's figures, then the CPU of this process's other threads (V8's GC and compiler threads among them). */
function printStats(replies: ToMain[]): void {
  const s = (x: number) => x.toFixed(2);
  const workerCpu = replies.reduce((sum, r) => sum + (r.type === "level" && r.stats ? r.stats.threadCpu : 0), 0);
  if (workerCpu === 0) return;
  for (const r of replies) {
    if (r.type !== "level" || !r.stats) continue;
    const t = r.stats;
    process.stderr.write(`worker ${r.id}: thread CPU ${s(t.threadCpu)} s (expanding ${s(t.expandCpu)}, taking in ${t.batches} batches ${s(t.receiveCpu)}), waiting for a CPU ${s(t.queued)} s, at level ends ${s(t.levelEndWait)} s\n`);
  }
  const times = readdirSync("/proc/self/task").map((t) => readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ").map((x) => Number(x) / 1e9));
  const all = times.reduce((sum, [cpu]) => sum + cpu!, 0);
  process.stderr.write(`other threads (main, V8's GC and compiler, the module loader): CPU ${s(all - workerCpu)} s\n`);
}

export interface ParallelSpec {
  model: string;
  params: Record<string, string | number | boolean>;
  mutant?: string;
  properties?: readonly string[] | undefined;
  workers: number;
  options: CheckOptions;
}

/**
 * One pending reply per worker at a time: the protocol is request/response.
 * If any worker fails, every pending request fails with its error (the
 * others would otherwise wait forever for the dead peer's "done").
 */
class Crew {
  private readonly waiting: Array<{ resolve: (m: ToMain) => void; reject: (e: Error) => void } | undefined>;
  private failure: Error | undefined;
  readonly progress: Array<{ distinct: number; generated: number; queue: number }>;

  constructor(readonly threads: Worker[], onProgress: () => void) {
    this.waiting = threads.map(() => undefined);
    this.progress = threads.map(() => ({ distinct: 0, generated: 0, queue: 0 }));
    threads.forEach((w, i) => {
      w.on("message", (m: ToMain) => {
        if (m.type === "progress") {
          this.progress[i] = m;
          onProgress();
          return;
        }
        const pending = this.waiting[i];
        this.waiting[i] = undefined;
        pending?.resolve(m);
      });
      w.on("error", (e) => this.fail(new Error(`worker ${i} failed: ${e.message}`, { cause: e })));
      w.on("exit", (code) => {
        if (this.waiting[i]) this.fail(new Error(`worker ${i} exited (code ${code}) before answering`));
      });
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiting.forEach((pending, i) => {
      this.waiting[i] = undefined;
      pending?.reject(e);
    });
  }

  ask(i: number, m: ToWorker, transfer: MessagePort[] = []): Promise<ToMain> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting[i] = { resolve, reject };
      this.threads[i]!.postMessage(m, transfer);
    });
  }

  all(make: (i: number) => ToWorker, transfer: (i: number) => MessagePort[] = () => []): Promise<ToMain[]> {
    return Promise.all(this.threads.map((_, i) => this.ask(i, make(i), transfer(i))));
  }
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function unexpected(reply: ToMain): never {
  throw new Error(`parallel: unexpected reply ${reply.type}`);
}

/** A stored state's key in this thread's terms: a model with a local encoding is re-encoded by this thread's instance (portable.ts). */
function keyFrom<S, A>(model: Model<S, A>, reply: Extract<ToMain, { type: "chain" }>): StateKey {
  return model.localEncoding ? model.encode(reply.state as S) : reply.key;
}

export async function checkParallel<S, A>(spec: ParallelSpec, model: Model<S, A>): Promise<CheckResult> {
  const opts = spec.options;
  const n = spec.workers;
  // Liveness properties (and their refusals: with symmetry under fairness, with a constraint) as in the one-thread engine.
  const liveness = StateGraph.of(model, !!opts.symmetry) !== undefined;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  // The search's own time and CPU (every thread's), from when the workers have loaded the model; their start-up apart.
  let searchStarted = started;
  let cpu = process.cpuUsage();
  const entry = new URL("./worker-entry.mjs", import.meta.url);
  const threads = Array.from(
    { length: n },
    (_, id) =>
      new Worker(entry, {
        workerData: {
          model: spec.model,
          params: spec.params,
          ...(spec.mutant ? { mutant: spec.mutant } : {}),
          ...(spec.properties ? { properties: spec.properties } : {}),
          id,
          workers: n,
          symmetry: !!opts.symmetry,
          deadlock: !!opts.deadlock,
          ...(opts.maxSeconds !== undefined ? { maxSeconds: opts.maxSeconds } : {}),
          startedMs: Date.now(),
        } satisfies WorkerSetup,
      }),
  );
  let depth = 0;
  let nextReport = started + (opts.progressMs ?? 2000);
  let reported = false;
  const crew = new Crew(threads, () => {
    const now = performance.now();
    if (!opts.progress || now < nextReport) return;
    nextReport = now + (opts.progressMs ?? 2000);
    reported = true;
    const sum = crew.progress.reduce((a, p) => ({ distinct: a.distinct + p.distinct, generated: a.generated + p.generated, queue: a.queue + p.queue }), { distinct: 0, generated: 0, queue: 0 });
    opts.progress(progressLine({ ...sum, depth, seconds: seconds() }));
  });

  try {
    // Worker i gets one end of a channel to every peer j.
    const ports: Array<Array<MessagePort | undefined>> = threads.map(() => threads.map(() => undefined));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const { port1, port2 } = new MessageChannel();
        ports[i]![j] = port1;
        ports[j]![i] = port2;
      }
    }
    let replies = await crew.all(
      (i) => ({ type: "ports", ports: ports[i]! }),
      (i) => ports[i]!.filter((p): p is MessagePort => p !== undefined),
    );
    searchStarted = performance.now();
    cpu = process.cpuUsage();
    let distinct = 0;
    let generated = 0;
    let stopped: string | undefined;
    let found: FoundReport | undefined;
    let bytes = 0;
    let outside = 0;
    let insideDepth = 0;
    let heap = 0;
    let level = 1;
    const deadline = opts.maxSeconds === undefined ? Infinity : started + opts.maxSeconds * 1000;
    for (;;) {
      let added = 0;
      distinct = 0;
      generated = 0;
      bytes = 0;
      outside = 0;
      heap = heapBytes();
      for (const r of replies) {
        if (r.type !== "level") throw new Error(`parallel: unexpected reply ${r.type}`);
        distinct += r.distinct;
        generated += r.generated;
        bytes += r.bytes;
        added += r.added;
        outside += r.outside ?? 0;
        heap += r.heap;
        insideDepth = Math.max(insideDepth, r.insideDepth ?? 0);
        if (r.found && (!found || r.found.depth < found.depth)) found = r.found;
        stopped ??= r.stopped;
      }
      // The model threw in a worker. One thread stops at the first violating state, so it may never expand the
      // state that threw (a mutant's states past its violation): a violation found in the same level wins.
      const failed = replies.find((r) => r.type === "level" && r.failed);
      if (failed?.type === "level" && !found) throw new Error(failed.failed);
      // These replies added the states at depth `level`.
      if (added > 0) depth = level;
      if (found || stopped || added === 0) break;
      if (opts.maxDepth !== undefined && level >= opts.maxDepth) {
        // As the one-thread engine: deadlocks at the limit are reported; incomplete only if a state there has an enabled action.
        const probed = await crew.all(() => ({ type: "probe", level }));
        let more = false;
        for (const r of probed) {
          if (r.type !== "probed") throw new Error(`parallel: unexpected reply ${r.type}`);
          more ||= r.enabled;
          if (r.found && (!found || r.found.gid < found.gid)) found = r.found;
        }
        if (more && !found) stopped = `max depth ${opts.maxDepth}`;
        break;
      }
      if (opts.maxStates !== undefined && distinct >= opts.maxStates) {
        stopped = `max states ${opts.maxStates}`;
        break;
      }
      if (performance.now() >= deadline) {
        stopped = `max seconds ${opts.maxSeconds}`;
        break;
      }
      replies = await crew.all(() => ({ type: "level", level }));
      level++;
    }

    const violations: Violation[] = [];
    if (found) {
      const keys: StateKey[] = [];
      let at = found.gid;
      while (at >= 0) {
        const reply = await crew.ask(at % n, { type: "chain", gid: at });
        if (reply.type !== "chain") throw new Error(`parallel: unexpected reply ${reply.type}`);
        keys.push(keyFrom(model, reply));
        at = reply.parent;
      }
      keys.reverse();
      // The workers store packed keys for a packed model, canonical bytes otherwise (worker.ts).
      const run = replay(model, stateKeying(model, !!opts.symmetry, !!model.packed && !liveness), keys);
      for (const name of found.names) {
        violations.push({ name, kind: found.kind, length: run.actions.length, trace: toTrace(model, run, { params: spec.params, violation: name, ...(spec.mutant ? { mutant: spec.mutant } : {}) }) });
      }
    }
    if (liveness && !found && !stopped) {
      // The workers' shares of the graph, joined in the one-thread engine's numbering; the checks run here (graph.ts).
      const parts = await crew.all(() => ({ type: "graph" }));
      const graph = assembleGraph(parts.map((r) => (r.type === "graph" ? r.parts : unexpected(r))));
      const chain = (i: number): number[] => {
        const path: number[] = [];
        for (let at = i; at >= 0; at = graph.parent[at]!) path.push(at);
        return path.reverse();
      };
      const broken = StateGraph.loaded(model, graph).check(graph.initialCount, chain);
      // The keys along each counterexample, from their owners.
      const keys = new Map<number, StateKey>();
      for (const f of broken) {
        for (const i of f.path) {
          if (keys.has(i)) continue;
          const gid = graph.gids[i]!;
          const reply = await crew.ask(gid % n, { type: "chain", gid });
          keys.set(i, reply.type === "chain" ? keyFrom(model, reply) : unexpected(reply));
        }
      }
      const keying = stateKeying(model, !!opts.symmetry, false);
      const info = { params: spec.params, ...(spec.mutant ? { mutant: spec.mutant } : {}) };
      for (const f of broken) violations.push(toViolation(model, keying, info, (i) => keys.get(i)!, f));
    }
    const result: CheckResult = {
      model: model.name,
      params: spec.params,
      ...(spec.mutant ? { mutant: spec.mutant } : {}),
      workers: n,
      symmetry: !!opts.symmetry,
      // TLC leaves states outside the constraint out of distinct and depth (constraint.ts).
      distinct: distinct - outside,
      ...(model.constraint ? { outside } : {}),
      generated,
      depth: model.constraint ? insideDepth : depth,
      // Packed keys are exact; canonical bytes are told apart by their fingerprints (worker.ts).
      ...(model.packed && !liveness ? {} : { fingerprintCollision: collisionChance(distinct, generated) }),
      seconds: (performance.now() - searchStarted) / 1000,
      startSeconds: (searchStarted - started) / 1000,
      cpuSeconds: cpuSince(cpu),
      storeMb: toMb(bytes),
      heapBytes: heap,
      peakRssMb: peakRssMb(),
      // Complete: every reachable state explored; a search stopped at its first violation is not.
      complete: stopped === undefined && found === undefined,
      ...(stopped ? { incomplete: stopped } : {}),
      violations,
    };
    if (opts.progress && reported) opts.progress(progressLine({ distinct, generated, queue: 0, depth, seconds: result.seconds }));
    printStats(replies);
    return result;
  } finally {
    await Promise.all(threads.map((w) => w.terminate()));
  }
}
