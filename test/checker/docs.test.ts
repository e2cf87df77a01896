// docs/checker.md shows the Countdown model as its complete example: it must
// be the file that the tests and the suite run, not a copy that drifts.
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");

describe("docs/checker.md", () => {
  it("shows spec/reference/countdown.ts verbatim", async () => {
    const doc = await readFile(join(root, "docs/checker.md"), "utf8");
    const file = await readFile(join(root, "spec/reference/countdown.ts"), "utf8");
    expect(doc).toContain("```ts\n" + file + "```");
  });
});
