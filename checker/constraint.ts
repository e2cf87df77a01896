/**
 * TLC's CONSTRAINT (Model.constraint), as TLC applies it (tlc2.tool.Worker,
 * addElement, and ModelChecker's DoInitFunctor): a state, initial or
 * successor, for which the constraint is false is generated (counted in
 * `generated`), its invariants are checked, but it is not expanded (so it is
 * never reported as a deadlock) and it is not in TLC's count of distinct
 * states, nor in its depth. TLC does not even store it; this engine stores it
 * like any other state (so a violation in it has a trace, and it is checked
 * once), marks it here, and subtracts it from the counts it reports.
 */
import type { Model } from "../spec/kernel/model.ts";

export class Constraint<S> {
  private outsideBits = new Uint8Array(1 << 12);
  /** Distinct states stored outside the constraint. */
  outsideCount = 0;
  /** The depth of the deepest state inside it (1 = initial). */
  depth = 0;

  private constructor(private readonly holds: (s: S) => boolean) {}

  static of<S, A>(model: Model<S, A>): Constraint<S> | undefined {
    return model.constraint ? new Constraint((s: S) => model.constraint!(s)) : undefined;
  }

  /** A state stored at `index` (indices in order), `depth` its BFS depth. */
  admit(s: S, index: number, depth: number): void {
    if (this.holds(s)) {
      if (depth > this.depth) this.depth = depth;
      return;
    }
    if (index >= this.outsideBits.length * 8) {
      const grown = new Uint8Array(Math.max(this.outsideBits.length * 2, (index >> 3) + 1));
      grown.set(this.outsideBits);
      this.outsideBits = grown;
    }
    this.outsideBits[index >> 3]! |= 1 << (index & 7);
    this.outsideCount++;
  }

  get bytes(): number {
    return this.outsideBits.byteLength;
  }

  /** Not to be expanded. */
  outside(index: number): boolean {
    return index < this.outsideBits.length * 8 && (this.outsideBits[index >> 3]! & (1 << (index & 7))) !== 0;
  }
}
