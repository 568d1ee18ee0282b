// ops_elementwise.c: broadcast binary ops, unary ops, scalar forms, dropout.
#include "autograd.h"

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
    for (int i = t->ndim - 1; i >= 0; i--) { st[i] = s; s *= t->shape[i]; }
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
    AG_DISPATCH(y->dtype, binary_backward, (BinaryOp)n->i[0], ga ? ga->data : NULL, sga, gb ? gb->data : NULL, sgb,
                y->grad->data, a->data, sa, b->data, sb, y->shape, nd);
}

static const char *const BIN_NAMES[] = {"add", "sub", "mul", "div"};

static Tensor *binary(Ctx *c, BinaryOp op, Tensor *a, Tensor *b) {
    const char *name = BIN_NAMES[op];
    char s1[96], s2[96];
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
    AgNode *n = ag_record(c, name, y, 2, (Tensor *[]){a, b}, binary_bw);
    if (n) n->i[0] = op;
    return y;
}

Tensor *ag_add(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_ADD, a, b); }
Tensor *ag_sub(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_SUB, a, b); }
Tensor *ag_mul(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_MUL, a, b); }
Tensor *ag_div(Ctx *c, Tensor *a, Tensor *b) { return binary(c, BIN_DIV, a, b); }

// ---- unary ----

static void unary_bw(AgNode *n) {
    Tensor *x = n->saved[0], *y = n->out;
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(y->dtype, unary_backward, (UnaryOp)n->i[0], gx->data, y->grad->data, x->data, y->data,
                tensor_numel(y), n->f[0]);
}

static Tensor *unary(Ctx *c, const char *name, UnaryOp op, Tensor *x, double param) {
    if (!ag_arg(c, name, "x", x) || !ag_check_float(c, name, x, NULL)) return NULL;
    Tensor *xc = tensor_contiguous(c, x);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    AG_DISPATCH(x->dtype, unary_forward, op, y->data, xc->data, tensor_numel(y), param);
    AgNode *n = ag_record(c, name, y, 1, &x, unary_bw);
    if (n) {
        n->saved[0] = xc;
        n->i[0] = op;
        n->f[0] = param;
    }
    return y;
}

Tensor *ag_neg(Ctx *c, Tensor *x) { return unary(c, "neg", UN_NEG, x, 0); }
Tensor *ag_exp(Ctx *c, Tensor *x) { return unary(c, "exp", UN_EXP, x, 0); }
Tensor *ag_log(Ctx *c, Tensor *x) { return unary(c, "log", UN_LOG, x, 0); }
Tensor *ag_sqrt(Ctx *c, Tensor *x) { return unary(c, "sqrt", UN_SQRT, x, 0); }
Tensor *ag_tanh(Ctx *c, Tensor *x) { return unary(c, "tanh", UN_TANH, x, 0); }
Tensor *ag_gelu(Ctx *c, Tensor *x) { return unary(c, "gelu", UN_GELU, x, 0); }
Tensor *ag_relu(Ctx *c, Tensor *x) { return unary(c, "relu", UN_RELU, x, 0); }
Tensor *ag_mul_scalar(Ctx *c, Tensor *x, double s) { return unary(c, "mul_scalar", UN_SCALE, x, s); }
Tensor *ag_add_scalar(Ctx *c, Tensor *x, double s) { return unary(c, "add_scalar", UN_ADD_SCALAR, x, s); }

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
    if (x->dtype == DT_F32) rng_dropout_mask(rng, mask->data, n, p);
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
