/**
 * Free TCP ports on the loopback interface, for servers the project starts.
 *
 * The kernel picks a free port when we bind port 0; we close the socket and
 * hand the number out. Another process can still take it before our server
 * binds, so callers that start servers retry on "address in use" (see
 * mariadb.ts, etcd.ts). Within this process a port is never handed out twice,
 * because two servers starting at once would otherwise race for it.
 */
import { connect, createServer } from "node:net";

const HOST = "127.0.0.1";
const ATTEMPTS_MAX = 64;
const handedOut = new Set<number>();

/** Binds 127.0.0.1:port (0: one the kernel picks), held until `release` is called; null when it cannot be bound. */
function holdPort(port: number): Promise<{ port: number; release: () => Promise<void> } | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(null));
    server.listen({ host: HOST, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : 0;
      const release = () => new Promise<void>((r) => server.close(() => r()));
      if (bound > 0) resolve({ port: bound, release });
      else void release().then(() => resolve(null));
    });
  });
}

async function bindEphemeral(): Promise<number> {
  const h = await holdPort(0);
  if (h === null) throw new Error(`cannot bind a port on ${HOST}`);
  await h.release();
  return h.port;
}

/** One free port on 127.0.0.1 that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
    const port = await bindEphemeral();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no fresh free port on ${HOST} after ${ATTEMPTS_MAX} attempts`);
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  return ports;
}

/** Below the kernel's ephemeral range (32768-60999 here), where no outgoing connection takes a local port. */
const CONSECUTIVE_LOW = 20_000;
const CONSECUTIVE_HIGH = 32_000;

/**
 * `count` consecutive free ports (`first`, `first + 1`, ...), for servers that take a first port and count up from
 * it (`serve --coordinators N --port P`). They are chosen below the ephemeral range, since any outgoing connection of
 * any process may hold a port there as its local end, and each is bound (all at once) before the numbers are handed
 * out; none was handed out by this process before. Another process can still bind one before the caller's server
 * does, as with freePort.
 */
export async function freeConsecutivePorts(count: number, random: () => number = Math.random): Promise<number> {
  if (!Number.isSafeInteger(count) || count < 1 || count > 100) throw new Error(`freeConsecutivePorts: count must be 1..100 (got ${count})`);
  for (let attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
    const first = CONSECUTIVE_LOW + Math.floor(random() * (CONSECUTIVE_HIGH - CONSECUTIVE_LOW - count));
    const ports = Array.from({ length: count }, (_, i) => first + i);
    if (ports.some((p) => handedOut.has(p))) continue;
    const held: Array<{ release: () => Promise<void> }> = [];
    for (const p of ports) {
      const h = await holdPort(p);
      if (h === null) break;
      held.push(h);
    }
    await Promise.all(held.map((h) => h.release()));
    if (held.length === count) {
      for (const p of ports) handedOut.add(p);
      return first;
    }
  }
  throw new Error(`no ${count} consecutive free ports on ${HOST} after ${ATTEMPTS_MAX} attempts`);
}

/** Marks a port as taken (one recorded in a cluster file, for instance) so freePort skips it. */
export function reservePort(port: number): void {
  handedOut.add(port);
}

/** True when a TCP connection to 127.0.0.1:port is accepted within timeoutMs. */
export async function portAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
