// What the deadlock detector is told of a transaction, from its coordinator's state (spec/deadlock/facts.ts),
// stepping the server's coordinator (spec/server/coordinator.ts) through a 2PC transfer.
import { describe, expect, it } from "vitest";
import { factsOfCoordinator } from "../../spec/deadlock/facts.ts";
import { serverCoordinator, type ServerCoordinatorState } from "../../spec/server/coordinator.ts";
import type { CoordinatorInput } from "../../spec/protocols/protocol.ts";

const role = serverCoordinator({ voteTimeoutMs: 5_000, retryDelayMs: 200, attemptsMax: 5 });
const branches = [
  { shard: "shard-a", ops: [{ account: 1, delta: -5 }] },
  { shard: "shard-b", ops: [{ account: 2, delta: 5 }] },
];
const run = (inputs: CoordinatorInput[]): ServerCoordinatorState => inputs.reduce((st, i) => role.step(st, i).st, role.start());
const request = (protocol: string, bs = branches): CoordinatorInput => ({ t: "request", tx: "t1", branches: bs, epoch: 1, protocol });
const exec = (shard: string): CoordinatorInput => ({ t: "xa.exec", tx: "t1", shard, r: { ok: true }, conn: "1:5" });
const prepare = (shard: string): CoordinatorInput => ({ t: "xa.prepare", tx: "t1", shard, r: { ok: true } });

describe("factsOfCoordinator", () => {
  it("2PC while voting: abortable until every branch is prepared; after, prepared everywhere", () => {
    expect(factsOfCoordinator(run([request("2pc")]))).toEqual({ decided: false, preparedEverywhere: false });
    expect(factsOfCoordinator(run([request("2pc"), exec("shard-a"), prepare("shard-a")]))).toEqual({ decided: false, preparedEverywhere: false });
    const all = run([request("2pc"), exec("shard-a"), prepare("shard-a"), exec("shard-b"), prepare("shard-b")]);
    expect(all.phase).not.toBe("voting");
    expect(factsOfCoordinator(all)).toEqual({ decided: true, preparedEverywhere: true });
  });

  it("an aborting XA coordinator stays abortable (its blocked exec must still be stopped for its rollback)", () => {
    const st = run([request("2pc"), { t: "xa.exec", tx: "t1", shard: "shard-a", r: { ok: false, err: "INSUFFICIENT_FUNDS" }, conn: null }]);
    expect(st.phase).toBe("aborting");
    expect(factsOfCoordinator(st).decided).toBe(false);
  });

  it("never a victim: the speculative path, the one-phase path, a coordinator with no request", () => {
    expect(factsOfCoordinator(run([request("speculative")])).decided).toBe(true);
    expect(factsOfCoordinator(run([request("2pc", branches.slice(0, 1))])).decided).toBe(true);
    expect(factsOfCoordinator(role.start()).decided).toBe(true);
  });
});
