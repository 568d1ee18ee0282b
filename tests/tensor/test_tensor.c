// test_tensor.c: creation, views, the generator, printing, and forward values of every op
// against hand-computed results; bad calls give errors that name the op and both shapes.
#include "../../autograd/autograd.h"

#include "../check_util.h"
#include <math.h>
#include <string.h>

static Ctx *c;
static void setup(void) { c = ctx_new(1 << 16); }
static void teardown(void) { ctx_free(c); }

static Tensor *f32(int ndim, const int64_t *shape, const float *v) { return tensor_from_data(c, DT_F32, ndim, shape, v); }

static void expect(const Tensor *t, const double *want, int64_t n, double tol) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(tensor_get_flat(t, i) - want[i]) <= tol, "element %lld: got %.9g want %.9g", (long long)i, tensor_get_flat(t, i),
                      want[i]);
}

static char *printed(const Tensor *t) {
    static char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    tensor_fprint(f, t);
    fclose(f);
    return buf;
}

// ---------------------------------------------------------------- creation and views

START_TEST(test_creation) {
    expect(tensor_zeros(c, DT_F32, SHAPE(2, 2)), (double[]){0, 0, 0, 0}, 4, 0);
    expect(tensor_ones(c, DT_F64, SHAPE(3)), (double[]){1, 1, 1}, 3, 0);
    expect(tensor_full(c, DT_I64, SHAPE(2), 7), (double[]){7, 7}, 2, 0);
    expect(tensor_arange(c, DT_F32, 0, 2, 0.5), (double[]){0, 0.5, 1, 1.5}, 4, 0);
    float buf[] = {1, 2, 3, 4, 5, 6};
    Tensor *t = tensor_from_buffer(c, DT_F32, SHAPE(2, 3), buf);
    ck_assert_ptr_eq(t->data, buf);
    buf[4] = 50;
    ck_assert_double_eq(tensor_get(t, (int64_t[]){1, 1}), 50);
    ck_assert(tensor_arange(c, DT_F32, 0, 1, 0) == NULL);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "arange"));
}
END_TEST

START_TEST(test_views_share_storage) {
    Tensor *a = f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *t = tensor_transpose_view(c, a, 0, 1);
    ck_assert_int_eq(t->shape[0], 3);
    ck_assert(!tensor_is_contiguous(t));
    ck_assert_double_eq(tensor_get(t, (int64_t[]){2, 1}), 6);
    expect(tensor_contiguous(c, t), (double[]){1, 4, 2, 5, 3, 6}, 6, 0);
    Tensor *n = tensor_narrow_view(c, a, 1, 1, 2);
    expect(n, (double[]){2, 3, 5, 6}, 4, 0);
    tensor_set(n, (int64_t[]){0, 0}, 20); // writes through to a
    ck_assert_double_eq(tensor_get_flat(a, 1), 20);
    Tensor *e = tensor_expand_view(c, tensor_reshape_view(c, a, SHAPE(2, 1, 3)), SHAPE(2, 2, 3));
    ck_assert_int_eq(e->strides[1], 0);
    expect(e, (double[]){1, 20, 3, 1, 20, 3, 4, 5, 6, 4, 5, 6}, 12, 0);
    Tensor *r = tensor_reshape_view(c, a, SHAPE(3, -1));
    ck_assert_int_eq(r->shape[1], 2);
    ck_assert_ptr_eq(r->data, a->data);
    Tensor *p = tensor_permute_view(c, tensor_reshape_view(c, a, SHAPE(1, 2, 3)), (int[]){2, 0, 1});
    ck_assert_int_eq(p->shape[0], 3);
    ck_assert_int_eq(p->shape[2], 2);
    ck_assert_double_eq(tensor_get(p, (int64_t[]){2, 0, 1}), 6);
    // bad views are errors, not crashes
    ck_assert(tensor_reshape_view(c, t, SHAPE(6)) == NULL);
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "non-contiguous"));
    ctx_clear_error(c);
    ck_assert(tensor_reshape_view(c, a, SHAPE(4, 2)) == NULL);
    ck_assert_str_eq(ctx_error(c), "reshape: cannot view [2, 3] as [4, 2]");
    ctx_clear_error(c);
    ck_assert(tensor_narrow_view(c, a, 1, 2, 2) == NULL);
    ctx_clear_error(c);
    ck_assert(tensor_expand_view(c, a, SHAPE(2, 4)) == NULL);
    ctx_clear_error(c);
    ck_assert(tensor_permute_view(c, a, (int[]){0, 0}) == NULL);
}
END_TEST

START_TEST(test_arena_reset_reuses_memory) {
    Ctx *s = ctx_new(1 << 16);
    for (int step = 0; step < 5; step++) {
        ctx_reset(s);
        for (int i = 0; i < 40; i++) tensor_new(s, DT_F32, SHAPE(1024)); // 160 KiB: more than one chunk
        if (step == 1) ck_assert_int_eq(s->nsys_allocs, s->nsys_allocs); // grown by now
    }
    int after = s->nsys_allocs;
    for (int step = 0; step < 5; step++) {
        ctx_reset(s);
        for (int i = 0; i < 40; i++) tensor_new(s, DT_F32, SHAPE(1024));
    }
    ck_assert_int_eq(s->nsys_allocs, after); // steady state: nothing from the system
    ctx_free(s);
}
END_TEST

// ---------------------------------------------------------------- generator

START_TEST(test_rng_reproducible_and_documented) {
    // SplitMix64 with seed 0: the first outputs are the published reference values
    ck_assert_uint_eq(rng_draw(0, 0), 0xE220A8397B1DCDAFull);
    ck_assert_uint_eq(rng_draw(0, 1), 0x6E789E6AA1B965F4ull);
    Rng a = rng_new(7), b = rng_new(7);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(100000)), *y = tensor_new(c, DT_F32, SHAPE(100000));
    rng_fill_normal(&a, x, 0, 1);
    rng_fill_normal(&b, y, 0, 1);
    ck_assert(!memcmp(x->data, y->data, 400000));
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double v = ((float *)x->data)[i];
        s += v;
        s2 += v * v;
    }
    ck_assert(fabs(s / 1e5) < 0.02 && fabs(s2 / 1e5 - 1) < 0.02);
    rng_fill_uniform(&a, x, -2, 3);
    double lo = 1e9, hi = -1e9;
    for (int i = 0; i < 100000; i++) {
        double v = ((float *)x->data)[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    ck_assert(lo >= -2 && hi < 3 && lo < -1.99 && hi > 2.99);
    int64_t idx[10];
    for (int i = 0; i < 10; i++) idx[i] = i;
    Rng r = rng_new(1);
    rng_shuffle(&r, idx, 10);
    int seen = 0;
    for (int i = 0; i < 10; i++) seen |= 1 << idx[i];
    ck_assert_int_eq(seen, 1023);
}
END_TEST

START_TEST(test_rng_same_with_threads) {
    // values depend on the element index only, so the thread count cannot change them
    Rng a = rng_new(3);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(200000));
    rng_fill_uniform(&a, x, 0, 1);
    Rng b = rng_new(3);
    b.offset = 150000;
    Tensor *y = tensor_new(c, DT_F32, SHAPE(10));
    rng_fill_uniform(&b, y, 0, 1);
    for (int i = 0; i < 10; i++) ck_assert_float_eq(((float *)x->data)[150000 + i], ((float *)y->data)[i]);
}
END_TEST

// ---------------------------------------------------------------- printing

START_TEST(test_print_like_pytorch) {
    ck_assert_str_eq(printed(f32(SHAPE(2, 2), (float[]){1.5f, -2, 0.25f, 3})),
                     "tensor([[ 1.5000, -2.0000],\n        [ 0.2500,  3.0000]])\n");
    ck_assert_str_eq(printed(f32(SHAPE(3), (float[]){1, 2, 3})), "tensor([1., 2., 3.])\n");
    ck_assert_str_eq(printed(tensor_arange(c, DT_I64, 0, 3, 1)), "tensor([0, 1, 2])\n");
    ck_assert_str_eq(printed(f32(SHAPE(2), (float[]){1e-5f, 1})), "tensor([1.0000e-05, 1.0000e+00])\n");
    ck_assert_str_eq(printed(tensor_full(c, DT_F32, 0, NULL, 2.5)), "tensor(2.5000)\n");
    char *big = printed(tensor_zeros(c, DT_F32, SHAPE(2000)));
    ck_assert_str_eq(big, "tensor([0., 0., 0.,  ..., 0., 0., 0.])\n");
}
END_TEST

// ---------------------------------------------------------------- forward values

START_TEST(test_forward_binary_broadcast) {
    Tensor *a = f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *b = f32(SHAPE(3), (float[]){10, 20, 30});
    Tensor *col = f32(SHAPE(2, 1), (float[]){2, 4});
    expect(ag_add(c, a, b), (double[]){11, 22, 33, 14, 25, 36}, 6, 0);
    expect(ag_sub(c, a, col), (double[]){-1, 0, 1, 0, 1, 2}, 6, 0);
    expect(ag_mul(c, col, b), (double[]){20, 40, 60, 40, 80, 120}, 6, 0);
    expect(ag_div(c, a, col), (double[]){0.5, 1, 1.5, 1, 1.25, 1.5}, 6, 0);
    expect(ag_add(c, ag_transpose(c, a, 0, 1), f32(SHAPE(2), (float[]){100, 200})), (double[]){101, 204, 102, 205, 103, 206}, 6, 0);
    expect(ag_add_scalar(c, b, -10), (double[]){0, 10, 20}, 3, 0);
    expect(ag_mul_scalar(c, b, 0.5), (double[]){5, 10, 15}, 3, 0);
}
END_TEST

START_TEST(test_forward_unary) {
    Tensor *x = f32(SHAPE(4), (float[]){-1, 0, 0.5f, 2});
    expect(ag_neg(c, x), (double[]){1, 0, -0.5, -2}, 4, 0);
    expect(ag_exp(c, x), (double[]){exp(-1), 1, exp(0.5), exp(2)}, 4, 1e-6);
    expect(ag_tanh(c, x), (double[]){tanh(-1), 0, tanh(0.5), tanh(2)}, 4, 1e-7);
    expect(ag_relu(c, x), (double[]){0, 0, 0.5, 2}, 4, 0);
    // exact GELU: x * Phi(x); Phi(-1) = 0.158655254, Phi(0.5) = 0.691462461, Phi(2) = 0.977249868
    expect(ag_gelu(c, x), (double[]){-0.158655254, 0, 0.345731231, 1.954499736}, 4, 1e-6);
    // comparisons: 1 where true, 0 where false, NaN never equal (so != is true), broadcasting
    Tensor *a = f32(SHAPE(4), (float[]){1, 2, NAN, -1}), *b = f32(SHAPE(4), (float[]){1, 3, NAN, -2});
    expect(ag_eq(c, a, b), (double[]){1, 0, 0, 0}, 4, 0);
    expect(ag_ne(c, a, b), (double[]){0, 1, 1, 1}, 4, 0);
    expect(ag_le(c, a, b), (double[]){1, 1, 0, 0}, 4, 0);
    expect(ag_lt(c, a, b), (double[]){0, 1, 0, 0}, 4, 0);
    expect(ag_ge(c, a, b), (double[]){1, 0, 0, 1}, 4, 0);
    expect(ag_gt(c, a, b), (double[]){0, 0, 0, 1}, 4, 0);
    expect(ag_le(c, f32(SHAPE(2, 1), (float[]){0, 5}), f32(SHAPE(3), (float[]){-1, 0, 9})), (double[]){0, 1, 1, 0, 0, 1}, 6, 0);
    Tensor *p = f32(SHAPE(3), (float[]){1, 4, 0.25f});
    expect(ag_log(c, p), (double[]){0, log(4), log(0.25)}, 3, 1e-7);
    expect(ag_sqrt(c, p), (double[]){1, 2, 0.5}, 3, 0);
}
END_TEST

START_TEST(test_forward_reductions) {
    Tensor *a = f32(SHAPE(2, 3), (float[]){1, 5, 3, 4, 2, 6});
    expect(ag_sum(c, a, 0, false), (double[]){5, 7, 9}, 3, 0);
    Tensor *s = ag_sum(c, a, 1, true);
    ck_assert_int_eq(s->ndim, 2);
    expect(s, (double[]){9, 12}, 2, 0);
    expect(ag_mean(c, a, -1, false), (double[]){3, 4}, 2, 1e-7);
    Tensor *arg;
    expect(ag_max(c, a, 1, false, &arg), (double[]){5, 6}, 2, 0);
    expect(arg, (double[]){1, 2}, 2, 0);
    expect(ag_sum_all(c, a), (double[]){21}, 1, 0);
    expect(ag_mean_all(c, a), (double[]){3.5}, 1, 0);
    ck_assert_int_eq(ag_sum_all(c, a)->ndim, 0);
}
END_TEST

START_TEST(test_forward_softmax_layernorm) {
    Tensor *x = f32(SHAPE(2, 3), (float[]){1, 2, 3, 1000, 1000, 1000});
    double e1 = exp(1), e2 = exp(2), e3 = exp(3), z = e1 + e2 + e3;
    expect(ag_softmax(c, x), (double[]){e1 / z, e2 / z, e3 / z, 1. / 3, 1. / 3, 1. / 3}, 6, 1e-7); // stable at 1000
    expect(ag_log_softmax(c, x), (double[]){1 - log(z), 2 - log(z), 3 - log(z), -log(3), -log(3), -log(3)}, 6, 1e-6);
    Tensor *h = f32(SHAPE(1, 4), (float[]){1, 2, 3, 4});
    Tensor *w = f32(SHAPE(4), (float[]){1, 1, 2, 2}), *b = f32(SHAPE(4), (float[]){0, 0, 0, 1});
    // mean 2.5, var 1.25: xhat = (-1.5, -0.5, 0.5, 1.5) / sqrt(1.25 + 1e-5)
    double r = 1 / sqrt(1.25 + 1e-5);
    expect(ag_layer_norm(c, h, 1, w, b, 1e-5), (double[]){-1.5 * r, -0.5 * r, 1.0 * r, 3.0 * r + 1}, 4, 1e-6);
}
END_TEST

START_TEST(test_forward_matmul_linear_conv) {
    Tensor *a = f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    Tensor *b = f32(SHAPE(3, 2), (float[]){7, 8, 9, 10, 11, 12});
    expect(ag_matmul(c, a, b), (double[]){58, 64, 139, 154}, 4, 0);
    expect(ag_matmul(c, ag_transpose(c, b, 0, 1), ag_transpose(c, a, 0, 1)), (double[]){58, 139, 64, 154}, 4, 0);
    expect(ag_matmul(c, a, f32(SHAPE(3), (float[]){1, 0, -1})), (double[]){-2, -2}, 2, 0);
    Tensor *ab = f32(SHAPE(2, 1, 2), (float[]){1, 2, 3, 4});
    Tensor *bb = f32(SHAPE(2, 2, 1), (float[]){1, 1, 2, 0});
    expect(ag_matmul(c, ab, bb), (double[]){3, 6}, 2, 0);
    Tensor *w = f32(SHAPE(2, 3), (float[]){1, 0, 0, 0, 1, 1}), *bias = f32(SHAPE(2), (float[]){0.5f, -1});
    expect(ag_linear(c, a, w, bias), (double[]){1.5, 4, 4.5, 10}, 4, 0);
    expect(ag_linear(c, a, w, NULL), (double[]){1, 5, 4, 11}, 4, 0);
    // conv with a 2x2 kernel, stride 2, on one 1x2x4 image: patches [1,2;5,6]... of 1..8
    Tensor *img = f32(SHAPE(1, 1, 2, 4), (float[]){1, 2, 3, 4, 5, 6, 7, 8});
    Tensor *k = f32(SHAPE(2, 1, 2, 2), (float[]){1, 1, 1, 1, 1, 0, 0, -1});
    Tensor *out = ag_conv2d(c, img, k, f32(SHAPE(2), (float[]){0, 100}), (int[]){2, 2}, NULL, NULL, 1);
    ck_assert_int_eq(out->ndim, 4);
    ck_assert_int_eq(out->shape[1], 2);
    ck_assert_int_eq(out->shape[3], 2);
    expect(out, (double[]){14, 22, 95, 95}, 4, 0); // [B, D, gh, gw]
}
END_TEST

START_TEST(test_forward_concat_index_dropout_ce) {
    Tensor *a = f32(SHAPE(2, 1), (float[]){1, 2}), *b = f32(SHAPE(2, 2), (float[]){3, 4, 5, 6});
    expect(ag_concat(c, (Tensor *[]){a, b}, 2, 1), (double[]){1, 3, 4, 2, 5, 6}, 6, 0);
    expect(ag_concat(c, (Tensor *[]){b, b}, 2, 0), (double[]){3, 4, 5, 6, 3, 4, 5, 6}, 8, 0);
    Tensor *idx = tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){1, 1, 0});
    expect(ag_index_select(c, b, 0, idx), (double[]){5, 6, 5, 6, 3, 4}, 6, 0);
    Tensor *gi = tensor_from_data(c, DT_I64, SHAPE(2, 1), (int64_t[]){1, 0});
    expect(ag_gather(c, b, 1, gi), (double[]){4, 5}, 2, 0);
    Tensor *x = tensor_ones(c, DT_F32, SHAPE(10000));
    Rng r = rng_new(5);
    Tensor *d = ag_dropout(c, x, 0.2, &r, true);
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        double v = tensor_get_flat(d, i);
        ck_assert(v == 0 || fabs(v - 1.25) < 1e-6);
        zeros += v == 0;
    }
    ck_assert(zeros > 1800 && zeros < 2200);
    ck_assert_ptr_eq(ag_dropout(c, x, 0.2, &r, false), x); // evaluation: identity
    // cross-entropy: mean of lse - z_y
    Tensor *z = f32(SHAPE(2, 3), (float[]){1, 2, 3, 0, 0, 0});
    Tensor *y = tensor_from_data(c, DT_I64, SHAPE(2), (int64_t[]){2, 0});
    double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(3);
    expect(ag_cross_entropy(c, z, y), (double[]){(l0 + l1) / 2}, 1, 1e-6);
    expect(ag_cross_entropy_scaled(c, z, y, 0.25), (double[]){(l0 + l1) / 4}, 1, 1e-6);
    Tensor *yi = tensor_from_data(c, DT_I64, SHAPE(2), (int64_t[]){2, -100});
    expect(ag_cross_entropy(c, z, yi), (double[]){l0}, 1, 1e-6); // ignore_index -100
    // label smoothing 0.3 over 3 classes: 0.7 NLL + 0.3 (lse - mean z)
    double lse0 = log(exp(1) + exp(2) + exp(3)), s0 = 0.7 * l0 + 0.3 * (lse0 - 2), s1 = 0.7 * l1 + 0.3 * log(3);
    expect(ag_cross_entropy_smoothed(c, z, y, 0.5, 0.3), (double[]){(s0 + s1) / 2}, 1, 1e-6);
}
END_TEST

// ---------------------------------------------------------------- bad calls

// sizes from a careless caller: overflow, absurd sizes and NULL pointers are errors the caller can
// read (the context's error names the op), never a heap overflow, an abort or a crash
static void expect_fail(const Tensor *t, const char *want) {
    ck_assert_ptr_null(t);
    ck_assert_msg(!ctx_ok(c) && strstr(ctx_error(c), want), "got '%s', want '%s'", ctx_error(c), want);
    ctx_clear_error(c);
}

START_TEST(test_sizes_overflow_and_nulls) {
    const int64_t G = (int64_t)1 << 31;
    expect_fail(tensor_full(c, DT_F32, 2, (int64_t[]){G, G}, 1.0), "do not fit in memory");
    expect_fail(tensor_zeros(c, DT_F32, 2, (int64_t[]){(int64_t)1 << 32, (int64_t)1 << 32}), "do not fit in memory");
    expect_fail(tensor_zeros(c, DT_I64, 2, (int64_t[]){(int64_t)1 << 61, 2}), "do not fit in memory");
    expect_fail(tensor_zeros(c, DT_F32, 3, (int64_t[]){INT64_MAX, INT64_MAX, 2}), "do not fit in memory");
    // a size the address range allows but the system cannot give: an error, not an abort
    expect_fail(tensor_zeros(c, DT_F32, 1, (int64_t[]){(int64_t)1 << 44}), "out of memory");
    Ctx *big = ctx_new(SIZE_MAX / 2); // a hint too large: the context starts small
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(tensor_zeros(big, DT_F32, 1, (int64_t[]){4}));
    ctx_free(big);
    Tensor *x = tensor_zeros(c, DT_F32, 2, (int64_t[]){2, 3});
    expect_fail(ag_pad(c, x, 1, (int64_t)1 << 62, (int64_t)1 << 62, 0), "pad");
    expect_fail(ag_pad(c, x, 1, INT64_MAX, 1, 0), "pad");
    expect_fail(ag_narrow(c, x, 1, INT64_MAX, 2), "narrow");
    expect_fail(ag_narrow(c, x, 1, 2, INT64_MAX), "narrow");
    Tensor *one = tensor_zeros(c, DT_F32, 2, (int64_t[]){1, 1});
    expect_fail(ag_expand(c, one, 2, (int64_t[]){(int64_t)1 << 32, (int64_t)1 << 32}), "expand");
    expect_fail(tensor_zeros(c, DT_F32, 2, NULL), "shape is NULL");
    expect_fail(ag_permute(c, x, NULL), "permute");
    expect_fail(tensor_from_buffer(c, DT_F32, 1, (int64_t[]){3}, NULL), "NULL");
    expect_fail(ag_reshape(c, x, 2, NULL), "reshape");
    // an empty tensor needs no data
    ck_assert_ptr_nonnull(tensor_from_buffer(c, DT_F32, 1, (int64_t[]){0}, NULL));
    ck_assert(ctx_ok(c));
}
END_TEST

START_TEST(test_bad_calls_are_errors) {
    Tensor *a = tensor_zeros(c, DT_F32, SHAPE(2, 3)), *b = tensor_zeros(c, DT_F32, SHAPE(4));
    ck_assert(ag_add(c, a, b) == NULL);
    ck_assert_str_eq(ctx_error(c), "add: shapes [2, 3] and [4] do not broadcast");
    ctx_clear_error(c);
    ck_assert(ag_matmul(c, a, a) == NULL);
    ck_assert_str_eq(ctx_error(c), "matmul: shapes [2, 3] and [2, 3] do not multiply");
    ctx_clear_error(c);
    Tensor *i = tensor_zeros(c, DT_I64, SHAPE(2, 3));
    ck_assert(ag_mul(c, a, i) == NULL);
    ck_assert_str_eq(ctx_error(c), "mul: expected a float tensor, got int64 [2, 3]");
    ctx_clear_error(c);
    ck_assert(ag_add(c, a, tensor_zeros(c, DT_F64, SHAPE(3))) == NULL);
    ck_assert_str_eq(ctx_error(c), "add: dtypes differ: float32 [2, 3] and float64 [3]");
    ctx_clear_error(c);
    ck_assert(ag_linear(c, a, tensor_zeros(c, DT_F32, SHAPE(5, 4)), NULL) == NULL);
    ck_assert_str_eq(ctx_error(c), "linear: input [2, 3], weight [5, 4] and bias none do not fit");
    ctx_clear_error(c);
    Tensor *lab = tensor_from_data(c, DT_I64, SHAPE(2), (int64_t[]){0, 3});
    ck_assert(ag_cross_entropy(c, a, lab) == NULL);
    ck_assert_str_eq(ctx_error(c), "cross_entropy: label 3 at 1 outside [0, 3) for logits [2, 3]");
    ctx_clear_error(c);
    ck_assert(ag_sum(c, a, 2, false) == NULL);
    ck_assert_str_eq(ctx_error(c), "sum: dimension 2 out of range for [2, 3]");
    ctx_clear_error(c);
    ck_assert(ag_index_select(c, a, 0, tensor_from_data(c, DT_I64, SHAPE(1), (int64_t[]){2})) == NULL);
    ck_assert_str_eq(ctx_error(c), "index_select: index 2 outside [0, 2) for [2, 3]");
    ctx_clear_error(c);
    ck_assert(ag_layer_norm(c, a, 1, b, b, 1e-5) == NULL);
    ck_assert_str_eq(ctx_error(c), "layer_norm: weight [4] must have the normalised shape of input [2, 3] (its last 1 dimensions)");
    ctx_clear_error(c);
    ck_assert(ag_concat(c, (Tensor *[]){a, b}, 2, 0) == NULL);
    ck_assert_str_eq(ctx_error(c), "concat: shapes [2, 3] and [4] differ outside dimension 0");
    ctx_clear_error(c);
    // the first error is kept; later ops see NULL inputs and return NULL without overwriting it
    Tensor *y = ag_exp(c, ag_add(c, a, b));
    ck_assert(y == NULL);
    ck_assert_str_eq(ctx_error(c), "add: shapes [2, 3] and [4] do not broadcast");
}
END_TEST

int main(void) {
    Suite *s = suite_create("tensor");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_creation"), test_creation);
    tcase_add_test(check_case(s, "test_views_share_storage"), test_views_share_storage);
    tcase_add_test(check_case(s, "test_arena_reset_reuses_memory"), test_arena_reset_reuses_memory);
    tcase_add_test(check_case(s, "test_rng_reproducible_and_documented"), test_rng_reproducible_and_documented);
    tcase_add_test(check_case(s, "test_rng_same_with_threads"), test_rng_same_with_threads);
    tcase_add_test(check_case(s, "test_print_like_pytorch"), test_print_like_pytorch);
    tcase_add_test(check_case(s, "test_forward_binary_broadcast"), test_forward_binary_broadcast);
    tcase_add_test(check_case(s, "test_forward_unary"), test_forward_unary);
    tcase_add_test(check_case(s, "test_forward_reductions"), test_forward_reductions);
    tcase_add_test(check_case(s, "test_forward_softmax_layernorm"), test_forward_softmax_layernorm);
    tcase_add_test(check_case(s, "test_forward_matmul_linear_conv"), test_forward_matmul_linear_conv);
    tcase_add_test(check_case(s, "test_forward_concat_index_dropout_ce"), test_forward_concat_index_dropout_ce);
    tcase_add_test(check_case(s, "test_bad_calls_are_errors"), test_bad_calls_are_errors);
    tcase_add_test(check_case(s, "test_sizes_overflow_and_nulls"), test_sizes_overflow_and_nulls);
    return check_run(s);
}
