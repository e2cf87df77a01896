// npm run bench:checker's command line (checker/bench.ts parseBenchArgs): defaults, each option, and every wrong
// value refused with a message naming it (the script prints it with the usage and exits 2, test/runtime/bench-cli.test.ts).
import { describe, expect, it } from "vitest";
import { parseBenchArgs } from "../../checker/bench.ts";
import { UserError } from "../../checker/errors.ts";

describe("bench:checker options", () => {
  it("defaults, and each option read", () => {
    expect(parseBenchArgs([])).toEqual({ rms: [7, 8, 9], workers: [1, 2], protocols: "all", rounds: 1, encoders: true, scaling: true, scalingMax: 300_000, spin: "auto" });
    const o = parseBenchArgs(["--rm", "none", "--workers", "1,2,4", "--protocols", "twopc,parallel", "--rounds", "3", "--encoders", "none", "--scaling", "none", "--scaling-max-distinct", "1000", "--spin", "off"]);
    expect(o).toEqual({ rms: [], workers: [1, 2, 4], protocols: "twopc,parallel", rounds: 3, encoders: false, scaling: false, scalingMax: 1000, spin: "off" });
    expect(parseBenchArgs(["--rm", "3,5"]).rms).toEqual([3, 5]);
  });

  it("refuses what it does not know, with the option named", () => {
    const bad: Array<[string[], RegExp]> = [
      [["--bogus", "1"], /unknown option --bogus/],
      [["--rm", "2"], /--rm 2: expected integers from 3 to 12/],
      [["--rm", "7,x"], /--rm 7,x/],
      [["--workers", "0"], /--workers 0/],
      [["--rounds"], /--rounds needs a value/],
      [["--rounds", "--rm"], /--rounds needs a value/],
      [["--rounds", "1.5"], /--rounds 1.5/],
      [["--encoders", "yes"], /the only value is none/],
      [["--spin", "maybe"], /--spin maybe: auto or off/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseBenchArgs(argv), argv.join(" ")).toThrow(UserError);
      expect(() => parseBenchArgs(argv), argv.join(" ")).toThrow(message);
    }
  });
});
