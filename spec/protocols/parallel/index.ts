/**
 * Parallel commit, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, the XA resolver it shares with 2PC (../xa/resolver.ts),
 * ./properties.ts and ./model.ts. docs/protocols/parallel-commit.md.
 */
import { declareProtocol } from "../declare.ts";
import { XA_READ_BACK } from "../xa/readback.ts";
import { xaResolverPart } from "../xa/resolver.ts";
import * as roles from "./coordinator.ts";
import { parallelFactory } from "./model.ts";
import { parallelEventually, parallelInvariants } from "./properties.ts";

export const parallel = declareProtocol({
  name: "parallel",
  title: "parallel commit",
  doc: "docs/protocols/parallel-commit.md",
  needs: "xa",
  roles,
  resolver: xaResolverPart,
  records: ["staging", "decision"],
  readBack: XA_READ_BACK,
  // Its commit*(t) (implicit*(t) or decision*(t) = commit) is 2PC's decision*(t) = commit for a transaction that writes no STAGING.
  properties: { invariants: (sc) => parallelInvariants(sc), eventually: parallelEventually, ends: "AC5_terminates", statesFamily: true },
  model: parallelFactory,
});
