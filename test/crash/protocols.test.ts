// kill -9 of the coordinator server while parallel-commit transactions sit in
// STAGING and speculative ones in SPEC_EXECUTING / with undo rows in state
// 'undo', with the real servers (a child `speccommit serve`, 3 MariaDB shards,
// etcd). Each scenario:
//
//   1. runs a closed-loop load of CLIENTS clients, all with the scenario's
//      protocol, half of the transfers cross-shard;
//   2. polls etcd (and, for speculative, the shards) until the window is
//      open: a tx/ key holding a STAGING record, resp. a speculative/ key in
//      SPEC_EXECUTING or an undo row in state 'undo'; then kill -9;
//   3. reads what the dead process left behind (STAGING records, undo rows,
//      SPEC_EXECUTING records, prepared branches); if it left nothing to
//      recover, restarts and kills again (KILLS_MAX at most);
//   4. restarts the server on the same etcd prefix and port, lets the load
//      run on, stops it, and waits (bounded) until nothing is left: no XA
//      branch prepared, no undo row in state 'undo', no STAGING or other tx/
//      record (parallel commit's AC5: the resolver deletes COMMIT/ABORT
//      records once no branch is prepared), no SPEC_EXECUTING record
//      (speculative terminal records are forgotten once written,
//      docs/protocols/speculative.md; any still listed must be terminal);
//   5. audits: total (balances + pending credits) unchanged, every transfer
//      answered committed applied exactly once, none answered aborted applied
//      at all, every other one all-or-nothing (runtime/bench/audit.ts); for
//      speculative also the unique keys and records per answer (committed:
//      every branch released, record SPEC_COMMITTED or forgotten; aborted: nothing applied);
//      and the restarted server's /metrics show that its resolver did the
//      recovery (fences and STAGING decisions; releases/compensations).
//
// On a failure the test prints the evidence per transaction: answer, etcd
// records, undo rows, history rows, prepared branches, and what the running
// server says at GET /transactions/:id.
import type { Etcd3 } from "etcd3";
import type { Pool } from "mysql2/promise";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ShardAddress } from "../../runtime/adapters/mysql-pool.ts";
import { XID_FORMAT_ID } from "../../runtime/adapters/xa-mysql.ts";
import { auditHistory, preparedBranches, totalCents } from "../../runtime/bench/audit.ts";
import { HttpTarget } from "../../runtime/bench/http-target.ts";
import { runLoad, type Ledger, type LoadResult } from "../../runtime/bench/load.ts";
import { startServerProcess, type ServerProcess } from "../../runtime/bench/server-process.ts";
import type { TransferTarget } from "../../runtime/bench/target.ts";
import { branchesOf, type WorkloadOptions } from "../../runtime/bench/workload.ts";
import type { TestCluster } from "../support/cluster.ts";
import { Counting, serverArgs as crashServerArgs, sleep, startCrashCluster, until as untilEvery, type CrashCluster } from "./support.ts";

type Protocol = "parallel" | "speculative";

const CLIENTS = 150;
/** Commits before we start looking for the window: the load is in full swing. */
const COMMITTED_BEFORE_KILL = 200;
/** Commits after the restart: service is back and the recovered system takes load. */
const COMMITTED_AFTER_RESTART = 150;
const PHASE_WAIT_MS = 30_000;
/** How long to keep the load running while looking for a transaction in the window. */
const WINDOW_WAIT_MS = 15_000;
/** Kills that left nothing to recover are retried, this many kills at most. */
const KILLS_MAX = 3;
/** Hard bound on the load of one scenario, whatever happens. */
const LOAD_MAX_MS = 90_000;
const SETTLE_WAIT_MS = 30_000;
const SETTLE_POLL_MS = 200;
const DOWN_MS = 500;
const POLL_MS = 10;
/** Transactions described in full when something is wrong. */
const EVIDENCE_MAX = 8;

let crash: CrashCluster;
let cluster: TestCluster;
let clusterFile: string;
let shards: readonly ShardAddress[];
let workload: WorkloadOptions;
let etcd: Etcd3;
/** One small pool per shard for the polls (the shards are not killed here). */
let pools: Map<string, Pool>;

// A cluster per scenario (about 1 s to start): a scenario that fails leaves branches prepared and records
// that would otherwise fail the next one, and two servers on different etcd prefixes must not share shards
// (each one's resolver would presume abort the other's branches).
beforeEach(async () => {
  crash = await startCrashCluster("speccommit-crash-protocols-");
  ({ cluster, clusterFile, shards, workload } = crash);
  etcd = cluster.etcdClient();
  pools = new Map(cluster.shards.map((s) => [s.name, s.pool({ connectionLimit: 2 })]));
});

afterEach(async () => {
  await crash?.stop();
});

const until = (what: string, ok: () => boolean, timeout_ms: number) => untilEvery(what, ok, timeout_ms, POLL_MS);
const serverArgs = (prefix: string, port: number) => crashServerArgs(clusterFile, prefix, port);

/** The sum of a metric's series whose labels include every pair of `labels`, in a Prometheus text page. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

// ---------------------------------------------------------------------------
// What is on the shards and in etcd, read straight from them (never from the server).

interface Record_ {
  readonly tx: string;
  readonly kind: string;
  /** decision (commit/abort) or spec state (SPEC_*); "" otherwise. */
  readonly state: string;
  readonly raw: string;
}

/** The records under `<prefix><sub>` (sub "tx/" or "speculative/"), decoded loosely: an unknown shape is kept raw, never an error here. */
async function records(prefix: string, sub: "tx/" | "speculative/"): Promise<Record_[]> {
  const kv = await etcd.namespace(prefix).getAll().prefix(sub).strings();
  return Object.entries(kv).map(([key, raw]) => {
    const k = key.startsWith(prefix) ? key.slice(prefix.length) : key;
    let kind = "unparseable";
    let state = "";
    try {
      const v = JSON.parse(raw) as { kind?: unknown; decision?: unknown; state?: unknown };
      kind = String(v.kind);
      state = typeof v.decision === "string" ? v.decision : typeof v.state === "string" ? v.state : "";
    } catch {
      /* kept raw */
    }
    return { tx: k.slice(sub.length), kind, state, raw };
  });
}

interface UndoRow {
  readonly shard: string;
  readonly tx: string;
  readonly branch: string;
  readonly state: string;
}

/** Undo rows (speculative_undo) of every shard; only those in state 'undo' unless `all`. */
async function undoRows(all = false): Promise<UndoRow[]> {
  const lists = await Promise.all(
    [...pools].map(async ([shard, pool]) => {
      const [rows] = await pool.query(`SELECT tx, branch, state FROM speculative_undo${all ? "" : " WHERE state = 'undo'"}`);
      return (rows as Array<{ tx: string; branch: string; state: string }>).map((r) => ({ shard, tx: r.tx, branch: r.branch, state: r.state }));
    }),
  );
  return lists.flat();
}

/** History rows of these transactions on every shard, "shard|account|delta" per tx. */
async function historyOf(txs: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (txs.length === 0) return out;
  for (const [shard, pool] of pools) {
    for (let i = 0; i < txs.length; i += 500) {
      const [rows] = await pool.query("SELECT xid, account_id, delta FROM history WHERE xid IN (?)", [txs.slice(i, i + 500)]);
      for (const r of rows as Array<{ xid: string; account_id: string; delta: string }>) {
        const l = out.get(r.xid) ?? [];
        l.push(`${shard}|${r.account_id}|${r.delta}`);
        out.set(r.xid, l);
      }
    }
  }
  return out;
}

/** Our XA branches prepared on the shards ("shard|gtrid"). */
const prepared = () => preparedBranches(shards, XID_FORMAT_ID);

interface Leftovers {
  readonly prepared: readonly string[];
  readonly staging: readonly string[];
  /** tx/ records of any kind, by kind (and decision). */
  readonly txRecords: Readonly<Record<string, number>>;
  readonly txRecordCount: number;
  readonly undo: readonly UndoRow[];
  readonly executing: readonly string[];
}

async function leftovers(prefix: string): Promise<Leftovers> {
  const [p, tx, spec, undo] = await Promise.all([prepared(), records(prefix, "tx/"), records(prefix, "speculative/"), undoRows()]);
  const txRecords: Record<string, number> = {};
  for (const r of tx) {
    const k = r.state === "" ? r.kind : `${r.kind}:${r.state}`;
    txRecords[k] = (txRecords[k] ?? 0) + 1;
  }
  return {
    prepared: p,
    staging: tx.filter((r) => r.kind === "staging").map((r) => r.tx),
    txRecords,
    txRecordCount: tx.length,
    undo,
    executing: spec.filter((r) => r.kind === "speculation" && r.state === "SPEC_EXECUTING").map((r) => r.tx),
  };
}

const undoTxs = (l: Leftovers) => [...new Set(l.undo.map((r) => r.tx))];

const describeLeft = (l: Leftovers) =>
  `${l.staging.length} STAGING records, tx/ records ${JSON.stringify(l.txRecords)}, ${l.prepared.length} branches prepared, ` +
  `${l.undo.length} undo rows in state 'undo' (${undoTxs(l).length} transactions), ${l.executing.length} SPEC_EXECUTING records`;

/** What the dead process left for recovery to do, per protocol. */
function toRecover(protocol: Protocol, l: Leftovers): number {
  return protocol === "parallel" ? l.staging.length : l.undo.length + l.executing.length;
}

/** Nothing left for recovery: the end state each protocol promises once the resolver has run. */
function clean(protocol: Protocol, l: Leftovers): boolean {
  const common = l.prepared.length === 0 && l.staging.length === 0 && l.undo.length === 0 && l.executing.length === 0;
  // Parallel commit deletes every tx/ record once its branches are finished (AC5); the speculative path forgets its
  // terminal records too (docs/protocols/speculative.md), but a leftover one is only deleted by a later scan: not required here.
  return protocol === "parallel" ? common && l.txRecordCount === 0 : common;
}

// ---------------------------------------------------------------------------
// The window: the kill must land while transactions are in it.

interface Window {
  readonly what: string;
  readonly count: number;
  readonly waited_ms: number;
  readonly sample: readonly string[];
}

async function windowNow(protocol: Protocol, prefix: string): Promise<{ what: string; count: number; sample: string[] }> {
  if (protocol === "parallel") {
    const staging = (await records(prefix, "tx/")).filter((r) => r.kind === "staging");
    return { what: "tx/ keys holding a STAGING record", count: staging.length, sample: staging.slice(0, 3).map((r) => `tx/${r.tx} = ${r.raw}`) };
  }
  const [spec, undo] = await Promise.all([records(prefix, "speculative/"), undoRows()]);
  const executing = spec.filter((r) => r.kind === "speculation" && r.state === "SPEC_EXECUTING");
  return {
    what: "speculative/ keys in SPEC_EXECUTING + undo rows in state 'undo'",
    count: executing.length + undo.length,
    sample: [
      `${executing.length} SPEC_EXECUTING, ${undo.length} undo rows`,
      ...executing.slice(0, 2).map((r) => `speculative/${r.tx} = ${r.raw}`),
      ...undo.slice(0, 2).map((r) => `${r.shard}: speculative_undo(${r.tx}, ${r.branch}) ${r.state}`),
    ],
  };
}

/** Polls until at least one transaction is in the window (bounded), the load running all along. */
async function waitForWindow(protocol: Protocol, prefix: string): Promise<Window> {
  const t0 = performance.now();
  for (;;) {
    const w = await windowNow(protocol, prefix);
    const waited_ms = Math.round(performance.now() - t0);
    if (w.count > 0) return { ...w, waited_ms };
    if (waited_ms > WINDOW_WAIT_MS) throw new Error(`no transaction in the window (${w.what}) within ${WINDOW_WAIT_MS} ms of load`);
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------
// Evidence and the speculative audit.

function answerOf(ledger: Ledger, tx: string): string {
  if (ledger.committed.has(tx)) return "committed";
  if (ledger.aborted.has(tx)) return "aborted";
  if (ledger.inDoubt.has(tx)) return "in_doubt";
  return "no answer (lost or never sent)";
}

/** Everything known about one transaction, for a failure message. */
async function evidence(prefix: string, server: ServerProcess, ledger: Ledger, tx: string): Promise<string> {
  const [txRec, specRec, undo, hist, prep] = await Promise.all([
    etcd.namespace(prefix).get(`tx/${tx}`).string(),
    etcd.namespace(prefix).get(`speculative/${tx}`).string(),
    undoRows(true).then((rows) => rows.filter((r) => r.tx === tx)),
    historyOf([tx]),
    prepared().then((l) => l.filter((b) => b.endsWith(`|${tx}`))),
  ]);
  let view: string;
  try {
    const res = await fetch(`${server.url}/transactions/${tx}`);
    view = `${res.status} ${(await res.text()).slice(0, 3000)}`;
  } catch (e) {
    view = `(not reachable: ${(e as Error).message})`;
  }
  const t = ledger.committed.get(tx) ?? ledger.aborted.get(tx) ?? ledger.inDoubt.get(tx);
  return [
    `  tx ${tx}: answer ${answerOf(ledger, tx)}${t !== undefined ? `, ops ${JSON.stringify(t.ops)}` : ""}`,
    `    etcd ${prefix}tx/${tx} = ${txRec ?? "(absent)"}; ${prefix}speculative/${tx} = ${specRec ?? "(absent)"}`,
    `    speculative_undo: ${undo.map((r) => `${r.shard}(${r.branch}) ${r.state}`).join(", ") || "(none)"}`,
    `    history: ${(hist.get(tx) ?? []).join(", ") || "(none)"}`,
    `    prepared: ${prep.join(", ") || "(none)"}`,
    `    GET /transactions/${tx} (restarted server): ${view}`,
  ].join("\n");
}

/**
 * The speculative path's own end state, per answer, from the unique keys and
 * the records (docs/protocols/speculative.md, properties): committed, every
 * branch released and the record SPEC_COMMITTED or forgotten; aborted, no branch applied
 * (tombstone or compensated) and the record absent or SPEC_ROLLED_BACK; in
 * doubt or unanswered, one of the two; SPEC_COMMITTED only over released
 * branches, SPEC_ROLLED_BACK only over dead ones. Only this scenario runs the
 * speculative path on this cluster, so every row is one of its transactions.
 */
async function auditSpeculative(prefix: string, ledger: Ledger): Promise<{ problems: Array<{ tx: string; what: string }>; released: number; rolledBack: number; transactions: number }> {
  const [rows, recs] = await Promise.all([undoRows(true), records(prefix, "speculative/")]);
  const byTx = new Map<string, UndoRow[]>();
  for (const r of rows) byTx.set(r.tx, [...(byTx.get(r.tx) ?? []), r]);
  const recOf = new Map(recs.map((r) => [r.tx, r]));
  const problems: Array<{ tx: string; what: string }> = [];
  let released = 0;
  let rolledBack = 0;
  const txs = new Set([...byTx.keys(), ...recOf.keys(), ...ledger.committed.keys(), ...ledger.aborted.keys(), ...ledger.inDoubt.keys()]);
  for (const tx of txs) {
    // A one-branch transfer takes 2PC's one-phase path (spec/server/coordinator.ts): no undo row, no record; auditHistory covers it.
    const t = ledger.committed.get(tx) ?? ledger.aborted.get(tx) ?? ledger.inDoubt.get(tx);
    if (t !== undefined && branchesOf(t).length === 1) continue;
    const mine = byTx.get(tx) ?? [];
    const states = mine.map((r) => `${r.branch}:${r.state}`).sort().join(",") || "(no rows)";
    const rec = recOf.get(tx)?.state ?? "(no record)";
    const applied = mine.filter((r) => r.state === "undo" || r.state === "released");
    const allReleased = mine.length > 0 && mine.every((r) => r.state === "released");
    const committedT = ledger.committed.get(tx);
    if (allReleased) released++;
    if (applied.length === 0) rolledBack++;
    const bad = (what: string) => problems.push({ tx, what: `${what}: rows ${states}, record ${rec}` });
    if (committedT !== undefined) {
      const want = branchesOf(committedT).map((b) => b.shard).sort().join(",");
      const got = mine.map((r) => r.branch).sort().join(",");
      if (!allReleased || got !== want) bad(`answered committed, expected exactly the branches ${want} released`);
      else if (rec !== "SPEC_COMMITTED" && rec !== "(no record)") bad("answered committed, expected the record SPEC_COMMITTED or none (forgotten)");
    } else if (ledger.aborted.has(tx)) {
      if (applied.length > 0) bad("answered aborted, expected no branch applied");
      else if (rec !== "(no record)" && rec !== "SPEC_ROLLED_BACK") bad("answered aborted, expected no record or SPEC_ROLLED_BACK");
    } else if (!(allReleased || applied.length === 0)) {
      bad("in doubt or unanswered, expected every branch released or none applied");
    }
    if (rec === "SPEC_COMMITTED" && !allReleased) bad("SPEC_COMMITTED over branches not all released");
    if (rec === "SPEC_ROLLED_BACK" && applied.length > 0) bad("SPEC_ROLLED_BACK over an applied branch");
    if (rec === "SPEC_EXECUTING") bad("SPEC_EXECUTING left");
  }
  return { problems, released, rolledBack, transactions: txs.size };
}

// ---------------------------------------------------------------------------
// The scenario.

interface Kill {
  readonly window: Window;
  readonly inFlight: number;
  readonly left: Leftovers;
}

async function scenario(protocol: Protocol, seed: number): Promise<void> {
  const prefix = `crash-${protocol}/`;
  const since_us = Date.now() * 1000;
  const before = await totalCents(shards);
  const start = await leftovers(prefix);
  expect(clean(protocol, start), `the cluster is not clean before the scenario: ${describeLeft(start)}`).toBe(true);

  let server = await startServerProcess(serverArgs(prefix, 0));
  const target = new Counting(new HttpTarget({ url: server.url, sockets: CLIENTS, protocol }));
  let stop = false;
  const t0 = performance.now();
  const load: Promise<LoadResult> = runLoad({
    target,
    workload: { ...workload, seed },
    clients: CLIENTS,
    warmupMs: 0,
    durationMs: LOAD_MAX_MS,
    backoffMs: 50,
    stop: () => stop,
  });
  const kills: Kill[] = [];
  let result: LoadResult;
  let stopped = false;
  try {
    try {
      for (let k = 0; k < KILLS_MAX; k++) {
        const mark = target.committed;
        await until(`${COMMITTED_BEFORE_KILL} commits before kill ${k + 1}`, () => target.committed >= mark + COMMITTED_BEFORE_KILL, PHASE_WAIT_MS);
        const window = await waitForWindow(protocol, prefix);
        const inFlight = target.inFlight;
        await server.kill9();
        // The process is gone: what is there now is what recovery has to finish.
        const left = await leftovers(prefix);
        kills.push({ window, inFlight, left });
        await sleep(DOWN_MS);
        // Same port: the clients keep their URL.
        server = await startServerProcess(serverArgs(prefix, server.port));
        if (toRecover(protocol, left) > 0) break;
      }
      const mark = target.committed;
      await until(`${COMMITTED_AFTER_RESTART} commits after the restart`, () => target.committed >= mark + COMMITTED_AFTER_RESTART, PHASE_WAIT_MS);
    } finally {
      stop = true;
      result = await load;
      await target.close();
    }
    const loadMs = Math.round(performance.now() - t0);
    const l = result.ledger;

    // Settle: bounded polls until nothing is left for recovery.
    const s0 = performance.now();
    let end = await leftovers(prefix);
    while (!clean(protocol, end) && performance.now() - s0 < SETTLE_WAIT_MS) {
      await sleep(SETTLE_POLL_MS);
      end = await leftovers(prefix);
    }
    const settled_ms = Math.round(performance.now() - s0);
    const after = await totalCents(shards);
    const history = await auditHistory(shards, [l], since_us);
    const spec = protocol === "speculative" ? await auditSpeculative(prefix, l) : null;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();

    // What happened to the transactions the dead process left behind.
    const last = kills[kills.length - 1]!;
    const recoveredTxs = protocol === "parallel" ? [...last.left.staging] : [...new Set([...undoTxs(last.left), ...last.left.executing])];
    const hist = await historyOf(recoveredTxs);
    const fate: Record<string, number> = {};
    for (const tx of recoveredTxs) {
      const k = `${answerOf(l, tx)} -> ${hist.has(tx) ? "applied" : "not applied"}`;
      fate[k] = (fate[k] ?? 0) + 1;
    }

    const resolver = (a: string) => metricSum(metrics, "speccommit_resolver_actions_total", { action: a });
    const actionNames = ["commit", "rollback", "presume_abort", "forget", "fence", "staging_commit", "staging_abort", "tombstone", "compensate", "release", "record_spec_executing", "record_spec_committed", "record_spec_rolled_back"];
    const actions = actionNames.map((a) => `${a} ${resolver(a)}`).join(", ");
    const fences = metricSum(metrics, "speccommit_staging_fences_total");
    const stagingRecoveries = metricSum(metrics, "speccommit_staging_recoveries_total");
    const resolverRetired = metricSum(metrics, "speccommit_releases_total", { by: "resolver" }) + metricSum(metrics, "speccommit_compensations_total", { by: "resolver" });
    const specResolverWork = ["tombstone", "compensate", "release", "record_spec_executing", "record_spec_committed", "record_spec_rolled_back"].reduce((a, x) => a + resolver(x), 0);
    const ranProtocol = metricSum(metrics, "speccommit_transactions_total", { protocol });

    const report = [
      `crash ${protocol}: ${loadMs} ms of load by ${CLIENTS} clients, ${kills.length} kill(s)`,
      ...kills.map(
        (k, i) =>
          `  kill ${i + 1}: ${k.inFlight} transfers in flight; before it ${k.window.count} ${k.window.what} (seen after ${k.window.waited_ms} ms of polling), e.g.\n` +
          k.window.sample.map((x) => `      ${x}`).join("\n") +
          `\n    left by the dead process: ${describeLeft(k.left)}`,
      ),
      `  recovered transactions (answer -> end): ${JSON.stringify(fate)}`,
      `  answers: ${l.committed.size} committed, ${l.aborted.size} aborted ${JSON.stringify(result.aborts)}, ${l.inDoubt.size} in doubt, ${l.unknown} lost ${JSON.stringify(result.unknown)}, ${l.rejected} refused ${JSON.stringify(result.rejected)}`,
      `  settled: ${clean(protocol, end)} after ${settled_ms} ms; left: ${describeLeft(end)}`,
      `  restarted server: ${ranProtocol} ${protocol} transactions answered; resolver actions: ${actions}; staging fences ${fences}, staging recoveries ${stagingRecoveries}, resolver releases+compensations that changed a shard ${resolverRetired}`,
      `  total: ${before} cents before, ${after} after (balances + pending)`,
      `  history: ${history.history_rows} rows; ${history.committed_checked} committed applied exactly once, ${history.aborted_checked} aborted not applied, in doubt ${history.in_doubt_committed} committed + ${history.in_doubt_rolled_back} rolled back, ${history.unanswered_applied} of ${history.unanswered_max} lost answers applied (all-or-nothing)`,
      ...(spec !== null ? [`  speculative keys: ${spec.transactions} transactions, ${spec.released} fully released, ${spec.rolledBack} with nothing applied, ${spec.problems.length} problems`] : []),
      ...history.problems.map((p) => `  PROBLEM ${p}`),
      ...(spec?.problems ?? []).slice(0, 20).map((p) => `  PROBLEM ${p.tx}: ${p.what}`),
    ];

    // Evidence for whatever is wrong: the transactions still unfinished, and those the audits name.
    const suspects = new Set<string>([
      ...end.staging,
      ...end.executing,
      ...undoTxs(end),
      ...end.prepared.map((b) => b.slice(b.indexOf("|") + 1)),
      ...history.problems.flatMap((p) => /^(?:committed|aborted|in doubt|unanswered) (\S+):/.exec(p)?.[1] ?? []),
      ...(spec?.problems ?? []).map((p) => p.tx),
    ]);
    const failing = suspects.size > 0 || after !== before;
    if (suspects.size > 0) {
      report.push(`  EVIDENCE (${Math.min(suspects.size, EVIDENCE_MAX)} of ${suspects.size} transactions):`);
      for (const tx of [...suspects].slice(0, EVIDENCE_MAX)) report.push(await evidence(prefix, server, l, tx));
    }
    if (failing) report.push(`  server output (tail):\n${server.output().slice(-3000)}`);
    console.log(report.join("\n"));

    // The kill hit the window, on a loaded system, and left recovery work behind.
    expect(ranProtocol, `the restarted server answered no ${protocol} transaction`).toBeGreaterThan(0);
    for (const k of kills) expect(k.window.count).toBeGreaterThan(0);
    expect(last.inFlight).toBeGreaterThanOrEqual(CLIENTS / 2);
    expect(toRecover(protocol, last.left), `no kill left anything to recover (${KILLS_MAX} kills)`).toBeGreaterThan(0);
    // Recovered: nothing left, money conserved, exactly once.
    expect(end, `not settled after ${SETTLE_WAIT_MS} ms`).toMatchObject({ prepared: [], staging: [], undo: [], executing: [] });
    if (protocol === "parallel") expect(end.txRecords, "tx/ records left once settled").toEqual({});
    expect(after).toBe(before);
    expect(history.problems_total).toBe(0);
    expect(spec?.problems ?? []).toEqual([]);
    expect(history.committed_checked).toBeGreaterThanOrEqual(COMMITTED_BEFORE_KILL + COMMITTED_AFTER_RESTART);
    // The restarted server's resolver did the recovery.
    if (protocol === "parallel") {
      expect(fences, "STAGING records were left but the resolver fenced none").toBeGreaterThan(0);
      expect(stagingRecoveries, "STAGING records were left but the resolver decided none").toBeGreaterThan(0);
    } else {
      expect(specResolverWork, "speculations were left but the resolver did nothing").toBeGreaterThan(0);
      if (last.left.undo.length > 0) expect(resolverRetired, "undo rows were left but the resolver released or compensated none").toBeGreaterThan(0);
    }

    stopped = true;
    expect(await server.stop()).toBe(0);
  } finally {
    if (!stopped) await server.kill9();
  }
}

describe("kill -9 of the coordinator inside the protocol's window, restart: recovered, conserved, exactly once", () => {
  it("parallel commit: transactions in STAGING", async () => {
    await scenario("parallel", 11);
  }, 150_000);

  it("speculative: transactions in SPEC_EXECUTING / with undo rows", async () => {
    await scenario("speculative", 12);
  }, 150_000);
});
