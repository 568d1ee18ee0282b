// ops_elementwise.c: broadcast binary ops, unary ops, scalar forms, dropout.
#include "extend.h"

#include <string.h>

// strides of t placed on an output shape of nd dims (0 where t is broadcast)
static void bstrides(const Tensor *t, const int64_t *strides, const int64_t *shape, int nd, int64_t *out) {
    for (int i = 0; i < nd; i++) {
        int j = i - (nd - t->ndim);
        out[i] = (j >= 0 && t->shape[j] == shape[i] && t->shape[j] != 1) ? strides[j] : 0;
    }
}

static void contiguous_strides(const Tensor *t, int64_t *st) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= t->shape[i];
    }
}

static void binary_bw(AgNode *n) {
    Tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    int nd = y->ndim;
    int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS], sga[TENSOR_MAX_DIMS], sgb[TENSOR_MAX_DIMS];
    int64_t ca[TENSOR_MAX_DIMS], cb[TENSOR_MAX_DIMS];
    bstrides(a, a->strides, y->shape, nd, sa);
    bstrides(b, b->strides, y->shape, nd, sb);
    contiguous_strides(a, ca);
    contiguous_strides(b, cb);
    bstrides(a, ca, y->shape, nd, sga);
    bstrides(b, cb, y->shape, nd, sgb);
    Tensor *ga = ag_grad_buf(a), *gb = ag_grad_buf(b);
    AG_DISPATCH(y->dtype, binary_backward, (BinaryOp)n->i[0], ga ? ga->data : NULL, sga, gb ? gb->data : NULL, sgb, y->grad->data, a->data,
                sa, b->data, sb, y->shape, nd);
}

static const char *const BIN_NAMES[] = {"add", "sub", "mul", "div", "minimum", "maximum", "eq", "ne", "lt", "le", "gt", "ge"};

static Tensor *binary(Ctx *c, BinaryOp op, Tensor *a, Tensor *b) {
    const char *name = BIN_NAMES[op];
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, name, "a", a) || !ag_arg(c, name, "b", b) || !ag_check_float(c, name, a, b)) return NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    int nd = broadcast_shapes(a, b, shape);
    if (nd < 0) {
        ctx_fail(c, "%s: shapes %s and %s do not broadcast", name, shape_str(a, s1, sizeof s1), shape_str(b, s2, sizeof s2));
        return NULL;
    }
    Tensor *y = tensor_new(c, a->dtype, nd, shape);
    int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
    bstrides(a, a->strides, shape, nd, sa);
    bstrides(b, b->strides, shape, nd, sb);
    AG_DISPATCH(a->dtype, binary_forward, op, y->data, a->data, sa, b->data, sb, shape, nd);
    if (op >= BIN_EQ) return y; // a mask: no gradient
    AgNode *n = ag_record(c, name, y, 2, (Tensor *[]){a, b}, binary_bw);
    if (n) n->i[0] = op;
    return y;
}

Tensor *ag_add(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_ADD, a, b); }
Tensor *ag_sub(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_SUB, a, b); }
Tensor *ag_mul(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_MUL, a, b); }
Tensor *ag_div(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_DIV, a, b); }
Tensor *ag_minimum(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_MIN, a, b); }
Tensor *ag_maximum(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_MAX, a, b); }
Tensor *ag_eq(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_EQ, a, b); }
Tensor *ag_ne(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_NE, a, b); }
Tensor *ag_lt(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_LT, a, b); }
Tensor *ag_le(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_LE, a, b); }
Tensor *ag_gt(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_GT, a, b); }
Tensor *ag_ge(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_GE, a, b); }

// ---- unary ----

static void unary_bw(AgNode *n) {
    Tensor *x = n->saved[0], *y = n->out;
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(y->dtype, unary_backward, (UnaryOp)n->i[0], gx->data, y->grad->data, x->data, y->data, tensor_numel(y), n->f[0], n->f[1]);
}

static Tensor *unary2(Ctx *c, const char *name, UnaryOp op, Tensor *x, double param, double param1) {
    if (!ag_arg(c, name, "x", x) || !ag_check_float(c, name, x, NULL)) return NULL;
    Tensor *xc = tensor_contiguous(c, x);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    AG_DISPATCH(x->dtype, unary_forward, op, y->data, xc->data, tensor_numel(y), param, param1);
    AgNode *n = ag_record(c, name, y, 1, &x, unary_bw);
    if (n) {
        n->saved[0] = xc;
        n->i[0] = op;
        n->f[0] = param, n->f[1] = param1;
    }
    return y;
}

static Tensor *unary(Ctx *c, const char *name, UnaryOp op, Tensor *x, double param) { return unary2(c, name, op, x, param, 0); }

Tensor *ag_neg(Ctx *c, Tensor *x) { return unary(c, "neg", UN_NEG, x, 0); }
Tensor *ag_exp(Ctx *c, Tensor *x) { return unary(c, "exp", UN_EXP, x, 0); }
Tensor *ag_log(Ctx *c, Tensor *x) { return unary(c, "log", UN_LOG, x, 0); }
Tensor *ag_sqrt(Ctx *c, Tensor *x) { return unary(c, "sqrt", UN_SQRT, x, 0); }
Tensor *ag_tanh(Ctx *c, Tensor *x) { return unary(c, "tanh", UN_TANH, x, 0); }
Tensor *ag_gelu(Ctx *c, Tensor *x) { return unary(c, "gelu", UN_GELU, x, 0); }
Tensor *ag_relu(Ctx *c, Tensor *x) { return unary(c, "relu", UN_RELU, x, 0); }
Tensor *ag_mul_scalar(Ctx *c, Tensor *x, double s) { return unary(c, "mul_scalar", UN_SCALE, x, s); }
Tensor *ag_add_scalar(Ctx *c, Tensor *x, double s) { return unary(c, "add_scalar", UN_ADD_SCALAR, x, s); }
Tensor *ag_sigmoid(Ctx *c, Tensor *x) { return unary(c, "sigmoid", UN_SIGMOID, x, 0); }
Tensor *ag_silu(Ctx *c, Tensor *x) { return unary(c, "silu", UN_SILU, x, 0); }
Tensor *ag_softplus(Ctx *c, Tensor *x, double beta, double threshold) {
    if (!(beta > 0)) {
        ctx_fail(c, "softplus: beta %g must be positive", beta);
        return NULL;
    }
    return unary2(c, "softplus", UN_SOFTPLUS, x, beta, threshold);
}
Tensor *ag_leaky_relu(Ctx *c, Tensor *x, double slope) { return unary(c, "leaky_relu", UN_LEAKY_RELU, x, slope); }
Tensor *ag_gelu_tanh(Ctx *c, Tensor *x) { return unary(c, "gelu_tanh", UN_GELU_TANH, x, 0); }
Tensor *ag_pow_scalar(Ctx *c, Tensor *x, double p) { return unary(c, "pow", UN_POW, x, p); }
Tensor *ag_abs(Ctx *c, Tensor *x) { return unary(c, "abs", UN_ABS, x, 0); }
Tensor *ag_clamp(Ctx *c, Tensor *x, double lo, double hi) {
    if (lo > hi) {
        ctx_fail(c, "clamp: min %g is above max %g", lo, hi);
        return NULL;
    }
    return unary2(c, "clamp", UN_CLAMP, x, lo, hi);
}

// ---- where: c ? a : b, the three broadcast together ----

static void where_bw(AgNode *n) {
    Tensor *ga = ag_grad_buf(n->in[1]), *gb = ag_grad_buf(n->in[2]);
    AG_DISPATCH(n->out->dtype, where_backward, ga ? ga->data : NULL, gb ? gb->data : NULL, n->out->grad->data, n->saved[0]->data,
                tensor_numel(n->out));
}

Tensor *ag_where(Ctx *c, Tensor *cond, Tensor *a, Tensor *b) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF], s3[SHAPE_STR_BUF];
    if (!ag_arg(c, "where", "cond", cond) || !ag_arg(c, "where", "a", a) || !ag_arg(c, "where", "b", b) ||
        !ag_check_float(c, "where", a, b) || !ag_check_float(c, "where", a, cond))
        return NULL;
    int64_t s_ab[TENSOR_MAX_DIMS], shape[TENSOR_MAX_DIMS];
    int nd = broadcast_shapes(a, b, s_ab);
    Tensor ab = {.ndim = nd};
    if (nd >= 0) memcpy(ab.shape, s_ab, sizeof s_ab);
    nd = nd < 0 ? -1 : broadcast_shapes(&ab, cond, shape);
    if (nd < 0) {
        ctx_fail(c, "where: shapes %s, %s and %s do not broadcast", shape_str(cond, s1, sizeof s1), shape_str(a, s2, sizeof s2),
                 shape_str(b, s3, sizeof s3));
        return NULL;
    }
    // each input made whole on the output's shape (a broadcast input's gradient sums through expand)
    Tensor *cc = ag_contiguous(c, ag_detach(c, ag_expand(c, cond, nd, shape)));
    Tensor *ac = ag_contiguous(c, ag_expand(c, a, nd, shape)), *bc = ag_contiguous(c, ag_expand(c, b, nd, shape));
    if (!cc || !ac || !bc) return NULL;
    Tensor *y = tensor_new(c, a->dtype, nd, shape);
    AG_DISPATCH(a->dtype, where_forward, y->data, cc->data, ac->data, bc->data, tensor_numel(y));
    AgNode *n = ag_record(c, "where", y, 3, (Tensor *[]){cc, ac, bc}, where_bw);
    if (n) n->saved[0] = cc;
    return y;
}

Tensor *ag_masked_fill(Ctx *c, Tensor *x, Tensor *mask, double value) {
    if (!ag_arg(c, "masked_fill", "x", x) || !ag_arg(c, "masked_fill", "mask", mask) || !ag_check_float(c, "masked_fill", x, NULL))
        return NULL;
    Tensor *v = tensor_full(c, x->dtype, 0, NULL, value);
    return ag_where(c, mask, v, x);
}

// ---- dropout: out = x * mask, mask[i] = 0 with probability p, else 1/(1-p) ----

static void dropout_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]), *mask = n->saved[0];
    AG_DISPATCH(n->out->dtype, dropout_backward, gx->data, n->out->grad->data, mask->data, tensor_numel(mask));
}

Tensor *ag_dropout(Ctx *c, Tensor *x, double p, Rng *rng, bool training) {
    if (!ag_arg(c, "dropout", "x", x) || !ag_check_float(c, "dropout", x, NULL)) return NULL;
    if (!(p >= 0 && p <= 1)) {
        ctx_fail(c, "dropout: probability %g outside [0, 1]", p);
        return NULL;
    }
    if (!training || p == 0) return x;
    if (!rng) {
        ctx_fail(c, "dropout: argument rng is NULL (needed for p %g in training)", p);
        return NULL;
    }
    int64_t n = tensor_numel(x);
    Tensor *mask = tensor_new(c, x->dtype, x->ndim, x->shape);
    if (x->dtype == DT_F32)
        rng_dropout_mask(rng, mask->data, n, p);
    else {
        float *m32 = ctx_alloc(c, sizeof(float) * (size_t)n);
        rng_dropout_mask(rng, m32, n, p);
        for (int64_t i = 0; i < n; i++) ((double *)mask->data)[i] = m32[i] ? 1.0 / (1.0 - p) : 0.0;
    }
    Tensor *xc = tensor_contiguous(c, x);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    AG_DISPATCH(x->dtype, dropout_forward, y->data, xc->data, mask->data, n);
    AgNode *nd = ag_record(c, "dropout", y, 1, &x, dropout_bw);
    if (nd) nd->saved[0] = mask;
    return y;
}
