// ops_norm.c: the normalisations as fused ops (a forward kernel, a backward beside it): layer norm
// over the last dimensions, batch norm (training and eval) and group norm over [N, C, ...].
// RMS norm is composed (ops_compose.c).
#include "extend.h"

#include <math.h>
#include <string.h>

// ---- layer norm ----

// what the backward needs: the input, the rows' statistics and the weight, contiguous
typedef struct {
    Tensor *x, *mean, *rstd, *w;
    int64_t N, C; // x as [N, C]
} LayerNormSaved;

static void layer_norm_bw(AgNode *n) {
    const LayerNormSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]), *gw = ag_grad_buf(n->in[1]), *gb = ag_grad_buf(n->in[2]);
    AG_DISPATCH(s->x->dtype, layernorm_backward, gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data,
                s->x->data, s->w->data, s->mean->data, s->rstd->data, s->N, s->C);
}

// the fused op: over x's last dimension C, w and b [C] (checked by the caller)
static Tensor *layer_norm_rows(Ctx *c, Tensor *x, Tensor *w, Tensor *b, double eps) {
    int64_t C = x->shape[x->ndim - 1], N = C ? tensor_numel(x) / C : 0;
    Tensor *xc = tensor_contiguous(c, x), *wc = tensor_contiguous(c, w), *bc = tensor_contiguous(c, b);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    Tensor *mean = tensor_new(c, x->dtype, 1, &N), *rstd = tensor_new(c, x->dtype, 1, &N);
    AG_DISPATCH(x->dtype, layernorm_forward, y->data, mean->data, rstd->data, xc->data, wc->data, bc->data, N, C, eps);
    AgNode *n = ag_record(c, "layer_norm", y, 3, (Tensor *[]){x, w, b}, layer_norm_bw);
    LayerNormSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (LayerNormSaved){xc, mean, rstd, wc, N, C};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}

Tensor *ag_layer_norm(Ctx *c, Tensor *x, int nd, Tensor *w, Tensor *b, double eps) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "layer_norm", "x", x) || !ag_check_float(c, "layer_norm", x, NULL)) return NULL;
    if (nd < 1 || nd > x->ndim) {
        ctx_fail(c, "layer_norm: %d normalised dimensions for input %s (1 to %d)", nd, shape_str(x, s1, sizeof s1), x->ndim);
        return NULL;
    }
    int64_t C = 1;
    for (int i = x->ndim - nd; i < x->ndim; i++) C *= x->shape[i];
    Tensor *const params[2] = {w, b};
    for (int k = 0; k < 2; k++) {
        const Tensor *v = params[k];
        bool ok = !v || (v->ndim == nd && v->dtype == x->dtype);
        for (int i = 0; ok && v && i < nd; i++) ok = v->shape[i] == x->shape[x->ndim - nd + i];
        if (!ok) {
            ctx_fail(c, "layer_norm: %s %s must have the normalised shape of input %s (its last %d dimensions)", k ? "bias" : "weight",
                     shape_str(v, s2, sizeof s2), shape_str(x, s1, sizeof s1), nd);
            return NULL;
        }
    }
    if (nd == 1 && w && b) return layer_norm_rows(c, x, w, b, eps); // the common case: no reshapes recorded
    // the kernel takes [rows, C] with w and b [C]: absent ones are constants 1 and 0
    Tensor *wf = w ? ag_reshape(c, w, 1, &C) : tensor_full(c, x->dtype, 1, &C, 1.0);
    Tensor *bf = b ? ag_reshape(c, b, 1, &C) : tensor_zeros(c, x->dtype, 1, &C);
    int64_t rows = C ? tensor_numel(x) / C : 0;
    Tensor *xr = ag_reshape(c, x, 2, (int64_t[]){rows, C});
    if (!xr || !wf || !bf) return NULL;
    return ag_reshape(c, layer_norm_rows(c, xr, wf, bf, eps), x->ndim, x->shape);
}

// ---- batch norm and group norm over [N, C, ...] ----

// what the backward of batch norm and group norm needs
typedef struct {
    Tensor *x;           // the input, contiguous
    Tensor *mean, *rstd; // batch norm: [C] (eval: the running ones); group norm: [N, G]
    Tensor *w;           // contiguous, or NULL
    int64_t N, C, S, G;  // x as [N, C, S]; groups (group norm)
    bool training;       // batch norm: the statistics came from the batch
} NormSaved;

static bool channel_params(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *b) {
    char s1[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "x", x) || !ag_check_float(c, op, x, NULL)) return false;
    if (x->ndim < 2) {
        ctx_fail(c, "%s: input %s needs [N, C, ...]", op, shape_str(x, s1, sizeof s1));
        return false;
    }
    const Tensor *params[2] = {w, b};
    for (int i = 0; i < 2; i++) {
        const Tensor *v = params[i];
        if (v && (v->ndim != 1 || v->shape[0] != x->shape[1] || v->dtype != x->dtype)) {
            ctx_fail(c, "%s: weight and bias must be %s [%lld], got %s %s", op, dtype_name(x->dtype), (long long)x->shape[1],
                     dtype_name(v->dtype), shape_str(v, s1, sizeof s1));
            return false;
        }
    }
    return true;
}

static NormSaved *norm_saved(Ctx *c, Tensor *x, Tensor *w, int64_t G) {
    NormSaved *s = ctx_alloc(c, sizeof *s);
    if (!s) return NULL;
    *s = (NormSaved){.x = tensor_contiguous(c, x), .w = w ? tensor_contiguous(c, w) : NULL, .N = x->shape[0], .C = x->shape[1], .G = G};
    s->S = s->N * s->C != 0 ? tensor_numel(x) / (s->N * s->C) : 0;
    return s;
}

static void batch_norm_bw(AgNode *n) {
    const NormSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]), *gw = n->nin > 1 ? ag_grad_buf(n->in[1]) : NULL, *gb = n->nin > 2 ? ag_grad_buf(n->in[2]) : NULL;
    AG_DISPATCH(s->x->dtype, batch_norm_backward, gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data,
                s->x->data, s->w ? s->w->data : NULL, s->mean->data, s->rstd->data, s->N, s->C, s->S, s->training);
}

// the node's inputs: x, then w and b where given (a NULL one is left out: nothing to differentiate)
static void record_norm(Ctx *c, const char *op, Tensor *y, Tensor *x, Tensor *w, Tensor *b, NormSaved *s, void (*bw)(AgNode *)) {
    Tensor *in[3] = {x, w, b};
    int nin = 1;
    if (w) in[nin++] = w;
    if (b) {
        if (!w) in[nin++] = tensor_zeros(c, x->dtype, 1, &x->shape[1]); // a placeholder, no gradient
        in[nin++] = b;
    }
    AgNode *n = ag_record(c, op, y, nin, in, bw);
    if (n) n->aux = s;
}

Tensor *ag_batch_norm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *running_mean, Tensor *running_var, bool training, double momentum,
                      double eps) {
    if (!channel_params(c, "batch_norm", x, w, b)) return NULL;
    int64_t C = x->shape[1], n = tensor_numel(x) / (C ? C : 1);
    if ((running_mean && tensor_numel(running_mean) != C) || (running_var && tensor_numel(running_var) != C) ||
        (!running_mean != !running_var) || (!training && !running_mean) || (training && n < 2)) {
        ctx_fail(c, "batch_norm: %s",
                 !running_mean != !running_var ? "running_mean and running_var go together (both or neither)"
                 : training                    ? "running statistics must be [C], and training needs more than one value per channel"
                                               : "eval mode needs running_mean and running_var [C]");
        return NULL;
    }
    NormSaved *s = norm_saved(c, x, w, 1);
    Tensor *bc = b ? tensor_contiguous(c, b) : NULL;
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    if (!s || !y || (b && !bc)) return NULL;
    s->training = training;
    s->mean = tensor_new(c, x->dtype, 1, &C), s->rstd = tensor_new(c, x->dtype, 1, &C);
    if (!s->mean || !s->rstd) return NULL;
    if (training) {
        AG_DISPATCH(x->dtype, batch_norm_stats, s->mean->data, s->rstd->data, s->x->data, s->N, C, s->S, eps);
        for (int64_t k = 0; running_mean && k < C; k++) { // PyTorch's update, the variance unbiased
            double mu = tensor_get_flat(s->mean, k), r = tensor_get_flat(s->rstd, k), var = 1 / (r * r) - eps;
            double rm = tensor_get_flat(running_mean, k), rv = tensor_get_flat(running_var, k);
            tensor_set_flat(running_mean, k, (1 - momentum) * rm + momentum * mu);
            tensor_set_flat(running_var, k, (1 - momentum) * rv + momentum * var * (double)n / (double)(n - 1));
        }
    } else
        for (int64_t k = 0; k < C; k++) {
            tensor_set_flat(s->mean, k, tensor_get_flat(running_mean, k));
            tensor_set_flat(s->rstd, k, 1 / sqrt(tensor_get_flat(running_var, k) + eps));
        }
    AG_DISPATCH(x->dtype, batch_norm_forward, y->data, s->x->data, s->mean->data, s->rstd->data, s->w ? s->w->data : NULL,
                bc ? bc->data : NULL, s->N, C, s->S);
    record_norm(c, "batch_norm", y, x, w, b, s, batch_norm_bw);
    return y;
}

static void group_norm_bw(AgNode *n) {
    const NormSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]), *gw = n->nin > 1 ? ag_grad_buf(n->in[1]) : NULL, *gb = n->nin > 2 ? ag_grad_buf(n->in[2]) : NULL;
    AG_DISPATCH(s->x->dtype, group_norm_backward, gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data,
                s->x->data, s->w ? s->w->data : NULL, s->mean->data, s->rstd->data, s->N, s->G, s->C / s->G, s->S);
}

Tensor *ag_group_norm(Ctx *c, Tensor *x, int groups, Tensor *w, Tensor *b, double eps) {
    if (!channel_params(c, "group_norm", x, w, b)) return NULL;
    if (groups < 1 || x->shape[1] % groups) {
        ctx_fail(c, "group_norm: %d groups do not divide %lld channels", groups, (long long)x->shape[1]);
        return NULL;
    }
    NormSaved *s = norm_saved(c, x, w, groups);
    Tensor *bc = b ? tensor_contiguous(c, b) : NULL;
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    if (!s || !y || (b && !bc)) return NULL;
    int64_t NG = s->N * groups;
    s->mean = tensor_new(c, x->dtype, 1, &NG), s->rstd = tensor_new(c, x->dtype, 1, &NG);
    if (!s->mean || !s->rstd) return NULL;
    AG_DISPATCH(x->dtype, group_norm_forward, y->data, s->mean->data, s->rstd->data, s->x->data, s->w ? s->w->data : NULL,
                bc ? bc->data : NULL, s->N, groups, s->C / groups, s->S, eps);
    record_norm(c, "group_norm", y, x, w, b, s, group_norm_bw);
    return y;
}
