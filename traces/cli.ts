/**
 * `speccommit trace`: draw a trace, or check a recorded live one against the spec.
 * Exit status: 0 done; 1 the trace failed validation; 2 a usage or input error.
 */
import { writeFile } from "node:fs/promises";
import { readTrace } from "./ndjson.ts";
import { toDot, toSvg } from "./render.ts";

const USAGE = `usage:
  speccommit trace render FILE.ndjson -o FILE.svg [--dot]
  speccommit trace validate FILE.ndjson

render    draws the trace as a message sequence diagram (SVG; --dot writes the DOT source)
validate  checks a trace the server recorded (GET /transactions/:id?format=ndjson): fed to a
          fresh role, its recorded inputs give its recorded effects, and every answer from a
          shard or the txlog is one the spec's environment models allow`;

class UsageError extends Error {}

interface Command {
  run(args: string[]): Promise<number>;
}

const commands: Record<string, Command> = {
  render: {
    async run(args) {
      let file: string | undefined;
      let out: string | undefined;
      let dot = false;
      for (let i = 0; i < args.length; i++) {
        const a = args[i]!;
        if (a === "-o" || a === "--out") {
          out = args[++i];
          if (out === undefined) throw new UsageError(`${a} expects a file name`);
        } else if (a === "--dot") dot = true;
        else if (a.startsWith("-")) throw new UsageError(`unknown option '${a}'`);
        else if (file === undefined) file = a;
        else throw new UsageError(`one trace at a time (got '${file}' and '${a}')`);
      }
      if (file === undefined) throw new UsageError("render needs a trace file");
      const trace = await readTrace(file);
      const target = out ?? file.replace(/\.ndjson$/, "") + (dot ? ".dot" : ".svg");
      await writeFile(target, dot ? toDot(trace) : await toSvg(trace), "utf8");
      console.log(`wrote ${target} (${trace.steps.length} steps)`);
      return 0;
    },
  },
  validate: {
    async run(args) {
      const [file, ...rest] = args;
      if (file === undefined || rest.length > 0) throw new UsageError("validate needs exactly one trace file");
      const trace = await readTrace(file);
      if (trace.header.source !== "runtime") {
        throw new UsageError(`${file} is a ${trace.header.source} trace; validate checks traces the server recorded (source "runtime")`);
      }
      // The checks replay the trace through the spec's roles and environment
      // models; they live with the runtime that records the traces.
      const { replayTrace } = await import("../runtime/replay.ts");
      const { environmentModelled, validateEnvironment } = await import("../runtime/validate.ts");
      const replay = replayTrace(trace);
      if (!replay.ok) {
        console.error(`${file}: step ${replay.step}: the role does not reproduce this trace: ${replay.message}`);
        return 1;
      }
      if (!environmentModelled(trace)) {
        console.log(
          `${file}: the ${trace.header.model} role reproduces every step (${replay.steps} role steps); its environment answers are NOT checked (the environment models cover 2PC traces only)`,
        );
        return 0;
      }
      const env = validateEnvironment(trace);
      if (!env.ok) {
        console.error(`${file}: step ${env.step}: ${env.message}`);
        return 1;
      }
      console.log(`${file}: valid (${trace.steps.length} steps, ${env.answers} environment answers allowed by the models)`);
      return 0;
    },
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) {
    console.error(`speccommit trace: unknown subcommand '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await cmd.run(args);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (e instanceof UsageError) console.error(`speccommit trace ${name}: ${err.message}\n\n${USAGE}`);
    else if (err.code === "ENOENT") console.error(`speccommit trace ${name}: no such file: ${err.path ?? ""}`);
    else console.error(`speccommit trace ${name}: ${err.message}`);
    return 2;
  }
}
