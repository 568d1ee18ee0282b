// test_nn.c: the parameter set and the layers: PyTorch's default initialisation (bounds and
// moments), names as PyTorch's state_dict, train/eval mode (Dropout, BatchNorm), safetensors
// save/load (round trip, strict refusals that leave the model untouched), LoRA as a wrapper
// (forward, merge, float64 gradcheck), MultiheadAttention's gradcheck, and the Trainer over a
// model that is not the ViT (an MLP through TrainModel, resumed bit for bit).
#include "../../cgrad.h"

#include "../check_util.h"
#include "../tensor_check.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];
static char tmpdir[256];

static void stats(const Tensor *t, double *mean, double *var, double *lo, double *hi) {
    int64_t n = tensor_numel(t);
    double s = 0, s2 = 0;
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = tensor_get_flat(t, i);
        s += v, s2 += v * v;
        *lo = fmin(*lo, v), *hi = fmax(*hi, v);
    }
    *mean = s / (double)n, *var = s2 / (double)n - *mean * *mean;
}

// U(-b, b): inside the bounds, near both, mean 0, variance b^2 / 3 (within sampling error)
static void check_uniform(const Tensor *t, double b) {
    double m, v, lo, hi;
    stats(t, &m, &v, &lo, &hi);
    double n = (double)tensor_numel(t);
    ck_assert_msg(lo >= -b && hi <= b, "range [%g, %g] for bound %g", lo, hi, b);
    if (n >= 1000) ck_assert_msg(lo < -0.99 * b && hi > 0.99 * b, "range [%g, %g] for bound %g", lo, hi, b);
    // within 5 standard errors (a sample variance of U(-b, b) has relative error sqrt(0.8 / n))
    ck_assert_msg(fabs(m) < 5 * b / sqrt(3 * n), "mean %g", m);
    ck_assert_msg(fabs(v / (b * b / 3) - 1) < 5 * sqrt(0.8 / n), "variance %g, want %g", v, b * b / 3);
}

static bool all_equal(const Tensor *t, double x) {
    for (int64_t i = 0; i < tensor_numel(t); i++)
        if (tensor_get_flat(t, i) != x) return false;
    return true;
}

static double max_diff(const Tensor *a, const Tensor *b) {
    double d = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) d = fmax(d, fabs(tensor_get_flat(a, i) - tensor_get_flat(b, i)));
    return d;
}

START_TEST(test_default_init_and_names) {
    Ctx *pc = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 7);
    NnLinear fc = nn_linear_new(&ps, "fc", 400, 300, true);
    NnConv2d cv = nn_conv2d_new(&ps, "conv", 8, 64, 3, 1, 1, 1, 2, true);
    NnEmbedding em = nn_embedding_new(&ps, "emb", 500, 64);
    NnLayerNorm ln = nn_layer_norm_new(&ps, "ln", 64, 1e-5);
    NnRMSNorm rn = nn_rms_norm_new(&ps, "rms", 64, 0);
    NnGroupNorm gn = nn_group_norm_new(&ps, "gn", 4, 64, 1e-5);
    NnBatchNorm bn = nn_batch_norm_new(&ps, "bn", 64, 1e-5, 0.1);
    NnMultiheadAttention at = nn_mha_new(&ps, "attn", 64, 4, true);
    ck_assert_msg(ctx_ok(pc), "%s", ctx_error(pc));
    check_uniform(fc.weight, 1 / sqrt(400.0));
    check_uniform(fc.bias, 1 / sqrt(400.0));
    check_uniform(cv.weight, 1 / sqrt(4 * 9.0)); // fan_in = in / groups * k * k
    ck_assert_int_eq(cv.weight->shape[1], 4);
    double m, v, lo, hi;
    stats(em.weight, &m, &v, &lo, &hi);
    ck_assert_msg(fabs(m) < 0.02 && fabs(v - 1) < 0.03, "embedding N(0, 1): mean %g variance %g", m, v);
    check_uniform(at.in_proj_weight, sqrt(6.0 / (64 + 192))); // xavier_uniform over [3E, E]
    check_uniform(at.out_proj.weight, 1 / sqrt(64.0));
    ck_assert(all_equal(at.in_proj_bias, 0) && all_equal(at.out_proj.bias, 0));
    ck_assert(all_equal(ln.weight, 1) && all_equal(ln.bias, 0) && all_equal(rn.weight, 1) && all_equal(gn.weight, 1));
    ck_assert(rn.eps == (double)FLT_EPSILON);
    ck_assert(all_equal(bn.running_mean, 0) && all_equal(bn.running_var, 1) && bn.num_batches_tracked->dtype == DT_I64);
    // PyTorch's state_dict names; parameters trainable, buffers not and not counted
    const char *names[] = {
        "fc.weight",           "fc.bias",           "conv.weight",          "conv.bias",         "emb.weight",
        "ln.weight",           "ln.bias",           "rms.weight",           "gn.weight",         "gn.bias",
        "bn.weight",           "bn.bias",           "bn.running_mean",      "bn.running_var",    "bn.num_batches_tracked",
        "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias"};
    ck_assert_int_eq(ps.n, (int)(sizeof names / sizeof *names));
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) ck_assert_msg(nn_params_get(&ps, names[i]), "no %s", names[i]);
    ck_assert(!bn.running_mean->requires_grad && fc.weight->requires_grad);
    int64_t want = 300 * 401 + 64 * 4 * 9 + 64 + 500 * 64 + 64 * 2 + 64 + 64 * 2 + 64 * 2 + 3 * 64 * 64 + 3 * 64 + 64 * 64 + 64;
    ck_assert_int_eq(nn_params_count(&ps, false), want);
    ck_assert_int_eq(nn_params_set_trainable(&ps, "bn.*", false), 2); // the buffers are not parameters
    // a set that was never initialised: no tensors, and a forward through the layer says what is missing
    NnParams raw = {0};
    NnLinear none = nn_linear_new(&raw, "fc", 4, 2, true);
    ck_assert(!none.weight && !none.bias && raw.n == 0);
    Ctx *c = ctx_new(1 << 16);
    ck_assert_ptr_null(nn_linear(c, &none, tensor_zeros(c, DT_F32, SHAPE(1, 4))));
    ck_assert_msg(strstr(ctx_error(c), "linear") && strstr(ctx_error(c), "NULL"), "%s", ctx_error(c));
    ctx_free(c);
    // a layer that cannot be built says why
    nn_conv2d_new(&ps, "bad", 3, 8, 3, 1, 0, 1, 2, true);
    ck_assert(!ctx_ok(pc) && strstr(ctx_error(pc), "conv2d 'bad'"));
    nn_params_free(&ps);
    ctx_free(pc);
}
END_TEST

// a name registered twice is refused at registration (both were kept and trained once), and an
// attention mask that requires a gradient is refused (its gradient stayed zero)
START_TEST(test_duplicate_names_and_grad_masks_refused) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 3);
    NnLinear a = nn_linear_new(&ps, "fc", 4, 3, true);
    ck_assert_ptr_nonnull(a.weight);
    int n = ps.n;
    NnLinear b = nn_linear_new(&ps, "fc", 4, 3, true);
    ck_assert_ptr_null(b.weight);
    ck_assert_int_eq(ps.n, n);
    ck_assert_msg(strstr(ctx_error(pc), "'fc.weight' is registered twice"), "%s", ctx_error(pc));
    ck_assert_int_eq(nn_params_add(&ps, "fc.bias", a.bias), -1);
    // an error inside a layer names the layer before the op (nested layers name the innermost)
    Tensor *bad = tensor_zeros(c, DT_F32, SHAPE(2, 5));
    NnLinear fc2 = nn_linear_new(&ps, "layer1.0.fc2", 4, 3, true);
    ck_assert_ptr_null(nn_linear(c, &fc2, bad));
    ck_assert_msg(!strncmp(ctx_error(c), "layer1.0.fc2: linear: ", 22), "%s", ctx_error(c));
    ctx_clear_error(c);
    Tensor *q = tensor_zeros(c, DT_F32, SHAPE(1, 2, 4)), *m = tensor_zeros(c, DT_F32, SHAPE(2, 2));
    ag_set_requires_grad(m, true);
    ck_assert_ptr_null(ag_attention_masked(c, q, q, q, 2, m, false, NULL));
    ck_assert_msg(strstr(ctx_error(c), "the mask requires a gradient"), "%s", ctx_error(c));
    nn_params_free(&ps);
    ctx_free(pc), ctx_free(c);
}
END_TEST

START_TEST(test_train_eval_mode) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 3);
    NnDropout dr = nn_dropout_new(&ps, 0.5);
    NnBatchNorm bn = nn_batch_norm_new(&ps, "bn", 3, 1e-5, 0.1);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(8, 3, 2, 2));
    Rng r = rng_new(1);
    rng_fill_normal(&r, x, 2.0, 1.5);
    Tensor *y = nn_dropout(c, &dr, x);
    int zeros = 0;
    for (int64_t i = 0; i < tensor_numel(y); i++) {
        double a = tensor_get_flat(y, i), b = tensor_get_flat(x, i);
        zeros += a == 0;
        ck_assert(a == 0 || fabs(a - 2 * b) < 1e-6);
    }
    ck_assert(zeros > 20 && zeros < 76);
    Tensor *yb = nn_batch_norm(c, &bn, x); // batch statistics; running ones move towards them
    ck_assert_int_eq(((int64_t *)bn.num_batches_tracked->data)[0], 1);
    ck_assert(fabs(tensor_get_flat(bn.running_mean, 0)) > 0.05);
    double m, v, lo, hi;
    stats(yb, &m, &v, &lo, &hi);
    ck_assert(fabs(m) < 1e-5);
    nn_params_train(&ps, false);
    ck_assert_ptr_eq(nn_dropout(c, &dr, x), x); // eval: the identity
    Tensor *ye = nn_batch_norm(c, &bn, x);
    ck_assert_int_eq(((int64_t *)bn.num_batches_tracked->data)[0], 1); // not counted in eval
    double want = (tensor_get_flat(x, 0) - tensor_get_flat(bn.running_mean, 0)) / sqrt(tensor_get_flat(bn.running_var, 0) + 1e-5);
    ck_assert_msg(fabs(tensor_get_flat(ye, 0) - want) < 1e-5, "eval uses the running statistics");
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST

// the same small model (conv, batch norm, linear) from a seed
typedef struct {
    NnParams ps;
    NnConv2d cv;
    NnBatchNorm bn;
    NnLinear fc;
} Small;

static void small_new(Small *s, Ctx *pc, uint64_t seed, int64_t classes) {
    nn_params_init(&s->ps, pc, seed);
    s->cv = nn_conv2d_new(&s->ps, "features.0", 1, 4, 3, 1, 1, 1, 1, false);
    s->bn = nn_batch_norm_new(&s->ps, "features.1", 4, 1e-5, 0.1);
    s->fc = nn_linear_new(&s->ps, "head", 4, classes, true);
}

START_TEST(test_save_load) {
    Ctx *pc = ctx_new(1 << 20);
    Small a, b, d;
    small_new(&a, pc, 1, 3);
    small_new(&b, pc, 2, 3);
    small_new(&d, pc, 3, 5);
    ((int64_t *)a.bn.num_batches_tracked->data)[0] = 17;
    tensor_set_flat(a.bn.running_var, 2, 4.5);
    char p[400], q[400];
    snprintf(p, sizeof p, "%s/small.safetensors", tmpdir);
    ck_assert_msg(nn_params_save(&a.ps, p, false, err, sizeof err) == 0, "%s", err);
    ck_assert(max_diff(a.fc.weight, b.fc.weight) > 0);
    ck_assert_msg(nn_params_load(&b.ps, p, false, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < a.ps.n; i++) ck_assert_msg(max_diff(a.ps.p[i].t, b.ps.p[i].t) == 0, "%s differs", a.ps.p[i].name);
    ck_assert_int_eq(((int64_t *)b.bn.num_batches_tracked->data)[0], 17);
    // another architecture: refused, naming the tensor, and nothing of the model changed
    Tensor *before = tensor_clone(pc, d.cv.weight);
    ck_assert_int_eq(nn_params_load(&d.ps, p, false, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "head.weight") && strstr(err, "[3, 4]") && strstr(err, "[5, 4]"), "%s", err);
    ck_assert(max_diff(before, d.cv.weight) == 0);
    // trainable only: the file holds what requires grad, and a full file is refused for it
    nn_params_set_trainable(&a.ps, "features.*", false);
    snprintf(q, sizeof q, "%s/head.safetensors", tmpdir);
    ck_assert_msg(nn_params_save(&a.ps, q, true, err, sizeof err) == 0, "%s", err);
    WFile f;
    ck_assert(safetensors_open(&f, q, err, sizeof err) == 0);
    ck_assert_int_eq(f.n, 2);
    ck_assert_str_eq(wfile_metadata(&f, "format"), "pt");
    wfile_close(&f);
    nn_params_set_trainable(&b.ps, "features.*", false);
    ck_assert_msg(nn_params_load(&b.ps, q, true, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(nn_params_load(&b.ps, p, true, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "is not a trainable parameter"), "%s", err);
    ck_assert_int_eq(nn_params_load(&b.ps, q, false, err, sizeof err), -1); // lacks the frozen ones
    ck_assert_msg(strstr(err, "no tensor 'features.0.weight'"), "%s", err);
    nn_params_free(&a.ps), nn_params_free(&b.ps), nn_params_free(&d.ps);
    ctx_free(pc);
}
END_TEST

static double lora_ref(const NnLora *lo, const Tensor *x, int64_t row, int64_t o) { // base + scale B A x, by hand
    int64_t in = x->shape[1];
    double y = tensor_get_flat(lo->base->bias, o);
    for (int64_t i = 0; i < in; i++) y += tensor_get_flat(lo->base->weight, o * in + i) * tensor_get_flat(x, row * in + i);
    for (int r = 0; r < lo->r; r++) {
        double ax = 0;
        for (int64_t i = 0; i < in; i++) ax += tensor_get_flat(lo->A, r * in + i) * tensor_get_flat(x, row * in + i);
        y += lo->scale * tensor_get_flat(lo->B, o * lo->r + r) * ax;
    }
    return y;
}

START_TEST(test_lora_wrapper) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 5);
    NnLinear fc = nn_linear_new(&ps, "blocks.0.fc", 6, 5, true);
    nn_params_set_trainable(&ps, "*", false);
    NnLora *lo = nn_lora_new(&ps, "blocks.0.fc", &fc, 2, 4.0, 0.0);
    ck_assert_ptr_nonnull(lo);
    ck_assert(nn_params_get(&ps, "blocks.0.fc.lora_A.weight") == lo->A && nn_params_get(&ps, "blocks.0.fc.lora_B.weight") == lo->B);
    ck_assert_int_eq(nn_params_count(&ps, true), 2 * 6 + 5 * 2);
    check_uniform(lo->A, 1 / sqrt(6.0));
    ck_assert(all_equal(lo->B, 0) && lo->scale == 2.0);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(3, 6));
    Rng r = rng_new(9);
    rng_fill_normal(&r, x, 0, 1);
    ck_assert(max_diff(nn_lora(c, lo, x), nn_linear(c, &fc, x)) == 0); // B = 0: the base layer
    rng_fill_normal(&r, lo->B, 0, 1);
    Tensor *y = nn_lora(c, lo, x);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t o = 0; o < 5; o++) ck_assert(fabs(tensor_get_flat(y, i * 5 + o) - lora_ref(lo, x, i, o)) < 1e-5);
    Tensor *w0 = tensor_clone(c, fc.weight);
    nn_lora_merge(lo);
    ck_assert(max_diff(nn_lora(c, lo, x), y) < 1e-5 && max_diff(nn_linear(c, &fc, x), y) < 1e-5);
    nn_lora_unmerge(lo);
    ck_assert(max_diff(fc.weight, w0) < 1e-6);
    lo->enabled = false;
    ck_assert(max_diff(nn_lora(c, lo, x), nn_linear(c, &fc, x)) == 0);
    ck_assert_ptr_null(nn_lora_new(&ps, "bad", &fc, 0, 1, 0));
    ck_assert(strstr(ctx_error(pc), "lora 'bad'"));
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST

// float64 gradchecks of the composed layers: LoRA (with dropout 0) and causal self-attention
static Tensor *fn_lora(Ctx *c, Tensor **in, void *ud) {
    NnLinear base = {in[1], in[2]};
    NnLora lo = {&base, in[3], in[4], 2, 3.0, 1.5, 0.0, true, false, NULL};
    return nn_lora(c, &lo, in[0]);
}

static Tensor *fn_mha(Ctx *c, Tensor **in, void *ud) {
    NnMultiheadAttention l = {in[1], in[2], {in[3], in[4]}, 2, *(bool *)ud};
    return nn_mha(c, &l, in[0], NULL);
}

static Tensor *rand64(Ctx *c, Rng *r, int ndim, const int64_t *shape) {
    Tensor *t = tensor_new(c, DT_F64, ndim, shape);
    rng_fill_uniform(r, t, -1, 1);
    ag_set_requires_grad(t, true);
    return t;
}

START_TEST(test_gradcheck_layers) {
    Ctx *c = ctx_new(1 << 22);
    Rng r = rng_new(11);
    char msg[512];
    Tensor *lin[] = {rand64(c, &r, SHAPE(3, 4)), rand64(c, &r, SHAPE(5, 4)), rand64(c, &r, SHAPE(5)), rand64(c, &r, SHAPE(2, 4)),
                     rand64(c, &r, SHAPE(5, 2))};
    ck_assert_msg(ag_gradcheck(fn_lora, NULL, lin, 5, NULL, msg, sizeof msg), "%s", msg);
    for (int causal = 0; causal < 2; causal++) {
        bool cz = causal;
        Tensor *min[] = {rand64(c, &r, SHAPE(2, 3, 4)), rand64(c, &r, SHAPE(12, 4)), rand64(c, &r, SHAPE(12)), rand64(c, &r, SHAPE(4, 4)),
                         rand64(c, &r, SHAPE(4))};
        ck_assert_msg(ag_gradcheck(fn_mha, &cz, min, 5, NULL, msg, sizeof msg), "causal %d: %s", causal, msg);
    }
    ctx_free(c);
}
END_TEST

// ---- the Trainer over a model that is not the ViT ----

typedef struct {
    NnParams ps;
    NnLinear l1, l2;
    NnDropout dr;
    const float *x;   // [N, 4]
    const int64_t *y; // [N]
    TrainModel tm;
} Mlp;

static Tensor *mlp_forward(Mlp *m, Ctx *c, const int64_t *items, int n, Tensor **labels) {
    Tensor *x = tensor_new(c, DT_F32, SHAPE(n, 4)), *y = tensor_new(c, DT_I64, SHAPE(n));
    for (int i = 0; i < n; i++) {
        memcpy((float *)x->data + 4 * i, m->x + 4 * items[i], 4 * sizeof(float));
        ((int64_t *)y->data)[i] = m->y[items[i]];
    }
    *labels = y;
    return nn_linear(c, &m->l2, nn_dropout(c, &m->dr, ag_relu(c, nn_linear(c, &m->l1, x))));
}

static Tensor *mlp_loss(void *self, Ctx *c, const int64_t *items, int n, double scale, double ls, char *e, size_t en) {
    Tensor *y, *logits = mlp_forward(self, c, items, n, &y);
    return ag_cross_entropy_smoothed(c, logits, y, scale, ls);
}

static Tensor *mlp_logits(void *self, Ctx *c, const int64_t *items, int n, int64_t *labels, char *e, size_t en) {
    Tensor *y, *logits = mlp_forward(self, c, items, n, &y);
    memcpy(labels, y->data, sizeof *labels * (size_t)n);
    return logits;
}

static void mlp_new(Mlp *m, Ctx *pc, const float *x, const int64_t *y) {
    nn_params_init(&m->ps, pc, 21);
    m->l1 = nn_linear_new(&m->ps, "0", 4, 16, true);
    m->l2 = nn_linear_new(&m->ps, "2", 16, 3, true);
    m->dr = nn_dropout_new(&m->ps, 0.1);
    m->x = x, m->y = y;
    m->tm = (TrainModel){
        .self = m, .params = &m->ps, .input_numel = 4, .loss = mlp_loss, .logits = mlp_logits, .nclasses = 3}; // save/load: the default
}

START_TEST(test_trainer_any_model) {
    enum { N = 60 };
    float x[N * 4];
    int64_t y[N], items[N];
    Rng r = rng_new(4);
    for (int i = 0; i < N; i++) { // three separable classes
        y[i] = i % 3, items[i] = i;
        for (int k = 0; k < 4; k++) x[4 * i + k] = (float)((k == y[i] ? 2.0 : 0.0) + 0.3 * rng_normal(&r));
    }
    char out[400];
    snprintf(out, sizeof out, "%s/run", tmpdir);
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = 8, a.grad_accum = 2, a.epochs = 4, a.lr = 0.05, a.weight_decay = 0.01, a.log = NULL;
    a.save_steps = 5, a.save_total_limit = 0, a.output_dir = out;
    // uninterrupted
    Ctx *pc = ctx_new(1 << 20);
    Mlp m1;
    mlp_new(&m1, pc, x, y);
    TrainState st;
    ck_assert_msg(trainer_train(&m1.tm, items, N, &a, &st, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(st.global_step, 16);
    ck_assert(m1.ps.training); // the Trainer leaves the set's mode as it found it (training: nn_params_init's)
    // evaluation switches to eval mode (dropout off) whatever the mode: the same loss twice, and the
    // mode as it was after
    Metrics mt, mt2;
    ck_assert_msg(trainer_evaluate(&m1.tm, items, N, 16, 0, &mt, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(trainer_evaluate(&m1.tm, items, N, 16, 0, &mt2, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(mt.accuracy > 0.9, "accuracy %g", mt.accuracy);
    ck_assert_double_eq(mt.avg_loss, mt2.avg_loss);
    ck_assert(m1.ps.training);
    nn_params_train(&m1.ps, false);
    metrics_free(&mt2);
    ck_assert_msg(trainer_evaluate(&m1.tm, items, N, 16, 0, &mt2, err, sizeof err) == 0, "%s", err);
    ck_assert(!m1.ps.training);
    metrics_free(&mt), metrics_free(&mt2);
    train_state_free(&st);
    // resumed from checkpoint-10 (the later ones removed): the same parameters, bit for bit
    char p[1400];
    snprintf(p, sizeof p, "%s/checkpoint-10/model.safetensors", out);
    ck_assert_msg(access(p, R_OK) == 0, "the default save wrote %s", p);
    snprintf(p, sizeof p, "rm -rf %s/checkpoint-15 %s/checkpoint-16", out, out);
    ck_assert_int_eq(system(p), 0);
    Mlp m2;
    mlp_new(&m2, pc, x, y);
    a.resume = true;
    ck_assert_msg(trainer_train(&m2.tm, items, N, &a, &st, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(st.global_step, 16);
    for (int i = 0; i < m1.ps.n; i++) ck_assert_msg(max_diff(m1.ps.p[i].t, m2.ps.p[i].t) == 0, "%s differs after resume", m1.ps.p[i].name);
    train_state_free(&st);
    // a model without class scores cannot be evaluated, and says so
    m2.tm.logits = NULL;
    ck_assert_int_eq(trainer_evaluate(&m2.tm, items, N, 16, 0, &mt, err, sizeof err), -1);
    ck_assert(strstr(err, "no class scores"));
    nn_params_free(&m1.ps), nn_params_free(&m2.ps);
    ctx_free(pc);
    snprintf(p, sizeof p, "rm -rf %s/run", tmpdir);
    ck_assert_int_eq(system(p), 0);
}
END_TEST

// scoped names and Sequential give PyTorch's state_dict names: nn.Sequential(Conv2d, BatchNorm2d,
// ReLU, MaxPool2d, Flatten, Linear) inside a module "features" registers features.0.weight, ...,
// features.1.num_batches_tracked, features.5.bias; the container's forward is its modules' in order;
// the options struct makes the same convolution as the positional constructor
START_TEST(test_scopes_and_sequential) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 11);
    ck_assert_int_eq(nn_scope_push(&ps, "features"), 0);
    NnSequential net;
    nn_sequential_init(&net, &ps, "");
    ck_assert_int_eq(nn_seq_conv2d(&net, (NnConv2dOptions){.in = 1, .out = 4, .kernel = 3, .padding = 1}), 0);
    ck_assert_int_eq(nn_seq_batch_norm(&net, 4), 0);
    ck_assert_int_eq(nn_seq_relu(&net), 0);
    ck_assert_int_eq(nn_seq_max_pool2d(&net, 2), 0);
    ck_assert_int_eq(nn_seq_flatten(&net), 0);
    ck_assert_int_eq(nn_seq_linear(&net, 4 * 3 * 3, 5, true), 0);
    nn_scope_pop(&ps);
    NnLinear head = nn_linear_new(&ps, "head", 5, 2, false);
    const char *want[] = {"features.0.weight",
                          "features.0.bias",
                          "features.1.weight",
                          "features.1.bias",
                          "features.1.running_mean",
                          "features.1.running_var",
                          "features.1.num_batches_tracked",
                          "features.5.weight",
                          "features.5.bias",
                          "head.weight"};
    ck_assert_int_eq(ps.n, 10);
    for (int i = 0; i < 10; i++) ck_assert_str_eq(ps.p[i].name, want[i]);
    Tensor *x = tensor_new(c, DT_F32, 4, (int64_t[]){2, 1, 6, 6});
    rng_fill_normal(ps.rng, x, 0, 1);
    Tensor *y = nn_linear(c, &head, nn_sequential(c, &net, x));
    ck_assert_msg(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 2, "%s", ctx_error(c));
    // the same modules by hand
    const NnConv2d *cv = net.items[0].module;
    const NnBatchNorm *bn = net.items[1].module;
    const NnLinear *fc = net.items[5].module;
    Tensor *h = ag_max_pool2d(c, ag_relu(c, nn_batch_norm(c, bn, nn_conv2d(c, cv, x))), (int[]){2, 2}, NULL, NULL);
    Tensor *y2 = nn_linear(c, &head, nn_linear(c, fc, ag_reshape(c, h, 2, (int64_t[]){2, 36})));
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(tensor_get_flat(y, i), tensor_get_flat(y2, i), 1e-6);
    // under no-grad the container gives back each module's work: a deep stack peaks at a few activations
    NnSequential deep;
    nn_sequential_init(&deep, &ps, "deep");
    for (int i = 0; i < 16; i++) nn_seq_linear(&deep, 128, 128, true), nn_seq_tanh(&deep);
    Tensor *z = tensor_full(c, DT_F32, 2, (int64_t[]){64, 128}, 0.1), *out = NULL;
    size_t base = c->used_total, act = 64 * 128 * sizeof(float);
    c->peak = 0;
    AG_NO_GRAD(c) { out = nn_sequential(c, &deep, z); }
    ck_assert_msg(out && out->shape[1] == 128, "%s", ctx_error(c));
    ck_assert_msg(c->peak < base + 6 * act, "peak %zu above %zu + 6 x %zu", c->peak, base, act);
    // nested scopes, and names the scope refuses
    ck_assert_int_eq(nn_scope_push(&ps, "layer1"), 0);
    ck_assert_int_eq(nn_scope_push(&ps, "0"), 0);
    NnConv2d a = nn_conv2d_make(&ps, "conv1", (NnConv2dOptions){.in = 2, .out = 2, .kernel = 3, .stride = 2, .no_bias = true});
    ck_assert_str_eq(a.weight->name, "layer1.0.conv1.weight");
    ck_assert_ptr_null(a.bias);
    ck_assert_int_eq(a.stride[0], 2);
    ck_assert_int_eq(a.dilation[1], 1);
    ck_assert_int_eq(a.groups, 1);
    nn_scope_pop(&ps), nn_scope_pop(&ps);
    ck_assert_str_eq(ps.scope, "");
    ck_assert_int_eq(nn_scope_push(&ps, ".bad"), -1);
    ck_assert_ptr_nonnull(strstr(ctx_error(pc), "nn_scope_push"));
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST

// the normalisation layers' forwards: their ops with the layer's parameters; RMS norm leaves each
// row with a mean square of 1 (weight ones), group norm each group with mean 0 and variance 1
START_TEST(test_norm_layers_forward) {
    Ctx *pc = ctx_new(1 << 16), *c = ctx_new(1 << 18);
    NnParams ps;
    nn_params_init(&ps, pc, 1);
    NnRMSNorm rms = nn_rms_norm_new(&ps, "rms", 6, 1e-6);
    NnGroupNorm gn = nn_group_norm_new(&ps, "gn", 2, 6, 1e-5);
    Rng r = rng_new(4);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(3, 6)), *x4 = tensor_new(c, DT_F32, SHAPE(2, 6, 2, 2));
    rng_fill_normal(&r, x, 1, 2), rng_fill_normal(&r, x4, -1, 3);
    Tensor *y = nn_rms_norm(c, &rms, x), *z = nn_group_norm(c, &gn, x4);
    ck_assert(max_diff(y, ag_rms_norm(c, x, rms.weight, 1e-6)) == 0);
    ck_assert(max_diff(z, ag_group_norm(c, x4, 2, gn.weight, gn.bias, 1e-5)) == 0);
    for (int i = 0; i < 3; i++) {
        double ms = 0;
        for (int j = 0; j < 6; j++) ms += pow(tensor_get(y, (int64_t[]){i, j}), 2) / 6;
        ck_assert_msg(fabs(ms - 1) < 1e-4, "row %d: mean square %g", i, ms);
    }
    for (int n = 0; n < 2; n++)
        for (int g = 0; g < 2; g++) {
            double m = 0, v = 0;
            for (int k = 0; k < 12; k++) m += tensor_get_flat(z, n * 24 + g * 12 + k) / 12;
            for (int k = 0; k < 12; k++) v += pow(tensor_get_flat(z, n * 24 + g * 12 + k) - m, 2) / 12;
            ck_assert_msg(fabs(m) < 1e-5 && fabs(v - 1) < 1e-3, "group %d of %d: mean %g variance %g", g, n, m, v);
        }
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST

// the layers' old names still build the same layers (deprecated for one release)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
START_TEST(test_deprecated_layer_names) {
    Ctx *pc = ctx_new(1 << 16), *c = ctx_new(1 << 18);
    NnParams ps;
    nn_params_init(&ps, pc, 1);
    NnLayerNorm ln = nn_layernorm_new(&ps, "ln", 6, 1e-5);
    NnRMSNorm rms = nn_rmsnorm_new(&ps, "rms", 6, 1e-6);
    NnGroupNorm gn = nn_groupnorm_new(&ps, "gn", 2, 6, 1e-5);
    NnBatchNorm bn = nn_batchnorm_new(&ps, "bn", 6, 1e-5, 0.1);
    ck_assert_ptr_nonnull(nn_params_get(&ps, "ln.weight"));
    ck_assert_ptr_nonnull(nn_params_get(&ps, "bn.running_var"));
    Rng r = rng_new(2);
    Tensor *x = tensor_new(c, DT_F32, SHAPE(3, 6)), *x4 = tensor_new(c, DT_F32, SHAPE(2, 6, 2, 2));
    rng_fill_normal(&r, x, 0, 1), rng_fill_normal(&r, x4, 0, 1);
    ck_assert(max_diff(nn_layernorm(c, &ln, x), nn_layer_norm(c, &ln, x)) == 0);
    ck_assert(max_diff(nn_rmsnorm(c, &rms, x), nn_rms_norm(c, &rms, x)) == 0);
    ck_assert(max_diff(nn_groupnorm(c, &gn, x4), nn_group_norm(c, &gn, x4)) == 0);
    nn_params_train(&ps, false); // eval: the running statistics, unchanged by a forward
    ck_assert(max_diff(nn_batchnorm(c, &bn, x4), nn_batch_norm(c, &bn, x4)) == 0);
    NnSequential seq;
    nn_sequential_init(&seq, &ps, "seq");
    ck_assert_int_eq(nn_seq_batchnorm(&seq, 6), 0);
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST
#pragma GCC diagnostic pop

// int8 inference: a quantized Linear's forwards that record nothing run in int8 (close to float32,
// not equal); recorded ones stay float32 bit for bit; a write to the weight is followed; the
// refusals name the tensor
START_TEST(test_linear_quantize) {
    Ctx *pc = ctx_new(1 << 20), *c = ctx_new(1 << 20);
    NnParams ps;
    nn_params_init(&ps, pc, 3);
    NnLinear fc = nn_linear_new(&ps, "fc", 64, 48, true), fc2 = nn_linear_new(&ps, "fc2", 48, 5, false);
    NnEmbedding emb = nn_embedding_new(&ps, "emb", 7, 3);
    (void)emb;
    Rng r = rng_new(5);
    Tensor *x = tensor_new(pc, DT_F32, SHAPE(9, 64));
    rng_fill_normal(&r, x, 0, 1);
    Tensor *y32 = NULL, *y8 = NULL;
    AG_NO_GRAD(c) { y32 = tensor_clone(pc, nn_linear(c, &fc, x)); }
    ck_assert(nn_linear_quantize(&fc));
    ck_assert_ptr_nonnull(fc.weight->int8);
    AG_NO_GRAD(c) { y8 = tensor_clone(pc, nn_linear(c, &fc, x)); }
    ck_assert(max_diff(y8, y32) > 0);                                        // int8 ran
    ck_assert_msg(rel_l2(y8, y32) < 0.02, "int8 error %g", rel_l2(y8, y32)); // and is close
    // a forward that records a gradient is float32, bit for bit, and has one
    ag_set_requires_grad(x, true);
    Tensor *yr = nn_linear(c, &fc, x);
    ck_assert(max_diff(yr, y32) == 0);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, yr)), 0);
    ck_assert_ptr_nonnull(x->grad);
    ag_set_requires_grad(x, false);
    // a write to the weight (its version) is quantized again before the next product
    rng_fill_normal(&r, fc.weight, 0, 0.1);   // through the API: the version counts it
    Tensor *w32 = tensor_clone(c, fc.weight); // a tensor of its own without an int8 copy: float32
    Tensor *yq = NULL, *yf = NULL;
    AG_NO_GRAD(c) { yq = nn_linear(c, &fc, x), yf = ag_linear(c, x, w32, fc.bias); }
    ck_assert_msg(rel_l2(yq, yf) < 0.02, "after a write: %g", rel_l2(yq, yf));
    // off again: float32
    tensor_quantize_off(fc.weight);
    AG_NO_GRAD(c) { ck_assert(max_diff(nn_linear(c, &fc, x), yf) == 0); }
    // the whole set: the float32 matrices whose names match
    ck_assert_int_eq(nn_params_quantize(&ps, "fc*.weight"), 2);
    ck_assert_int_eq(nn_params_quantize(&ps, "*.bias"), 0);
    ck_assert_int_eq(nn_params_quantize(&ps, "*"), 3); // the embedding table too (it takes memory, is not used)
    // refusals: a view, a vector, float64
    ck_assert(!tensor_quantize_int8(tensor_transpose_view(c, fc.weight, 0, 1)));
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "quantize_int8"));
    ck_assert(!tensor_quantize_int8(fc.bias));
    NnLinear f64 = {tensor_zeros(pc, DT_F64, SHAPE(3, 4)), NULL};
    ck_assert(!nn_linear_quantize(&f64));
    ck_assert_ptr_nonnull(strstr(ctx_error(pc), "float32"));
    (void)fc2;
    nn_params_free(&ps);
    ctx_free(c), ctx_free(pc);
}
END_TEST

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cgrad_nn_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("nn");
    tcase_add_test(check_case(s, "test_scopes_and_sequential"), test_scopes_and_sequential);
    tcase_add_test(check_case(s, "test_default_init_and_names"), test_default_init_and_names);
    tcase_add_test(check_case(s, "test_linear_quantize"), test_linear_quantize);
    tcase_add_test(check_case(s, "test_deprecated_layer_names"), test_deprecated_layer_names);
    tcase_add_test(check_case(s, "test_norm_layers_forward"), test_norm_layers_forward);
    tcase_add_test(check_case(s, "test_train_eval_mode"), test_train_eval_mode);
    tcase_add_test(check_case(s, "test_save_load"), test_save_load);
    tcase_add_test(check_case(s, "test_lora_wrapper"), test_lora_wrapper);
    tcase_add_test(check_case(s, "test_gradcheck_layers"), test_gradcheck_layers);
    tcase_add_test(check_case(s, "test_duplicate_names_and_grad_masks_refused"), test_duplicate_names_and_grad_masks_refused);
    tcase_add_test(check_case(s, "test_trainer_any_model"), test_trainer_any_model);
    int rc = check_run(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
