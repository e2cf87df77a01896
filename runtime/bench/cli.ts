/**
 * The command line of the benchmark scripts, one convention for all of them
 * (`npm run bench*` and `npx tsx runtime/bench/X.ts`):
 *
 *   - `--help` (or `-h`) anywhere prints the usage on stdout and exits 0,
 *     before anything is parsed or started;
 *   - a UsageError (an unknown option, a missing or bad value) prints
 *     `NAME: message` and the usage on stderr and exits 2, before anything is
 *     started;
 *   - any other failure prints `NAME: message` on stderr and exits 1 (with
 *     its stack when SPECCOMMIT_DEBUG=1);
 *   - otherwise the exit status is what `main` returns (0 when nothing).
 *
 * test/runtime/bench-cli.test.ts runs every script with `--help` and with an
 * unknown option.
 */

/** Bad command-line input: the message names the option and what was expected. */
export class UsageError extends Error {}

export const wantsHelp = (argv: readonly string[]): boolean => argv.includes("--help") || argv.includes("-h");

/**
 * Runs a script's `main` under the convention above and exits the process
 * with its status (the scripts hold servers, pools and timers that a
 * natural exit would wait for).
 */
export async function runScript(name: string, usage: string, main: (argv: string[]) => Promise<number | void>, argv: string[] = process.argv.slice(2)): Promise<never> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${usage.trimEnd()}\n`);
    process.exit(0);
  }
  let code: number;
  try {
    code = (await main(argv)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${name}: ${e.message}\n${usage.trimEnd()}\n`);
      process.exit(2);
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`${name}: ${process.env.SPECCOMMIT_DEBUG === "1" ? (err.stack ?? err.message) : err.message}\n`);
    process.exit(1);
  }
  process.exit(code);
}
