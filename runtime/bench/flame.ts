/**
 * `npx tsx runtime/bench/flame.ts PROFILE.cpuprofile [--svg OUT.svg] [--top N] [--title T]`:
 * a V8 CPU profile (node --cpu-prof, `npm run bench -- --cpu-prof DIR`) as
 * a flame graph (a self-contained SVG, one box per call path, width = time
 * on CPU, hover for the frame and its share) and a table of the top costs:
 * self time per function, and time by area (our spec/, runtime/, the
 * libraries by package, node internals, GC, idle).
 *
 * No dependency: the profile is JSON (nodes with their call frame and
 * children, samples with their time deltas).
 */
import { readFileSync, writeFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  /** µs on CPU in this frame itself. */
  self: number;
  /** µs in this frame and its callees. */
  total: number;
  children: Frame[];
}

/** Where a frame's code lives: `spec/…`, `runtime/…`, a package from node_modules, node's own, or V8's pseudo-frames. */
export function areaOf(cf: CallFrame): string {
  const u = cf.url;
  if (u === "") return cf.functionName === "(garbage collector)" ? "(gc)" : cf.functionName === "(idle)" ? "(idle)" : cf.functionName.startsWith("(") ? cf.functionName : "(native)";
  const nm = u.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = u.slice(nm + "node_modules/".length).split("/");
    return `npm:${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (u.startsWith("node:")) return "node";
  const m = /\/(spec|runtime|checker|conformance|traces)\/(.*)$/.exec(u);
  if (m !== null) return `${m[1]}/${m[2]!.split("/").slice(0, m[1] === "runtime" ? 2 : 1).join("/")}`.replace(/\.ts$/, "");
  return "other";
}

const frameName = (cf: CallFrame): string => {
  const file = cf.url === "" ? "" : ` ${cf.url.replace(/^.*\/(node_modules\/|spec\/|runtime\/)/, "$1")}:${cf.lineNumber + 1}`;
  return `${cf.functionName || "(anonymous)"}${file}`;
};

export function loadProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
}

/** Self µs per profile node id. */
function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  return self;
}

/** The call tree with frames of the same name under one parent merged (V8 splits them by inlining state). */
export function callTree(p: CpuProfile): Frame {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p);
  const root = p.nodes[0]!;
  const build = (n: ProfileNode): Frame => {
    const merged = new Map<string, Frame>();
    for (const c of n.children ?? []) {
      const f = build(byId.get(c)!);
      const had = merged.get(f.name);
      if (had === undefined) merged.set(f.name, f);
      else merged.set(f.name, mergeFrames(had, f));
    }
    const children = [...merged.values()].sort((a, b) => b.total - a.total);
    const s = self.get(n.id) ?? 0;
    return { name: frameName(n.callFrame), self: s, total: s + children.reduce((a, c) => a + c.total, 0), children };
  };
  return build(root);
}

function mergeFrames(a: Frame, b: Frame): Frame {
  const merged = new Map(a.children.map((c) => [c.name, c]));
  for (const c of b.children) {
    const had = merged.get(c.name);
    merged.set(c.name, had === undefined ? c : mergeFrames(had, c));
  }
  return { name: a.name, self: a.self + b.self, total: a.total + b.total, children: [...merged.values()].sort((x, y) => y.total - x.total) };
}

export interface TopCosts {
  total_us: number;
  idle_us: number;
  byFunction: Array<{ name: string; area: string; self_us: number }>;
  byArea: Array<{ area: string; self_us: number }>;
}

export function topCosts(p: CpuProfile): TopCosts {
  const self = selfTimes(p);
  const fn = new Map<string, { name: string; area: string; self_us: number }>();
  const area = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const s = self.get(n.id) ?? 0;
    if (s === 0) continue;
    total += s;
    const a = areaOf(n.callFrame);
    if (a === "(idle)") idle += s;
    area.set(a, (area.get(a) ?? 0) + s);
    const name = frameName(n.callFrame);
    const f = fn.get(name) ?? { name, area: a, self_us: 0 };
    f.self_us += s;
    fn.set(name, f);
  }
  return {
    total_us: total,
    idle_us: idle,
    byFunction: [...fn.values()].sort((a, b) => b.self_us - a.self_us),
    byArea: [...area.entries()].map(([a, s]) => ({ area: a, self_us: s })).sort((x, y) => y.self_us - x.self_us),
  };
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The flame graph as SVG: the root at the bottom, callees above, (idle) and (program) left out of the width. */
export function flameSvg(tree: Frame, title: string, width = 1200): string {
  const busy: Frame = { ...tree, children: tree.children.filter((c) => !c.name.startsWith("(idle)") && !c.name.startsWith("(program)")) };
  busy.total = busy.self + busy.children.reduce((a, c) => a + c.total, 0);
  const rowH = 16;
  const boxes: string[] = [];
  let depthMax = 0;
  const place = (f: Frame, x: number, depth: number, scale: number) => {
    const w = f.total * scale;
    if (w < 1) return;
    depthMax = Math.max(depthMax, depth);
    boxes.push(`${x.toFixed(2)}|${depth}|${w.toFixed(2)}|${esc(f.name)}|${((100 * f.total) / busy.total).toFixed(2)}`);
    let cx = x;
    for (const c of f.children) {
      place(c, cx, depth + 1, scale);
      cx += c.total * scale;
    }
  };
  place({ ...busy, name: "all (busy)" }, 0, 0, width / Math.max(1, busy.total));
  const height = (depthMax + 1) * rowH + 40;
  const color = (name: string): string => {
    if (name.includes("spec/")) return "#7fbf7f";
    if (name.includes("runtime/")) return "#f2a65a";
    if (name.includes("node_modules/")) return "#8fb3e0";
    if (name.startsWith("(garbage")) return "#d46a6a";
    return "#d9c26a";
  };
  const rects = boxes.map((b) => {
    const [x, depth, w, name, pct] = b.split("|") as [string, string, string, string, string];
    const y = height - 20 - (Number(depth) + 1) * rowH;
    const label = Number(w) > 40 ? `<text x="${(Number(x) + 3).toFixed(2)}" y="${y + 11}" font-size="10" clip-path="inset(0 0 0 0)">${name.slice(0, Math.floor(Number(w) / 6))}</text>` : "";
    return `<g><title>${name} (${pct}%)</title><rect x="${x}" y="${y}" width="${w}" height="${rowH - 1}" fill="${color(name)}" rx="1"/>${label}</g>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="4" y="14" font-size="12">${esc(title)} — width: share of busy CPU time; green spec/, orange runtime/, blue node_modules, red GC, yellow node/V8</text>`,
    ...rects,
    `</svg>`,
  ].join("\n");
}

export function topTable(t: TopCosts, n: number): string {
  const busy = t.total_us - t.idle_us;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1)}%`;
  const lines = [`busy ${(busy / 1e6).toFixed(2)} s of ${(t.total_us / 1e6).toFixed(2)} s profiled`, "", "| area | self | share of busy |", "|---|---:|---:|"];
  for (const a of t.byArea.filter((a) => a.area !== "(idle)").slice(0, n)) lines.push(`| ${a.area} | ${(a.self_us / 1000).toFixed(0)} ms | ${pct(a.self_us)} |`);
  lines.push("", "| function (self time) | area | self | share of busy |", "|---|---|---:|---:|");
  for (const f of t.byFunction.filter((f) => f.area !== "(idle)").slice(0, n)) lines.push(`| \`${f.name}\` | ${f.area} | ${(f.self_us / 1000).toFixed(0)} ms | ${pct(f.self_us)} |`);
  return lines.join("\n");
}

function main(argv: string[]): void {
  const files: string[] = [];
  let svg: string | undefined;
  let top = 20;
  let title: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--svg") svg = argv[++i];
    else if (a === "--top") top = Number(argv[++i]);
    else if (a === "--title") title = argv[++i];
    else files.push(a);
  }
  if (files.length !== 1 || !Number.isSafeInteger(top) || top < 1) {
    console.error("usage: npx tsx runtime/bench/flame.ts PROFILE.cpuprofile [--svg OUT.svg] [--top N] [--title T]");
    process.exit(2);
  }
  const p = loadProfile(files[0]!);
  if (svg !== undefined) writeFileSync(svg, flameSvg(callTree(p), title ?? files[0]!));
  console.log(topTable(topCosts(p), top));
}

if (process.argv[1]?.endsWith("flame.ts")) main(process.argv.slice(2));
