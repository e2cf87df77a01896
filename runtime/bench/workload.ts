/**
 * The benchmark's transfers: TPC-B-like, one amount from one account to
 * another. A share of them cross shards (the two accounts on different
 * shards), the rest stay on one shard; a share of accounts is drawn from a
 * small hot set per shard, so that 2PC's row locks held through the decision
 * show. Every client draws from its own seeded stream: a run is repeatable.
 *
 * Amounts are integer cents and go on the wire as JSON integers of cents;
 * each is within the server's DELTA_CENTS_MAX, so a JS number carries it
 * exactly.
 */
import type { BranchSpec } from "../../spec/kernel/effects.ts";
import { DELTA_CENTS_MAX, groupBranches } from "../transfer.ts";

export interface ShardRange {
  readonly name: string;
  readonly firstAccountId: number;
  readonly lastAccountId: number;
}

export interface WorkloadOptions {
  readonly shards: readonly ShardRange[];
  /** 0..1: share of transfers whose two accounts are on different shards (needs 2 shards or more). */
  readonly crossShardShare: number;
  /** 0..1: share of account draws that pick from the hot set. */
  readonly hotShare: number;
  /** Size of the hot set: the first `hotAccounts` accounts of every shard. */
  readonly hotAccounts: number;
  readonly amountCentsMin: number;
  readonly amountCentsMax: number;
  readonly seed: number;
  /**
   * 0..1: share of transfers that are made to fail on one shard (the
   * mis-speculation scenario): cross-shard, with `failingAmountCents` as the
   * amount. Absent or 0: none, and the streams are exactly those of a
   * workload without the field.
   */
  readonly failingShare?: number;
  /**
   * The amount of a failing transfer: more than all the money of the
   * cluster, so its debit fails with insufficient funds whatever the
   * balances, while its credit on the other shard applies (speculative: a
   * branch applied, then compensated).
   */
  readonly failingAmountCents?: number;
}

export interface TransferOp {
  readonly shard_id: string;
  readonly account_id: number;
  /** Integer cents. */
  readonly delta: number;
}

export interface Transfer {
  readonly ops: readonly TransferOp[];
}

/** One XA branch of a transfer: its shard and its ops sorted by account, exactly as the server groups them (runtime/transfer.ts). */
export type Branch = BranchSpec;

export function validateWorkload(w: WorkloadOptions): void {
  if (w.shards.length === 0) throw new Error("workload: no shards");
  for (const s of w.shards) {
    if (!(Number.isSafeInteger(s.firstAccountId) && s.lastAccountId > s.firstAccountId)) {
      throw new Error(`workload: shard ${s.name} needs at least 2 accounts (has ${s.firstAccountId}..${s.lastAccountId})`);
    }
  }
  if (w.crossShardShare > 0 && w.shards.length < 2) throw new Error("workload: a cross-shard share above 0 needs 2 shards or more");
  const smallest = Math.min(...w.shards.map((s) => s.lastAccountId - s.firstAccountId + 1));
  if (w.hotShare > 0 && (w.hotAccounts < 2 || w.hotAccounts > smallest)) {
    throw new Error(`workload: the hot set must have 2 to ${smallest} accounts (accounts of the smallest shard), got ${w.hotAccounts}`);
  }
  if (!(Number.isSafeInteger(w.amountCentsMin) && w.amountCentsMin >= 1 && Number.isSafeInteger(w.amountCentsMax) && w.amountCentsMax >= w.amountCentsMin && w.amountCentsMax <= DELTA_CENTS_MAX)) {
    throw new Error(`workload: amounts must be integer cents with 1 <= min <= max <= ${DELTA_CENTS_MAX} (the server's limit; got ${w.amountCentsMin}..${w.amountCentsMax})`);
  }
  const failing = w.failingShare ?? 0;
  if (!(failing >= 0 && failing <= 1)) throw new Error(`workload: the failing share must be from 0 to 1 (got ${failing})`);
  if (failing > 0) {
    if (w.shards.length < 2) throw new Error("workload: failing transfers cross shards: they need 2 shards or more");
    if (!(Number.isSafeInteger(w.failingAmountCents) && w.failingAmountCents! >= 1 && w.failingAmountCents! <= DELTA_CENTS_MAX)) {
      throw new Error(`workload: failing transfers need an amount in integer cents from 1 to ${DELTA_CENTS_MAX} (the server's limit; got ${w.failingAmountCents})`);
    }
  }
}

/** mulberry32: small, fast, seeded (a run's choices repeat), good enough to spread transfers and pick chaos victims. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stream of transfers for one client. */
export function transferStream(w: WorkloadOptions, client: number): () => Transfer {
  validateWorkload(w);
  const random = rng(w.seed * 1_000_003 + client);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const account = (s: ShardRange) => {
    const last = random() < w.hotShare ? s.firstAccountId + w.hotAccounts - 1 : s.lastAccountId;
    return int(s.firstAccountId, last);
  };
  const failingShare = w.failingShare ?? 0;
  return () => {
    // Drawn only when failing transfers are asked for, so that other workloads keep their streams.
    const failing = failingShare > 0 && random() < failingShare;
    const from = w.shards[int(0, w.shards.length - 1)]!;
    let to = from;
    if (failing || random() < w.crossShardShare) {
      const other = int(0, w.shards.length - 2);
      to = w.shards[other >= w.shards.indexOf(from) ? other + 1 : other]!;
    }
    const a = account(from);
    let b = account(to);
    // Bounded: with two or more candidates, each redraw differs from `a` with probability >= 1/2.
    for (let i = 0; to === from && b === a && i < 64; i++) b = account(to);
    if (to === from && b === a) b = a === from.firstAccountId ? a + 1 : a - 1;
    const amount = failing ? w.failingAmountCents! : int(w.amountCentsMin, w.amountCentsMax);
    return {
      ops: [
        { shard_id: from.name, account_id: a, delta: -amount },
        { shard_id: to.name, account_id: b, delta: amount },
      ],
    };
  };
}

/** The XA branches of a transfer, grouped exactly as the server groups them (runtime/transfer.ts groupBranches). */
export function branchesOf(t: Transfer): Branch[] {
  return groupBranches(t.ops.map((op) => ({ shard: op.shard_id, account: op.account_id, cents: BigInt(op.delta) })));
}
