// transpose16.h: a 16 x 16 block of 32-bit values transposed in 16 AVX-512 registers, for the kernels'
// packings (sgemm_avx512.c's float panels, bgemm.c's bfloat16 pairs: the moves are of bits, whatever
// the values). Include it where AVX-512F is enabled. Internal, not installed.
#ifndef CGRAD_TRANSPOSE16_H
#define CGRAD_TRANSPOSE16_H

#include <immintrin.h>

// r[i] = row i of a 16 x 16 block -> r[j] = column j
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) { // per 128-bit lane L: [r2i[4L], r2i+1[4L], r2i[4L+1], r2i+1[4L+1]] and the [4L+2], [4L+3] pair
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { // u[4i+e] lane L: rows 4i..4i+3 at element 4L+e
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int e = 0; e < 4; e++) { // column 4L+e gathers lane L of the four row groups
        __m512 ab_lo = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88), ab_hi = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
        __m512 cd_lo = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88), cd_hi = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
        t[e] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);
        t[8 + e] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xdd);
        t[4 + e] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xdd);
    }
    for (int j = 0; j < 16; j++) r[j] = t[j];
}

#endif
