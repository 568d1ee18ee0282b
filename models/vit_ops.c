// vit_ops.c: the ViT's private fast paths, recorded on the tape through autograd/extend.h like any
// op: fused LoRA linear (saving [N, r] and the dropout mask as bits), linear
// with a residual (no separate sum), MLP with a residual (the pre-activation, not the GELU output),
// and the blocks built from them. Each has the same results as the composition of public ops it
// replaces (checked by gradchecks and against the unfused forms in the tests).
#include "vit_ops.h"

#include "../autograd/extend.h"
#include "../kernels/bgemm.h"
#include "../kernels/qgemm.h"
#include "../kernels/sgemm.h"
#include "vit_kernels.h"
#include "vit_layer.h"

#include <string.h>

static bool fits_linear(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *b) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "x", x) || !ag_arg(c, op, "w", w) || !ag_check_float(c, op, x, w) || (b && !ag_check_float(c, op, x, b)))
        return false;
    int64_t IC = x->ndim ? x->shape[x->ndim - 1] : -1;
    if (x->ndim == 0 || w->ndim != 2 || w->shape[1] != IC || (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
        ctx_fail(c, "%s: input %s and weight %s do not fit", op, shape_str(x, s1, sizeof s1), shape_str(w, s2, sizeof s2));
        return false;
    }
    return true;
}

static Tensor *out_like(Ctx *c, Tensor *x, int64_t last) {
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = last;
    return tensor_new(c, x->dtype, x->ndim, shape);
}

// ---- LoRA linear ----

// what the backward needs: contiguous x and w, t = dropout(x) A^T, the dropout keep-mask as bits
typedef struct {
    Tensor *x, *w, *t;
    uint8_t *mask; // [N, (IC + 7) / 8], NULL without dropout
    int64_t N, IC, OC, r;
    double scale, p;
} LoraSaved;

static void lora_bw(AgNode *n) {
    const LoraSaved *s = n->aux;
    Tensor *A = n->in[3], *B = n->in[4];
    bool fx;
    Tensor *gx = ag_grad_fresh(n->in[0], &fx), *gw = ag_grad_buf(n->in[1]), *gb = n->in[2] ? ag_grad_buf(n->in[2]) : NULL;
    Tensor *gA = ag_grad_buf(A), *gB = ag_grad_buf(B);
    const void *wp = gx ? ag_weight_packed(n->in[1], false) : NULL;
    int rc = AG_DISPATCH(s->x->dtype, lora_linear_backward, wp, gx ? gx->data : NULL, fx ? 0.0 : 1.0, gw ? gw->data : NULL,
                         gb ? gb->data : NULL, gA ? gA->data : NULL, gB ? gB->data : NULL, n->out->grad->data, s->mask, s->x->data,
                         s->w->data, A->data, B->data, s->t->data, s->N, s->IC, s->OC, s->r, s->scale, s->p);
    ag_weight_release(wp);
    if (rc != 0) ctx_fail(n->out->ctx, "lora_linear: out of memory in the backward");
}

Tensor *vit_lora_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *A, Tensor *B, double scale, double p, Rng *rng, bool training) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!fits_linear(c, "lora_linear", x, w, b) || !ag_arg(c, "lora_linear", "A", A) || !ag_arg(c, "lora_linear", "B", B) ||
        !ag_check_float(c, "lora_linear", x, A) || !ag_check_float(c, "lora_linear", x, B))
        return NULL;
    int64_t IC = w->shape[1], OC = w->shape[0], r = A->ndim == 2 ? A->shape[0] : -1;
    if (A->ndim != 2 || A->shape[1] != IC || B->ndim != 2 || B->shape[0] != OC || B->shape[1] != r) {
        ctx_fail(c, "lora_linear: A %s and B %s do not fit the weight [%lld, %lld]", shape_str(A, s1, sizeof s1),
                 shape_str(B, s2, sizeof s2), (long long)OC, (long long)IC);
        return NULL;
    }
    if (!(p >= 0 && p < 1)) {
        ctx_fail(c, "lora_linear: dropout %g outside [0, 1)", p);
        return NULL;
    }
    if (!training) p = 0;
    if (p > 0 && !rng) {
        ctx_fail(c, "lora_linear: argument rng is NULL (needed for dropout %g in training)", p);
        return NULL;
    }
    int64_t N = tensor_numel(x) / IC;
    uint64_t seed = rng ? rng->seed : 0, off = rng ? rng->offset : 0;
    if (p > 0) rng->offset += (uint64_t)(N * IC); // the mask's draws, as ag_dropout would take them
    Tensor *xc = tensor_contiguous(c, x), *wc = tensor_contiguous(c, w), *bc = b ? tensor_contiguous(c, b) : NULL;
    Tensor *Ac = tensor_contiguous(c, A), *Bc = tensor_contiguous(c, B);
    Tensor *y = out_like(c, x, OC), *t = tensor_new(c, x->dtype, 2, (int64_t[]){N, r});
    uint8_t *mask = p > 0 ? ctx_alloc_uninit(c, (size_t)(N * ((IC + 7) / 8))) : NULL;
    const void *wp = ag_weight_packed(w, true);
    int rc = AG_DISPATCH(x->dtype, lora_linear_forward, wp, y->data, t->data, mask, xc->data, wc->data, bc ? bc->data : NULL, Ac->data,
                         Bc->data, N, IC, OC, r, scale, p, seed, off);
    ag_weight_release(wp);
    if (rc != 0) {
        ctx_fail(c, "lora_linear: out of memory");
        return NULL;
    }
    AgNode *n = ag_record(c, "lora_linear", y, 5, (Tensor *[]){x, w, b, A, B}, lora_bw);
    LoraSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (LoraSaved){xc, wc, t, mask, N, IC, OC, r, scale, p};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}

// ---- linear with residual ----

// dres (+)= dout: a fresh residual gradient is a copy
static void residual_bw(Tensor *res, Tensor *g) {
    bool fr;
    Tensor *gr = ag_grad_fresh(res, &fr);
    if (!gr) return;
    if (fr) { // a copy in slices, one per thread
        size_t bytes = (size_t)tensor_numel(gr) * dtype_size(gr->dtype), slice = 1 << 18;
        int64_t ns = (int64_t)((bytes + slice - 1) / slice);
#pragma omp parallel for schedule(static) if (ns > 1)
        for (int64_t i = 0; i < ns; i++)
            memcpy((char *)gr->data + (size_t)i * slice, (const char *)g->data + (size_t)i * slice,
                   bytes - (size_t)i * slice < slice ? bytes - (size_t)i * slice : slice);
    } else
        AG_DISPATCH(g->dtype, unary_backward, UN_ADD_SCALAR, gr->data, g->data, g->data, g->data, tensor_numel(gr), 0.0, 0.0);
}

typedef struct {
    Tensor *x, *w; // contiguous
    int64_t N, IC, OC;
} LinResSaved;

static void linres_bw(AgNode *n) {
    const LinResSaved *s = n->aux;
    bool fx;
    Tensor *gx = ag_grad_fresh(n->in[0], &fx), *gw = ag_grad_buf(n->in[1]), *gb = n->in[2] ? ag_grad_buf(n->in[2]) : NULL;
    const void *wp = gx ? ag_weight_packed(n->in[1], false) : NULL;
    if (gx) AG_DISPATCH(s->x->dtype, linear_backward_dx, wp, gx->data, fx ? 0.0 : 1.0, n->out->grad->data, s->w->data, s->N, s->IC, s->OC);
    ag_weight_release(wp);
    AG_DISPATCH(s->x->dtype, linear_backward, NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data, s->x->data, s->w->data,
                s->N, s->IC, s->OC);
    residual_bw(n->in[3], n->out->grad);
}

Tensor *vit_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *res) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!fits_linear(c, "linear_residual", x, w, b) || !ag_arg(c, "linear_residual", "res", res) ||
        !ag_check_float(c, "linear_residual", x, res))
        return NULL;
    int64_t IC = w->shape[1], OC = w->shape[0], N = tensor_numel(x) / IC;
    Tensor *y = out_like(c, x, OC);
    if (!tensor_same_shape(y, res)) {
        ctx_fail(c, "linear_residual: residual %s is not the output's shape %s", shape_str(res, s1, sizeof s1),
                 shape_str(y, s2, sizeof s2));
        return NULL;
    }
    Tensor *xc = tensor_contiguous(c, x), *wc = tensor_contiguous(c, w), *bc = b ? tensor_contiguous(c, b) : NULL;
    Tensor *rc = tensor_contiguous(c, res);
    QWeight *q = ag_weight_int8(c, 4, (Tensor *[]){x, w, b, res}, w);
    if (q) return ag_qlinear(c, "linear_residual", q, y, xc, bc, rc); // nothing is recorded: the int8 product, and done
    const void *wp = ag_weight_packed(w, true);
    AG_DISPATCH(x->dtype, linear_residual_forward, wp, y->data, xc->data, wc->data, bc ? bc->data : NULL, rc->data, N, IC, OC);
    ag_weight_release(wp);
    AgNode *n = ag_record(c, "linear_residual", y, 4, (Tensor *[]){x, w, b, res}, linres_bw);
    LinResSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (LinResSaved){xc, wc, N, IC, OC};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}

// ---- MLP with residual (frozen weights) ----

typedef struct {
    Tensor *dgelu, *w1, *w2; // the GELU's derivative at the pre-activation [N, F]; the contiguous weights
    int64_t N, D, F;
} MlpSaved;

static void mlp_bw(AgNode *n) {
    const MlpSaved *s = n->aux;
    Tensor *g = n->out->grad;
    bool fx;
    Tensor *gx = ag_grad_fresh(n->in[0], &fx);
    if (gx) {
        const void *w1p = ag_weight_packed(s->w1, false), *w2p = ag_weight_packed(s->w2, false);
        int rc = AG_DISPATCH(s->dgelu->dtype, mlp_backward, w1p, w2p, gx->data, fx ? 0.0 : 1.0, g->data, s->dgelu->data, s->w1->data,
                             s->w2->data, s->N, s->D, s->F);
        ag_weight_release(w1p), ag_weight_release(w2p);
        if (rc != 0) ctx_fail(n->out->ctx, "mlp: out of memory for the backward's rows");
    }
    residual_bw(n->in[1], g);
}

Tensor *vit_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, Tensor *w2, Tensor *b2, Tensor *res) {
    char s1[SHAPE_STR_BUF];
    if (!fits_linear(c, "mlp", x, w1, b1) || !fits_linear(c, "mlp", x, w1, NULL) || !ag_arg(c, "mlp", "w2", w2) ||
        !ag_arg(c, "mlp", "b1", b1) || !ag_arg(c, "mlp", "b2", b2) || !ag_arg(c, "mlp", "res", res) || !ag_check_float(c, "mlp", x, w2) ||
        !ag_check_float(c, "mlp", x, res))
        return NULL;
    int64_t D = w1->shape[1], F = w1->shape[0], N = tensor_numel(x) / D;
    if (w2->ndim != 2 || w2->shape[0] != D || w2->shape[1] != F || b2->ndim != 1 || b2->shape[0] != D || !tensor_same_shape(x, res)) {
        ctx_fail(c, "mlp: fc2 %s, biases or residual do not fit fc1 [%lld, %lld]", shape_str(w2, s1, sizeof s1), (long long)F,
                 (long long)D);
        return NULL;
    }
    if (w1->requires_grad || b1->requires_grad || w2->requires_grad || b2->requires_grad) {
        ctx_fail(c, "mlp: the fused MLP is for frozen weights (use linear and gelu for trainable ones)");
        return NULL;
    }
    Tensor *xc = tensor_contiguous(c, x), *rc = tensor_contiguous(c, res);
    Tensor *w1c = tensor_contiguous(c, w1), *w2c = tensor_contiguous(c, w2), *b1c = tensor_contiguous(c, b1),
           *b2c = tensor_contiguous(c, b2);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    bool keep = ag_will_record(c, 2, (Tensor *[]){x, res});
    QWeight *q1 = ag_weight_int8(c, 2, (Tensor *[]){x, res}, w1), *q2 = ag_weight_int8(c, 2, (Tensor *[]){x, res}, w2);
    if (q1 && q2) { // nothing is recorded: both products in int8, and done
        if (vit_mlp_forward_int8(q1, q2, y->data, xc->data, rc->data, b1c->data, b2c->data, N) == 0) return y;
        ctx_fail(c, "mlp: out of memory for the int8 input rows");
        return NULL;
    }
    Tensor *h = tensor_new(c, x->dtype, 2, (int64_t[]){N, F}); // the pre-activation (kept for the backward when recorded)
    const void *w1p = ag_weight_packed(w1c, true), *w2p = ag_weight_packed(w2c, true);
    int rcode = h ? AG_DISPATCH(x->dtype, mlp_forward, w1p, w2p, y->data, h->data, keep, xc->data, rc->data, w1c->data, b1c->data,
                                w2c->data, b2c->data, N, D, F)
                  : -1;
    ag_weight_release(w1p), ag_weight_release(w2p);
    if (rcode != 0) {
        ctx_fail(c, "mlp: out of memory for its rows");
        return NULL;
    }
    AgNode *n = ag_record(c, "mlp", y, 2, (Tensor *[]){x, res}, mlp_bw);
    MlpSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (MlpSaved){h, w1c, w2c, N, D, F};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}

// ---- patch embedding: the stride = kernel convolution as im2col + GEMM ----

static void im2col_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(gx->dtype, im2col_patch_backward, gx->data, n->out->grad->data, n->i[0], n->i[1], n->i[2], n->i[3], n->i[4]);
}

static Tensor *im2col_patch(Ctx *c, Tensor *x, int64_t p) {
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    Tensor *xc = tensor_contiguous(c, x);
    Tensor *cols = tensor_new(c, x->dtype, 3, (int64_t[]){B, (H / p) * (W / p), C * p * p});
    AG_DISPATCH(x->dtype, im2col_patch_forward, cols->data, xc->data, B, C, H, W, p);
    AgNode *n = ag_record(c, "im2col_patch", cols, 1, &x, im2col_bw);
    if (n) {
        int64_t q[] = {B, C, H, W, p};
        memcpy(n->i, q, sizeof q);
    }
    return cols;
}

Tensor *vit_patch_embed(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "patch_embed", "x", x) || !ag_arg(c, "patch_embed", "w", w) || !ag_check_float(c, "patch_embed", x, w)) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1] || w->shape[2] != w->shape[3] || w->shape[2] <= 0 ||
        x->shape[2] % w->shape[2] || x->shape[3] % w->shape[3]) {
        ctx_fail(c, "patch_embed: input %s and weight %s do not fit (square kernel dividing H and W)", shape_str(x, s1, sizeof s1),
                 shape_str(w, s2, sizeof s2));
        return NULL;
    }
    int64_t D = w->shape[0], p = w->shape[2];
    Tensor *cols = im2col_patch(c, x, p);
    QWeight *q = ag_weight_int8(c, 3, (Tensor *[]){x, w, b}, w); // w's int8 copy is the matrix [D, C p p]
    if (q && (!b || (b->dtype == DT_F32 && b->ndim == 1 && b->shape[0] == D))) {
        Tensor *y = cols ? out_like(c, cols, D) : NULL, *bc = b ? tensor_contiguous(c, b) : NULL;
        if (b && !bc) return NULL;
        return ag_qlinear(c, "patch_embed", q, y, cols, bc, NULL);
    }
    Tensor *wf = ag_reshape(c, w, 2, (int64_t[]){D, w->shape[1] * p * p});
    return ag_linear(c, cols, wf, b); // [B, N, D]
}

// ---- the blocks: a projection that may carry LoRA, residual sums, the MLP, self-attention ----

Tensor *vit_proj(Ctx *c, const NnLinear *l, const NnLora *lo, Tensor *x, Rng *rng, bool training) {
    if (!nn_lora_active(lo)) return ag_linear(c, x, l->weight, l->bias);
    // dropout on the LoRA branch only; fused, the mask is kept as bits
    return vit_lora_linear(c, x, l->weight, l->bias, lo->A, lo->B, lo->scale, lo->dropout, rng, training);
}

Tensor *vit_proj_residual(Ctx *c, const NnLinear *l, const NnLora *lo, Tensor *x, Tensor *res, Rng *rng, bool training) {
    if (nn_lora_active(lo)) return ag_add(c, res, vit_proj(c, l, lo, x, rng, training));
    return vit_linear_residual(c, x, l->weight, l->bias, res);
}

Tensor *vit_mlp_block(Ctx *c, const NnLinear *fc1, const NnLora *lo1, const NnLinear *fc2, const NnLora *lo2, Tensor *x, Tensor *res,
                      Rng *rng, bool training) {
    bool frozen = !fc1->weight->requires_grad && !fc2->weight->requires_grad && fc1->bias && fc2->bias && !fc1->bias->requires_grad &&
                  !fc2->bias->requires_grad;
    if (frozen && !nn_lora_active(lo1) && !nn_lora_active(lo2)) // the fused row-blocked MLP
        return vit_mlp_residual(c, x, fc1->weight, fc1->bias, fc2->weight, fc2->bias, res);
    return vit_proj_residual(c, fc2, lo2, ag_gelu(c, vit_proj(c, fc1, lo1, x, rng, training)), res, rng, training);
}

// query, key and value in int8 with x's rows quantized once: false (nothing done) unless all three
// have int8 copies, no LoRA branch, the same input rows, and record nothing
static bool qkv_int8(Ctx *c, const NnLinear *const proj[3], const NnLora *const lora[3], Tensor *xq, Tensor *x, Tensor *out[3]) {
    const QWeight *q[3];
    float *ys[3];
    const float *bs[3];
    if (xq != x || !x || x->ndim == 0) return false;
    for (int i = 0; i < 3; i++) {
        Tensor *w = proj[i]->weight, *b = proj[i]->bias;
        if (nn_lora_active(lora[i]) || !(q[i] = ag_weight_int8(c, 3, (Tensor *[]){x, w, b}, w)) || q[i]->IC != x->shape[x->ndim - 1] ||
            (b && (b->dtype != DT_F32 || b->ndim != 1 || b->shape[0] != q[i]->OC)))
            return false;
    }
    Tensor *xc = tensor_contiguous(c, x);
    for (int i = 0; i < 3; i++) {
        Tensor *b = proj[i]->bias ? tensor_contiguous(c, proj[i]->bias) : NULL;
        if (!(out[i] = out_like(c, x, q[i]->OC)) || (proj[i]->bias && !b)) return false;
        ys[i] = out[i]->data, bs[i] = b ? b->data : NULL;
    }
    if (!qlinear_many(3, q, ys, xc->data, bs, NULL, tensor_numel(x) / q[0]->IC)) {
        ctx_fail(c, "attention: out of memory for the int8 input rows");
        out[0] = NULL;
    }
    return true;
}

// the attention between the int8 products: its products in bfloat16 where the CPU has them
// (CGRAD_BF16=off keeps float32; docs/deit_lora.md gives the accuracy), else the float32 op
static Tensor *attention_int8(Ctx *c, Tensor *qkv[3], int NH) {
    Tensor *q = qkv[0];
    if (!q || !bgemm_available() || q->ndim != 3 || q->shape[2] % NH) return ag_attention(c, qkv[0], qkv[1], qkv[2], NH, NULL);
    Tensor *y = tensor_new(c, DT_F32, 3, q->shape);
    if (!y) return NULL;
    if (vit_attention_bf16(y->data, q->data, qkv[1]->data, qkv[2]->data, q->shape[0], q->shape[1], q->shape[2], NH) != 0) {
        ctx_fail(c, "attention: out of memory for its scores");
        return NULL;
    }
    return y;
}

Tensor *vit_attention_block(Ctx *c, const NnLinear *const proj[4], const NnLora *const lora[4], Tensor *xq, Tensor *x, Tensor *res, int NH,
                            Rng *rng, bool training, Tensor **probs) {
    Tensor *qkv[3];
    if (qkv_int8(c, proj, lora, xq, x, qkv))
        return vit_proj_residual(c, proj[3], lora[3],
                                 probs ? ag_attention(c, qkv[0], qkv[1], qkv[2], NH, probs) : attention_int8(c, qkv, NH), res, rng,
                                 training);
    Tensor *q = vit_proj(c, proj[0], lora[0], xq, rng, training);
    Tensor *k = vit_proj(c, proj[1], lora[1], x, rng, training);
    Tensor *v = vit_proj(c, proj[2], lora[2], x, rng, training);
    return vit_proj_residual(c, proj[3], lora[3], ag_attention(c, q, k, v, NH, probs), res, rng, training);
}

// ---- a whole encoder layer for inference, in one parallel region ----

// l as the fused layer's linear (w [OC, IC], packed; biases and LoRA factors float32 and
// contiguous); false when it does not fit or has no packing
static bool fused_linear(const NnLinear *l, const NnLora *lo, int64_t OC, int64_t IC, bool need_bias, bool lora_ok, VitLinearF32 *out) {
    Tensor *w = l->weight, *b = l->bias;
    *out = (VitLinearF32){0};
    bool lora = nn_lora_active(lo);
    if (!w || w->dtype != DT_F32 || w->int8 || w->ndim != 2 || w->shape[0] != OC || w->shape[1] != IC || !tensor_is_contiguous(w) ||
        (need_bias && !b) || (lora && !lora_ok))
        return false;
    if (b && (b->dtype != DT_F32 || b->ndim != 1 || b->shape[0] != OC || !tensor_is_contiguous(b))) return false;
    if (lora) {
        Tensor *A = lo->A, *B = lo->B;
        if (A->dtype != DT_F32 || B->dtype != DT_F32 || A->ndim != 2 || B->ndim != 2 || A->shape[1] != IC || B->shape[0] != OC ||
            B->shape[1] != A->shape[0] || !tensor_is_contiguous(A) || !tensor_is_contiguous(B))
            return false;
        out->A = A->data, out->B = B->data, out->r = A->shape[0], out->scale = lo->scale;
    }
    out->w = w->data, out->bias = b ? b->data : NULL;
    return (out->wp = ag_weight_packed(w, true)) != NULL;
}

static bool layer_norm_fits(const NnLayerNorm *n, int64_t D) {
    const Tensor *t[] = {n->weight, n->bias};
    for (int i = 0; i < 2; i++)
        if (!t[i] || t[i]->dtype != DT_F32 || t[i]->ndim != 1 || t[i]->shape[0] != D || !tensor_is_contiguous(t[i])) return false;
    return true;
}

// the layer with int8 products when every projection has an int8 copy (and none is trainable);
// false when it does not apply
static bool layer_int8(Ctx *c, const NnLayerNorm *const ln[2], const NnLinear *const lin[6], const NnLora *const lora[6], Tensor *h, int NH,
                       bool cls_only, Tensor **out) {
    int64_t B = h->shape[0], T = h->shape[1], D = h->shape[2], Tq = cls_only ? 1 : T;
    const QWeight *q[6];
    const float *bias[6];
    for (int i = 0; i < 6; i++) {
        Tensor *w = lin[i]->weight, *b = lin[i]->bias;
        int64_t OC = i == 4 ? w->shape[0] : D, IC = i == 5 ? lin[4]->weight->shape[0] : D;
        if (nn_lora_active(lora[i]) || w->requires_grad || (b && b->requires_grad) || !(q[i] = ag_weight_int8(c, 1, &h, w)) ||
            q[i]->OC != OC || q[i]->IC != IC || (i >= 4 && !b) ||
            (b && (b->dtype != DT_F32 || b->ndim != 1 || b->shape[0] != OC || !tensor_is_contiguous(b))))
            return false;
        bias[i] = b ? b->data : NULL;
    }
    VitLayerInt8 L = {ln[0]->weight->data,
                      ln[0]->bias->data,
                      ln[1]->weight->data,
                      ln[1]->bias->data,
                      ln[0]->eps,
                      ln[1]->eps,
                      q[0],
                      q[1],
                      q[2],
                      q[3],
                      q[4],
                      q[5],
                      bias[0],
                      bias[1],
                      bias[2],
                      bias[3],
                      bias[4],
                      bias[5],
                      D,
                      q[4]->OC,
                      NH};
    Tensor *hc = tensor_contiguous(c, h), *w = tensor_new(c, DT_F32, 1, (int64_t[]){(int64_t)vit_layer_int8_work_floats(&L, B, T, Tq)});
    Tensor *y = tensor_new(c, DT_F32, 3, (int64_t[]){B, Tq, D});
    if (hc && w && y) {
        if (vit_layer_forward_int8(&L, y->data, hc->data, B, T, Tq, w->data) == 0)
            *out = y;
        else
            ctx_fail(c, "encoder layer: out of memory for its int8 rows");
    }
    return true;
}

bool vit_layer_fused(Ctx *c, const NnLayerNorm *const ln[2], const NnLinear *const lin[6], const NnLora *const lora[6], Tensor *h, int NH,
                     bool cls_only, bool training, Tensor **out) {
    *out = NULL;
    if (training || !h || h->dtype != DT_F32 || h->ndim != 3 || !sgemm_fast_available() || NH <= 0 || h->shape[2] % NH) return false;
    Tensor *in[1 + 4 + 12 + 12];
    int nin = 0;
    in[nin++] = h;
    for (int i = 0; i < 2; i++) in[nin++] = ln[i]->weight, in[nin++] = ln[i]->bias;
    for (int i = 0; i < 6; i++) {
        in[nin++] = lin[i]->weight, in[nin++] = lin[i]->bias;
        if (nn_lora_active(lora[i])) in[nin++] = lora[i]->A, in[nin++] = lora[i]->B;
    }
    if (ag_will_record(c, nin, in)) return false;
    int64_t B = h->shape[0], T = h->shape[1], D = h->shape[2], F = lin[4]->weight ? lin[4]->weight->shape[0] : 0;
    bool norms = layer_norm_fits(ln[0], D) && layer_norm_fits(ln[1], D) && T > 0;
    int nint8 = 0;
    for (int i = 0; i < 6; i++) nint8 += lin[i]->weight && lin[i]->weight->int8 && lin[i]->weight->ndim == 2;
    if (nint8 == 6 && norms && F > 0 && lin[5]->weight->shape[1] == F) return layer_int8(c, ln, lin, lora, h, NH, cls_only, out);
    VitLayerF32 L = {.eps1 = ln[0]->eps, .eps2 = ln[1]->eps, .D = D, .F = F, .NH = NH};
    VitLinearF32 *l[6] = {&L.q, &L.k, &L.v, &L.o, &L.fc1, &L.fc2};
    static const int64_t oc_is_f[6] = {0, 0, 0, 0, 1, 0}, ic_is_f[6] = {0, 0, 0, 0, 0, 1};
    bool fits = norms;
    for (int i = 0; i < 6 && fits; i++) fits = fused_linear(lin[i], lora[i], oc_is_f[i] ? F : D, ic_is_f[i] ? F : D, i >= 3, i < 3, l[i]);
    size_t work = fits ? vit_layer_work_floats(&L, B, T) : 0;
    if (work) {
        L.ln1_w = ln[0]->weight->data, L.ln1_b = ln[0]->bias->data, L.ln2_w = ln[1]->weight->data, L.ln2_b = ln[1]->bias->data;
        Tensor *hc = tensor_contiguous(c, h), *w = tensor_new(c, DT_F32, 1, (int64_t[]){(int64_t)work});
        Tensor *y = tensor_new(c, DT_F32, 3, (int64_t[]){B, cls_only ? 1 : T, D});
        if (hc && w && y) {
            if (vit_layer_forward_f32(&L, y->data, hc->data, B, T, cls_only ? 1 : T, w->data) == 0)
                *out = y;
            else
                ctx_fail(c, "encoder layer: out of memory for its rows");
        }
    }
    for (int i = 0; i < 6; i++) ag_weight_release(l[i]->wp);
    return work > 0;
}
