/**
 * `npm run bench:otel -- --engine`: the CPU tracing adds to the engine alone,
 * without MariaDB, etcd or HTTP to blur it: N transfers through the engine
 * over the in-memory shards and log (runtime/adapters/memory.ts, a simulated
 * clock), tracing off and on in interleaved rounds in this process, CPU time
 * per transfer from process.cpuUsage. With tracing on the spans go to an
 * OTLP sink in this process, so the export's HTTP and its parse are counted
 * in too (a collector elsewhere would take the parse).
 */
import { loadavg } from "node:os";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../adapters/memory.ts";
import { MemoryLocal } from "../adapters/memory-local.ts";
import { Engine } from "../engine.ts";
import type { Tracing } from "../tracing.ts";
import { DEFAULT_PROTOCOL, type ProtocolName } from "../../spec/protocols/registry.ts";

const SHARDS = ["shard-a", "shard-b", "shard-c"];
const ACCOUNTS = 1_000;

/** CPU ms per transfer of `n` transfers (half across two shards) through a fresh engine. */
async function once(n: number, protocol: ProtocolName, tracing: Tracing | undefined, seed: number): Promise<{ cpu_ms_per_transfer: number; outcomes: Record<string, number> }> {
  const clock = new SimClock();
  const rng = new Rng(seed);
  const balances = new Map(SHARDS.map((s, i) => [s, Array.from({ length: ACCOUNTS }, (_, j) => [i * ACCOUNTS + j + 1, 1_000_000] as const)]));
  const engine = new Engine({
    adapters: { xa: new MemoryXa(balances, clock, rng), log: new MemoryTxlog(clock, rng), clock, local: new MemoryLocal(balances, clock, rng) },
    shards: SHARDS,
    coordinator: { voteTimeoutMs: 5_000, retryDelayMs: 200, attemptsMax: 5 },
    resolver_interval_ms: 2_000,
    in_flight_max: n,
    retain_transactions: 10_000,
    record_traces: true,
    ...(tracing !== undefined ? { tracing } : {}),
  });
  engine.startResolver();
  await clock.run(100);
  const outcomes: Record<string, number> = {};
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    clock.setTimer(i, () => {
      const a = rng.int(0, SHARDS.length - 1);
      const b = rng.next() < 0.5 ? a : (a + rng.int(1, SHARDS.length - 1)) % SHARDS.length;
      const from = a * ACCOUNTS + rng.int(1, ACCOUNTS);
      const to = b * ACCOUNTS + rng.int(1, ACCOUNTS);
      if (from === to) return;
      const ops = [{ shard: SHARDS[a]!, account: from, delta: -rng.int(1, 10_000) }];
      const branches = a === b ? [{ shard: SHARDS[a]!, ops: [...ops, { account: to, delta: -ops[0]!.delta }] }] : [{ shard: SHARDS[a]!, ops }, { shard: SHARDS[b]!, ops: [{ account: to, delta: -ops[0]!.delta }] }];
      void engine.submit(branches.map((br) => ({ shard: br.shard, ops: br.ops.map((o) => ({ account: o.account, delta: o.delta })) })), protocol).outcome.then((o) => (outcomes[o.status] = (outcomes[o.status] ?? 0) + 1));
    });
  }
  await clock.run(n + 60_000);
  await tracing?.flush();
  const cpu = process.cpuUsage(cpu0);
  engine.stop();
  return { cpu_ms_per_transfer: (cpu.user + cpu.system) / 1000 / n, outcomes };
}

export async function engineOverhead(o: { transfers: number; rounds: number; protocol?: string }, tracing: Tracing, spans: () => number): Promise<void> {
  const protocol = (o.protocol ?? DEFAULT_PROTOCOL) as ProtocolName;
  const loadavg_start = loadavg();
  const cpu = { off: [] as number[], on: [] as number[] };
  // One round of each first, unmeasured: the JIT warms up on both paths.
  await once(o.transfers, protocol, undefined, 0);
  await once(o.transfers, protocol, tracing, 0);
  const spans0 = spans();
  for (let r = 0; r < o.rounds; r++) {
    for (const mode of r % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const)) {
      const x = await once(o.transfers, protocol, mode === "on" ? tracing : undefined, r + 1);
      cpu[mode].push(x.cpu_ms_per_transfer);
      console.log(`engine, tracing ${mode} ${r + 1}/${o.rounds}: ${x.cpu_ms_per_transfer.toFixed(4)} CPU ms per transfer (${JSON.stringify(x.outcomes)})`);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const off = mean(cpu.off);
  const on = mean(cpu.on);
  const transfersOn = o.transfers * o.rounds;
  console.log(
    [
      "",
      `engine alone (${protocol}, ${o.transfers} transfers a round, half across two shards, ${o.rounds} rounds interleaved; load average ${loadavg_start.map((v) => v.toFixed(2)).join(" ")} at start, ${loadavg().map((v) => v.toFixed(2)).join(" ")} at end)`,
      `CPU ms per transfer: tracing off ${off.toFixed(4)}, on ${on.toFixed(4)}; on / off ${(on / off).toFixed(2)}; added ${(on - off).toFixed(4)} ms a transfer, ${((on - off) / ((spans() - spans0) / transfersOn)).toFixed(4)} ms a span (${((spans() - spans0) / transfersOn).toFixed(2)} spans a transfer)`,
    ].join("\n"),
  );
}
