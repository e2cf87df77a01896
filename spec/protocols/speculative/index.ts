/**
 * The speculative path with undo, as one declared protocol (../protocol.ts):
 * ./coordinator.ts, ./resolver.ts, the settling both share (./settle.ts), the
 * probe (./probe.ts), ./properties.ts and ./model.ts.
 * docs/protocols/speculative.md.
 */
import type { Protocol } from "../protocol.ts";
import { SPECULATIVE_READ_BACK } from "./readback.ts";
import { probeDone, prober, type ProbeState } from "./probe.ts";
import { coordinator, coordinatorDone, type CoordinatorState } from "./coordinator.ts";
import { speculativeFactory } from "./model.ts";
import { speculativeResolverPart } from "./resolver.ts";

export const speculative = {
  name: "speculative",
  title: "the speculative path with undo",
  doc: "docs/protocols/speculative.md",
  traceModel: "speculative.coordinator",
  needs: "local",
  speculates: true,
  coordinator: (s) => coordinator(s),
  done: (st) => coordinatorDone(st as CoordinatorState),
  resolver: speculativeResolverPart,
  records: ["speculation"],
  readBack: SPECULATIVE_READ_BACK,
  probe: { role: (s) => prober(s), done: (st) => probeDone(st as ProbeState) },
  model: speculativeFactory,
} as const satisfies Protocol;
