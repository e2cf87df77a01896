/**
 * `npx tsx runtime/bench/flame.ts PROFILE.cpuprofile [--svg OUT.svg] [--top N] [--title T] [--callers FUNCTION [--depth N]]`:
 * a V8 CPU profile (node --cpu-prof, `npm run bench -- --cpu-prof DIR`) as
 * a flame graph (a self-contained SVG, one box per call path, width = time
 * on CPU, hover for the frame and its share) and a table of the top costs:
 * self time per function, and time by area (our spec/, runtime/, the
 * libraries by package, node internals, GC, idle). `--callers F`: where the
 * self time of the function named F comes from, by the call path that led
 * to it (its N nearest callers, 6 by default), e.g. which library's writes
 * the socket `writeBuffer` time is.
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

export interface CallerPaths {
  /** µs of the function's self time, over every node named so. */
  self_us: number;
  /** The call paths into it (nearest caller first, at most `depth` frames), by µs of its self time under each. */
  paths: Array<{ path: string[]; self_us: number }>;
}

/** Where the self time of every frame whose function is named `fn` comes from: its `depth` nearest callers. */
export function callersOf(p: CpuProfile, fn: string, depth: number): CallerPaths {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = selfTimes(p);
  const paths = new Map<string, { path: string[]; self_us: number }>();
  let total = 0;
  for (const n of p.nodes) {
    const s = self.get(n.id) ?? 0;
    if (s === 0 || n.callFrame.functionName !== fn) continue;
    total += s;
    const path: string[] = [];
    for (let cur = parent.get(n.id); cur !== undefined && path.length < depth; cur = parent.get(cur)) {
      const up = byId.get(cur)!;
      if (up.callFrame.functionName === "(root)") break;
      path.push(frameName(up.callFrame));
    }
    const key = path.join("\n");
    const had = paths.get(key) ?? { path, self_us: 0 };
    had.self_us += s;
    paths.set(key, had);
  }
  return { self_us: total, paths: [...paths.values()].sort((a, b) => b.self_us - a.self_us) };
}

export function callersTable(fn: string, c: CallerPaths, n: number): string {
  if (c.self_us === 0) return `no self time in a function named ${JSON.stringify(fn)}`;
  const lines = [`\`${fn}\`: ${(c.self_us / 1000).toFixed(0)} ms self time, by its callers (nearest first)`, "", "| share | ms | called from |", "|---:|---:|---|"];
  for (const x of c.paths.slice(0, n)) lines.push(`| ${((100 * x.self_us) / c.self_us).toFixed(1)}% | ${(x.self_us / 1000).toFixed(0)} | ${x.path.map((f) => `\`${f}\``).join(" < ") || "(top level)"} |`);
  return lines.join("\n");
}

const USAGE = "usage: npx tsx runtime/bench/flame.ts PROFILE.cpuprofile [--svg OUT.svg] [--top N] [--title T] [--callers FUNCTION [--depth N]]";

/** The command line; a usage error is an Error whose message says what is wrong. */
export function parseFlameArgs(argv: readonly string[]): { help: true } | { help: false; file: string; svg?: string; top: number; title?: string; callers?: string; depth: number } {
  const files: string[] = [];
  let svg: string | undefined;
  let top = 20;
  let depth = 6;
  let title: string | undefined;
  let callers: string | undefined;
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  const count = (v: string, flag: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, not ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--help" || a === "-h") return { help: true };
    else if (a === "--svg") svg = value(++i, a);
    else if (a === "--top") top = count(value(++i, a), a);
    else if (a === "--depth") depth = count(value(++i, a), a);
    else if (a === "--title") title = value(++i, a);
    else if (a === "--callers") callers = value(++i, a);
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else files.push(a);
  }
  if (files.length !== 1) throw new Error(files.length === 0 ? "no profile given" : `one profile at a time, not ${files.length}`);
  return { help: false, file: files[0]!, svg, top, title, callers, depth };
}

function main(argv: string[]): void {
  let o: ReturnType<typeof parseFlameArgs>;
  try {
    o = parseFlameArgs(argv);
  } catch (e) {
    console.error(`flame: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (o.help) {
    console.log(USAGE);
    return;
  }
  let p: CpuProfile;
  try {
    p = loadProfile(o.file);
    if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas)) throw new Error("not a V8 CPU profile (nodes, samples, timeDeltas)");
  } catch (e) {
    console.error(`flame: cannot read ${o.file}: ${(e as Error).message}`);
    process.exit(1);
  }
  if (o.svg !== undefined) writeFileSync(o.svg, flameSvg(callTree(p), o.title ?? o.file));
  console.log(o.callers !== undefined ? callersTable(o.callers, callersOf(p, o.callers, o.depth), o.top) : topTable(topCosts(p), o.top));
}

if (process.argv[1]?.endsWith("flame.ts")) main(process.argv.slice(2));
