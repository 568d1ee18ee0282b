// vit_kernels.c: vit_kernels.inc compiled for float (with the fast erf and exp the framework's
// float kernels use) and for double (gradient checks).
#include "vit_kernels.h"

#include "../kernels/bgemm.h"
#include "../kernels/fastmath.h"
#include "../kernels/kernels_ext.h"
#include "../kernels/qgemm.h"
#include "../kernels/scratch.h"
#include "../tensor/rng.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#undef I

// the eight bits of a byte as floats 0 and 1, lowest bit first: a dropout mask stored as bits
// expands a byte at a time into one vector
#define LB8(b)                                                                                                                             \
    { (b) & 1, (b) >> 1 & 1, (b) >> 2 & 1, (b) >> 3 & 1, (b) >> 4 & 1, (b) >> 5 & 1, (b) >> 6 & 1, (b) >> 7 & 1 }
#define LB4(b)  LB8(b), LB8((b) + 1), LB8((b) + 2), LB8((b) + 3)
#define LB16(b) LB4(b), LB4((b) + 4), LB4((b) + 8), LB4((b) + 12)
#define LB64(b) LB16(b), LB16((b) + 16), LB16((b) + 32), LB16((b) + 48)
static const float lora_bit_floats[256][8] __attribute__((aligned(32))) = {LB64(0), LB64(64), LB64(128), LB64(192)};

#define real    float
#define K(name) name##_f32
#define K_ERF   erf_fast
#define K_EXP   exp_fast
#include "vit_kernels.inc"
#undef real
#undef K
#undef K_ERF
#undef K_EXP

#define real    double
#define K(name) name##_f64
#define K_ERF   erf
#define K_EXP   exp
#include "vit_kernels.inc"

// the MLP with int8 products: a block's rows through fc1, the GELU in place, fc2 with the residual
int vit_mlp_forward_int8(const QWeight *w1, const QWeight *w2, float *out, const float *x, const float *res, const float *b1,
                         const float *b2, int64_t N) {
    int64_t D = w1->IC, F = w1->OC, blk = row_block_f32(N), nb = (N + blk - 1) / blk;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *a = scratch_get(0, sizeof(float) * (size_t)(blk * F)); // this thread's hidden rows
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < nb; q++) {
            int64_t lo = q * blk, rows = lo + blk < N ? blk : N - lo;
            if (!a || !qlinear(w1, a, x + lo * D, b1, NULL, rows)) {
                failed = 1;
                continue;
            }
#pragma omp simd
            for (int64_t i = 0; i < rows * F; i++) a[i] = gelu_f32(a[i]);
            if (!qlinear(w2, out + lo * D, a, b2, res + lo * D, rows)) failed = 1;
        }
    }
    return failed ? -1 : 0;
}

// the attention of the int8 forward where the CPU has bfloat16 products: per image and head the
// scores q k^T scale and the output P v in bfloat16 with float32 sums (kernels/bgemm.h), the softmax
// in float32 between them; no mask, nothing kept for a backward
int vit_attention_bf16(float *out, const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t C, int64_t NH) {
    int64_t hs = C / NH;
    float scale = (float)(1.0 / sqrt((double)hs));
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *s = scratch_get(0, sizeof(float) * (size_t)(T * T + T)), *inv = s ? s + T * T : NULL;
        failed = !s;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < NH; h++) {
                int64_t o = b * T * C + h * hs;
                if (!s || !bgemm(true, T, T, hs, scale, q + o, C, k + o, C, 0, s, T)) {
                    failed = 1;
                    continue;
                }
                for (int64_t r = 0; r < T; r++) { // the softmax of each row of scores, its division left for the output
                    float *sr = s + r * T, m = -INFINITY, sum = 0;
#pragma omp simd reduction(max : m)
                    for (int64_t j = 0; j < T; j++) m = sr[j] > m ? sr[j] : m;
#pragma omp simd reduction(+ : sum)
                    for (int64_t j = 0; j < T; j++) {
                        sr[j] = exp_fast(sr[j] - m);
                        sum += sr[j];
                    }
                    inv[r] = 1.0f / sum;
                }
                if (!bgemm(false, T, hs, T, 1, s, T, v + o, C, 0, out + o, C)) {
                    failed = 1;
                    continue;
                }
                for (int64_t r = 0; r < T; r++) { // (exp(s - m) v) / sum: hs values a row, not T
                    float *yr = out + o + r * C;
#pragma omp simd
                    for (int64_t d = 0; d < hs; d++) yr[d] *= inv[r];
                }
            }
    }
    return failed ? -1 : 0;
}
