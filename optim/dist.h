// dist.h: data parallelism over MPI (Open MPI), usable by any model. One process per worker, each
// with the whole model: each computes the gradients of its share of a batch, dist_allreduce_grads
// sums them (or averages) in a few large messages, and every process takes the same optimizer
// step. Built without MPI (meson -Dmpi=disabled, or no libopenmpi-dev), everything here is a
// single process: rank 0 of 1.
#ifndef CGRAD_DIST_H
#define CGRAD_DIST_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rank, size; // this process and how many take part (0 and 1 alone)
    bool mpi;       // MPI was initialised here (launched by mpirun with an MPI build)
} Dist;

// Starts MPI when the process was launched by mpirun (and the build has MPI), else a single
// process. Errors abort the run with a message: a rank that dies makes mpirun stop the others, and
// a collective that waits longer than CGRAD_DIST_TIMEOUT seconds (600) for the other ranks ends
// the process with a message naming it (a watchdog thread), so a stuck rank never hangs the job.
void dist_init(int *argc, char ***argv, Dist *d);
// Ends MPI. A process that failed (status != 0) aborts the whole run instead, so that the others
// do not wait in a collective for it; mpirun then reports which process ended it.
void dist_finalize(Dist *d, int status);
bool dist_root(const Dist *d); // rank 0: the one that prints and writes
const Dist *dist_world(void);  // what dist_init set up (rank 0 of 1 before it)

// The gradients (.grad) of params[0..n), float32, summed over the processes (average: divided by
// their number) in buckets of at most DIST_BUCKET_BYTES; reduced on rank 0 and broadcast, so
// every process ends with the same bits. Params without a gradient take part as zeros.
#define DIST_BUCKET_BYTES (4u << 20)
int dist_allreduce_grads(const Dist *d, Tensor *const *params, int n, bool average, char *err, size_t errn);
// v[0..n) summed over the processes, the same on every one (losses, counts, flags)
int dist_allreduce_sum(const Dist *d, double *v, int n, char *err, size_t errn);
// buf[0..n) bytes from rank 0 to every process
int dist_broadcast(const Dist *d, void *buf, size_t n, char *err, size_t errn);
// n bytes from every process to rank 0's recv (size x n bytes, in rank order); alone: a copy
int dist_gather(const Dist *d, const void *send, size_t n, void *recv, char *err, size_t errn);
// seconds spent in this file's communication so far
double dist_comm_seconds(void);

#ifdef __cplusplus
}
#endif

#endif
