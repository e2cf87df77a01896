/**
 * Reading and writing traces as NDJSON (format.ts, docs/traces.md): the first
 * line is `{"header":{...}}`, then one JSON object per step, every line ended
 * by "\n".
 *
 * Parsing is strict because a trace crosses a boundary (the checker, the
 * runtime and people write them; the renderer and trace validation read
 * them): an unknown field, a missing one or a step out of sequence is an
 * error that names the line, never something silently dropped. Formatting
 * checks its own output with the same rules, so a trace that `formatTrace`
 * accepts always parses back.
 */
import { readFile, writeFile } from "node:fs/promises";
import { makeDirsSync } from "./dirs.ts";
import { dirname } from "node:path";
import type { Msg, Trace, TraceHeader, TraceStep } from "../spec/kernel/trace.ts";

export function formatTrace(t: Trace): string {
  const lines = [JSON.stringify({ header: orderedHeader(t.header) })];
  for (const s of t.steps) lines.push(JSON.stringify(orderedStep(s)));
  // Checking the output (not the input) also catches what JSON cannot carry,
  // such as an `input` that is undefined and would vanish from the line.
  checkLines(lines, "formatTrace: line");
  return lines.map((l) => l + "\n").join("");
}

export function parseTrace(text: string): Trace {
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  // The last line's "\n" leaves one empty string behind; nothing else may be empty.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return checkLines(lines, "line");
}

export async function writeTrace(path: string, t: Trace): Promise<void> {
  const text = formatTrace(t);
  makeDirsSync(dirname(path));
  await writeFile(path, text, "utf8");
}

export async function readTrace(path: string): Promise<Trace> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`${path}: no such file`, { cause: e });
    if (code === "EISDIR") throw new Error(`${path}: is a directory, not a trace file`, { cause: e });
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return parseTrace(text);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Decodes every line; `where` prefixes the 1-based line number in errors. */
function checkLines(lines: string[], where: string): Trace {
  const first = lines[0];
  if (first === undefined) throw new Error(`${where} 1: empty trace: the first line must be the header {"header":{...}}`);
  const header = decodeHeaderLine(parseJson(first, `${where} 1`), `${where} 1`);
  const steps: TraceStep[] = [];
  for (let i = 1; i < lines.length; i++) {
    const at = `${where} ${i + 1}`;
    const step = decodeStep(parseJson(lines[i]!, at), at);
    const prev = steps[steps.length - 1];
    if (prev === undefined ? step.step > 1 : step.step !== prev.step + 1) {
      const expected = prev === undefined ? "0 or 1" : String(prev.step + 1);
      throw new Error(`${at}: step ${step.step} out of sequence: expected step ${expected}`);
    }
    steps.push(step);
  }
  if (header.loop !== undefined && !steps.some((s) => s.step === header.loop)) {
    throw new Error(`${where} 1: header.loop names step ${header.loop}, which the trace does not have`);
  }
  return { header, steps };
}

function parseJson(line: string, at: string): unknown {
  if (line.trim() === "") throw new Error(`${at}: empty line (NDJSON has one JSON object per line)`);
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new Error(`${at}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

const headerKeys = ["source", "model", "mutant", "params", "actors", "violation", "length", "note", "loop", "tx", "started_ms", "trace_id"] as const;
const stepKeys = ["step", "actor", "tx", "input", "label", "effects", "sends", "receives", "state", "at_ms"] as const;
const msgKeys = ["id", "from", "to", "label"] as const;
const sources: readonly TraceHeader["source"][] = ["checker", "simulation", "runtime"];

function decodeHeaderLine(v: unknown, at: string): TraceHeader {
  const line = record(v, at, "the header line");
  if (!("header" in line)) {
    throw new Error(`${at}: the first line must be the header {"header":{...}}, got keys ${keyList(line)}`);
  }
  onlyKeys(line, ["header"], at, "the header line");
  const h = record(line.header, at, "header");
  onlyKeys(h, headerKeys, at, "header");
  if (!sources.includes(h.source as TraceHeader["source"])) {
    throw new Error(`${at}: header.source must be one of ${sources.map((s) => JSON.stringify(s)).join(", ")}, got ${show(h.source)}`);
  }
  const out: TraceHeader = { source: h.source as TraceHeader["source"] };
  if ("model" in h) out.model = str(h.model, at, "header.model");
  if ("params" in h) {
    const p = record(h.params, at, "header.params");
    for (const [k, x] of Object.entries(p)) {
      if (typeof x !== "string" && typeof x !== "boolean" && !(typeof x === "number" && Number.isFinite(x))) {
        throw new Error(`${at}: header.params.${k} must be a string, number or boolean, got ${show(x)}`);
      }
    }
    out.params = p as Record<string, string | number | boolean>;
  }
  if ("actors" in h) out.actors = strList(h.actors, at, "header.actors");
  if ("mutant" in h) out.mutant = str(h.mutant, at, "header.mutant");
  if ("violation" in h) out.violation = str(h.violation, at, "header.violation");
  if ("length" in h) {
    if (!Number.isSafeInteger(h.length) || (h.length as number) < 0) throw new Error(`${at}: header.length must be a step count (a non-negative integer), got ${show(h.length)}`);
    out.length = h.length as number;
  }
  if ("note" in h) out.note = str(h.note, at, "header.note");
  if ("loop" in h) {
    if (!Number.isSafeInteger(h.loop) || (h.loop as number) < 0) throw new Error(`${at}: header.loop must be a step number (a non-negative integer), got ${show(h.loop)}`);
    out.loop = h.loop as number;
  }
  if ("tx" in h) out.tx = str(h.tx, at, "header.tx");
  if ("started_ms" in h) out.started_ms = nonNegative(h.started_ms, at, "header.started_ms");
  if ("trace_id" in h) {
    const id = str(h.trace_id, at, "header.trace_id");
    if (!/^[0-9a-f]{32}$/.test(id) || /^0+$/.test(id)) throw new Error(`${at}: header.trace_id must be a W3C trace id (32 lowercase hex digits, not all zero), got ${show(h.trace_id)}`);
    out.trace_id = id;
  }
  return out;
}

function decodeStep(v: unknown, at: string): TraceStep {
  const s = record(v, at, "a step");
  if ("header" in s) throw new Error(`${at}: a second header; only the first line may be a header`);
  onlyKeys(s, stepKeys, at, "a step");
  for (const k of ["step", "actor", "input", "effects"] as const) {
    if (!(k in s)) throw new Error(`${at}: a step needs "${k}" (it has ${keyList(s)})`);
  }
  if (!Number.isSafeInteger(s.step) || (s.step as number) < 0) {
    throw new Error(`${at}: step must be a non-negative integer, got ${show(s.step)}`);
  }
  const out: TraceStep = {
    step: s.step as number,
    actor: str(s.actor, at, "actor"),
    input: s.input,
    effects: list(s.effects, at, "effects"),
  };
  if ("tx" in s) out.tx = str(s.tx, at, "tx");
  if ("label" in s) out.label = str(s.label, at, "label");
  if ("sends" in s) out.sends = msgList(s.sends, at, "sends");
  if ("receives" in s) out.receives = msgList(s.receives, at, "receives");
  if ("state" in s) out.state = s.state;
  if ("at_ms" in s) out.at_ms = nonNegative(s.at_ms, at, "at_ms");
  return out;
}

function msgList(v: unknown, at: string, what: string): Msg[] {
  return list(v, at, what).map((m, i) => {
    const r = record(m, at, `${what}[${i}]`);
    onlyKeys(r, msgKeys, at, `${what}[${i}]`);
    const out = {} as Msg;
    for (const k of msgKeys) {
      if (!(k in r)) throw new Error(`${at}: ${what}[${i}] needs "${k}" (a message has id, from, to, label)`);
      out[k] = str(r[k], at, `${what}[${i}].${k}`);
    }
    return out;
  });
}

/** Builds the header with keys in a fixed order, so files diff well and read the same way. */
function orderedHeader(h: TraceHeader): TraceHeader {
  const out: Record<string, unknown> = {};
  for (const k of headerKeys) if (h[k] !== undefined) out[k] = h[k];
  for (const k of Object.keys(h)) if (!(k in out)) out[k] = (h as unknown as Record<string, unknown>)[k];
  return out as unknown as TraceHeader;
}

function orderedStep(s: TraceStep): TraceStep {
  const out: Record<string, unknown> = {};
  for (const k of stepKeys) if (k in s && (k === "input" || s[k] !== undefined)) out[k] = s[k];
  for (const k of Object.keys(s)) if (!(k in out)) out[k] = (s as unknown as Record<string, unknown>)[k];
  return out as unknown as TraceStep;
}

function record(v: unknown, at: string, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new Error(`${at}: ${what} must be a JSON object, got ${show(v)}`);
  }
  return v as Record<string, unknown>;
}

function onlyKeys(r: Record<string, unknown>, allowed: readonly string[], at: string, what: string): void {
  for (const k of Object.keys(r)) {
    if (!allowed.includes(k)) {
      throw new Error(`${at}: unknown field "${k}" in ${what} (allowed: ${allowed.join(", ")})`);
    }
  }
}

function str(v: unknown, at: string, what: string): string {
  if (typeof v !== "string") throw new Error(`${at}: ${what} must be a string, got ${show(v)}`);
  return v;
}

function list(v: unknown, at: string, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${at}: ${what} must be an array, got ${show(v)}`);
  return v;
}

function strList(v: unknown, at: string, what: string): string[] {
  return list(v, at, what).map((x, i) => str(x, at, `${what}[${i}]`));
}

function nonNegative(v: unknown, at: string, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new Error(`${at}: ${what} must be a non-negative number, got ${show(v)}`);
  }
  return v;
}

function keyList(r: Record<string, unknown>): string {
  const ks = Object.keys(r);
  return ks.length === 0 ? "no keys" : ks.map((k) => `"${k}"`).join(", ");
}

/** A short rendering of a bad value for an error message. */
function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}
