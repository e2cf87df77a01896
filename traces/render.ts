/**
 * A trace drawn as a message sequence diagram (docs/traces.md, "The diagram").
 *
 * Graphviz has no sequence-diagram layout, and `dot` reroutes any edge that
 * does not fit its ranks. So the diagram is laid out here and Graphviz only
 * draws it: `neato` with every node pinned (`pos="x,y!"`, in points) and
 * straight edges. One column per actor, a vertical lifeline from its head to
 * its foot; one row per step, the step's box on its actor's column; message
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
import type { Msg, Trace, TraceStep } from "../spec/kernel/trace.ts";

/** Past this the picture is unreadable anyway. */
const steps_max_render = 2_000;
const input_chars_max = 40;
const label_chars_max = 30;
const tooltip_chars_max = 1_500;

const column_width_pt = 190;
const row_height_pt = 34;
const header_height_pt = 46;

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
};

export function toDot(t: Trace): string {
  if (t.steps.length > steps_max_render) {
    throw new Error(
      `trace has ${t.steps.length} steps; the diagram is limited to ${steps_max_render} (cut the trace to the interesting part)`,
    );
  }
  const m = matchMessages(t.steps);
  const actors = lifelines(t, m);
  const col = new Map(actors.map((a, i) => [a, i]));
  const rows = t.steps.length;
  const lostTargets = new Set(m.lost.map((l) => l.msg.to));
  const lostRow = lostTargets.size > 0 ? rows : -1;
  const footRow = rows + (lostRow >= 0 ? 1 : 0);
  const violation = t.header.violation;
  const x = (c: number) => c * column_width_pt;
  const y = (r: number) => -(header_height_pt + r * row_height_pt);
  const pos = (c: number, r: number) => `pos="${x(c)},${y(r)}!"`;

  const out: string[] = [];
  out.push("digraph trace {");
  out.push(`  graph [layout=neato, inputscale=72, splines=false, overlap=true, outputorder=edgesfirst, fontname=${q(font)}, fontsize=14, labelloc=t, label=${title(t)}, bgcolor="white", pad=0.3];`);
  out.push(`  node [fontname=${q(font)}, fontsize=10, margin="0.12,0.03", height=0.3];`);
  out.push(`  edge [fontname=${q(font)}, fontsize=9, arrowsize=0.7];`);

  out.push("");
  out.push("  // actors, top and bottom, with the lifeline between");
  for (const [i, a] of actors.entries()) {
    out.push(`  ${id(i, "head")} [${pos(i, -1)}, ${actorBox(a)}];`);
    out.push(`  ${id(i, "foot")} [${pos(i, footRow)}, ${actorBox(a)}];`);
    out.push(`  ${id(i, "head")} -> ${id(i, "foot")} [arrowhead=none, penwidth=2, color=${q(color.lifeline)}];`);
  }

  out.push("");
  out.push("  // one row per step, on its actor's column");
  for (const [r, s] of t.steps.entries()) {
    const last = r === rows - 1 && violation !== undefined;
    out.push(`  ${id(col.get(s.actor)!, r)} [${pos(col.get(s.actor)!, r)}, ${stepBox(s, last ? violation : undefined)}];`);
  }
  out.push(...loopBack(t, col, pos));
  if (lostRow >= 0) {
    for (const a of lostTargets) {
      const c = col.get(a)!;
      out.push(`  ${id(c, "lost")} [${pos(c, lostRow)}, shape=box, style="rounded,dashed", color=${q(color.lost)}, fontcolor=${q(color.lost)}, fontsize=9, label="in flight / lost"];`);
    }
  }

  out.push("");
  out.push("  // messages");
  for (const e of m.matched) {
    out.push(`  ${id(col.get(e.from.actor)!, e.from.row)} -> ${id(col.get(e.to.actor)!, e.to.row)} [color=${q(color.message)}, fontcolor=${q(color.message)}, label=${q(short(e.msg.label, label_chars_max))}, tooltip=${q(msgTip(e.msg))}];`);
  }
  for (const l of m.lost) {
    out.push(`  ${id(col.get(l.from.actor)!, l.from.row)} -> ${id(col.get(l.msg.to)!, "lost")} [style=dashed, color=${q(color.lost)}, fontcolor=${q(color.lost)}, label=${q(short(l.msg.label, label_chars_max))}, tooltip=${q("never received: " + msgTip(l.msg))}];`);
  }
  for (const [k, e] of m.early.entries()) {
    // The sender's end: a point on its lifeline in the receiving row.
    const from = `early_${k}`;
    out.push(`  ${from} [${pos(col.get(e.msg.from)!, e.to.row)}, shape=point, width=0.05, color=${q(color.early)}];`);
    out.push(`  ${from} -> ${id(col.get(e.to.actor)!, e.to.row)} [style=dotted, color=${q(color.early)}, fontcolor=${q(color.early)}, label=${q(short(e.msg.label, label_chars_max))}, tooltip=${q("sent before the trace began: " + msgTip(e.msg))}];`);
  }
  out.push("}");
  return out.join("\n") + "\n";
}

/**
 * A lasso (header.loop): an arrow up the left margin from the last step back
 * to the step where the cycle starts, or a note that the last state
 * stutters forever.
 */
function loopBack(t: Trace, col: Map<string, number>, pos: (c: number, r: number) => string): string[] {
  const loop = t.header.loop;
  if (loop === undefined) return [];
  const to = t.steps.findIndex((s) => s.step === loop);
  const from = t.steps.length - 1;
  if (to < 0) return [];
  const box = (r: number) => id(col.get(t.steps[r]!.actor)!, r);
  const margin = -0.6;
  const out = ["", "  // the lasso's cycle: back from the last step to where it started, forever"];
  const mark = `fontcolor=${q(color.loop)}, color=${q(color.loop)}`;
  if (to === from) {
    out.push(`  loop_note [${pos(margin, from)}, shape=plaintext, ${mark}, fontsize=9, label="stutters\\nforever"];`);
    out.push(`  ${box(from)} -> loop_note [arrowhead=none, style=dashed, ${mark}];`);
    return out;
  }
  out.push(`  loop_from [${pos(margin, from)}, shape=point, width=0.05, ${mark}];`);
  out.push(`  loop_to [${pos(margin, to)}, shape=point, width=0.05, ${mark}];`);
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

/** header.actors first, then everyone else the diagram needs, in order of appearance. */
function lifelines(t: Trace, m: Matching): string[] {
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

function stepBox(s: TraceStep, violation: string | undefined): string {
  const at = s.at_ms === undefined ? "" : `  +${s.at_ms} ms`;
  const text = `${s.step}. ${short(inputText(s.input), input_chars_max)}${at}`;
  const tip = q(clip(`step ${s.step} (${s.actor}): ${inputText(s.input)}${s.state === undefined ? "" : "\nstate after: " + JSON.stringify(s.state)}`, tooltip_chars_max));
  if (violation === undefined) {
    return `shape=box, style="rounded,filled", fillcolor=${q(color.step_fill)}, color=${q(color.step_line)}, label=${q(text)}, tooltip=${tip}`;
  }
  return `shape=box, style="rounded,filled,bold", penwidth=2, fillcolor=${q(color.violation_fill)}, color=${q(color.violation_line)}, fontcolor=${q(color.violation_line)}, label=${q(`${text}\nviolates ${short(violation, label_chars_max)}`)}, tooltip=${tip}`;
}

function title(t: Trace): string {
  const h = t.header;
  const params = Object.entries(h.params ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const lines = [`${h.model ?? "trace"}${params === "" ? "" : "  " + params}`];
  if (h.violation !== undefined) lines.push(`violates ${h.violation}`);
  if (h.note !== undefined) lines.push(...h.note.split("\n"));
  const facts = [`${h.source} trace`, `${t.steps.length} step${t.steps.length === 1 ? "" : "s"}`];
  if (h.tx !== undefined) facts.push(`tx ${h.tx}`);
  if (h.started_ms !== undefined) facts.push(`started ${new Date(h.started_ms).toISOString()}`);
  lines.push(facts.join(", "));
  return q(lines.join("\n"));
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
