/**
 * `speccommit trace render`: draw a trace. (`speccommit trace validate` is
 * conformance/cli.ts: checking a trace against the spec is conformance's job,
 * and traces/ only reads, writes and draws them.)
 * Exit status: 0 done; 2 a usage or input error.
 */
import { writeFile } from "node:fs/promises";
import { readTrace } from "./ndjson.ts";
import { toDot, toSvg } from "./render.ts";

const USAGE = `usage:
  speccommit trace render FILE.ndjson -o FILE.svg [--dot]
  speccommit trace validate FILE.ndjson

render    draws the trace as a message sequence diagram (SVG; --dot writes the DOT source)
validate  checks a trace the server recorded against the spec (speccommit trace validate --help)`;

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
