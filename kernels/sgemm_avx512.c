// sgemm_avx512.c: the AVX-512 kernels of cgrad's sgemm (sgemm.c drives them; layout in sgemm_isa.h).
// The micro-kernel keeps a 12 x 32 tile of C in 24 registers: per k, two loads of B and twelve
// broadcasts of A feed 24 FMAs (copies of it for 8 rows and for 16 columns take the narrow edges);
// alpha and beta are applied as the tile is stored (no separate pass over C). Transposed op(B) is
// packed through 16 x 16 in-register transposes.
#include "sgemm_isa.h"

#include <stddef.h>

#if defined(__AVX512F__)
#include "transpose16.h"
#include <immintrin.h>

#define MR       12
#define MR_SHORT 8
#define NR       32
#define KC       256

static inline __mmask16 mask_lo(int64_t nr) { return nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1); }
static inline __mmask16 mask_hi(int64_t nr) { return nr >= 32 ? (__mmask16)0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0; }

// row i of what a tile starts as (SgemmStart), lanes m of the 16 columns from off
static inline __m512 start_vec(const SgemmStart *st, int i, __mmask16 m, int off) {
    if (!st->res) return _mm512_maskz_loadu_ps(m, st->bias + off);
    __m512 r = _mm512_maskz_loadu_ps(m, st->res + i * st->ldr + off);
    return _mm512_add_ps(r, st->bias ? _mm512_maskz_loadu_ps(m, st->bias + off) : _mm512_setzero_ps());
}

// C[0..mr, 0..32 (masked)] = alpha sum_k a(i, k) bp[k][.] (+ beta C, or + beta st's values); a(i, k) = a[i*rsa + k*csa]. With
// half (a constant at each call), only the panel's first 16 columns: a narrow product (N <= 16, such
// as a convolution's weight gradient with 16 channels) then costs half, not the whole panel's work.
// Each element's sum runs over k in the same order either way: the same bits.
static inline __attribute__((always_inline)) void micro(int64_t kc, const float *a, int64_t rsa, int64_t csa, const float *bp, float *c,
                                                        int64_t ldc, int mr, __mmask16 m0, __mmask16 m1, float alpha, float beta,
                                                        bool load_c, bool half, int rows, const SgemmStart *st) {
    __m512 c0[MR], c1[MR];
    const float *ar[MR];
#pragma GCC unroll 12
    for (int i = 0; i < rows; i++) {
        c0[i] = _mm512_setzero_ps(), c1[i] = _mm512_setzero_ps();
        ar[i] = a + (i < mr ? i : 0) * rsa; // rows past the edge repeat row 0 and are not stored
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = half ? b0 : _mm512_load_ps(bp + 16);
        bp += NR;
#pragma GCC unroll 12
        for (int i = 0; i < rows; i++) {
            __m512 av = _mm512_set1_ps(ar[i][k * csa]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            if (!half) c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < rows && i < mr; i++) { // unrolled: constant indices keep c0, c1 in registers
        float *cr = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(c0[i], va), r1 = _mm512_mul_ps(c1[i], va);
        if (st) { // C's start from res and bias, not from C
            r0 = _mm512_fmadd_ps(start_vec(st, i, m0, 0), vb, r0);
            if (!half) r1 = _mm512_fmadd_ps(start_vec(st, i, m1, 16), vb, r1);
        } else if (load_c) {
            r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, r0);
            if (!half) r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, r1);
        }
        _mm512_mask_storeu_ps(cr, m0, r0);
        if (!half) _mm512_mask_storeu_ps(cr + 16, m1, r1);
    }
}

static int64_t npanels(int64_t N) { return (N + NR - 1) / NR; }

// packed layout: K block kb (rows k0..k0+kc of op(B)) starts at k0 * Npad; its panel p at + p * kc * NR
static void pack_panel(float *bp, const float *B, int64_t ldb, bool tb, int64_t N, int64_t K, int64_t kb, int64_t p) {
    int64_t Npad = npanels(N) * NR, k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC, j0 = p * NR;
    int64_t nr = N - j0 < NR ? N - j0 : NR;
    float *dst = bp + k0 * Npad + p * kc * NR;
    if (!tb) {
        __mmask16 m0 = mask_lo(nr), m1 = mask_hi(nr);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (k0 + k) * ldb + j0;
            _mm512_store_ps(dst + k * NR, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(dst + k * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
    } else { // op(B)[k][j] = B[j][k]: 16 x 16 blocks transposed in registers
        for (int h = 0; h < 2; h++) {
            int64_t n = nr - 16 * h;
            for (int64_t k = 0; k < kc; k += 16) {
                int64_t w = kc - k < 16 ? kc - k : 16;
                __mmask16 mk = mask_lo(w);
                __m512 r[16];
                for (int j = 0; j < 16; j++)
                    r[j] = j < n ? _mm512_maskz_loadu_ps(mk, B + (j0 + 16 * h + j) * ldb + k0 + k) : _mm512_setzero_ps();
                transpose16(r);
                for (int64_t kk = 0; kk < w; kk++) _mm512_store_ps(dst + (k + kk) * NR + 16 * h, r[kk]);
            }
        }
    }
}

// the kernel copy for this tile's shape: 12 or 8 (MR_SHORT) rows, 32 or 16 columns
static inline __attribute__((always_inline)) void shaped(int64_t kc, const float *a, int64_t rsa, int64_t csa, const float *bp, float *c,
                                                         int64_t ldc, int mr, int64_t nr, float alpha, float beta, bool load_c,
                                                         const SgemmStart *st) {
    __mmask16 m0 = mask_lo(nr), m1 = mask_hi(nr);
    if (mr > MR_SHORT && nr > 16)
        micro(kc, a, rsa, csa, bp, c, ldc, mr, m0, m1, alpha, beta, load_c, false, MR, st);
    else if (mr > MR_SHORT)
        micro(kc, a, rsa, csa, bp, c, ldc, mr, m0, m1, alpha, beta, load_c, true, MR, st);
    else if (nr > 16)
        micro(kc, a, rsa, csa, bp, c, ldc, mr, m0, m1, alpha, beta, load_c, false, MR_SHORT, st);
    else
        micro(kc, a, rsa, csa, bp, c, ldc, mr, m0, m1, alpha, beta, load_c, true, MR_SHORT, st);
}

// one tile of C: op(A) rows from a (its first element of this K block), a packed panel of kc rows
static void tile(bool ta, int64_t kc, const float *a, int64_t lda, const float *bp, float *c, int64_t ldc, int mr, int64_t nr, float alpha,
                 float beta, bool load_c, const SgemmStart *st) {
    if (ta)
        shaped(kc, a, 1, lda, bp, c, ldc, mr, nr, alpha, beta, load_c, st); // a(i, k) = a[k lda + i]
    else
        shaped(kc, a, lda, 1, bp, c, ldc, mr, nr, alpha, beta, load_c, st);
}

static bool cpu_has(void) { return __builtin_cpu_supports("avx512f"); }

static const SgemmIsa AVX512 = {"avx512", MR, NR, KC, MR_SHORT, cpu_has, pack_panel, tile};
const SgemmIsa *sgemm_isa_avx512(void) { return &AVX512; }
#else
const SgemmIsa *sgemm_isa_avx512(void) { return NULL; }
#endif
