// ops_reduce.c: sum / mean / max over a dimension, softmax, log-softmax, layer norm, cross-entropy.
#include "extend.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

// x viewed as [O, N, I] around dimension d
static void split3(const Tensor *x, int d, int64_t *O, int64_t *N, int64_t *I) {
    *O = 1;
    *I = 1;
    for (int i = 0; i < d; i++) *O *= x->shape[i];
    *N = x->shape[d];
    for (int i = d + 1; i < x->ndim; i++) *I *= x->shape[i];
}

static Tensor *reduced(Ctx *c, Tensor *x, int d, bool keepdim) {
    int64_t shape[TENSOR_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i == d) {
            if (keepdim) shape[nd++] = 1;
        } else
            shape[nd++] = x->shape[i];
    }
    return tensor_new(c, x->dtype, nd, shape);
}

static int check_dim(Ctx *c, const char *op, Tensor *x, int dim) {
    char s[SHAPE_STR_BUF];
    int d = tensor_dim(x, dim);
    if (d < 0) ctx_fail(c, "%s: dimension %d out of range for %s", op, dim, shape_str(x, s, sizeof s));
    return d;
}

// ---- sum / mean ----

static void sum_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(gx->dtype, sum_backward, gx->data, n->out->grad->data, n->i[0], n->i[1], n->i[2], n->f[0]);
}

static Tensor *sum_impl(Ctx *c, const char *op, Tensor *x, int d, bool keepdim, bool all, double mean) {
    int64_t O, N, I;
    Tensor *y;
    if (all) {
        O = 1, N = tensor_numel(x), I = 1;
        y = tensor_new(c, x->dtype, 0, NULL);
    } else {
        split3(x, d, &O, &N, &I);
        y = reduced(c, x, d, keepdim);
    }
    double scale = mean ? (N ? 1.0 / (double)N : NAN) : 1.0; // the mean of nothing is NaN, as in PyTorch
    Tensor *xc = tensor_contiguous(c, x);
    AG_DISPATCH(x->dtype, sum_forward, y->data, xc->data, O, N, I, scale);
    AgNode *n = ag_record(c, op, y, 1, &x, sum_bw);
    if (n) {
        n->i[0] = O, n->i[1] = N, n->i[2] = I;
        n->f[0] = scale;
    }
    return y;
}

Tensor *ag_sum(Ctx *c, Tensor *x, int dim, bool keepdim) {
    if (!ag_arg(c, "sum", "x", x) || !ag_check_float(c, "sum", x, NULL)) return NULL;
    int d = check_dim(c, "sum", x, dim);
    return d < 0 ? NULL : sum_impl(c, "sum", x, d, keepdim, false, 0);
}

Tensor *ag_mean(Ctx *c, Tensor *x, int dim, bool keepdim) {
    if (!ag_arg(c, "mean", "x", x) || !ag_check_float(c, "mean", x, NULL)) return NULL;
    int d = check_dim(c, "mean", x, dim);
    return d < 0 ? NULL : sum_impl(c, "mean", x, d, keepdim, false, 1);
}

Tensor *ag_sum_all(Ctx *c, Tensor *x) {
    if (!ag_arg(c, "sum", "x", x) || !ag_check_float(c, "sum", x, NULL)) return NULL;
    return sum_impl(c, "sum", x, 0, false, true, 0);
}

Tensor *ag_mean_all(Ctx *c, Tensor *x) {
    if (!ag_arg(c, "mean", "x", x) || !ag_check_float(c, "mean", x, NULL)) return NULL;
    return sum_impl(c, "mean", x, 0, false, true, 1);
}

// ---- max ----

static void max_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(gx->dtype, max_backward, gx->data, n->out->grad->data, n->saved[0]->data, n->i[0], n->i[1], n->i[2]);
}

Tensor *ag_max(Ctx *c, Tensor *x, int dim, bool keepdim, Tensor **argmax) {
    if (!ag_arg(c, "max", "x", x) || !ag_check_float(c, "max", x, NULL)) return NULL;
    int d = check_dim(c, "max", x, dim);
    if (d < 0) return NULL;
    char s[SHAPE_STR_BUF];
    if (x->shape[d] == 0) {
        ctx_fail(c, "max: dimension %d of %s is empty", dim, shape_str(x, s, sizeof s));
        return NULL;
    }
    int64_t O, N, I;
    split3(x, d, &O, &N, &I);
    Tensor *y = reduced(c, x, d, keepdim);
    Tensor *arg = tensor_new(c, DT_I64, y->ndim, y->shape);
    Tensor *xc = tensor_contiguous(c, x);
    AG_DISPATCH(x->dtype, max_forward, y->data, arg->data, xc->data, O, N, I);
    AgNode *n = ag_record(c, "max", y, 1, &x, max_bw);
    if (n) {
        n->saved[0] = arg;
        n->i[0] = O, n->i[1] = N, n->i[2] = I;
    }
    if (argmax) *argmax = arg;
    return y;
}

// ---- top-k (no gradient) ----

typedef struct {
    double v;
    int64_t i;
} Ranked;

// larger first; NaN above everything (as torch.topk); ties: the lower index first
static int by_value_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    bool nx = x->v != x->v, ny = y->v != y->v;
    if (nx != ny) return nx ? -1 : 1;
    if (!nx && x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}
static int by_value_asc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    bool nx = x->v != x->v, ny = y->v != y->v;
    if (nx != ny) return nx ? 1 : -1;
    if (!nx && x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

Tensor *ag_topk(Ctx *c, Tensor *x, int k, int dim, bool largest, Tensor **indices) {
    if (!ag_arg(c, "topk", "x", x) || !ag_check_float(c, "topk", x, NULL)) return NULL;
    int d = check_dim(c, "topk", x, dim);
    if (d < 0) return NULL;
    char s[SHAPE_STR_BUF];
    if (k < 0 || k > x->shape[d]) {
        ctx_fail(c, "topk: k %d is not in [0, %lld] for dimension %d of %s", k, (long long)x->shape[d], dim, shape_str(x, s, sizeof s));
        return NULL;
    }
    int64_t O, N, I, shape[TENSOR_MAX_DIMS];
    split3(x, d, &O, &N, &I);
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[d] = k;
    Tensor *y = tensor_new(c, x->dtype, x->ndim, shape), *ix = tensor_new(c, DT_I64, x->ndim, shape);
    Ranked *r = malloc(sizeof *r * (size_t)(N ? N : 1));
    if (!r) {
        ctx_fail(c, "topk: out of memory for %lld values", (long long)N);
        return NULL;
    }
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            for (int64_t j = 0; j < N; j++) r[j] = (Ranked){tensor_get_flat(x, (o * N + j) * I + i), j};
            qsort(r, (size_t)N, sizeof *r, largest ? by_value_desc : by_value_asc);
            for (int64_t j = 0; j < k; j++) {
                tensor_set_flat(y, (o * k + j) * I + i, r[j].v);
                ((int64_t *)ix->data)[(o * k + j) * I + i] = r[j].i;
            }
        }
    free(r);
    if (indices) *indices = ix;
    return y;
}

// ---- softmax / log-softmax over the last dimension ----

static void softmax_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]), *y = n->out;
    int64_t N = y->ndim ? y->shape[y->ndim - 1] : 1, R = N ? tensor_numel(y) / N : 0;
    if (n->i[0])
        AG_DISPATCH(y->dtype, log_softmax_backward, gx->data, y->grad->data, y->data, R, N);
    else
        AG_DISPATCH(y->dtype, softmax_backward, gx->data, y->grad->data, y->data, R, N);
}

static Tensor *softmax_impl(Ctx *c, const char *op, Tensor *x, bool logsm) {
    if (!ag_arg(c, op, "x", x) || !ag_check_float(c, op, x, NULL)) return NULL;
    if (x->ndim == 0) {
        ctx_fail(c, "%s: needs at least one dimension", op);
        return NULL;
    }
    int64_t N = x->shape[x->ndim - 1], R = N ? tensor_numel(x) / N : 0;
    Tensor *xc = tensor_contiguous(c, x);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    if (logsm)
        AG_DISPATCH(x->dtype, log_softmax_forward, y->data, xc->data, R, N);
    else
        AG_DISPATCH(x->dtype, softmax_forward, y->data, xc->data, R, N);
    AgNode *n = ag_record(c, op, y, 1, &x, softmax_bw);
    if (n) n->i[0] = logsm;
    return y;
}

Tensor *ag_softmax(Ctx *c, Tensor *x) { return softmax_impl(c, "softmax", x, false); }
Tensor *ag_log_softmax(Ctx *c, Tensor *x) { return softmax_impl(c, "log_softmax", x, true); }

// ---- cross-entropy from logits ----

static void ce_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]), *lc = n->saved[0], *lse = n->saved[1], *lab = n->saved[2];
    double g = tensor_get_flat(n->out->grad, 0);
    AG_DISPATCH(lc->dtype, cross_entropy_backward, gx->data, g, lc->data, lse->data, lab->data, n->i[0], n->i[1], n->f[0], n->f[1]);
}

static Tensor *ce_impl(Ctx *c, Tensor *logits, Tensor *labels, double scale, bool mean, double eps) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "cross_entropy", "logits", logits) || !ag_arg(c, "cross_entropy", "labels", labels) ||
        !ag_check_float(c, "cross_entropy", logits, NULL))
        return NULL;
    if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0] || labels->dtype != DT_I64) {
        ctx_fail(c, "cross_entropy: logits %s need int64 labels [%lld], got %s %s", shape_str(logits, s1, sizeof s1),
                 logits->ndim ? (long long)logits->shape[0] : 0LL, dtype_name(labels->dtype), shape_str(labels, s2, sizeof s2));
        return NULL;
    }
    int64_t N = logits->shape[0], C = logits->shape[1], counted = 0;
    Tensor *lab = tensor_contiguous(c, labels);
    const int64_t *l = lab->data;
    for (int64_t i = 0; i < N; i++) {
        if (l[i] == -100) continue; // PyTorch's ignore_index
        if (l[i] < 0 || l[i] >= C) {
            ctx_fail(c, "cross_entropy: label %lld at %lld outside [0, %lld) for logits %s", (long long)l[i], (long long)i, (long long)C,
                     shape_str(logits, s1, sizeof s1));
            return NULL;
        }
        counted++;
    }
    if (!(eps >= 0 && eps < 1)) {
        ctx_fail(c, "cross_entropy: label smoothing %g outside [0, 1)", eps);
        return NULL;
    }
    if (mean) scale = counted ? 1.0 / (double)counted : 0.0;
    int64_t *lab_ce = ctx_alloc(c, sizeof(int64_t) * (size_t)(N ? N : 1));
    for (int64_t i = 0; i < N; i++) lab_ce[i] = l[i] == -100 ? -1 : l[i];
    Tensor *lt = tensor_from_buffer(c, DT_I64, 1, &N, lab_ce);
    Tensor *lc = tensor_contiguous(c, logits);
    Tensor *lse = tensor_new(c, logits->dtype, 1, &N);
    Tensor *y = tensor_new(c, logits->dtype, 0, NULL);
    double loss = AG_DISPATCH(logits->dtype, cross_entropy_forward, lse->data, lc->data, lab_ce, N, C, scale, eps);
    // the mean over no label at all is NaN, as PyTorch's 0 / 0; every gradient stays 0 (scale 0)
    tensor_set_flat(y, 0, mean && !counted ? NAN : loss);
    AgNode *n = ag_record(c, "cross_entropy", y, 1, &logits, ce_bw);
    if (n) {
        n->saved[0] = lc, n->saved[1] = lse, n->saved[2] = lt;
        n->i[0] = N, n->i[1] = C;
        n->f[0] = scale, n->f[1] = eps;
    }
    return y;
}

Tensor *ag_cross_entropy(Ctx *c, Tensor *logits, Tensor *labels) { return ce_impl(c, logits, labels, 1, true, 0); }
Tensor *ag_cross_entropy_scaled(Ctx *c, Tensor *logits, Tensor *labels, double scale) {
    return ce_impl(c, logits, labels, scale, false, 0);
}
Tensor *ag_cross_entropy_smoothed(Ctx *c, Tensor *logits, Tensor *labels, double scale, double eps) {
    return ce_impl(c, logits, labels, scale, false, eps);
}
