// ops_compose.c: ops built from other ops; their gradients come from those ops' backward kernels.
// PyTorch's semantics: logsumexp, var / std, the losses, softmax over any dimension, the
// RMS norm, embedding, flip, pad and stack.
#include "extend.h"

#include <math.h>

#include <string.h>

Tensor *ag_logsumexp(Ctx *c, Tensor *x, int dim, bool keepdim) {
    if (!ag_arg(c, "logsumexp", "x", x)) return NULL;
    // the row maximum is a constant shift: detached, it leaves the gradient softmax(x) exactly
    Tensor *mk = ag_detach(c, ag_max(c, x, dim, true, NULL));
    Tensor *m = keepdim ? mk : ag_detach(c, ag_max(c, x, dim, false, NULL));
    return ag_add(c, ag_log(c, ag_sum(c, ag_exp(c, ag_sub(c, x, mk)), dim, keepdim)), m);
}

Tensor *ag_var(Ctx *c, Tensor *x, int dim, double correction, bool keepdim) {
    if (!ag_arg(c, "var", "x", x)) return NULL;
    int d = tensor_dim(x, dim);
    if (d < 0) {
        ctx_fail(c, "var: dimension %d out of range for %d-d tensor", dim, x->ndim);
        return NULL;
    }
    double n = (double)x->shape[d] - correction;
    if (!(n > 0)) {
        ctx_fail(c, "var: %lld elements with correction %g leave no degrees of freedom", (long long)x->shape[d], correction);
        return NULL;
    }
    Tensor *dev = ag_sub(c, x, ag_mean(c, x, dim, true));
    return ag_mul_scalar(c, ag_sum(c, ag_mul(c, dev, dev), dim, keepdim), 1.0 / n);
}

Tensor *ag_std(Ctx *c, Tensor *x, int dim, double correction, bool keepdim) {
    if (!ag_arg(c, "std", "x", x)) return NULL;
    return ag_sqrt(c, ag_var(c, x, dim, correction, keepdim));
}

Tensor *ag_mse_loss(Ctx *c, Tensor *input, Tensor *target) { return ag_mse_loss_with(c, input, target, AG_REDUCE_MEAN); }

Tensor *ag_bce_with_logits(Ctx *c, Tensor *logits, Tensor *target) { return ag_bce_with_logits_with(c, logits, target, AG_REDUCE_MEAN); }

Tensor *ag_nll_loss(Ctx *c, Tensor *logp, Tensor *labels) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "nll_loss", "logp", logp) || !ag_arg(c, "nll_loss", "labels", labels)) return NULL;
    if (logp->ndim != 2 || labels->ndim != 1 || labels->dtype != DT_I64 || labels->shape[0] != logp->shape[0]) {
        ctx_fail(c, "nll_loss: needs log-probabilities [N, C] and int64 labels [N], got %s and %s %s", shape_str(logp, s1, sizeof s1),
                 dtype_name(labels->dtype), shape_str(labels, s2, sizeof s2));
        return NULL;
    }
    Tensor *idx = tensor_reshape_view(c, tensor_contiguous(c, labels), 2, (int64_t[]){labels->shape[0], 1});
    return ag_neg(c, ag_mean_all(c, ag_gather(c, logp, 1, idx)));
}

// x with dimension d moved last (perm), and the permutation back (inv)
static Tensor *dim_last(Ctx *c, Tensor *x, int d, int *inv) {
    int perm[TENSOR_MAX_DIMS], k = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != d) perm[k++] = i;
    perm[k] = d;
    for (int i = 0; i < x->ndim; i++) inv[perm[i]] = i;
    return ag_contiguous(c, ag_permute(c, x, perm));
}

static Tensor *over_dim(Ctx *c, const char *op, Tensor *x, int dim, Tensor *(*f)(Ctx *, Tensor *)) {
    if (!ag_arg(c, op, "x", x)) return NULL;
    int d = tensor_dim(x, dim), inv[TENSOR_MAX_DIMS];
    if (d < 0) {
        ctx_fail(c, "%s: dimension %d out of range for %d-d tensor", op, dim, x->ndim);
        return NULL;
    }
    if (d == x->ndim - 1) return f(c, x);
    return ag_contiguous(c, ag_permute(c, f(c, dim_last(c, x, d, inv)), inv));
}

Tensor *ag_softmax_dim(Ctx *c, Tensor *x, int dim) { return over_dim(c, "softmax", x, dim, ag_softmax); }
Tensor *ag_log_softmax_dim(Ctx *c, Tensor *x, int dim) { return over_dim(c, "log_softmax", x, dim, ag_log_softmax); }

Tensor *ag_rms_norm(Ctx *c, Tensor *x, Tensor *w, double eps) {
    if (!ag_arg(c, "rms_norm", "x", x)) return NULL;
    Tensor *r = ag_pow_scalar(c, ag_add_scalar(c, ag_mean(c, ag_mul(c, x, x), -1, true), eps), -0.5);
    Tensor *y = ag_mul(c, x, r);
    return w ? ag_mul(c, y, w) : y;
}

Tensor *ag_embedding(Ctx *c, Tensor *weight, Tensor *idx) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "embedding", "weight", weight) || !ag_arg(c, "embedding", "idx", idx)) return NULL;
    if (weight->ndim != 2 || idx->dtype != DT_I64 || idx->ndim + 1 > TENSOR_MAX_DIMS) {
        ctx_fail(c, "embedding: needs a weight [V, D] and int64 indices, got %s and %s %s", shape_str(weight, s1, sizeof s1),
                 dtype_name(idx->dtype), shape_str(idx, s2, sizeof s2));
        return NULL;
    }
    int64_t n = tensor_numel(idx), shape[TENSOR_MAX_DIMS];
    Tensor *flat = tensor_reshape_view(c, tensor_contiguous(c, idx), 1, &n);
    for (int i = 0; i < idx->ndim; i++) shape[i] = idx->shape[i];
    shape[idx->ndim] = weight->shape[1];
    return ag_reshape(c, ag_index_select(c, weight, 0, flat), idx->ndim + 1, shape);
}

Tensor *ag_flip(Ctx *c, Tensor *x, int dim) {
    if (!ag_arg(c, "flip", "x", x)) return NULL;
    int d = tensor_dim(x, dim);
    if (d < 0) {
        ctx_fail(c, "flip: dimension %d out of range for %d-d tensor", dim, x->ndim);
        return NULL;
    }
    int64_t L = x->shape[d];
    Tensor *idx = tensor_new(c, DT_I64, 1, &L);
    for (int64_t i = 0; i < L; i++) ((int64_t *)idx->data)[i] = L - 1 - i;
    return ag_index_select(c, x, d, idx);
}

Tensor *ag_pad(Ctx *c, Tensor *x, int dim, int64_t before, int64_t after, double value) {
    if (!ag_arg(c, "pad", "x", x) || !ag_check_float(c, "pad", x, NULL)) return NULL;
    int d = tensor_dim(x, dim);
    int64_t total;
    if (d < 0 || before < 0 || after < 0 || __builtin_add_overflow(x->shape[d], before, &total) ||
        __builtin_add_overflow(total, after, &total)) {
        ctx_fail(c, "pad: dimension %d of a %d-d tensor, %lld before and %lld after (not negative, and the sum must fit)", dim, x->ndim,
                 (long long)before, (long long)after);
        return NULL;
    }
    Tensor *parts[3];
    int k = 0;
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    if (before && !(shape[d] = before, parts[k++] = tensor_full(c, x->dtype, x->ndim, shape, value))) return NULL;
    parts[k++] = x;
    if (after && !(shape[d] = after, parts[k++] = tensor_full(c, x->dtype, x->ndim, shape, value))) return NULL;
    return k == 1 ? x : ag_concat(c, parts, k, d);
}

Tensor *ag_stack(Ctx *c, Tensor *const *parts, int k, int dim) {
    if (k < 1 || !parts) {
        ctx_fail(c, "stack: %d parts (at least 1)", k);
        return NULL;
    }
    Tensor **u = ctx_alloc(c, sizeof *u * (size_t)k);
    for (int j = 0; j < k; j++) {
        if (!parts[j] && !c->failed) ctx_fail(c, "stack: argument parts[%d] is NULL", j);
        if (!parts[j]) return NULL;
        int nd = parts[j]->ndim, d = dim < 0 ? dim + nd + 1 : dim;
        if (d < 0 || d > nd || nd + 1 > TENSOR_MAX_DIMS) {
            ctx_fail(c, "stack: dimension %d out of range for %d-d parts", dim, nd);
            return NULL;
        }
        int64_t shape[TENSOR_MAX_DIMS];
        for (int i = 0, o = 0; i <= nd; i++) shape[i] = i == d ? 1 : parts[j]->shape[o++];
        u[j] = ag_reshape(c, parts[j], nd + 1, shape);
    }
    return ag_concat(c, u, k, dim < 0 ? dim + parts[0]->ndim + 1 : dim);
}

// a loss's per-element values [M] (already zero where not counted) reduced as asked: none gives them
// in shape (ndim, shape); mean divides the sum by counted (no element counted: NaN, as PyTorch's 0 / 0,
// with gradients 0)
static Tensor *reduce_loss(Ctx *c, Tensor *per, AgReduction r, int64_t counted, int ndim, const int64_t *shape) {
    if (!per) return NULL;
    if (r == AG_REDUCE_NONE) return ag_reshape(c, per, ndim, shape);
    Tensor *sum = ag_sum_all(c, per);
    if (r == AG_REDUCE_SUM) return sum;
    if (!counted) return ag_add_scalar(c, ag_mul_scalar(c, sum, 0.0), NAN);
    return ag_mul_scalar(c, sum, 1.0 / (double)counted);
}

static bool reduction_ok(Ctx *c, const char *op, AgReduction r) {
    if (r == AG_REDUCE_MEAN || r == AG_REDUCE_SUM || r == AG_REDUCE_NONE) return true;
    ctx_fail(c, "%s: reduction %d is not AG_REDUCE_MEAN, AG_REDUCE_SUM or AG_REDUCE_NONE", op, (int)r);
    return false;
}

// cross-entropy (from logits) or NLL (from log-probabilities) over x [N, C, d...] and int64 labels
// [N, d...]: -(1 - eps) lp[label] - eps mean_c lp, zero where the label is ignore_index
static Tensor *class_loss(Ctx *c, const char *op, Tensor *x, Tensor *labels, AgLossOptions o, bool logits) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "input", x) || !ag_arg(c, op, "labels", labels) || !reduction_ok(c, op, o.reduction)) return NULL;
    bool ok = x->ndim >= 2 && labels->dtype == DT_I64 && labels->ndim == x->ndim - 1 && labels->shape[0] == x->shape[0];
    for (int i = 2; ok && i < x->ndim; i++) ok = labels->shape[i - 1] == x->shape[i];
    if (!ok) {
        ctx_fail(c, "%s: needs input [N, C, d...] and int64 labels [N, d...], got %s and %s %s", op, shape_str(x, s1, sizeof s1),
                 dtype_name(labels->dtype), shape_str(labels, s2, sizeof s2));
        return NULL;
    }
    if (!(o.label_smoothing >= 0 && o.label_smoothing < 1)) {
        ctx_fail(c, "%s: label smoothing %g outside [0, 1)", op, o.label_smoothing);
        return NULL;
    }
    int64_t C = x->shape[1], M = tensor_numel(labels), kept = 0;
    int inv[TENSOR_MAX_DIMS];
    Tensor *z = ag_reshape(c, dim_last(c, x, 1, inv), 2, (int64_t[]){M, C});
    Tensor *lab = tensor_new(c, DT_I64, 2, (int64_t[]){M, 1}), *mask = tensor_new(c, x->dtype, 2, (int64_t[]){M, 1});
    Tensor *lc = tensor_contiguous(c, labels);
    if (!z || !lab || !mask || !lc) return NULL;
    for (int64_t i = 0; i < M; i++) {
        int64_t t = ((const int64_t *)lc->data)[i];
        bool keep = t != o.ignore_index;
        if (keep && (t < 0 || t >= C)) {
            ctx_fail(c, "%s: label %lld outside [0, %lld) (ignore_index %lld)", op, (long long)t, (long long)C, (long long)o.ignore_index);
            return NULL;
        }
        ((int64_t *)lab->data)[i] = keep ? t : 0;
        tensor_set_flat(mask, i, keep);
        kept += keep;
    }
    Tensor *lp = logits ? ag_log_softmax(c, z) : z;
    Tensor *per = ag_mul_scalar(c, ag_gather(c, lp, 1, lab), -(1 - o.label_smoothing)); // [M, 1]
    if (o.label_smoothing > 0) per = ag_sub(c, per, ag_mul_scalar(c, ag_mean(c, lp, 1, true), o.label_smoothing));
    per = ag_reshape(c, ag_mul(c, per, mask), 1, &M);
    return reduce_loss(c, per, o.reduction, kept, labels->ndim, labels->shape);
}

Tensor *ag_cross_entropy_with(Ctx *c, Tensor *logits, Tensor *labels, AgLossOptions o) {
    return class_loss(c, "cross_entropy", logits, labels, o, true);
}

Tensor *ag_nll_loss_with(Ctx *c, Tensor *logp, Tensor *labels, AgLossOptions o) {
    return class_loss(c, "nll_loss", logp, labels, o, false);
}

// an elementwise loss's values reduced as asked (none: input's shape)
static Tensor *elementwise_loss(Ctx *c, Tensor *l, AgReduction r) {
    if (!l) return NULL;
    int64_t n = tensor_numel(l);
    return reduce_loss(c, ag_reshape(c, l, 1, &n), r, n, l->ndim, l->shape);
}

Tensor *ag_mse_loss_with(Ctx *c, Tensor *input, Tensor *target, AgReduction r) {
    if (!ag_arg(c, "mse_loss", "input", input) || !ag_arg(c, "mse_loss", "target", target) || !reduction_ok(c, "mse_loss", r)) return NULL;
    Tensor *d = ag_sub(c, input, target);
    return elementwise_loss(c, ag_mul(c, d, d), r);
}

Tensor *ag_bce_with_logits_with(Ctx *c, Tensor *logits, Tensor *target, AgReduction r) {
    if (!ag_arg(c, "bce_with_logits", "logits", logits) || !ag_arg(c, "bce_with_logits", "target", target) ||
        !reduction_ok(c, "bce_with_logits", r))
        return NULL;
    // max(x, 0) - x y + log(1 + e^-|x|): no overflow for any x
    Tensor *l = ag_sub(c, ag_relu(c, logits), ag_mul(c, logits, target));
    return elementwise_loss(c, ag_add(c, l, ag_softplus(c, ag_neg(c, ag_abs(c, logits)), 1.0, 20.0)), r);
}

Tensor *ag_l1_loss_with(Ctx *c, Tensor *input, Tensor *target, AgReduction r) {
    if (!ag_arg(c, "l1_loss", "input", input) || !ag_arg(c, "l1_loss", "target", target) || !reduction_ok(c, "l1_loss", r)) return NULL;
    return elementwise_loss(c, ag_abs(c, ag_sub(c, input, target)), r);
}

// sum or mean over several dimensions, one at a time from the last (the indices stay valid)
static Tensor *reduce_dims(Ctx *c, const char *op, Tensor *x, const int *dims, int n, bool keepdim, bool mean) {
    if (!ag_arg(c, op, "x", x)) return NULL;
    int d[TENSOR_MAX_DIMS];
    if (n < 1 || n > x->ndim) {
        ctx_fail(c, "%s: %d dimensions for a %d-d tensor", op, n, x->ndim);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        d[i] = tensor_dim(x, dims[i]);
        for (int j = 0; j < i; j++)
            if (d[j] == d[i]) d[i] = -1;
        if (d[i] < 0) {
            ctx_fail(c, "%s: dimension %d is out of range or repeated for a %d-d tensor", op, dims[i], x->ndim);
            return NULL;
        }
    }
    for (int i = 1; i < n; i++) // descending
        for (int j = i; j > 0 && d[j] > d[j - 1]; j--) {
            int t = d[j];
            d[j] = d[j - 1], d[j - 1] = t;
        }
    Tensor *y = x;
    for (int i = 0; i < n; i++) y = mean ? ag_mean(c, y, d[i], keepdim) : ag_sum(c, y, d[i], keepdim);
    return y;
}

Tensor *ag_sum_dims(Ctx *c, Tensor *x, const int *dims, int n, bool keepdim) { return reduce_dims(c, "sum", x, dims, n, keepdim, false); }
Tensor *ag_mean_dims(Ctx *c, Tensor *x, const int *dims, int n, bool keepdim) { return reduce_dims(c, "mean", x, dims, n, keepdim, true); }

int ag_split(Ctx *c, Tensor *x, int dim, const int64_t *sizes, int n, Tensor **out) {
    if (!ag_arg(c, "split", "x", x)) return -1;
    int d = tensor_dim(x, dim);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i] >= 0 ? sizes[i] : -1;
    if (d < 0 || n < 1 || total != x->shape[d]) {
        ctx_fail(c, "split: %d sizes summing to %lld do not cover dimension %d of a %d-d tensor", n, (long long)total, dim, x->ndim);
        return -1;
    }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        out[i] = ag_narrow(c, x, d, at, sizes[i]);
        if (!out[i]) return -1;
        at += sizes[i];
    }
    return 0;
}

int ag_chunk(Ctx *c, Tensor *x, int dim, int n, Tensor **out) {
    if (!ag_arg(c, "chunk", "x", x)) return -1;
    int d = tensor_dim(x, dim);
    if (d < 0 || n < 1 || n > x->shape[d]) {
        ctx_fail(c, "chunk: %d chunks of dimension %d of %s", n, dim, x->ndim ? "the tensor" : "a 0-d tensor");
        return -1;
    }
    int64_t L = x->shape[d], each = (L + n - 1) / n, sizes[TENSOR_MAX_DIMS * 8];
    if (n > (int)(sizeof sizes / sizeof *sizes)) {
        ctx_fail(c, "chunk: at most %d chunks", (int)(sizeof sizes / sizeof *sizes));
        return -1;
    }
    int k = 0; // PyTorch's chunks: ceil(L / n) each, the last smaller, fewer when they run out
    for (int64_t at = 0; at < L; at += each) sizes[k++] = at + each <= L ? each : L - at;
    for (int i = k; i < n; i++) out[i] = NULL;
    return ag_split(c, x, d, sizes, k, out) == 0 ? k : -1;
}

Tensor *ag_layernorm_dim(Ctx *c, Tensor *x, int dim, Tensor *w, Tensor *b, double eps) {
    if (!ag_arg(c, "layernorm", "x", x)) return NULL;
    int d = tensor_dim(x, dim), inv[TENSOR_MAX_DIMS];
    if (d < 0) {
        ctx_fail(c, "layernorm: dimension %d out of range for %d-d tensor", dim, x->ndim);
        return NULL;
    }
    if (d == x->ndim - 1) return ag_layer_norm(c, x, 1, w, b, eps);
    return ag_contiguous(c, ag_permute(c, ag_layer_norm(c, dim_last(c, x, d, inv), 1, w, b, eps), inv));
}
