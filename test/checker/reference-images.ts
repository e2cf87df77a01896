/**
 * Regenerates the diagram of docs/protocols/three-phase-commit.md:
 * `npx tsx test/checker/reference-images.ts` (as test/traces/images.ts does
 * for docs/traces.md). Needs the system Graphviz (`dot`). The counterexample
 * is found by the checker, as the suite finds it.
 */
import { execFileSync } from "node:child_process";
import { runCheck } from "../../checker/run.ts";
import { toDot } from "../../traces/render.ts";

const dir = new URL("../../docs/img/", import.meta.url).pathname;
/** Small enough for a page: 60 dots per inch (the DOT is in points, 72 per inch). */
const dpi = 60;

const r = await runCheck({ model: "ThreePC", params: { N: 3, crashes: 0, partition: true }, properties: ["Agreement"] });
const v = r.violations.find((x) => x.name === "Agreement");
if (v === undefined) throw new Error("ThreePC partition=true: no violation of Agreement");
execFileSync("dot", ["-Kneato", "-n", "-Tpng", `-Gdpi=${dpi}`, "-o", `${dir}threepc-partition.png`], { input: toDot(v.trace) });
console.log(`wrote docs/img/threepc-partition.png (${v.length} steps)`);
