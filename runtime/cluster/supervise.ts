/**
 * `speccommit serve --coordinators N` (`npm start -- --coordinators 3`):
 * brings the local cluster up (or uses --cluster-file's), then starts N
 * coordinators, coord1..coordN, as `speccommit serve --node nI` on ports
 * P, P+1, ... (P = --port, default 8080), recorded in cluster.json so that
 * `speccommit cluster stop|kill|start coordI` acts on one. It stays in the
 * foreground; SIGINT or SIGTERM stops the coordinators (the cluster keeps
 * running: `speccommit cluster down`). Every other flag goes to each
 * coordinator as given.
 */
import { dirname } from "node:path";
import { DEFAULT_DIR, readClusterFile, up, upCoordinators } from "./cluster.ts";
import { attachCoordinator, COORDINATORS_MAX, FIRST_PORT_DEFAULT } from "./coordinators.ts";

/** Takes `--name V` or `--name=V` out of argv; its value, or undefined. */
function takeFlag(argv: string[], name: string): string | undefined {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const arg = argv[i]!;
  const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[i + 1];
  argv.splice(i, arg.includes("=") ? 1 : 2);
  if (value === undefined || value === "") throw new Error(`${name} needs a value`);
  return value;
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max} (got '${text}')`);
  return n;
}

export async function superviseCoordinators(argvIn: readonly string[]): Promise<number> {
  const argv = [...argvIn];
  let count: number;
  let firstPort: number;
  let dir: string;
  try {
    count = integer("--coordinators", takeFlag(argv, "--coordinators"), 1, 1, COORDINATORS_MAX);
    firstPort = integer("--port", takeFlag(argv, "--port"), FIRST_PORT_DEFAULT, 1, 65_535 - COORDINATORS_MAX);
    const file = takeFlag(argv, "--cluster-file");
    const clusterDir = takeFlag(argv, "--cluster-dir");
    if (file !== undefined && clusterDir !== undefined) throw new Error("give --cluster-file or --cluster-dir, not both");
    dir = file !== undefined ? dirname(file) : (clusterDir ?? DEFAULT_DIR);
    if (argv.some((a) => a === "--node" || a.startsWith("--node="))) throw new Error("--node is given to each coordinator (n1, n2, ...); leave it out with --coordinators");
  } catch (e) {
    console.error(`speccommit serve: ${(e as Error).message}`);
    return 2;
  }
  const say = (line: string) => console.log(line);
  try {
    if (readClusterFile(dir) === undefined || !argvIn.some((a) => a.startsWith("--cluster-file"))) await up({ dir, log: say });
    const records = await upCoordinators({ dir, count, firstPort, serveArgs: argv, log: say });
    for (const r of records) say(`speccommit: ${r.name} (node n${r.name.slice("coord".length)}) listening on http://127.0.0.1:${r.port}, pid ${r.pid}, output ${r.outputPath}`);
    say(`speccommit: ${records.length} coordinators; stop one with: speccommit cluster stop|kill coordI --dir ${dir}; Ctrl-C stops them all`);
  } catch (e) {
    console.error(`speccommit serve: ${(e as Error).message}`);
    return 1;
  }
  // Signal listeners alone do not keep node running: a timer does, until a signal.
  const alive = setInterval(() => {}, 60_000);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  clearInterval(alive);
  const file = readClusterFile(dir);
  const results = await Promise.allSettled((file?.coordinators ?? []).map(async (r) => attachCoordinator(r)?.stop()));
  const failed = results.filter((r) => r.status === "rejected").length;
  say(`speccommit: coordinators stopped${failed > 0 ? ` (${failed} failed to stop cleanly)` : ""}; the cluster keeps running (speccommit cluster down --dir ${dir})`);
  return failed > 0 ? 1 : 0;
}
