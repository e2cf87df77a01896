/**
 * `speccommit trace validate FILE.ndjson`: checks a trace the server recorded
 * against the spec: fed to a fresh role, its recorded inputs give its
 * recorded effects (replay.ts), and every answer from a shard or the txlog is
 * one the spec's environment models allow (validate.ts).
 * Exit status: 0 valid; 1 the trace failed validation; 2 a usage or input error.
 */
import { readTrace } from "../traces/ndjson.ts";
import { replayTrace } from "./replay.ts";
import { environmentModelled, validateEnvironment } from "./validate.ts";

const USAGE = `usage:
  speccommit trace validate FILE.ndjson

validate  checks a trace the server recorded (GET /transactions/:id?format=ndjson): fed to a
          fresh role, its recorded inputs give its recorded effects, and every answer from a
          shard or the txlog is one the spec's environment models allow`;

export async function main(argv: string[]): Promise<number> {
  const [file, ...rest] = argv;
  if (file === "--help" || file === "-h") {
    console.log(USAGE);
    return 0;
  }
  if (file === undefined || rest.length > 0) {
    console.error(`speccommit trace validate: needs exactly one trace file\n\n${USAGE}`);
    return 2;
  }
  let trace;
  try {
    trace = await readTrace(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`speccommit trace validate: ${err.code === "ENOENT" ? `no such file: ${err.path ?? file}` : err.message}`);
    return 2;
  }
  if (trace.header.source !== "runtime") {
    console.error(`speccommit trace validate: ${file} is a ${trace.header.source} trace; validate checks traces the server recorded (source "runtime")\n\n${USAGE}`);
    return 2;
  }
  const replay = replayTrace(trace);
  if (!replay.ok) {
    console.error(`${file}: step ${replay.step}: the role does not reproduce this trace: ${replay.message}`);
    return 1;
  }
  if (!environmentModelled(trace)) {
    console.log(`${file}: the ${trace.header.model} role reproduces every step (${replay.steps} role steps); its environment answers are NOT checked (the environment models cover 2PC traces only)`);
    return 0;
  }
  const env = validateEnvironment(trace);
  if (!env.ok) {
    console.error(`${file}: step ${env.step}: ${env.message}`);
    return 1;
  }
  console.log(`${file}: valid (${trace.steps.length} steps, ${env.answers} environment answers allowed by the models)`);
  return 0;
}
