// ops_attention.c: fused multi-head self-attention, softmax(q k^T / sqrt(hs)) v per head: with the
// probabilities kept (when asked for, as explanations do), or without them (recomputed in the backward).
#include "extend.h"

#include <math.h>

// the saved state with the probabilities kept
typedef struct {
    Tensor *q, *k, *v, *att; // contiguous inputs; the probabilities [B, NH, T, Tk]
    int64_t B, T, Tk, C, NH;
    double scale;
} AttnSaved;

static void attention_bw(AgNode *n) {
    const AttnSaved *s = n->aux;
    Tensor *q = s->q, *k = s->k, *v = s->v, *att = s->att;
    bool fq = false, fk = false, fv = false; // fresh gradients are written, not added to
    Tensor *dq, *dk, *dv;
    if (n->in[0] == n->in[1] || n->in[1] == n->in[2] || n->in[0] == n->in[2]) { // aliases: accumulate into zeros
        dq = ag_grad_buf(n->in[0]), dk = ag_grad_buf(n->in[1]), dv = ag_grad_buf(n->in[2]);
    } else {
        dq = ag_grad_fresh(n->in[0], &fq), dk = ag_grad_fresh(n->in[1], &fk), dv = ag_grad_fresh(n->in[2], &fv);
    }
    Tensor *datt = tensor_new(n->out->ctx, att->dtype, att->ndim, att->shape);
    AG_DISPATCH(q->dtype, attention_backward, dq ? dq->data : NULL, dk ? dk->data : NULL, dv ? dv->data : NULL, datt->data,
                n->out->grad->data, q->data, k->data, v->data, att->data, s->B, s->T, s->Tk, s->C, s->NH, s->scale, fq ? 0.0 : 1.0,
                fk ? 0.0 : 1.0, fv ? 0.0 : 1.0);
}

// the light path's saved state (no probabilities: they are recomputed from lse)
typedef struct {
    Tensor *q, *k, *v, *mask, *lse; // contiguous inputs, the mask or NULL, each query row's log-sum-exp
    int64_t B, Tq, Tk, C, NH;
    bool causal;
    double scale;
} AttnLight;

static void attention_light_bw(AgNode *n) {
    const AttnLight *a = n->aux;
    bool fq = false, fk = false, fv = false;
    Tensor *dq, *dk, *dv;
    if (n->in[0] == n->in[1] || n->in[1] == n->in[2] || n->in[0] == n->in[2]) {
        dq = ag_grad_buf(n->in[0]), dk = ag_grad_buf(n->in[1]), dv = ag_grad_buf(n->in[2]);
    } else {
        dq = ag_grad_fresh(n->in[0], &fq), dk = ag_grad_fresh(n->in[1], &fk), dv = ag_grad_fresh(n->in[2], &fv);
    }
    if (AG_DISPATCH(a->q->dtype, attention_light_backward, dq ? dq->data : NULL, dk ? dk->data : NULL, dv ? dv->data : NULL,
                    n->out->grad->data, a->q->data, a->k->data, a->v->data, a->lse->data, a->mask ? a->mask->data : NULL,
                    a->mask && a->mask->ndim == 3 ? a->Tq * a->Tk : 0, a->causal, a->B, a->Tq, a->Tk, a->C, a->NH, a->scale, fq, fk,
                    fv) != 0)
        ctx_fail(n->out->ctx, "attention: out of memory for the backward's scores");
}

Tensor *ag_attention(Ctx *c, Tensor *q, Tensor *k, Tensor *v, int NH, Tensor **probs) {
    return ag_attention_masked(c, q, k, v, NH, NULL, false, probs);
}

Tensor *ag_attention_masked(Ctx *c, Tensor *q, Tensor *k, Tensor *v, int NH, Tensor *mask, bool causal, Tensor **probs) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF], s3[SHAPE_STR_BUF];
    if (!ag_arg(c, "attention", "q", q) || !ag_arg(c, "attention", "k", k) || !ag_arg(c, "attention", "v", v) ||
        !ag_check_float(c, "attention", q, k) || !ag_check_float(c, "attention", q, v))
        return NULL;
    if (q->ndim != 3 || k->ndim != 3 || !tensor_same_shape(k, v) || k->shape[0] != q->shape[0] || k->shape[2] != q->shape[2] || NH <= 0 ||
        q->shape[2] % NH) {
        ctx_fail(c, "attention: q %s, k %s, v %s with %d heads do not fit ([B, Tq, C], [B, Tk, C], C divisible by heads)",
                 shape_str(q, s1, sizeof s1), shape_str(k, s2, sizeof s2), shape_str(v, s3, sizeof s3), NH);
        return NULL;
    }
    int64_t B = q->shape[0], T = q->shape[1], Tk = k->shape[1], C = q->shape[2];
    bool mask_ok =
        !mask || (mask->dtype == q->dtype && ((mask->ndim == 2 && mask->shape[0] == T && mask->shape[1] == Tk) ||
                                              (mask->ndim == 3 && mask->shape[0] == B && mask->shape[1] == T && mask->shape[2] == Tk)));
    if (!mask_ok || (causal && Tk < T)) {
        ctx_fail(c, "attention: the mask %s is not an additive [%lld, %lld] or [%lld, %lld, %lld] of q's dtype%s",
                 mask ? shape_str(mask, s1, sizeof s1) : "[]", (long long)T, (long long)Tk, (long long)B, (long long)T, (long long)Tk,
                 causal && Tk < T ? ", or causal with fewer keys than queries" : "");
        return NULL;
    }
    if (mask && mask->requires_grad) { // refused rather than left with a gradient that silently stays zero
        ctx_fail(c, "attention: the mask requires a gradient, which this op does not give (the additive mask is a constant "
                    "here: detach it, or build the bias into the scores with ops that have a backward)");
        return NULL;
    }
    Tensor *mc = mask ? tensor_contiguous(c, mask) : NULL; // a constant: no gradient flows to it
    double scale = 1.0 / sqrt((double)(C / NH));
    Tensor *qc = tensor_contiguous(c, q), *kc = tensor_contiguous(c, k), *vc = tensor_contiguous(c, v);
    Tensor *y = tensor_new(c, q->dtype, 3, q->shape);
    if (!probs) { // nobody looks at the probabilities: keep [B, NH, T] log-sum-exps instead of [B, NH, T, Tk]
        Tensor *lse = tensor_new(c, q->dtype, 3, (int64_t[]){B, NH, T});
        if (!y || !lse ||
            AG_DISPATCH(q->dtype, attention_light_forward, y->data, lse->data, qc->data, kc->data, vc->data, mc ? mc->data : NULL,
                        mc && mc->ndim == 3 ? T * Tk : 0, causal, B, T, Tk, C, NH, scale) != 0) {
            ctx_fail(c, "attention: out of memory for its scores");
            return NULL;
        }
        AgNode *n = ag_record(c, "attention", y, 3, (Tensor *[]){q, k, v}, attention_light_bw);
        if (n) {
            AttnLight *a = ctx_alloc(c, sizeof *a);
            if (a) *a = (AttnLight){qc, kc, vc, mc, lse, B, T, Tk, C, NH, causal, scale};
            if (!(n->aux = a)) return NULL; // no memory for the saved state (the context says so)
        }
        return y;
    }
    Tensor *att = tensor_new(c, q->dtype, 4, (int64_t[]){B, NH, T, Tk});
    AG_DISPATCH(q->dtype, attention_forward, y->data, att->data, qc->data, kc->data, vc->data, mc ? mc->data : NULL,
                mc && mc->ndim == 3 ? T * Tk : 0, causal, B, T, Tk, C, NH, scale);
    AgNode *n = ag_record(c, "attention", y, 3, (Tensor *[]){q, k, v}, attention_bw);
    AttnSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (AttnSaved){qc, kc, vc, att, B, T, Tk, C, NH, scale};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    *probs = att;
    return y;
}
