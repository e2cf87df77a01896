/**
 * Regenerates the diagram of docs/protocols/failover.md: `npx tsx test/failover/images.ts`
 * (as test/checker/reference-images.ts does for three-phase-commit.md). Needs the system Graphviz (`dot`).
 * The counterexample is found by the checker, as the suite finds it: mutant lease-early, caught by AC4.
 */
import { execFileSync } from "node:child_process";
import { runCheck } from "../../checker/run.ts";
import { toDot } from "../../traces/render.ts";

const dir = new URL("../../docs/img/", import.meta.url).pathname;
/** Small enough for a page: 60 dots per inch (the DOT is in points, 72 per inch). */
const dpi = 60;

const r = await runCheck({ model: "failover", params: { protocol: "2pc", crash: 1 }, mutant: "lease-early", properties: ["AC4_all_yes_commits"] });
const v = r.violations.find((x) => x.name === "AC4_all_yes_commits");
if (v === undefined) throw new Error("failover lease-early: no violation of AC4_all_yes_commits");
execFileSync("dot", ["-Kneato", "-n", "-Tpng", `-Gdpi=${dpi}`, "-o", `${dir}failover-lease-early.png`], { input: toDot(v.trace) });
console.log(`wrote docs/img/failover-lease-early.png (${v.length} steps)`);
