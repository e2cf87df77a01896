/**
 * One worker thread of the parallel engine (parallel.ts explains the scheme).
 *
 * The worker owns the states whose key hashes to its id: it alone stores
 * them, checks their invariants and expands them. Successors owned by a peer
 * are batched to that peer over a dedicated MessagePort. A level ends, for a
 * worker, when it has expanded its share of the level and every peer has sent
 * "done" for that level (ports are FIFO, so every batch came first).
 */
import { readFileSync } from "node:fs";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import type { Model } from "../spec/kernel/model.ts";
import { resolveFactory } from "./load.ts";
import { KeySet, StateTable } from "./table.ts";
import { ByteArena, F64List } from "./store.ts";
import { fingerprint, mixSlot, ownerOf, TWO_POW_32 } from "./hash.ts";
import type { FoundReport, ToMain, ToWorker, WorkerSetup } from "./parallel.ts";
import { onlyProperties } from "./properties.ts";
import { heapBytes } from "./result.ts";
import { Constraint } from "./constraint.ts";
import { GraphRecorder, type GraphParts } from "./graph.ts";
import { PartReceiver, PartSender, partKeys, type PortableBatch } from "./portable.ts";

/** Successors per batch sent to a peer. */
const BATCH = 8192;
/**
 * Successors a worker remembers having sent to their owner (a direct-mapped
 * cache, 2^16 entries: 512 KB for packed keys, within a core's L2), so that
 * it sends each at most once while it stays in the cache (see "Parallel" in docs/checker.md).
 */
const SENT_MASK = (1 << 16) - 1;
/** Received keys whose table slots are touched together before they are probed (packed store). */
const RUN = 32;
/** States expanded between two visits to the event loop (to take in peers' batches). */
const CHUNK = 8192;

interface Batch {
  type: "batch";
  /** Depth of the states in the batch. */
  depth: number;
  /** Packed: [key, parent gid] pairs. Generic: parent gids. */
  numbers: Float64Array;
  /** Generic only: the states' bytes, end to end, and each one's length. */
  bytes?: Uint8Array;
  lengths?: Uint32Array;
  /** Generic, with liveness properties: the sender's edge index of each successor (GraphRecorder). */
  edges?: Uint32Array;
  /** A model with a local encoding (portable.ts): the states as parts, instead of bytes. */
  portable?: PortableBatch;
  /** The sender's id. */
  from: number;
}
type PeerMessage = Batch | { type: "done" };

const setup = workerData as WorkerSetup;
// A registry name or a model file's path (load.ts): the same model the main thread checks.
const factory = await resolveFactory(setup.model);
const model: Model<unknown, unknown> = onlyProperties(factory.build(setup.params, setup.mutant), setup.properties);
const me = setup.id;
const workers = setup.workers;
const canonical = setup.symmetry ? model.canonical!.bind(model) : undefined;
const invariantNames = Object.keys(model.invariants);
const invariantFns = invariantNames.map((n) => model.invariants[n]!);
// TLC's CONSTRAINT over the states owned here (constraint.ts): stored, checked, not expanded.
const constraint = Constraint.of(model);
// Liveness properties: this worker's share of the state graph (graph.ts); the main thread assembles and checks it.
const graph = GraphRecorder.of(model, setup.symmetry, setup.workers);
const deadline = setup.maxSeconds === undefined ? Infinity : setup.startedMs + setup.maxSeconds * 1000;

const parents = new F64List();
let count = 0;
let generated = 0;
/** The states of the level to expand next: [frontierStart, frontierEnd). Fixed when a level ends, before peers send the next level's states. */
let frontierStart = 0;
let frontierEnd = 0;
let found: FoundReport | undefined;
let stopped: string | undefined;
/** The model threw while this worker expanded a state (reported with the level: see parallel.ts). */
let failed: string | undefined;
let ports: Array<MessagePort | undefined> = [];
let peersDone = 0;
let levelFinished: (() => void) | undefined;

const gid = (index: number) => index * workers + me;

function checkInvariants(s: unknown, index: number, depth: number): void {
  constraint?.admit(s, index, depth);
  if (found) return;
  let broken: string[] | undefined;
  for (let i = 0; i < invariantFns.length; i++) if (!invariantFns[i]!(s)) (broken ??= []).push(invariantNames[i]!);
  if (broken) found = { gid: gid(index), names: broken, kind: "invariant", depth };
}

function checkDeadlock(s: unknown, index: number, depth: number): void {
  if (!setup.deadlock || found) return;
  if (model.terminal && model.terminal(s)) return;
  found = { gid: gid(index), names: ["deadlock"], kind: "deadlock", depth };
}

/** The two representations of states: packed numbers, or canonical bytes. */
interface Store {
  /** Adds an initial state if this worker owns it. */
  init(s: unknown): void;
  expand(index: number, depth: number): void;
  /** A state at the depth limit: its number of enabled actions, and the state (nothing is stored or sent). */
  probe(index: number): { state: unknown; enabled: number };
  receive(b: Batch): void;
  flush(peer: number): void;
  key(index: number): number | Uint8Array;
  /** The state itself (sent to the main thread for a model with a local encoding, whose bytes it cannot read). */
  state(index: number): unknown;
  /** Bytes allocated for this worker's states (table, keys). */
  bytes(): number;
}

function packedStore(): Store {
  const packed = model.packed!;
  const states = new F64List(1 << 16);
  const out = new Float64Array(packed.maxSuccessors);
  const room = Math.max(packed.maxSuccessors, RUN);
  const his = new Uint32Array(room);
  const los = new Uint32Array(room);
  const hashes = new Uint32Array(room);
  /** The keys sent to peers lately, by slot hash (direct-mapped: a newer key replaces an older one). */
  const sent = new Float64Array(SENT_MASK + 1).fill(-1);
  const outbox: Float64Array[] = [];
  const filled: number[] = [];
  for (let p = 0; p < workers; p++) {
    outbox.push(new Float64Array(2 * BATCH));
    filled.push(0);
  }
  const canon = (y: number) => (canonical ? packed.pack(canonical(packed.unpack(y))) : y);
  const table = new KeySet(16);
  /** Where the cache-warming loads leave their values, so they are not dead code. */
  let touched = 0;
  const add = (y: number, hash: number, hi: number, lo: number, parent: number, depth: number) => {
    if (!table.add(hash, hi, lo)) return;
    states.push(y);
    parents.push(parent);
    checkInvariants(packed.unpack(y), count, depth);
    count++;
  };
  const store: Store = {
    init(s) {
      const y = canon(packed.pack(s));
      const hi = Math.floor(y / TWO_POW_32);
      const lo = y >>> 0;
      const hash = mixSlot(hi, lo);
      if (ownerOf(hash, workers) === me) add(y, hash, hi, lo, -1, 1);
    },
    expand(index, depth) {
      const x = states.data[index]!;
      const n = packed.successors(x, out);
      generated += n;
      if (n === 0) checkDeadlock(packed.unpack(x), index, depth);
      const parent = gid(index);
      // As the one-thread loop (engine.ts): first the keys, routing a peer's
      // successors to its batch and touching the slots of this worker's own,
      // then the probes, whose cache misses the touches have overlapped.
      let m = 0;
      for (let i = 0; i < n; i++) {
        let y = out[i]!;
        if (y === x) continue;
        y = canon(y);
        const hi = Math.floor(y / TWO_POW_32);
        const lo = y >>> 0;
        const hash = mixSlot(hi, lo);
        const owner = ownerOf(hash, workers);
        if (owner === me) {
          touched ^= table.peek(hash);
          out[m] = y;
          his[m] = hi;
          los[m] = lo;
          hashes[m] = hash;
          m++;
        } else {
          // Sent to its owner already (a diamond: another of this worker's states had it as successor).
          const recent = hash & SENT_MASK;
          if (sent[recent] === y) continue;
          sent[recent] = y;
          const box = outbox[owner]!;
          const at = filled[owner]!;
          box[at] = y;
          box[at + 1] = parent;
          filled[owner] = at + 2;
          if (at + 2 === box.length) store.flush(owner);
        }
      }
      for (let j = 0; j < m; j++) add(out[j]!, hashes[j]!, his[j]!, los[j]!, parent, depth + 1);
    },
    probe(index) {
      const x = states.data[index]!;
      return { state: packed.unpack(x), enabled: packed.successors(x, out) };
    },
    receive(b) {
      // The batch in runs of RUN keys: touch their slots, then probe them (as expand).
      const nums = b.numbers;
      for (let start = 0; start < nums.length; start += 2 * RUN) {
        const end = Math.min(nums.length, start + 2 * RUN);
        let m = 0;
        for (let i = start; i < end; i += 2) {
          const y = nums[i]!;
          const hi = Math.floor(y / TWO_POW_32);
          const lo = y >>> 0;
          const hash = mixSlot(hi, lo);
          touched ^= table.peek(hash);
          his[m] = hi;
          los[m] = lo;
          hashes[m] = hash;
          m++;
        }
        for (let j = 0, i = start; j < m; j++, i += 2) add(nums[i]!, hashes[j]!, his[j]!, los[j]!, nums[i + 1]!, b.depth);
      }
    },
    flush(peer) {
      const n = filled[peer]!;
      if (n === 0) return;
      const numbers = outbox[peer]!.slice(0, n);
      ports[peer]!.postMessage({ type: "batch", from: me, depth: addDepth, numbers } satisfies Batch, [numbers.buffer]);
      filled[peer] = 0;
    },
    key: (index) => states.data[index]!,
    state: (index) => packed.unpack(states.data[index]!),
    bytes: () => states.bytes + table.bytes,
  };
  return store;
}

function genericStore(): Store {
  const arena = new ByteArena();
  const table = new StateTable(16);
  const fp = new Uint32Array(2);
  /** The keys (fingerprints or content hashes) sent to peers lately, as in the packed store. */
  const sentHi = new Uint32Array(SENT_MASK + 1);
  const sentLo = new Uint32Array(SENT_MASK + 1);
  const sentFull = new Uint8Array(SENT_MASK + 1);
  const outbox: Array<{ parents: number[]; edges: number[]; chunks: Uint8Array[] }> = [];
  for (let p = 0; p < workers; p++) outbox.push({ parents: [], edges: [], chunks: [] });
  // A model whose bytes are local to its instance: owners from a structural hash, states sent as parts (portable.ts).
  const keys = model.localEncoding ? partKeys(model.decode(model.encode([...model.init()][0]))) : [];
  const sender = model.localEncoding ? new PartSender(keys, workers) : undefined;
  const receiver = model.localEncoding ? new PartReceiver(keys) : undefined;
  /** Stores the state if new (decoded from its bytes when not given); its local index either way. */
  /** Stores the state if new (decoded from its bytes when not given); its local index either way. */
  const add = (bytes: Uint8Array, given: unknown, parent: number, depth: number): number => {
    const seen = table.findOrAdd(fp[0]!, fp[1]!, count);
    if (seen >= 0) return seen;
    return insert(bytes, given, parent, depth);
  };
  /** Stores a state the table has just taken as new (at index count). */
  const insert = (bytes: Uint8Array, given: unknown, parent: number, depth: number): number => {
    arena.push(bytes);
    parents.push(parent);
    const state = given === undefined ? model.decode(bytes) : given;
    graph?.addState(state);
    checkInvariants(state, count, depth);
    return count++;
  };
  /** A successor (or, parent < 0, an initial state): stored here or sent to its owner; `edge` is its edge index when the graph is kept. */
  const route = (s: unknown, parent: number, depth: number, edge: number): number => {
    const c = canonical ? canonical(s) : s;
    const bytes = model.encode(c);
    let owner: number;
    if (sender) {
      // The table is keyed by the content hash, which peers compute too (portable.ts).
      owner = ownerOf(sender.ownerHash(bytes, c), workers);
      fp[0] = sender.stateHi;
      fp[1] = sender.stateLo;
    } else {
      fingerprint(bytes, fp);
      owner = ownerOf(mixSlot(fp[0]!, fp[1]!), workers);
    }
    if (owner === me) {
      const local = add(bytes, c, parent, depth);
      if (edge >= 0) graph!.setTarget(edge, gid(local));
      return local;
    }
    if (parent < 0) return -1;
    // Sent to its owner already (without a state graph, whose edges all need their target).
    if (!graph) {
      const recent = mixSlot(fp[0]!, fp[1]!) & SENT_MASK;
      if (sentFull[recent] === 1 && sentHi[recent] === fp[0] && sentLo[recent] === fp[1]) return -1;
      sentFull[recent] = 1;
      sentHi[recent] = fp[0]!;
      sentLo[recent] = fp[1]!;
    }
    const box = outbox[owner]!;
    box.parents.push(parent);
    if (graph) box.edges.push(edge);
    if (sender) sender.add(owner, bytes, c);
    else box.chunks.push(bytes);
    if (box.parents.length === BATCH) store.flush(owner);
    return -1;
  };
  let ordinal = 0;
  const store: Store = {
    init(s) {
      const local = route(s, -1, 1, -1);
      if (local >= 0) graph?.addInitial(ordinal, local);
      ordinal++;
    },
    expand(index, depth) {
      const s = model.decode(arena.get(index));
      graph?.beginState(index, s);
      let enabled = 0;
      for (const a of model.actions(s)) {
        enabled++;
        route(model.next(s, a), gid(index), depth + 1, graph ? graph.addEdge(a) : -1);
      }
      generated += enabled;
      if (enabled === 0) checkDeadlock(s, index, depth);
    },
    probe(index) {
      const state = model.decode(arena.get(index));
      let enabled = 0;
      for (const _ of model.actions(state)) enabled++;
      return { state, enabled };
    },
    receive(b) {
      if (b.portable) {
        const state = receiver!.open(b.portable);
        const keys = b.portable.keys;
        for (let i = 0; i < b.numbers.length; i++) {
          // A state already here is not rebuilt: its content hash is its key.
          let local = table.findOrAdd(keys[2 * i]!, keys[2 * i + 1]!, count);
          if (local < 0) {
            const s = state(i);
            const bytes = model.encode(s);
            if (receiver!.needsSettle) receiver!.settle(model.decode(bytes));
            local = insert(bytes, s, b.numbers[i]!, b.depth);
          }
          if (b.edges) graph!.addFix(b.from, b.edges[i]!, local);
        }
        return;
      }
      const bytes = b.bytes!;
      const lengths = b.lengths!;
      let at = 0;
      for (let i = 0; i < lengths.length; i++) {
        const one = bytes.subarray(at, at + lengths[i]!);
        at += lengths[i]!;
        fingerprint(one, fp);
        const local = add(one, undefined, b.numbers[i]!, b.depth);
        if (b.edges) graph!.addFix(b.from, b.edges[i]!, local);
      }
    },
    flush(peer) {
      const box = outbox[peer]!;
      if (box.parents.length === 0) return;
      const numbers = Float64Array.from(box.parents);
      const transfer: ArrayBuffer[] = [numbers.buffer];
      const message: Batch = { type: "batch", from: me, depth: addDepth, numbers };
      if (sender) {
        const taken = sender.take(peer);
        message.portable = taken.batch;
        transfer.push(...taken.transfer);
      } else {
        const lengths = Uint32Array.from(box.chunks, (c) => c.length);
        const bytes = new Uint8Array(lengths.reduce((a, b) => a + b, 0));
        let at = 0;
        for (const c of box.chunks) {
          bytes.set(c, at);
          at += c.length;
        }
        message.bytes = bytes;
        message.lengths = lengths;
        transfer.push(bytes.buffer, lengths.buffer);
      }
      if (graph) {
        message.edges = Uint32Array.from(box.edges);
        transfer.push(message.edges.buffer as ArrayBuffer);
      }
      ports[peer]!.postMessage(message, transfer);
      box.parents = [];
      box.edges = [];
      box.chunks = [];
    },
    key: (index) => arena.get(index).slice(),
    state: (index) => model.decode(arena.get(index)),
    bytes: () => arena.bytes + table.bytes + (sender?.bytes ?? 0) + (receiver?.bytes ?? 0),
  };
  return store;
}

// With liveness properties a packed model runs the generic store, as in the one-thread engine (engine.ts).
const store = model.packed && !graph ? packedStore() : genericStore();
/** Depth of the states this worker adds in the current level (sent with its batches). */
let addDepth = 1;

/**
 * SPECCOMMIT_WORKER_STATS=1 (Linux): where each worker's time goes, sent with its level reports and printed by
 * the main thread at the end (parallel.ts): its thread's CPU and run-queue wait (/proc/thread-self/schedstat),
 * the CPU it spent expanding and taking in peers' batches, and its wait at the end of each level.
 */
const STATS = process.env.SPECCOMMIT_WORKER_STATS === "1";
const schedstat = (): number[] => readFileSync("/proc/thread-self/schedstat", "utf8").split(" ").map((x) => Number(x) / 1e9);
const stats = { expandCpu: 0, receiveCpu: 0, levelEndWait: 0, batches: 0 };

function onPeer(m: PeerMessage): void {
  if (m.type === "batch") {
    const cpu = STATS ? schedstat()[0]! : 0;
    store.receive(m);
    if (STATS) {
      stats.receiveCpu += schedstat()[0]! - cpu;
      stats.batches++;
    }
    return;
  }
  peersDone++;
  if (peersDone === workers - 1 && levelFinished) levelFinished();
}

function levelReport(added: number): ToMain {
  return {
    type: "level",
    id: me,
    distinct: count,
    generated,
    added,
    bytes: store.bytes() + parents.bytes + (graph?.bytes ?? 0) + (constraint?.bytes ?? 0),
    heap: heapBytes(),
    ...(constraint ? { outside: constraint.outsideCount, insideDepth: constraint.depth } : {}),
    ...(found ? { found } : {}),
    ...(stopped ? { stopped } : {}),
    ...(failed ? { failed } : {}),
    ...(STATS ? { stats: { ...stats, threadCpu: schedstat()[0]!, queued: schedstat()[1]! } } : {}),
  };
}

const yieldToPeers = () => new Promise<void>((resolve) => setImmediate(resolve));
const post = (m: ToMain) => parentPort!.postMessage(m);

async function runLevel(level: number): Promise<void> {
  const start = frontierStart;
  const end = frontierEnd;
  addDepth = level + 1;
  let lastProgress = performance.now();
  for (let head = start; head < end && !found && !stopped && !failed; ) {
    const stop = Math.min(end, head + CHUNK);
    const cpu = STATS ? schedstat()[0]! : 0;
    try {
      for (; head < stop && !found; head++) if (!constraint?.outside(head)) store.expand(head, level);
    } catch (e) {
      // Not thrown here: the peers must still get this level's batches and "done".
      failed = `${model.name}: the model threw while worker ${me} expanded a state at depth ${level}: ${(e as Error)?.message ?? String(e)}`;
    }
    if (STATS) stats.expandCpu += schedstat()[0]! - cpu;
    await yieldToPeers();
    const now = performance.now();
    // Date.now(): the deadline was set by the main thread, whose performance clock has another origin.
    if (Date.now() >= deadline) stopped = `max seconds ${setup.maxSeconds}`;
    if (now - lastProgress > 500) {
      lastProgress = now;
      post({ type: "progress", id: me, distinct: count, generated, queue: end - head });
    }
  }
  for (let p = 0; p < workers; p++) {
    if (p === me) continue;
    store.flush(p);
    ports[p]!.postMessage({ type: "done" } satisfies PeerMessage);
  }
  const waitStart = performance.now();
  if (peersDone < workers - 1) await new Promise<void>((resolve) => (levelFinished = resolve));
  stats.levelEndWait += (performance.now() - waitStart) / 1000;
  levelFinished = undefined;
  peersDone = 0;
  const added = count - frontierEnd;
  frontierStart = frontierEnd;
  frontierEnd = count;
  post(levelReport(added));
}

parentPort!.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "ports":
      ports = m.ports;
      for (const p of ports) p?.on("message", onPeer);
      for (const s of model.init()) {
        if (me === 0) generated++;
        store.init(s);
      }
      frontierEnd = count;
      post(levelReport(count));
      break;
    case "level":
      void runLevel(m.level);
      break;
    case "probe": {
      let enabled = false;
      for (let i = frontierStart; i < frontierEnd && !found; i++) {
        if (constraint?.outside(i)) continue;
        const p = store.probe(i);
        if (p.enabled > 0) enabled = true;
        else checkDeadlock(p.state, i, m.level);
      }
      post({ type: "probed", id: me, enabled, ...(found ? { found } : {}) });
      break;
    }
    case "graph": {
      const parts: GraphParts = graph!.parts(count);
      const buffers = [parts.bits, parts.goals, parts.rowStart, parts.targets, parts.allowed, parts.initial, ...parts.classes, ...parts.fixes].map((a) => a.buffer as ArrayBuffer);
      parentPort!.postMessage({ type: "graph", id: me, parts } satisfies ToMain, buffers);
      break;
    }
    case "chain": {
      const index = Math.floor(m.gid / workers);
      post({ type: "chain", id: me, key: store.key(index), ...(model.localEncoding ? { state: store.state(index) } : {}), parent: parents.data[index]! });
      break;
    }
  }
});
