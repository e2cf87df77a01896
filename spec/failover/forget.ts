/**
 * When a coordinator node may be forgotten: its `members/N` key deleted, so
 * that survivors stop watching it, its lease and safe time stop counting
 * (spec/time/cluster.ts), and the deadlock detectors stop giving it a turn
 * (docs/protocols/failover.md, "Leaving"). Pure; runtime/failover.ts
 * interprets it.
 *
 * - A node that stops cleanly (drained: no coordinator of it was cut short
 *   at the end of the grace period, whose effects could still land after the
 *   check; its lease about to be revoked) forgets itself only when nothing
 *   of its own is in doubt: no record in its namespace, no prepared branch,
 *   no undo row of its xids. Otherwise it stays a member, and a survivor
 *   takes over what it left, as after a crash.
 * - A survivor that owns a dead node (its takeover role is `owning`) forgets
 *   it once its resolver has settled everything (the node's fence taken and
 *   nothing in doubt in its namespace), and only while the node's lease is
 *   still gone: the runtime makes the delete conditional on `alive/N` being
 *   absent, in one etcd transaction with the delete of the claim `owners/N`.
 *   A node forgotten while merely hung registers again when it takes a new
 *   lease (it writes `alive/N` first, then `members/N`, so that a forget
 *   racing it either sees the lease and does nothing, or runs before both
 *   writes).
 * - Unknown (null: the namespace or a shard could not be read): never.
 */
export function mayForgetSelf(o: { readonly drained: boolean; readonly inDoubt: number | null }): boolean {
  return o.drained && o.inDoubt === 0;
}

export function mayForgetOwned(o: { readonly owning: boolean; readonly fenced: boolean; readonly inDoubt: number | null }): boolean {
  return o.owning && o.fenced && o.inDoubt === 0;
}
