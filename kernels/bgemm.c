// bgemm.c: bfloat16 products with float32 sums (bgemm.h) on AVX-512 BF16. A's rows are rounded to
// bfloat16 pairs (a 32-bit word holds elements 2t and 2t + 1 of a row); op(B) is packed in panels of
// 32 columns, word t of column j holding op(B)[2t][j] and op(B)[2t + 1][j]; a tile of 12 x 32 of C
// takes, per pair t, two loads of the panel and twelve broadcast words of A into 24 vdpbf16ps. An
// odd K gets a zero pair partner; columns past N are zero in the panel and not stored.
#include "bgemm.h"
#include "scratch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if BGEMM_BUILD
#include "transpose16.h"
#include <immintrin.h>

#define MR 12
#define NR 32

static bool usable;
static pthread_once_t decided = PTHREAD_ONCE_INIT;
static void decide(void) {
    const char *e = getenv("CGRAD_BF16");
    usable = !(e && !strcmp(e, "off")) && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}
bool bgemm_available(void) {
    pthread_once(&decided, decide);
    return usable;
}

static inline __mmask16 lanes16(int64_t n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

// n floats of src (n <= 32) as 16 words of bfloat16 pairs, the rest zero
static inline __m512i pairs32(const float *src, int64_t n) {
    __m512 lo = _mm512_maskz_loadu_ps(lanes16(n), src), hi = _mm512_maskz_loadu_ps(lanes16(n - 16), src + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); // lo's 16 values first: elements in their order
}

// a row of K floats as K2 = ceil(K / 2) words
static void row_to_pairs(uint32_t *dst, const float *src, int64_t K) {
    for (int64_t k = 0; k < K; k += 32) {
        int64_t n = K - k < 32 ? K - k : 32;
        _mm512_mask_storeu_epi32(dst + k / 2, lanes16((n + 1) / 2), pairs32(src + k, n));
    }
}

// panel p of op(B) into dst [K2][32 words]
static void pack_panel(uint32_t *dst, bool tb, const float *B, int64_t ldb, int64_t N, int64_t K, int64_t p) {
    int64_t K2 = (K + 1) / 2, j0 = p * NR, nr = N - j0 < NR ? N - j0 : NR;
    if (!tb) { // rows 2t and 2t + 1 of B interleaved element by element
        const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19,
                                               3, 18, 2, 17, 1, 16, 0);
        for (int64_t t = 0; t < K2; t++)
            for (int h = 0; h < 2; h++) {
                __mmask16 m = lanes16(nr - 16 * h);
                const float *r0 = B + 2 * t * ldb + j0 + 16 * h;
                __m256bh x = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r0));
                __m256bh y = _mm512_cvtneps_pbh(2 * t + 1 < K ? _mm512_maskz_loadu_ps(m, r0 + ldb) : _mm512_setzero_ps());
                __m512i xy = _mm512_inserti64x4(_mm512_castsi256_si512((__m256i)x), (__m256i)y, 1);
                _mm512_store_si512(dst + t * NR + 16 * h, _mm512_permutexvar_epi16(inter, xy));
            }
        return;
    }
    // tb: column j of op(B) is row j0 + j of B, its words in order: 16 x 16 blocks of words transposed
    for (int h = 0; h < 2; h++)
        for (int64_t t0 = 0; t0 < K2; t0 += 16) {
            __m512 r[16]; // words moved as floats: the transpose moves bits
            int64_t nk = K - 2 * t0 < 32 ? K - 2 * t0 : 32;
            for (int j = 0; j < 16; j++)
                r[j] = 16 * h + j < nr ? _mm512_castsi512_ps(pairs32(B + (j0 + 16 * h + j) * ldb + 2 * t0, nk)) : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t tt = 0; tt < 16 && t0 + tt < K2; tt++) _mm512_store_ps((float *)(dst + (t0 + tt) * NR + 16 * h), r[tt]);
        }
}

// C[0..mr, 0..nr] = alpha sum_t a(i, t) . bp[t] (+ beta C); a(i, t) the word t of row i (ldaw words apart)
static void tile(int64_t K2, const uint32_t *aw, int64_t ldaw, const uint32_t *bp, float *c, int64_t ldc, int mr, int64_t nr, float alpha,
                 float beta) {
    __m512 c0[MR], c1[MR];
    const uint32_t *ar[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        c0[i] = _mm512_setzero_ps(), c1[i] = _mm512_setzero_ps();
        ar[i] = aw + (i < mr ? i : 0) * ldaw; // rows past the edge repeat row 0 and are not stored
    }
#pragma GCC unroll 2
    for (int64_t t = 0; t < K2; t++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(bp + t * NR), b1 = (__m512bh)_mm512_load_si512(bp + t * NR + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)ar[i][t]);
            c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
        }
    }
    __mmask16 m0 = lanes16(nr), m1 = lanes16(nr - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < MR && i < mr; i++) {
        float *cr = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(c0[i], va), r1 = _mm512_mul_ps(c1[i], va);
        if (beta != 0) {
            r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, r0);
            r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, r1);
        }
        _mm512_mask_storeu_ps(cr, m0, r0);
        _mm512_mask_storeu_ps(cr + 16, m1, r1);
    }
}

bool bgemm(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
           float *C, int64_t ldc) {
    if (!bgemm_available()) return false;
    if (M <= 0 || N <= 0) return true;
    int64_t K2 = (K + 1) / 2, ldaw = (K2 + 15) / 16 * 16, np = (N + NR - 1) / NR;
    uint32_t *aw = scratch_get(SCRATCH_BGEMM, sizeof(uint32_t) * (size_t)(M * ldaw));
    uint32_t *bp = scratch_get(SCRATCH_BGEMM + 1, sizeof(uint32_t) * (size_t)(np * K2 * NR + 1));
    if (!aw || !bp) return false;
    for (int64_t i = 0; i < M; i++) row_to_pairs(aw + i * ldaw, A + i * lda, K);
    for (int64_t p = 0; p < np; p++) pack_panel(bp + p * K2 * NR, tb, B, ldb, N, K, p);
    for (int64_t i0 = 0; i0 < M; i0 += MR)
        for (int64_t p = 0; p < np; p++)
            tile(K2, aw + i0 * ldaw, ldaw, bp + p * K2 * NR, C + i0 * ldc + p * NR, ldc, M - i0 < MR ? (int)(M - i0) : MR,
                 N - p * NR < NR ? N - p * NR : NR, alpha, beta);
    return true;
}

#else
bool bgemm_available(void) { return false; }
bool bgemm(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
           float *C, int64_t ldc) {
    (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return false;
}
#endif
