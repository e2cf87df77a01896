/**
 * The speculative path's shard statements in simulation: spec/env/local.ts
 * shards, each effect executed by its `execute` (the model of what
 * runtime/adapters/local-mysql.ts does against MariaDB), on a SimClock, after
 * a random virtual latency drawn from the seed, as MemoryXa does for XA.
 *
 * A statement is atomic at its completion. Faults: a shard can be crashed and
 * restarted; the coordinator process can crash (crashProcess), after which
 * each of its statements in flight commits or is rolled back with its
 * connection. A statement in flight when its shard crashes answers UNAVAILABLE;
 * the seed decides whether it had committed just before the crash (the
 * vocabulary's "may or may not have taken effect"). While a shard is down
 * every statement answers UNAVAILABLE and changes nothing.
 */
import type { LocalEffect, LocalResult, Op, ShardId, TxId, UndoRowView } from "../../spec/kernel/effects.ts";
import * as local from "../../spec/env/local.ts";
import type { LocalR } from "./local-mysql.ts";
import type { Latency, Rng, SimClock } from "./memory.ts";
import type { LocalExecutor } from "./ports.ts";

interface InFlight {
  readonly shard: ShardId;
  readonly fx: LocalEffect;
  /** The shard crashed while this statement was in flight: it answers UNAVAILABLE (having committed or not). */
  lost: boolean;
}

export class MemoryLocal implements LocalExecutor {
  readonly shards: readonly ShardId[];
  readonly state = new Map<ShardId, local.LocalShard>();
  private readonly inFlight = new Set<InFlight>();
  /** The coordinator process incarnation (crashProcess). */
  private incarnation = 0;

  constructor(
    balances: ReadonlyMap<ShardId, ReadonlyArray<readonly [number, number]>>,
    private readonly clock: SimClock,
    private readonly rng: Rng,
    private readonly latency: Latency = { min_ms: 1, max_ms: 4 },
  ) {
    this.shards = [...balances.keys()];
    for (const [shard, b] of balances) this.state.set(shard, local.initLocal(b));
  }

  private run(fx: LocalEffect): Promise<LocalResult["r"]> {
    const f: InFlight = { shard: fx.shard, fx, lost: false };
    const incarnation = this.incarnation;
    this.inFlight.add(f);
    return new Promise((resolve) =>
      this.clock.setTimer(this.rng.int(this.latency.min_ms, this.latency.max_ms), () => {
        this.inFlight.delete(f);
        const s = this.state.get(fx.shard);
        // A statement of a process that died meanwhile commits, or the shard rolls it back when it drops the dead
        // connection (the seed says); nobody hears either.
        if (s === undefined || f.lost || (incarnation !== this.incarnation && this.rng.next() >= 0.5)) {
          resolve(local.unavailable(fx).r);
          return;
        }
        const o = local.execute(s, fx);
        this.state.set(fx.shard, o.s);
        resolve(o.r.r);
      }),
    );
  }

  apply(tx: TxId, shard: ShardId, ops: readonly Op[], branches: readonly ShardId[]): Promise<LocalR<"local.apply">> {
    return this.run({ t: "local.apply", tx, shard, ops, branches, escrow: true, parts: "both" }) as Promise<LocalR<"local.apply">>;
  }
  tombstone(tx: TxId, shard: ShardId): Promise<LocalR<"local.tombstone">> {
    return this.run({ t: "local.tombstone", tx, shard }) as Promise<LocalR<"local.tombstone">>;
  }
  compensate(tx: TxId, shard: ShardId): Promise<LocalR<"local.compensate">> {
    return this.run({ t: "local.compensate", tx, shard, retire: true }) as Promise<LocalR<"local.compensate">>;
  }
  release(tx: TxId, shard: ShardId): Promise<LocalR<"local.release">> {
    return this.run({ t: "local.release", tx, shard, row: "retire" }) as Promise<LocalR<"local.release">>;
  }
  scan(shard: ShardId): Promise<LocalR<"local.scan">> {
    return this.run({ t: "local.scan", shard }) as Promise<LocalR<"local.scan">>;
  }

  /** The coordinator process died: each of its statements still in flight commits or is rolled back (see run). */
  crashProcess(): void {
    this.incarnation++;
  }

  /** kill -9 of a shard: each statement in flight on it committed just before, or not (the seed says), and answers UNAVAILABLE. */
  crashShard(shard: ShardId): void {
    let s = this.state.get(shard)!;
    for (const f of this.inFlight) {
      if (f.shard !== shard || f.lost) continue;
      f.lost = true;
      if (s.up && this.rng.next() < 0.5) s = local.execute(s, f.fx).s;
    }
    this.state.set(shard, local.crash(s));
  }

  restartShard(shard: ShardId): void {
    this.state.set(shard, local.restart(this.state.get(shard)!));
  }

  /** The conserved quantity: every balance plus every pending credit, over every shard. */
  total(): bigint {
    let sum = 0n;
    for (const s of this.state.values()) for (const [, balance, pending] of s.accounts) sum += BigInt(balance) + BigInt(pending);
    return sum;
  }

  /** The undo rows still in state undo, over every shard (recovery leaves none behind). */
  undoLeft(): UndoRowView[] {
    return [...this.state.values()].flatMap((s) => local.scan(s));
  }
}
