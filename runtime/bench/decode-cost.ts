/**
 * `npx tsx runtime/bench/decode-cost.ts CHECKOUT [N]`: CPU µs per POST /transfer body decode, the bench's bodies
 * (one-shard and cross-shard), through CHECKOUT's runtime/transfer.ts decodeTransfer (e.g. a git worktree of the
 * commit before the fast path) and through this one's, interleaved rounds in one process, with the load average.
 */
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { decodeTransfer, type AccountCatalog } from "../transfer.ts";
import { DEFAULT_PROTOCOL } from "../../spec/protocols/registry.ts";
import { runScript, UsageError } from "./cli.ts";

const catalog: AccountCatalog = { shards: ["shard-a", "shard-b", "shard-c"], hasAccount: () => true };
const bodies = [
  JSON.stringify({ ops: [{ shard_id: "shard-a", account_id: 17, delta: -4211 }, { shard_id: "shard-a", account_id: 9001, delta: 4211 }] }),
  JSON.stringify({ ops: [{ shard_id: "shard-b", account_id: 10017, delta: -77 }, { shard_id: "shard-c", account_id: 20001, delta: 77 }], protocol: DEFAULT_PROTOCOL }),
];
function cpuUs(n: number, f: (text: string) => unknown): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) f(bodies[i % bodies.length]!);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / n;
}

const USAGE = `usage: npx tsx runtime/bench/decode-cost.ts CHECKOUT [N (20000)]
  CHECKOUT   a checkout of this project (e.g. a git worktree of an earlier commit) whose decodeTransfer is the baseline
  N          bodies per round`;

async function main(argv: string[]): Promise<void> {
  const [checkout, count] = argv;
  if (checkout === undefined || checkout.startsWith("-")) throw new UsageError(checkout === undefined ? "CHECKOUT is missing" : `unknown option ${checkout}`);
  const n = Number(count ?? 20_000);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`N: ${count} is not an integer >= 1`);
  const file = join(resolve(checkout), "runtime", "transfer.ts");
  if (!existsSync(file)) throw new UsageError(`${checkout} is not a checkout of this project (no ${file})`);
  const old = (await import(file)) as { decodeTransfer: typeof decodeTransfer };
  const schemaOnly = (text: string): unknown => old.decodeTransfer(text, catalog);
  const la0 = loadavg();
  cpuUs(2_000, schemaOnly);
  cpuUs(2_000, (t) => decodeTransfer(t, catalog));
  const before: number[] = [];
  const after: number[] = [];
  for (let r = 0; r < 4; r++) {
    before.push(cpuUs(n, schemaOnly));
    after.push(cpuUs(n, (t) => decodeTransfer(t, catalog)));
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`decode of a POST /transfer body, CPU µs per body (${n} bodies x 4 interleaved rounds; load average ${la0.map((x) => x.toFixed(2)).join(" ")} at start, ${loadavg().map((x) => x.toFixed(2)).join(" ")} at end)`);
  console.log(`  decodeTransfer of ${checkout} (before): ${mean(before).toFixed(2)} (rounds ${before.map((x) => x.toFixed(2)).join(" ")})`);
  console.log(`  decodeTransfer of this checkout (after): ${mean(after).toFixed(2)} (rounds ${after.map((x) => x.toFixed(2)).join(" ")}); after / before ${(mean(after) / mean(before)).toFixed(2)}`);
}

await runScript("decode-cost", USAGE, main);
