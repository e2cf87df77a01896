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
 *
 * And interrupts: the first SIGINT/SIGTERM stops a script cleanly (what it
 * brought up is stopped and removed), the same signal again within a second
 * is the same interrupt delivered twice, a later one exits at once
 * (`onInterrupt`, `cleanupOnInterrupt`; test/runtime/bench-interrupt.test.ts).
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * What is wrong with writing `path` at the end of a run (its directory missing or not writable, or it is a
 * directory), or null: checked when the options are read, so that a typo does not cost the whole measurement.
 */
export function writableFileProblem(path: string): string | null {
  const file = resolve(path);
  const dir = dirname(file);
  if (!existsSync(dir)) return `no directory ${dir}`;
  if (existsSync(file) && statSync(file).isDirectory()) return `${file} is a directory`;
  try {
    accessSync(dir, constants.W_OK);
    if (existsSync(file)) accessSync(file, constants.W_OK);
  } catch {
    return `${existsSync(file) ? file : dir} is not writable`;
  }
  return null;
}

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

/**
 * A repeat of the first interrupt within this many milliseconds is the same interrupt delivered twice: a
 * terminal's Ctrl-C reaches every process of the foreground group, tsx (`npm run bench`) among them, which relays
 * it to its child, the benchmark, which so gets it twice at once.
 */
export const SIGNAL_ECHO_MS = 1_000;

/**
 * SIGINT and SIGTERM, handled once: `first` on the first; a repeat within SIGNAL_ECHO_MS is ignored (above); a
 * later one calls `again`, which is expected to exit at once.
 */
export function onInterrupt(first: (signal: NodeJS.Signals) => void, again: (signal: NodeJS.Signals) => void): void {
  let firstAt: number | undefined;
  const handle = (signal: NodeJS.Signals) => {
    const now = performance.now();
    if (firstAt === undefined) {
      firstAt = now;
      first(signal);
    } else if (now - firstAt >= SIGNAL_ECHO_MS) again(signal);
  };
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
}

/** What the first interrupt undoes (a cluster the script brought up, detached, would outlive it), latest first. */
const cleanups: Array<{ what: string; run: () => Promise<unknown> }> = [];
let cleanupsInstalled = false;
/** Bound on the cleanups after an interrupt. */
const CLEANUP_MS = 60_000;

/**
 * Registers `run` to be done if the script is interrupted (SIGINT, SIGTERM) before it calls the returned function
 * (its own `finally`, normally). On the first interrupt every registered cleanup runs (latest first, at most
 * CLEANUP_MS in all), then the process exits (130 for SIGINT, 143 for SIGTERM); an interrupt again, a second or
 * more later, exits at once.
 */
export function cleanupOnInterrupt(name: string, what: string, run: () => Promise<unknown>): () => void {
  const entry = { what, run };
  cleanups.push(entry);
  if (!cleanupsInstalled) {
    cleanupsInstalled = true;
    onInterrupt(
      (signal) => {
        const pending = [...cleanups].reverse();
        process.stderr.write(`${name}: ${signal}: cleaning up (${pending.map((c) => c.what).join(", ") || "nothing"}); ${signal} again to exit at once\n`);
        const bound = new Promise((resolve) => setTimeout(resolve, CLEANUP_MS).unref());
        const all = (async () => {
          for (const c of pending) await c.run().catch((e: unknown) => process.stderr.write(`${name}: cleanup of ${c.what} failed: ${(e as Error).message}\n`));
        })();
        void Promise.race([all, bound]).then(() => process.exit(signal === "SIGINT" ? 130 : 143));
      },
      (signal) => {
        process.stderr.write(`${name}: ${signal} again, exiting now; ${cleanups.map((c) => c.what).join(", ") || "nothing"} may be left\n`);
        process.exit(1);
      },
    );
  }
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}
