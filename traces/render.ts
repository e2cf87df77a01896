/**
 * A trace drawn as a message sequence diagram (docs/traces.md, "The diagram").
 *
 * Graphviz has no sequence-diagram layout, and `dot` reroutes any edge that
 * does not fit its ranks. So the diagram is laid out here and Graphviz only
 * draws it: `neato` with every node pinned (`pos="x,y!"`, in points) and
 * straight edges. One column per actor, a vertical lifeline from its head to
 * its foot; one row per step (runs repeated back to back folded into one,
 * `foldRuns`), the step's box on its actor's column; message
 * arrows go straight from the sending step's box to the receiving step's box,
 * so an asynchronous message slants down by the time it took.
 *
 * Sends and receives are matched by `Msg.id`: a receive takes the latest send
 * of that id in an earlier step. A send nobody receives is drawn dashed to an
 * "in flight / lost" marker on the target's lifeline below the last step; a
 * receive with no earlier send (sent before the trace began) is drawn dotted
 * from the sender's lifeline in the same row.
 *
 * Labels are plain text: the bundled WASM Graphviz does not draw HTML-like
 * labels.
 */
import { renderGraphFromSource } from "graphviz-cli";
import { lifelineOf, type Msg, type Trace, type TraceHeader, type TraceStep } from "../spec/kernel/trace.ts";

/** Past this the picture is unreadable anyway. */
const steps_max_render = 2_000;
/** Labels are short by construction (spec/labels.ts); this only stops a runaway one from widening a column without end. */
const box_chars_max = 72;
const label_chars_max = 48;
const tooltip_chars_max = 1_500;

/** Columns are as far apart as their widest boxes need, and never closer than this. */
const column_gap_min_pt = 150;
const column_padding_pt = 24;
const row_height_pt = 34;
const header_height_pt = 46;
const step_font_pt = 10;
/** Bars of messages waiting on one lifeline at once are this far apart. */
const lane_pt = 7;
/** The lasso's return arrow runs this far left of the first lifeline's widest box (past the time axis). */
const loop_margin_pt = 110;
/** The time axis (live traces), left of the first lifeline's widest box. */
const time_column_pt = 60;
/**
 * Live traces: rows are spaced by the time between them on a log scale, this
 * much more per doubling of the gap (1 ms: 10 pt, 3 ms: 20 pt, 7 ms: 30 pt),
 * never more than `time_gap_max_pt` (reached at 255 ms): a long wait (a vote
 * timeout, a retry after a crash) does not make a huge image; a cut gap says
 * how long it was on the time axis.
 */
const time_pt_per_doubling = 10;
const time_gap_max_pt = 80;
/** Runs of up to this many rows repeated back to back are folded into one block marked "xN". */
const fold_block_max = 4;
/** The legend: below the foot of the lifelines, rows of samples at least this wide. */
const legend_width_min_pt = 520;
const legend_row_pt = 30;

const font = "Helvetica";
const color = {
  lifeline: "#b8bec6",
  actor_fill: "#e8eef7",
  actor_line: "#5b6b80",
  step_fill: "#ffffff",
  step_line: "#5b6b80",
  message: "#1f5fa8",
  lost: "#c0392b",
  early: "#7f8c8d",
  violation_fill: "#fdecea",
  violation_line: "#c0392b",
  loop: "#8e44ad",
  time: "#5b6b80",
  /** A message waiting on its receiver's lifeline. */
  waiting: "#9dbbe0",
  crash_fill: "#f6d5c3",
  crash_line: "#c0392b",
  restart_fill: "#dff3e4",
  restart_line: "#1e8449",
  fence_fill: "#fdf2c4",
  fence_line: "#9a7d0a",
};

/** A row of the diagram: a step, or a block of identical steps folded into one (`fold`). */
type Row = TraceStep & { fold?: Fold };
/** Rows folded into one: how many times the block ran, the steps each row stands for, the time of the last. */
interface Fold {
  times: number;
  steps: number[];
  last_ms?: number;
}
/** A trace as drawn: its rows after folding. */
interface Drawn {
  header: TraceHeader;
  steps: Row[];
}

export function toDot(trace: Trace): string {
  if (trace.steps.length > steps_max_render) {
    throw new Error(
      `trace has ${trace.steps.length} steps; the diagram is limited to ${steps_max_render} (cut the trace to the interesting part)`,
    );
  }
  // A coordinator of another transaction than the trace's own draws on a lifeline of its own (spec/kernel/trace.ts).
  const lined: Trace = { ...trace, steps: trace.steps.map((s) => (s.tx === undefined ? s : { ...s, actor: lifelineOf(s.actor, s.tx, trace.header.tx) })) };
  const t = foldRuns(lined);
  const m = matchMessages(t.steps);
  const actors = lifelines(t, m);
  const col = new Map(actors.map((a, i) => [a, i]));
  const { xs, half } = columns(t, actors, col);
  const lostRow = m.lost.length > 0 ? t.steps.length : -1;
  const footRow = t.steps.length + (lostRow >= 0 ? 1 : 0);
  const ys = rowOffsets(t.steps, footRow);
  const L: Layout = {
    col,
    x: (a) => xs[col.get(a)!]!,
    y: (r) => (r < 0 ? -(header_height_pt - row_height_pt) : -ys[r]!),
    lostRow,
    footRow,
    left: -Math.round(half[0]!),
    right: xs[xs.length - 1]! + Math.round(half[half.length - 1]!),
  };
  const out: string[] = [];
  out.push("digraph trace {");
  out.push(`  graph [layout=neato, inputscale=72, splines=false, overlap=true, outputorder=edgesfirst, fontname=${q(font)}, fontsize=14, labelloc=t, label=${title(t)}, bgcolor="white", pad=0.3];`);
  out.push(`  node [fontname=${q(font)}, fontsize=10, margin="0.12,0.03", height=0.3];`);
  out.push(`  edge [fontname=${q(font)}, fontsize=9, arrowsize=0.7];`);
  out.push("", "  // actors, top and bottom, with the lifeline between");
  for (const a of actors) {
    const c = col.get(a)!;
    out.push(`  ${id(c, "head")} [${pos(L, a, -1)}, ${actorBox(a)}];`);
    out.push(`  ${id(c, "foot")} [${pos(L, a, L.footRow)}, ${actorBox(a)}];`);
    out.push(`  ${id(c, "head")} -> ${id(c, "foot")} [arrowhead=none, penwidth=2, color=${q(color.lifeline)}];`);
  }
  out.push(...timeAxis(t, L), ...stepBoxes(t, m, L), ...messages(t, m, L), ...loopBack(t, L), ...legend(t, m, L));
  out.push("}");
  return out.join("\n") + "\n";
}

/** Where things go: a column per actor (`x`), a row per step (`y`), in points. */
interface Layout {
  col: ReadonlyMap<string, number>;
  x(actor: string): number;
  y(row: number): number;
  /** The row of the "in flight / lost" markers; -1 when nothing was lost. */
  lostRow: number;
  footRow: number;
  /** The left edge of the first column's widest box. */
  left: number;
  /** The right edge of the last column's widest box. */
  right: number;
}

const pos = (L: Layout, actor: string, row: number, dx = 0): string => `pos="${L.x(actor) + dx},${L.y(row)}!"`;

/**
 * Live traces: ms since the trace began, left of the first lifeline, one mark
 * per row (a folded row: its first and last); a gap cut short (rowOffsets)
 * says how long it was, half way between its rows.
 */
function timeAxis(t: Drawn, L: Layout): string[] {
  if (!t.steps.some((s) => s.at_ms !== undefined)) return [];
  const x = L.left - time_column_pt / 2;
  const at = (y: number) => `pos="${x},${y}!", shape=plaintext, fontsize=9, fontcolor=${q(color.time)}`;
  const out = ["", "  // the time axis", `  time_head [${at(L.y(-1))}, label="ms since\\nrequest"];`];
  let prev: number | undefined;
  for (const [r, s] of t.steps.entries()) {
    if (s.at_ms === undefined) continue;
    if (prev !== undefined && timeGapPt(s.at_ms - prev) >= time_gap_max_pt) {
      out.push(`  time_gap_${r} [${at(Math.round((L.y(r - 1) + L.y(r)) / 2))}, label=${q(`(${msText(s.at_ms - prev).slice(1)} ms)`)}];`);
    }
    const last = s.fold?.last_ms;
    out.push(`  time_${r} [${at(L.y(r))}, label=${q(msText(s.at_ms) + (last === undefined ? "" : ".." + msText(last)))}];`);
    prev = last ?? s.at_ms;
  }
  return out;
}

/** The extra height between two rows `dt_ms` apart (live traces): a log scale, capped (time_pt_per_doubling). */
export function timeGapPt(dt_ms: number): number {
  if (!(dt_ms > 0)) return 0;
  return Math.min(time_gap_max_pt, Math.round(time_pt_per_doubling * Math.log2(1 + dt_ms)));
}

/** Each row's distance below the top, in points, up to the foot row: a row height apart, plus the time between them (live). */
function rowOffsets(steps: readonly Row[], footRow: number): number[] {
  const ys: number[] = [];
  let y = header_height_pt;
  let prev: number | undefined;
  for (let r = 0; r <= footRow; r++) {
    const s = steps[r];
    if (r > 0) y += row_height_pt + (s?.at_ms !== undefined && prev !== undefined ? timeGapPt(s.at_ms - prev) : 0);
    ys.push(y);
    if (s?.at_ms !== undefined) prev = s.fold?.last_ms ?? s.at_ms;
  }
  return ys;
}

function stepBoxes(t: Drawn, m: Matching, L: Layout): string[] {
  const out = ["", "  // one row per step (or folded run), on its actor's column"];
  const violation = t.header.violation;
  for (const [r, s] of t.steps.entries()) {
    const last = r === t.steps.length - 1 && violation !== undefined;
    out.push(`  ${id(L.col.get(s.actor)!, r)} [${pos(L, s.actor, r)}, ${stepBox(s, last ? violation : undefined)}];`);
  }
  for (const a of new Set(m.lost.map((l) => l.msg.to))) {
    out.push(`  ${id(L.col.get(a)!, "lost")} [${pos(L, a, L.lostRow)}, shape=box, style="rounded,dashed", color=${q(color.lost)}, fontcolor=${q(color.lost)}, fontsize=9, label="in flight / lost"];`);
  }
  return out;
}

/**
 * A message taken in the next row is one arrow from box to box. One taken
 * later (or never) goes straight across at its sender's row to the
 * receiver's lifeline and waits there: a bar down the lifeline to the box
 * that takes it (or to the "in flight / lost" marker). A long slanted arrow
 * would pass behind the boxes of the rows between and seem to start from one
 * of them. Bars that overlap on one lifeline are set side by side.
 */
function messages(t: Drawn, m: Matching, L: Layout): string[] {
  const out = ["", "  // messages"];
  const lanes = new Lanes();
  /** Straight across from the sender's box to `to`'s lifeline (`arrow`), then down it to the row that takes it (`bar`). */
  const across = (k: string, from: At, to: string, toRow: number, arrow: string, bar: string): void => {
    const w = `wait_${k}`;
    out.push(`  ${w} [${pos(L, to, from.row, lanes.take(to, from.row, toRow) * lane_pt)}, shape=point, width=0.02, style=invis];`);
    out.push(`  ${id(L.col.get(from.actor)!, from.row)} -> ${w} [${arrow}];`);
    out.push(`  ${w} -> ${id(L.col.get(to)!, toRow === L.lostRow ? "lost" : toRow)} [arrowhead=none, ${bar}];`);
  };
  for (const [k, e] of m.matched.entries()) {
    // An arrow whose box already says what it carries stays bare: a label on a long arrow lands beside some other row's box.
    const said = labelText(t.steps[e.to.row]!).includes(e.msg.label);
    const tip = `tooltip=${q(msgTip(e.msg))}`;
    const arrow = `color=${q(color.message)}, fontcolor=${q(color.message)}, ${said ? "" : `label=${q(short(e.msg.label, label_chars_max))}, `}${tip}`;
    if (e.to.row === e.from.row + 1 || e.to.actor === e.from.actor) {
      out.push(`  ${id(L.col.get(e.from.actor)!, e.from.row)} -> ${id(L.col.get(e.to.actor)!, e.to.row)} [${arrow}];`);
    } else {
      across(`m${k}`, e.from, e.to.actor, e.to.row, arrow, `penwidth=4, color=${q(color.waiting)}, ${tip}`);
    }
  }
  for (const [k, l] of m.lost.entries()) {
    const tip = `tooltip=${q("never received: " + msgTip(l.msg))}`;
    const arrow = `style=dashed, color=${q(color.lost)}, fontcolor=${q(color.lost)}, label=${q(short(l.msg.label, label_chars_max))}, ${tip}`;
    across(`l${k}`, l.from, l.msg.to, L.lostRow, arrow, `style=dashed, penwidth=2, color=${q(color.lost)}, ${tip}`);
  }
  for (const [k, e] of m.early.entries()) {
    // The sender's end: a point on its lifeline in the receiving row.
    const from = `early_${k}`;
    out.push(`  ${from} [${pos(L, e.msg.from, e.to.row)}, shape=point, width=0.05, color=${q(color.early)}];`);
    out.push(`  ${from} -> ${id(L.col.get(e.to.actor)!, e.to.row)} [style=dotted, color=${q(color.early)}, fontcolor=${q(color.early)}, label=${q(short(e.msg.label, label_chars_max))}, tooltip=${q("sent before the trace began: " + msgTip(e.msg))}];`);
  }
  return out;
}

/** Side-by-side places for bars on a lifeline: a bar takes the first lane free over its rows. */
class Lanes {
  private readonly ends = new Map<string, number[]>();

  /** The lane (0 = on the lifeline) for a bar from row `from` to row `to` on `actor`'s lifeline. */
  take(actor: string, from: number, to: number): number {
    const ends = this.ends.get(actor) ?? [];
    this.ends.set(actor, ends);
    let lane = ends.findIndex((end) => end < from);
    if (lane < 0) lane = ends.length;
    ends[lane] = to;
    return lane;
  }
}

/**
 * A lasso (header.loop): an arrow up the left margin from the last step back
 * to the step where the cycle starts, or a note that the last state
 * stutters forever.
 */
function loopBack(t: Drawn, L: Layout): string[] {
  const loop = t.header.loop;
  if (loop === undefined) return [];
  const to = t.steps.findIndex((s) => s.step === loop);
  const from = t.steps.length - 1;
  if (to < 0) return [];
  const box = (r: number) => id(L.col.get(t.steps[r]!.actor)!, r);
  // In the left margin, left of the time axis when there is one.
  const at = (r: number) => `pos="${L.left - loop_margin_pt},${L.y(r)}!"`;
  const out = ["", "  // the lasso's cycle: back from the last step to where it started, forever"];
  const mark = `fontcolor=${q(color.loop)}, color=${q(color.loop)}`;
  if (to === from) {
    out.push(`  loop_note [${at(from)}, shape=plaintext, ${mark}, fontsize=9, label="stutters\\nforever"];`);
    out.push(`  ${box(from)} -> loop_note [arrowhead=none, style=dashed, ${mark}];`);
    return out;
  }
  out.push(`  loop_from [${at(from)}, shape=point, width=0.05, ${mark}];`);
  out.push(`  loop_to [${at(to)}, shape=point, width=0.05, ${mark}];`);
  out.push(`  ${box(from)} -> loop_from [arrowhead=none, style=dashed, penwidth=1.5, ${mark}];`);
  out.push(`  loop_from -> loop_to [arrowhead=none, style=dashed, penwidth=1.5, ${mark}, label=${q(`cycle: back to step ${loop}, forever`)}];`);
  out.push(`  loop_to -> ${box(to)} [style=dashed, penwidth=1.5, ${mark}];`);
  return out;
}

/**
 * The WASM Graphviz is loaded by the first call (graphviz-cli keeps one
 * instance for the process); calls that arrive while it loads wait for it,
 * so concurrent first calls do not start one worker each.
 */
let loaded: Promise<unknown> | undefined;

export async function toSvg(t: Trace): Promise<string> {
  const dot = toDot(t);
  if (loaded === undefined) {
    const first = renderGraphFromSource({ input: dot }, { format: "svg", engine: "neato" });
    loaded = first.catch(() => undefined);
    return first;
  }
  await loaded;
  return renderGraphFromSource({ input: dot }, { format: "svg", engine: "neato" });
}

interface At {
  row: number;
  actor: string;
}

interface Matching {
  /** A send and one step that received it (a broadcast gives several). */
  matched: { from: At; to: At; msg: Msg }[];
  /** Sends that no later step received. */
  lost: { from: At; msg: Msg }[];
  /** Receives with no earlier send in the trace. */
  early: { to: At; msg: Msg }[];
}

function matchMessages(steps: TraceStep[]): Matching {
  const sent = new Map<string, { from: At; msg: Msg; received: boolean }[]>();
  const out: Matching = { matched: [], lost: [], early: [] };
  for (const [row, s] of steps.entries()) {
    const here = { row, actor: s.actor };
    // Receives first: a step cannot receive what it sends itself.
    for (const msg of s.receives ?? []) {
      const send = sent.get(msg.id)?.at(-1);
      if (send === undefined) {
        out.early.push({ to: here, msg });
      } else {
        send.received = true;
        out.matched.push({ from: send.from, to: here, msg: send.msg });
      }
    }
    for (const msg of s.sends ?? []) {
      const list = sent.get(msg.id) ?? [];
      list.push({ from: here, msg, received: false });
      sent.set(msg.id, list);
    }
  }
  for (const list of sent.values()) for (const x of list) if (!x.received) out.lost.push({ from: x.from, msg: x.msg });
  out.lost.sort((a, b) => a.from.row - b.from.row);
  return out;
}

/** Two steps draw the same: one actor, one label (their numbers, times and messages aside). */
const sameRow = (a: TraceStep, b: TraceStep): boolean => a.actor === b.actor && labelText(a) === labelText(b);

/**
 * Long runs folded: a block of up to `fold_block_max` rows repeated back to
 * back (a retry loop, a resolver scanning again and again) is drawn once, each
 * box marked `xN`. Never folded: the step that violates the property and a
 * lasso's cycle (from its first step on), whose rows the diagram points at.
 */
function foldRuns(t: Trace): Drawn {
  const steps = t.steps;
  let end = steps.length - (t.header.violation === undefined ? 0 : 1);
  const loop = t.header.loop === undefined ? -1 : steps.findIndex((s) => s.step === t.header.loop);
  if (loop >= 0) end = Math.min(end, loop);
  const out: Row[] = [];
  for (let i = 0; i < steps.length; ) {
    const run = i < end ? longestRun(steps, i, end) : undefined;
    if (run === undefined) {
      out.push(steps[i]!);
      i++;
    } else {
      out.push(...foldRun(steps, i, run.k, run.times));
      i += run.k * run.times;
    }
  }
  return { header: t.header, steps: out };
}

/** The block of `k` rows from `i` repeated the most rows' worth (twice at least) before `end`; the shortest block on a tie. */
function longestRun(steps: readonly TraceStep[], i: number, end: number): { k: number; times: number } | undefined {
  let best: { k: number; times: number } | undefined;
  for (let k = 1; k <= fold_block_max; k++) {
    let times = 1;
    const again = (n: number) => Array.from({ length: k }, (_, p) => p).every((p) => sameRow(steps[i + p]!, steps[i + n * k + p]!));
    while (i + (times + 1) * k <= end && again(times)) times++;
    if (times >= 2 && (best === undefined || times * k > best.times * best.k)) best = { k, times };
  }
  return best;
}

/**
 * The rows of a run folded into its first block. Messages within the run
 * between different repetitions (or within a later one) are left out; every
 * message into or out of the run is kept, on the folded row it came from or
 * went to, so the arrows before and after the run are drawn as they were.
 */
function foldRun(steps: readonly TraceStep[], a: number, k: number, times: number): Row[] {
  const b = a + k * times;
  const rep = (row: number) => Math.floor((row - a) / k);
  const inRun = (row: number) => row >= a && row < b;
  // Each message's sender row (the latest before a receive, as matchMessages takes it) and receiver rows.
  const senders = new Map<string, number[]>();
  const receivers = new Map<string, number[]>();
  for (let row = 0; row < steps.length; row++) {
    for (const msg of steps[row]!.receives ?? []) receivers.set(msg.id, [...(receivers.get(msg.id) ?? []), row]);
    for (const msg of steps[row]!.sends ?? []) senders.set(msg.id, [...(senders.get(msg.id) ?? []), row]);
  }
  const senderOf = (id: string, row: number) => (senders.get(id) ?? []).filter((s) => s < row).at(-1);
  const keepReceive = (id: string, row: number): boolean => {
    const from = senderOf(id, row);
    return from === undefined || !inRun(from) || (rep(from) === 0 && rep(row) === 0);
  };
  const keepSend = (id: string, row: number): boolean => {
    const to = (receivers.get(id) ?? []).filter((r) => r > row && senderOf(id, r) === row);
    return to.length === 0 || to.some((r) => !inRun(r) || (rep(row) === 0 && rep(r) === 0));
  };
  return Array.from({ length: k }, (_, p): Row => {
    const rows = Array.from({ length: times }, (_, n) => a + n * k + p);
    const first = steps[rows[0]!]!;
    const receives = rows.flatMap((row) => (steps[row]!.receives ?? []).filter((msg) => keepReceive(msg.id, row)));
    const sends = rows.flatMap((row) => (steps[row]!.sends ?? []).filter((msg) => keepSend(msg.id, row)));
    const fold: Fold = { times, steps: rows.map((row) => steps[row]!.step) };
    const last_ms = steps[rows[times - 1]!]!.at_ms;
    if (last_ms !== undefined) fold.last_ms = last_ms;
    const row: Row = { ...first, fold };
    if (receives.length > 0) row.receives = receives;
    else delete row.receives;
    if (sends.length > 0) row.sends = sends;
    else delete row.sends;
    return row;
  });
}

/** One sample in the legend: a box drawn as the diagram draws that kind of step, or a short arrow drawn as that kind of message. */
interface LegendItem {
  text: string;
  box?: string;
  edge?: string;
}

/** What each mark means, only for the marks the diagram has: rows of samples below the lifelines' feet. */
function legend(t: Drawn, m: Matching, L: Layout): string[] {
  const items = legendItems(t, m);
  const out = ["", "  // the legend"];
  const width = Math.max(L.right - L.left, legend_width_min_pt);
  const top = L.y(L.footRow) - 44;
  out.push(`  legend_title [pos="${L.left + 22},${top}!", shape=plaintext, fontsize=10, label="legend:"];`);
  let x = L.left + 60;
  let row = 0;
  for (const [k, it] of items.entries()) {
    const w = it.box !== undefined ? textWidth(it.text, 9) + 24 : 40 + textWidth(it.text, 9) + 16;
    if (x + w > L.left + width && x > L.left + 60) {
      x = L.left + 60;
      row++;
    }
    const y = top - row * legend_row_pt;
    if (it.box !== undefined) {
      out.push(`  legend_${k} [pos="${Math.round(x + w / 2)},${y}!", ${it.box}, fontsize=9, label=${q(it.text)}];`);
    } else {
      out.push(`  legend_${k}_a [pos="${Math.round(x)},${y}!", shape=point, width=0.01, style=invis];`);
      out.push(`  legend_${k}_b [pos="${Math.round(x + 36)},${y}!", shape=point, width=0.01, style=invis];`);
      out.push(`  legend_${k}_a -> legend_${k}_b [${it.edge}];`);
      out.push(`  legend_${k} [pos="${Math.round(x + 44 + textWidth(it.text, 9) / 2)},${y}!", shape=plaintext, fontsize=9, label=${q(it.text)}];`);
    }
    x += w + 14;
  }
  return out;
}

function legendItems(t: Drawn, m: Matching): LegendItem[] {
  const kinds = new Set(t.steps.map(stepKind));
  const items: LegendItem[] = [{ text: "step: number. label", box: kindStyle.step }];
  if (kinds.has("crash")) items.push({ text: "crash (kill -9)", box: kindStyle.crash });
  if (kinds.has("restart")) items.push({ text: "restart", box: kindStyle.restart });
  if (kinds.has("fence")) items.push({ text: "fence (epoch, KILL conn, FENCED)", box: kindStyle.fence });
  if (t.header.violation !== undefined) items.push({ text: "violates the property", box: violationStyle });
  if (t.steps.some((s) => s.fold !== undefined)) items.push({ text: "xN: N identical rows folded", box: kindStyle.step });
  if (m.matched.length > 0) items.push({ text: "message", edge: `color=${q(color.message)}` });
  if (m.matched.some((e) => e.to.row !== e.from.row + 1 && e.to.actor !== e.from.actor)) {
    items.push({ text: "waiting to be taken", edge: `arrowhead=none, penwidth=4, color=${q(color.waiting)}` });
  }
  if (m.lost.length > 0) items.push({ text: "never taken", edge: `style=dashed, color=${q(color.lost)}` });
  if (m.early.length > 0) items.push({ text: "sent before the trace", edge: `style=dotted, color=${q(color.early)}` });
  if (t.header.loop !== undefined) items.push({ text: "cycle, forever", edge: `style=dashed, penwidth=1.5, color=${q(color.loop)}` });
  if (t.steps.some((s) => s.at_ms !== undefined)) {
    items.push({ text: `time down the page: log scale, gaps over ${Math.round(2 ** (time_gap_max_pt / time_pt_per_doubling) - 1)} ms cut`, box: `shape=plaintext, fontcolor=${q(color.time)}` });
  }
  return items;
}

/** header.actors first, then everyone else the diagram needs, in order of appearance. */
function lifelines(t: Drawn, m: Matching): string[] {
  const order = [...(t.header.actors ?? [])];
  const seen = new Set(order);
  const add = (a: string) => {
    if (!seen.has(a)) {
      seen.add(a);
      order.push(a);
    }
  };
  const lostAt = groupByRow(m.lost.map((l) => ({ row: l.from.row, actor: l.msg.to })));
  const earlyAt = groupByRow(m.early.map((e) => ({ row: e.to.row, actor: e.msg.from })));
  for (const [row, s] of t.steps.entries()) {
    add(s.actor);
    for (const a of earlyAt.get(row) ?? []) add(a);
    for (const a of lostAt.get(row) ?? []) add(a);
  }
  return order;
}

function groupByRow(xs: At[]): Map<number, string[]> {
  const by = new Map<number, string[]>();
  for (const x of xs) by.set(x.row, [...(by.get(x.row) ?? []), x.actor]);
  return by;
}

function id(column: number, row: number | "head" | "lost" | "foot"): string {
  return `a${column}_${row}`;
}

function actorBox(a: string): string {
  return `shape=box, style="rounded,filled", fillcolor=${q(color.actor_fill)}, color=${q(color.actor_line)}, fontsize=11, label=${q(short(a, label_chars_max))}, tooltip=${q(a)}`;
}

/** A step's label: the one recorded, else its input. */
const labelText = (s: TraceStep): string => s.label ?? inputText(s.input);

/** What a step's box says: its number and label, and how many times it ran when folded (`x3`). */
const boxText = (s: Row): string => `${s.step}. ${short(labelText(s), box_chars_max)}${s.fold === undefined ? "" : `  x${s.fold.times}`}`;

/** What kind of event a step is, for how its box is drawn. */
export type StepKind = "crash" | "restart" | "fence" | "step";

/**
 * A crash (`crash` input: the process's or a shard's kill -9; an answer that
 * says CRASH), a restart, or a fence: the resolver killing a branch's
 * connection (`xa.kill` asked or answered, `KILL ...`), a write refused
 * because its epoch is stale (`FENCED`), or a new epoch (the fencing token).
 */
export function stepKind(s: TraceStep): StepKind {
  const label = labelText(s);
  if (s.input === "crash" || /\bCRASH\b/.test(label)) return "crash";
  if (s.input === "restart") return "restart";
  const input = s.input as { t?: unknown } | null;
  const kills = (typeof input === "object" && input !== null && input.t === "xa.kill") || s.effects.some((e) => (e as { t?: unknown } | null)?.t === "xa.kill");
  return kills || /^KILL |\bFENCED\b|\bnew epoch\b/.test(label) ? "fence" : "step";
}

/** A box's style for each kind: a crash square-cornered with crossed corners, a restart green, a fence amber. */
const kindStyle: Record<StepKind, string> = {
  step: `shape=box, style="rounded,filled", fillcolor=${q(color.step_fill)}, color=${q(color.step_line)}`,
  crash: `shape=box, style="filled,bold,diagonals", penwidth=2, fillcolor=${q(color.crash_fill)}, color=${q(color.crash_line)}, fontcolor=${q(color.crash_line)}`,
  restart: `shape=box, style="rounded,filled,bold", penwidth=2, fillcolor=${q(color.restart_fill)}, color=${q(color.restart_line)}, fontcolor=${q(color.restart_line)}`,
  fence: `shape=box, style="rounded,filled,bold", penwidth=2, fillcolor=${q(color.fence_fill)}, color=${q(color.fence_line)}`,
};
const violationStyle = `shape=box, style="rounded,filled,bold", penwidth=2, fillcolor=${q(color.violation_fill)}, color=${q(color.violation_line)}, fontcolor=${q(color.violation_line)}`;

function stepBox(s: Row, violation: string | undefined): string {
  const text = boxText(s);
  const at = s.at_ms === undefined ? "" : ` at ${msText(s.at_ms)} ms`;
  const folded = s.fold === undefined ? "" : `, ${s.fold.times} times: steps ${s.fold.steps.join(", ")}`;
  const tip = q(clip(`step ${s.step} (${s.actor})${at}${folded}: ${inputText(s.input)}${s.state === undefined ? "" : "\nstate after: " + JSON.stringify(s.state)}`, tooltip_chars_max));
  if (violation === undefined) return `${kindStyle[stepKind(s)]}, label=${q(text)}, tooltip=${tip}`;
  return `${violationStyle}, label=${q(`${text}\nviolates ${short(violation, label_chars_max)}`)}, tooltip=${tip}`;
}

/**
 * Each column's centre and half its widest box, in points: neighbours far
 * enough apart that the widest box on either lifeline does not reach the
 * other one.
 */
function columns(t: Drawn, actors: readonly string[], col: ReadonlyMap<string, number>): { xs: number[]; half: number[] } {
  const half = actors.map((a) => textWidth(short(a, label_chars_max), 11) / 2);
  for (const [r, s] of t.steps.entries()) {
    const c = col.get(s.actor)!;
    const violation = r === t.steps.length - 1 ? t.header.violation : undefined;
    const widest = Math.max(textWidth(boxText(s), step_font_pt), violation === undefined ? 0 : textWidth(`violates ${violation}`, step_font_pt));
    half[c] = Math.max(half[c]!, widest / 2 + 10);
  }
  const xs = [0];
  // Whole points: the DOT stays free of float noise (691.4000000000001).
  for (let c = 1; c < actors.length; c++) xs.push(xs[c - 1]! + Math.round(Math.max(column_gap_min_pt, half[c - 1]! + half[c]! + column_padding_pt)));
  return { xs, half };
}

/**
 * About how wide Helvetica sets `s` at `size_pt`, from coarse per-class
 * widths: a layout estimate (the WASM Graphviz measures the same way, with
 * no font files), erring wide.
 */
function textWidth(s: string, size_pt: number): number {
  let em = 0;
  for (const ch of s) em += /[A-Z]/.test(ch) ? 0.7 : /[a-z0-9]/.test(ch) ? 0.56 : ch === " " ? 0.28 : 0.4;
  return em * size_pt;
}

/** Milliseconds as the time axis shows them: a tenth of a millisecond below a second, whole ones above. */
function msText(ms: number): string {
  return ms < 1_000 ? `+${ms.toFixed(1)}` : `+${Math.round(ms)}`;
}

function title(t: Drawn): string {
  const h = t.header;
  const params = Object.entries(h.params ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const lines = [`${h.model ?? "trace"}${h.mutant === undefined ? "" : ` [mutant ${h.mutant}]`}${params === "" ? "" : "  " + params}`];
  if (h.violation !== undefined) lines.push(`violates ${h.violation}`);
  const outcome = outcomeText(t);
  if (outcome !== undefined) lines.push(outcome);
  if (h.note !== undefined) lines.push(...h.note.split("\n"));
  // Steps are actions taken, as the checker counts them (header.length); without it, every row but the initial state's (a folded row counts every step it stands for).
  const steps = h.length ?? t.steps.reduce((n, s) => n + (s.step > 0 ? (s.fold?.steps.length ?? 1) : 0), 0);
  const facts = [`${h.source} trace`, `${steps} step${steps === 1 ? "" : "s"}`];
  if (h.tx !== undefined) facts.push(`tx ${h.tx}`);
  if (h.started_ms !== undefined) facts.push(`started ${new Date(h.started_ms).toISOString()}`);
  lines.push(facts.join(", "));
  return q(lines.join("\n"));
}

/**
 * The transaction's outcome, as its coordinator replied (the `reply` effect
 * for the header's transaction, else the first one), and for a live trace how
 * long it took: until the reply, and until the last step.
 */
function outcomeText(t: Drawn): string | undefined {
  let reply: { outcome: { status: string; reason?: string }; at_ms?: number } | undefined;
  for (const s of t.steps) {
    for (const e of s.effects as { t?: unknown; tx?: unknown; outcome?: { status: string; reason?: string } }[]) {
      if (e?.t !== "reply" || e.outcome === undefined || (reply !== undefined && e.tx !== t.header.tx)) continue;
      reply = { outcome: e.outcome, at_ms: s.at_ms };
    }
  }
  const ends = t.steps.reduce<number | undefined>((m, s) => (s.at_ms === undefined ? m : Math.max(m ?? 0, s.fold?.last_ms ?? s.at_ms)), undefined);
  const told = reply === undefined ? "no reply in the trace" : `${reply.outcome.status}${reply.outcome.reason === undefined ? "" : ` (${reply.outcome.reason})`}`;
  if (ends === undefined) return reply === undefined ? undefined : `client told ${told}`;
  const replied = reply?.at_ms === undefined ? "" : ` in ${msText(reply.at_ms).slice(1)} ms`;
  return `${told}${replied}, last step at ${msText(ends)} ms`;
}

function msgTip(msg: Msg): string {
  return clip(`${msg.label} (${msg.id}): ${msg.from} -> ${msg.to}`, tooltip_chars_max);
}

function inputText(input: unknown): string {
  if (typeof input === "string") return input;
  return JSON.stringify(input) ?? String(input);
}

/** One line, at most `max` characters (code points, so no emoji is cut in half). */
function short(s: string, max: number): string {
  return clip(s.replace(/\s+/g, " ").trim(), max);
}

function clip(s: string, max: number): string {
  const cps = Array.from(s);
  // ASCII only: the bundled Graphviz has no width for other characters and warns on every render.
  return cps.length <= max ? s : cps.slice(0, max - 3).join("") + "...";
}

/** A DOT double-quoted string. Backslashes are doubled because labels and tooltips read `\n`, `\N`, ... as escapes. */
function q(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\r?\n/g, "\\n").replace(/[\x00-\x1f\x7f]/g, " ")}"`;
}
