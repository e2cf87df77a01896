/**
 * 2PC with presumed abort, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, the XA resolver it shares with parallel commit
 * (../xa/resolver.ts), ./properties.ts and ./model.ts. docs/protocols/2pc.md.
 */
import { declareProtocol } from "../declare.ts";
import { XA_READ_BACK } from "../xa/readback.ts";
import { xaResolverPart } from "../xa/resolver.ts";
import * as roles from "./coordinator.ts";
import { twopcFactory } from "./model.ts";
import { twopcEventually, twopcInvariants } from "./properties.ts";

export const twopc = declareProtocol({
  name: "2pc",
  title: "2PC with presumed abort",
  doc: "docs/protocols/2pc.md",
  needs: "xa",
  roles,
  resolver: xaResolverPart,
  records: ["decision"],
  readBack: XA_READ_BACK,
  properties: { invariants: (sc) => twopcInvariants(sc), eventually: twopcEventually, ends: "AC5_terminates" },
  model: twopcFactory,
});
