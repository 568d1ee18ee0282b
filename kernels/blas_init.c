// blas_init.c: one thread pool. OpenBLAS's own threads would compete with OpenMP's on the same
// cores (spinning and yielding); cgrad runs it single-threaded and splits work itself.
#include "kernels.h"

#include <cblas.h>
#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
#ifdef CGRAD_GENERIC_BLAS
static void init(void) {} // a reference CBLAS runs on the calling thread anyway
#else
static void init(void) { openblas_set_num_threads(1); }
#endif
void kernels_blas_init(void) { pthread_once(&once, init); }
