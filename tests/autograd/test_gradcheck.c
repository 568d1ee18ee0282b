// test_gradcheck.c: one gradient check per differentiable op, in float64.
#include "../../autograd/extend.h"
#include "../../models/vit_ops.h"

#include "../check_util.h"
#include <math.h>

static Ctx *P; // inputs live here, outside the per-evaluation context

static Tensor *rnd(uint64_t seed, int ndim, const int64_t *shape, double lo, double hi) {
    Tensor *t = tensor_new(P, DT_F64, ndim, shape);
    Rng r = rng_new(seed);
    rng_fill_uniform(&r, t, lo, hi);
    ag_set_requires_grad(t, true);
    return t;
}

static void setup(void) { P = ctx_new(1 << 20); }
static void teardown(void) { ctx_free(P); }

static void gc(AgFn f, Tensor **in, int n, void *ud) {
    char msg[512];
    bool ok = ag_gradcheck(f, ud, in, n, NULL, msg, sizeof msg);
    ck_assert_msg(ok, "%s", msg);
}

#define GC_CASE(name, expr)                                                                                                                \
    static Tensor *fn_##name(Ctx *c, Tensor **in, void *ud) {                                                                              \
        (void)ud;                                                                                                                          \
        return expr;                                                                                                                       \
    }

GC_CASE(add, ag_add(c, in[0], in[1]))
GC_CASE(sub, ag_sub(c, in[0], in[1]))
GC_CASE(mul, ag_mul(c, in[0], in[1]))
GC_CASE(div, ag_div(c, in[0], in[1]))
GC_CASE(add_scalar, ag_add_scalar(c, in[0], 2.5))
GC_CASE(mul_scalar, ag_mul_scalar(c, in[0], -1.75))
GC_CASE(neg, ag_neg(c, in[0]))
GC_CASE(exp, ag_exp(c, in[0]))
GC_CASE(log, ag_log(c, in[0]))
GC_CASE(sqrt, ag_sqrt(c, in[0]))
GC_CASE(tanh, ag_tanh(c, in[0]))
GC_CASE(gelu, ag_gelu(c, in[0]))
GC_CASE(relu, ag_relu(c, in[0]))
GC_CASE(sum, ag_sum(c, in[0], 1, false))
GC_CASE(sum_keepdim, ag_sum(c, in[0], 0, true))
GC_CASE(sum_all, ag_sum_all(c, in[0]))
GC_CASE(mean, ag_mean(c, in[0], -1, true))
GC_CASE(max, ag_max(c, in[0], 1, false, NULL))
GC_CASE(softmax, ag_softmax(c, in[0]))
GC_CASE(log_softmax, ag_log_softmax(c, in[0]))
GC_CASE(layernorm, ag_layer_norm(c, in[0], 1, in[1], in[2], 1e-5))
GC_CASE(matmul, ag_matmul(c, in[0], in[1]))
GC_CASE(matmul_transposed, ag_matmul(c, ag_transpose(c, in[0], -1, -2), ag_transpose(c, in[1], -1, -2)))
GC_CASE(linear, ag_linear(c, in[0], in[1], in[2]))
GC_CASE(concat, ag_concat(c, (Tensor *[]){in[0], in[1]}, 2, 1))
GC_CASE(reshape, ag_reshape(c, ag_transpose(c, in[0], 0, 1), SHAPE(-1)))
GC_CASE(permute, ag_contiguous(c, ag_permute(c, in[0], (int[]){2, 0, 1})))
GC_CASE(transpose, ag_mul(c, ag_transpose(c, in[0], 0, 1), in[1]))
GC_CASE(narrow, ag_narrow(c, in[0], 1, 1, 2))
GC_CASE(attention, ag_attention(c, in[0], in[1], in[2], 2, NULL))
GC_CASE(linear_residual, vit_linear_residual(c, in[0], in[1], in[2], in[3]))
GC_CASE(mlp_residual, vit_mlp_residual(c, in[0], in[1], in[2], in[3], in[4], in[5]))
static Tensor *fn_lora_linear(Ctx *c, Tensor **in, void *ud) {
    Rng r = rng_new(7); // the same mask at every evaluation
    return vit_lora_linear(c, in[0], in[1], in[2], in[3], in[4], 1.75, *(double *)ud, &r, true);
}
GC_CASE(expand, ag_expand(c, in[0], SHAPE(4, 3, -1)))
GC_CASE(sigmoid, ag_sigmoid(c, in[0]))
GC_CASE(silu, ag_silu(c, in[0]))
GC_CASE(softplus, ag_softplus(c, in[0], 1.5, 4.0))
GC_CASE(leaky_relu, ag_leaky_relu(c, in[0], 0.07))
GC_CASE(gelu_tanh, ag_gelu_tanh(c, in[0]))
GC_CASE(pow_scalar, ag_pow_scalar(c, in[0], 2.5))
GC_CASE(abs, ag_abs(c, in[0]))
GC_CASE(clamp, ag_clamp(c, in[0], -0.5, 0.25))
GC_CASE(minimum, ag_minimum(c, in[0], in[1]))
GC_CASE(maximum, ag_maximum(c, in[0], in[1]))
GC_CASE(where, ag_where(c, ag_gt(c, in[2], ag_mul_scalar(c, in[2], 0)), in[0], in[1]))
GC_CASE(masked_fill, ag_mul(c, ag_masked_fill(c, in[0], ag_lt(c, in[0], ag_mul_scalar(c, in[0], 0)), -3.0), in[1]))
GC_CASE(logsumexp, ag_logsumexp(c, in[0], 1, false))
GC_CASE(logsumexp_keepdim, ag_logsumexp(c, in[0], -1, true))
GC_CASE(var, ag_var(c, in[0], 1, 1.0, false))
GC_CASE(std, ag_std(c, in[0], 0, 0.0, true))
GC_CASE(mse_loss, ag_mse_loss(c, in[0], in[1]))
GC_CASE(bce_with_logits, ag_bce_with_logits(c, in[0], in[1]))
GC_CASE(conv2d, ag_conv2d(c, in[0], in[1], in[2], (int[]){2, 1}, (int[]){1, 2}, (int[]){1, 2}, 1))
GC_CASE(conv2d_groups, ag_conv2d(c, in[0], in[1], NULL, NULL, (int[]){1, 1}, NULL, 2))
// stride 1 with the output as wide as the input: the contiguous-run im2col / col2im path
GC_CASE(conv2d_same_dilated, ag_conv2d(c, in[0], in[1], in[2], NULL, (int[]){2, 2}, (int[]){2, 2}, 1))
GC_CASE(conv2d_one_image_chunks, ag_conv2d(c, in[0], in[1], in[2], NULL, (int[]){1, 1}, NULL, 1)) // images of 512+ pixels
GC_CASE(conv2d_wide_padding, ag_conv2d(c, in[0], in[1], NULL, NULL, (int[]){4, 2}, NULL, 1))      // whole rows of padding
GC_CASE(max_pool2d, ag_max_pool2d(c, in[0], (int[]){3, 2}, (int[]){2, 1}, (int[]){1, 1}))
GC_CASE(max_pool2d_2x2, ag_max_pool2d(c, in[0], (int[]){2, 2}, NULL, NULL)) // the 2x2 / stride 2 path
GC_CASE(avg_pool2d, ag_avg_pool2d(c, in[0], (int[]){3, 3}, (int[]){2, 2}, (int[]){1, 1}))
GC_CASE(global_avg_pool2d, ag_global_avg_pool2d(c, in[0]))
GC_CASE(softmax_dim, ag_softmax_dim(c, in[0], 1))
GC_CASE(log_softmax_dim, ag_log_softmax_dim(c, in[0], 0))
GC_CASE(group_norm, ag_group_norm(c, in[0], 2, in[1], in[2], 1e-5))
GC_CASE(group_norm_plain, ag_group_norm(c, in[0], 3, NULL, NULL, 1e-5)) // no affine, 2-d input (S = 1)
GC_CASE(batch_norm_bias_only, ag_batch_norm(c, in[0], NULL, in[1], NULL, NULL, true, 0.1, 1e-5))
GC_CASE(layer_norm_2d, ag_layer_norm(c, in[0], 2, in[1], in[2], 1e-5)) // over the last two dimensions
GC_CASE(gru, ag_gru(c, in[0], in[1], in[2], in[3], in[4], in[5], false))
GC_CASE(gru_reverse, ag_gru(c, in[0], in[1], in[2], in[3], in[4], in[5], true))
GC_CASE(gru_plain, ag_gru(c, in[0], NULL, in[1], in[2], NULL, NULL, false))       // no initial state, no biases
GC_CASE(lstm, ag_lstm(c, in[0], in[1], in[2], in[3], in[4], in[5], in[6], false)) // the states and c_n
GC_CASE(lstm_reverse, ag_lstm(c, in[0], in[1], in[2], in[3], in[4], in[5], in[6], true))
GC_CASE(lstm_plain, ag_lstm(c, in[0], NULL, NULL, in[1], in[2], NULL, NULL, false))
static Tensor *fn_ce_none(Ctx *c, Tensor **in, void *ud) { // [N 2, C 4, d 3], smoothing, one label ignored
    (void)ud;
    Tensor *lab = tensor_from_data(c, DT_I64, SHAPE(2, 3), (int64_t[]){2, -1, 0, 1, 3, 3});
    return ag_cross_entropy_with(c, in[0], lab, (AgLossOptions){AG_REDUCE_NONE, -1, 0.1});
}
static Tensor *fn_ce_sum(Ctx *c, Tensor **in, void *ud) {
    (void)ud;
    Tensor *lab = tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){2, 0, 4});
    return ag_cross_entropy_with(c, in[0], lab, (AgLossOptions){AG_REDUCE_SUM, -100, 0.2});
}
static Tensor *fn_nll_none(Ctx *c, Tensor **in, void *ud) {
    (void)ud;
    Tensor *lab = tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){2, 7, 1});
    return ag_nll_loss_with(c, ag_log_softmax(c, in[0]), lab, (AgLossOptions){AG_REDUCE_NONE, 7, 0});
}
GC_CASE(mse_sum, ag_mse_loss_with(c, in[0], in[1], AG_REDUCE_SUM))
GC_CASE(bce_none, ag_bce_with_logits_with(c, in[0], in[1], AG_REDUCE_NONE))
GC_CASE(l1_mean, ag_l1_loss_with(c, in[0], in[1], AG_REDUCE_MEAN))
GC_CASE(layer_norm_plain, ag_layer_norm(c, in[0], 3, NULL, NULL, 1e-5))
GC_CASE(rms_norm, ag_rms_norm(c, in[0], in[1], 1e-6))
GC_CASE(flip, ag_mul(c, ag_flip(c, in[0], 1), in[1]))
GC_CASE(pad, ag_pad(c, in[0], 0, 1, 2, 0.5))
GC_CASE(stack, ag_stack(c, (Tensor *[]){in[0], in[1], in[0]}, 3, 1))
static Tensor *fn_batch_norm(Ctx *c, Tensor **in, void *ud) { return ag_batch_norm(c, in[0], in[1], in[2], NULL, NULL, true, 0.1, 1e-5); }
static Tensor *fn_batch_norm_eval(Ctx *c, Tensor **in, void *ud) {
    Tensor *rm = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.1, -0.2, 0.3});
    Tensor *rv = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.5, 1.5, 2.0});
    return ag_batch_norm(c, in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5);
}
static Tensor *fn_embedding(Ctx *c, Tensor **in, void *ud) {
    return ag_embedding(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2, 3), (int64_t[]){4, 0, 2, 2, 1, 4}));
}
static Tensor *fn_cross_entropy_nd(Ctx *c, Tensor **in, void *ud) {
    int64_t lab[] = {2, -100, 0, 1, 3, -100}; // [N=2, d=3], two ignored
    return ag_cross_entropy_with(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2, 3), lab), AG_LOSS_DEFAULTS);
}
static Tensor *fn_attention_masked(Ctx *c, Tensor **in, void *ud) {
    double m[] = {0, -1.5, 0.5, -INFINITY, 0, 2, 0.25, -0.5, 0, 1, -INFINITY, 0}; // [Tq 3, Tk 4]
    return ag_attention_masked(c, in[0], in[1], in[2], 2, tensor_from_data(c, DT_F64, SHAPE(3, 4), m), false, NULL);
}
GC_CASE(attention_causal, ag_attention_masked(c, in[0], in[1], in[2], 2, NULL, true, NULL))
// the path that keeps the probabilities (asked for), with a mask and causal
static Tensor *fn_attention_probs(Ctx *c, Tensor **in, void *ud) {
    double m[] = {0, -1.5, 0.5, -0.25, 0, 2, 0.25, -0.5, 0, 1, -0.75, 0}; // [Tq 3, Tk 4]
    Tensor *probs;
    return ag_attention_masked(c, in[0], in[1], in[2], 2, tensor_from_data(c, DT_F64, SHAPE(3, 4), m), true, &probs);
}
// the light path over two blocks of 256 queries: 259 queries, 261 keys, a [B, Tq, Tk] mask, causal
static Tensor *fn_attention_blocks(Ctx *c, Tensor **in, void *ud) {
    Tensor *mask = (Tensor *)ud;
    return ag_attention_masked(c, in[0], in[1], in[2], 1, mask, true, NULL);
}
GC_CASE(matmul_broadcast, ag_matmul(c, in[0], in[1]))
GC_CASE(sum_dims, ag_sum_dims(c, in[0], (int[]){0, 2}, 2, false))
GC_CASE(mean_dims, ag_mean_dims(c, in[0], (int[]){-1, 1}, 2, true))
static Tensor *fn_split(Ctx *c, Tensor **in, void *ud) {
    Tensor *p[3];
    if (ag_split(c, in[0], 1, (int64_t[]){1, 3, 1}, 3, p) != 0) return NULL;
    return ag_concat(c, (Tensor *[]){ag_mul_scalar(c, p[2], 3), p[0], ag_exp(c, p[1])}, 3, 1);
}
static Tensor *fn_chunk(Ctx *c, Tensor **in, void *ud) {
    Tensor *p[3];
    if (ag_chunk(c, in[0], 0, 3, p) != 3) return NULL; // 5 rows: 2, 2, 1
    return ag_concat(c, (Tensor *[]){p[2], ag_tanh(c, p[0]), p[1]}, 3, 0);
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // the old name is kept one release: still checked
GC_CASE(layernorm_dim, ag_layernorm_dim(c, in[0], 1, in[1], in[2], 1e-5))
#pragma GCC diagnostic pop
// more parts than an op has inputs: concat as a tree of concatenations, stack likewise
static Tensor *fn_concat_many(Ctx *c, Tensor **in, void *ud) {
    (void)ud;
    Tensor *p[13];
    for (int i = 0; i < 13; i++) p[i] = i % 3 == 0 ? in[0] : i % 3 == 1 ? ag_tanh(c, in[1]) : ag_mul_scalar(c, in[0], i);
    return ag_concat(c, p, 13, 1);
}

static Tensor *fn_stack_many(Ctx *c, Tensor **in, void *ud) {
    (void)ud;
    Tensor *p[9];
    for (int i = 0; i < 9; i++) p[i] = i % 2 ? in[1] : ag_mul_scalar(c, in[0], i + 1);
    return ag_stack(c, p, 9, 0);
}

static Tensor *fn_nll_loss(Ctx *c, Tensor **in, void *ud) {
    int64_t lab[] = {2, 0, 4};
    return ag_nll_loss(c, ag_log_softmax(c, in[0]), tensor_from_data(c, DT_I64, SHAPE(3), lab));
}

START_TEST(test_gradcheck_add) { gc(fn_add, (Tensor *[]){rnd(1, SHAPE(3, 4), -1, 1), rnd(2, SHAPE(4), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_sub) { gc(fn_sub, (Tensor *[]){rnd(3, SHAPE(2, 1, 3), -1, 1), rnd(4, SHAPE(4, 1), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_mul) { gc(fn_mul, (Tensor *[]){rnd(5, SHAPE(3, 4), -1, 1), rnd(6, SHAPE(3, 1), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_div) { gc(fn_div, (Tensor *[]){rnd(7, SHAPE(3, 4), -1, 1), rnd(8, SHAPE(4), 0.5, 2)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_add_scalar) { gc(fn_add_scalar, (Tensor *[]){rnd(9, SHAPE(5), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_mul_scalar) { gc(fn_mul_scalar, (Tensor *[]){rnd(10, SHAPE(2, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_neg) { gc(fn_neg, (Tensor *[]){rnd(11, SHAPE(2, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_exp) { gc(fn_exp, (Tensor *[]){rnd(12, SHAPE(2, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_log) { gc(fn_log, (Tensor *[]){rnd(13, SHAPE(2, 3), 0.2, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_sqrt) { gc(fn_sqrt, (Tensor *[]){rnd(14, SHAPE(2, 3), 0.2, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_tanh) { gc(fn_tanh, (Tensor *[]){rnd(15, SHAPE(2, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_gelu) { gc(fn_gelu, (Tensor *[]){rnd(16, SHAPE(3, 5), -3, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_relu) {
    Tensor *x = rnd(17, SHAPE(4, 5), -1, 1);
    for (int64_t i = 0; i < 20; i++) { // keep away from the kink at 0
        double v = tensor_get_flat(x, i);
        if (fabs(v) < 0.05) tensor_set_flat(x, i, v < 0 ? -0.1 : 0.1);
    }
    gc(fn_relu, (Tensor *[]){x}, 1, NULL);
}
END_TEST
START_TEST(test_gradcheck_sum) { gc(fn_sum, (Tensor *[]){rnd(18, SHAPE(2, 3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_sum_keepdim) { gc(fn_sum_keepdim, (Tensor *[]){rnd(19, SHAPE(3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_sum_all) { gc(fn_sum_all, (Tensor *[]){rnd(20, SHAPE(3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_mean) { gc(fn_mean, (Tensor *[]){rnd(21, SHAPE(2, 3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_max) { gc(fn_max, (Tensor *[]){rnd(22, SHAPE(2, 5, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_softmax) { gc(fn_softmax, (Tensor *[]){rnd(23, SHAPE(3, 6), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_log_softmax) { gc(fn_log_softmax, (Tensor *[]){rnd(24, SHAPE(3, 6), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_layernorm) {
    gc(fn_layernorm, (Tensor *[]){rnd(25, SHAPE(2, 3, 8), -2, 2), rnd(26, SHAPE(8), 0.5, 1.5), rnd(27, SHAPE(8), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_matmul) {
    gc(fn_matmul, (Tensor *[]){rnd(28, SHAPE(2, 3, 4), -1, 1), rnd(29, SHAPE(2, 4, 5), -1, 1)}, 2, NULL);
    gc(fn_matmul, (Tensor *[]){rnd(30, SHAPE(2, 3, 4), -1, 1), rnd(31, SHAPE(4, 5), -1, 1)}, 2, NULL);
    gc(fn_matmul, (Tensor *[]){rnd(32, SHAPE(3, 4), -1, 1), rnd(33, SHAPE(4), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_matmul_transposed) {
    gc(fn_matmul_transposed, (Tensor *[]){rnd(34, SHAPE(2, 4, 3), -1, 1), rnd(35, SHAPE(2, 5, 4), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_linear) {
    gc(fn_linear, (Tensor *[]){rnd(36, SHAPE(2, 3, 5), -1, 1), rnd(37, SHAPE(4, 5), -1, 1), rnd(38, SHAPE(4), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_concat) { gc(fn_concat, (Tensor *[]){rnd(42, SHAPE(2, 1, 3), -1, 1), rnd(43, SHAPE(2, 4, 3), -1, 1)}, 2, NULL); }
END_TEST
static Tensor *fn_index_select(Ctx *c, Tensor **in, void *ud) {
    int64_t idx[] = {2, 0, 2, 1};
    return ag_index_select(c, in[0], 1, tensor_from_data(c, DT_I64, SHAPE(4), idx));
}
START_TEST(test_gradcheck_index_select) { gc(fn_index_select, (Tensor *[]){rnd(44, SHAPE(2, 3, 2), -1, 1)}, 1, NULL); }
END_TEST
static Tensor *fn_gather(Ctx *c, Tensor **in, void *ud) {
    int64_t idx[] = {0, 2, 1, 1, 2, 2};
    return ag_gather(c, in[0], 1, tensor_from_data(c, DT_I64, SHAPE(2, 3), idx));
}
START_TEST(test_gradcheck_gather) { gc(fn_gather, (Tensor *[]){rnd(45, SHAPE(2, 4), -1, 1)}, 1, NULL); }
END_TEST
static Tensor *fn_dropout(Ctx *c, Tensor **in, void *ud) {
    Rng r = rng_new(99); // the same mask at every evaluation
    return ag_dropout(c, in[0], 0.3, &r, true);
}
START_TEST(test_gradcheck_dropout) { gc(fn_dropout, (Tensor *[]){rnd(46, SHAPE(4, 8), -1, 1)}, 1, NULL); }
END_TEST
static Tensor *fn_cross_entropy(Ctx *c, Tensor **in, void *ud) {
    int64_t lab[] = {2, 0, 4};
    return ag_cross_entropy(c, in[0], tensor_from_data(c, DT_I64, SHAPE(3), lab));
}
START_TEST(test_gradcheck_cross_entropy) { gc(fn_cross_entropy, (Tensor *[]){rnd(47, SHAPE(3, 5), -2, 2)}, 1, NULL); }
END_TEST
static Tensor *fn_cross_entropy_smoothed(Ctx *c, Tensor **in, void *ud) {
    int64_t lab[] = {2, 0, 4};
    return ag_cross_entropy_smoothed(c, in[0], tensor_from_data(c, DT_I64, SHAPE(3), lab), 0.5, 0.1);
}
START_TEST(test_gradcheck_cross_entropy_smoothed) { gc(fn_cross_entropy_smoothed, (Tensor *[]){rnd(48, SHAPE(3, 5), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_reshape) { gc(fn_reshape, (Tensor *[]){rnd(48, SHAPE(2, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_permute) { gc(fn_permute, (Tensor *[]){rnd(49, SHAPE(2, 3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_transpose) { gc(fn_transpose, (Tensor *[]){rnd(50, SHAPE(3, 2), -1, 1), rnd(51, SHAPE(2, 3), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_narrow) { gc(fn_narrow, (Tensor *[]){rnd(52, SHAPE(2, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_expand) { gc(fn_expand, (Tensor *[]){rnd(53, SHAPE(3, 1), -1, 1)}, 1, NULL); }
END_TEST

// x with no element within gap of any of the points (kinks: relu, abs, clamp, leaky_relu)
static Tensor *away(Tensor *x, const double *pts, int np, double gap) {
    for (int64_t i = 0; i < tensor_numel(x); i++)
        for (int k = 0; k < np; k++) {
            double v = tensor_get_flat(x, i);
            if (fabs(v - pts[k]) < gap) tensor_set_flat(x, i, v < pts[k] ? pts[k] - 2 * gap : pts[k] + 2 * gap);
        }
    return x;
}
START_TEST(test_gradcheck_sigmoid) { gc(fn_sigmoid, (Tensor *[]){rnd(80, SHAPE(3, 5), -6, 6)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_silu) { gc(fn_silu, (Tensor *[]){rnd(81, SHAPE(3, 5), -6, 6)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_softplus) { // both sides of the threshold (beta x > 4 gives x)
    gc(fn_softplus, (Tensor *[]){away(rnd(82, SHAPE(4, 5), -4, 6), (double[]){4.0 / 1.5}, 1, 0.01)}, 1, NULL);
}
END_TEST
START_TEST(test_gradcheck_leaky_relu) {
    gc(fn_leaky_relu, (Tensor *[]){away(rnd(83, SHAPE(4, 5), -2, 2), (double[]){0}, 1, 0.01)}, 1, NULL);
}
END_TEST
START_TEST(test_gradcheck_gelu_tanh) { gc(fn_gelu_tanh, (Tensor *[]){rnd(84, SHAPE(3, 5), -4, 4)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_pow_scalar) { gc(fn_pow_scalar, (Tensor *[]){rnd(85, SHAPE(3, 4), 0.2, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_abs) { gc(fn_abs, (Tensor *[]){away(rnd(86, SHAPE(4, 5), -2, 2), (double[]){0}, 1, 0.01)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_clamp) {
    gc(fn_clamp, (Tensor *[]){away(rnd(87, SHAPE(4, 6), -1, 1), (double[]){-0.5, 0.25}, 2, 0.01)}, 1, NULL);
}
END_TEST
START_TEST(test_gradcheck_minimum) { gc(fn_minimum, (Tensor *[]){rnd(88, SHAPE(3, 4), -1, 1), rnd(89, SHAPE(4), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_maximum) { gc(fn_maximum, (Tensor *[]){rnd(90, SHAPE(2, 1, 3), -1, 1), rnd(91, SHAPE(4, 1), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_where) { // a [3, 4], b broadcast [4], the condition from a third tensor [3, 1]
    Tensor *cnd = away(rnd(94, SHAPE(3, 1), -1, 1), (double[]){0}, 1, 0.01);
    ag_set_requires_grad(cnd, false);
    gc(fn_where, (Tensor *[]){rnd(92, SHAPE(3, 4), -1, 1), rnd(93, SHAPE(4), -1, 1), cnd}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_masked_fill) {
    gc(fn_masked_fill, (Tensor *[]){away(rnd(95, SHAPE(3, 4), -1, 1), (double[]){0}, 1, 0.01), rnd(96, SHAPE(3, 4), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_logsumexp) { gc(fn_logsumexp, (Tensor *[]){rnd(97, SHAPE(2, 5, 3), -3, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_logsumexp_keepdim) { gc(fn_logsumexp_keepdim, (Tensor *[]){rnd(98, SHAPE(3, 6), -3, 3)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_var) { gc(fn_var, (Tensor *[]){rnd(99, SHAPE(2, 5, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_std) { gc(fn_std, (Tensor *[]){rnd(100, SHAPE(4, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_mse_loss) { gc(fn_mse_loss, (Tensor *[]){rnd(101, SHAPE(3, 4), -1, 1), rnd(102, SHAPE(3, 4), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_bce_with_logits) {
    gc(fn_bce_with_logits, (Tensor *[]){away(rnd(103, SHAPE(3, 4), -5, 5), (double[]){0}, 1, 0.01), rnd(104, SHAPE(3, 4), 0, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_conv2d) { // stride 2x1, padding 1x2, dilation 1x2, with bias
    gc(fn_conv2d, (Tensor *[]){rnd(110, SHAPE(2, 3, 5, 6), -1, 1), rnd(111, SHAPE(4, 3, 3, 2), -1, 1), rnd(112, SHAPE(4), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_conv2d_groups) { // 2 groups: 4 channels in, 6 out
    gc(fn_conv2d_groups, (Tensor *[]){rnd(113, SHAPE(2, 4, 4, 4), -1, 1), rnd(114, SHAPE(6, 2, 3, 3), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_conv2d_same_dilated) { // 3x3, dilation 2, padding 2: output as wide as input
    gc(fn_conv2d_same_dilated,
       (Tensor *[]){rnd(160, SHAPE(2, 2, 6, 5), -1, 1), rnd(161, SHAPE(3, 2, 3, 3), -1, 1), rnd(162, SHAPE(3), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_conv2d_one_image_chunks) { // 24x24 images: a thread's product takes one image, written in place
    gc(fn_conv2d_one_image_chunks,
       (Tensor *[]){rnd(165, SHAPE(2, 1, 24, 24), -1, 1), rnd(166, SHAPE(2, 1, 3, 3), -1, 1), rnd(167, SHAPE(2), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_conv2d_wide_padding) { // 5x5 on 3x4 images, padding 4 rows and 2 columns: 7 output rows
    gc(fn_conv2d_wide_padding, (Tensor *[]){rnd(163, SHAPE(2, 2, 3, 4), -1, 1), rnd(164, SHAPE(2, 2, 5, 5), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_max_pool2d) { gc(fn_max_pool2d, (Tensor *[]){rnd(115, SHAPE(2, 2, 5, 4), -1, 1)}, 1, NULL); }
START_TEST(test_gradcheck_max_pool2d_2x2) { gc(fn_max_pool2d_2x2, (Tensor *[]){rnd(116, SHAPE(2, 3, 6, 7), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_avg_pool2d) { gc(fn_avg_pool2d, (Tensor *[]){rnd(116, SHAPE(2, 2, 5, 6), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_global_avg_pool2d) { gc(fn_global_avg_pool2d, (Tensor *[]){rnd(117, SHAPE(2, 3, 4, 5), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_softmax_dim) { gc(fn_softmax_dim, (Tensor *[]){rnd(118, SHAPE(2, 4, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_log_softmax_dim) { gc(fn_log_softmax_dim, (Tensor *[]){rnd(119, SHAPE(4, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_group_norm) {
    gc(fn_group_norm, (Tensor *[]){rnd(120, SHAPE(2, 4, 3, 2), -2, 2), rnd(121, SHAPE(4), 0.5, 1.5), rnd(122, SHAPE(4), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_group_norm_plain) { gc(fn_group_norm_plain, (Tensor *[]){rnd(140, SHAPE(3, 6), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_batch_norm_bias_only) {
    gc(fn_batch_norm_bias_only, (Tensor *[]){rnd(141, SHAPE(3, 2, 5), -2, 2), rnd(142, SHAPE(2), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_layer_norm_2d) {
    gc(fn_layer_norm_2d, (Tensor *[]){rnd(143, SHAPE(2, 3, 4), -2, 2), rnd(144, SHAPE(3, 4), 0.5, 1.5), rnd(145, SHAPE(3, 4), -1, 1)}, 3,
       NULL);
}
END_TEST
START_TEST(test_gradcheck_layer_norm_plain) { gc(fn_layer_norm_plain, (Tensor *[]){rnd(146, SHAPE(2, 2, 3), -2, 2)}, 1, NULL); }
END_TEST
// several steps (T = 4), a batch of 2, 3 inputs, 2 hidden units
#define RNN_IN(G, seed)                                                                                                                    \
    rnd(seed, SHAPE(4, 2, 3), -1, 1), rnd(seed + 1, SHAPE(2, 2), -1, 1), rnd(seed + 2, SHAPE(G * 2, 3), -0.8, 0.8),                        \
        rnd(seed + 3, SHAPE(G * 2, 2), -0.8, 0.8), rnd(seed + 4, SHAPE(G * 2), -0.5, 0.5), rnd(seed + 5, SHAPE(G * 2), -0.5, 0.5)
START_TEST(test_gradcheck_gru) {
    gc(fn_gru, (Tensor *[]){RNN_IN(3, 150)}, 6, NULL);
    gc(fn_gru_reverse, (Tensor *[]){RNN_IN(3, 160)}, 6, NULL);
    gc(fn_gru_plain, (Tensor *[]){rnd(170, SHAPE(4, 2, 3), -1, 1), rnd(171, SHAPE(6, 3), -0.8, 0.8), rnd(172, SHAPE(6, 2), -0.8, 0.8)}, 3,
       NULL);
}
END_TEST
START_TEST(test_gradcheck_lstm) {
    gc(fn_lstm,
       (Tensor *[]){rnd(180, SHAPE(4, 2, 3), -1, 1), rnd(181, SHAPE(2, 2), -1, 1), rnd(182, SHAPE(2, 2), -1, 1),
                    rnd(183, SHAPE(8, 3), -0.8, 0.8), rnd(184, SHAPE(8, 2), -0.8, 0.8), rnd(185, SHAPE(8), -0.5, 0.5),
                    rnd(186, SHAPE(8), -0.5, 0.5)},
       7, NULL);
    gc(fn_lstm_reverse,
       (Tensor *[]){rnd(190, SHAPE(4, 2, 3), -1, 1), rnd(191, SHAPE(2, 2), -1, 1), rnd(192, SHAPE(2, 2), -1, 1),
                    rnd(193, SHAPE(8, 3), -0.8, 0.8), rnd(194, SHAPE(8, 2), -0.8, 0.8), rnd(195, SHAPE(8), -0.5, 0.5),
                    rnd(196, SHAPE(8), -0.5, 0.5)},
       7, NULL);
    gc(fn_lstm_plain, (Tensor *[]){rnd(197, SHAPE(4, 2, 3), -1, 1), rnd(198, SHAPE(8, 3), -0.8, 0.8), rnd(199, SHAPE(8, 2), -0.8, 0.8)}, 3,
       NULL);
}
END_TEST
START_TEST(test_gradcheck_loss_reductions) {
    gc(fn_ce_none, (Tensor *[]){rnd(210, SHAPE(2, 4, 3), -2, 2)}, 1, NULL);
    gc(fn_ce_sum, (Tensor *[]){rnd(211, SHAPE(3, 5), -2, 2)}, 1, NULL);
    gc(fn_nll_none, (Tensor *[]){rnd(212, SHAPE(3, 4), -2, 2)}, 1, NULL);
    gc(fn_mse_sum, (Tensor *[]){rnd(213, SHAPE(2, 3), -2, 2), rnd(214, SHAPE(3), -2, 2)}, 2, NULL);
    gc(fn_bce_none, (Tensor *[]){rnd(215, SHAPE(2, 3), -3, 3), rnd(216, SHAPE(2, 3), 0, 1)}, 2, NULL);
    // |x - y| away from its kink: x in [0.5, 1.5], y in [-1, 0]
    gc(fn_l1_mean, (Tensor *[]){rnd(217, SHAPE(2, 3), 0.5, 1.5), rnd(218, SHAPE(2, 3), -1, 0)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_batch_norm) {
    gc(fn_batch_norm, (Tensor *[]){rnd(123, SHAPE(4, 3, 2, 2), -2, 2), rnd(124, SHAPE(3), 0.5, 1.5), rnd(125, SHAPE(3), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_batch_norm_eval) {
    gc(fn_batch_norm_eval, (Tensor *[]){rnd(126, SHAPE(2, 3, 4), -2, 2), rnd(127, SHAPE(3), 0.5, 1.5), rnd(128, SHAPE(3), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_rms_norm) { gc(fn_rms_norm, (Tensor *[]){rnd(129, SHAPE(3, 5), -2, 2), rnd(130, SHAPE(5), 0.5, 1.5)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_embedding) { gc(fn_embedding, (Tensor *[]){rnd(131, SHAPE(5, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_flip) { gc(fn_flip, (Tensor *[]){rnd(132, SHAPE(2, 4), -1, 1), rnd(133, SHAPE(2, 4), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_pad) { gc(fn_pad, (Tensor *[]){rnd(134, SHAPE(2, 3), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_concat_many) {
    gc(fn_concat_many, (Tensor *[]){rnd(137, SHAPE(2, 1, 3), -1, 1), rnd(138, SHAPE(2, 1, 3), -1, 1)}, 2, NULL);
}
END_TEST

START_TEST(test_gradcheck_stack_many) {
    gc(fn_stack_many, (Tensor *[]){rnd(139, SHAPE(2, 3), -1, 1), rnd(140, SHAPE(2, 3), -1, 1)}, 2, NULL);
}
END_TEST

START_TEST(test_gradcheck_stack) { gc(fn_stack, (Tensor *[]){rnd(135, SHAPE(2, 3), -1, 1), rnd(136, SHAPE(2, 3), -1, 1)}, 2, NULL); }
END_TEST
START_TEST(test_gradcheck_cross_entropy_nd) { gc(fn_cross_entropy_nd, (Tensor *[]){rnd(137, SHAPE(2, 4, 3), -2, 2)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_attention_masked) {
    gc(fn_attention_masked, (Tensor *[]){rnd(140, SHAPE(2, 3, 4), -1, 1), rnd(141, SHAPE(2, 4, 4), -1, 1), rnd(142, SHAPE(2, 4, 4), -1, 1)},
       3, NULL);
}
END_TEST
START_TEST(test_gradcheck_attention_probs) {
    gc(fn_attention_probs, (Tensor *[]){rnd(146, SHAPE(2, 3, 4), -1, 1), rnd(147, SHAPE(2, 4, 4), -1, 1), rnd(148, SHAPE(2, 4, 4), -1, 1)},
       3, NULL);
}
END_TEST

START_TEST(test_gradcheck_attention_blocks) {
    Tensor *mask = tensor_new(P, DT_F64, 3, (int64_t[]){1, 259, 261});
    Rng r = rng_new(149);
    rng_fill_uniform(&r, mask, -1, 1);
    gc(fn_attention_blocks,
       (Tensor *[]){rnd(150, SHAPE(1, 259, 2), -1, 1), rnd(151, SHAPE(1, 261, 2), -1, 1), rnd(152, SHAPE(1, 261, 2), -1, 1)}, 3, mask);
    // the same values as the path that keeps the probabilities
    Ctx *c = ctx_new(1 << 20);
    Tensor *in[3] = {rnd(150, SHAPE(1, 259, 2), -1, 1), rnd(151, SHAPE(1, 261, 2), -1, 1), rnd(152, SHAPE(1, 261, 2), -1, 1)}, *probs;
    Tensor *a = ag_attention_masked(c, in[0], in[1], in[2], 1, mask, true, NULL);
    Tensor *b = ag_attention_masked(c, in[0], in[1], in[2], 1, mask, true, &probs);
    for (int64_t i = 0; i < tensor_numel(a); i++) ck_assert_double_eq_tol(tensor_get_flat(a, i), tensor_get_flat(b, i), 1e-12);
    ctx_free(c);
}
END_TEST

START_TEST(test_gradcheck_attention_causal) { // 3 queries over 4 keys: query i sees keys 0..i+1
    gc(fn_attention_causal, (Tensor *[]){rnd(143, SHAPE(2, 3, 4), -1, 1), rnd(144, SHAPE(2, 4, 4), -1, 1), rnd(145, SHAPE(2, 4, 4), -1, 1)},
       3, NULL);
}
END_TEST
START_TEST(test_gradcheck_matmul_broadcast) { // [2, 1, 3, 4] @ [3, 4, 5] -> [2, 3, 3, 5]
    gc(fn_matmul_broadcast, (Tensor *[]){rnd(146, SHAPE(2, 1, 3, 4), -1, 1), rnd(147, SHAPE(3, 4, 5), -1, 1)}, 2, NULL);
}
END_TEST
START_TEST(test_gradcheck_sum_dims) { gc(fn_sum_dims, (Tensor *[]){rnd(148, SHAPE(2, 3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_mean_dims) { gc(fn_mean_dims, (Tensor *[]){rnd(149, SHAPE(2, 3, 4), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_split) { gc(fn_split, (Tensor *[]){rnd(150, SHAPE(2, 5), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_chunk) { gc(fn_chunk, (Tensor *[]){rnd(151, SHAPE(5, 2), -1, 1)}, 1, NULL); }
END_TEST
START_TEST(test_gradcheck_layernorm_dim) {
    gc(fn_layernorm_dim, (Tensor *[]){rnd(152, SHAPE(2, 4, 3), -2, 2), rnd(153, SHAPE(4), 0.5, 1.5), rnd(154, SHAPE(4), -1, 1)}, 3, NULL);
}
END_TEST
START_TEST(test_gradcheck_nll_loss) { gc(fn_nll_loss, (Tensor *[]){rnd(105, SHAPE(3, 5), -2, 2)}, 1, NULL); }
END_TEST

START_TEST(test_gradcheck_attention) {
    gc(fn_attention, (Tensor *[]){rnd(55, SHAPE(2, 3, 4), -1, 1), rnd(56, SHAPE(2, 3, 4), -1, 1), rnd(57, SHAPE(2, 3, 4), -1, 1)}, 3, NULL);
    // one tensor as query, key and value (aliased gradients accumulate)
    Tensor *x = rnd(77, SHAPE(2, 3, 4), -1, 1);
    gc(fn_attention, (Tensor *[]){x, x, x}, 3, NULL);
    // fewer queries than keys (the [CLS]-only last layer)
    gc(fn_attention, (Tensor *[]){rnd(58, SHAPE(2, 1, 4), -1, 1), rnd(59, SHAPE(2, 5, 4), -1, 1), rnd(76, SHAPE(2, 5, 4), -1, 1)}, 3, NULL);
}
END_TEST

START_TEST(test_gradcheck_lora_linear) {
    for (int k = 0; k < 2; k++) {
        double p = k ? 0.3 : 0.0; // with and without dropout on the LoRA branch
        gc(fn_lora_linear,
           (Tensor *[]){rnd(60 + k, SHAPE(2, 3, 5), -1, 1), rnd(62, SHAPE(4, 5), -1, 1), rnd(63, SHAPE(4), -1, 1),
                        rnd(64, SHAPE(3, 5), -1, 1), rnd(65, SHAPE(4, 3), -1, 1)},
           5, &p);
    }
    // 19 inputs: the dropout mask's bits fill two whole bytes and part of a third
    double p = 0.4;
    gc(fn_lora_linear,
       (Tensor *[]){rnd(80, SHAPE(3, 19), -1, 1), rnd(81, SHAPE(6, 19), -1, 1), rnd(82, SHAPE(6), -1, 1), rnd(83, SHAPE(2, 19), -1, 1),
                    rnd(84, SHAPE(6, 2), -1, 1)},
       5, &p);
}
END_TEST

// the fused LoRA linear against its composition from public ops, dropout drawn by ag_dropout from
// a generator in the same state: the same values and gradients (float64, rounding apart)
START_TEST(test_lora_linear_matches_composition) {
    const int64_t N = 13, IC = 37, OC = 9, r = 6; // r: a whole group of four ranks and a padded one
    const double scale = 1.5, p = 0.25;
    Tensor *in[2][5];
    for (int v = 0; v < 2; v++) {
        in[v][0] = rnd(90, SHAPE(N, IC), -1, 1), in[v][1] = rnd(91, SHAPE(OC, IC), -1, 1), in[v][2] = rnd(92, SHAPE(OC), -1, 1);
        in[v][3] = rnd(93, SHAPE(r, IC), -1, 1), in[v][4] = rnd(94, SHAPE(OC, r), -1, 1);
    }
    Ctx *c = ctx_new(1 << 20);
    Rng r1 = rng_new(11), r2 = rng_new(11);
    r1.offset = r2.offset = 1000; // a generator already part-way through its stream
    Tensor *x = in[0][0], *w = in[0][1], *b = in[0][2], *A = in[0][3], *B = in[0][4];
    Tensor *fused = vit_lora_linear(c, x, w, b, A, B, scale, p, &r1, true);
    x = in[1][0], w = in[1][1], b = in[1][2], A = in[1][3], B = in[1][4];
    Tensor *branch = ag_linear(c, ag_linear(c, ag_dropout(c, x, p, &r2, true), A, NULL), B, NULL);
    Tensor *composed = ag_add(c, ag_linear(c, x, w, b), ag_mul_scalar(c, branch, scale));
    ck_assert_msg(fused && composed, "%s", ctx_error(c));
    ck_assert_uint_eq(r1.offset, r2.offset);   // the same draws taken
    Tensor *wt = rnd(95, SHAPE(N, OC), -1, 1); // a loss that weighs every output differently
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, fused, wt))), 0);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, ag_mul(c, composed, wt))), 0);
    const double *yf = fused->data, *yc = composed->data;
    for (int64_t i = 0; i < N * OC; i++)
        ck_assert_msg(fabs(yf[i] - yc[i]) < 1e-12, "output %lld: %.17g vs %.17g", (long long)i, yf[i], yc[i]);
    for (int k = 0; k < 5; k++) {
        const double *gf = in[0][k]->grad->data, *gcmp = in[1][k]->grad->data;
        for (int64_t i = 0; i < tensor_numel(in[0][k]); i++)
            ck_assert_msg(fabs(gf[i] - gcmp[i]) < 1e-12, "input %d gradient %lld: %g vs %g", k, (long long)i, gf[i], gcmp[i]);
    }
    ctx_free(c);
}
END_TEST
START_TEST(test_gradcheck_linear_residual) {
    gc(fn_linear_residual,
       (Tensor *[]){rnd(66, SHAPE(2, 3, 5), -1, 1), rnd(67, SHAPE(4, 5), -1, 1), rnd(68, SHAPE(4), -1, 1), rnd(69, SHAPE(2, 3, 4), -1, 1)},
       4, NULL);
}
END_TEST
START_TEST(test_gradcheck_mlp_residual) {
    Tensor *w[4] = {rnd(71, SHAPE(7, 5), -1, 1), rnd(72, SHAPE(7), -1, 1), rnd(73, SHAPE(5, 7), -1, 1), rnd(74, SHAPE(5), -1, 1)};
    for (int i = 0; i < 4; i++) ag_set_requires_grad(w[i], false); // the fused MLP is for frozen weights
    gc(fn_mlp_residual, (Tensor *[]){rnd(70, SHAPE(2, 9, 5), -2, 2), w[0], w[1], w[2], w[3], rnd(75, SHAPE(2, 9, 5), -1, 1)}, 6, NULL);
}
END_TEST

// the checker itself must catch a wrong gradient
static void bad_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]);
    for (int64_t i = 0; i < tensor_numel(gx); i++)
        tensor_set_flat(gx, i, tensor_get_flat(gx, i) + 1.01 * tensor_get_flat(n->out->grad, i)); // 1% off
}
static Tensor *fn_bad(Ctx *c, Tensor **in, void *ud) {
    Tensor *y = tensor_clone(c, in[0]);
    ag_record(c, "bad", y, 1, in, bad_bw);
    return y;
}
START_TEST(test_gradcheck_catches_wrong_gradient) {
    char msg[256];
    ck_assert(!ag_gradcheck(fn_bad, NULL, (Tensor *[]){rnd(54, SHAPE(4), -1, 1)}, 1, NULL, msg, sizeof msg));
    ck_assert_ptr_nonnull(strstr(msg, "analytic"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("gradcheck");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_gradcheck_add"), test_gradcheck_add);
    tcase_add_test(check_case(s, "test_gradcheck_sub"), test_gradcheck_sub);
    tcase_add_test(check_case(s, "test_gradcheck_mul"), test_gradcheck_mul);
    tcase_add_test(check_case(s, "test_gradcheck_div"), test_gradcheck_div);
    tcase_add_test(check_case(s, "test_gradcheck_add_scalar"), test_gradcheck_add_scalar);
    tcase_add_test(check_case(s, "test_gradcheck_mul_scalar"), test_gradcheck_mul_scalar);
    tcase_add_test(check_case(s, "test_gradcheck_neg"), test_gradcheck_neg);
    tcase_add_test(check_case(s, "test_gradcheck_exp"), test_gradcheck_exp);
    tcase_add_test(check_case(s, "test_gradcheck_log"), test_gradcheck_log);
    tcase_add_test(check_case(s, "test_gradcheck_sqrt"), test_gradcheck_sqrt);
    tcase_add_test(check_case(s, "test_gradcheck_tanh"), test_gradcheck_tanh);
    tcase_add_test(check_case(s, "test_gradcheck_gelu"), test_gradcheck_gelu);
    tcase_add_test(check_case(s, "test_gradcheck_relu"), test_gradcheck_relu);
    tcase_add_test(check_case(s, "test_gradcheck_sum"), test_gradcheck_sum);
    tcase_add_test(check_case(s, "test_gradcheck_sum_keepdim"), test_gradcheck_sum_keepdim);
    tcase_add_test(check_case(s, "test_gradcheck_sum_all"), test_gradcheck_sum_all);
    tcase_add_test(check_case(s, "test_gradcheck_mean"), test_gradcheck_mean);
    tcase_add_test(check_case(s, "test_gradcheck_max"), test_gradcheck_max);
    tcase_add_test(check_case(s, "test_gradcheck_softmax"), test_gradcheck_softmax);
    tcase_add_test(check_case(s, "test_gradcheck_log_softmax"), test_gradcheck_log_softmax);
    tcase_add_test(check_case(s, "test_gradcheck_layernorm"), test_gradcheck_layernorm);
    tcase_add_test(check_case(s, "test_gradcheck_matmul"), test_gradcheck_matmul);
    tcase_add_test(check_case(s, "test_gradcheck_matmul_transposed"), test_gradcheck_matmul_transposed);
    tcase_add_test(check_case(s, "test_gradcheck_linear"), test_gradcheck_linear);
    tcase_add_test(check_case(s, "test_gradcheck_concat"), test_gradcheck_concat);
    tcase_add_test(check_case(s, "test_gradcheck_index_select"), test_gradcheck_index_select);
    tcase_add_test(check_case(s, "test_gradcheck_gather"), test_gradcheck_gather);
    tcase_add_test(check_case(s, "test_gradcheck_dropout"), test_gradcheck_dropout);
    tcase_add_test(check_case(s, "test_gradcheck_cross_entropy"), test_gradcheck_cross_entropy);
    tcase_add_test(check_case(s, "test_gradcheck_cross_entropy_smoothed"), test_gradcheck_cross_entropy_smoothed);
    tcase_add_test(check_case(s, "test_gradcheck_reshape"), test_gradcheck_reshape);
    tcase_add_test(check_case(s, "test_gradcheck_permute"), test_gradcheck_permute);
    tcase_add_test(check_case(s, "test_gradcheck_transpose"), test_gradcheck_transpose);
    tcase_add_test(check_case(s, "test_gradcheck_narrow"), test_gradcheck_narrow);
    tcase_add_test(check_case(s, "test_gradcheck_expand"), test_gradcheck_expand);
    tcase_add_test(check_case(s, "test_gradcheck_attention"), test_gradcheck_attention);
    tcase_add_test(check_case(s, "test_gradcheck_lora_linear"), test_gradcheck_lora_linear);
    tcase_add_test(check_case(s, "test_lora_linear_matches_composition"), test_lora_linear_matches_composition);
    tcase_add_test(check_case(s, "test_gradcheck_linear_residual"), test_gradcheck_linear_residual);
    tcase_add_test(check_case(s, "test_gradcheck_mlp_residual"), test_gradcheck_mlp_residual);
    tcase_add_test(check_case(s, "test_gradcheck_sigmoid"), test_gradcheck_sigmoid);
    tcase_add_test(check_case(s, "test_gradcheck_silu"), test_gradcheck_silu);
    tcase_add_test(check_case(s, "test_gradcheck_softplus"), test_gradcheck_softplus);
    tcase_add_test(check_case(s, "test_gradcheck_leaky_relu"), test_gradcheck_leaky_relu);
    tcase_add_test(check_case(s, "test_gradcheck_gelu_tanh"), test_gradcheck_gelu_tanh);
    tcase_add_test(check_case(s, "test_gradcheck_pow_scalar"), test_gradcheck_pow_scalar);
    tcase_add_test(check_case(s, "test_gradcheck_abs"), test_gradcheck_abs);
    tcase_add_test(check_case(s, "test_gradcheck_clamp"), test_gradcheck_clamp);
    tcase_add_test(check_case(s, "test_gradcheck_minimum"), test_gradcheck_minimum);
    tcase_add_test(check_case(s, "test_gradcheck_maximum"), test_gradcheck_maximum);
    tcase_add_test(check_case(s, "test_gradcheck_where"), test_gradcheck_where);
    tcase_add_test(check_case(s, "test_gradcheck_masked_fill"), test_gradcheck_masked_fill);
    tcase_add_test(check_case(s, "test_gradcheck_logsumexp"), test_gradcheck_logsumexp);
    tcase_add_test(check_case(s, "test_gradcheck_logsumexp_keepdim"), test_gradcheck_logsumexp_keepdim);
    tcase_add_test(check_case(s, "test_gradcheck_var"), test_gradcheck_var);
    tcase_add_test(check_case(s, "test_gradcheck_std"), test_gradcheck_std);
    tcase_add_test(check_case(s, "test_gradcheck_mse_loss"), test_gradcheck_mse_loss);
    tcase_add_test(check_case(s, "test_gradcheck_bce_with_logits"), test_gradcheck_bce_with_logits);
    tcase_add_test(check_case(s, "test_gradcheck_nll_loss"), test_gradcheck_nll_loss);
    tcase_add_test(check_case(s, "test_gradcheck_conv2d"), test_gradcheck_conv2d);
    tcase_add_test(check_case(s, "test_gradcheck_conv2d_groups"), test_gradcheck_conv2d_groups);
    tcase_add_test(check_case(s, "test_gradcheck_conv2d_same_dilated"), test_gradcheck_conv2d_same_dilated);
    tcase_add_test(check_case(s, "test_gradcheck_conv2d_wide_padding"), test_gradcheck_conv2d_wide_padding);
    tcase_add_test(check_case(s, "test_gradcheck_conv2d_one_image_chunks"), test_gradcheck_conv2d_one_image_chunks);
    tcase_add_test(check_case(s, "test_gradcheck_max_pool2d"), test_gradcheck_max_pool2d);
    tcase_add_test(check_case(s, "test_gradcheck_max_pool2d_2x2"), test_gradcheck_max_pool2d_2x2);
    tcase_add_test(check_case(s, "test_gradcheck_avg_pool2d"), test_gradcheck_avg_pool2d);
    tcase_add_test(check_case(s, "test_gradcheck_global_avg_pool2d"), test_gradcheck_global_avg_pool2d);
    tcase_add_test(check_case(s, "test_gradcheck_softmax_dim"), test_gradcheck_softmax_dim);
    tcase_add_test(check_case(s, "test_gradcheck_log_softmax_dim"), test_gradcheck_log_softmax_dim);
    tcase_add_test(check_case(s, "test_gradcheck_group_norm"), test_gradcheck_group_norm);
    tcase_add_test(check_case(s, "test_gradcheck_batch_norm"), test_gradcheck_batch_norm);
    tcase_add_test(check_case(s, "test_gradcheck_group_norm_plain"), test_gradcheck_group_norm_plain);
    tcase_add_test(check_case(s, "test_gradcheck_batch_norm_bias_only"), test_gradcheck_batch_norm_bias_only);
    tcase_add_test(check_case(s, "test_gradcheck_layer_norm_2d"), test_gradcheck_layer_norm_2d);
    tcase_add_test(check_case(s, "test_gradcheck_layer_norm_plain"), test_gradcheck_layer_norm_plain);
    tcase_add_test(check_case(s, "test_gradcheck_gru"), test_gradcheck_gru);
    tcase_add_test(check_case(s, "test_gradcheck_loss_reductions"), test_gradcheck_loss_reductions);
    tcase_add_test(check_case(s, "test_gradcheck_lstm"), test_gradcheck_lstm);
    tcase_add_test(check_case(s, "test_gradcheck_batch_norm_eval"), test_gradcheck_batch_norm_eval);
    tcase_add_test(check_case(s, "test_gradcheck_rms_norm"), test_gradcheck_rms_norm);
    tcase_add_test(check_case(s, "test_gradcheck_embedding"), test_gradcheck_embedding);
    tcase_add_test(check_case(s, "test_gradcheck_flip"), test_gradcheck_flip);
    tcase_add_test(check_case(s, "test_gradcheck_pad"), test_gradcheck_pad);
    tcase_add_test(check_case(s, "test_gradcheck_stack"), test_gradcheck_stack);
    tcase_add_test(check_case(s, "test_gradcheck_concat_many"), test_gradcheck_concat_many);
    tcase_add_test(check_case(s, "test_gradcheck_stack_many"), test_gradcheck_stack_many);
    tcase_add_test(check_case(s, "test_gradcheck_cross_entropy_nd"), test_gradcheck_cross_entropy_nd);
    tcase_add_test(check_case(s, "test_gradcheck_attention_masked"), test_gradcheck_attention_masked);
    tcase_add_test(check_case(s, "test_gradcheck_attention_causal"), test_gradcheck_attention_causal);
    tcase_add_test(check_case(s, "test_gradcheck_attention_probs"), test_gradcheck_attention_probs);
    tcase_add_test(check_case(s, "test_gradcheck_attention_blocks"), test_gradcheck_attention_blocks);
    tcase_add_test(check_case(s, "test_gradcheck_matmul_broadcast"), test_gradcheck_matmul_broadcast);
    tcase_add_test(check_case(s, "test_gradcheck_sum_dims"), test_gradcheck_sum_dims);
    tcase_add_test(check_case(s, "test_gradcheck_mean_dims"), test_gradcheck_mean_dims);
    tcase_add_test(check_case(s, "test_gradcheck_split"), test_gradcheck_split);
    tcase_add_test(check_case(s, "test_gradcheck_chunk"), test_gradcheck_chunk);
    tcase_add_test(check_case(s, "test_gradcheck_layernorm_dim"), test_gradcheck_layernorm_dim);
    tcase_add_test(check_case(s, "test_gradcheck_catches_wrong_gradient"), test_gradcheck_catches_wrong_gradient);
    return check_run(s);
}
