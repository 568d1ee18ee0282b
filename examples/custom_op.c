// custom_op.c: an op written outside the library with <cgrad/autograd/extend.h>, checked by
// ag_gradcheck in float64 (docs/ops.md walks through it). y = x^3, dy/dx = 3 x^2.
#include <cgrad/autograd/extend.h>
#include <cgrad_core.h>

#include <stdio.h>

static void cube_backward(AgNode *n) {
    Tensor *x = n->saved[0], *gx = ag_grad_buf(n->in[0]); // NULL: the input needs no gradient
    if (!gx) return;
    const Tensor *g = n->out->grad;
    for (int64_t i = 0; i < tensor_numel(x); i++) { // accumulate: other ops may have added already
        double v = tensor_get_flat(x, i);
        tensor_set_flat(gx, i, tensor_get_flat(gx, i) + tensor_get_flat(g, i) * 3 * v * v);
    }
}

Tensor *my_cube(Ctx *c, Tensor *x) {
    if (!ag_arg(c, "cube", "x", x) || !ag_check_float(c, "cube", x, NULL)) return NULL;
    Tensor *xc = tensor_contiguous(c, x), *y = tensor_new(c, x->dtype, x->ndim, x->shape);
    for (int64_t i = 0; i < tensor_numel(y); i++) {
        double v = tensor_get_flat(xc, i);
        tensor_set_flat(y, i, v * v * v);
    }
    AgNode *n = ag_record(c, "cube", y, 1, &x, cube_backward);
    if (n) n->saved[0] = xc; // only when a gradient is needed
    return y;
}

static Tensor *f(Ctx *c, Tensor **in, void *ud) { return ag_sum(c, my_cube(c, in[0]), 1, false); }

int main(void) {
    Ctx *p = ctx_new(1 << 16);
    Tensor *x = tensor_new(p, DT_F64, SHAPE(3, 4));
    Rng r = rng_new(1);
    rng_fill_uniform(&r, x, -2, 2);
    ag_set_requires_grad(x, true);
    char msg[256];
    bool ok = ag_gradcheck(f, NULL, &x, 1, NULL, msg, sizeof msg);
    printf("cube: gradcheck %s%s\n", ok ? "passed" : "FAILED: ", ok ? "" : msg);
    ctx_free(p);
    return ok ? 0 : 1;
}
