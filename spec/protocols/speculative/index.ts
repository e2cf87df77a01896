/**
 * The speculative path with undo, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, ./resolver.ts, the settling both share (./settle.ts), the
 * probe (./probe.ts), ./properties.ts and ./model.ts.
 * docs/protocols/speculative.md.
 */
import { declareProtocol } from "../declare.ts";
import { SPECULATIVE_READ_BACK } from "./readback.ts";
import * as probe from "./probe.ts";
import * as roles from "./coordinator.ts";
import { speculativeFactory } from "./model.ts";
import { speculativeResolverPart } from "./resolver.ts";
import { speculativeEventually, speculativeInvariants } from "./properties.ts";

export const speculative = declareProtocol({
  name: "speculative",
  title: "the speculative path with undo",
  doc: "docs/protocols/speculative.md",
  needs: "local",
  speculates: true,
  roles,
  resolver: speculativeResolverPart,
  records: ["speculation"],
  readBack: SPECULATIVE_READ_BACK,
  probe,
  properties: {
    invariants: (sc, budget) => {
      if (budget === undefined) throw new Error("the speculative path's invariants read the fault budget: pass it");
      return speculativeInvariants(sc, budget);
    },
    eventually: speculativeEventually,
    ends: "every_speculation_ends",
  },
  model: speculativeFactory,
});
