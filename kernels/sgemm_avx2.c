// sgemm_avx2.c: the AVX2+FMA kernels of cgrad's sgemm (sgemm.c drives them; layout in sgemm_isa.h),
// for the x86-64 CPUs without AVX-512. The micro-kernel keeps a 6 x 16 tile of C in 12 of the 16
// ymm registers: per k, two loads of B and six broadcasts of A feed 12 FMAs; alpha and beta are
// applied as the tile is stored. Transposed op(B) is packed through 8 x 8 in-register transposes.
#include "sgemm_isa.h"

#include <stddef.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define MR 6
#define NR 16
#define KC 256

// lanes 0..n-1 set (n clamped to 0..8), for maskload/maskstore
static inline __m256i lanes(int64_t n) {
    static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - n));
}

// row i of what a tile starts as (SgemmStart): 8 columns from off, all of them or lanes m
static inline __m256 start_vec(const SgemmStart *st, int i, bool all, __m256i m, int off) {
    const float *b = st->bias ? st->bias + off : NULL;
    if (!st->res) return all ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m);
    const float *r = st->res + i * st->ldr + off;
    __m256 rv = all ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m);
    return _mm256_add_ps(rv, b ? (all ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m)) : _mm256_setzero_ps());
}

// C[0..mr, 0..nr] = alpha sum_k a(i, k) bp[k][.] (+ beta C, or + beta st's values); a(i, k) = a[i*rsa + k*csa]
static inline __attribute__((always_inline)) void micro(int64_t kc, const float *a, int64_t rsa, int64_t csa, const float *bp, float *c,
                                                        int64_t ldc, int mr, int64_t nr, float alpha, float beta, bool load_c,
                                                        const SgemmStart *st) {
    __m256 c0[MR], c1[MR];
    const float *ar[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        c0[i] = _mm256_setzero_ps(), c1[i] = _mm256_setzero_ps();
        ar[i] = a + (i < mr ? i : 0) * rsa; // rows past the edge repeat row 0 and are not stored
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        bp += NR;
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(ar[i] + k * csa);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == NR) {
#pragma GCC unroll 6
        for (int i = 0; i < MR && i < mr; i++) { // unrolled: constant indices keep c0, c1 in registers
            float *cr = c + i * ldc;
            __m256 r0 = _mm256_mul_ps(c0[i], va), r1 = _mm256_mul_ps(c1[i], va);
            if (st) { // C's start from res and bias, not from C
                r0 = _mm256_fmadd_ps(start_vec(st, i, true, _mm256_setzero_si256(), 0), vb, r0);
                r1 = _mm256_fmadd_ps(start_vec(st, i, true, _mm256_setzero_si256(), 8), vb, r1);
            } else if (load_c) {
                r0 = _mm256_fmadd_ps(_mm256_loadu_ps(cr), vb, r0);
                r1 = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vb, r1);
            }
            _mm256_storeu_ps(cr, r0);
            _mm256_storeu_ps(cr + 8, r1);
        }
        return;
    }
    __m256i m0 = lanes(nr), m1 = lanes(nr - 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR && i < mr; i++) { // unrolled: constant indices keep c0, c1 in registers
        float *cr = c + i * ldc;
        __m256 r0 = _mm256_mul_ps(c0[i], va), r1 = _mm256_mul_ps(c1[i], va);
        if (st) {
            r0 = _mm256_fmadd_ps(start_vec(st, i, false, m0, 0), vb, r0);
            r1 = _mm256_fmadd_ps(start_vec(st, i, false, m1, 8), vb, r1);
        } else if (load_c) {
            r0 = _mm256_fmadd_ps(_mm256_maskload_ps(cr, m0), vb, r0);
            r1 = _mm256_fmadd_ps(_mm256_maskload_ps(cr + 8, m1), vb, r1);
        }
        _mm256_maskstore_ps(cr, m0, r0);
        _mm256_maskstore_ps(cr + 8, m1, r1);
    }
}

// r[i] = row i of an 8 x 8 block -> r[j] = column j
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     // per lane: r0[0] r1[0] r0[1] r1[1]
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); //           r0[2] r1[2] r0[3] r1[3]
    }
    for (int h = 0; h < 2; h++) { // rows 4h..4h+3: u[4h+e] per lane holds element e of each row
        __m256 a = t[4 * h], b = t[4 * h + 1], c = t[4 * h + 2], d = t[4 * h + 3];
        u[4 * h] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * h + 1] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * h + 2] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * h + 3] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int e = 0; e < 4; e++) { // column e from the low lanes, column 4+e from the high ones
        r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
}

static int64_t npanels(int64_t N) { return (N + NR - 1) / NR; }

static void pack_panel(float *bp, const float *B, int64_t ldb, bool tb, int64_t N, int64_t K, int64_t kb, int64_t p) {
    int64_t Npad = npanels(N) * NR, k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC, j0 = p * NR;
    int64_t nr = N - j0 < NR ? N - j0 : NR;
    float *dst = bp + k0 * Npad + p * kc * NR;
    if (!tb) {
        __m256i m0 = lanes(nr), m1 = lanes(nr - 8);
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (k0 + k) * ldb + j0;
            _mm256_store_ps(dst + k * NR, nr == NR ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, m0));
            _mm256_store_ps(dst + k * NR + 8, nr == NR ? _mm256_loadu_ps(src + 8) : _mm256_maskload_ps(src + 8, m1));
        }
    } else { // op(B)[k][j] = B[j][k]: 8 x 8 blocks transposed in registers
        for (int h = 0; h < 2; h++) {
            int64_t n = nr - 8 * h;
            for (int64_t k = 0; k < kc; k += 8) {
                int64_t w = kc - k < 8 ? kc - k : 8;
                __m256i mk = lanes(w);
                __m256 r[8];
                const float *src = B + (j0 + 8 * h) * ldb + k0 + k;
                if (w == 8 && n >= 8) // a whole block: plain loads (masked ones are slower)
                    for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(src + j * ldb);
                else
                    for (int j = 0; j < 8; j++) r[j] = j < n ? _mm256_maskload_ps(src + j * ldb, mk) : _mm256_setzero_ps();
                transpose8(r);
                for (int64_t kk = 0; kk < w; kk++) _mm256_store_ps(dst + (k + kk) * NR + 8 * h, r[kk]);
            }
        }
    }
}

// one tile of C: op(A) rows from a (its first element of this K block), a packed panel of kc rows
static void tile(bool ta, int64_t kc, const float *a, int64_t lda, const float *bp, float *c, int64_t ldc, int mr, int64_t nr, float alpha,
                 float beta, bool load_c, const SgemmStart *st) {
    if (ta)
        micro(kc, a, 1, lda, bp, c, ldc, mr, nr, alpha, beta, load_c, st); // a(i, k) = a[k lda + i]
    else
        micro(kc, a, lda, 1, bp, c, ldc, mr, nr, alpha, beta, load_c, st);
}

static bool cpu_has(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

static const SgemmIsa AVX2 = {"avx2", MR, NR, KC, 0, cpu_has, pack_panel, tile};
const SgemmIsa *sgemm_isa_avx2(void) { return &AVX2; }
#else
const SgemmIsa *sgemm_isa_avx2(void) { return NULL; }
#endif
