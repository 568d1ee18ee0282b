// ops_compose.c: ops built from other ops; their gradients come from those ops' backward kernels.
// PyTorch's semantics: logsumexp, var / std with a correction, and the mean losses mse,
// binary cross-entropy with logits and nll.
#include "extend.h"

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

Tensor *ag_mse_loss(Ctx *c, Tensor *input, Tensor *target) {
    if (!ag_arg(c, "mse_loss", "input", input) || !ag_arg(c, "mse_loss", "target", target)) return NULL;
    Tensor *d = ag_sub(c, input, target);
    return ag_mean_all(c, ag_mul(c, d, d));
}

Tensor *ag_bce_with_logits(Ctx *c, Tensor *logits, Tensor *target) {
    if (!ag_arg(c, "bce_with_logits", "logits", logits) || !ag_arg(c, "bce_with_logits", "target", target)) return NULL;
    // max(x, 0) - x y + log(1 + e^-|x|): no overflow for any x
    Tensor *l = ag_sub(c, ag_relu(c, logits), ag_mul(c, logits, target));
    return ag_mean_all(c, ag_add(c, l, ag_softplus(c, ag_neg(c, ag_abs(c, logits)), 1.0, 20.0)));
}

Tensor *ag_nll_loss(Ctx *c, Tensor *logp, Tensor *labels) {
    char s1[96], s2[96];
    if (!ag_arg(c, "nll_loss", "logp", logp) || !ag_arg(c, "nll_loss", "labels", labels)) return NULL;
    if (logp->ndim != 2 || labels->ndim != 1 || labels->dtype != DT_I64 || labels->shape[0] != logp->shape[0]) {
        ctx_fail(c, "nll_loss: needs log-probabilities [N, C] and int64 labels [N], got %s and %s %s", shape_str(logp, s1, sizeof s1),
                 dtype_name(labels->dtype), shape_str(labels, s2, sizeof s2));
        return NULL;
    }
    Tensor *idx = tensor_reshape_view(c, tensor_contiguous(c, labels), 2, (int64_t[]){labels->shape[0], 1});
    return ag_neg(c, ag_mean_all(c, ag_gather(c, logp, 1, idx)));
}
