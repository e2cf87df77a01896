/**
 * `npx tsx runtime/bench/netsim.ts [--shard-ms D] [--log-ms E] [--transfers N] [--clients 1,64]`:
 * what each protocol's latency would be with the shards and etcd on other
 * machines, where every round trip costs network time and the coordinator's
 * CPU is not shared with them. The engine runs the protocols' roles as the
 * server does, over the in-memory shards and log (runtime/adapters/memory.ts)
 * on a simulated clock: every effect (a shard statement, a log write) answers
 * after exactly D ms (shards) or E ms (etcd), so a transfer's latency is its
 * critical path of round trips times their delay, and nothing else. N
 * transfers per protocol, the mix of the bench (15% cross-shard), C closed-loop
 * clients, request to reply in virtual ms, split one-shard / cross-shard; and
 * the engine's own CPU ms per transfer (process.cpuUsage, real), the part of
 * the coordinator that is neither I/O nor HTTP.
 *
 * One effect is one round trip here, as in the live adapters for the
 * critical path (runtime/adapters/local-mysql.ts applies in one round trip
 * when it commits); what the simulation leaves out is the CPU each round
 * trip costs on a shared machine.
 */
import { loadavg } from "node:os";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../adapters/memory.ts";
import { MemoryLocal } from "../adapters/memory-local.ts";
import { Engine } from "../engine.ts";
import { DEFAULT_PROTOCOL, PROTOCOLS, type ProtocolName } from "../../spec/protocols/registry.ts";
import { Latencies } from "./stats.ts";
import { runScript, UsageError } from "./cli.ts";

const SHARDS = ["shard-a", "shard-b", "shard-c"];
const ACCOUNTS = 10_000;

interface SimResult {
  protocol: ProtocolName;
  clients: number;
  single: Latencies;
  cross: Latencies;
  outcomes: Record<string, number>;
  cpu_ms_per_transfer: number;
}

export async function simulate(o: { protocol: ProtocolName; clients: number; transfers: number; shard_ms: number; log_ms: number; cross_share: number; seed: number; record_traces?: boolean }): Promise<SimResult> {
  const clock = new SimClock();
  const rng = new Rng(o.seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS }, (_, j) => [i * ACCOUNTS + j + 1, 1_000_000] as const)]));
  const shard = { min_ms: o.shard_ms, max_ms: o.shard_ms };
  const engine = new Engine({
    adapters: { xa: new MemoryXa(balances, clock, rng, shard), log: new MemoryTxlog(clock, rng, { min_ms: o.log_ms, max_ms: o.log_ms }), clock, local: new MemoryLocal(balances, clock, rng, shard) },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 60_000, retryDelayMs: 200, attemptsMax: 5 },
    resolver_interval_ms: 60_000,
    in_flight_max: 100_000,
    retain_transactions: 1_000,
    record_traces: o.record_traces ?? true,
  });
  engine.startResolver();
  await clock.run(1_000);
  const res: SimResult = { protocol: o.protocol, clients: o.clients, single: new Latencies(), cross: new Latencies(), outcomes: {}, cpu_ms_per_transfer: 0 };
  let started = 0;
  const next = (): void => {
    if (started >= o.transfers) return;
    started++;
    const a = rng.int(0, SHARDS.length - 1);
    const cross = rng.next() < o.cross_share;
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
    const t0 = clock.now_ms();
    engine.submit(branches, o.protocol, undefined, (out) => {
      res.outcomes[out.status] = (res.outcomes[out.status] ?? 0) + 1;
      if (out.status === "committed") (cross ? res.cross : res.single).add(clock.now_ms() - t0);
      // The client sends its next transfer once answered (closed loop), as the bench's clients do.
      clock.setTimer(0, next);
    });
  };
  const cpu0 = process.cpuUsage();
  for (let c = 0; c < o.clients; c++) clock.setTimer(0, next);
  // The resolver's timer never runs out: advance virtual time until every transfer was answered (bounded).
  for (let t = 0; t < 10_000 && Object.values(res.outcomes).reduce((x, y) => x + y, 0) < o.transfers; t++) await clock.run(clock.now_ms() + 1_000);
  await clock.run(clock.now_ms() + 1_000);
  const cpu = process.cpuUsage(cpu0);
  engine.stop();
  res.cpu_ms_per_transfer = (cpu.user + cpu.system) / 1000 / o.transfers;
  return res;
}

const USAGE = `usage: npx tsx runtime/bench/netsim.ts [--shard-ms MS (1)] [--log-ms MS (2)] [--transfers N (4000)] [--clients N,N,... (1,64)]
  every shard statement and every etcd call takes that long in virtual time (the engine over simulated shards and log)`;

function parse(argv: readonly string[]): { shard_ms: number; log_ms: number; transfers: number; clients: number[] } {
  const o = { shard_ms: 1, log_ms: 2, transfers: 4_000, clients: [1, 64] };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${argv[i]} needs a value`);
    if (argv[i] === "--shard-ms") o.shard_ms = Number(v);
    else if (argv[i] === "--log-ms") o.log_ms = Number(v);
    else if (argv[i] === "--transfers") o.transfers = Number(v);
    else if (argv[i] === "--clients") o.clients = v.split(",").map(Number);
    else throw new UsageError(`unknown option ${argv[i]}`);
  }
  for (const x of [o.shard_ms, o.log_ms, o.transfers, ...o.clients]) if (!Number.isSafeInteger(x) || x < 1) throw new UsageError(`${x} is not an integer >= 1`);
  return o;
}

async function main(argv: readonly string[]): Promise<void> {
  const o = parse(argv);
  const la = loadavg();
  const fmt = (x: number | null) => (x === null ? "-" : x.toFixed(1));
  const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? "-" : `${(a / b).toFixed(2)}x`);
  const lines = [
    `netsim: every shard statement ${o.shard_ms} ms, every etcd call ${o.log_ms} ms (virtual time: network only, no CPU contention); ${o.transfers} transfers per protocol, 15% cross-shard; load average ${la.map((x) => x.toFixed(2)).join(" ")}`,
    "",
    `| clients | protocol | one-shard p50 / p99 ms | cross-shard p50 / p99 ms | cross-shard p50, p99 vs ${DEFAULT_PROTOCOL} | engine CPU ms / transfer | outcomes |`,
    "|---|---|---|---|---|---:|---|",
  ];
  for (const clients of o.clients) {
    const rows: SimResult[] = [];
    // One unmeasured run of each first: the JIT warms up on every path before CPU is counted.
    for (const protocol of PROTOCOLS) await simulate({ protocol, clients, transfers: Math.min(o.transfers, 500), shard_ms: o.shard_ms, log_ms: o.log_ms, cross_share: 0.15, seed: 2 });
    for (const protocol of PROTOCOLS) rows.push(await simulate({ protocol, clients, transfers: o.transfers, shard_ms: o.shard_ms, log_ms: o.log_ms, cross_share: 0.15, seed: 1 }));
    const base = rows.find((r) => r.protocol === DEFAULT_PROTOCOL)!;
    for (const r of rows) {
      const s = r.single.percentiles([50, 99] as const);
      const c = r.cross.percentiles([50, 99] as const);
      const b = base.cross.percentiles([50, 99] as const);
      lines.push(`| ${clients} | ${r.protocol} | ${fmt(s[50])} / ${fmt(s[99])} | ${fmt(c[50])} / ${fmt(c[99])} | ${ratio(c[50], b[50])}, ${ratio(c[99], b[99])} | ${r.cpu_ms_per_transfer.toFixed(3)} | ${JSON.stringify(r.outcomes)} |`);
    }
  }
  // What recording and keeping traces costs the engine (record_traces, on by default): 2pc, interleaved rounds.
  const cpu = { on: [] as number[], off: [] as number[] };
  for (let r = 0; r < 4; r++) {
    for (const mode of r % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const)) {
      const x = await simulate({ protocol: DEFAULT_PROTOCOL, clients: 64, transfers: o.transfers, shard_ms: o.shard_ms, log_ms: o.log_ms, cross_share: 0.15, seed: 3 + r, record_traces: mode === "on" });
      cpu[mode].push(x.cpu_ms_per_transfer);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  lines.push("", `engine CPU ms per transfer, ${DEFAULT_PROTOCOL}, 64 clients, 4 interleaved rounds: record_traces on ${mean(cpu.on).toFixed(3)}, off ${mean(cpu.off).toFixed(3)} (on / off ${(mean(cpu.on) / mean(cpu.off)).toFixed(2)}); load average at end ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log(lines.join("\n"));
}

if (process.argv[1]?.endsWith("netsim.ts")) await runScript("netsim", USAGE, main);
