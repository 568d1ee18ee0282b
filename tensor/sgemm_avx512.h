// sgemm_avx512.h: cgrad's own single-precision GEMM for x86-64 with AVX-512 (sgemm_avx512.c).
// kernels_f32.c's gemm tries it first and falls back to the BLAS where it declines.
#ifndef CGRAD_SGEMM_AVX512_H
#define CGRAD_SGEMM_AVX512_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// built with it, the CPU has AVX-512F, and CGRAD_GEMM=blas is not set
bool sgemm_fast_available(void);

// C = alpha op(A) op(B) + beta C (row-major, the CBLAS meaning of the arguments), split across the
// OpenMP threads unless called inside a parallel region. Returns false, having done nothing, when
// the CPU lacks AVX-512, CGRAD_GEMM=blas is set, or the shape is one the BLAS does better (skinny).
bool sgemm_fast(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// op(B) [K, N] packed once for several products with it, into this thread's buffer slot (0 or 1; the
// next pack into the same slot overwrites it; not to be freed); NULL where sgemm_fast would decline
float *sgemm_pack(int slot, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb);
// C = alpha op(A) op(B) + beta C with op(B) from sgemm_pack; one thread (for use inside parallel regions)
void sgemm_packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *bp,
                  float beta, float *C, int64_t ldc);

#endif
