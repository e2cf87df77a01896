/**
 * `node --expose-gc --import tsx runtime/bench/retain-cost.ts [--before CHECKOUT] [--transfers N] [--rounds R]`:
 * what the engine keeps and spends per transfer, without HTTP or shards. The
 * engine runs the bench's mix (15% cross-shard, the default protocol, 64 closed-loop clients)
 * over the in-memory shards and log on a simulated clock (as netsim.ts), keeps
 * every finished transaction (retain_transactions = N), and reports:
 *
 * - CPU ms per transfer of the engine (process.cpuUsage), record_traces on;
 * - live heap per transfer after a full collection: with every transaction
 *   kept, traces on and off, and with none kept (what the in-memory shards and
 *   log keep); so the view kept costs off - none, the recording on - off, next
 *   to the estimate the engine counts against `retain_trace_bytes_max`
 *   (Engine.retained.bytes / N);
 * - with `--before CHECKOUT` (a git worktree of an older commit), the same
 *   figures of that checkout's engine, in interleaved rounds; each round in a
 *   process of its own that loads one checkout only (two copies of the engine
 *   in one process made the second about 2x slower, whichever code it was).
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { DEFAULT_PROTOCOL } from "../../spec/protocols/registry.ts";
import { join, resolve } from "node:path";
import { runScript, UsageError } from "./cli.ts";

const SHARDS = ["shard-a", "shard-b", "shard-c"];
const ACCOUNTS = 10_000;

interface Modules {
  Engine: typeof import("../engine.ts").Engine;
  mem: typeof import("../adapters/memory.ts");
}

async function load(root: string): Promise<Modules> {
  const e = (await import(join(root, "runtime", "engine.ts"))) as typeof import("../engine.ts");
  const mem = (await import(join(root, "runtime", "adapters", "memory.ts"))) as typeof import("../adapters/memory.ts");
  return { Engine: e.Engine, mem };
}

interface Run {
  cpu_ms: number;
  heap_bytes_per_tx: number;
  estimate_bytes_per_tx: number;
}

const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g === undefined) throw new Error("run under node --expose-gc (node --expose-gc --import tsx runtime/bench/retain-cost.ts)");
  g();
  g();
};

async function run(m: Modules, transfers: number, record_traces: boolean, seed: number, keep = true): Promise<Run> {
  const clock = new m.mem.SimClock();
  const rng = new m.mem.Rng(seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS }, (_, j) => [i * ACCOUNTS + j + 1, 1_000_000] as const)]));
  const d = { min_ms: 1, max_ms: 1 };
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const engine = new m.Engine({
    adapters: { xa: new m.mem.MemoryXa(balances, clock, rng, d), log: new m.mem.MemoryTxlog(clock, rng, { min_ms: 2, max_ms: 2 }), clock },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 60_000, retryDelayMs: 200, attemptsMax: 5 },
    resolver_interval_ms: 60_000,
    in_flight_max: 100_000,
    retain_transactions: keep ? transfers : 1,
    record_traces,
  });
  engine.startResolver();
  await clock.run(1_000);
  let started = 0;
  let answered = 0;
  const next = (): void => {
    if (started >= transfers) return;
    started++;
    const a = rng.int(0, SHARDS.length - 1);
    const cross = rng.next() < 0.15;
    const b = cross ? (a + rng.int(1, SHARDS.length - 1)) % SHARDS.length : a;
    const from = a * ACCOUNTS + rng.int(1, ACCOUNTS);
    let to = b * ACCOUNTS + rng.int(1, ACCOUNTS);
    if (to === from) to = from === a * ACCOUNTS + 1 ? from + 1 : from - 1;
    const amount = rng.int(1, 10_000);
    const branches = cross
      ? [
          { shard: SHARDS[a]!, ops: [{ account: from, delta: -amount }] },
          { shard: SHARDS[b]!, ops: [{ account: to, delta: amount }] },
        ]
      : [{ shard: SHARDS[a]!, ops: [{ account: Math.min(from, to), delta: from < to ? -amount : amount }, { account: Math.max(from, to), delta: from < to ? amount : -amount }] }];
    engine.submit(branches, DEFAULT_PROTOCOL, undefined, () => {
      answered++;
      clock.setTimer(0, next);
    });
  };
  const cpu0 = process.cpuUsage();
  for (let c = 0; c < 64; c++) clock.setTimer(0, next);
  for (let t = 0; t < 10_000 && (answered < transfers || engine.inFlight > 0); t++) await clock.run(clock.now_ms() + 1_000);
  const cpu = process.cpuUsage(cpu0);
  engine.stop();
  gc();
  const heap = process.memoryUsage().heapUsed - heap0;
  const kept = engine.retained;
  if (keep && kept.transactions !== transfers) throw new Error(`retain-cost: ${kept.transactions} of ${transfers} transactions kept`);
  return { cpu_ms: (cpu.user + cpu.system) / 1000 / transfers, heap_bytes_per_tx: heap / transfers, estimate_bytes_per_tx: kept.bytes / transfers };
}

interface Options {
  before?: string;
  transfers: number;
  rounds: number;
  /** Internal: measure one round of the checkout at this root and print it as JSON (a child process of the run). */
  root?: string;
  seed: number;
}

const USAGE = `usage: npx tsx runtime/bench/retain-cost.ts [--before CHECKOUT] [--transfers N (4000)] [--rounds N (3)] [--seed N (1)]
  --before CHECKOUT   also measure that checkout (e.g. a git worktree of an earlier commit), rounds interleaved`;

function parse(argv: readonly string[]): Options {
  const o: Options = { transfers: 4_000, rounds: 3, seed: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${argv[i]} needs a value`);
    if (argv[i] === "--before") o.before = v;
    else if (argv[i] === "--transfers") o.transfers = Number(v);
    else if (argv[i] === "--rounds") o.rounds = Number(v);
    else if (argv[i] === "--root") o.root = v;
    else if (argv[i] === "--seed") o.seed = Number(v);
    else throw new UsageError(`unknown option ${argv[i]}`);
  }
  for (const x of [o.transfers, o.rounds, o.seed]) if (!Number.isSafeInteger(x) || x < 1) throw new UsageError(`${x} is not an integer >= 1`);
  return o;
}

interface Round {
  cpu: number;
  cpuOff: number;
  on: number;
  off: number;
  none: number;
  est: number;
}

/** One round of one checkout, in this process (which loads no other checkout: two copies of the engine in one process slow the second one down about 2x). */
async function child(o: Options & { root: string }): Promise<void> {
  const m = await load(resolve(o.root));
  // Warm the JIT on every path first.
  for (const on of [true, false]) await run(m, 500, on, 99);
  const on = await run(m, o.transfers, true, o.seed);
  const off = await run(m, o.transfers, false, o.seed);
  const none = await run(m, o.transfers, false, o.seed, false);
  const r: Round = { cpu: on.cpu_ms, cpuOff: off.cpu_ms, on: on.heap_bytes_per_tx, off: off.heap_bytes_per_tx, none: none.heap_bytes_per_tx, est: on.estimate_bytes_per_tx };
  console.log(JSON.stringify(r));
}

function roundIn(root: string, o: Options, seed: number): Round {
  const out = execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), "--root", root, "--transfers", String(o.transfers), "--seed", String(seed)], { encoding: "utf8", maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split("\n").at(-1)!) as Round;
}

async function main(argv: readonly string[]): Promise<void> {
  const o = parse(argv);
  if (o.root !== undefined) return child({ ...o, root: o.root });
  const la0 = loadavg();
  const targets: Array<{ name: string; root: string }> = [];
  if (o.before !== undefined) targets.push({ name: `before (${o.before})`, root: resolve(o.before) });
  targets.push({ name: "this checkout", root: resolve(import.meta.dirname, "..", "..") });
  const acc = targets.map(() => [] as Round[]);
  for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const i = r % 2 === 0 ? k : targets.length - 1 - k;
      acc[i]!.push(roundIn(targets[i]!.root, o, 1 + r));
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const of = (i: number, f: (r: Round) => number) => mean(acc[i]!.map(f));
  console.log(`retain-cost: ${o.transfers} transfers x ${o.rounds} interleaved rounds per checkout (a process per round), ${DEFAULT_PROTOCOL}, 64 clients, 15% cross-shard, every transaction kept; load average ${la0.map((x) => x.toFixed(2)).join(" ")} at start, ${loadavg().map((x) => x.toFixed(2)).join(" ")} at end`);
  console.log("");
  console.log("| checkout | engine CPU ms / transfer, traces on | traces off | live heap bytes / transfer: all kept, traces on | traces off | none kept | the view (off - none) | the trace (on - off) | kept, measured (on - none) | estimate counted (Engine.retained.bytes / N) |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const f = (x: number) => x.toFixed(0);
  targets.forEach((t, i) => {
    console.log(`| ${t.name} | ${of(i, (r) => r.cpu).toFixed(4)} | ${of(i, (r) => r.cpuOff).toFixed(4)} | ${f(of(i, (r) => r.on))} | ${f(of(i, (r) => r.off))} | ${f(of(i, (r) => r.none))} | ${f(of(i, (r) => r.off - r.none))} | ${f(of(i, (r) => r.on - r.off))} | ${f(of(i, (r) => r.on - r.none))} | ${f(of(i, (r) => r.est))} |`);
  });
  if (targets.length === 2) {
    const rounds = (i: number) => acc[i]!.map((r) => r.cpu.toFixed(3)).join(" ");
    console.log(`\nengine CPU per transfer, this / before: traces on ${(of(1, (r) => r.cpu) / of(0, (r) => r.cpu)).toFixed(2)}x, off ${(of(1, (r) => r.cpuOff) / of(0, (r) => r.cpuOff)).toFixed(2)}x; rounds (on): before ${rounds(0)}, this ${rounds(1)}`);
  }
}

await runScript("retain-cost", USAGE, main);
