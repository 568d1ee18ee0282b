// lora.c: LoRA as a wrapper around a Linear (peft's LoraLayer), composed of public ops.
#include "nn.h"

#include "../autograd/extend.h"

#include <math.h>
#include <stdio.h>

NnLora *nn_lora_new(NnParams *ps, const char *name, NnLinear *base, int r, double alpha, double dropout) {
    if (!base || !base->weight || r < 1 || !(alpha > 0) || !(dropout >= 0 && dropout < 1)) {
        ctx_fail(ps->ctx, "lora '%s': needs a linear layer, r >= 1, alpha > 0 and dropout in [0, 1) (got r %d, alpha %g, dropout %g)", name,
                 r, alpha, dropout);
        return NULL;
    }
    int64_t out = base->weight->shape[0], in = base->weight->shape[1];
    NnLora *lo = ctx_alloc(ps->ctx, sizeof *lo);
    if (!lo) return NULL;
    *lo = (NnLora){base, NULL, NULL, r, alpha, alpha / r, dropout, true, false, ps};
    lo->A = tensor_new(ps->ctx, base->weight->dtype, 2, (int64_t[]){r, in});
    lo->B = tensor_zeros(ps->ctx, base->weight->dtype, 2, (int64_t[]){out, r});
    if (!lo->A || !lo->B) return NULL;
    double bound = 1.0 / sqrt((double)in); // kaiming_uniform(a = sqrt(5))
    rng_fill_uniform(ps->rng, lo->A, -bound, bound);
    char pn[512];
    snprintf(pn, sizeof pn, "%s.lora_A.weight", name);
    if (nn_params_add(ps, pn, lo->A) != 0) return NULL;
    snprintf(pn, sizeof pn, "%s.lora_B.weight", name);
    if (nn_params_add(ps, pn, lo->B) != 0) return NULL;
    ag_set_requires_grad(lo->A, true);
    ag_set_requires_grad(lo->B, true);
    return lo;
}

bool nn_lora_active(const NnLora *l) { return l && l->enabled && !l->merged; }

Tensor *nn_lora(Ctx *c, const NnLora *l, Tensor *x) {
    Tensor *y = nn_linear(c, l->base, x);
    if (!nn_lora_active(l)) return y;
    bool tr = l->set && l->set->training && l->dropout > 0;
    Tensor *d = ag_dropout(c, x, l->dropout, tr ? l->set->rng : NULL, tr);
    Tensor *branch = ag_linear(c, ag_linear(c, d, l->A, NULL), l->B, NULL);
    return ag_add(c, y, ag_mul_scalar(c, branch, l->scale));
}

static void merge_sign(NnLora *lo, double sign) {
    Tensor *w = lo->base->weight;
    int64_t out = w->shape[0], in = w->shape[1];
    // W [out, in] += sign * scale * B [out, r] A [r, in]
    AG_DISPATCH(w->dtype, gemm, false, false, out, in, lo->r, sign * lo->scale, lo->B->data, lo->r, lo->A->data, in, 1.0, w->data, in);
    tensor_bump_version(w); // written in place
}

void nn_lora_merge(NnLora *l) {
    if (!l || l->merged) return;
    merge_sign(l, 1.0);
    l->merged = true;
}

void nn_lora_unmerge(NnLora *l) {
    if (!l || !l->merged) return;
    merge_sign(l, -1.0);
    l->merged = false;
}
