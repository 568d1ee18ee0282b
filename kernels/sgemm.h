// sgemm.h: cgrad's own single-precision GEMM for x86-64 (sgemm.c drives it; the micro-kernels are
// in sgemm_avx512.c and sgemm_avx2.c). kernels_f32.c's gemm tries it first and falls back to the
// BLAS where it declines. The instruction set is chosen at run time: AVX-512F where the CPU has it,
// else AVX2 with FMA, else none (everything goes to the BLAS). CGRAD_GEMM=blas turns it off;
// CGRAD_GEMM=avx2 or avx512 asks for one (ignored where the CPU lacks it).
#ifndef CGRAD_SGEMM_H
#define CGRAD_SGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// built with a kernel the CPU runs, and CGRAD_GEMM=blas is not set
bool sgemm_fast_available(void);
// the kernel in use: "avx512", "avx2", or "blas" when there is none
const char *sgemm_fast_isa(void);
// use this kernel from now on ("avx512", "avx2" or "blas"); false, changing nothing, where the
// build or the CPU does not have it (for tests and benchmarks; not while products run)
bool sgemm_use_isa(const char *name);

// C = alpha op(A) op(B) + beta C (row-major, the CBLAS meaning of the arguments), split across the
// OpenMP threads unless called inside a parallel region. Returns false, having done nothing, only
// when there is no kernel: it takes every shape, so that each row of C comes out the same bits
// however many rows the product has (an image's outputs do not depend on its batch).
bool sgemm_fast(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                float beta, float *C, int64_t ldc);

// C = op(A) op(B) + bias + res: bias a row of N values, res [M, N] with rows ldr apart, either NULL
// (both NULL: beta 0). The same sums and the same bits as filling C with res + bias and calling
// sgemm_fast with beta 1, but the tiles add res + bias as they store their first sums, so C is
// written once instead of filled by a pass of its own first (a linear layer's bias and residual).
bool sgemm_fast_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                     int64_t ldc, const float *bias, const float *res, int64_t ldr);

// op(B) [K, N] packed once for several products with it, into this thread's buffer slot (0 or 1; the
// next pack into the same slot overwrites it; not to be freed); NULL when there is no kernel
float *sgemm_pack(int slot, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb);
// the floats a packing of op(B) [K, N] takes (0 when there is no kernel), and op(B) packed into a
// caller's buffer of that many floats, 64-byte aligned (inside a parallel region by this thread
// alone): one packing that a team's threads share
size_t sgemm_pack_floats(int64_t N, int64_t K);
void sgemm_pack_into(float *bp, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb);
// C = alpha op(A) op(B) + beta C with op(B) from sgemm_pack, sgemm_pack_into or sgemm_kept: inside a parallel region
// on this thread alone, outside it split across the threads as sgemm_fast
void sgemm_packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *bp, float beta, float *C,
                  int64_t ldc);

// sgemm_fast_bias with op(B) from sgemm_pack or sgemm_kept
void sgemm_packed_bias(bool ta, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *bp, float *C, int64_t ldc,
                       const float *bias, const float *res, int64_t ldr);

// op(B) packed once and kept between products, for a B whose contents stay the same (a frozen
// weight): found again by the caller's name for those contents, id and version (a tensor's
// unique id and its count of writes). Returns the packing, pinned until sgemm_kept_release, or
// NULL (no kernel, or no room: CGRAD_PACK_CACHE_MB, 512 by default): the caller packs per product
// then. Unpinned packings are dropped oldest first to make room; one whose id comes back with
// another version is dropped at once.
const float *sgemm_kept(uint64_t id, uint32_t version, bool tb, int64_t N, int64_t K, const float *B, int64_t ldb);
void sgemm_kept_release(const float *bp);

#endif
