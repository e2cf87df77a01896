// The chaos runs' real partition (runtime/cluster/netns.ts): a network namespace joined to the root namespace by a
// veth pair. A TCP server in the root namespace on the pair's root address is reached from inside; with the link cut
// it is not (the connection attempt times out: nothing answers, not even a reset); healed, it is again; remove()
// leaves neither the namespace nor the link behind. Where namespaces are not usable here (not root, no `ip`), the
// test says why and checks only that the reason is given: the chaos run then falls back to its SIGSTOP stand-in.
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { createPartitionLink, netnsUnusable } from "../../runtime/cluster/netns.ts";

function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, out: `${stdout}${stderr}` }));
  });
}

describe("netns: a real partition between a namespace and the root namespace", () => {
  it("reachable, cut (nothing answers), healed, removed", async () => {
    const why = await netnsUnusable();
    if (why !== null) {
      console.log(`network namespaces not usable here (${why}): the chaos runs use the SIGSTOP stand-in`);
      expect(why.length).toBeGreaterThan(0);
      return;
    }
    const link = await createPartitionLink();
    let server: Server | undefined;
    try {
      expect(link.rootIp).toMatch(/^10\.213\.\d+\.\d+$/);
      server = createServer((s) => s.end("hello\n"));
      await new Promise<void>((r) => server!.listen(0, link.rootIp, r));
      const port = (server.address() as { port: number }).port;
      // From inside: bash's /dev/tcp, bounded by timeout(1).
      const probe = () => sh("ip", ["netns", "exec", link.ns, "timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${link.rootIp}/${port} && head -1 <&3`]);
      expect(await probe()).toMatchObject({ code: 0, out: "hello\n" });
      // The root namespace's loopback is not the inside's: 127.0.0.1 there is its own.
      await link.cut();
      expect(link.isCut).toBe(true);
      // timeout(1) exits 124: the SYN went nowhere and nothing answered.
      expect((await probe()).code).toBe(124);
      await link.heal();
      expect(await probe()).toMatchObject({ code: 0, out: "hello\n" });
    } finally {
      server?.close();
      await link.remove();
    }
    expect((await sh("ip", ["netns", "list"])).out).not.toContain(link.ns);
    expect((await sh("ip", ["-o", "link"])).out).not.toContain(`${link.ns.slice(3)}a`);
  }, 60_000);
});
