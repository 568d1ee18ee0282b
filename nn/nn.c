// nn.c: the parameter registry and the layers.
#include "nn.h"

#include "../autograd/extend.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nn_params_add(NnParams *ps, const char *name, Tensor *t) {
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->p = realloc(ps->p, sizeof *ps->p * (size_t)ps->cap);
        if (!ps->p) abort();
    }
    ps->p[ps->n].name = strdup(name);
    ps->p[ps->n].t = t;
    t->name = ps->p[ps->n].name;
    ps->n++;
}

Tensor *nn_params_get(const NnParams *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].name, name)) return ps->p[i].t;
    return NULL;
}

bool nn_params_replace(NnParams *ps, const char *name, Tensor *t) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i].name, name)) {
            ps->p[i].t = t;
            t->name = ps->p[i].name;
            return true;
        }
    return false;
}

int64_t nn_params_count(const NnParams *ps, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!trainable_only || ps->p[i].t->requires_grad) n += tensor_numel(ps->p[i].t);
    return n;
}

int nn_params_set_trainable(NnParams *ps, const char *pattern, bool on) {
    int k = 0;
    for (int i = 0; i < ps->n; i++)
        if (fnmatch(pattern, ps->p[i].name, 0) == 0) {
            ag_set_requires_grad(ps->p[i].t, on);
            k++;
        }
    return k;
}

void nn_params_free(NnParams *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->p[i].name);
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

// ---- layers ----

static bool lora_active(const NnLinear *l) { return l->lora && l->lora->enabled && !l->lora->merged; }

Tensor *nn_linear(Ctx *c, const NnLinear *l, Tensor *x, Rng *rng, bool training) {
    const NnLora *lo = l->lora;
    if (!lora_active(l)) return ag_linear(c, x, l->weight, l->bias);
    // dropout on the LoRA branch only; fused, the mask is regenerated rather than stored
    return ag_lora_linear(c, x, l->weight, l->bias, lo->A, lo->B, lo->scale, lo->dropout, rng, training);
}

Tensor *nn_linear_residual(Ctx *c, const NnLinear *l, Tensor *x, Tensor *res, Rng *rng, bool training) {
    if (lora_active(l)) return ag_add(c, res, nn_linear(c, l, x, rng, training));
    return ag_linear_residual(c, x, l->weight, l->bias, res);
}

Tensor *nn_layernorm(Ctx *c, const NnLayerNorm *l, Tensor *x) { return ag_layernorm(c, x, l->weight, l->bias, l->eps); }

Tensor *nn_mlp_residual(Ctx *c, const NnLinear *fc1, const NnLinear *fc2, Tensor *x, Tensor *res, Rng *rng, bool training) {
    bool frozen = !fc1->weight->requires_grad && !fc2->weight->requires_grad && fc1->bias && fc2->bias &&
                  !fc1->bias->requires_grad && !fc2->bias->requires_grad;
    if (frozen && !lora_active(fc1) && !lora_active(fc2)) // the fused row-blocked MLP
        return ag_mlp_residual(c, x, fc1->weight, fc1->bias, fc2->weight, fc2->bias, res);
    return nn_linear_residual(c, fc2, ag_gelu(c, nn_linear(c, fc1, x, rng, training)), res, rng, training);
}

Tensor *nn_self_attention_residual(Ctx *c, const NnLinear *q, const NnLinear *k, const NnLinear *v, const NnLinear *o,
                                   Tensor *xq, Tensor *x, Tensor *res, int NH, Rng *rng, bool training, Tensor **probs) {
    Tensor *qq = nn_linear(c, q, xq, rng, training);
    Tensor *kk = nn_linear(c, k, x, rng, training);
    Tensor *vv = nn_linear(c, v, x, rng, training);
    return nn_linear_residual(c, o, ag_attention(c, qq, kk, vv, NH, probs), res, rng, training);
}

NnLora *nn_lora_attach(Ctx *pc, NnLinear *l, int r, double alpha, double dropout, Rng *rng) {
    int64_t out = l->weight->shape[0], in = l->weight->shape[1];
    NnLora *lo = ctx_alloc(pc, sizeof *lo);
    lo->r = r;
    lo->alpha = alpha;
    lo->scale = alpha / r;
    lo->dropout = dropout;
    lo->enabled = true;
    lo->A = tensor_new(pc, l->weight->dtype, 2, (int64_t[]){r, in});
    lo->B = tensor_zeros(pc, l->weight->dtype, 2, (int64_t[]){out, r});
    double bound = 1.0 / sqrt((double)in); // kaiming_uniform(a=sqrt(5)): gain sqrt(2/6), bound gain*sqrt(3/in)
    rng_fill_uniform(rng, lo->A, -bound, bound);
    ag_set_requires_grad(lo->A, true);
    ag_set_requires_grad(lo->B, true);
    l->lora = lo;
    return lo;
}

static void merge_sign(NnLinear *l, double sign) {
    NnLora *lo = l->lora;
    int64_t out = l->weight->shape[0], in = l->weight->shape[1];
    Tensor *w = l->weight;
    // W [out, in] += sign * scale * B [out, r] A [r, in]
    AG_DISPATCH(w->dtype, gemm, false, false, out, in, lo->r, sign * lo->scale, lo->B->data, lo->r, lo->A->data, in, 1.0,
                w->data, in);
}

void nn_lora_merge(NnLinear *l) {
    if (!l->lora || l->lora->merged) return;
    merge_sign(l, 1.0);
    l->lora->merged = true;
}

void nn_lora_unmerge(NnLinear *l) {
    if (!l->lora || !l->lora->merged) return;
    merge_sign(l, -1.0);
    l->lora->merged = false;
}
