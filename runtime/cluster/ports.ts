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

function bindEphemeral(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("bind returned no port"))));
    });
  });
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
