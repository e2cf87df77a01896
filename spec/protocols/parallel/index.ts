/**
 * Parallel commit, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, the XA resolver it shares with 2PC (../xa/resolver.ts),
 * ./properties.ts and ./model.ts. docs/protocols/parallel-commit.md.
 */
import type { Protocol } from "../protocol.ts";
import { XA_READ_BACK } from "../xa/readback.ts";
import { xaResolverPart } from "../xa/resolver.ts";
import { coordinator, coordinatorDone, type CoordinatorState } from "./coordinator.ts";
import { parallelFactory } from "./model.ts";

export const parallel = {
  name: "parallel",
  title: "parallel commit",
  doc: "docs/protocols/parallel-commit.md",
  traceModel: "parallel.coordinator",
  needs: "xa",
  speculates: false,
  coordinator: (s) => coordinator(s),
  done: (st) => coordinatorDone(st as CoordinatorState),
  resolver: xaResolverPart,
  records: ["staging", "decision"],
  readBack: XA_READ_BACK,
  model: parallelFactory,
} as const satisfies Protocol;
