// fastmath.h: vectorisable float erf, exp and tanh for the float32 kernels (GELU, softmax), within a few
// ulp of libm: erf 4e-7 absolute (a rational approximation on [-4, 4]), exp 8e-8 relative (range
// reduction by ln 2 in two parts, a degree-6 polynomial, the exponent set from bits). Branch-free
// (selects, no early return, no library call), so that loops over them vectorise under omp simd.
#ifndef CGRAD_FASTMATH_H
#define CGRAD_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

// a * b + c in one rounding where the build targets FMA hardware (a call to the software fmaf
// otherwise would be far slower than the two roundings)
#ifdef __FMA__
#define FM_MADD(a, b, c) fmaf(a, b, c)
#else
#define FM_MADD(a, b, c) ((a) * (b) + (c))
#endif

static inline float erf_fast(float x) {
    x = x < -4.f ? -4.f : x; // a NaN stays NaN (both comparisons are false)
    x = x > 4.f ? 4.f : x;
    float x2 = x * x;
    float p = FM_MADD(x2, -2.72614225801306e-10f, 2.77068142495902e-08f);
    p = FM_MADD(x2, p, -2.10102402082508e-06f);
    p = FM_MADD(x2, p, -5.69250639462346e-05f);
    p = FM_MADD(x2, p, -7.34990630326855e-04f);
    p = FM_MADD(x2, p, -2.95459980854025e-03f);
    p = FM_MADD(x2, p, -1.60960333262415e-02f);
    float q = FM_MADD(x2, -1.45660718464996e-05f, -2.13374055278905e-04f);
    q = FM_MADD(x2, q, -1.68282697438203e-03f);
    q = FM_MADD(x2, q, -7.37332916720468e-03f);
    q = FM_MADD(x2, q, -1.42647390514189e-02f);
    return x * p / q;
}

static inline float exp_fast(float x0) {
    float x = x0 > -87.3f ? x0 : -87.3f; // a NaN becomes -87.3 here and is given back at the end
    x = x < 88.7f ? x : 88.7f;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.f) - 12582912.f; // nearbyintf(t) for |t| < 2^22: adding 1.5 2^23 rounds to even
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = FM_MADD(p, r, 1.3981999507e-3f);
    p = FM_MADD(p, r, 8.3334519073e-3f);
    p = FM_MADD(p, r, 4.1665795894e-2f);
    p = FM_MADD(p, r, 1.6666665459e-1f);
    p = FM_MADD(p, r, 5.0000001201e-1f);
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return x0 != x0 ? x0 : p * s;
}

// tanh from exp_fast: sign(x) (1 - e) / (1 + e), e = exp(-2 |x|); 2e-7 absolute (the relative error
// grows near 0, where 1 - e cancels: for GELU's 1 + tanh, not for tanh itself)
static inline float tanh_fast(float x) {
    float e = exp_fast(-2.f * fabsf(x));
    return copysignf((1.f - e) / (1.f + e), x);
}

#endif
