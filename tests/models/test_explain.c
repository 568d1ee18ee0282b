// test_explain.c: attention rollout and relevance (models/vit_explain.h) on the golden tiny model:
// the unfused, gated attention path equals the fused one and the golden attentions; rollout equals
// a reference computed here from the golden attentions alone; relevance is non-negative, and its
// gates' gradients are attention times the gradient a finite difference gives, and the relevance map
// equals one computed here from those gradients.
#include "../../base/fileio.h"
#include "../../models/vit_explain.h"

#include "../check_util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GOLD TEST_DATA "/golden"

static char err[1024];

static Tensor *ref(Ctx *c, WFile *f, const char *name) {
    const WEntry *e = wfile_find(f, name);
    ck_assert_msg(e != NULL, "reference tensor %s missing", name);
    return tensor_contiguous(c, wentry_tensor(c, e, false));
}

static void load(VitModel *m) { ck_assert_msg(vit_load(m, GOLD "/tiny", err, sizeof err) == 0, "%s", err); }

START_TEST(test_gated_path_equals_fused) {
    VitModel m;
    load(&m);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    Tensor *x = ref(c, &io, "pixel_values");
    int L = m.cfg.num_hidden_layers, NH = m.cfg.num_attention_heads;
    int64_t B = x->shape[0], T = 17;
    Tensor *att[2], *gates[2];
    for (int l = 0; l < L; l++) {
        gates[l] = tensor_full(c, DT_F32, 4, (int64_t[]){B, NH, T, T}, 1.0);
        ag_set_requires_grad(gates[l], true);
    }
    VitOutputs out = {.attentions = att, .attention_gates = gates};
    Tensor *logits = vit_forward(c, &m, x, &out);
    ck_assert_msg(logits != NULL, "%s", ctx_error(c));
    Tensor *want = ref(c, &io, "logits");
    for (int64_t i = 0; i < tensor_numel(want); i++) ck_assert_double_eq_tol(tensor_get_flat(logits, i), tensor_get_flat(want, i), 1e-4);
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "attentions.%d", l);
        Tensor *g = ref(c, &io, name);
        for (int64_t i = 0; i < tensor_numel(g); i++) ck_assert_double_eq_tol(tensor_get_flat(att[l], i), tensor_get_flat(g, i), 1e-5);
    }
    ctx_free(c);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

// rollout as a row vector carried from the last layer down: v = e_0, v <- v A'_l for l = L-1 .. 0,
// A' = (mean_h A + I) / 2 (rows of the mean sum to one, so no renormalisation is needed)
static void reference_rollout(Tensor **att, int b, int L, int NH, int T, double *map) {
    double *v = calloc((size_t)T, sizeof *v), *w = malloc(sizeof *w * (size_t)T);
    v[0] = 1;
    for (int l = L - 1; l >= 0; l--) {
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int i = 0; i < T; i++) {
                double a = 0;
                for (int h = 0; h < NH; h++) a += tensor_get_flat(att[l], (((int64_t)b * NH + h) * T + i) * T + j);
                s += v[i] * (0.5 * a / NH + 0.5 * (i == j));
            }
            w[j] = s;
        }
        memcpy(v, w, sizeof *v * (size_t)T);
    }
    for (int j = 1; j < T; j++) map[j - 1] = v[j];
    free(v), free(w);
}

START_TEST(test_rollout_matches_golden_attentions) {
    VitModel m;
    load(&m);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22), *w = ctx_new(1 << 22);
    Tensor *x = ref(w, &io, "pixel_values");
    Tensor *att[2] = {ref(w, &io, "attentions.0"), ref(w, &io, "attentions.1")};
    int L = 2, NH = 3, T = 17, N = T - 1;
    int64_t per = tensor_numel(x) / x->shape[0];
    for (int b = 0; b < x->shape[0]; b++) {
        double got[16], want[16], prob, sum = 0;
        int label;
        ck_assert_msg(vit_explain(c, &m, (const float *)x->data + b * per, VIT_EXPLAIN_ROLLOUT, -1, got, &label, &prob, err, sizeof err) ==
                          0,
                      "%s", err);
        reference_rollout(att, b, L, NH, T, want);
        for (int j = 0; j < N; j++) {
            ck_assert_msg(fabs(got[j] - want[j]) < 1e-5, "image %d patch %d: %g, reference %g", b, j, got[j], want[j]);
            sum += got[j];
        }
        ck_assert(sum > 0 && sum < 1); // the [CLS] row sums to one with itself
        // the predicted class is the golden logits' argmax
        Tensor *lg = ref(w, &io, "logits");
        int K = (int)lg->shape[1], best = 0;
        for (int k = 1; k < K; k++)
            if (tensor_get_flat(lg, b * K + k) > tensor_get_flat(lg, b * K + best)) best = k;
        ck_assert_int_eq(label, best);
        ck_assert(prob > 0 && prob <= 1);
    }
    ctx_free(c), ctx_free(w);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

// the logit of class t for image 0 with layer l's gate entry e moved by d
static double logit_with_gate(VitModel *m, const float *px, int l, int64_t e, double d, int t) {
    Ctx *c = ctx_new(1 << 22);
    int L = m->cfg.num_hidden_layers;
    Tensor *att[2], *gates[2];
    for (int i = 0; i < L; i++) gates[i] = tensor_full(c, DT_F32, 4, (int64_t[]){1, 3, 17, 17}, 1.0);
    ((float *)gates[l]->data)[e] += (float)d;
    VitOutputs out = {.attentions = att, .attention_gates = gates};
    Tensor *logits = vit_forward(c, m, tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, 3, 32, 32}, (float *)px), &out);
    double v = tensor_get_flat(logits, t);
    ctx_free(c);
    return v;
}

START_TEST(test_relevance_gradients) {
    VitModel m;
    load(&m);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22), *w = ctx_new(1 << 22);
    const float *px = (const float *)ref(w, &io, "pixel_values")->data;
    double map[16], roll[16], prob;
    int label, label2;
    ck_assert_msg(vit_explain(c, &m, px, VIT_EXPLAIN_RELEVANCE, -1, map, &label, &prob, err, sizeof err) == 0, "%s", err);
    double total = 0;
    for (int j = 0; j < 16; j++) {
        ck_assert(map[j] >= 0); // positive parts only
        total += map[j];
    }
    ck_assert(total > 0);
    ck_assert_int_eq(vit_explain(c, &m, px, VIT_EXPLAIN_ROLLOUT, -1, roll, &label2, &prob, err, sizeof err), 0);
    ck_assert_int_eq(label, label2);
    // another class gives another map
    double other[16];
    int t = (label + 1) % m.cfg.num_labels, lt;
    ck_assert_int_eq(vit_explain(c, &m, px, VIT_EXPLAIN_RELEVANCE, t, other, &lt, &prob, err, sizeof err), 0);
    ck_assert_int_eq(lt, t);
    double dmax = 0;
    for (int j = 0; j < 16; j++) dmax = fmax(dmax, fabs(other[j] - map[j]));
    ck_assert(dmax > 1e-6);
    // the gates' gradient is attention * d logit / d attention: central differences on a few entries
    Tensor *att[2], *gates[2];
    ctx_reset(c);
    for (int l = 0; l < 2; l++) {
        gates[l] = tensor_full(c, DT_F32, 4, (int64_t[]){1, 3, 17, 17}, 1.0);
        ag_set_requires_grad(gates[l], true);
    }
    VitOutputs out = {.attentions = att, .attention_gates = gates};
    Tensor *logits = vit_forward(c, &m, tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, 3, 32, 32}, (float *)px), &out);
    ck_assert_int_eq(ag_backward(c, ag_narrow(c, logits, 1, label, 1)), 0);
    const int64_t entries[] = {0, 18, 100, 290, 500, 866};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < sizeof entries / sizeof *entries; i++) {
            int64_t e = entries[i];
            double h = 1e-2, fd = (logit_with_gate(&m, px, l, e, h, label) - logit_with_gate(&m, px, l, e, -h, label)) / (2 * h);
            double g = ((const float *)gates[l]->grad->data)[e];
            ck_assert_msg(fabs(g - fd) < 2e-3 + 1e-2 * fabs(fd), "layer %d entry %ld: gradient %g, finite difference %g", l, (long)e, g,
                          fd);
        }
    // the map from these gradients, computed here as a row vector from the last layer down:
    // v = e_0, v <- v (I + A_bar_l), A_bar = mean over heads of the positive part
    double v[17] = {1}, nv[17];
    for (int l = 1; l >= 0; l--) {
        const float *gr = (const float *)gates[l]->grad->data;
        for (int j = 0; j < 17; j++) {
            nv[j] = v[j];
            for (int i = 0; i < 17; i++) {
                double abar = 0;
                for (int h = 0; h < 3; h++) abar += fmax(gr[(h * 17 + i) * 17 + j], 0) / 3;
                nv[j] += v[i] * abar;
            }
        }
        memcpy(v, nv, sizeof v);
    }
    for (int j = 0; j < 16; j++) ck_assert_msg(fabs(map[j] - v[j + 1]) < 1e-10, "patch %d: %g, from the gradients %g", j, map[j], v[j + 1]);
    // a class the model does not have is refused
    ck_assert_int_eq(vit_explain(c, &m, px, VIT_EXPLAIN_RELEVANCE, 99, map, &label, &prob, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "class 99"));
    ctx_free(c), ctx_free(w);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

START_TEST(test_method_names) {
    ck_assert_int_eq(vit_explain_method("rollout"), VIT_EXPLAIN_ROLLOUT);
    ck_assert_int_eq(vit_explain_method("relevance"), VIT_EXPLAIN_RELEVANCE);
    ck_assert_int_eq(vit_explain_method("gradcam"), -1);
    ck_assert_str_eq(vit_explain_method_name(VIT_EXPLAIN_RELEVANCE), "relevance");
}
END_TEST

int main(void) {
    Suite *s = suite_create("explain");
    tcase_add_test(check_case(s, "test_gated_path_equals_fused"), test_gated_path_equals_fused);
    tcase_add_test(check_case(s, "test_rollout_matches_golden_attentions"), test_rollout_matches_golden_attentions);
    tcase_add_test(check_case(s, "test_relevance_gradients"), test_relevance_gradients);
    tcase_add_test(check_case(s, "test_method_names"), test_method_names);
    return check_run(s);
}
