// vit_layer.c: a whole encoder layer for inference in one parallel region (vit_layer.h): blocks of
// rows handed out dynamically, barriers only where keys and values must be complete. Each row runs
// the same instructions as the ops it replaces (the row pieces of vit_kernels.h and kernels.h).
#include "vit_layer.h"

#include "../kernels/bgemm.h"
#include "../kernels/qgemm.h"
#include "../kernels/scratch.h"
#include "../kernels/sgemm.h"
#include "vit_kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// ---- one encoder layer in one parallel region (inference) ----

// rows per block: about four blocks a thread (dynamic: a thread held up by the OS is not waited
// for), a multiple of 8, at most the MLP's 48
static int64_t layer_rows(int64_t N, int nt) {
    int64_t r = (N + 4 * nt - 1) / (4 * nt);
    r = (r + 7) / 8 * 8;
    return r < 8 ? 8 : r > MLP_ROWS ? MLP_ROWS : r;
}

// this thread's scratch of n floats, called by every thread of a region: NULL for all of them when
// any thread's cannot be had (*failed is then set); a barrier, so that all take the same branch
static float *team_scratch(size_t n, int *failed) {
    float *m = scratch_get(0, n * sizeof(float));
    if (!m) {
#pragma omp atomic write
        *failed = 1;
    }
#pragma omp barrier
    int stop;
#pragma omp atomic read
    stop = *failed;
    return stop ? NULL : m;
}

// out [n, OC] = x W^T + bias (rows of x lda apart) as linear_into does it, then the LoRA branch per
// row (as lora_linear_forward without dropout); ap, bt: the padded factors (NULL: none)
static void layer_linear(const VitLinearF32 *l, const float *ap, const float *bt, int64_t rp, float *out, const float *x, int64_t lda,
                         int64_t n, int64_t IC, int64_t OC, float *tl, float *acc) {
    if (l->bias)
        sgemm_packed_bias(false, n, OC, IC, x, lda, l->wp, out, OC, l->bias, NULL, OC);
    else
        sgemm_packed(false, n, OC, IC, 1.0f, x, lda, l->wp, 0.0f, out, OC);
    if (ap)
        for (int64_t i = 0; i < n; i++) lora_row_f32(out + i * OC, NULL, l->r, x + i * lda, ap, bt, tl, acc, IC, OC, rp, l->scale);
}

// LN1's rows, keys and values [N, D] each, rounded up to 64 bytes: the packings after them are aligned
static size_t rows_floats(int64_t N, int64_t D) { return ((size_t)(3 * N * D) + 15) / 16 * 16; }

size_t vit_layer_work_floats(const VitLayerF32 *L, int64_t B, int64_t T) {
    int64_t hs = L->D / L->NH;
    size_t kp = sgemm_pack_floats(T, hs), vp = sgemm_pack_floats(hs, T);
    if (!kp || !vp) return 0;
    return rows_floats(B * T, L->D) + (size_t)(B * L->NH) * (kp + vp);
}

typedef struct {
    float *ap, *bt; // padded LoRA factors, or NULL
    int64_t rp;
} PaddedLora;

static bool pad_lora(const VitLinearF32 *l, int64_t IC, int64_t OC, PaddedLora *p) {
    *p = (PaddedLora){0};
    if (!l->A) return true;
    p->rp = (l->r + LORA_G - 1) / LORA_G * LORA_G;
    p->ap = lora_pad_rows_f32(l->A, false, l->r, p->rp, IC), p->bt = lora_pad_rows_f32(l->B, true, l->r, p->rp, OC);
    return p->ap && p->bt;
}

// the attention of query rows [i, i + m) of image b (q, y [m, D] from qb, ab) over its packed keys
// and values, head by head; s [m, T] scratch
static void layer_attention(const VitLayerF32 *L, float *ab, const float *qb, const float *kp, const float *vp, size_t kpf, size_t vpf,
                            int64_t b, int64_t m, int64_t T, float *s) {
    int64_t D = L->D, hs = D / L->NH;
    float scale = (float)(1.0 / sqrt((double)hs)); // as ag_attention's, rounded to float by the product
    for (int64_t h = 0; h < L->NH; h++) {
        size_t bh = (size_t)(b * L->NH + h);
        sgemm_packed(false, m, T, hs, scale, qb + h * hs, D, kp + bh * kpf, 0.0f, s, T);
        softmax_rows_lse_f32(s, NULL, m, T);
        sgemm_packed(false, m, hs, T, 1.0f, s, T, vp + bh * vpf, 0.0f, ab + h * hs, D);
    }
}

int vit_layer_forward_f32(const VitLayerF32 *L, float *out, const float *h, int64_t B, int64_t T, int64_t Tq, float *work) {
    int64_t D = L->D, F = L->F, NH = L->NH, hs = D / NH, N = B * T, Nq = B * Tq, step = Tq == T ? 1 : T;
    size_t kpf = sgemm_pack_floats(T, hs), vpf = sgemm_pack_floats(hs, T);
    float *y = work, *k = y + N * D, *v = k + N * D, *kp = work + rows_floats(N, D), *vp = kp + (size_t)(B * NH) * kpf;
    int nt = omp_get_max_threads();
    int64_t ra = layer_rows(N, nt), rb = layer_rows(Nq, nt), na = (N + ra - 1) / ra, nb = (Nq + rb - 1) / rb;
    PaddedLora lq, lk, lv;
    bool ok = pad_lora(&L->q, D, D, &lq) & pad_lora(&L->k, D, D, &lk) & pad_lora(&L->v, D, D, &lv);
    int64_t rmax = lq.rp > lk.rp ? lq.rp : lk.rp;
    rmax = lv.rp > rmax ? lv.rp : rmax;
    // a thread's rows: q, attention, h1, LN2 [rb, D]; scores [rb, T]; pre-activation, GELU [rb, F];
    // the LoRA rows' scratch [rmax + D]
    size_t mine = (size_t)(rb * (4 * D + T + 2 * F) + rmax + D);
    int failed = !ok;
    if (ok)
#pragma omp parallel shared(failed)
    {
        float *m = team_scratch(mine, &failed);
        float *qb = m, *ab = qb + rb * D, *h1 = ab + rb * D, *y2 = h1 + rb * D, *s = y2 + rb * D, *pre = s + rb * T, *a = pre + rb * F,
              *tl = a + rb * F, *acc = tl + rmax;
        if (m) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < na; c++) { // LN1, keys and values of all tokens
                int64_t lo = c * ra, n = lo + ra < N ? ra : N - lo;
                layernorm_rows_f32(y + lo * D, NULL, NULL, h + lo * D, L->ln1_w, L->ln1_b, n, D, L->eps1);
                layer_linear(&L->k, lk.ap, lk.bt, lk.rp, k + lo * D, y + lo * D, D, n, D, D, tl, acc);
                layer_linear(&L->v, lv.ap, lv.bt, lv.rp, v + lo * D, y + lo * D, D, n, D, D, tl, acc);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t bh = 0; bh < B * NH; bh++) { // each head's keys and values packed once
                int64_t b = bh / NH, o = b * T * D + (bh % NH) * hs;
                sgemm_pack_into(kp + (size_t)bh * kpf, true, T, hs, k + o, D);
                sgemm_pack_into(vp + (size_t)bh * vpf, false, hs, T, v + o, D);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < nb; c++) { // blocks of query rows through the rest of the layer
                int64_t lo = c * rb, n = lo + rb < Nq ? rb : Nq - lo;
                layer_linear(&L->q, lq.ap, lq.bt, lq.rp, qb, y + lo * step * D, step * D, n, D, D, tl, acc);
                for (int64_t i = lo, e; i < lo + n; i = e) { // the block's rows image by image
                    int64_t b = i / Tq;
                    e = (b + 1) * Tq < lo + n ? (b + 1) * Tq : lo + n;
                    layer_attention(L, ab + (i - lo) * D, qb + (i - lo) * D, kp, vp, kpf, vpf, b, e - i, T, s);
                }
                sgemm_packed_bias(false, n, D, D, ab, D, L->o.wp, h1, D, L->o.bias, h + lo * step * D, step * D);
                layernorm_rows_f32(y2, NULL, NULL, h1, L->ln2_w, L->ln2_b, n, D, L->eps2);
                mlp_rows_f32(L->fc1.wp, L->fc2.wp, out + lo * D, pre, a, false, y2, h1, L->fc1.w, L->fc1.bias, L->fc2.w, L->fc2.bias, n, D,
                             F);
            }
        }
    }
    free(lq.ap), free(lq.bt), free(lk.ap), free(lk.bt), free(lv.ap), free(lv.bt);
    return failed ? -1 : 0;
}

// ---- the same with int8 products ----

size_t vit_layer_int8_work_floats(const VitLayerInt8 *L, int64_t B, int64_t T, int64_t Tq) {
    return (size_t)((3 * B * T + 2 * B * Tq) * L->D); // LN1, keys, values [N, D]; queries, attention [B Tq, D]
}

// rows [lo, lo + n) of the layer's first part: LN1, then keys and values, and queries (all rows,
// or the [CLS] rows among these for the [CLS]-only layer), the input rows quantized once
static bool int8_rows_in(const VitLayerInt8 *L, float *y, float *qb, float *k, float *v, const float *h, int64_t lo, int64_t n, int64_t T,
                         int64_t Tq) {
    int64_t D = L->D;
    layernorm_rows_f32(y + lo * D, NULL, NULL, h + lo * D, L->ln1_w, L->ln1_b, n, D, L->eps1);
    const QWeight *qs[3] = {L->k, L->v, L->q};
    float *ys[3] = {k + lo * D, v + lo * D, qb + lo * D};
    const float *bs[3] = {L->bk, L->bv, L->bq};
    if (!qlinear_many(Tq == T ? 3 : 2, qs, ys, y + lo * D, bs, NULL, n)) return false;
    for (int64_t r = (lo + T - 1) / T * T; Tq != T && r < lo + n; r += T) // the [CLS] rows: one query each
        if (!qlinear(L->q, qb + r / T * D, y + r * D, L->bq, NULL, 1)) return false;
    return true;
}

// head h of image b for its queries [i0, i0 + m): att = softmax(q k^T scale) v (bfloat16 products
// when bf16, else float32 ones as ag_attention's); s [m, T] + [m] scratch
static bool int8_head(const VitLayerInt8 *L, float *att, const float *qb, const float *k, const float *v, int64_t b, int64_t h, int64_t i0,
                      int64_t m, int64_t T, int64_t Tq, bool bf16, float *s) {
    int64_t D = L->D, hs = D / L->NH, oq = (b * Tq + i0) * D + h * hs, ok = b * T * D + h * hs;
    float scale = (float)(1.0 / sqrt((double)hs));
    if (bf16) return attention_head_bf16(att + oq, qb + oq, k + ok, v + ok, m, T, D, hs, scale, s, s + m * T);
    if (!sgemm_fast(false, true, m, T, hs, scale, qb + oq, D, k + ok, D, 0.0f, s, T)) return false;
    softmax_rows_lse_f32(s, NULL, m, T);
    return sgemm_fast(false, false, m, hs, T, 1.0f, s, T, v + ok, D, 0.0f, att + oq, D);
}

int vit_layer_forward_int8(const VitLayerInt8 *L, float *out, const float *h, int64_t B, int64_t T, int64_t Tq, float *work) {
    int64_t D = L->D, F = L->F, NH = L->NH, N = B * T, Nq = B * Tq;
    float *y = work, *k = y + N * D, *v = k + N * D, *qb = v + N * D, *att = qb + Nq * D;
    bool bf16 = Tq == T && bgemm_available();
    int nt = omp_get_max_threads();
    int64_t ra = layer_rows(N, nt), rb = layer_rows(Nq, nt), na = (N + ra - 1) / ra, nb = (Nq + rb - 1) / rb;
    // the heads' queries in blocks when there are fewer than two heads a thread (batch 1: three heads,
    // two threads), each block's keys and values packed again by bgemm
    int64_t nqb = B * NH >= 2 * nt ? 1 : (2 * nt + B * NH - 1) / (B * NH), qbr = (Tq + nqb - 1) / nqb;
    nqb = (Tq + qbr - 1) / qbr;
    // a thread's scratch: a head's scores and inverse sums; h1, LN2 and gathered residual rows [rb, D]; the MLP's [rb, F]
    size_t sfl = (size_t)(T * T + T), mine = sfl + (size_t)(rb * (3 * D + F));
    int failed = 0;
#pragma omp parallel shared(failed)
    {
        float *m = team_scratch(mine, &failed);
        bool ok = true;
        float *s = m, *h1 = s + sfl, *y2 = h1 + rb * D, *rg = y2 + rb * D, *a = rg + rb * D;
        if (m) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < na; c++) {
                int64_t lo = c * ra, n = lo + ra < N ? ra : N - lo;
                ok = ok && int8_rows_in(L, y, qb, k, v, h, lo, n, T, Tq);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < B * NH * nqb; it++) { // (image, head, block of queries)
                int64_t bh = it / nqb, i0 = it % nqb * qbr, m = i0 + qbr < Tq ? qbr : Tq - i0;
                ok = ok && int8_head(L, att, qb, k, v, bh / NH, bh % NH, i0, m, T, Tq, bf16, s);
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t c = 0; c < nb; c++) { // the rest of the layer, by blocks of query rows
                int64_t lo = c * rb, n = lo + rb < Nq ? rb : Nq - lo;
                const float *res = h + lo * D;
                if (Tq != T) { // the [CLS] rows' residuals, gathered
                    for (int64_t i = 0; i < n; i++) memcpy(rg + i * D, h + (lo + i) * T * D, sizeof(float) * (size_t)D);
                    res = rg;
                }
                ok = ok && qlinear(L->o, h1, att + lo * D, L->bo, res, n);
                if (ok) layernorm_rows_f32(y2, NULL, NULL, h1, L->ln2_w, L->ln2_b, n, D, L->eps2);
                ok = ok && mlp_rows_int8(L->fc1, L->fc2, out + lo * D, a, y2, h1, L->b1, L->b2, n);
            }
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}
