// kernels_ext.h: kernel machinery for kernels written outside tensor/ (a model's fused ones): a
// product with op(B) packed once for several calls, and a linear layer into a buffer with an
// optional residual. Internal to the library, not installed.
#ifndef CGRAD_KERNELS_EXT_H
#define CGRAD_KERNELS_EXT_H

#include "kernels.h"

#define PAR_MIN 32768 // below this many elements a kernel stays on one thread

#define CGRAD_KERNELS_EXT_DECL                                                                                              \
    /* op(B) [N, Kd] packed into one of two per-thread slots for gemm_pb; NULL where not packed (f64, no fast kernel) */ \
    real *K(pack_b)(int slot, bool tb, int64_t N, int64_t Kd, const real *B, int64_t ldb);                                 \
    /* gemm with op(B) also given packed (bp, may be NULL) */                                                               \
    void K(gemm_pb)(const real *bp, bool ta, bool tb, int64_t M, int64_t N, int64_t Kd, double alpha, const real *A,       \
                    int64_t lda, const real *B, int64_t ldb, double beta, real *C, int64_t ldc);                           \
    /* out = [res +] [bias +] x w^T, w given packed too (wp, may be NULL) */                                               \
    void K(linear_into)(const real *wp, real *out, const real *x, const real *w, const real *bias, const real *res,        \
                        int64_t N, int64_t IC, int64_t OC);

#define real float
#define K(name) name##_f32
CGRAD_KERNELS_EXT_DECL
#undef real
#undef K
#define real double
#define K(name) name##_f64
CGRAD_KERNELS_EXT_DECL
#undef real
#undef K

#endif
