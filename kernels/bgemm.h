// bgemm.h: products in bfloat16 with float32 sums, for CPUs with AVX-512 BF16 (vdpbf16ps: two
// multiply-adds per lane and instruction, twice float32's FMA). The float32 operands are rounded to
// bfloat16 (8 bits of mantissa, to nearest even) as they are packed; the sums, alpha and beta stay
// float32. For inference where that rounding is acceptable and measured (the ViT's attention under
// --int8, docs/deit_lora.md). Internal, not installed.
#ifndef CGRAD_BGEMM_H
#define CGRAD_BGEMM_H

#include <stdbool.h>
#include <stdint.h>

// the build and the CPU have the kernel, and CGRAD_BF16=off is not set
bool bgemm_available(void);

// C [M, N] = alpha A op(B) + beta C on the calling thread (no threads of its own: callers run it
// inside their parallel regions). A [M, K] row-major, rows lda apart; op(B) [K, N] is B [K, N]
// (rows ldb apart) or, with tb, B [N, K]. False, having done nothing, where the kernel is not
// available or this thread's scratch memory cannot grow.
bool bgemm(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
           float *C, int64_t ldc);

#endif
