// sgemm_isa.h: what sgemm.c needs of one instruction set's kernels (sgemm_avx512.c, sgemm_avx2.c).
// op(B) is packed in K blocks of kc rows, each in panels of nr columns, zero-padded: K block kb
// (rows k0 = kb kc ..) starts at k0 * Npad (Npad = nr * panels), its panel p at + p * kc' * nr
// (kc' that block's rows). A is read in place; C is written in tiles of mr x nr.
#ifndef CGRAD_SGEMM_ISA_H
#define CGRAD_SGEMM_ISA_H

#include <stdbool.h>
#include <stdint.h>

// what a tile of C starts as in the first K block of sgemm_fast_bias, instead of C itself: at its
// row i, res + i ldr (may be NULL) plus bias (may be NULL), both at the tile's first column; as
// floats, res + bias, or res + 0, or bias (the sums a pass over C would leave there)
typedef struct {
    const float *res, *bias;
    int64_t ldr;
} SgemmStart;

typedef struct {
    const char *name;
    int mr, nr, kc;
    // a shorter tile's rows (0: none): a tile of at most mr_short rows costs that many, not mr; the
    // driver then cuts a product of 16 rows into two of 8 rather than 12 and 4
    int mr_short;
    bool (*cpu_has)(void);
    // panel p of K block kb of op(B) [K, N] into bp
    void (*pack_panel)(float *bp, const float *B, int64_t ldb, bool tb, int64_t N, int64_t K, int64_t kb, int64_t p);
    // one tile of C (mr <= MR rows, nr <= NR columns) += or = alpha op(A) panel, over kc rows of K:
    // a points at op(A)'s element (row 0, k 0) of this block, bp at the packed panel; beta scales C
    // when load_c (else C is written), or scales st's values instead of C's when st is given
    void (*tile)(bool ta, int64_t kc, const float *a, int64_t lda, const float *bp, float *c, int64_t ldc, int mr, int64_t nr, float alpha,
                 float beta, bool load_c, const SgemmStart *st);
} SgemmIsa;

// NULL where the build left the kernel out
const SgemmIsa *sgemm_isa_avx512(void);
const SgemmIsa *sgemm_isa_avx2(void);

#endif
