/** Each fixed case of cases.ts, against the XA shard model and a real MariaDB (see ../xa-harness.ts). */
import { afterAll, beforeAll, describe, it } from "vitest";
import { RealShard, Run } from "../xa-harness.ts";
import { cases } from "./cases.ts";

describe("XA model regressions against a real MariaDB", () => {
  let real: RealShard;
  beforeAll(async () => {
    real = await RealShard.start();
  });
  afterAll(async () => {
    await real?.stop();
  });

  for (const c of cases) {
    it(c.name, async () => {
      await new Run(real).execute(c.cmds);
    });
  }
});
