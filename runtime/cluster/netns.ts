/**
 * A real network partition for the chaos runs (runtime/bench/chaos.ts): a
 * Linux network namespace joined to the root namespace by a veth pair with
 * private addresses (10.213.a.b/30: `rootIp` on the root side, `nsIp`
 * inside). Servers started inside it (`ip netns exec NAME ...`: the program
 * is exec'd, so its pid is the server's own) reach the root namespace only
 * over the pair, and the root namespace reaches them only there:
 * `cut()` sets the root side down, both directions stop at once (no RST,
 * no FIN: connections in flight stay open on both sides, as across a real
 * partition), and `heal()` sets it up again; both sides keep running
 * throughout, so their late writes race.
 *
 * Unix sockets are files and cross namespaces: a server inside must reach
 * the shards over TCP (the cluster's shards bind `rootIp` too).
 *
 * Names are unique per run (`sc-<8 hex>`, links `sc<8 hex>a/b`, at most 15
 * characters as Linux requires), and the /30 is one no interface of this
 * machine has, so parallel test files never collide. `remove()` deletes the
 * link (both ends) and the namespace; it also runs when this process exits
 * (onExitAfterKill), so a failed run leaves nothing behind.
 *
 * Usable only as root with `ip` (iproute2) present; `netnsUnusable` says why
 * not (missing `ip` is installed with apt-get as root, the house rule), and
 * the chaos run falls back to its SIGSTOP stand-in, saying so.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { onExitAfterKill } from "./child.ts";
import { findBinary } from "./system.ts";

const IP_TIMEOUT_MS = 10_000;
const APT_TIMEOUT_MS = 10 * 60_000;

function run(cmd: string, args: readonly string[], timeout = IP_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, [...args], { timeout }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${err.message}${stderr ? `\n${stderr}` : ""}`.trimEnd()));
      else resolve(stdout);
    });
  });
}

/**
 * Why network namespaces cannot be used here (null: they can): not root, or
 * `ip` absent and not installable, or the kernel refuses a namespace. A
 * missing `ip` is installed (apt-get install iproute2) when we are root.
 */
export async function netnsUnusable(log: (line: string) => void = () => {}): Promise<string | null> {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return "not root (ip netns and veth pairs need CAP_NET_ADMIN)";
  if (findBinary("ip") === undefined) {
    log("netns: 'ip' not found; installing iproute2 (apt-get) ...");
    try {
      await run("bash", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2"], APT_TIMEOUT_MS);
    } catch (e) {
      return `'ip' (iproute2) missing and not installable: ${(e as Error).message.split("\n")[0]}`;
    }
    if (findBinary("ip") === undefined) return "'ip' (iproute2) still missing after apt-get install iproute2";
  }
  // A namespace made and removed at once: the kernel or a container may refuse it.
  const probe = `sc-probe-${randomBytes(4).toString("hex")}`;
  try {
    await run(ip(), ["netns", "add", probe]);
  } catch (e) {
    return `ip netns add refused: ${(e as Error).message.split("\n")[0]}`;
  }
  await run(ip(), ["netns", "del", probe]).catch(() => undefined);
  return null;
}

const ip = (): string => findBinary("ip") ?? "ip";

export interface PartitionLink {
  /** The namespace's name (for `ip netns exec`). */
  readonly ns: string;
  /** The root side's address (servers of the root namespace that the inside must reach bind it). */
  readonly rootIp: string;
  /** The inside's address (servers inside bind it). */
  readonly nsIp: string;
  /** The pair's /30 as MariaDB writes an account's host: `10.213.a.b/255.255.255.252` (both ends match it). */
  readonly subnet: string;
  /** The command and arguments that run `argv` inside the namespace. */
  exec(argv: readonly string[]): { command: string; args: string[] };
  /** Partition: the root side's link down. */
  cut(): Promise<void>;
  /** Heal: the root side's link up again. */
  heal(): Promise<void>;
  /** Whether the link is cut now. */
  readonly isCut: boolean;
  /** Deletes the link and the namespace (safe twice). */
  remove(): Promise<void>;
}

/** The 10.213.x.y/30 subnets some interface of this machine has (x.y of the network). */
async function usedSubnets(): Promise<Set<string>> {
  const out = await run(ip(), ["-4", "-o", "addr", "show"]);
  const used = new Set<string>();
  for (const m of out.matchAll(/inet 10\.213\.(\d+)\.(\d+)\//g)) used.add(`${m[1]}.${Number(m[2]) & ~3}`);
  return used;
}

/** Makes a namespace and a veth pair between it and the root namespace, both sides up. */
export async function createPartitionLink(): Promise<PartitionLink> {
  const id = randomBytes(4).toString("hex");
  const ns = `sc-${id}`;
  const rootIf = `sc${id}a`;
  const nsIf = `sc${id}b`;
  const used = await usedSubnets();
  let net = "";
  for (let i = 0; i < 64 && (net === "" || used.has(net)); i++) net = `${randomBytes(1)[0]!}.${(randomBytes(1)[0]! & 63) * 4}`;
  if (used.has(net)) throw new Error("netns: no free 10.213.x.y/30 found");
  const [a, b] = net.split(".").map(Number) as [number, number];
  const rootIp = `10.213.${a}.${b + 1}`;
  const nsIp = `10.213.${a}.${b + 2}`;
  let removed = false;
  let cut = false;
  const removeSync = () => {
    if (removed) return;
    removed = true;
    // At exit: synchronous, best effort.
    for (const args of [["link", "del", rootIf], ["netns", "del", ns]]) {
      try {
        execFileSync(ip(), args, { stdio: "ignore", timeout: IP_TIMEOUT_MS });
      } catch {
        // Already gone.
      }
    }
  };
  const cancelExit = onExitAfterKill(removeSync);
  const remove = async () => {
    if (removed) return;
    removed = true;
    cancelExit();
    await run(ip(), ["link", "del", rootIf]).catch(() => undefined);
    await run(ip(), ["netns", "del", ns]).catch(() => undefined);
  };
  try {
    await run(ip(), ["netns", "add", ns]);
    await run(ip(), ["link", "add", rootIf, "type", "veth", "peer", "name", nsIf]);
    await run(ip(), ["link", "set", nsIf, "netns", ns]);
    await run(ip(), ["addr", "add", `${rootIp}/30`, "dev", rootIf]);
    await run(ip(), ["link", "set", rootIf, "up"]);
    await run(ip(), ["netns", "exec", ns, ip(), "addr", "add", `${nsIp}/30`, "dev", nsIf]);
    await run(ip(), ["netns", "exec", ns, ip(), "link", "set", nsIf, "up"]);
    await run(ip(), ["netns", "exec", ns, ip(), "link", "set", "lo", "up"]);
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    ns,
    rootIp,
    nsIp,
    subnet: `10.213.${a}.${b}/255.255.255.252`,
    exec: (argv) => ({ command: ip(), args: ["netns", "exec", ns, ...argv] }),
    cut: async () => {
      await run(ip(), ["link", "set", rootIf, "down"]);
      cut = true;
    },
    heal: async () => {
      await run(ip(), ["link", "set", rootIf, "up"]);
      cut = false;
    },
    get isCut() {
      return cut;
    },
    remove,
  };
}
