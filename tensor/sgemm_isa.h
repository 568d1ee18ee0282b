// sgemm_isa.h: what sgemm.c needs of one instruction set's kernels (sgemm_avx512.c, sgemm_avx2.c).
// op(B) is packed in K blocks of kc rows, each in panels of nr columns, zero-padded: K block kb
// (rows k0 = kb kc ..) starts at k0 * Npad (Npad = nr * panels), its panel p at + p * kc' * nr
// (kc' that block's rows). A is read in place; C is written in tiles of mr x nr.
#ifndef CGRAD_SGEMM_ISA_H
#define CGRAD_SGEMM_ISA_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *name;
    int mr, nr, kc;
    bool (*cpu_has)(void);
    // panel p of K block kb of op(B) [K, N] into bp
    void (*pack_panel)(float *bp, const float *B, int64_t ldb, bool tb, int64_t N, int64_t K, int64_t kb, int64_t p);
    // C = alpha op(A) op(B) + beta C on one thread, op(B) packed whole
    void (*packed)(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *bp,
                   float beta, float *C, int64_t ldc);
} SgemmIsa;

// NULL where the build left the kernel out
const SgemmIsa *sgemm_isa_avx512(void);
const SgemmIsa *sgemm_isa_avx2(void);

#endif
