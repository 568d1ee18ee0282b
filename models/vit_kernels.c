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

// a block of the int8 MLP's rows on this thread: a [rows, F] = gelu(x w1^T + b1), out = res + a w2^T
// + b2; false when the quantized rows have no memory. Not inlined: the fused layer runs the same code
__attribute__((noinline)) bool mlp_rows_int8(const QWeight *w1, const QWeight *w2, float *out, float *a, const float *x, const float *res,
                                             const float *b1, const float *b2, int64_t rows) {
    int64_t F = w1->OC;
    if (!qlinear(w1, a, x, b1, NULL, rows)) return false;
#pragma omp simd
    for (int64_t i = 0; i < rows * F; i++) a[i] = gelu_f32(a[i]);
    return qlinear(w2, out, a, b2, res, rows);
}

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
            if (!a || !mlp_rows_int8(w1, w2, out + lo * D, a, x + lo * D, res + lo * D, b1, b2, rows)) failed = 1;
        }
    }
    return failed ? -1 : 0;
}

// the attention of the int8 forward where the CPU has bfloat16 products: per image and head the
// scores q k^T scale and the output P v in bfloat16 with float32 sums (kernels/bgemm.h), the softmax
// in float32 between them; no mask, nothing kept for a backward
// one image's head for m of its queries: out [m, hs] (rows C apart, as q; k, v [T, ..] too) =
// softmax(q k^T scale) v with both products in bfloat16; s [m, T] and inv [m] scratch; false when
// bgemm declines. Not inlined: the fused layer runs the same code
__attribute__((noinline)) bool attention_head_bf16(float *out, const float *q, const float *k, const float *v, int64_t m, int64_t T,
                                                   int64_t C, int64_t hs, float scale, float *s, float *inv) {
    if (!bgemm(true, m, T, hs, scale, q, C, k, C, 0, s, T)) return false;
    for (int64_t r = 0; r < m; r++) { // the softmax of each row of scores, its division left for the output
        float *sr = s + r * T, mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < T; j++) mx = sr[j] > mx ? sr[j] : mx;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < T; j++) {
            sr[j] = exp_fast(sr[j] - mx);
            sum += sr[j];
        }
        inv[r] = 1.0f / sum;
    }
    if (!bgemm(false, m, hs, T, 1, s, T, v, C, 0, out, C)) return false;
    for (int64_t r = 0; r < m; r++) { // (exp(s - m) v) / sum: hs values a row, not T
        float *yr = out + r * C;
#pragma omp simd
        for (int64_t d = 0; d < hs; d++) yr[d] *= inv[r];
    }
    return true;
}

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
                if (!s || !attention_head_bf16(out + o, q + o, k + o, v + o, T, T, C, hs, scale, s, inv)) failed = 1;
            }
    }
    return failed ? -1 : 0;
}
