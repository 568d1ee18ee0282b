// dist.c: see dist.h. With CGRAD_MPI (meson's mpi feature) the collectives are MPI's; without,
// a single process where every collective is the identity.
#include "dist.h"
#include "../base/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CGRAD_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#endif

static Dist world = {0, 1, false};
static double comm_s;

#ifdef CGRAD_MPI
// A collective that cannot complete (a rank stuck, or gone in a way mpirun does not notice) ends
// the job within a bounded time: a watchdog thread sees how long the current collective has
// waited and, past CGRAD_DIST_TIMEOUT seconds (default 600), says which one and ends the process,
// which makes mpirun stop the others.
static const char *_Atomic collective_name;
static _Atomic double collective_t0;
static double collective_limit = 600;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *collective_watchdog(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1);
        const char *name = collective_name;
        double t0 = collective_t0;
        if (name && now_s() - t0 > collective_limit) {
            fprintf(stderr, "rank %d: the %s has waited %.0f s for the other ranks (CGRAD_DIST_TIMEOUT); ending the job\n", world.rank,
                    name, now_s() - t0);
            fflush(stderr);
            _exit(1);
        }
    }
    return NULL;
}

static void collective_begin(const char *name) {
    collective_t0 = now_s();
    collective_name = name;
}
static void collective_end(void) { collective_name = NULL; }
#endif

const Dist *dist_world(void) { return &world; }
bool dist_root(const Dist *d) { return !d || d->rank == 0; }
double dist_comm_seconds(void) { return comm_s; }

void dist_init(int *argc, char ***argv, Dist *d) {
    *d = (Dist){0, 1, false};
#ifdef CGRAD_MPI
    // launched by Open MPI's mpirun (or another launcher that sets the PMI variables)
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        MPI_Init(argc, argv);
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        d->mpi = true;
        const char *lim = getenv("CGRAD_DIST_TIMEOUT");
        if (lim && atof(lim) > 0) collective_limit = atof(lim);
        pthread_t w;
        if (d->size > 1 && pthread_create(&w, NULL, collective_watchdog, NULL) == 0) pthread_detach(w);
    }
#else
    (void)argc, (void)argv;
#endif
    world = *d;
}

void dist_finalize(Dist *d, int status) {
#ifdef CGRAD_MPI
    if (d->mpi && status != 0 && d->size > 1) {
        fflush(stdout), fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    if (d->mpi) MPI_Finalize();
#else
    (void)status;
#endif
    d->mpi = false;
    world = *d;
}

#ifdef CGRAD_MPI
static int mpi_fail(int rc, const char *what, char *err, size_t errn) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return errorf(err, errn, "%s failed: %s", what, s);
}
#endif

#ifdef CGRAD_MPI
typedef struct {
    float *g;       // a gradient's data, or NULL (zeros go out, nothing comes back)
    size_t at, len; // where in the bucket
} Seg;

// reduces bucket[0..used) on rank 0, broadcasts it, and puts the pieces back (scaled)
static int flush(float *bucket, size_t used, Seg *seg, int nseg, float scale, char *err, size_t errn) {
    collective_begin("gradient all-reduce");
    int e = MPI_Reduce(world.rank == 0 ? MPI_IN_PLACE : bucket, bucket, (int)used, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (e == MPI_SUCCESS) e = MPI_Bcast(bucket, (int)used, MPI_FLOAT, 0, MPI_COMM_WORLD);
    collective_end();
    if (e != MPI_SUCCESS) return mpi_fail(e, "gradient all-reduce", err, errn);
    for (int s = 0; s < nseg; s++)
        if (seg[s].g)
            for (size_t k = 0; k < seg[s].len; k++) seg[s].g[k] = bucket[seg[s].at + k] * scale;
    return 0;
}
#endif

int dist_allreduce_grads(const Dist *d, Tensor *const *params, int n, bool average, char *err, size_t errn) {
    if (!d || d->size <= 1) return 0;
#ifdef CGRAD_MPI
    double t0 = MPI_Wtime();
    size_t cap = DIST_BUCKET_BYTES / sizeof(float), total = 0;
    for (int i = 0; i < n; i++) total += (size_t)tensor_numel(params[i]);
    int maxseg = n + (int)(total / cap) + 2;
    float *bucket = malloc(cap * sizeof(float));
    Seg *seg = malloc(sizeof *seg * (size_t)maxseg);
    if (!bucket || !seg) {
        free(bucket), free(seg);
        return errorf(err, errn, "out of memory for the gradient bucket");
    }
    float scale = average ? 1.0f / (float)d->size : 1.0f;
    size_t used = 0;
    int nseg = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) { // the gradients back to back, cut where a bucket fills
        size_t m = (size_t)tensor_numel(params[i]);
        float *g = params[i]->grad ? params[i]->grad->data : NULL;
        for (size_t off = 0; off < m && rc == 0;) {
            size_t take = m - off < cap - used ? m - off : cap - used;
            if (g)
                memcpy(bucket + used, g + off, take * sizeof(float));
            else
                memset(bucket + used, 0, take * sizeof(float));
            seg[nseg++] = (Seg){g ? g + off : NULL, used, take};
            used += take, off += take;
            if (used == cap) {
                rc = flush(bucket, used, seg, nseg, scale, err, errn);
                used = 0, nseg = 0;
            }
        }
    }
    if (rc == 0 && used) rc = flush(bucket, used, seg, nseg, scale, err, errn);
    free(bucket), free(seg);
    comm_s += MPI_Wtime() - t0;
    return rc;
#else
    (void)params, (void)n, (void)average, (void)err, (void)errn;
    return 0;
#endif
}

int dist_allreduce_sum(const Dist *d, double *v, int n, char *err, size_t errn) {
    if (!d || d->size <= 1) return 0;
#ifdef CGRAD_MPI
    double t0 = MPI_Wtime();
    collective_begin("all-reduce");
    int e = MPI_Reduce(d->rank == 0 ? MPI_IN_PLACE : v, v, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (e == MPI_SUCCESS) e = MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    collective_end();
    comm_s += MPI_Wtime() - t0;
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "all-reduce", err, errn);
#else
    (void)v, (void)n, (void)err, (void)errn;
    return 0;
#endif
}

int dist_broadcast(const Dist *d, void *buf, size_t n, char *err, size_t errn) {
    if (!d || d->size <= 1) return 0;
#ifdef CGRAD_MPI
    double t0 = MPI_Wtime();
    collective_begin("broadcast");
    int e = MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    collective_end();
    comm_s += MPI_Wtime() - t0;
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "broadcast", err, errn);
#else
    (void)buf, (void)n, (void)err, (void)errn;
    return 0;
#endif
}

int dist_gather(const Dist *d, const void *send, size_t n, void *recv, char *err, size_t errn) {
    if (!d || d->size <= 1) {
        memcpy(recv, send, n);
        return 0;
    }
#ifdef CGRAD_MPI
    double t0 = MPI_Wtime();
    collective_begin("gather");
    int e = MPI_Gather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    collective_end();
    comm_s += MPI_Wtime() - t0;
    return e == MPI_SUCCESS ? 0 : mpi_fail(e, "gather", err, errn);
#else
    (void)err, (void)errn;
    return 0;
#endif
}
