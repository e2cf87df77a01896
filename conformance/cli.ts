/**
 * `speccommit trace validate FILE.ndjson`: checks a trace against the spec,
 * a counterexample of the checker and a live transaction alike (one dialect,
 * docs/traces.md): every role instance of the trace, fed its recorded
 * inputs, asks for its recorded effects (replay.ts); and, for a live 2PC
 * transaction, every answer from a shard or the txlog is one the spec's
 * environment models allow (validate.ts). A counterexample's answers come
 * from those models by construction.
 * Exit status: 0 valid; 1 the trace failed validation; 2 a usage or input error.
 */
import { readTrace } from "../traces/ndjson.ts";
import { replayTrace, rolesOfHeader, type Roles } from "./replay.ts";
import { environmentModelled, validateEnvironment } from "./validate.ts";
import type { Trace } from "../spec/kernel/trace.ts";

const USAGE = `usage:
  speccommit trace validate FILE.ndjson [--correct]

validate   checks a trace against the spec: a counterexample (speccommit check) or a transaction
           the server recorded (GET /transactions/:id?format=ndjson). Every role instance, fed its
           recorded inputs, must ask for its recorded effects; a live 2PC transaction's answers from
           the shards and the txlog must be ones the spec's environment models allow
--correct  a counterexample found with a mutant: replay it against the correct roles (the model
           without the mutant) instead, which names the first step where the mutant's roles differ`;

export async function main(argv: string[]): Promise<number> {
  const correct = argv.includes("--correct");
  const [file, ...rest] = argv.filter((a) => a !== "--correct");
  if (file === "--help" || file === "-h") {
    console.log(USAGE);
    return 0;
  }
  if (file === undefined || rest.length > 0) {
    console.error(`speccommit trace validate: needs exactly one trace file\n\n${USAGE}`);
    return 2;
  }
  let trace: Trace;
  let roles: Roles;
  try {
    trace = await readTrace(file);
    if (correct && (trace.header.source !== "checker" || trace.header.mutant === undefined)) throw new Error(`--correct is for a counterexample found with a mutant; ${file} names none`);
    roles = rolesOfHeader(trace.header, { correct });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`speccommit trace validate: ${err.code === "ENOENT" ? `no such file: ${err.path ?? file}` : err.message}`);
    return 2;
  }
  const against = correct ? `the correct ${trace.header.model} roles` : trace.header.mutant !== undefined ? `the ${trace.header.model} roles with mutant ${trace.header.mutant}` : `the ${trace.header.model} roles`;
  const replay = replayTrace(trace, roles);
  if (!replay.ok) {
    console.error(`${file}: ${against} do not reproduce this trace: ${replay.message}\n  recorded: ${JSON.stringify(replay.expected)}\n  role:     ${JSON.stringify(replay.got)}`);
    return 1;
  }
  if (trace.header.source === "checker") {
    console.log(`${file}: valid: ${against} reproduce every role step (${replay.steps} of ${trace.steps.length} steps); the environment's answers are the checker's models' own`);
    return 0;
  }
  if (!environmentModelled(trace)) {
    console.log(`${file}: ${against} reproduce every step (${replay.steps} role steps); its environment answers are NOT checked (the environment models cover 2PC traces only)`);
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
