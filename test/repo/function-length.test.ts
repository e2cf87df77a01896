// Functions short enough to see whole: no function in spec/ over
// FUNCTION_LINES_MAX lines, so that a protocol step reads on one screen.
// Measured from the line a function's body opens to the line it closes,
// nested functions counted in their parent too (a closure that builds a
// role counts its own lines only: see `lengthOf`).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const FUNCTION_LINES_MAX = 75;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : name.endsWith(".ts") ? [p] : [];
  });
}

/** The text with comments, strings and template literals blanked (their braces do not count). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`/g, (m) => m.replace(/[^\n]/g, " "));
}

const OPENS = /(?:\bfunction\*?\s*\w*\s*(?:<[^(]*>)?\s*\([^)]*\)[^{]*|=>\s*|^\s*(?:\*\s*)?(?!(?:if|for|while|switch|catch|with)\b)\w+\s*\([^()]*\)\s*(?::\s*[^{=;]+)?)\{\s*$/;

export interface Span {
  readonly file: string;
  readonly line: number;
  readonly lines: number;
  readonly head: string;
}

/**
 * Each function body in a file: from a line ending in `{` that opens one
 * (a `function`, an arrow, a method) to its closing brace. A body's length
 * leaves out the bodies of the functions defined inside it, so that a role
 * factory, which is a closure over many short functions, counts as the glue
 * it is.
 */
export function functionSpans(file: string): Span[] {
  const lines = code(readFileSync(file, "utf8")).split("\n");
  const spans: Span[] = [];
  const stack: { line: number; depth: number; fn: boolean; inner: number }[] = [];
  let depth = 0;
  lines.forEach((text, i) => {
    for (let c = 0; c < text.length; c++) {
      const ch = text[c];
      if (ch === "{") {
        const fn = c === text.trimEnd().length - 1 && OPENS.test(text.slice(0, c + 1));
        stack.push({ line: i, depth: ++depth, fn, inner: 0 });
      } else if (ch === "}") {
        const open = stack.pop();
        depth--;
        if (open?.fn) {
          const total = i - open.line + 1;
          spans.push({ file: relative(root, file), line: open.line + 1, lines: total - open.inner, head: lines[open.line]!.trim().slice(0, 80) });
          const parent = [...stack].reverse().find((s) => s.fn);
          if (parent !== undefined) parent.inner += total;
        }
      }
    }
  });
  return spans;
}

describe("function length in spec/", () => {
  const spans = filesUnder(join(root, "spec")).flatMap(functionSpans);

  it(`no function body is over ${FUNCTION_LINES_MAX} lines (nested functions counted apart)`, () => {
    expect(spans.filter((s) => s.lines > FUNCTION_LINES_MAX).map((s) => `${s.file}:${s.line} ${s.lines} lines: ${s.head}`)).toEqual([]);
  });

  it("finds function bodies at all (a guard against a pattern that matches nothing)", () => {
    expect(spans.length).toBeGreaterThan(150);
    expect(spans.some((s) => s.head.includes("function world"))).toBe(true);
  });
});
