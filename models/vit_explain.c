// vit_explain.c: attention rollout and gradient-weighted attention relevance for the ViT.
#include "vit_explain.h"
#include "../base/fileio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int vit_explain_method(const char *name) {
    if (!strcmp(name, "rollout")) return VIT_EXPLAIN_ROLLOUT;
    if (!strcmp(name, "relevance")) return VIT_EXPLAIN_RELEVANCE;
    return -1;
}

const char *vit_explain_method_name(VitExplainMethod m) { return m == VIT_EXPLAIN_ROLLOUT ? "rollout" : "relevance"; }

// out = a r for T x T matrices (out is neither a nor r)
static void matmul_tt(const double *a, const double *r, double *out, int T) {
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int k = 0; k < T; k++) s += a[i * T + k] * r[k * T + j];
            out[i * T + j] = s;
        }
}

// the layer's matrix, mean over heads of the attention (rollout) or of (grad * attention)^+
// (relevance; grad_attn already holds the product), for image 0 of the batch
static void head_mean(const float *attn, const float *grad_attn, int NH, int T, double *out) {
    size_t TT = (size_t)T * (size_t)T;
    memset(out, 0, sizeof *out * TT);
    for (int h = 0; h < NH; h++)
        for (size_t e = 0; e < TT; e++) {
            double v = grad_attn ? grad_attn[h * TT + e] : attn[h * TT + e];
            out[e] += (grad_attn && v < 0 ? 0 : v) / NH;
        }
}

static void combine(const VitConfig *cf, Tensor **attn, Tensor **gates, VitExplainMethod method, double *map) {
    int L = cf->num_hidden_layers, NH = cf->num_attention_heads, T = (int)attn[0]->shape[2];
    size_t TT = (size_t)T * (size_t)T;
    double *r = calloc(TT, sizeof *r), *a = malloc(sizeof *a * TT), *tmp = malloc(sizeof *tmp * TT);
    for (int i = 0; i < T; i++) r[i * T + i] = 1;
    for (int l = 0; l < L; l++) {
        const float *g = method == VIT_EXPLAIN_RELEVANCE ? (const float *)gates[l]->grad->data : NULL;
        head_mean((const float *)attn[l]->data, g, NH, T, a);
        if (method == VIT_EXPLAIN_ROLLOUT) {
            for (int i = 0; i < T; i++) { // 0.5 A + 0.5 I, each row renormalised to sum 1
                double s = 0;
                a[i * T + i] += 1;
                for (int j = 0; j < T; j++) s += a[i * T + j];
                for (int j = 0; j < T; j++) a[i * T + j] /= s;
            }
        }
        matmul_tt(a, r, tmp, T);
        for (size_t e = 0; e < TT; e++) r[e] = method == VIT_EXPLAIN_ROLLOUT ? tmp[e] : r[e] + tmp[e]; // R = A' R, or R += A_bar R
    }
    for (int j = 1; j < T; j++) map[j - 1] = r[j]; // the [CLS] row, over the patches
    free(r), free(a), free(tmp);
}

int vit_explain(Ctx *c, VitModel *m, const float *pixels, VitExplainMethod method, int target, double *map, int *label, double *prob,
                char *err, size_t errn) {
    const VitConfig *cf = &m->cfg;
    int S = cf->image_size, L = cf->num_hidden_layers, K = cf->num_labels;
    int64_t T = (int64_t)(S / cf->patch_size) * (S / cf->patch_size) + 1;
    if (target >= K) {
        return errorf(err, errn, "explain: class %d is not one of the model's %d", target, K);
    }
    ctx_reset(c);
    bool was_training = m->params.training, prev = ag_no_grad(c, method == VIT_EXPLAIN_ROLLOUT);
    nn_params_train(&m->params, false);
    Tensor **attn = ctx_alloc(c, sizeof *attn * (size_t)L), **gates = NULL;
    if (method == VIT_EXPLAIN_RELEVANCE) {
        gates = ctx_alloc(c, sizeof *gates * (size_t)L);
        for (int l = 0; l < L; l++) {
            gates[l] = tensor_full(c, DT_F32, 4, (int64_t[]){1, cf->num_attention_heads, T, T}, 1.0);
            ag_set_requires_grad(gates[l], true);
        }
    }
    VitOutputs out = {.attentions = attn, .attention_gates = gates};
    Tensor *x = tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, cf->num_channels, S, S}, (float *)pixels);
    Tensor *logits = vit_forward(c, m, x, &out);
    int rc = -1;
    if (logits) {
        const float *z = (const float *)tensor_contiguous(c, logits)->data;
        int best = 0;
        for (int j = 1; j < K; j++)
            if (z[j] > z[best]) best = j;
        int t = target < 0 ? best : target;
        double mx = z[best], s = 0;
        for (int j = 0; j < K; j++) s += exp(z[j] - mx);
        *label = t;
        *prob = exp(z[t] - mx) / s;
        rc = 0;
        if (method == VIT_EXPLAIN_RELEVANCE) // backward from the target's logit
            rc = ag_backward(c, ag_narrow(c, logits, 1, t, 1));
        if (rc == 0) combine(cf, attn, gates, method, map);
    }
    if (rc != 0) snprintf(err, errn, "explain: %s", ctx_error(c));
    ag_no_grad(c, prev);
    nn_params_train(&m->params, was_training);
    return rc;
}
