// The account cache never moves a final state back (found by an audit): a lookup whose SELECT ran before a close
// committed, answered after the close set 'closed' here, must not reopen the account in the cache (transfers would get
// past the 409 check to the row check's abort; a second close would answer 409 instead of its replay).
// Deterministic: an in-memory stand-in for the shard's pool whose answer is held back (only the order of the two
// answers matters; no MariaDB).
import { expect, it } from "vitest";
import { Accounts } from "../../runtime/accounts.ts";
import type { ShardPool } from "../../runtime/adapters/mysql-pool.ts";

it("a lookup answered after a close ended here does not reopen the account in the cache", async () => {
  let answer: (v: unknown) => void = () => {};
  const pool = { run: () => new Promise((r) => (answer = r)) } as unknown as ShardPool;
  const a = new Accounts(["shard-a"], new Map([["shard-a", pool]]));
  // A transfer's decode did not know account 7 (opened through another node): it asks the shard.
  const lookup = a.lookup([{ shard: "shard-a", account: 7 }]);
  // Meanwhile a close on this node runs and ends (runtime/banking.ts close: 'closing', the row closed, then 'closed').
  a.added("shard-a", 7, "open");
  a.setState("shard-a", 7, "closing");
  a.setState("shard-a", 7, "closed");
  // The lookup's SELECT had run before the close's COMMIT: the shard said 'open' then.
  answer({ ok: true, value: [{ id: "7", status: "open" }] });
  expect(await lookup).toEqual(new Set(["shard-a:7"]));
  expect(a.state("shard-a", 7)).toBe("closed");
  expect(a.refusal("shard-a", 7)).not.toBeNull();
});
