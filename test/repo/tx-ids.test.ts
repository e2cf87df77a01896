// With several coordinator nodes a transaction id names its node (`<node>.<uuid>`, runtime/nodes.ts): a node's
// resolver sees only the prepared branches and undo rows whose ids carry its name, and the idempotency and
// account-opening paths settle an id in its node's namespace. An id minted without the node (a bare UUID) belongs
// to n1: on any other node nobody settles it, and n1's resolver presumes it aborted. The banking merge minted
// opening transfers with the bare newTxId(); this test keeps every id of the server going through Engine.newTx().
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : /\.ts$/.test(name) ? [p] : [];
  });
}

/** A call that mints a transaction id other than through the engine. */
const MINTS = /\bnewTxId\s*\(|\bnodeTxId\s*\(/;
/** Where minting is the definition itself (the engine's newTx, the node naming), or not the server (bench, cluster). */
const ALLOWED = new Set(["runtime/engine.ts", "runtime/nodes.ts"]);
const NOT_THE_SERVER = /^runtime\/(bench|cluster)\//;

describe("transaction ids name their node", () => {
  it("the server mints transaction ids only through Engine.newTx()", () => {
    const offenders = sources(join(root, "runtime"))
      .map((f) => relative(root, f))
      .filter((f) => !ALLOWED.has(f) && !NOT_THE_SERVER.test(f))
      .filter((f) => MINTS.test(readFileSync(join(root, f), "utf8")))
      .map((f) => relative(root, join(root, f)));
    expect(offenders).toEqual([]);
  });

  it("the pattern sees a bare mint and leaves the engine's call alone", () => {
    expect(MINTS.test("tx = newTxId();")).toBe(true);
    expect(MINTS.test("tx = nodeTxId(node);")).toBe(true);
    expect(MINTS.test("tx = this.d.engine.newTx();")).toBe(false);
  });
});
