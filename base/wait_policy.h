// wait_policy.h: how OpenMP's threads wait (the programs and examples set it first thing in main).
#ifndef CGRAD_WAIT_POLICY_H
#define CGRAD_WAIT_POLICY_H

#ifdef __cplusplus
extern "C" {
#endif

// How OpenMP's threads wait. libgomp's default (OMP_WAIT_POLICY unset) spins about 300,000 times
// at every barrier and at the end of every parallel region before it sleeps: on an idle machine
// that saves a wake-up, but beside another busy program a thread spins away its share of the core
// while the partner it waits for is not running (batch-1 inference fell from 47 to 0.8 images/s
// that way). A spin count of CGRAD_SPINCOUNT keeps the idle speed and lets a waiting thread sleep
// soon on a busy machine (BENCHMARKS.md has the measurement). libgomp reads its settings once,
// when it is loaded, before main: so cgrad_wait_policy, called first thing in main with main's
// argv, sets GOMP_SPINCOUNT and runs the program again (execv of /proc/self/exe, a millisecond)
// when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set; otherwise, or where that cannot be
// done (under valgrind, without /proc), it returns and changes nothing. The programs and examples
// call it; a program of your own may, or may set GOMP_SPINCOUNT itself.
#define CGRAD_SPINCOUNT "10000"
void cgrad_wait_policy(char **argv);

#ifdef __cplusplus
}
#endif

#endif
