/*
 * TwoPhase.tla (Gray & Lamport) in Promela, for the checker benchmark
 * (checker/bench.ts). Compile with `spin -a -DRM=<n> twophase.pml`.
 *
 * Written so that SPIN's counts are TLC's: one process whose body is a loop
 * of d_steps, one d_step per TLA+ action instance (the loop's program
 * counter is the same in every state, so a SPIN state is exactly a TLA+
 * state); "states stored" is TLC's distinct states and "transitions"
 * (stored + matched) is TLC's generated states, the initial state included.
 * An enabled action that changes nothing is still executed and matched, as
 * TLC counts it. msgs is kept as bits that are only ever set (a set of
 * messages that never shrinks).
 */
#ifndef RM
#define RM 3
#endif

#define WORKING   0
#define PREPARED  1
#define COMMITTED 2
#define ABORTED   3
#define ALL ((1 << RM) - 1)

byte rmState[RM];
byte tmState;                   /* 0 init, 1 committed, 2 aborted */
unsigned tmPrepared : RM;       /* bit r: the TM received Prepared from r */
unsigned msgPrepared : RM;      /* bit r: [type |-> "Prepared", rm |-> r] in msgs */
bit msgCommit;                  /* [type |-> "Commit"] in msgs */
bit msgAbort;                   /* [type |-> "Abort"] in msgs */

/* Scratch for the invariant; hidden variables are not part of the state. */
hidden byte k;
hidden byte anyCommitted;
hidden byte anyAborted;

/* TCConsistent: no RM committed while another aborted. */
#define CHECK_TC \
  anyCommitted = 0; anyAborted = 0; k = 0; \
  do \
  :: k < RM -> anyCommitted = anyCommitted || rmState[k] == COMMITTED; \
               anyAborted = anyAborted || rmState[k] == ABORTED; k++ \
  :: else -> break \
  od; \
  assert(!(anyCommitted && anyAborted))

#define RM_ACTIONS(r) \
  :: d_step { tmState == 0 && ((msgPrepared >> r) & 1) -> tmPrepared = tmPrepared | (1 << r) } \
  :: d_step { rmState[r] == WORKING -> rmState[r] = PREPARED; msgPrepared = msgPrepared | (1 << r) } \
  :: d_step { rmState[r] == WORKING -> rmState[r] = ABORTED; CHECK_TC } \
  :: d_step { msgCommit -> rmState[r] = COMMITTED; CHECK_TC } \
  :: d_step { msgAbort -> rmState[r] = ABORTED; CHECK_TC }

active proctype TwoPhase()
{
  do
  :: d_step { tmState == 0 && tmPrepared == ALL -> tmState = 1; msgCommit = 1 }
  :: d_step { tmState == 0 -> tmState = 2; msgAbort = 1 }
  RM_ACTIONS(0)
#if RM > 1
  RM_ACTIONS(1)
#endif
#if RM > 2
  RM_ACTIONS(2)
#endif
#if RM > 3
  RM_ACTIONS(3)
#endif
#if RM > 4
  RM_ACTIONS(4)
#endif
#if RM > 5
  RM_ACTIONS(5)
#endif
#if RM > 6
  RM_ACTIONS(6)
#endif
#if RM > 7
  RM_ACTIONS(7)
#endif
#if RM > 8
  RM_ACTIONS(8)
#endif
#if RM > 9
  RM_ACTIONS(9)
#endif
  od
}
