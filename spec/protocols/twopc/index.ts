/**
 * 2PC with presumed abort, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, the XA resolver it shares with parallel commit
 * (../xa/resolver.ts), ./properties.ts and ./model.ts. docs/protocols/2pc.md.
 */
import type { Protocol } from "../protocol.ts";
import { XA_READ_BACK } from "../xa/readback.ts";
import { xaResolverPart } from "../xa/resolver.ts";
import { coordinator, coordinatorDone, type CoordinatorState } from "./coordinator.ts";
import { twopcFactory } from "./model.ts";

export const twopc = {
  name: "2pc",
  title: "2PC with presumed abort",
  doc: "docs/protocols/2pc.md",
  traceModel: "twopc.coordinator",
  needs: "xa",
  speculates: false,
  coordinator: (s) => coordinator(s),
  done: (st) => coordinatorDone(st as CoordinatorState),
  resolver: xaResolverPart,
  records: ["decision"],
  readBack: XA_READ_BACK,
  model: twopcFactory,
} as const satisfies Protocol;
