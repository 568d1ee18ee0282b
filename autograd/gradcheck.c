// gradcheck.c: analytic gradients against central finite differences (see autograd.h).
#include "extend.h"

#include <math.h>
#include <string.h>

// L = sum(f(in) * R); returns NAN (message in msg) when f fails
static double eval_loss(AgFn f, void *ud, Tensor **in, Ctx *c, const Tensor *R, bool backward, char *msg, size_t msgn) {
    Tensor *y = f(c, in, ud);
    Tensor *Rv = y ? tensor_from_buffer(c, y->dtype, y->ndim, y->shape, R->data) : NULL;
    if (y && tensor_numel(y) != tensor_numel(R)) y = NULL;
    Tensor *L = y ? ag_sum_all(c, ag_mul(c, y, Rv)) : NULL;
    if (!L) {
        snprintf(msg, msgn, "gradcheck: the function failed: %s", ctx_error(c));
        return NAN;
    }
    if (backward && ag_backward(c, L) != 0) {
        snprintf(msg, msgn, "gradcheck: backward failed: %s", ctx_error(c));
        return NAN;
    }
    return tensor_get_flat(L, 0);
}

bool ag_gradcheck(AgFn f, void *ud, Tensor **in, int nin, const AgGradcheckOpts *opts, char *msg, size_t msgn) {
    double eps = opts && opts->eps ? opts->eps : 1e-6;
    double atol = opts && opts->atol ? opts->atol : 1e-7;
    double rtol = opts && opts->rtol ? opts->rtol : 1e-5;
    uint64_t seed = opts && opts->seed ? opts->seed : 1234;
    msg[0] = 0;
    Ctx *c = ctx_new(1 << 20);
    bool ok = true;
    // the shape of the output decides R
    Tensor *y0 = f(c, in, ud);
    if (!y0) {
        snprintf(msg, msgn, "gradcheck: the function failed: %s", ctx_error(c));
        ctx_free(c);
        return false;
    }
    Ctx *keep = ctx_new(1 << 16);
    Tensor *R = tensor_new(keep, y0->dtype, y0->ndim, y0->shape);
    Rng rng = rng_new(seed);
    rng_fill_uniform(&rng, R, -1.0, 1.0);
    ctx_reset(c);
    // analytic
    for (int i = 0; i < nin; i++)
        if (in[i]->requires_grad) ag_zero_grad(&in[i], 1);
    if (isnan(eval_loss(f, ud, in, c, R, true, msg, msgn))) {
        ok = false;
        goto done;
    }
    Tensor *analytic[AG_MAX_IN * 2] = {0};
    for (int i = 0; i < nin && i < AG_MAX_IN * 2; i++)
        if (in[i]->requires_grad) analytic[i] = tensor_clone(keep, in[i]->grad);
    // numeric, element by element
    for (int i = 0; i < nin && ok; i++) {
        if (!in[i]->requires_grad) continue;
        int64_t n = tensor_numel(in[i]);
        for (int64_t j = 0; j < n && ok; j++) {
            double v = tensor_get_flat(in[i], j);
            ctx_reset(c);
            ag_no_grad(c, true);
            tensor_set_flat(in[i], j, v + eps);
            double lp = eval_loss(f, ud, in, c, R, false, msg, msgn);
            ctx_reset(c);
            tensor_set_flat(in[i], j, v - eps);
            double lm = eval_loss(f, ud, in, c, R, false, msg, msgn);
            tensor_set_flat(in[i], j, v);
            ag_no_grad(c, false);
            double num = (lp - lm) / (2 * eps), an = tensor_get_flat(analytic[i], j);
            if (!(fabs(an - num) <= atol + rtol * fabs(num))) {
                if (!msg[0])
                    snprintf(msg, msgn, "gradcheck: input %d element %lld: analytic %.10g, numeric %.10g (diff %.3g)", i, (long long)j, an,
                             num, fabs(an - num));
                ok = false;
            }
        }
    }
done:
    ctx_free(c);
    ctx_free(keep);
    return ok;
}
