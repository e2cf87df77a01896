#!/usr/bin/env node
// The `speccommit` command. The project is TypeScript run through tsx (no
// build step): register tsx's loader, then hand the arguments to the module
// that owns the subcommand. Each exports `main(argv: string[]): Promise<number>`.
import { register } from "tsx/esm/api";

register();

const commands = {
  check: ["../checker/cli.ts", "model-check one configuration, or a model's mutants"],
  suite: ["../checker/suite.ts", "run the verification suite (what `npm run check` runs)"],
  trace: ["../traces/cli.ts", "render or validate a trace (NDJSON)"],
  cluster: ["../runtime/cluster/cli.ts", "start, stop or inspect the local MariaDB + etcd cluster"],
  serve: ["../runtime/main.ts", "start the coordinator server (what `npm start` runs)"],
};

function usage() {
  const lines = Object.entries(commands).map(([name, [, what]]) => `  ${name.padEnd(8)} ${what}`);
  return `usage: speccommit <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nRun 'speccommit <command> --help' for a command's options.`;
}

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === "--help" || name === "-h") {
  console.log(usage());
  process.exit(name === undefined ? 2 : 0);
}
// `trace validate` is conformance's (conformance/cli.ts); `trace render` is traces'.
const validate = name === "trace" && rest[0] === "validate";
const entry = validate ? ["../conformance/cli.ts"] : commands[name];
if (entry === undefined) {
  console.error(`speccommit: unknown command '${name}'\n\n${usage()}`);
  process.exit(2);
}
const mod = await import(new URL(entry[0], import.meta.url).href);
process.exitCode = await mod.main(validate ? rest.slice(1) : rest);
