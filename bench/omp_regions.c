// omp_regions.c: counts the OpenMP parallel regions a program opens, by the function that opens
// them (an LD_PRELOAD shim around libgomp's GOMP_parallel). A region whose if clause is false, or
// opened inside another, runs on one thread (nthreads 1: no thread waits for another) and is
// counted apart. Built and used by bench/omp_regions.sh; prints "COUNT SERIAL FILE OFFSET" lines
// to stderr at exit, which the script names with addr2line.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_FNS 512

static void *fns[MAX_FNS];
static long counts[MAX_FNS], serial[MAX_FNS];
static int nfns;

static void report(void) {
    for (int i = 0; i < nfns; i++) {
        Dl_info d;
        if (dladdr(fns[i], &d) && d.dli_fname)
            fprintf(stderr, "omp_regions %ld %ld %s 0x%lx\n", counts[i], serial[i], d.dli_fname,
                    (unsigned long)((char *)fns[i] - (char *)d.dli_fbase));
    }
}

__attribute__((constructor)) static void start(void) { atexit(report); }

void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags) {
    static void (*real)(void (*)(void *), void *, unsigned, unsigned);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "GOMP_parallel");
    int i = 0;
    while (i < nfns && fns[i] != (void *)fn) i++;
    if (i == nfns && nfns < MAX_FNS) fns[nfns++] = (void *)fn;
    if (i < MAX_FNS) __atomic_fetch_add(nthreads == 1 ? &serial[i] : &counts[i], 1, __ATOMIC_RELAXED);
    real(fn, data, nthreads, flags);
}
