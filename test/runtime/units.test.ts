// Pure parts of the runtime: transfer decoding, configuration, the
// interpreter's timer and result handling.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Effect } from "../../spec/kernel/effects.ts";
import { cannotArrive, type Role } from "../../spec/kernel/role.ts";
import { MemoryTxlog, MemoryXa, Rng, SimClock } from "../../runtime/adapters/memory.ts";
import { ConfigError, loadConfig } from "../../runtime/config.ts";
import { RoleInstance } from "../../runtime/interpreter.ts";
import { BadRequest, centsOf, decodeTransfer, firstInexactNumber } from "../../runtime/transfer.ts";

const catalog = { shards: ["shard-a", "shard-b"], hasAccount: (_s: string, id: number) => id <= 100 };

describe("transfer decoding", () => {
  it("reads decimal strings and integer cents, merges ops per account, groups branches per shard", () => {
    const r = decodeTransfer(
      JSON.stringify({
        ops: [
          { shard_id: "shard-b", account_id: 7, delta: "11.5" },
          { shard_id: "shard-a", account_id: 3, delta: -1000 },
          { shard_id: "shard-a", account_id: 3, delta: "-2.50" },
          { shard_id: "shard-a", account_id: 4, delta: "1" },
          { shard_id: "shard-a", account_id: 5, delta: "1.00" },
          { shard_id: "shard-a", account_id: 5, delta: "-1.00" },
        ],
        idempotency_key: "k1",
      }),
      catalog,
    );
    expect(r).toEqual({
      protocol: "2pc",
      protocol_in_body: null,
      idempotency_key: "k1",
      branches: [
        { shard: "shard-a", ops: [{ account: 3, delta: -1250 }, { account: 4, delta: 100 }] },
        { shard: "shard-b", ops: [{ account: 7, delta: 1150 }] },
      ],
    });
  });

  it("takes the body's protocol, else the server's default, and says which", () => {
    const body = (protocol?: string) =>
      JSON.stringify({
        ops: [
          { shard_id: "shard-a", account_id: 1, delta: -1 },
          { shard_id: "shard-b", account_id: 2, delta: 1 },
        ],
        ...(protocol !== undefined ? { protocol } : {}),
      });
    expect(decodeTransfer(body(), catalog, "speculative")).toMatchObject({ protocol: "speculative", protocol_in_body: null });
    expect(decodeTransfer(body("parallel"), catalog, "speculative")).toMatchObject({ protocol: "parallel", protocol_in_body: "parallel" });
    expect(() => decodeTransfer(body("3pc"), catalog)).toThrow(/supported: 2pc, parallel, speculative/);
  });

  it.each([
    ["-50.00", -5000n],
    ["50", 5000n],
    ["0.5", 50n],
    ["0.05", 5n],
    ["-0.01", -1n],
    ["-0", 0n],
    ["007.50", 750n],
    ["9999999999999.99", 999_999_999_999_999n],
    ["10000000000000", 1_000_000_000_000_000n],
    ["-0000000000000000000010000000000000.00", -1_000_000_000_000_000n],
  ])("centsOf(%j) = %i", (text, cents) => {
    expect(centsOf(text, "d")).toBe(cents);
  });

  it.each(["1.005", "1.", ".5", "+1", "1e2", " 1", "1,00", "", "--1", "0x10", "10000000000000.01", "-12345678901234", "1".repeat(5000)])("refuses the amount %j", (text) => {
    expect(() => centsOf(text, "d")).toThrow(BadRequest);
  });

  it("finds number tokens outside strings that JSON.parse would not read exactly: a fraction, an exponent, an integer beyond 2^53 - 1", () => {
    expect(firstInexactNumber('{"a":"1.5","b":[1,-2,3],"c":true,"d":null,"e":"x\\"1.0","f":9007199254740991,"g":-9007199254740991}')).toBeNull();
    expect(firstInexactNumber('{"a":1,"b":-0.0}')).toMatch(/^JSON number -0.0 is not an integer/);
    expect(firstInexactNumber('{"a":[1E3]}')).toMatch(/^JSON number 1E3 is not an integer/);
    expect(firstInexactNumber('{"a":[9007199254740992]}')).toMatch(/^JSON number 9007199254740992 is beyond/);
    expect(firstInexactNumber('{"a":"9007199254740993","b":-10000000000000000000}')).toMatch(/^JSON number -10000000000000000000 is beyond/);
  });
});

describe("configuration", () => {
  it("takes defaults, then the file, then the environment, then flags", () => {
    const dir = mkdtempSync(join(tmpdir(), "speccommit-config-"));
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ port: 9000, in_flight_max: 7, resolver_interval_ms: 100 }));
    const r = loadConfig({ argv: ["--config", file, "--port=9002", "--auth", "none"], env: { SPECCOMMIT_PORT: "9001", SPECCOMMIT_IN_FLIGHT_MAX: "8" } });
    expect(r.help).toBe(false);
    if (r.help) return;
    expect(r.config).toMatchObject({ port: 9002, in_flight_max: 8, resolver_interval_ms: 100, vote_timeout_ms: 5_000, etcd_prefix: "speccommit/", record_traces: true });
  });

  it.each([
    [{ argv: ["--port", "-1"], env: {} }, /--port: -1 is not allowed .*expected an integer from 0 to 65535/],
    [{ argv: ["--record-traces", "yes"], env: {} }, /--record-traces: "yes" is not allowed .*expected true or false/],
    [{ argv: ["--admin-token", "short"], env: {} }, /--admin-token: \(hidden\) is not allowed/],
    [{ argv: ["--etcd-prefix"], env: {} }, /--etcd-prefix needs a value/],
    [{ argv: [], env: { SPECCOMMIT_VOTE_TIMEOUT_MS: "1.5" } }, /SPECCOMMIT_VOTE_TIMEOUT_MS: "1.5" is not allowed/],
    [{ argv: ["--shards", "a=h:1", "--etcd", "http://h:2", "--cluster-file", "x"], env: {} }, /either --cluster-file or --shards/],
  ])("refuses %j with a message naming the setting", (src, message) => {
    expect(() => loadConfig(src)).toThrow(ConfigError);
    expect(() => loadConfig(src)).toThrow(message);
  });

  it("refuses an unknown key in a config file", () => {
    const dir = mkdtempSync(join(tmpdir(), "speccommit-config-"));
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({ argv: ["--config", file], env: {} })).toThrow(/unknown setting "prot"/);
  });
});

describe("interpreter", () => {
  type St = { n: number; done: boolean };
  type In = { t: "go" } | { t: "timeout"; id: string } | { t: "log.list"; r: unknown };
  /** Asks for a timer and a log list at once; done after both answered. */
  const role: Role<St, In, Effect> = {
    start: () => ({ n: 0, done: false }),
    step: (st, input) => {
      if (input.t === "go") return { st, effects: [{ t: "timer", id: "late", ms: 1_000 }, { t: "timer", id: "t", ms: 5 }, { t: "log.list", prefix: "" }] };
      const n = st.n + 1;
      return { st: { n, done: n === 2 }, effects: [] };
    },
  };

  it("feeds results in arrival order, records each step, and clears its timers when the role is done", async () => {
    const clock = new SimClock();
    const rng = new Rng(1);
    const log = new MemoryTxlog(clock, rng, { min_ms: 20, max_ms: 20 });
    const xa = new MemoryXa(new Map(), clock, rng);
    let ended = 0;
    const inst = new RoleInstance(role, { actor: "r", adapters: { xa, log, clock }, done: (s) => s.done, record: true, hooks: { onEnd: () => ended++ } });
    inst.deliver({ t: "go" });
    await clock.run();
    expect(inst.trace().map((s) => [s.at_ms, s.actor, typeof s.input === "string" ? s.input : (s.input as In).t])).toEqual([
      [0, "r", "go"],
      [5, "r", "timeout"],
      // The log's answer is drawn as a step of the log, then the role's step on it.
      [20, "txlog", "list *"],
      [20, "r", "log.list"],
    ]);
    expect(inst.trace()[2]!.receives).toEqual([{ id: "m1", from: "r", to: "txlog", label: "list *" }]);
    expect(inst.trace()[3]!.receives).toEqual([{ id: "m2", from: "txlog", to: "r", label: "0 records" }]);
    expect(ended).toBe(1);
    // The 1,000 ms timer was cleared at 20 ms: the clock stopped there.
    expect(clock.now_ms()).toBe(20);
    expect(clock.pending()).toBe(0);
  });
});

describe("RoleInstance and a role's assertions", () => {
  type In = { readonly t: "go" } | { readonly t: "timeout"; readonly id: string };
  const adapters = () => {
    const clock = new SimClock();
    const rng = new Rng(1);
    return { xa: new MemoryXa(new Map(), clock, rng), log: new MemoryTxlog(clock, rng), clock };
  };

  it("a role that answers its client twice is stopped and reported, and its second answer never leaves", () => {
    const twice: Role<{ n: number }, In, Effect> = {
      start: () => ({ n: 0 }),
      step: (st) => ({ st: { n: st.n + 1 }, effects: [{ t: "reply", tx: "t1", outcome: { status: st.n === 0 ? "committed" : "aborted", reason: "conflict" } as never }] }),
    };
    const replies: string[] = [];
    const violations: string[] = [];
    let ended = 0;
    const inst = new RoleInstance(twice, {
      actor: "coordinator",
      adapters: adapters(),
      hooks: { onReply: (_tx, o) => replies.push(o.status), onViolation: (e) => violations.push(e.message), onEnd: () => ended++ },
    });
    inst.deliver({ t: "go" });
    inst.deliver({ t: "go" });
    expect(replies).toEqual(["committed"]);
    expect(violations).toEqual(["coordinator: a second reply for t1 (aborted)"]);
    expect(ended).toBe(1);
    expect(inst.ended).toBe(true);
  });

  it("an assertion inside the role stops the instance the same way; other errors still throw", () => {
    const asserting: Role<null, In, Effect> = {
      start: () => null,
      step: (st, input) => {
        if (input.t === "timeout") throw new Error("not an assertion");
        return cannotArrive("test role", { t: "xa.kill" });
      },
    };
    const violations: string[] = [];
    const inst = new RoleInstance(asserting, { actor: "r", adapters: adapters(), hooks: { onViolation: (e) => violations.push(e.name) } });
    inst.deliver({ t: "go" });
    expect(violations).toEqual(["ProtocolViolation"]);
    expect(inst.ended).toBe(true);
    const other = new RoleInstance(asserting, { actor: "r", adapters: adapters() });
    expect(() => other.deliver({ t: "timeout", id: "x" })).toThrow("not an assertion");
  });
});

describe("txlog records in etcd", () => {
  it("every record kind a protocol writes decodes back to itself; an unknown kind names the key", async () => {
    const { decodeLogRecord } = await import("../../runtime/adapters/txlog-etcd.ts");
    const records = [
      { kind: "decision", decision: "commit", branches: ["shard-a", "shard-b"] },
      { kind: "epoch" },
      { kind: "staging", branches: [{ shard: "shard-a", conn: "1763700000:42" }] },
      { kind: "speculation", state: "SPEC_EXECUTING", branches: ["shard-a"] },
      { kind: "speculation", state: "SPEC_ROLLED_BACK", branches: ["shard-a", "shard-c"] },
    ];
    for (const r of records) expect(decodeLogRecord("tx/x", JSON.stringify(r))).toEqual(r);
    expect(() => decodeLogRecord("tx/y", JSON.stringify({ kind: "vote" }))).toThrow(/tx\/y/);
    expect(() => decodeLogRecord("speculative/z", JSON.stringify({ kind: "speculation", state: "SPEC_MAYBE", branches: [] }))).toThrow(/speculative\/z/);
  });
});
