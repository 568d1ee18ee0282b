// test_autograd.c: the engine: broadcasting gradients, views, a leaf used twice, no-grad mode,
// frozen inputs recording nothing, detach, zero_grad, errors, and a steady-state step.
#include "../../autograd/autograd.h"
#include "../../autograd/extend.h"

#include "../check_util.h"
#include <math.h>
#include <string.h>

static Ctx *P, *c;
static void setup(void) {
    P = ctx_new(1 << 16);
    c = ctx_new(1 << 16);
}
static void teardown(void) {
    ctx_free(c);
    ctx_free(P);
}

static Tensor *param(int ndim, const int64_t *shape, const float *v) {
    Tensor *t = tensor_from_data(P, DT_F32, ndim, shape, v);
    ag_set_requires_grad(t, true);
    return t;
}

static void expect(const Tensor *t, const double *want, int64_t n) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(tensor_get_flat(t, i) - want[i]) < 1e-6, "element %lld: got %g want %g", (long long)i, tensor_get_flat(t, i),
                      want[i]);
}

START_TEST(test_broadcast_gradients_reduce) {
    // y = sum(a [2,3] * b [3]) : da = b broadcast, db = column sums of a
    Tensor *a = param(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6}), *b = param(SHAPE(3), (float[]){10, 20, 30});
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, a, b))), 0);
    expect(a->grad, (double[]){10, 20, 30, 10, 20, 30}, 6);
    expect(b->grad, (double[]){5, 7, 9}, 3);
    // column vector broadcast [2,1] against [1,3] -> [2,3]
    Tensor *u = param(SHAPE(2, 1), (float[]){1, 2}), *v = param(SHAPE(1, 3), (float[]){1, 2, 3});
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_sub(c, u, v))), 0);
    expect(u->grad, (double[]){3, 3}, 2);
    expect(v->grad, (double[]){-2, -2, -2}, 3);
}
END_TEST

START_TEST(test_view_gradients) {
    Tensor *a = param(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *w = param(SHAPE(3, 2), (float[]){1, 2, 3, 4, 5, 6});
    // sum(a^T * w): d a = w^T
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, ag_transpose(c, a, 0, 1), w))), 0);
    expect(a->grad, (double[]){1, 3, 5, 2, 4, 6}, 6);
    ag_zero_grad(&a, 1);
    // a narrow only gets gradient where it reads
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_narrow(c, a, 1, 1, 2))), 0);
    expect(a->grad, (double[]){0, 1, 1, 0, 1, 1}, 6);
    ag_zero_grad(&a, 1);
    // expand: the gradient of a broadcast copy is the sum over the copies
    Tensor *r = param(SHAPE(1, 3), (float[]){1, 1, 1});
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, ag_expand(c, r, SHAPE(4, 3)), ag_expand(c, r, SHAPE(4, 3))))), 0);
    expect(r->grad, (double[]){8, 8, 8}, 3);
}
END_TEST

START_TEST(test_leaf_used_twice_accumulates) {
    Tensor *x = param(SHAPE(2), (float[]){3, -1});
    // y = sum(x * x + x): dy/dx = 2x + 1
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_add(c, ag_mul(c, x, x), x))), 0);
    expect(x->grad, (double[]){7, -1}, 2);
    // a second step accumulates into .grad until zero_grad
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, x)), 0);
    expect(x->grad, (double[]){8, 0}, 2);
    ag_zero_grad(&x, 1);
    expect(x->grad, (double[]){0, 0}, 2);
}
END_TEST

// elementwise ops on tensors large enough to run across the threads, one operand used on both
// sides: each element's gradient is its own (x * x: 2x; relu(x) / 4 - x: (x > 0) / 4 - 1)
START_TEST(test_large_elementwise_gradients) {
    int64_t n = 3 * 32768 + 5;
    Ctx *pc = ctx_new(1 << 22), *cc = ctx_new(1 << 24);
    Tensor *x = tensor_new(pc, DT_F32, 1, (int64_t[]){n});
    float *px = x->data;
    for (int64_t i = 0; i < n; i++) px[i] = (float)((i * 37) % 201 - 100) / 8;
    ag_set_requires_grad(x, true);
    Tensor *y = ag_add(cc, ag_mul(cc, x, x), ag_sub(cc, ag_mul_scalar(cc, ag_relu(cc, x), 0.25), x));
    ck_assert_int_eq(ag_backward(cc, ag_sum_all(cc, y)), 0);
    const float *py = y->data, *gx = x->grad->data;
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        float v = px[i], want_y = v * v + ((v > 0 ? v : 0) * 0.25f - v), want_g = v + v + ((v > 0 ? 0.25f : 0) - 1);
        if (py[i] != want_y || fabsf(gx[i] - want_g) > 1e-6f * (1 + fabsf(want_g))) bad = i;
    }
    ck_assert_msg(bad < 0, "element %lld: y %g grad %g", (long long)bad, bad < 0 ? 0 : py[bad], bad < 0 ? 0 : gx[bad]);
    ctx_free(cc), ctx_free(pc);
}
END_TEST

// the float32 convolution (its own GEMM, the "same" and strided column paths, one-image and
// many-image chunks) against the float64 one (the BLAS) on the same values, forward and backward:
// 3x3 "same", stride 2, 1x1 stride 2, groups, images of 24x24 and of 5x7
static double rel_l2_t(const Tensor *a, const Tensor *b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) {
        double d = tensor_get_flat(a, i) - tensor_get_flat(b, i);
        num += d * d, den += tensor_get_flat(b, i) * tensor_get_flat(b, i);
    }
    return sqrt(num / (den + 1e-300));
}

START_TEST(test_conv2d_float32_matches_float64) {
    const struct {
        int64_t B, C, H, W, OC, k;
        int stride, pad, groups;
    } cs[] = {{3, 16, 24, 24, 16, 3, 1, 1, 1}, {5, 8, 5, 7, 12, 3, 2, 1, 1}, {4, 6, 9, 9, 8, 1, 2, 0, 1}, {2, 8, 11, 10, 6, 3, 1, 1, 2}};
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++) {
        Ctx *pc = ctx_new(1 << 22), *cc = ctx_new(1 << 24);
        Rng r = rng_new(40 + t);
        Tensor *x64 = tensor_new(pc, DT_F64, 4, (int64_t[]){cs[t].B, cs[t].C, cs[t].H, cs[t].W});
        Tensor *w64 = tensor_new(pc, DT_F64, 4, (int64_t[]){cs[t].OC, cs[t].C / cs[t].groups, cs[t].k, cs[t].k});
        Tensor *b64 = tensor_new(pc, DT_F64, 1, (int64_t[]){cs[t].OC});
        rng_fill_uniform(&r, x64, -1, 1), rng_fill_uniform(&r, w64, -1, 1), rng_fill_uniform(&r, b64, -1, 1);
        Tensor *in[2][3] = {{x64, w64, b64}, {tensor_to(pc, x64, DT_F32), tensor_to(pc, w64, DT_F32), tensor_to(pc, b64, DT_F32)}};
        Tensor *y[2];
        for (int d = 0; d < 2; d++) {
            for (int i = 0; i < 3; i++) ag_set_requires_grad(in[d][i], true);
            int st[2] = {cs[t].stride, cs[t].stride}, pd[2] = {cs[t].pad, cs[t].pad};
            y[d] = ag_conv2d(cc, in[d][0], in[d][1], in[d][2], st, pd, NULL, cs[t].groups);
            ck_assert_ptr_nonnull(y[d]);
            // a loss that weighs every output differently: sum(y * sin(index))
            Tensor *wt = tensor_new(cc, y[d]->dtype, y[d]->ndim, y[d]->shape);
            for (int64_t i = 0; i < tensor_numel(wt); i++) tensor_set_flat(wt, i, sin((double)i));
            ck_assert_int_eq(ag_backward(cc, ag_sum_all(cc, ag_mul(cc, y[d], wt))), 0);
        }
        ck_assert_msg(rel_l2_t(y[1], y[0]) < 1e-6, "case %zu: output rel err %g", t, rel_l2_t(y[1], y[0]));
        for (int i = 0; i < 3; i++)
            ck_assert_msg(rel_l2_t(in[1][i]->grad, in[0][i]->grad) < 1e-5, "case %zu: gradient %d rel err %g", t, i,
                          rel_l2_t(in[1][i]->grad, in[0][i]->grad));
        ctx_free(cc), ctx_free(pc);
    }
}
END_TEST

START_TEST(test_no_grad_records_nothing) {
    Tensor *x = param(SHAPE(2), (float[]){1, 2});
    bool prev = ag_no_grad(c, true);
    Tensor *y = ag_exp(c, ag_mul(c, x, x));
    ag_no_grad(c, prev);
    ck_assert(!y->requires_grad);
    ck_assert_int_eq(ag_tape_len(c), 0);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, y)), -1);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "does not depend"));
    expect(x->grad, (double[]){0, 0}, 2);
}
END_TEST

START_TEST(test_frozen_inputs_record_nothing) {
    // a frozen layer: no node, no weight gradient; only the trainable path is recorded
    Tensor *w = tensor_from_data(P, DT_F32, SHAPE(2, 2), (float[]){1, 2, 3, 4});
    Tensor *x = tensor_from_data(c, DT_F32, SHAPE(1, 2), (float[]){1, 1});
    Tensor *h = ag_linear(c, x, w, NULL);
    ck_assert_int_eq(ag_tape_len(c), 0);
    ck_assert_ptr_null(h->node);
    Tensor *lora = param(SHAPE(2, 2), (float[]){0, 0, 0, 0});
    Tensor *y = ag_add(c, h, ag_linear(c, x, lora, NULL));
    ck_assert_int_eq(ag_tape_len(c), 2);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, y)), 0);
    ck_assert_ptr_null(w->grad);
    expect(lora->grad, (double[]){1, 1, 1, 1}, 4);
}
END_TEST

START_TEST(test_will_record_answers_as_record_does) {
    Tensor *w = tensor_from_data(P, DT_F32, SHAPE(2), (float[]){1, 2});
    Tensor *p = param(SHAPE(2), (float[]){3, 4});
    ck_assert(!ag_will_record(c, 2, (Tensor *[]){w, NULL})); // frozen inputs (and a missing one)
    ck_assert(ag_will_record(c, 2, (Tensor *[]){w, p}));
    bool prev = ag_no_grad(c, true);
    ck_assert(!ag_will_record(c, 2, (Tensor *[]){w, p})); // no-grad mode
    ag_no_grad(c, prev);
    ck_assert_int_eq(ag_tape_len(c), 0); // asking records nothing
}
END_TEST

START_TEST(test_detach_and_unreached_branches) {
    Tensor *x = param(SHAPE(2), (float[]){2, 3});
    Tensor *d = ag_detach(c, ag_mul(c, x, x));
    ck_assert(!d->requires_grad);
    Tensor *unused = ag_exp(c, x); // recorded but not reached by the loss
    (void)unused;
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, x, d))), 0);
    expect(x->grad, (double[]){4, 9}, 2); // d is a constant: d(x*d)/dx = d
}
END_TEST

START_TEST(test_mean_of_nothing_is_nan) {
    // PyTorch: torch.zeros(0).mean() is nan, and so is the mean over an empty dimension; sums stay 0
    Tensor *e = tensor_zeros(c, DT_F32, 1, (int64_t[]){0});
    ck_assert(isnan(tensor_get_flat(ag_mean_all(c, e), 0)));
    Tensor *e2 = tensor_zeros(c, DT_F64, 2, (int64_t[]){3, 0});
    Tensor *m = ag_mean(c, e2, 1, false);
    ck_assert_int_eq(tensor_numel(m), 3);
    for (int i = 0; i < 3; i++) ck_assert(isnan(tensor_get_flat(m, i)));
    ck_assert_double_eq(tensor_get_flat(ag_sum_all(c, e), 0), 0.0);
}
END_TEST

// a tensor of a reset context, used by an op or reached by a backward, is an error naming the op,
// never a silent zero gradient or a crash; so is an input written in place between forward and
// backward (PyTorch raises there too)
// every label ignored: the mean cross-entropy is NaN, as PyTorch's 0 / 0, and every gradient 0
START_TEST(test_cross_entropy_all_ignored_is_nan) {
    Tensor *z = param(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *lab = tensor_from_data(c, DT_I64, 1, (int64_t[]){2}, (int64_t[]){-100, -100});
    Tensor *l = ag_cross_entropy(c, z, lab);
    ck_assert(isnan(tensor_get_flat(l, 0)));
    ck_assert_int_eq(ag_backward(c, l), 0);
    expect(z->grad, (double[]){0, 0, 0, 0, 0, 0}, 6);
    ag_zero_grad(&z, 1);
    Tensor *l2 = ag_cross_entropy_with(c, z, lab, AG_LOSS_DEFAULTS);
    ck_assert_msg(l2 && isnan(tensor_get_flat(l2, 0)), "%s", ctx_error(c));
    ck_assert_int_eq(ag_backward(c, l2), 0);
    expect(z->grad, (double[]){0, 0, 0, 0, 0, 0}, 6);
}
END_TEST

START_TEST(test_lifetimes_and_versions) {
    Ctx *A = ctx_new(1 << 16), *B = ctx_new(1 << 16);
    Tensor *w = param(SHAPE(2), (float[]){1, 2});
    Tensor *x = tensor_from_data(A, DT_F32, 1, (int64_t[]){2}, (float[]){3, 4});
    Tensor *loss = ag_sum_all(B, ag_mul(B, w, x)); // x saved by mul in B
    ck_assert_ptr_nonnull(loss);
    ctx_reset(A); // x is dead now
    ck_assert_int_eq(ag_backward(B, loss), -1);
    ck_assert_msg(strstr(ctx_error(B), "input 1 of 'mul' belongs to a context that was reset"), "%s", ctx_error(B));
    ctx_clear_error(B);
    // an op given a dead tensor
    Tensor *y = tensor_from_data(A, DT_F32, 1, (int64_t[]){2}, (float[]){1, 1});
    ctx_reset(A);
    ck_assert_ptr_null(ag_add(B, w, y));
    ck_assert_msg(strstr(ctx_error(B), "add: argument") && strstr(ctx_error(B), "reset"), "%s", ctx_error(B));
    ctx_clear_error(B);
    // the loss's own context reset before its backward
    Tensor *l2 = ag_sum_all(B, ag_mul(B, w, w));
    ctx_reset(B);
    ck_assert_int_eq(ag_backward(B, l2), -1);
    ck_assert_msg(strstr(ctx_error(B), "reset"), "%s", ctx_error(B));
    ctx_clear_error(B);
    // written between forward and backward: d(sum(w * z))/dw is z as the forward saw it
    Tensor *z = tensor_from_data(B, DT_F32, 1, (int64_t[]){2}, (float[]){2, 2});
    Tensor *l3 = ag_sum_all(B, ag_mul(B, w, z));
    tensor_set_flat(z, 0, 10);
    ck_assert_int_eq(ag_backward(B, l3), -1);
    ck_assert_msg(strstr(ctx_error(B), "input 1 of 'mul' was written in place after the forward"), "%s", ctx_error(B));
    ctx_clear_error(B);
    // and without the write, the gradient is right
    ctx_reset(B);
    ag_zero_grad(&w, 1);
    Tensor *z2 = tensor_from_data(B, DT_F32, 1, (int64_t[]){2}, (float[]){2, 5});
    ck_assert_int_eq(ag_backward(B, ag_sum_all(B, ag_mul(B, w, z2))), 0);
    expect(w->grad, (double[]){2, 5}, 2);
    ctx_free(A), ctx_free(B);
}
END_TEST

START_TEST(test_backward_errors) {
    Tensor *x = param(SHAPE(2), (float[]){2, 3});
    ck_assert_int_eq(ag_backward(c, ag_mul(c, x, x)), -1);
    ck_assert_str_eq(ctx_error(c), "backward: loss must have one element, got [2]");
    ctx_clear_error(c);
    ck_assert_int_eq(ag_backward(c, NULL), -1);
}
END_TEST

START_TEST(test_two_losses_backwarded_in_turn) {
    // two independent graphs recorded, then backwarded one after the other: the first backward
    // must not clear the second graph (it used to drop the whole tape, leaving y->grad at 0)
    Tensor *x = param(SHAPE(2), (float[]){2, 3}), *y = param(SHAPE(2), (float[]){5, 7});
    Tensor *l1 = ag_sum_all(c, ag_mul(c, x, x));
    Tensor *l2 = ag_sum_all(c, ag_mul_scalar(c, y, 3));
    ck_assert_int_eq(ag_tape_len(c), 4);
    ck_assert_int_eq(ag_backward(c, l1), 0);
    ck_assert_int_eq(ag_tape_len(c), 2); // l2's ops are still there
    ck_assert_int_eq(ag_backward(c, l2), 0);
    expect(x->grad, (double[]){4, 6}, 2);
    expect(y->grad, (double[]){3, 3}, 2);
    ck_assert_int_eq(ag_tape_len(c), 0);
}
END_TEST

START_TEST(test_consumed_graph_is_refused) {
    Tensor *x = param(SHAPE(2), (float[]){2, 3});
    Tensor *h = ag_mul(c, x, x);
    Tensor *l1 = ag_sum_all(c, h);
    ck_assert_int_eq(ag_backward(c, l1), 0);
    ck_assert_int_eq(ag_backward(c, l1), -1);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "consumed"));
    ctx_clear_error(c);
    // a new loss over the consumed h is refused too, naming the op
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_exp(c, h))), -1);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "'mul'"));
    expect(x->grad, (double[]){4, 6}, 2); // the refused passes changed nothing
    ctx_clear_error(c);
    // retain: the same graph backwarded twice accumulates twice
    Tensor *l3 = ag_sum_all(c, ag_mul(c, x, x));
    ag_zero_grad(&x, 1);
    ck_assert_int_eq(ag_backward_retain(c, l3), 0);
    ck_assert_int_eq(ag_backward_retain(c, l3), 0);
    expect(x->grad, (double[]){8, 12}, 2);
    ck_assert_int_eq(ag_backward(c, l3), 0);
    expect(x->grad, (double[]){12, 18}, 2);
    ck_assert_int_eq(ag_backward(c, l3), -1);
}
END_TEST

START_TEST(test_op_recorded_in_another_context) {
    // a weight transpose made once in the parameters' context, used by the step's context: the
    // weight gets its gradient (it used to get none)
    Tensor *w = param(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *wt = ag_transpose(P, w, 0, 1); // [3, 2]
    Tensor *x = tensor_from_data(c, DT_F32, SHAPE(1, 3), (float[]){1, 10, 100});
    ck_assert_int_eq(ag_backward_retain(c, ag_sum_all(c, ag_matmul(c, x, wt))), 0);
    expect(w->grad, (double[]){1, 10, 100, 1, 10, 100}, 6);
    // next step: a new step context, the same wt; retain keeps it walkable, and its
    // intermediate gradient does not carry over from the last step
    ctx_reset(c);
    x = tensor_from_data(c, DT_F32, SHAPE(1, 3), (float[]){2, 0, 0});
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_matmul(c, x, wt))), 0);
    expect(w->grad, (double[]){3, 10, 100, 3, 10, 100}, 6);
    // consumed now: a third step is refused loudly, not silently given no gradient
    ctx_reset(c);
    x = tensor_from_data(c, DT_F32, SHAPE(1, 3), (float[]){1, 1, 1});
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_matmul(c, x, wt))), -1);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "permute"));
    expect(w->grad, (double[]){3, 10, 100, 3, 10, 100}, 6);
}
END_TEST

#define EXPECT_NULL_ARG(call, want)                                                                                                        \
    do {                                                                                                                                   \
        ctx_clear_error(c);                                                                                                                \
        ck_assert_ptr_null(call);                                                                                                          \
        ck_assert_msg(!ctx_ok(c), "%s: no error set", #call);                                                                              \
        ck_assert_str_eq(ctx_error(c), want);                                                                                              \
    } while (0)

// the old names still work, and give the new ones' results bit for bit (deprecated for one release)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
START_TEST(test_deprecated_names_still_work) {
    Rng r = rng_new(3);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(4, 5)), *w = tensor_new(c, DT_F32, SHAPE(5)), *b = tensor_new(c, DT_F32, SHAPE(5));
    rng_fill_normal(&r, x, 0, 1), rng_fill_normal(&r, w, 1, 0.1), rng_fill_normal(&r, b, 0, 0.1);
    Tensor *y0 = ag_layer_norm(c, x, 1, w, b, 1e-5), *y1 = ag_layernorm(c, x, w, b, 1e-5);
    ck_assert(y0 && y1 && !memcmp(y0->data, y1->data, sizeof(float) * 20));
    Tensor *lab = tensor_from_data(c, DT_I64, SHAPE(4), (int64_t[]){1, -100, 4, 0});
    Tensor *l0 = ag_cross_entropy_with(c, x, lab, AG_LOSS_DEFAULTS), *l1 = ag_cross_entropy_nd(c, x, lab, -100);
    ck_assert(l0 && l1 && *(float *)l0->data == *(float *)l1->data);
    Tensor *xt = ag_transpose(c, x, 0, 1), *w5 = tensor_ones(c, DT_F32, SHAPE(5)), *b5 = tensor_zeros(c, DT_F32, SHAPE(5));
    Tensor *d0 = ag_layernorm_dim(c, xt, 0, w5, b5, 1e-5), *d1 = ag_layer_norm(c, x, 1, NULL, NULL, 1e-5);
    ck_assert(d0 && d1);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) ck_assert(tensor_get(d0, (int64_t[]){j, i}) == tensor_get(d1, (int64_t[]){i, j}));
}
END_TEST
#pragma GCC diagnostic pop

// a kernel whose working memory cannot be had says so (the convolution's columns here: 4096 x 64 x 64
// of them for each of 65 x 65 output positions, 280 GB) instead of writing through a NULL buffer
START_TEST(test_kernel_memory_refused_with_a_message) {
    Ctx *big = ctx_new(1 << 20);
    Tensor *x = tensor_zeros(big, DT_F32, SHAPE(1, 4096, 64, 64)), *w = tensor_zeros(big, DT_F32, SHAPE(1, 4096, 64, 64));
    ck_assert(x && w);
    ck_assert_ptr_null(ag_conv2d(big, x, w, NULL, NULL, (int[]){32, 32}, NULL, 1));
    ck_assert_ptr_nonnull(strstr(ctx_error(big), "conv2d: out of memory"));
    ctx_free(big);
}
END_TEST

START_TEST(test_null_arguments_are_named) {
    Tensor *x = tensor_ones(c, DT_F32, SHAPE(2, 3)), *w = tensor_ones(c, DT_F32, SHAPE(3));
    Tensor *m = tensor_ones(c, DT_F32, SHAPE(3, 3)), *idx = tensor_zeros(c, DT_I64, SHAPE(2));
    EXPECT_NULL_ARG(ag_layer_norm(c, NULL, 1, w, NULL, 1e-5), "layer_norm: argument x is NULL");
    EXPECT_NULL_ARG(ag_add(c, x, NULL), "add: argument b is NULL");
    EXPECT_NULL_ARG(ag_mul(c, NULL, x), "mul: argument a is NULL");
    EXPECT_NULL_ARG(ag_exp(c, NULL), "exp: argument x is NULL");
    EXPECT_NULL_ARG(ag_gelu(c, NULL), "gelu: argument x is NULL");
    EXPECT_NULL_ARG(ag_sum(c, NULL, 0, false), "sum: argument x is NULL");
    EXPECT_NULL_ARG(ag_softmax(c, NULL), "softmax: argument x is NULL");
    EXPECT_NULL_ARG(ag_matmul(c, x, NULL), "matmul: argument b is NULL");
    EXPECT_NULL_ARG(ag_linear(c, x, NULL, NULL), "linear: argument w is NULL");
    EXPECT_NULL_ARG(ag_cross_entropy(c, x, NULL), "cross_entropy: argument labels is NULL");
    EXPECT_NULL_ARG(ag_attention(c, x, NULL, x, 1, NULL), "attention: argument k is NULL");
    EXPECT_NULL_ARG(ag_reshape(c, NULL, SHAPE(6)), "reshape: argument x is NULL");
    EXPECT_NULL_ARG(ag_transpose(c, NULL, 0, 1), "transpose: argument x is NULL");
    EXPECT_NULL_ARG(ag_contiguous(c, NULL), "contiguous: argument x is NULL");
    EXPECT_NULL_ARG(ag_concat(c, (Tensor *[]){x, NULL}, 2, 0), "concat: argument parts[1] is NULL");
    EXPECT_NULL_ARG(ag_index_select(c, m, 0, NULL), "index_select: argument idx is NULL");
    EXPECT_NULL_ARG(ag_dropout(c, x, 0.5, NULL, true), "dropout: argument rng is NULL (needed for p 0.5 in training)");
    (void)idx;
    // a NULL that came from a failed op passes on quietly: the first message stays
    ctx_clear_error(c);
    Tensor *bad = ag_matmul(c, x, x); // [2,3] @ [2,3]
    ck_assert_ptr_null(bad);
    char first[512];
    snprintf(first, sizeof first, "%s", ctx_error(c));
    ck_assert_ptr_null(ag_layer_norm(c, ag_relu(c, bad), 1, NULL, NULL, 1e-5));
    ck_assert_str_eq(ctx_error(c), first);
}
END_TEST

START_TEST(test_norm_parameters_are_checked) {
    // a bias of the wrong size is refused with or without a weight beside it
    Tensor *x = tensor_ones(c, DT_F32, SHAPE(2, 4, 3)), *w = tensor_ones(c, DT_F32, SHAPE(4)), *bad = tensor_ones(c, DT_F32, SHAPE(3));
    ck_assert_ptr_null(ag_group_norm(c, x, 2, NULL, bad, 1e-5));
    ck_assert_str_eq(ctx_error(c), "group_norm: weight and bias must be float32 [4], got float32 [3]");
    ctx_clear_error(c);
    ck_assert_ptr_null(ag_group_norm(c, x, 2, w, bad, 1e-5));
    ck_assert_str_eq(ctx_error(c), "group_norm: weight and bias must be float32 [4], got float32 [3]");
    ctx_clear_error(c);
    ck_assert_ptr_nonnull(ag_group_norm(c, x, 2, NULL, w, 1e-5));
    // one running statistic without the other would be left un-updated: refused
    ck_assert_ptr_null(ag_batch_norm(c, x, NULL, NULL, w, NULL, true, 0.1, 1e-5));
    ck_assert_str_eq(ctx_error(c), "batch_norm: running_mean and running_var go together (both or neither)");
}
END_TEST

// torch.topk's answers: sorted, ties by the lower index, NaN the largest, along any dimension
// max pooling's 2x2 / stride 2 path keeps the general rule: the first maximum of the window
// (row-major), a NaN wins and stays; odd sizes drop the last row and column
START_TEST(test_max_pool_2x2_rule) {
    Ctx *c = ctx_new(1 << 16);
    const float v[] = {1, 1, 0, 2, 9, // rows of 5: windows (1,1|3,1) tie, (0,2|5,5) tie in row 2
                       3, 1, 5, 5, 9, NAN, 0, 4, NAN, 9, 7, 7, 7, 4, 9, 8, 8, 8, 8, 8};
    Tensor *x = tensor_from_data(c, DT_F32, SHAPE(1, 1, 5, 5), v);
    ag_set_requires_grad(x, true);
    Tensor *y = ag_max_pool2d(c, x, (int[]){2, 2}, NULL, NULL);
    ck_assert_msg(ctx_ok(c), "%s", ctx_error(c));
    ck_assert_int_eq(y->shape[2], 2);
    ck_assert_int_eq(y->shape[3], 2);
    const float *o = y->data;
    ck_assert(o[0] == 3 && o[1] == 5 && isnan(o[2]) && isnan(o[3]));
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, y, tensor_from_data(c, DT_F32, SHAPE(1, 1, 2, 2), (float[]){1, 2, 0, 0})))), 0);
    const float *g = x->grad->data;
    ck_assert(g[5] == 1 && g[7] == 2 && g[0] == 0 && g[8] == 0); // the 3 (row 1) and the first 5 of the tie
    ctx_free(c);
}
END_TEST

START_TEST(test_topk) {
    Ctx *c = ctx_new(1 << 16);
    Tensor *x = tensor_from_data(c, DT_F32, SHAPE(2, 5), (float[]){3, 1, 4, 1, 5, 9, 2, 6, NAN, 6});
    ag_set_requires_grad(x, true);
    Tensor *idx, *v = ag_topk(c, x, 3, 1, true, &idx);
    ck_assert_ptr_nonnull(v);
    ck_assert(!v->requires_grad); // no gradient: a constant
    const float want_v[] = {5, 4, 3, NAN, 9, 6};
    const int64_t want_i[] = {4, 2, 0, 3, 0, 2};
    for (int j = 0; j < 6; j++) {
        double got = tensor_get_flat(v, j);
        ck_assert_msg(isnan(want_v[j]) ? isnan(got) : got == want_v[j], "value %d: %g", j, got);
        ck_assert_int_eq(((int64_t *)idx->data)[j], want_i[j]);
    }
    v = ag_topk(c, x, 2, 1, false, &idx); // the smallest: 1 at 1 and 3 (the lower index first); 2, then 6 at 2 before 4
    const int64_t want_s[] = {1, 3, 1, 2};
    for (int j = 0; j < 4; j++) ck_assert_int_eq(((int64_t *)idx->data)[j], want_s[j]);
    v = ag_topk(c, x, 1, 0, true, &idx); // along dimension 0: [1, 5]
    ck_assert_int_eq(v->ndim, 2);
    ck_assert_int_eq(v->shape[0], 1);
    ck_assert_int_eq(v->shape[1], 5);
    ck_assert_int_eq(((int64_t *)idx->data)[0], 1);
    ck_assert_int_eq(((int64_t *)idx->data)[1], 1);
    ck_assert(isnan(tensor_get_flat(v, 3)));
    ck_assert_int_eq(ag_topk(c, x, 0, 1, true, NULL)->shape[1], 0);
    ck_assert_ptr_null(ag_topk(c, x, 6, 1, true, NULL));
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "topk: k 6 is not in [0, 5]"));
    ctx_free(c);
}
END_TEST

START_TEST(test_cross_entropy_gradient_is_softmax_minus_onehot) {
    Tensor *z = param(SHAPE(1, 3), (float[]){0, 0, 0});
    Tensor *y = tensor_from_data(c, DT_I64, SHAPE(1), (int64_t[]){1});
    ck_assert_int_eq(ag_backward(c, ag_cross_entropy(c, z, y)), 0);
    expect(z->grad, (double[]){1. / 3, 1. / 3 - 1, 1. / 3}, 3);
}
END_TEST

START_TEST(test_steady_state_step_allocates_nothing) {
    Tensor *w = param(SHAPE(16, 32), (float[512]){0});
    Tensor *b = param(SHAPE(16), (float[16]){0});
    Ctx *s = ctx_new(1 << 16);
    int grown = 0;
    for (int step = 0; step < 6; step++) {
        ctx_reset(s);
        if (step == 2) grown = s->nsys_allocs;
        Tensor *x = tensor_ones(s, DT_F32, SHAPE(64, 32));
        Tensor *lab = tensor_zeros(s, DT_I64, SHAPE(64));
        Tensor *loss = ag_cross_entropy(s, ag_gelu(s, ag_linear(s, x, w, b)), lab);
        ck_assert_int_eq(ag_backward(s, loss), 0);
    }
    ck_assert_int_eq(s->nsys_allocs, grown);
    ctx_free(s);
}
END_TEST

// inference memory: a stack of layers under no-grad, each layer's intermediates given back with
// ctx_mark / ctx_release_keep, peaks at a few activations however many layers there are (without:
// all of them); a mark refused when ops were recorded since it; AG_NO_GRAD restores the mode
START_TEST(test_inference_memory_bounded) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 16);
    Rng r = rng_new(3);
    enum { L = 24, N = 64, D = 256 };
    Tensor *w[L];
    for (int i = 0; i < L; i++) {
        w[i] = tensor_new(pc, DT_F32, 2, (int64_t[]){D, D});
        rng_fill_uniform(&r, w[i], -0.06, 0.06);
    }
    size_t act = (size_t)N * D * sizeof(float), peak[2];
    for (int keep = 0; keep < 2; keep++) {
        ctx_reset(c);
        c->peak = 0;
        Tensor *h = tensor_full(c, DT_F32, 2, (int64_t[]){N, D}, 0.5);
        AG_NO_GRAD(c) {
            CtxMark m = ctx_mark(c); // once: each layer's input, made since, goes with its intermediates
            for (int i = 0; i < L && h; i++) {
                h = ag_add(c, ag_tanh(c, ag_linear(c, h, w[i], NULL)), h); // three activations per layer
                if (keep) h = ctx_release_keep(c, m, h);
            }
        }
        ck_assert_msg(h && ctx_ok(c), "%s", ctx_error(c));
        ck_assert(!ag_is_no_grad(c)); // restored
        peak[keep] = c->peak;
    }
    ck_assert_msg(peak[0] > (size_t)L * 2 * act, "without release %zu", peak[0]);
    ck_assert_msg(peak[1] < 6 * act, "with release %zu bytes, an activation %zu", peak[1], act);
    // the same result either way (the kept tensor is a copy)
    ctx_reset(c);
    Tensor *x = tensor_full(c, DT_F32, 2, (int64_t[]){2, D}, 0.25), *ref = NULL, *got = NULL;
    AG_NO_GRAD(c) { ref = ag_linear(c, x, w[0], NULL); }
    CtxMark m = ctx_mark(c);
    AG_NO_GRAD(c) { got = ctx_release_keep(c, m, ag_tanh(c, ag_linear(c, x, w[0], NULL))); }
    for (int i = 0; i < 2 * D; i++) ck_assert_float_eq_tol(tensor_get_flat(got, i), tanh(tensor_get_flat(ref, i)), 1e-6);
    // recorded ops since the mark: refused, named
    Tensor *wg = tensor_full(pc, DT_F32, 2, (int64_t[]){D, D}, 0.01);
    ag_set_requires_grad(wg, true);
    m = ctx_mark(c);
    Tensor *y = ag_linear(c, x, wg, NULL);
    ck_assert_ptr_null(ctx_release_keep(c, m, y));
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "no-grad"));
    ctx_free(c), ctx_free(pc);
}
END_TEST

int main(void) {
    Suite *s = suite_create("autograd");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_broadcast_gradients_reduce"), test_broadcast_gradients_reduce);
    tcase_add_test(check_case(s, "test_view_gradients"), test_view_gradients);
    tcase_add_test(check_case(s, "test_leaf_used_twice_accumulates"), test_leaf_used_twice_accumulates);
    tcase_add_test(check_case(s, "test_large_elementwise_gradients"), test_large_elementwise_gradients);
    tcase_add_test(check_case(s, "test_conv2d_float32_matches_float64"), test_conv2d_float32_matches_float64);
    tcase_add_test(check_case(s, "test_no_grad_records_nothing"), test_no_grad_records_nothing);
    tcase_add_test(check_case(s, "test_frozen_inputs_record_nothing"), test_frozen_inputs_record_nothing);
    tcase_add_test(check_case(s, "test_will_record_answers_as_record_does"), test_will_record_answers_as_record_does);
    tcase_add_test(check_case(s, "test_detach_and_unreached_branches"), test_detach_and_unreached_branches);
    tcase_add_test(check_case(s, "test_backward_errors"), test_backward_errors);
    tcase_add_test(check_case(s, "test_mean_of_nothing_is_nan"), test_mean_of_nothing_is_nan);
    tcase_add_test(check_case(s, "test_lifetimes_and_versions"), test_lifetimes_and_versions);
    tcase_add_test(check_case(s, "test_cross_entropy_all_ignored_is_nan"), test_cross_entropy_all_ignored_is_nan);
    tcase_add_test(check_case(s, "test_two_losses_backwarded_in_turn"), test_two_losses_backwarded_in_turn);
    tcase_add_test(check_case(s, "test_consumed_graph_is_refused"), test_consumed_graph_is_refused);
    tcase_add_test(check_case(s, "test_op_recorded_in_another_context"), test_op_recorded_in_another_context);
    tcase_add_test(check_case(s, "test_null_arguments_are_named"), test_null_arguments_are_named);
    tcase_add_test(check_case(s, "test_deprecated_names_still_work"), test_deprecated_names_still_work);
    tcase_add_test(check_case(s, "test_kernel_memory_refused_with_a_message"), test_kernel_memory_refused_with_a_message);
    tcase_add_test(check_case(s, "test_norm_parameters_are_checked"), test_norm_parameters_are_checked);
    tcase_add_test(check_case(s, "test_cross_entropy_gradient_is_softmax_minus_onehot"),
                   test_cross_entropy_gradient_is_softmax_minus_onehot);
    tcase_add_test(check_case(s, "test_max_pool_2x2_rule"), test_max_pool_2x2_rule);
    tcase_add_test(check_case(s, "test_topk"), test_topk);
    tcase_add_test(check_case(s, "test_steady_state_step_allocates_nothing"), test_steady_state_step_allocates_nothing);
    tcase_add_test(check_case(s, "test_inference_memory_bounded"), test_inference_memory_bounded);
    return check_run(s);
}
