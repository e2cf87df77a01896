/** An error the user caused (a name or a value on the command line, an unsupported combination); the message says what is allowed. */
export class UserError extends Error {}

/**
 * A checker script's command line (checker/bench.ts, order-bench.ts; runtime/bench/cli.ts is the same for the
 * server's benchmarks, which checker/ may not import): `--help` prints `usage`; a UserError from `main` prints
 * `name: message` and the usage, exit status 2; otherwise the status is what `main` returns.
 */
export async function runCheckerScript(name: string, usage: string, main: (argv: string[]) => Promise<number | void>): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    return;
  }
  try {
    process.exitCode = (await main(argv)) ?? 0;
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    console.error(`${name}: ${e.message}\n${usage}`);
    process.exitCode = 2;
  }
}
