/**
 * `mkdir -p` for every directory the project makes (the checker's --out, the cluster's directories), without
 * Node's recursive mode: that one never returns where mkdir answers ENOENT under a parent that exists (a directory
 * in /proc, measured with Node 20), and `speccommit check --out /proc/x` and `speccommit cluster up --dir /proc/x`
 * hung. Here a directory that cannot be made is an error naming it; the recursion is bounded by the path's depth.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";

/** Makes `dir` and its missing parents, each with `mode` (as Node's recursive mkdir does); an existing directory is fine. */
export function makeDirsSync(dir: string, mode?: number): void {
  const made = (): boolean => {
    try {
      mkdirSync(dir, mode === undefined ? undefined : { mode });
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") {
        if (statSync(dir).isDirectory()) return true;
        throw new Error(`${dir} exists and is not a directory`);
      }
      if (code === "ENOENT") return false;
      throw e;
    }
  };
  if (made()) return;
  const parent = dirname(dir);
  if (parent === dir) throw new Error(`cannot make directory ${dir}`);
  makeDirsSync(parent, mode);
  if (!made()) throw new Error(`cannot make directory ${dir} (its parent exists, mkdir answers ENOENT)`);
}
