/**
 * The resolver one server process runs: every resolver part the registry
 * names (../protocols/registry.ts, RESOLVER_PARTS: the XA resolver, which
 * finishes 2PC and parallel commit alike, then the speculative path's), one
 * after the other on every scan, under ONE process epoch.
 *
 * Why one role and not one instance per part: each part takes a new process
 * epoch when it boots, and a second epoch fences every write of the first
 * (EpochRecord), so two of them in one process would fence each other in
 * turn. This role takes the epoch once (the same CAS on EPOCH_KEY the parts
 * make) and hands it to each; a part that meets a newer epoch (FENCED) resets
 * itself to `start()`, and this role then takes a new epoch at the next
 * scan, for all.
 *
 * Why one after the other: a `log.list` answer does not say which prefix it
 * lists, so two scans running at once could not be told apart. It also keeps
 * a scan's load on the shards to one statement at a time, as each part alone
 * does.
 *
 * Decisions are the parts' own: this role only routes. Each part sees exactly
 * the inputs it would see alone (a scan, then the answers to its own
 * effects), only later: the `active` set is taken when the scan starts, and
 * later parts reuse it. That set is older than a later part's listing, which
 * is safe for the reason every part waits for a second sighting before it
 * acts on a transaction: the NEXT scan's set, taken after this listing, is
 * what must cover a live coordinator.
 *
 * It also says whether its last scan was complete (the log listed by every
 * part, every shard answered every part's scan): the server is ready once
 * one was (GET /ready), and counts them (speccommit_resolver_scans_total).
 *
 * The role is pure: see spec/kernel/role.ts.
 */
import type { Role, Step } from "../kernel/role.ts";
import { EPOCH_KEY, type Effect, type Result, type ShardId, type TxId } from "../kernel/effects.ts";
import type { ResolverInput, ResolverLike, ResolverPart } from "../protocols/protocol.ts";

export interface ProcessResolverState {
  /** idle between scans; booting while taking the epoch; scanning while part `at` scans. */
  readonly phase: "idle" | "booting" | "scanning";
  readonly epoch: number | null;
  readonly active: readonly TxId[];
  readonly at: number;
  readonly parts: readonly ResolverLike[];
  /** What answered in the scan under way: log listings, and the shards each kind of part reached. */
  readonly answered: { readonly lists: number; readonly xa: readonly ShardId[]; readonly local: readonly ShardId[] };
  /** Whether the last scan that ended was complete; null before the first. */
  readonly lastScan: "complete" | "partial" | null;
}

export const processEpochOf = (st: ProcessResolverState): number | null => st.epoch;

/** What a resolver effect does, as the part that asks for it names it (the metrics' `action` label); null for reads. */
export const resolverActionOf = (parts: readonly ResolverPart[], e: Effect): string | null => parts.reduce<string | null>((found, p) => found ?? p.actionOf(e), null);

type Out = Step<ProcessResolverState, Effect>;
const NOTHING: ProcessResolverState["answered"] = { lists: 0, xa: [], local: [] };

/** The shard kind a result comes from, or null for the txlog and timers. */
const kindOf = (r: Result): "xa" | "local" | null => (r.t.startsWith("xa.") ? "xa" : r.t.startsWith("local.") ? "local" : null);

/**
 * Deliberate bugs of the composition the server model must catch:
 * stale-active, later parts scan with an empty `active` set (they would take
 * a live transaction for an abandoned one); first-part-only, a scan runs the
 * first part alone (what is left of the others' transactions is never
 * finished).
 */
export const processResolverMutants = ["stale-active", "first-part-only"] as const;
export type ProcessResolverMutant = (typeof processResolverMutants)[number];

export function processResolver(opts: {
  readonly shards: readonly ShardId[];
  readonly parts: readonly ResolverPart[];
  readonly mutant?: ProcessResolverMutant;
}): Role<ProcessResolverState, ResolverInput, Effect> {
  const roles = (opts.mutant === "first-part-only" ? opts.parts.slice(0, 1) : opts.parts).map((p) => p.role(opts.shards));
  const start = (): ProcessResolverState => ({ phase: "idle", epoch: null, active: [], at: 0, parts: roles.map((r) => r.start()), answered: NOTHING, lastScan: null });

  /** A part fenced (it forgot its epoch): the process must take a new one. */
  const lostEpoch = (st: ProcessResolverState): ProcessResolverState => ({ ...start(), lastScan: "partial" });

  const complete = (st: ProcessResolverState): boolean =>
    st.answered.lists >= roles.length && opts.parts.slice(0, roles.length).every((p) => opts.shards.every((s) => st.answered[p.needs].includes(s)));

  /** Part `at` starts its scan (and the ones after it, as each finishes at once). */
  function startPart(st: ProcessResolverState, at: number, effects: Effect[]): Out {
    // Between scans nothing of the last one is kept but its verdict, so that a scan which changes nothing ends where it started.
    if (at >= roles.length) return { st: { ...st, phase: "idle", at: 0, answered: NOTHING, lastScan: complete(st) ? "complete" : "partial" }, effects };
    const active = opts.mutant === "stale-active" && at > 0 ? [] : st.active;
    const sub = roles[at]!.step({ ...st.parts[at]!, epoch: st.epoch }, { t: "scan", active });
    return afterPart({ ...st, phase: "scanning", at, parts: st.parts.map((p, i) => (i === at ? sub.st : p)) }, [...effects, ...sub.effects]);
  }

  function afterPart(st: ProcessResolverState, effects: Effect[]): Out {
    const part = st.parts[st.at]!;
    if (part.epoch === null) return { st: lostEpoch(st), effects };
    if (part.phase !== "idle") return { st, effects };
    return startPart(st, st.at + 1, effects);
  }

  /** Counts what answered, for `lastScan`. */
  function note(st: ProcessResolverState, r: Result): ProcessResolverState {
    const a = st.answered;
    if (r.t === "log.list" && r.r.ok) return { ...st, answered: { ...a, lists: a.lists + 1 } };
    if (r.t === "xa.recover" && r.r.ok && !a.xa.includes(r.shard)) return { ...st, answered: { ...a, xa: [...a.xa, r.shard] } };
    if (r.t === "local.scan" && r.r.ok && !a.local.includes(r.shard)) return { ...st, answered: { ...a, local: [...a.local, r.shard] } };
    return st;
  }

  function boot(st: ProcessResolverState, input: Result): Out {
    if (input.t === "log.list") {
      if (!input.r.ok) return { st: { ...st, phase: "idle", answered: NOTHING, lastScan: "partial" }, effects: [] };
      const version = input.r.entries.find((e) => e.key === EPOCH_KEY)?.version ?? 0;
      return { st, effects: [{ t: "log.put", key: EPOCH_KEY, value: { kind: "epoch" }, ifVersion: version }] };
    }
    if (input.t === "log.put" && input.key === EPOCH_KEY) {
      // Another process took the epoch first, or the log did not answer: try again next scan.
      if (!input.r.ok) return { st: { ...st, phase: "idle", answered: NOTHING, lastScan: "partial" }, effects: [] };
      return startPart({ ...st, epoch: input.r.version }, 0, []);
    }
    return { st, effects: [] };
  }

  function step(st: ProcessResolverState, input: ResolverInput): Out {
    if (input.t === "scan") {
      if (st.phase !== "idle") return { st, effects: [] };
      const next: ProcessResolverState = { ...st, active: [...input.active].sort(), answered: NOTHING };
      if (st.epoch === null) return { st: { ...next, phase: "booting" }, effects: [{ t: "log.list", prefix: EPOCH_KEY }] };
      return startPart(next, 0, []);
    }
    if (st.phase === "idle") return { st, effects: [] };
    if (st.phase === "booting") return boot(st, input);
    // A result of another kind of shard than the scanning part's is a late answer nobody waits for.
    const kind = kindOf(input);
    if (kind !== null && kind !== opts.parts[st.at]!.needs) return { st, effects: [] };
    const noted = note(st, input);
    const sub = roles[st.at]!.step(noted.parts[st.at]!, input);
    return afterPart({ ...noted, parts: noted.parts.map((p, i) => (i === st.at ? sub.st : p)) }, sub.effects);
  }

  return { start, step };
}
