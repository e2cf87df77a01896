/**
 * Chaos on real processes (issue 11, section C): N coordinators
 * (`speccommit serve --node nI`), 3 etcd members and 3 MariaDB shards under a
 * closed-loop load from the failing-over client (chaos-client.ts); one fault
 * at a time, every few seconds: kill -9 of a coordinator, an etcd member or
 * a shard (the kinds in turn, the member of the kind drawn at random), then
 * its restart; once per run (first) a partition of one etcd member and one
 * coordinator from the rest, then its healing. Then the audit (audit.ts):
 * total conserved, no branch left prepared, no decision record left in
 * etcd, every acknowledged transfer applied exactly once, in-doubt ones all
 * or nothing, and no idempotency key answered two ways (replayed).
 *
 * The partition is real where network namespaces are usable (root, `ip`):
 * the isolated etcd member and coordinator run inside a namespace joined by a
 * veth pair (runtime/cluster/netns.ts), the partition sets the link down and
 * the heal up again (PARTITION_NETNS). Elsewhere it falls back to a
 * stand-in, SIGSTOP/SIGCONT of both (PARTITION_SIGSTOP), and the report's
 * partition_method says which ran and why. Used by `npm run bench --
 * --chaos` (chaosMain) and by test/chaos/chaos.test.ts (runChaos).
 */
import { readFileSync } from "node:fs";
import { loadavg, cpus } from "node:os";
import { Etcd3 } from "etcd3";
import type { ShardAddress } from "../adapters/mysql-pool.ts";
import { XID_FORMAT_ID } from "../adapters/xa-mysql.ts";
import { startEphemeralCluster, type ClusterComponent, type EphemeralCluster } from "../cluster/cluster.ts";
import { createPartitionLink, netnsUnusable, type PartitionLink } from "../cluster/netns.ts";
import { addressesOfCluster } from "../main.ts";
import { ShardPool } from "../adapters/mysql-pool.ts";
import { detachBranch } from "../detach.ts";
import { auditHistory, preparedBranches, totalCents, waitSettled, type HistoryAudit, type Settled } from "./audit.ts";
import { ChaosTarget } from "./chaos-client.ts";
import { runLoad, type LoadResult } from "./load.ts";
import { rng, type WorkloadOptions } from "./workload.ts";
import { writableFileProblem } from "./cli.ts";

export const PARTITION_NETNS =
  "a real network partition: the isolated etcd member and coordinator run in their own network namespace, joined to the rest " +
  "by a veth pair (10.213.x.y/30); the partition sets the link down, the heal sets it up. Both sides keep running meanwhile: " +
  "the isolated coordinator's writes race (its etcd member alone has no quorum; its shard sessions stay open, their TCP " +
  "connections silent, until a survivor kills them after the fence).";

/** The stand-in where network namespaces cannot be used (`why`: netns.ts netnsUnusable's answer). */
export const partitionSigstop = (why: string): string =>
  `SIGSTOP/SIGCONT of the isolated etcd member and coordinator, a STAND-IN for a network partition, because network namespaces are not usable here (${why}). ` +
  "A frozen member misses heartbeats and the rest elect without it, as when cut off; a frozen coordinator's clients time out and retry elsewhere, " +
  "and it resumes later with its old view, as after a heal; unlike a real partition, the isolated processes do not run (no writes of theirs race while cut off).";

const ETCD_MEMBERS = 3;
/** The etcd member the partition isolates (0-based): etcd3. */
const ISOLATED_MEMBER = 2;
const SHARDS = 3;
const PREFIX = "chaos/";
const SETTLE_POLL_MS = 100;
const SETTLE_WATCH_MAX_MS = 60_000;
const AVAILABILITY_BUCKET_MS = 500;
const REPLAY_KEYS_MAX = 300;
const FINAL_SETTLE_MS = 60_000;

export interface ChaosOptions {
  coordinators: number;
  durationMs: number;
  clients: number;
  /** Pause between two faults. */
  faultEveryMs: number;
  /** How long a killed server stays down before its restart. */
  downMs: number;
  /** How long the partition lasts. */
  partitionMs: number;
  accountsPerShard: number;
  seed: number;
  log: (line: string) => void;
  /** "auto" (default): a real partition when network namespaces are usable, else the SIGSTOP stand-in; "sigstop": the stand-in always. */
  partitionMethod?: "auto" | "sigstop";
  /** Keep the partition up to this much longer than partitionMs while what the isolated node held prepared at the cut is not all settled (default 0). */
  partitionHoldMs?: number;
}

export interface FaultEvent {
  kind: "kill" | "partition";
  /** What was hit: coord2, etcd1, shard-c; or "etcd3+coord3" for the partition. */
  target: string;
  /** ms since the load started. */
  at_ms: number;
  /** Down (or partitioned) for this long, restart included. */
  down_ms: number;
  /** A coordinator's kill: branches prepared just after it, and (when there were some) the time from the kill until none of them was left prepared. */
  orphans?: number;
  settled_after_ms?: number | null;
  /** While it lasted: the share of AVAILABILITY_BUCKET_MS buckets with a committed or aborted answer, and how many such answers. */
  accepting_share?: number;
  definite_answers?: number;
  /** The partition: committed or aborted answers the isolated coordinator gave while cut off (none can cross a cut link). */
  isolated_answers?: number;
  /** The partition: ms from the cut to the start of the heal (down_ms also counts the heal itself). */
  cut_ms?: number;
  /** The partition: the isolated node's branches prepared just after the cut, and the ms from the cut until none of them was (null: not before the heal). */
  isolated_prepared_at_cut?: number;
  isolated_settled_ms?: number | null;
}

export interface ChaosReport {
  coordinators: number;
  etcd_members: number;
  shards: number;
  duration_ms: number;
  clients: number;
  partition_method: string;
  loadavg_start: number[];
  loadavg_end: number[];
  cpus: number;
  answers: { committed: number; aborted: number; in_doubt: number; lost: number; aborts: Record<string, number>; lost_reasons: Record<string, number> };
  /** The failing-over client: transfers answered after more than one attempt, attempts beyond the first, transfers no coordinator answered in time. */
  failover: { transfers_retried: number; extra_attempts: number; no_answer: number };
  in_doubt: { answered: number; settled: number; settle_ms_p50: number | null; settle_ms_max: number | null };
  faults: FaultEvent[];
  /** Share of AVAILABILITY_BUCKET_MS buckets of the load with at least one committed or aborted answer. */
  accepting_share: number;
  longest_gap_ms: number;
  coordinator_death_to_settled_ms: number[];
  /** From the coordinators' logs (every incarnation): takeovers and shard sessions killed (spec/failover/takeover.ts rule 5: prepared branches, undo rows, fence rows), by the node taken over. */
  takeovers: Record<string, number>;
  sessions_killed: Record<string, number>;
  audit: {
    total_before_cents: string;
    total_after_cents: string;
    conserved: boolean;
    settled: Settled;
    decision_records_left: number;
    keys_replayed: number;
    keys_answered_two_ways: string[];
    history: HistoryAudit;
    passed: boolean;
  };
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The prepared branches of ours on the shards that answer ("shard|gtrid"). */
async function preparedNow(shards: readonly ShardAddress[]): Promise<Set<string>> {
  const lists = await Promise.all(shards.map((s) => preparedBranches([s], XID_FORMAT_ID).catch(() => [] as string[])));
  return new Set(lists.flat());
}

/** Polls until none of `orphans` is prepared (a shard that does not answer counts as still holding its own); the ms it took, or null past the bound. */
async function settledAfter(shards: readonly ShardAddress[], orphans: ReadonlySet<string>, since: number): Promise<number | null> {
  while (performance.now() - since < SETTLE_WATCH_MAX_MS) {
    const lists = await Promise.all(shards.map((s) => preparedBranches([s], XID_FORMAT_ID).then((l) => l, () => null)));
    const left = [...orphans].filter((o) => {
      const list = lists[shards.findIndex((s) => o.startsWith(`${s.name}|`))];
      return list === null || list === undefined || list.includes(o);
    });
    if (left.length === 0) return Math.round(performance.now() - since);
    await sleep(SETTLE_POLL_MS);
  }
  return null;
}

/**
 * `serve` flags of coordinator i: its node name, the shared prefix, short
 * timeouts, a resolver scan every 250 ms; the cross-shard deadlock detector
 * on n1 only (several polling the same shards freeze InnoDB's lock-wait view
 * for each other, and for a survivor looking for a hung node's sessions:
 * docs/operations.md, "Cross-shard deadlocks").
 */
export function chaosServeArgs(i: number): string[] {
  return [
    "--node", `n${i + 1}`,
    ...(i > 0 ? ["--deadlock-interval-ms", "0"] : []),
    "--etcd-prefix", PREFIX,
    "--resolver-interval-ms", "250",
    "--etcd-timeout-ms", "500",
    "--statement-timeout-ms", "2000",
    "--retry-delay-ms", "50",
    "--shutdown-grace-ms", "2000",
  ];
}

interface Faults {
  events: FaultEvent[];
  watchers: Array<Promise<void>>;
}

/** One kill -9 and restart of `c`; for a coordinator, a watcher of the branches it left prepared. */
async function killAndRestart(c: ClusterComponent, shards: readonly ShardAddress[], t0: number, o: ChaosOptions, f: Faults): Promise<void> {
  const at = performance.now();
  await c.kill9();
  const ev: FaultEvent = { kind: "kill", target: c.name, at_ms: Math.round(at - t0), down_ms: 0 };
  f.events.push(ev);
  if (c.kind === "coordinator") {
    const orphans = await preparedNow(shards);
    ev.orphans = orphans.size;
    // With none prepared at its death there is nothing to settle, and no figure.
    if (orphans.size > 0) f.watchers.push(settledAfter(shards, orphans, at).then((ms) => void (ev.settled_after_ms = ms)));
  }
  await sleep(o.downMs);
  await c.restart();
  ev.down_ms = Math.round(performance.now() - at);
  o.log(`chaos: kill -9 ${c.name} at ${ev.at_ms} ms, back after ${ev.down_ms} ms${ev.orphans !== undefined ? ` (${ev.orphans} branches prepared at its death)` : ""}`);
}

/** The partition: the veth link down and up after partitionMs (link), or the stand-in, SIGSTOP and SIGCONT of the member and the coordinator. */
async function partition(member: ClusterComponent, coord: ClusterComponent, link: PartitionLink | undefined, shards: readonly ShardAddress[], t0: number, o: ChaosOptions, f: Faults): Promise<void> {
  const node = `n${coord.name.slice("coord".length)}`;
  const isolatedPrepared = async () => [...(await preparedNow(shards))].filter((b) => b.split("|")[1]!.startsWith(`${node}.`));
  // Cut while the isolated node holds prepared branches (bounded: about a second of looking), so that there is something of it to settle.
  for (let i = 0; i < 50 && (await isolatedPrepared()).length === 0; i++) await sleep(20);
  const at = performance.now();
  const pids = [member.pid, coord.pid];
  if (link !== undefined) await link.cut();
  else for (const pid of pids) process.kill(pid, "SIGSTOP");
  let atCut: string[] = [];
  let settledMs: number | null = null;
  let cutMs = 0;
  try {
    // Cut off, it cannot finish these itself; a survivor that took it over must (detaching them from its sessions first).
    atCut = await isolatedPrepared();
    const held = () => settledMs === null && atCut.length > 0 && performance.now() - at < o.partitionMs + (o.partitionHoldMs ?? 0);
    while (performance.now() - at < o.partitionMs || held()) {
      if (settledMs === null && atCut.length > 0) {
        const now = new Set(await isolatedPrepared());
        if (atCut.every((b) => !now.has(b))) settledMs = Math.round(performance.now() - at);
      }
      await sleep(held() ? 100 : Math.min(100, Math.max(0, o.partitionMs - (performance.now() - at))));
    }
  } finally {
    cutMs = Math.round(performance.now() - at);
    if (link !== undefined) await link.heal();
    else for (const pid of pids) process.kill(pid, "SIGCONT");
  }
  const ev: FaultEvent = {
    cut_ms: cutMs,
    kind: "partition",
    target: `${member.name}+${coord.name}`,
    at_ms: Math.round(at - t0),
    down_ms: Math.round(performance.now() - at),
    isolated_prepared_at_cut: atCut.length,
    isolated_settled_ms: atCut.length > 0 ? settledMs : null,
  };
  f.events.push(ev);
  o.log(`chaos: partition of ${ev.target} (${link !== undefined ? `veth ${link.ns} down` : "SIGSTOP"}) at ${ev.at_ms} ms, healed (${link !== undefined ? "link up" : "SIGCONT"}) after ${ev.down_ms} ms`);
}

/**
 * Faults one at a time until `over()`, one starting every faultEveryMs (or
 * as soon as the previous one is over, when it took longer): the partition
 * first (it lasts partitionMs, whatever the machine's load), then etcd
 * member, shard, coordinator in turn (a random one of each); a coordinator
 * comes last in a round since its restart is the slowest (a node process
 * loading the server: 5-40 s on a loaded 2-core machine).
 */
async function faultLoop(cluster: EphemeralCluster, shards: readonly ShardAddress[], link: PartitionLink | undefined, t0: number, o: ChaosOptions, over: () => boolean): Promise<Faults> {
  const f: Faults = { events: [], watchers: [] };
  const random = rng(o.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const kinds = [
    () => pick(["etcd1", "etcd2", "etcd3"]),
    () => pick(["shard-a", "shard-b", "shard-c"]),
    () => `coord${1 + Math.floor(random() * o.coordinators)}`,
  ];
  let n = 0;
  let partitioned = false;
  let last = performance.now();
  while (!over()) {
    await sleep(Math.max(0, o.faultEveryMs - (performance.now() - last)));
    if (over()) break;
    last = performance.now();
    if (!partitioned) {
      partitioned = true;
      await partition(cluster.component(`etcd${ISOLATED_MEMBER + 1}`), cluster.component(`coord${o.coordinators}`), link, shards, t0, o, f);
      continue;
    }
    await killAndRestart(cluster.component(kinds[n++ % kinds.length]!()), shards, t0, o, f);
  }
  return f;
}

/** Share of buckets with a definite answer, and the longest run of empty buckets. */
function availability(definiteAt: readonly number[], t0: number, t1: number): { share: number; gap: number } {
  const buckets = Math.max(1, Math.ceil((t1 - t0) / AVAILABILITY_BUCKET_MS));
  const hit = new Array<boolean>(buckets).fill(false);
  for (const t of definiteAt) {
    const i = Math.floor((t - t0) / AVAILABILITY_BUCKET_MS);
    if (i >= 0 && i < buckets) hit[i] = true;
  }
  let gap = 0;
  let run = 0;
  for (const h of hit) {
    run = h ? 0 : run + 1;
    gap = Math.max(gap, run);
  }
  return { share: hit.filter((h) => h).length / buckets, gap: gap * AVAILABILITY_BUCKET_MS };
}

/** Decision records still in etcd under the prefix (every namespace): each one is a transaction not finished. */
async function decisionRecordsLeft(cluster: EphemeralCluster): Promise<number> {
  const etcd = new Etcd3({ hosts: cluster.etcdMembers.map((m) => m.clientUrl), dialTimeout: 2_000 });
  try {
    const deadline = performance.now() + FINAL_SETTLE_MS / 2;
    for (;;) {
      const keys = await etcd.getAll().prefix(PREFIX).keys();
      const left = keys.filter((k) => /(^|\/)tx\//.test(k.slice(PREFIX.length))).length;
      if (left === 0 || performance.now() > deadline) return left;
      await sleep(250);
    }
  } finally {
    etcd.close();
  }
}

/** Diagnostics of branches left prepared: whether each is attached to a session (and from where), and the coordinators' log lines naming it. */
async function describeLeftovers(shards: readonly ShardAddress[], left: readonly string[], cluster: EphemeralCluster, o: ChaosOptions): Promise<void> {
  for (const b of left.slice(0, 5)) {
    const [shard, tx] = b.split("|") as [string, string];
    const address = shards.find((s) => s.name === shard);
    if (address === undefined) continue;
    const pool = new ShardPool(address, { connections_max: 4, waiters_max: 4, acquire_timeout_ms: 2_000, connect_timeout_ms: 2_000, statement_timeout_ms: 5_000 });
    try {
      const d = await detachBranch(pool, tx, true);
      o.log(`chaos: left prepared ${b}: ${d.outcome === "failed" ? d.why : d.outcome}`);
    } finally {
      pool.close();
    }
    for (const c of cluster.coordinators) {
      let text = "";
      try {
        text = readFileSync(c.record.outputPath, "utf8");
      } catch {
        continue;
      }
      for (const line of text.split("\n").filter((l) => l.includes(tx) || l.includes("not detached")).slice(-12)) o.log(`chaos:   ${c.name}: ${line.slice(0, 400)}`);
      try {
        const t = await (await fetch(`${c.url}/transactions/${encodeURIComponent(tx)}`, { signal: AbortSignal.timeout(5_000) })).text();
        const m = await (await fetch(`${c.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
        const lines = m.split("\n").filter((l) => /^speccommit_(in_doubt_transactions|resolver_scans_total|prepared_branches|takeover_sessions_killed_total|protocol_violations_total)/.test(l));
        o.log(`chaos:   ${c.name} GET /transactions: ${t.slice(0, 300)}; ${lines.join("; ")}`);
      } catch (e) {
        o.log(`chaos:   ${c.name}: ${(e as Error).message}`);
      }
    }
  }
}

/** Takeovers and sessions killed, counted from every coordinator's log file (appended across restarts), by the node taken over. */
function coordinatorLogs(cluster: EphemeralCluster): { takeovers: Record<string, number>; killed: Record<string, number> } {
  const takeovers: Record<string, number> = {};
  const killed: Record<string, number> = {};
  for (const c of cluster.coordinators) {
    let text = "";
    try {
      text = readFileSync(c.record.outputPath, "utf8");
    } catch {
      continue;
    }
    for (const m of text.matchAll(/ took over node (\S+) \(/g)) takeovers[m[1]!] = (takeovers[m[1]!] ?? 0) + 1;
    for (const m of text.matchAll(/ killed node (\S+)'s session /g)) killed[m[1]!] = (killed[m[1]!] ?? 0) + 1;
  }
  return { takeovers, killed };
}

const pct = (xs: number[], p: number) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!);

/** Everything up again (a fault in progress at the end, a stopped process, a cut link): link up, SIGCONT and restart what is down. */
async function healAll(cluster: EphemeralCluster, link: PartitionLink | undefined, o: ChaosOptions): Promise<void> {
  if (link?.isCut === true) await link.heal();
  const names = [...cluster.etcdMembers.map((_, i) => `etcd${i + 1}`), "shard-a", "shard-b", "shard-c", ...cluster.coordinators.map((c) => c.name)];
  for (const name of names) {
    const c = cluster.component(name);
    if (c.alive()) {
      process.kill(c.pid, "SIGCONT");
      continue;
    }
    o.log(`chaos: ${name} was down at the end; restarting it`);
    await c.restart();
  }
}

/** Runs one chaos run on a fresh cluster and returns its report; the cluster is stopped and removed afterwards. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const loadavg_start = loadavg();
  const why = o.partitionMethod === "sigstop" ? "asked for (--partition sigstop)" : await netnsUnusable(o.log);
  const link = why === null ? await createPartitionLink() : undefined;
  const partition_method = link !== undefined ? PARTITION_NETNS : partitionSigstop(why!);
  o.log(`chaos: partition method: ${partition_method}`);
  let cluster: EphemeralCluster;
  try {
    cluster = await startEphemeralCluster({
      shards: SHARDS,
      accountsPerShard: o.accountsPerShard,
      etcdMembers: ETCD_MEMBERS,
      lockWaitTimeoutS: 1,
      ...(link !== undefined ? { partition: { link, etcdMember: ISOLATED_MEMBER } } : {}),
    });
  } catch (e) {
    await link?.remove();
    throw e;
  }
  try {
    // The last coordinator is the one the partition isolates, with etcd member ISOLATED_MEMBER: inside the namespace.
    const coords = await cluster.startCoordinators(o.coordinators, chaosServeArgs, (i) => i === o.coordinators - 1);
    if (link !== undefined) o.log(`chaos: netns ${link.ns}: etcd${ISOLATED_MEMBER + 1} and coord${o.coordinators} inside on ${link.nsIp}, the rest reached at ${link.rootIp}`);
    o.log(`chaos: ${ETCD_MEMBERS} etcd members, ${SHARDS} shards, ${coords.length} coordinator(s) at ${coords.map((c) => c.url).join(", ")}`);
    const shards = addressesOfCluster(cluster.describe()).shards;
    const workload: WorkloadOptions = {
      shards: cluster.describe().shards.map((s) => ({ name: s.name, firstAccountId: s.firstAccountId, lastAccountId: s.lastAccountId })),
      crossShardShare: 0.5,
      hotShare: 0.05,
      hotAccounts: 50,
      amountCentsMin: 1,
      amountCentsMax: 500,
      seed: o.seed,
    };
    const since_us = Date.now() * 1000;
    const before = await totalCents(shards);
    const client = new ChaosTarget({ urls: coords.map((c) => c.url), keyPrefix: `chaos-${Date.now()}`, requestTimeoutMs: 5_000, transferTimeoutMs: 30_000, retryDelayMs: 100 });
    const t0 = performance.now();
    let stop = false;
    const load: Promise<LoadResult> = runLoad({ target: client, workload, clients: o.clients, warmupMs: 0, durationMs: o.durationMs, backoffMs: 100, stop: () => stop });
    let faults: Faults;
    try {
      faults = await faultLoop(cluster, shards, link, t0, o, () => performance.now() - t0 > o.durationMs - o.faultEveryMs);
    } finally {
      const rest = o.durationMs - (performance.now() - t0);
      if (rest > 0) await sleep(rest);
      stop = true;
    }
    const result = await load;
    const t1 = performance.now();
    await healAll(cluster, link, o);
    await Promise.all(faults.watchers);
    await client.settleInDoubt();
    const settled = await waitSettled(shards, [XID_FORMAT_ID], FINAL_SETTLE_MS);
    if (!settled.settled) await describeLeftovers(shards, settled.prepared, cluster, o);
    const decision_records_left = await decisionRecordsLeft(cluster);
    const replay = await client.replayKeys(REPLAY_KEYS_MAX);
    await client.close();
    const after = await totalCents(shards);
    const history = await auditHistory(shards, [result.ledger], since_us);
    const l = result.ledger;
    const settleMs = client.inDoubt.filter((r) => r.settledAt !== undefined).map((r) => Math.round(r.settledAt! - r.answeredAt));
    const avail = availability(client.definiteAt, t0, t1);
    for (const ev of faults.events) {
      const from = t0 + ev.at_ms;
      const to = from + ev.down_ms;
      ev.accepting_share = availability(client.definiteAt, from, to).share;
      ev.definite_answers = client.definiteAt.filter((t) => t >= from && t < to).length;
      if (ev.kind === "partition") {
        const isolated = coords[coords.length - 1]!.url;
        // Counted from 1 s after the cut (an answer that arrived just before it may be recorded late: the client's event loop
        // lags under load) until the heal began (answers recorded later may have crossed the healed link).
        ev.isolated_answers = client.definiteAt.filter((t, i) => t >= from + 1_000 && t < from + (ev.cut_ms ?? ev.down_ms) && client.definiteUrl[i] === isolated).length;
      }
    }
    const logs = coordinatorLogs(cluster);
    const passed = before === after && settled.settled && decision_records_left === 0 && replay.mismatches.length === 0 && history.problems_total === 0;
    return {
      coordinators: o.coordinators,
      etcd_members: ETCD_MEMBERS,
      shards: SHARDS,
      duration_ms: Math.round(t1 - t0),
      clients: o.clients,
      partition_method,
      loadavg_start,
      loadavg_end: loadavg(),
      cpus: cpus().length,
      answers: { committed: l.committed.size, aborted: l.aborted.size, in_doubt: l.inDoubt.size, lost: l.unknown, aborts: result.aborts, lost_reasons: result.unknown },
      failover: client.failover,
      in_doubt: { answered: client.inDoubt.length, settled: settleMs.length, settle_ms_p50: pct(settleMs, 0.5), settle_ms_max: pct(settleMs, 1) },
      faults: faults.events,
      accepting_share: avail.share,
      longest_gap_ms: avail.gap,
      takeovers: logs.takeovers,
      sessions_killed: logs.killed,
      coordinator_death_to_settled_ms: faults.events.flatMap((e) => (e.settled_after_ms !== undefined && e.settled_after_ms !== null ? [e.settled_after_ms] : [])),
      audit: {
        total_before_cents: before.toString(),
        total_after_cents: after.toString(),
        conserved: before === after,
        settled,
        decision_records_left,
        keys_replayed: replay.replayed,
        keys_answered_two_ways: replay.mismatches,
        history,
        passed,
      },
    };
  } finally {
    await cluster.stop();
    await link?.remove();
  }
}

const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");

/** The report as text. */
export function formatChaos(r: ChaosReport): string {
  const a = r.answers;
  const kills = r.faults.filter((f) => f.kind === "kill");
  const byKind = (p: string) => kills.filter((f) => f.target.startsWith(p)).length;
  const coordKills = kills.filter((f) => f.target.startsWith("coord"));
  return [
    `chaos: ${r.coordinators} coordinator(s), ${r.etcd_members} etcd members, ${r.shards} shards, ${r.clients} clients, ${(r.duration_ms / 1000).toFixed(1)} s of load; load average ${fmtLoad(r.loadavg_start)} -> ${fmtLoad(r.loadavg_end)} on ${r.cpus} CPUs`,
    `  faults: ${kills.length} kill -9 + restart (${byKind("coord")} coordinator, ${byKind("etcd")} etcd member, ${byKind("shard")} shard), ${r.faults.length - kills.length} partition`,
    ...r.faults.map((f) => `    ${f.kind === "kill" ? "kill -9" : "partition"} ${f.target} at ${f.at_ms} ms: ${f.down_ms} ms until back; meanwhile ${f.definite_answers ?? "-"} committed or aborted answers, some coordinator accepting ${f.accepting_share === undefined ? "-" : `${(f.accepting_share * 100).toFixed(0)}%`} of the time${f.isolated_answers !== undefined ? `; ${f.isolated_answers} answers from the isolated coordinator while cut off; of its ${f.isolated_prepared_at_cut} branches prepared at the cut, ${f.isolated_prepared_at_cut === 0 ? "-" : f.isolated_settled_ms === null || f.isolated_settled_ms === undefined ? "NOT all settled before the heal" : `all settled by a survivor ${f.isolated_settled_ms} ms after the cut`}` : ""}`),
    `  takeovers (from the coordinators' logs, by node taken over): ${JSON.stringify(r.takeovers)}; shard sessions killed (holding a prepared branch, an undo row or the node's fence row): ${JSON.stringify(r.sessions_killed)}`,
    `  partition: ${r.partition_method}`,
    `  answers: ${a.committed + a.aborted + a.in_doubt} (${a.committed} committed, ${a.aborted} aborted ${JSON.stringify(a.aborts)}, ${a.in_doubt} in doubt), ${a.lost} lost ${JSON.stringify(a.lost_reasons)}; failing over: ${r.failover.transfers_retried} transfers answered after a retry (${r.failover.extra_attempts} extra attempts), ${r.failover.no_answer} unanswered within the deadline`,
    `  in doubt: ${r.in_doubt.answered} answered in_doubt, ${r.in_doubt.settled} settled (GET /transactions) after p50 ${r.in_doubt.settle_ms_p50 ?? "-"} ms, max ${r.in_doubt.settle_ms_max ?? "-"} ms`,
    `  coordinator death to its prepared branches settled: ${coordKills.map((f) => `${f.target} (${f.orphans} prepared) ${f.settled_after_ms === undefined ? "-" : f.settled_after_ms === null ? `not within ${SETTLE_WATCH_MAX_MS} ms` : `${f.settled_after_ms} ms`}`).join(", ") || "no coordinator killed"}`,
    `  some coordinator accepted transfers (a committed or aborted answer in a ${AVAILABILITY_BUCKET_MS} ms bucket): ${(r.accepting_share * 100).toFixed(1)}% of the time; longest gap ${r.longest_gap_ms} ms`,
    `  audit: total ${r.audit.total_before_cents} -> ${r.audit.total_after_cents} cents (${r.audit.conserved ? "conserved" : "NOT CONSERVED"}); prepared branches left ${r.audit.settled.prepared.length} (settled ${r.audit.settled.waited_ms} ms after the load); decision records left ${r.audit.decision_records_left}; ${r.audit.keys_replayed} keys replayed, ${r.audit.keys_answered_two_ways.length} answered two ways`,
    `  history: ${r.audit.history.committed_checked} committed applied exactly once, ${r.audit.history.aborted_checked} aborted not applied, in doubt ${r.audit.history.in_doubt_committed} committed + ${r.audit.history.in_doubt_rolled_back} rolled back, ${r.audit.history.unanswered_applied} of ${r.audit.history.unanswered_max} lost answers applied (all-or-nothing)`,
    ...r.audit.history.problems.map((p) => `  PROBLEM ${p}`),
    ...r.audit.keys_answered_two_ways.slice(0, 10).map((k) => `  PROBLEM key answered two ways: ${k}`),
    `  audit ${r.audit.passed ? "PASSED" : "FAILED"}`,
  ].join("\n");
}

export const CHAOS_USAGE = `usage: npm run bench -- --chaos [options]

N coordinators, 3 etcd members and 3 shards on a fresh cluster, under load
from the failing-over client; kill -9 of a coordinator, an etcd member and a
shard in turn (each restarted), a partition of etcd3 and the last
coordinator once (a network namespace's veth link down, as root; else the
SIGSTOP stand-in, said so in the report); then the audit.
Then the same run with 1 coordinator, for comparison (unless --no-compare).
docs/operations.md, "Chaos", says how to read it.

  --duration-s S       seconds of load per run (default 60, 10-3600)
  --coordinators N     coordinators of the first run (default 3, 1-9)
  --clients N          concurrent clients (default 32, 1-1000)
  --fault-every-s S    pause between two faults (default 4, 1-600)
  --down-s S           how long a killed server stays down (default 1, 0-600)
  --partition-s S      how long the partition lasts (default 8, 1-600: past the 3 s lease, so it is taken over)
  --partition M        auto (default: a network namespace when usable, else SIGSTOP) or sigstop
  --seed N             victims and transfers (default 11)
  --no-compare         skip the 1-coordinator run
  --json FILE          write both reports as JSON

Exit status: 0 every audit passed, 1 one failed, 2 bad usage.`;

interface ChaosFlags {
  duration_s: number;
  coordinators: number;
  clients: number;
  fault_every_s: number;
  down_s: number;
  partition_s: number;
  seed: number;
  compare: boolean;
  json?: string;
  partition: "auto" | "sigstop";
}

const CHAOS_INT_FLAGS: Record<string, { key: Exclude<keyof ChaosFlags, "compare" | "json" | "partition">; min: number; max: number }> = {
  "--duration-s": { key: "duration_s", min: 10, max: 3_600 },
  "--coordinators": { key: "coordinators", min: 1, max: 9 },
  "--clients": { key: "clients", min: 1, max: 1_000 },
  "--fault-every-s": { key: "fault_every_s", min: 1, max: 600 },
  "--down-s": { key: "down_s", min: 0, max: 600 },
  "--partition-s": { key: "partition_s", min: 1, max: 600 },
  "--seed": { key: "seed", min: 0, max: 2 ** 31 },
};

/** Parses the --chaos flags; throws an Error naming the flag on a bad one. */
export function parseChaosFlags(argv: readonly string[]): ChaosFlags {
  const f: ChaosFlags = { duration_s: 60, coordinators: 3, clients: 32, fault_every_s: 4, down_s: 1, partition_s: 8, seed: 11, compare: true, partition: "auto" };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.includes("=") ? (argv[i]!.split(/=(.*)/s, 2) as [string, string]) : [argv[i]!, undefined];
    if (flag === "--no-compare") {
      f.compare = false;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--json") {
      const problem = writableFileProblem(value);
      if (problem !== null) throw new Error(`--json ${value}: ${problem}`);
      f.json = value;
      continue;
    }
    if (flag === "--partition") {
      if (value !== "auto" && value !== "sigstop") throw new Error(`--partition: ${JSON.stringify(value)} is not allowed; expected auto or sigstop`);
      f.partition = value;
      continue;
    }
    const spec = CHAOS_INT_FLAGS[flag];
    if (spec === undefined) throw new Error(`unknown option ${JSON.stringify(flag)} for --chaos (allowed: ${[...Object.keys(CHAOS_INT_FLAGS), "--no-compare", "--json", "--partition"].join(", ")}; npm run bench -- --chaos --help for the usage)`);
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) throw new Error(`${flag}: ${JSON.stringify(value)} is not allowed; expected an integer from ${spec.min} to ${spec.max}`);
    f[spec.key] = n;
  }
  return f;
}

/** `npm run bench -- --chaos ...` (runtime/bench/main.ts hands the arguments over). */
export async function chaosMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(CHAOS_USAGE);
    return 0;
  }
  let f: ChaosFlags;
  try {
    f = parseChaosFlags(argv);
  } catch (e) {
    console.error(`bench --chaos: ${(e as Error).message}`);
    return 2;
  }
  const runs = f.compare && f.coordinators !== 1 ? [f.coordinators, 1] : [f.coordinators];
  const reports: ChaosReport[] = [];
  for (const coordinators of runs) {
    const r = await runChaos({
      coordinators,
      durationMs: f.duration_s * 1000,
      clients: f.clients,
      faultEveryMs: f.fault_every_s * 1000,
      downMs: f.down_s * 1000,
      partitionMs: f.partition_s * 1000,
      accountsPerShard: 10_000,
      seed: f.seed,
      partitionMethod: f.partition,
      log: (line) => console.log(line),
    });
    console.log(formatChaos(r));
    reports.push(r);
  }
  if (reports.length === 2) {
    const [many, one] = reports as [ChaosReport, ChaosReport];
    const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "-");
    console.log(
      `comparison (same seed, duration and fault rhythm): accepting ${(many.accepting_share * 100).toFixed(1)}% with ${many.coordinators} vs ${(one.accepting_share * 100).toFixed(1)}% with 1 (${ratio(many.accepting_share, one.accepting_share)}x); ` +
        `committed ${many.answers.committed} vs ${one.answers.committed} (${ratio(many.answers.committed, one.answers.committed)}x); longest gap ${many.longest_gap_ms} vs ${one.longest_gap_ms} ms`,
    );
  }
  if (f.json !== undefined) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(f.json, `${JSON.stringify(reports, null, 2)}\n`);
    console.log(`results written to ${f.json}`);
  }
  return reports.every((r) => r.audit.passed) ? 0 : 1;
}
