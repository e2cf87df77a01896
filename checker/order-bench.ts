/**
 * `npx tsx checker/order-bench.ts [--rm 9] [--orders discovery,owners,random]`: how much the packed search's
 * speed owes to the order in which it expands a level (docs/checker.md, "Parallel", "Where the time goes").
 *
 * One thread, the packed loop's table and keys (KeySet, mixSlot), TwoPhase with RM resource managers, each
 * level expanded in one of three orders: `discovery` (the one-thread engine's), `owners` (the states that
 * worker 0 of 2 would own, then worker 1's: what the split between two workers does to the order), `random`.
 * The counts are the same in every order; it prints each order's CPU time and the load average.
 */
import { loadavg } from "node:os";
import { twoPhase } from "../spec/reference/twophase.ts";
import { KeySet } from "./table.ts";
import { F64List } from "./store.ts";
import { mixSlot, ownerOf, TWO_POW_32 } from "./hash.ts";
import { runCheckerScript, UserError } from "./errors.ts";

type Order = "discovery" | "owners" | "random";

function search(rm: number, order: Order): { distinct: number; generated: number; cpu: number } {
  const packed = twoPhase(rm).packed!;
  const model = twoPhase(rm);
  const table = new KeySet(16);
  const states = new F64List(1 << 16);
  const out = new Float64Array(packed.maxSuccessors);
  const hashOf = (y: number) => mixSlot(Math.floor(y / TWO_POW_32), y >>> 0);
  const add = (y: number) => {
    if (table.add(hashOf(y), Math.floor(y / TWO_POW_32), y >>> 0)) states.push(y);
  };
  let generated = 0;
  for (const s of model.init()) {
    generated++;
    add(packed.pack(s));
  }
  // A fixed seed: the same "random" order every run.
  let seed = 12345;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const started = process.cpuUsage();
  for (let start = 0, end = states.length; start < end; start = end, end = states.length) {
    let level = states.data.slice(start, end);
    if (order === "owners") level = Float64Array.from([...level.filter((y) => ownerOf(hashOf(y), 2) === 0), ...level.filter((y) => ownerOf(hashOf(y), 2) === 1)]);
    if (order === "random") {
      for (let i = level.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [level[i], level[j]] = [level[j]!, level[i]!];
      }
    }
    for (const x of level) {
      const n = packed.successors(x, out);
      generated += n;
      for (let i = 0; i < n; i++) if (out[i] !== x) add(out[i]!);
    }
  }
  const used = process.cpuUsage(started);
  return { distinct: states.length, generated, cpu: (used.user + used.system) / 1e6 };
}

const ORDERS: readonly Order[] = ["discovery", "owners", "random"];
export const USAGE = `usage: npx tsx checker/order-bench.ts [--rm N (9)] [--orders ORDER,... (discovery,owners,random,discovery,owners)]
  --rm N        TwoPhase with N resource managers, 3 to 10
  --orders      the orders to run, in turn: ${ORDERS.join(", ")}`;

/** The command line; a UserError names what is wrong. */
export function parseOrderArgs(argv: readonly string[]): { rm: number; orders: Order[] } {
  const o = { rm: 9, orders: ["discovery", "owners", "random", "discovery", "owners"] as Order[] };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new UserError(`${flag} needs a value`);
    if (flag === "--rm") {
      if (!/^[0-9]+$/.test(v) || Number(v) < 3 || Number(v) > 10) throw new UserError(`--rm ${v}: expected an integer from 3 to 10`);
      o.rm = Number(v);
    } else if (flag === "--orders") {
      const list = v.split(",");
      const bad = list.filter((x) => !(ORDERS as readonly string[]).includes(x));
      if (bad.length > 0) throw new UserError(`--orders: ${bad.join(", ")} not an order; expected ${ORDERS.join(", ")}`);
      o.orders = list as Order[];
    } else throw new UserError(`unknown option ${flag}`);
  }
  return o;
}

if (process.argv[1]?.endsWith("order-bench.ts")) {
  await runCheckerScript("order-bench", USAGE, async (argv) => {
    const o = parseOrderArgs(argv);
    console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(" ")} (1, 5, 15 min)`);
    for (const order of o.orders) {
      const r = search(o.rm, order);
      console.log(`TwoPhase RM=${o.rm}  order=${order.padEnd(9)}  distinct ${r.distinct}  generated ${r.generated}  CPU ${r.cpu.toFixed(2)} s`);
    }
    console.log(`load average at end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  });
}
