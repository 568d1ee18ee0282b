// test_ops_torch.c: cgrad's ops against PyTorch's values (ops_torch_reference.py writes them): for
// each op, the output and the gradients of sum(output * R) in float64, within 1e-10 relative.
// Usage: test_ops_torch REFERENCE.safetensors; prints "N passed, N failed".
#include "../../autograd/autograd.h"
#include "../../formats/weights.h"
#include "../../nn/nn.h"
#include "../../optim/optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef Tensor *(*OpFn)(Ctx *c, Tensor **in);
#define OP(name, expr)                                                                                                                     \
    static Tensor *op_##name(Ctx *c, Tensor **in) { return expr; }
OP(sigmoid, ag_sigmoid(c, in[0]))
OP(silu, ag_silu(c, in[0]))
OP(softplus, ag_softplus(c, in[0], 1.5, 4.0))
OP(leaky_relu, ag_leaky_relu(c, in[0], 0.07))
OP(gelu_tanh, ag_gelu_tanh(c, in[0]))
OP(pow_scalar, ag_pow_scalar(c, in[0], 2.5))
OP(abs, ag_abs(c, in[0]))
OP(clamp, ag_clamp(c, in[0], -0.5, 0.25))
OP(minimum, ag_minimum(c, in[0], in[1]))
OP(maximum, ag_maximum(c, in[0], in[1]))
OP(where, ag_where(c, ag_gt(c, in[2], ag_mul_scalar(c, in[2], 0)), in[0], in[1]))
OP(masked_fill, ag_masked_fill(c, in[0], ag_lt(c, in[0], ag_mul_scalar(c, in[0], 0)), -3.0))
OP(logsumexp, ag_logsumexp(c, in[0], 1, false))
OP(var, ag_var(c, in[0], 1, 1.0, false))
OP(std, ag_std(c, in[0], 0, 0.0, true))
OP(mse_loss, ag_mse_loss(c, in[0], in[1]))
OP(bce_with_logits, ag_bce_with_logits(c, in[0], in[1]))
OP(nll_loss, ag_nll_loss(c, ag_log_softmax(c, in[0]), tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){2, 0, 4})))
OP(conv2d, ag_conv2d(c, in[0], in[1], in[2], (int[]){2, 1}, (int[]){1, 2}, (int[]){1, 2}, 1))
OP(conv2d_groups, ag_conv2d(c, in[0], in[1], NULL, NULL, (int[]){1, 1}, NULL, 2))
OP(conv2d_same_dilated, ag_conv2d(c, in[0], in[1], in[2], NULL, (int[]){2, 2}, (int[]){2, 2}, 1))
OP(conv2d_wide_padding, ag_conv2d(c, in[0], in[1], NULL, NULL, (int[]){4, 2}, NULL, 1))
OP(max_pool2d, ag_max_pool2d(c, in[0], (int[]){3, 2}, (int[]){2, 1}, (int[]){1, 1}))
OP(avg_pool2d, ag_avg_pool2d(c, in[0], (int[]){3, 3}, (int[]){2, 2}, (int[]){1, 1}))
OP(global_avg_pool2d, ag_global_avg_pool2d(c, in[0]))
OP(softmax_dim, ag_softmax_dim(c, in[0], 1))
OP(group_norm, ag_group_norm(c, in[0], 2, in[1], in[2], 1e-5))
OP(batch_norm, ag_batch_norm(c, in[0], in[1], in[2], NULL, NULL, true, 0.1, 1e-5))
static Tensor *op_batch_norm_running(Ctx *c, Tensor **in) { // the running statistics after one training step
    Tensor *rm = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.1, -0.2, 0.3});
    Tensor *rv = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.5, 1.5, 2.0});
    if (!ag_batch_norm(c, in[0], NULL, NULL, rm, rv, true, 0.1, 1e-5)) return NULL;
    return ag_concat(c, (Tensor *[]){rm, rv}, 2, 0);
}
static Tensor *op_batch_norm_eval(Ctx *c, Tensor **in) {
    Tensor *rm = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.1, -0.2, 0.3});
    Tensor *rv = tensor_from_data(c, DT_F64, SHAPE(3), (double[]){0.5, 1.5, 2.0});
    return ag_batch_norm(c, in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5);
}
OP(group_norm_plain, ag_group_norm(c, in[0], 3, NULL, NULL, 1e-5))
OP(batch_norm_bias_only, ag_batch_norm(c, in[0], NULL, in[1], NULL, NULL, true, 0.1, 1e-5))
OP(layer_norm_2d, ag_layer_norm(c, in[0], 2, in[1], in[2], 1e-5))
OP(layer_norm_plain, ag_layer_norm(c, in[0], 3, NULL, NULL, 1e-5))
OP(ce_none, ag_cross_entropy_with(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2, 3), (int64_t[]){2, -1, 0, 1, 3, 3}),
                                  (AgLossOptions){AG_REDUCE_NONE, -1, 0.1}))
OP(ce_sum,
   ag_cross_entropy_with(c, in[0], tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){2, 0, 4}), (AgLossOptions){AG_REDUCE_SUM, -100, 0.2}))
OP(ce_all_ignored,
   ag_cross_entropy_with(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2), (int64_t[]){-100, -100}), (AgLossOptions){AG_REDUCE_SUM, -100, 0}))
OP(nll_none, ag_nll_loss_with(c, ag_log_softmax(c, in[0]), tensor_from_data(c, DT_I64, SHAPE(3), (int64_t[]){2, 7, 1}),
                              (AgLossOptions){AG_REDUCE_NONE, 7, 0}))
OP(mse_sum, ag_mse_loss_with(c, in[0], in[1], AG_REDUCE_SUM))
OP(bce_none, ag_bce_with_logits_with(c, in[0], in[1], AG_REDUCE_NONE))
OP(l1_mean, ag_l1_loss_with(c, in[0], in[1], AG_REDUCE_MEAN))
OP(rms_norm, ag_rms_norm(c, in[0], in[1], 1e-6))
OP(embedding, ag_embedding(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2, 3), (int64_t[]){4, 0, 2, 2, 1, 4})))
OP(flip, ag_flip(c, in[0], 1))
OP(pad, ag_pad(c, in[0], 0, 1, 2, 0.5))
OP(stack, ag_stack(c, (Tensor *[]){in[0], in[1], in[0]}, 3, 1))
OP(cross_entropy_nd,
   ag_cross_entropy_with(c, in[0], tensor_from_data(c, DT_I64, SHAPE(2, 3), (int64_t[]){2, -100, 0, 1, 3, -100}), AG_LOSS_DEFAULTS))
static Tensor *op_attention_masked(Ctx *c, Tensor **in) {
    double m[] = {0, -1.5, 0.5, -INFINITY, 0, 2, 0.25, -0.5, 0, 1, -INFINITY, 0};
    return ag_attention_masked(c, in[0], in[1], in[2], 2, tensor_from_data(c, DT_F64, SHAPE(3, 4), m), false, NULL);
}
OP(attention_causal, ag_attention_masked(c, in[0], in[1], in[2], 2, NULL, true, NULL))
static Tensor *op_mha_causal(Ctx *c, Tensor **in) { // the layer over the ops, as torch.nn.MultiheadAttention
    NnMultiheadAttention l = {in[1], in[2], {in[3], in[4]}, 2, true};
    return nn_mha(c, &l, in[0], NULL);
}
OP(matmul_broadcast, ag_matmul(c, in[0], in[1]))
OP(sum_dims, ag_sum_dims(c, in[0], (int[]){0, 2}, 2, false))
OP(mean_dims, ag_mean_dims(c, in[0], (int[]){-1, 1}, 2, true))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // the old name is kept one release: still compared
OP(layernorm_dim, ag_layernorm_dim(c, in[0], 1, in[1], in[2], 1e-5))
#pragma GCC diagnostic pop
OP(eq, ag_eq(c, in[0], in[1]))
OP(lt, ag_lt(c, in[0], in[1]))
OP(ge, ag_ge(c, in[0], in[1]))
OP(ne, ag_ne(c, in[0], in[1]))
OP(le, ag_le(c, in[0], in[1]))

static const struct {
    const char *name;
    OpFn fn;
} OPS[] = {{"sigmoid", op_sigmoid},
           {"silu", op_silu},
           {"softplus", op_softplus},
           {"leaky_relu", op_leaky_relu},
           {"gelu_tanh", op_gelu_tanh},
           {"pow_scalar", op_pow_scalar},
           {"abs", op_abs},
           {"clamp", op_clamp},
           {"minimum", op_minimum},
           {"maximum", op_maximum},
           {"where", op_where},
           {"masked_fill", op_masked_fill},
           {"logsumexp", op_logsumexp},
           {"var", op_var},
           {"std", op_std},
           {"mse_loss", op_mse_loss},
           {"bce_with_logits", op_bce_with_logits},
           {"nll_loss", op_nll_loss},
           {"conv2d", op_conv2d},
           {"conv2d_groups", op_conv2d_groups},
           {"conv2d_same_dilated", op_conv2d_same_dilated},
           {"conv2d_wide_padding", op_conv2d_wide_padding},
           {"max_pool2d", op_max_pool2d},
           {"avg_pool2d", op_avg_pool2d},
           {"global_avg_pool2d", op_global_avg_pool2d},
           {"softmax_dim", op_softmax_dim},
           {"group_norm", op_group_norm},
           {"group_norm_plain", op_group_norm_plain},
           {"ce_none", op_ce_none},
           {"ce_sum", op_ce_sum},
           {"ce_all_ignored", op_ce_all_ignored},
           {"nll_none", op_nll_none},
           {"mse_sum", op_mse_sum},
           {"bce_none", op_bce_none},
           {"l1_mean", op_l1_mean},
           {"batch_norm_bias_only", op_batch_norm_bias_only},
           {"layer_norm_2d", op_layer_norm_2d},
           {"layer_norm_plain", op_layer_norm_plain},
           {"batch_norm", op_batch_norm},
           {"batch_norm_running", op_batch_norm_running},
           {"batch_norm_eval", op_batch_norm_eval},
           {"rms_norm", op_rms_norm},
           {"embedding", op_embedding},
           {"flip", op_flip},
           {"pad", op_pad},
           {"stack", op_stack},
           {"cross_entropy_nd", op_cross_entropy_nd},
           {"attention_masked", op_attention_masked},
           {"attention_causal", op_attention_causal},
           {"mha_causal", op_mha_causal},
           {"matmul_broadcast", op_matmul_broadcast},
           {"sum_dims", op_sum_dims},
           {"mean_dims", op_mean_dims},
           {"layernorm_dim", op_layernorm_dim},
           {"eq", op_eq},
           {"ne", op_ne},
           {"le", op_le},
           {"lt", op_lt},
           {"ge", op_ge}};

static Tensor *load(Ctx *c, const WFile *f, const char *op, const char *what) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", op, what);
    const WEntry *e = wfile_find(f, k);
    if (!e || e->dtype != WD_F64) return NULL;
    return tensor_from_data(c, DT_F64, e->ndim, e->shape, e->data);
}

// worst |a - b| / (1e-300 + max |b|) over the elements; INFINITY when the shapes differ
static double rel_diff(const Tensor *a, const Tensor *b) {
    if (!a || !b || tensor_numel(a) != tensor_numel(b)) return INFINITY;
    double worst = 0, scale = 1e-300;
    for (int64_t i = 0; i < tensor_numel(b); i++) scale = fmax(scale, fabs(tensor_get_flat(b, i)));
    for (int64_t i = 0; i < tensor_numel(b); i++) worst = fmax(worst, fabs(tensor_get_flat(a, i) - tensor_get_flat(b, i)) / scale);
    return worst;
}

int main(int argc, char **argv) {
    char err[512];
    WFile f;
    if (argc != 2 || safetensors_open(&f, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "usage: test_ops_torch REFERENCE.safetensors (%s)\n", argc == 2 ? err : "no file");
        return 2;
    }
    int pass = 0, fail = 0;
    for (size_t k = 0; k < sizeof OPS / sizeof *OPS; k++) {
        Ctx *c = ctx_new(1 << 20);
        const char *op = OPS[k].name;
        Tensor *in[5] = {0};
        int nin = 0;
        for (; nin < 5; nin++) {
            char w[16];
            snprintf(w, sizeof w, "in%d", nin);
            if (!(in[nin] = load(c, &f, op, w))) break;
            char gname[16];
            snprintf(gname, sizeof gname, "grad%d", nin);
            if (load(c, &f, op, gname)) ag_set_requires_grad(in[nin], true); // PyTorch gave it a gradient
        }
        Tensor *want = load(c, &f, op, "out"), *R = load(c, &f, op, "R");
        Tensor *y = nin ? OPS[k].fn(c, in) : NULL;
        double worst = rel_diff(y, want);
        bool ok = y && worst <= 1e-10;
        if (ok && y->requires_grad) {
            Tensor *Rv = tensor_from_buffer(c, DT_F64, y->ndim, y->shape, R->data);
            ok = ag_backward(c, ag_sum_all(c, ag_mul(c, y, Rv))) == 0;
            for (int i = 0; ok && i < nin; i++) {
                char gname[16];
                snprintf(gname, sizeof gname, "grad%d", i);
                Tensor *gw = load(c, &f, op, gname);
                if (!gw) continue;
                double d = rel_diff(in[i]->grad, gw);
                worst = fmax(worst, d);
                ok = d <= 1e-10;
            }
        }
        if (ok)
            pass++;
        else {
            fail++;
            printf("FAIL %s: worst relative difference %.3g %s\n", op, worst, ctx_ok(c) ? "" : ctx_error(c));
        }
        ctx_free(c);
    }
    // the optimizers: five steps with PyTorch's gradients, within float32 rounding of its parameters
    // (relative to the largest parameter: values near zero come from cancellation)
    const char *opt[] = {"adam", "adamw", "sgd", "sgd_nesterov"};
    for (int k = 0; k < 4; k++) {
        Ctx *c = ctx_new(1 << 16);
        char op[32];
        snprintf(op, sizeof op, "optim_%s", opt[k]);
        Tensor *p0 = load(c, &f, op, "p0"), *gs = load(c, &f, op, "grads"), *traj = load(c, &f, op, "traj");
        double worst = INFINITY;
        if (p0 && gs && traj) {
            Tensor *p = tensor_new(c, DT_F32, 2, p0->shape);
            tensor_copy(p, p0);
            ag_set_requires_grad(p, true);
            OptimGroup g = {&p, 1, 1.0, k < 2 ? 0.1 : 0.01};
            Optim *o = k == 0   ? optim_adam(&g, 1, 0.9, 0.99, 1e-8)
                       : k == 1 ? optim_adamw(&g, 1, 0.9, 0.99, 1e-8)
                                : optim_sgd(&g, 1, 0.9, k == 2 ? 0.1 : 0.0, k == 3);
            double lr = k < 2 ? 0.01 : 0.1;
            worst = 0;
            double scale = 1e-300;
            for (int64_t i = 0; i < tensor_numel(traj); i++) scale = fmax(scale, fabs(tensor_get_flat(traj, i)));
            for (int s = 0; s < 5; s++) {
                for (int i = 0; i < 12; i++) ((float *)p->grad->data)[i] = (float)tensor_get_flat(gs, s * 12 + i);
                optim_step(o, lr);
                for (int i = 0; i < 12; i++) {
                    double want = tensor_get_flat(traj, s * 12 + i);
                    worst = fmax(worst, fabs(tensor_get_flat(p, i) - want) / scale);
                }
            }
            optim_free(o);
        }
        if (worst <= 1e-6)
            pass++;
        else {
            fail++;
            printf("FAIL %s: worst relative difference %.3g\n", op, worst);
        }
        ctx_free(c);
    }
    wfile_close(&f);
    printf("ops against PyTorch: %d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
