/** Keeping only some of a model's properties (`--property`): shared by run.ts and the worker threads, which rebuild the model. */
import type { Model } from "../spec/kernel/model.ts";
import { UserError } from "./errors.ts";

/** The model with only the named properties, of every kind (all of them when `names` is undefined). */
export function onlyProperties<S, A>(model: Model<S, A>, names: readonly string[] | undefined): Model<S, A> {
  if (names === undefined) return model;
  const known = [model.invariants, model.eventually, model.leadsTo, model.eventuallyAlways].flatMap((r) => Object.keys(r ?? {}));
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) throw new UserError(`${model.name} has no property ${unknown.join(", ")}; its properties are: ${known.join(", ")}`);
  const pick = <T>(r: Readonly<Record<string, T>>): Record<string, T> => Object.fromEntries(Object.entries(r).filter(([k]) => names.includes(k)));
  return {
    ...model,
    invariants: pick(model.invariants),
    ...(model.eventually ? { eventually: pick(model.eventually) } : {}),
    ...(model.leadsTo ? { leadsTo: pick(model.leadsTo) } : {}),
    ...(model.eventuallyAlways ? { eventuallyAlways: pick(model.eventuallyAlways) } : {}),
  };
}
