/**
 * `npm run bench` flags. Every value is checked here, and a wrong one gets a
 * message naming the flag, the value and what is allowed.
 */
import { writableFileProblem } from "./cli.ts";

export class UsageError extends Error {}

export const SCENARIOS = ["uniform", "hot", "misspeculate"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  clients: number;
  duration_s: number;
  warmup_s: number;
  /** Floor phase length; 0 skips the floor. */
  floor_duration_s: number;
  /** The server and the floor take turns this many times, each for its duration / rounds. */
  rounds: number;
  /** 0..1 */
  cross_shard_share: number;
  /** 0..1: share of account draws from the hot set. */
  hot_share: number;
  hot_accounts: number;
  amount_cents_min: number;
  amount_cents_max: number;
  /** The request's "protocol" field; absent: the server's default. */
  protocol?: string;
  /** An existing server; the benchmark then needs cluster_file for the audit and the floor. */
  url?: string;
  cluster_file?: string;
  /** Bring the local cluster up here (reusing what runs) instead of in a fresh temporary directory. */
  cluster_dir?: string;
  /** Extra arguments for the server this benchmark starts. */
  server_args: string[];
  /** Start the server under node --cpu-prof, writing its profile here. */
  cpu_prof_dir?: string;
  json?: string;
  seed: number;
  settle_timeout_s: number;
  /** Compare the protocols (2pc, parallel, speculative) on the same transfers, rounds interleaved, instead of server vs floor. */
  compare: boolean;
  /** --compare: the scenarios to run, in order. */
  scenarios: Scenario[];
  /** --compare, scenario misspeculate: 0..1, share of transfers made to fail on one shard. */
  misspeculate_share: number;
  /** Snapshot reads (GET /snapshot) beside the load, their latency and wait reported (snapshot.ts). */
  snapshots: boolean;
  /** The keys set by a flag (the scenarios keep a flag's value over their own default). */
  given: Set<string>;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

A closed-loop load of TPC-B-like transfers against the coordinator, then the
same transfers straight against the shards with XA (the floor), then an audit
of the shards. docs/benchmarks.md explains every figure.

load
  --clients N            concurrent clients, each sends its next transfer when answered (default 64)
  --duration S           measured seconds per phase (default 20)
  (--chaos: a different run, with its own options: npm run bench -- --chaos --help)
  --warmup S             seconds run before measuring, per phase (default 3)
  --floor-duration S     measured seconds of the floor; 0 skips it (default: --duration)
  --rounds N             server and floor take turns N times, each for 1/N of its seconds (default 4)
  --cross-shard P        percent of transfers between two shards, the rest within one (default 15)
  --hot-share P          percent of account draws from the hot set (default 0)
  --hot-accounts N       hot set: the first N accounts of every shard (default 100)
  --amount-min CENTS     smallest amount, integer cents (default 1)
  --amount-max CENTS     largest amount, integer cents (default 10000 = 100.00)
  --protocol NAME        the requests' "protocol" field (default: the server's)
  --seed N               transfer streams (default 1): the same seed sends the same transfers

target (default: a local cluster in a fresh temporary directory and a server started for the run)
  --cluster-dir D        bring the local cluster up in D (reusing what runs there, e.g. .speccommit) and keep it
  --url URL              an existing server (http://127.0.0.1:PORT); needs --cluster-file
  --cluster-file F       cluster.json of the shards and etcd that server uses (audit and floor read them)
  --server-arg ARG       one more argument for the server started here (repeat: --server-arg --record-traces --server-arg false)
  --cpu-prof DIR         run that server under node --cpu-prof, profile written to DIR when it stops

output
  --json FILE            the results as JSON too
  --settle-timeout S     bound on the wait for the resolver to settle every branch (default 30)
  --snapshots            also read GET /snapshot (and GET /accounts, the baseline) during the server's load and report
                         their latency and the snapshot's wait for safe time
  --help

compare the protocols (instead of server vs floor)
  --compare              2pc, parallel and speculative on the same transfers, rounds interleaved (2pc parallel
                         speculative 2pc ...); --duration is per protocol; one table per scenario, ratios to 2pc
  --scenario NAME        uniform | hot | misspeculate | all (default uniform)
                           uniform       the load flags as given
                           hot           --hot-share (default 90) of account draws from --hot-accounts (default 10) per shard,
                                         amounts up to --amount-max (default 100 cents here, so hot balances do not run dry)
                           misspeculate  --misspeculate percent of transfers cross shards with an amount above all
                                         the money of the cluster: the debit fails, the credit on the other shard applied
  --misspeculate P       percent of failing transfers in the misspeculate scenario (default 10)

other runs (their own flags)
  --scenario deadlock    without --compare: opposite-order cross-shard transfers, deadlock detector on vs off
                         (runtime/bench/deadlock.ts; npm run bench -- --scenario deadlock --help)
  --variant NAME=ARGS    server configurations in interleaved rounds, one server at a time (runtime/bench/variants.ts):
                         e.g. --variant off="" --variant on="--txlog-batch-max 64" --clients 64,256;
                         --variant-bin NAME=CHECKOUT runs that variant from another checkout (before vs after);
                         --variant-node NAME=NODE_ARGS gives node itself arguments for that variant (e.g. --max-semi-space-size=32)`;

type Kind = "int" | "percent" | "string" | "list" | "bool" | "scenario";
const FLAGS: Record<string, { key: keyof BenchOptions; kind: Kind; min?: number; max?: number }> = {
  "--clients": { key: "clients", kind: "int", min: 1, max: 4_096 },
  "--duration": { key: "duration_s", kind: "int", min: 1, max: 3_600 },
  "--warmup": { key: "warmup_s", kind: "int", min: 0, max: 600 },
  "--floor-duration": { key: "floor_duration_s", kind: "int", min: 0, max: 3_600 },
  "--rounds": { key: "rounds", kind: "int", min: 1, max: 100 },
  "--cross-shard": { key: "cross_shard_share", kind: "percent" },
  "--hot-share": { key: "hot_share", kind: "percent" },
  "--hot-accounts": { key: "hot_accounts", kind: "int", min: 2, max: 10_000_000 },
  "--amount-min": { key: "amount_cents_min", kind: "int", min: 1, max: 1_000_000_000_000 },
  "--amount-max": { key: "amount_cents_max", kind: "int", min: 1, max: 1_000_000_000_000 },
  "--protocol": { key: "protocol", kind: "string" },
  "--seed": { key: "seed", kind: "int", min: 0, max: 2 ** 31 - 1 },
  "--cluster-dir": { key: "cluster_dir", kind: "string" },
  "--url": { key: "url", kind: "string" },
  "--cluster-file": { key: "cluster_file", kind: "string" },
  "--server-arg": { key: "server_args", kind: "list" },
  "--cpu-prof": { key: "cpu_prof_dir", kind: "string" },
  "--json": { key: "json", kind: "string" },
  "--settle-timeout": { key: "settle_timeout_s", kind: "int", min: 1, max: 3_600 },
  "--compare": { key: "compare", kind: "bool" },
  "--snapshots": { key: "snapshots", kind: "bool" },
  "--scenario": { key: "scenarios", kind: "scenario" },
  "--misspeculate": { key: "misspeculate_share", kind: "percent" },
};

export function parseOptions(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = {
    clients: 64,
    duration_s: 20,
    warmup_s: 3,
    floor_duration_s: -1,
    rounds: 4,
    cross_shard_share: 0.15,
    hot_share: 0,
    hot_accounts: 100,
    amount_cents_min: 1,
    amount_cents_max: 10_000,
    server_args: [],
    seed: 1,
    settle_timeout_s: 30,
    compare: false,
    snapshots: false,
    scenarios: ["uniform"],
    misspeculate_share: 0.1,
    given: new Set(),
    help: false,
  };
  const values = o as unknown as Record<string, unknown>;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      o.help = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[flag];
    if (spec === undefined) throw new UsageError(`unknown option ${JSON.stringify(arg)}; run with --help for the options`);
    o.given.add(spec.key);
    if (spec.kind === "bool") {
      if (eq >= 0) throw new UsageError(`${flag} takes no value`);
      values[spec.key] = true;
      continue;
    }
    let text = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    // --server-arg takes the next word as is, even one that starts with "--".
    if (text === undefined || (spec.kind !== "list" && eq < 0 && text.startsWith("--"))) throw new UsageError(`${flag} needs a value`);
    switch (spec.kind) {
      case "int": {
        const n = /^\d+$/.test(text) ? Number(text) : NaN;
        if (!Number.isSafeInteger(n) || n < spec.min! || n > spec.max!) {
          throw new UsageError(`${flag}: ${JSON.stringify(text)} is not allowed; expected an integer from ${spec.min} to ${spec.max}`);
        }
        values[spec.key] = n;
        break;
      }
      case "percent": {
        if (text.endsWith("%")) text = text.slice(0, -1);
        const p = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
        if (!(p >= 0 && p <= 100)) throw new UsageError(`${flag}: ${JSON.stringify(argv[i])} is not allowed; expected a percentage from 0 to 100, e.g. 15 or 15%`);
        values[spec.key] = p / 100;
        break;
      }
      case "string":
        if (text === "") throw new UsageError(`${flag} needs a non-empty value`);
        values[spec.key] = text;
        break;
      case "list":
        o.server_args.push(text);
        break;
      case "scenario":
        if (text === "all") o.scenarios = [...SCENARIOS];
        else if ((SCENARIOS as readonly string[]).includes(text)) o.scenarios = [text as Scenario];
        else throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a scenario; expected ${SCENARIOS.join(", ")} or all`);
        break;
    }
  }
  if (o.floor_duration_s < 0) o.floor_duration_s = o.duration_s;
  if (o.compare) {
    if (o.protocol !== undefined) throw new UsageError("--compare runs every protocol; drop --protocol");
    if (o.given.has("floor_duration_s")) throw new UsageError("--compare measures the protocols against 2pc, not the floor; drop --floor-duration");
  } else {
    for (const k of ["scenarios", "misspeculate_share"] as const) {
      if (o.given.has(k)) throw new UsageError(`${k === "scenarios" ? "--scenario" : "--misspeculate"} goes with --compare`);
    }
  }
  if (o.amount_cents_min > o.amount_cents_max) {
    throw new UsageError(`--amount-min (${o.amount_cents_min}) is above --amount-max (${o.amount_cents_max})`);
  }
  if (o.url !== undefined) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new UsageError(`--url: ${JSON.stringify(o.url)} is not a URL; expected http://127.0.0.1:PORT`);
    }
    if (u.protocol !== "http:" || !["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) {
      throw new UsageError(`--url: ${JSON.stringify(o.url)} is not allowed; the benchmark only talks to this machine: http://127.0.0.1:PORT`);
    }
    if (o.cluster_file === undefined) throw new UsageError("--url needs --cluster-file: the audit and the floor read the shards and etcd directly");
    if (o.cluster_dir !== undefined) throw new UsageError("give either --url (an existing server) or --cluster-dir (start one), not both");
    if (o.server_args.length > 0 || o.cpu_prof_dir !== undefined) throw new UsageError("--server-arg and --cpu-prof apply to a server the benchmark starts, not to --url");
  } else if (o.cluster_file !== undefined) {
    throw new UsageError("--cluster-file goes with --url; to start a server on a cluster, use --cluster-dir");
  }
  const jsonProblem = o.json === undefined ? null : writableFileProblem(o.json);
  if (jsonProblem !== null) throw new UsageError(`--json ${o.json}: ${jsonProblem}`);
  return o;
}
