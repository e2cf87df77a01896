/**
 * A protocol model's factory (spec/kernel/model.ts, `ModelFactory`), written
 * once for every protocol that runs in the world (./world.ts): it reads the
 * parameters every such model takes (a named scenario, the fault budget,
 * whether the process restarts, whether the protocol's timers may fire) and
 * the one mutant, and hands them to the protocol's model builder. The XA
 * protocols (spec/protocols/xa/world.ts) and the speculative path
 * (spec/protocols/speculative/model.ts) build on it.
 */
import type { Model, ModelFactory } from "../kernel/model.ts";
import type { Budget, Scenario } from "./types.ts";

type Params = Record<string, string | number | boolean>;

/** What a protocol's model is built from. */
export interface ProtocolModelConfig<M extends string> {
  readonly scenario: Scenario;
  readonly budget: Budget;
  /** The process restarts after a crash (false: it stays down forever); always true for a model without the `restart` parameter. */
  readonly restart: boolean;
  /** The protocol's timers may fire. */
  readonly timeouts: boolean;
  /** Group commit's failures (WorldConfig.logBatch); only for a model with the `logBatch` parameter. */
  readonly logBatch?: "off" | "on" | "acked-unwritten";
  readonly mutant?: M;
}

const LOG_BATCH = ["off", "on", "acked-unwritten"] as const;

export function protocolFactory<M extends string>(p: {
  readonly name: string;
  readonly description: string;
  /** The parameters with their defaults: scenario, crash, shardCrash, logFault, timeouts, and restart if the process may stay down. */
  readonly params: Params;
  /** The named scenarios (the protocol's table). */
  scenario(name: string): Scenario;
  readonly mutants: readonly M[];
  build(cfg: ProtocolModelConfig<M>): Model<any, any>;
}): ModelFactory {
  return {
    name: p.name,
    description: p.description,
    params: p.params,
    mutants: p.mutants,
    build(params, mutant) {
      const m = p.mutants.find((x) => x === mutant);
      if (mutant !== undefined && m === undefined) throw new Error(`${p.name}: unknown mutant '${mutant}' (known: ${p.mutants.join(", ")})`);
      const num = (k: string): number => wholeParam(p.name, params, k);
      return p.build({
        scenario: p.scenario(String(params.scenario)),
        budget: { crash: num("crash"), shardCrash: num("shardCrash"), logFault: num("logFault") },
        restart: "restart" in p.params ? params.restart === true : true,
        timeouts: params.timeouts === true,
        ...("logBatch" in p.params ? { logBatch: logBatchParam(p.name, params.logBatch) } : {}),
        mutant: m,
      });
    },
  };
}

function logBatchParam(model: string, v: unknown): (typeof LOG_BATCH)[number] {
  const found = LOG_BATCH.find((x) => x === v);
  if (found === undefined) throw new Error(`${model}: parameter logBatch must be ${LOG_BATCH.join(", ")} (got ${String(v)})`);
  return found;
}

/** Reads a whole-number parameter of a factory, with a message that says which. */
export function wholeParam(model: string, p: Params, k: string): number {
  const v = p[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`${model}: parameter ${k} must be a whole number >= 0 (got ${String(v)})`);
  return v;
}
