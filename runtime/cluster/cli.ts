/**
 * `speccommit cluster up|down|status`: the local cluster from the command line.
 * Exit status: 0 done (status: every component up), 1 failure, 2 bad usage,
 * 3 status found a component not up.
 */
import { control, DEFAULT_DIR, DEFAULTS, ETCD_MEMBER_COUNTS, etcdMembersOf, LIMITS, down, seedTotalCents, status, up, upCoordinators, type ClusterStatus, type ControlAction } from "./cluster.ts";
import { COORDINATORS_MAX, FIRST_PORT_DEFAULT } from "./coordinators.ts";

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_NOT_UP = 3;

const USAGE = `usage: speccommit cluster <up|down|status> [options]
       speccommit cluster <stop|kill|start> NAME [--dir D]

  up      start the local cluster (one MariaDB per shard, one etcd or 3 etcd
          members, optionally coordinators), or reuse it if it runs; creates
          the schema and seeds accounts on first start
  down    stop every server of the cluster cleanly (data is kept)
  status  show each server: up, starting or down, with its port and pid
  stop    stop one server by name (SIGTERM): etcd (or etcd1, etcd2, ...),
          shard-a (or shard1, shard2, ...), coord1, coord2, ...
  kill    kill -9 one server by name
  start   start one stopped server by name, on its data directory and ports
          (an etcd member rejoins its cluster, a shard keeps its data)

options:
  --dir D              cluster directory (default ${DEFAULT_DIR})
  --shards N           up, first start: number of shards, ${LIMITS.shards.min}-${LIMITS.shards.max} (default ${DEFAULTS.shards})
  --accounts N         up, first start: accounts per shard, ${LIMITS.accountsPerShard.min}-${LIMITS.accountsPerShard.max} (default ${DEFAULTS.accountsPerShard})
  --balance-cents N    up, first start: opening balance of each account in cents,
                       ${LIMITS.balanceCents.min}-${LIMITS.balanceCents.max} (default ${DEFAULTS.balanceCents} = 1000.00)
  --etcd-members N     up, first start: etcd members, ${ETCD_MEMBER_COUNTS.join(" or ")} (default 1); several form one
                       etcd cluster (etcd1, etcd2, ...), and the server is given every member
  --coordinators N     up: also start N coordinators (speccommit serve, coord1..coordN, 1-${COORDINATORS_MAX})
                       on ports P, P+1, ... (detached, output in D/coordN.log, no auth: loopback)
  --first-port P       up: the first coordinator's port (default ${FIRST_PORT_DEFAULT})
  --tls                up: require TLS on every shard (require_secure_transport) and on etcd
                       (client certificates), with a local CA made by openssl in D/tls;
                       a cluster made with it keeps it on later ups
  --json               status: print JSON
  -h, --help           this text

To reset: speccommit cluster down --dir D && rm -rf D`;

class UsageError extends Error {}

type Flag = { name: string; takesValue: boolean };
const FLAGS: Record<string, readonly Flag[]> = {
  up: [
    { name: "--dir", takesValue: true },
    { name: "--shards", takesValue: true },
    { name: "--accounts", takesValue: true },
    { name: "--balance-cents", takesValue: true },
    { name: "--tls", takesValue: false },
    { name: "--etcd-members", takesValue: true },
    { name: "--coordinators", takesValue: true },
    { name: "--first-port", takesValue: true },
  ],
  down: [{ name: "--dir", takesValue: true }],
  stop: [{ name: "--dir", takesValue: true }],
  kill: [{ name: "--dir", takesValue: true }],
  start: [{ name: "--dir", takesValue: true }],
  status: [
    { name: "--dir", takesValue: true },
    { name: "--json", takesValue: false },
  ],
};

function parseFlags(command: string, args: readonly string[]): Map<string, string> {
  const allowed = FLAGS[command] ?? [];
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const flag = allowed.find((f) => f.name === name);
    if (flag === undefined) {
      throw new UsageError(`unknown option '${arg}' for 'cluster ${command}' (allowed: ${allowed.map((f) => f.name).join(", ")})`);
    }
    if (values.has(name)) throw new UsageError(`${name} given twice`);
    if (!flag.takesValue) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      values.set(name, "");
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined || value === "" || (eq < 0 && value.startsWith("--"))) {
      throw new UsageError(`${name} needs a value`);
    }
    values.set(name, value);
  }
  return values;
}

function integerFlag(values: Map<string, string>, name: string, limits: { min: number; max: number }): number | undefined {
  const raw = values.get(name);
  if (raw === undefined) return undefined;
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < limits.min || n > limits.max) {
    throw new UsageError(`${name} must be an integer from ${limits.min} to ${limits.max} (got '${raw}')`);
  }
  return n;
}

const say = (line: string) => console.log(line);

async function runUp(values: Map<string, string>): Promise<number> {
  const shards = integerFlag(values, "--shards", LIMITS.shards);
  const accountsPerShard = integerFlag(values, "--accounts", LIMITS.accountsPerShard);
  const balanceCents = integerFlag(values, "--balance-cents", LIMITS.balanceCents);
  const etcdMembers = integerFlag(values, "--etcd-members", { min: 1, max: 5 });
  if (etcdMembers !== undefined && !(ETCD_MEMBER_COUNTS as readonly number[]).includes(etcdMembers)) {
    throw new UsageError(`--etcd-members must be one of ${ETCD_MEMBER_COUNTS.join(", ")} (got ${etcdMembers})`);
  }
  const coordinators = integerFlag(values, "--coordinators", { min: 1, max: COORDINATORS_MAX });
  const firstPort = integerFlag(values, "--first-port", { min: 1, max: 65535 });
  if (firstPort !== undefined && coordinators === undefined) throw new UsageError("--first-port goes with --coordinators");
  const result = await up({
    dir: values.get("--dir") ?? DEFAULT_DIR,
    ...(shards !== undefined ? { shards } : {}),
    ...(accountsPerShard !== undefined ? { accountsPerShard } : {}),
    ...(balanceCents !== undefined ? { balanceCents } : {}),
    ...(values.has("--tls") ? { tls: true } : {}),
    ...(etcdMembers !== undefined ? { etcdMembers } : {}),
    log: say,
  });
  const c = result.cluster;
  const parts = [
    result.started.length > 0 ? `started ${result.started.map((s) => s.name).join(", ")}` : "",
    result.reused.length > 0 ? `reused ${result.reused.join(", ")}` : "",
  ].filter((p) => p.length > 0);
  say(`cluster up in ${c.dir} (${result.totalMs} ms): ${parts.join("; ")}`);
  for (const s of c.shards) {
    say(`  ${s.name.padEnd(8)} mysql://${s.user}@127.0.0.1:${s.port}/speccommit  pid ${s.pid}  accounts ${s.firstAccountId}..${s.lastAccountId}  password in ${s.passwordFile}`);
  }
  for (const m of etcdMembersOf(c)) say(`  ${(m.name ?? "etcd").padEnd(8)} ${m.clientUrl}  pid ${m.pid}`);
  if (coordinators !== undefined) {
    const records = await upCoordinators({ dir: c.dir, count: coordinators, ...(firstPort !== undefined ? { firstPort } : {}), log: say });
    for (const r of records) say(`  ${r.name.padEnd(8)} http://127.0.0.1:${r.port}  pid ${r.pid}  output ${r.outputPath}`);
  }
  if (c.tls !== undefined) say(`  TLS required on every shard and on etcd; CA ${c.tls.ca}, etcd client certificate ${c.tls.clientCert}`);
  say(`  total ${seedTotalCents(c.seed)} cents at seed; details in ${c.dir}/cluster.json`);
  return EXIT_OK;
}

async function runDown(values: Map<string, string>): Promise<number> {
  const result = await down({ dir: values.get("--dir") ?? DEFAULT_DIR, log: say });
  const already = result.alreadyDown.length > 0 ? `; already down: ${result.alreadyDown.join(", ")}` : "";
  say(`cluster down in ${result.dir}: stopped ${result.stopped.length > 0 ? result.stopped.join(", ") : "nothing"}${already}`);
  return EXIT_OK;
}

function formatStatus(s: ClusterStatus): string {
  if (!s.exists) return `no cluster in ${s.dir} (start one with: speccommit cluster up --dir ${s.dir})`;
  const rows = s.components.map((c) => `  ${c.name.padEnd(8)} ${c.state.padEnd(9)} port ${String(c.port).padEnd(6)} pid ${c.pid ?? "-"}`);
  return [`cluster in ${s.dir}:`, ...rows].join("\n");
}

async function runStatus(values: Map<string, string>): Promise<number> {
  const s = await status({ dir: values.get("--dir") ?? DEFAULT_DIR });
  say(values.has("--json") ? JSON.stringify(s, null, 2) : formatStatus(s));
  return s.exists && s.components.every((c) => c.state === "up") ? EXIT_OK : EXIT_NOT_UP;
}

async function runControl(action: ControlAction, name: string | undefined, values: Map<string, string>): Promise<number> {
  if (name === undefined || name.startsWith("--")) throw new UsageError(`cluster ${action} needs a NAME (etcd, etcd1.., shard-a.. or shard1.., coord1..)`);
  const r = await control({ dir: values.get("--dir") ?? DEFAULT_DIR, action, name });
  say(`${r.name}: ${r.done}${r.pid !== null ? ` (pid ${r.pid})` : ""} in ${r.ms} ms`);
  return EXIT_OK;
}

const COMMANDS: Record<string, (values: Map<string, string>) => Promise<number>> = { up: runUp, down: runDown, status: runStatus };
const CONTROLS: readonly string[] = ["stop", "kill", "start"];

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const run = COMMANDS[command];
  try {
    if (CONTROLS.includes(command)) {
      const [name, ...flags] = rest;
      return await runControl(command as ControlAction, name, parseFlags(command, flags));
    }
    if (run === undefined) throw new UsageError(`unknown subcommand '${command}' (allowed: up, down, status, stop, kill, start)`);
    return await run(parseFlags(command, rest));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`speccommit cluster: ${e.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    console.error(`speccommit cluster ${command}: ${(e as Error).message}`);
    return EXIT_FAILED;
  }
}
