// pool_bench.c: how a parallel region's start and end cost, OpenMP (libgomp, whatever GOMP_SPINCOUNT /
// OMP_WAIT_POLICY the environment sets) against a small thread pool of the kind ONNX Runtime and
// llama.cpp use (workers spin on a generation counter for a while, then sleep on a futex). Not part
// of the library: it measures the choice BENCHMARKS.md describes (bench/pool_compare.sh runs it).
//   pool_bench omp|pool REGIONS WORK_US [SPIN]
// Runs REGIONS regions back to back, each splitting about WORK_US microseconds of arithmetic (per
// thread) across all threads (OMP_NUM_THREADS, default the cores); prints one JSON line with the
// mean time per region and the overhead above the work itself.
#define _GNU_SOURCE
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// about `iters` dependent multiply-adds: work that cannot be optimised away
static float work(int64_t iters, float seed) {
    float a = seed, b = 1.0000001f, c = 1e-7f;
    for (int64_t i = 0; i < iters; i++) a = a * b + c;
    return a;
}

static volatile float sink[64 * 16];

// ---- the pool: workers wait for a new generation, spinning `spin` times before sleeping ----

typedef struct {
    int n;                 // threads, the caller included
    long spin;             // polls before sleeping
    _Atomic uint32_t gen;  // bumped to start a region
    _Atomic int pending;   // workers still running the region
    _Atomic int sleepers;  // workers asleep on gen (the caller wakes them only then)
    _Atomic uint32_t done; // bumped when the last worker finishes (the caller sleeps on it)
    _Atomic int stop;
    int64_t iters;
    pthread_t *th;
} Pool;

static long futex(_Atomic uint32_t *addr, int op, uint32_t val) { return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0); }

// wait until *addr != seen: spin, then sleep (counted in *sleepers when given)
static void wait_change(_Atomic uint32_t *addr, uint32_t seen, long spin, _Atomic int *sleepers) {
    for (long i = 0; i < spin; i++) {
        if (atomic_load_explicit(addr, memory_order_acquire) != seen) return;
        __builtin_ia32_pause();
    }
    while (atomic_load_explicit(addr, memory_order_acquire) == seen) {
        if (sleepers) atomic_fetch_add(sleepers, 1);
        futex(addr, FUTEX_WAIT_PRIVATE, seen);
        if (sleepers) atomic_fetch_sub(sleepers, 1);
    }
}

typedef struct {
    Pool *p;
    int id;
} Worker;

static void *worker_main(void *arg) {
    Worker *w = arg;
    Pool *p = w->p;
    uint32_t seen = 0;
    for (;;) {
        wait_change(&p->gen, seen, p->spin, &p->sleepers);
        seen = atomic_load(&p->gen);
        if (atomic_load(&p->stop)) return NULL;
        sink[w->id * 16] = work(p->iters, (float)w->id);
        if (atomic_fetch_sub(&p->pending, 1) == 1) { // the last one: tell the caller
            atomic_fetch_add(&p->done, 1);
            futex(&p->done, FUTEX_WAKE_PRIVATE, 1);
        }
    }
}

static void pool_region(Pool *p) {
    uint32_t d = atomic_load(&p->done);
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) futex(&p->gen, FUTEX_WAKE_PRIVATE, INT32_MAX);
    sink[0] = work(p->iters, 0.5f); // the caller's share
    if (atomic_load(&p->pending) > 0) wait_change(&p->done, d, p->spin, NULL);
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "omp") && strcmp(argv[1], "pool"))) {
        fprintf(stderr, "usage: pool_bench omp|pool REGIONS WORK_US [SPIN]\n");
        return 2;
    }
    long regions = atol(argv[2]), spin = argc > 4 ? atol(argv[4]) : 10000;
    double work_us = atof(argv[3]);
    int n = omp_get_max_threads();
    // calibrate: iterations for work_us on one thread
    double t0 = now();
    sink[0] = work(10000000, 1.0f);
    int64_t iters = (int64_t)(work_us * 1e-6 * 1e7 / (now() - t0));
    double t_work = now();
    for (int i = 0; i < 200; i++) sink[0] = work(iters, 1.0f);
    t_work = (now() - t_work) / 200; // the work alone, one thread

    double t;
    if (!strcmp(argv[1], "omp")) {
        for (int warm = 0; warm < 100; warm++) {
#pragma omp parallel
            sink[omp_get_thread_num() * 16] = work(iters, 1.0f);
        }
        t = now();
        for (long r = 0; r < regions; r++) {
#pragma omp parallel
            sink[omp_get_thread_num() * 16] = work(iters, 1.0f);
        }
        t = now() - t;
    } else {
        Pool p = {.n = n, .spin = spin, .iters = iters};
        p.th = calloc((size_t)n, sizeof *p.th);
        Worker *ws = calloc((size_t)n, sizeof *ws);
        for (int i = 1; i < n; i++) {
            ws[i] = (Worker){&p, i};
            pthread_create(&p.th[i], NULL, worker_main, &ws[i]);
        }
        for (int warm = 0; warm < 100; warm++) pool_region(&p);
        t = now();
        for (long r = 0; r < regions; r++) pool_region(&p);
        t = now() - t;
        atomic_store(&p.stop, 1);
        atomic_fetch_add(&p.gen, 1);
        futex(&p.gen, FUTEX_WAKE_PRIVATE, INT32_MAX);
        for (int i = 1; i < n; i++) pthread_join(p.th[i], NULL);
        free(p.th), free(ws);
    }
    double per = t / (double)regions;
    printf("{\"mode\": \"%s\", \"threads\": %d, \"region_us\": %.2f, \"work_us\": %.2f, \"overhead_us\": %.2f}\n", argv[1], n, per * 1e6,
           t_work * 1e6, (per - t_work) * 1e6);
    return 0;
}
