// test_models.c: ViT parity with the golden files, checkpoint formats, adapters, head extension,
// LoRA, saving round trips, and corrupt or mismatched inputs refused with clear messages.
#include "../../base/fileio.h"
#include "../../kernels/bgemm.h"
#include "../../kernels/sgemm.h"
#include "../../models/adapter.h"
#include "../../models/image_processor.h"
#include "../../models/vit.h"
#include "../../models/vit_kernels.h"
#include "../../models/vit_ops.h"

#include "../check_util.h"
#include "../tensor_check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define GOLD TEST_DATA "/golden"

static char err[1024];
static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cgrad_models_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}
static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static double max_diff(const Tensor *a, const Tensor *b) {
    ck_assert_int_eq(tensor_numel(a), tensor_numel(b));
    double m = 0;
    for (int64_t i = 0; i < tensor_numel(a); i++) m = fmax(m, fabs(tensor_get_flat(a, i) - tensor_get_flat(b, i)));
    return m;
}

static Tensor *ref(Ctx *c, WFile *f, const char *name) {
    const WEntry *e = wfile_find(f, name);
    ck_assert_msg(e != NULL, "reference tensor %s missing", name);
    return wentry_tensor(c, e, false);
}

static void load(VitModel *m, const char *dir) { ck_assert_msg(vit_load(m, dir, err, sizeof err) == 0, "%s", err); }

// ---------------------------------------------------------------- parity

START_TEST(test_tiny_forward_backward_parity) {
    VitModel m;
    load(&m, GOLD "/tiny");
    ck_assert_str_eq(m.ck.format, "safetensors");
    nn_params_set_trainable(&m.params, "*", true);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    Tensor *x = ref(c, &io, "pixel_values");
    ag_set_requires_grad(x, true);
    Tensor *hs[3], *att[2];
    VitOutputs out = {.hidden_states = hs, .attentions = att};
    Tensor *logits = vit_forward(c, &m, x, &out);
    Tensor *loss = ag_cross_entropy(c, logits, ref(c, &io, "labels"));
    ck_assert_int_eq(ag_backward(c, loss), 0);
    ck_assert(max_diff(logits, ref(c, &io, "logits")) < 1e-4);
    ck_assert(max_diff(loss, ref(c, &io, "loss")) < 1e-4);
    ck_assert(max_diff(hs[2], ref(c, &io, "hidden_states.2")) < 1e-4);
    ck_assert(max_diff(att[1], ref(c, &io, "attentions.1")) < 1e-4);
    ck_assert(max_diff(x->grad, ref(c, &io, "pixel_values.grad")) < 2e-5);
    // gradients by their transformers-5 names, through the name map
    Tensor *gq = ref(c, &io, "grad.vit.layers.0.attention.q_proj.weight");
    ck_assert(max_diff(nn_params_get(&m.params, "vit.encoder.layer.0.attention.attention.query.weight")->grad, gq) < 2.5e-4);
    Tensor *gk = ref(c, &io, "grad.vit.layers.1.attention.k_proj.bias"); // zero in theory
    ck_assert(max_diff(nn_params_get(&m.params, "vit.encoder.layer.1.attention.attention.key.bias")->grad, gk) < 1e-7);
    ctx_free(c);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

// --int8's model: the adapter merged into the base, the encoder's products and the patch
// embedding in int8: logits near the float32 ones with the adapter, not equal; a forward that
// records a gradient is float32, equal to the merged float32 model's; the classifier untouched
START_TEST(test_int8_close_to_float32) {
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    Tensor *x = ref(c, &io, "pixel_values"), *want = NULL, *merged = NULL, *got = NULL;
    VitModel m;
    load(&m, GOLD "/tiny");
    ck_assert_msg(adapter_load(&m, GOLD "/tiny_lora", err, sizeof err) == 0, "%s", err);
    AG_NO_GRAD(c) { want = tensor_clone(c, vit_forward(c, &m, x, NULL)); }
    ck_assert_msg(vit_quantize_int8(&m, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_null(m.classifier.weight->int8);
    ck_assert_ptr_nonnull(m.layers[1].fc2.weight->int8);
    ck_assert_ptr_nonnull(m.patch.weight->int8);
    AG_NO_GRAD(c) { got = tensor_clone(c, vit_forward(c, &m, x, NULL)); }
    ck_assert(max_diff(got, want) > 0);
    ck_assert_msg(rel_l2(got, want) < 0.05, "int8 logits off by %g", rel_l2(got, want));
    // recorded: every product in float32, as the merged model without int8 copies
    ag_set_requires_grad(x, true);
    merged = vit_forward(c, &m, x, NULL);
    ck_assert_int_eq(ag_backward(c, ag_sum_all(c, merged)), 0);
    ck_assert_msg(max_diff(merged, want) < 1e-5, "recorded forward %g from float32", max_diff(merged, want));
    ck_assert_ptr_nonnull(x->grad);
    ctx_free(c);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

// the int8 forward's attention with bfloat16 products against the float32 op: DeiT-Tiny's shapes
// (197 tokens, 3 heads of 64) on scores of a trained model's spread; close, and not the same bits
START_TEST(test_int8_attention_bf16) {
    if (!bgemm_available()) {
        printf("(skipped: no AVX-512 BF16 on this CPU or build)\n");
        return;
    }
    Ctx *c = ctx_new(1 << 24);
    Rng r = rng_new(5);
    Tensor *qkv[3];
    for (int i = 0; i < 3; i++) {
        qkv[i] = tensor_new(c, DT_F32, 3, (int64_t[]){2, 197, 192});
        rng_fill_normal(&r, qkv[i], 0, i == 2 ? 1.0 : 1.5);
    }
    Tensor *want = NULL, *got = tensor_new(c, DT_F32, 3, (int64_t[]){2, 197, 192});
    AG_NO_GRAD(c) { want = ag_attention(c, qkv[0], qkv[1], qkv[2], 3, NULL); }
    ck_assert_int_eq(vit_attention_bf16(got->data, qkv[0]->data, qkv[1]->data, qkv[2]->data, 2, 197, 192, 3), 0);
    ck_assert(max_diff(got, want) > 0);
    ck_assert_msg(rel_l2(got, want) < 0.01, "bf16 attention off by %g", rel_l2(got, want));
    ctx_free(c);
}
END_TEST

static Tensor *adapter_logits(Ctx *c, const char *adapter, WFile *io, Tensor **loss_out) {
    VitModel *m = ctx_alloc(c, sizeof *m);
    load(m, GOLD "/tiny");
    ck_assert_msg(adapter_load(m, adapter, err, sizeof err) == 0, "%s", err);
    Tensor *x = ref(c, io, "pixel_values");
    Tensor *logits = vit_forward(c, m, x, NULL);
    Tensor *loss = ag_cross_entropy(c, logits, ref(c, io, "labels"));
    ck_assert_int_eq(ag_backward(c, loss), 0);
    if (loss_out) *loss_out = loss;
    Tensor *g = nn_params_get(&m->params, "vit.encoder.layer.1.attention.attention.value.lora_B.weight")->grad;
    Tensor *keep = tensor_clone(c, logits);
    keep->grad = tensor_clone(c, g);
    vit_free(m);
    return keep;
}

START_TEST(test_tiny_lora_both_spellings) {
    WFile io, lio;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    ck_assert(safetensors_open(&lio, GOLD "/tiny_lora/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    Tensor *loss5, *loss4;
    Tensor *l5 = adapter_logits(c, GOLD "/tiny_lora", &io, &loss5);
    Tensor *l4 = adapter_logits(c, GOLD "/tiny_lora/adapter_v4", &io, &loss4);
    ck_assert(max_diff(l5, ref(c, &lio, "logits")) < 1e-4);
    ck_assert(max_diff(loss5, ref(c, &lio, "loss")) < 1e-4);
    ck_assert(max_diff(l4, l5) == 0);
    Tensor *g = ref(c, &lio, "grad.base_model.model.vit.layers.1.attention.v_proj.lora_B.default.weight");
    ck_assert(max_diff(l5->grad, g) < 1e-4);
    ctx_free(c);
    wfile_close(&io);
    wfile_close(&lio);
}
END_TEST

START_TEST(test_merged_equals_adapter) {
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    VitModel a, mg;
    load(&a, GOLD "/tiny");
    ck_assert_msg(adapter_load(&a, GOLD "/tiny_lora", err, sizeof err) == 0, "%s", err);
    load(&mg, GOLD "/tiny_lora/merged");
    Tensor *x = ref(c, &io, "pixel_values");
    ag_no_grad(c, true);
    Tensor *la = vit_forward(c, &a, x, NULL), *lm = vit_forward(c, &mg, x, NULL);
    ck_assert(max_diff(la, lm) < 1e-5);
    // our own merge matches too, and unmerge restores the base
    Tensor *q0 = tensor_clone(c, a.layers[0].q.weight);
    vit_merge_lora(&a);
    ck_assert(max_diff(vit_forward(c, &a, x, NULL), lm) < 1e-5);
    ck_assert(max_diff(a.layers[0].q.weight, mg.layers[0].q.weight) < 1e-6);
    nn_lora_unmerge(a.layers[0].lora[VIT_Q]);
    ck_assert(max_diff(a.layers[0].q.weight, q0) < 1e-6);
    // disabling the adapter gives the base model's logits (with the adapter's classifier)
    a.layers[0].lora[VIT_Q]->enabled = false;
    ctx_free(c);
    wfile_close(&io);
    vit_free(&a);
    vit_free(&mg);
}
END_TEST

// the inference layer in one parallel region (vit_layer_fused) against the layer op by op (what a
// training-mode forward runs; no dropout anywhere): the same bits, layer by layer and at the logits
// (the [CLS]-only last layer), with LoRA on query, key and value and several images
static bool tensor_equal(const Tensor *a, const Tensor *b) {
    return a && b && tensor_same_shape(a, b) && tensor_is_contiguous(a) && tensor_is_contiguous(b) &&
           memcmp(a->data, b->data, sizeof(float) * (size_t)tensor_numel(a)) == 0;
}

static void fused_layer_same_bits(VitModel *m, int64_t B, bool int8) {
    char why[256];
    Rng rng = rng_new(7);
    VitLoraSpec spec = {.r = 4, .alpha = 8, .targets = {"query", "key", "value"}, .ntargets = 3};
    ck_assert_msg(vit_attach_lora(m, &spec, &rng, why, sizeof why) == 0, "%s", why);
    for (int i = 0; i < m->cfg.num_hidden_layers; i++)
        for (int k = VIT_Q; k <= VIT_V; k++) rng_fill_normal(&rng, m->layers[i].lora[k]->B, 0.0, 0.3); // a branch that counts
    if (int8) ck_assert_msg(vit_quantize_int8(m, why, sizeof why) == 0, "%s", why);                    // LoRA merged, then int8 copies
    int nl = m->cfg.num_hidden_layers, S = m->cfg.image_size;
    Ctx *c = ctx_new(1 << 24);
    ag_no_grad(c, true);
    Tensor *x = tensor_new(c, DT_F32, 4, (int64_t[]){B, m->cfg.num_channels, S, S});
    rng_fill_normal(&rng, x, 0.0, 1.0);
    Tensor *hs[2][13], *logits[2];
    for (int fused = 0; fused < 2; fused++) {
        m->params.training = !fused; // training: op by op (no dropout is configured)
        VitOutputs out = {.hidden_states = hs[fused]};
        ck_assert_ptr_nonnull(vit_forward(c, m, x, &out));
        logits[fused] = vit_forward(c, m, x, NULL);
        ck_assert_ptr_nonnull(logits[fused]);
    }
    for (int i = 0; i <= nl; i++) ck_assert_msg(tensor_equal(hs[0][i], hs[1][i]), "hidden state %d differs", i);
    ck_assert(tensor_equal(logits[0], logits[1]));
    // the fused layer is what ran: layer 0 called directly, and its [CLS]-only form
    VitLayer *L = &m->layers[0];
    const NnLayerNorm *const ln[2] = {&L->ln_before, &L->ln_after};
    const NnLinear *const lin[6] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
    Tensor *y = NULL, *cls = NULL;
    ck_assert(vit_layer_fused(c, ln, lin, (const NnLora *const *)L->lora, hs[0][0], m->cfg.num_attention_heads, false, false, &y));
    ck_assert(vit_layer_fused(c, ln, lin, (const NnLora *const *)L->lora, hs[0][0], m->cfg.num_attention_heads, true, false, &cls));
    ck_assert(y && cls && tensor_equal(y, hs[0][1]));
    ck_assert_int_eq(cls->shape[1], 1);
    for (int64_t b = 0; b < B && !(int8 && bgemm_available()); b++) // (--int8's [CLS]-only attention is float32, not bfloat16)
        ck_assert(memcmp((float *)cls->data + b * m->cfg.hidden_size, (float *)y->data + b * y->shape[1] * m->cfg.hidden_size,
                         sizeof(float) * (size_t)m->cfg.hidden_size) == 0);
    // not taken where a gradient is to be recorded, in training, or with LoRA on the output projection
    ck_assert(!vit_layer_fused(c, ln, lin, (const NnLora *const *)L->lora, hs[0][0], m->cfg.num_attention_heads, false, true, &y));
    ctx_free(c);
}

static void fused_layer_shapes(bool int8) {
    VitModel m;
    load(&m, GOLD "/tiny"); // 17 tokens: blocks of rows cross images
    fused_layer_same_bits(&m, 3, int8);
    vit_free(&m);
    VitConfig cf; // DeiT-Tiny's shapes: 197 tokens, 3 heads of 64, MLP 768
    vit_config_init(&cf);
    ck_assert_msg(vit_init_random(&m, &cf, 3, err, sizeof err) == 0, "%s", err);
    vit_config_free(&cf);
    fused_layer_same_bits(&m, 2, int8);
    vit_free(&m);
    vit_config_init(&cf); // 5 tokens of 8 values: the packed keys must still start 64-byte aligned
    cf.hidden_size = 8, cf.num_attention_heads = 2, cf.intermediate_size = 12, cf.num_hidden_layers = 2, cf.image_size = 16,
    cf.patch_size = 8;
    ck_assert_msg(vit_init_random(&m, &cf, 5, err, sizeof err) == 0, "%s", err);
    vit_config_free(&cf);
    fused_layer_same_bits(&m, 1, int8);
    vit_free(&m);
}

START_TEST(test_fused_layer_same_bits) {
    if (!sgemm_fast_available()) {
        printf("(skipped: no sgemm kernel: the fused layer is not used)\n");
        return;
    }
    fused_layer_shapes(false);
}
END_TEST

// the same with --int8's products (bfloat16 attention where the CPU has it, float32 for the
// [CLS]-only layer)
START_TEST(test_fused_layer_int8_same_bits) {
    if (!sgemm_fast_available()) {
        printf("(skipped: no sgemm kernel: the fused layer is not used)\n");
        return;
    }
    fused_layer_shapes(true);
}
END_TEST

START_TEST(test_cls_only_last_layer_is_exact) {
    // without intermediates the last layer works on [CLS] alone: the same logits and gradients
    VitModel m;
    load(&m, GOLD "/tiny");
    ck_assert_msg(adapter_load(&m, GOLD "/tiny_lora", err, sizeof err) == 0, "%s", err);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    Tensor *x = ref(c, &io, "pixel_values"), *y = ref(c, &io, "labels"), *res[2][3];
    for (int k = 0; k < 2; k++) {
        Tensor *hs[3];
        VitOutputs out = {.hidden_states = hs};
        Tensor *logits = vit_forward(c, &m, x, k ? &out : NULL);
        ck_assert_int_eq(ag_backward(c, ag_cross_entropy(c, logits, y)), 0);
        res[k][0] = tensor_clone(c, logits);
        res[k][1] = tensor_clone(c, m.layers[1].lora[VIT_Q]->A->grad);
        res[k][2] = tensor_clone(c, m.classifier.weight->grad);
        for (int i = 0; i < m.params.n; i++) ag_zero_grad(&m.params.p[i].t, 1);
    }
    for (int j = 0; j < 3; j++) ck_assert_msg(max_diff(res[0][j], res[1][j]) < 1e-6, "tensor %d: %g", j, max_diff(res[0][j], res[1][j]));
    ctx_free(c);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

START_TEST(test_pytorch_bin_equals_safetensors) {
    Checkpoint st, bin;
    ck_assert(checkpoint_open_file(&st, GOLD "/tiny/model.safetensors", vit_canonical_name, err, sizeof err) == 0);
    WFile wb;
    ck_assert_msg(torchbin_open(&wb, GOLD "/tiny/pytorch_model.bin", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(wb.n, st.n);
    wfile_close(&wb);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/bin", tmpdir);
    ck_assert_int_eq(system("true"), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/tiny/pytorch_model.bin' '%s/tiny/config.json' '%s/'", dir, GOLD, GOLD, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert(checkpoint_open_dir(&bin, dir, vit_canonical_name, err, sizeof err) == 0);
    ck_assert_str_eq(bin.format, "pytorch_model.bin");
    Ctx *c = ctx_new(1 << 20);
    for (int i = 0; i < st.n; i++) {
        const WEntry *e = checkpoint_find(&bin, st.canon[i]);
        ck_assert_msg(e != NULL, "%s missing from the .bin", st.canon[i]);
        ck_assert(max_diff(wentry_tensor(c, e, false), wentry_tensor(c, st.entries[i], false)) == 0);
    }
    // and the model loads from it with the same logits
    VitModel a, b;
    load(&a, GOLD "/tiny");
    load(&b, dir);
    Tensor *x = tensor_full(c, DT_F32, 4, (int64_t[]){1, 3, 32, 32}, 0.25);
    ck_assert(max_diff(vit_forward(c, &a, x, NULL), vit_forward(c, &b, x, NULL)) == 0);
    vit_free(&a);
    vit_free(&b);
    ctx_free(c);
    checkpoint_close(&st);
    checkpoint_close(&bin);
}
END_TEST

START_TEST(test_deit_tiny_random_sharded) {
    if (!dir_exists(SHARED_GOLDEN "/deit_tiny_random")) return; // optional: ../shared is absent
    VitModel m;
    load(&m, SHARED_GOLDEN "/deit_tiny_random");
    ck_assert_str_eq(m.ck.format, "sharded safetensors (2 shards)");
    WFile io;
    ck_assert(safetensors_open(&io, SHARED_GOLDEN "/deit_tiny_random/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 24);
    ag_no_grad(c, true);
    Tensor *hs[13];
    VitOutputs out = {.hidden_states = hs};
    Tensor *logits = vit_forward(c, &m, ref(c, &io, "pixel_values"), &out);
    ck_assert(max_diff(logits, ref(c, &io, "logits")) < 1e-4);
    ck_assert(max_diff(hs[12], ref(c, &io, "hidden_states.12")) < 1e-4);
    ck_assert_msg(adapter_load(&m, SHARED_GOLDEN "/deit_tiny_random/adapter", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(m.cfg.num_labels, 1001);
    ck_assert_str_eq(m.cfg.id2label[1000], "LABEL_1000");
    ck_assert(max_diff(vit_forward(c, &m, ref(c, &io, "pixel_values"), NULL), ref(c, &io, "lora.logits")) < 1e-4);
    ctx_free(c);
    wfile_close(&io);
    vit_free(&m);
}
END_TEST

START_TEST(test_timm_directory_gives_tiny_logits) {
    // tests/data/timm_tiny: golden/tiny's tensors renamed and fused the timm way (make_timm_tiny.py)
    VitModel t, h;
    load(&t, TEST_DATA "/timm_tiny");
    ck_assert_str_eq(t.ck.format, "timm layout, safetensors");
    ck_assert(t.cfg.layer_norm_eps == 1e-6 && t.cfg.num_attention_heads == 3 && t.cfg.hidden_size == 48 && t.cfg.num_hidden_layers == 2);
    // the HF directory with timm's eps: the same model, so the same logits
    char d[400], cmd[2400];
    snprintf(d, sizeof d, "%s/hf_eps6", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/tiny/model.safetensors %s/ && sed 's/\"layer_norm_eps\": 1e-12/\"layer_norm_eps\": 1e-06/' "
             "%s/tiny/config.json > %s/config.json",
             d, GOLD, d, GOLD, d);
    ck_assert_int_eq(system(cmd), 0);
    load(&h, d);
    WFile io;
    ck_assert(safetensors_open(&io, GOLD "/tiny/io.safetensors", err, sizeof err) == 0);
    Ctx *c = ctx_new(1 << 22);
    ag_no_grad(c, true);
    Tensor *x = ref(c, &io, "pixel_values");
    Tensor *lt = vit_forward(c, &t, x, NULL), *lh = vit_forward(c, &h, x, NULL);
    ck_assert_msg(max_diff(lt, lh) == 0, "timm %g", max_diff(lt, lh));
    ck_assert(max_diff(lt, ref(c, &io, "logits")) < 1e-4); // and golden/tiny's, up to the eps
    // timm's image transform from pretrained_cfg
    ImageProcessor ip;
    ck_assert(image_processor_for_model(&ip, TEST_DATA "/timm_tiny", 32, err, sizeof err) == 0);
    ck_assert_str_eq(ip.kind, "timm");
    ck_assert(ip.shortest_edge == 35 && ip.crop_h == 32 && ip.resample == RESAMPLE_BICUBIC && ip.style == GEOM_TIMM);
    ctx_free(c);
    wfile_close(&io);
    vit_free(&t), vit_free(&h);
}
END_TEST

// ---------------------------------------------------------------- the seed's recipe

START_TEST(test_trainable_parameters_line_like_peft) {
    VitModel m;
    load(&m, GOLD "/tiny");
    vit_freeze_all(&m);
    Rng r = rng_new(1);
    VitLoraSpec s = {.r = 4, .alpha = 8, .dropout = 0.2, .targets = {"query", "value"}, .ntargets = 2, .save_classifier = true};
    ck_assert_msg(vit_attach_lora(&m, &s, &r, err, sizeof err) == 0, "%s", err);
    char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    vit_print_trainable_parameters(&m, f);
    fclose(f);
    ck_assert_str_eq(buf, "trainable params: 2,026 || all params: 50,660 || trainable%: 3.9992\n");
    // peft's init: B = 0 (the adapted model starts equal to the base), A ~ U(-1/sqrt(in), 1/sqrt(in))
    NnLora *lo = m.layers[1].lora[VIT_V];
    for (int64_t i = 0; i < tensor_numel(lo->B); i++) ck_assert(tensor_get_flat(lo->B, i) == 0);
    double amax = 0;
    for (int64_t i = 0; i < tensor_numel(lo->A); i++) amax = fmax(amax, fabs(tensor_get_flat(lo->A, i)));
    ck_assert(amax <= 1 / sqrt(48.0) && amax > 0.8 / sqrt(48.0));
    ck_assert_ptr_null(m.layers[0].lora[VIT_K]);
    vit_free(&m);
}
END_TEST

START_TEST(test_lora_targets_both_generations) {
    VitModel a, b;
    load(&a, GOLD "/tiny");
    load(&b, GOLD "/tiny");
    Rng r1 = rng_new(3), r2 = rng_new(3);
    VitLoraSpec s4 = {.r = 2, .alpha = 4, .targets = {"query", "value"}, .ntargets = 2};
    VitLoraSpec s5 = {.r = 2, .alpha = 4, .targets = {"q_proj", "v_proj"}, .ntargets = 2};
    ck_assert(vit_attach_lora(&a, &s4, &r1, err, sizeof err) == 0);
    ck_assert(vit_attach_lora(&b, &s5, &r2, err, sizeof err) == 0);
    ck_assert_int_eq(a.params.n, b.params.n);
    ck_assert(max_diff(a.layers[1].lora[VIT_V]->A, b.layers[1].lora[VIT_V]->A) == 0);
    VitModel d;
    load(&d, GOLD "/tiny");
    VitLoraSpec sd = {.r = 2, .alpha = 4, .targets = {"dense"}, .ntargets = 1};
    ck_assert(vit_attach_lora(&d, &sd, &r1, err, sizeof err) == 0);
    ck_assert(d.layers[0].lora[VIT_O] && d.layers[0].lora[VIT_FC1] && d.layers[0].lora[VIT_FC2] && !d.layers[0].lora[VIT_Q]);
    VitModel e;
    load(&e, GOLD "/tiny");
    VitLoraSpec se = {.r = 2, .alpha = 4, .targets = {"qkv"}, .ntargets = 1};
    ck_assert(vit_attach_lora(&e, &se, &r1, err, sizeof err) != 0);
    ck_assert_ptr_nonnull(strstr(err, "LoRA target module 'qkv' matches no module"));
    se = (VitLoraSpec){.r = 0, .alpha = 4, .targets = {"query"}, .ntargets = 1};
    ck_assert(vit_attach_lora(&e, &se, &r1, err, sizeof err) != 0);
    ck_assert_ptr_nonnull(strstr(err, "r > 0"));
    vit_free(&a), vit_free(&b), vit_free(&d), vit_free(&e);
}
END_TEST

// which of a layer's six linears carry LoRA, as a bit mask per layer (q k v o fc1 fc2)
static unsigned lora_mask(const VitModel *m, int layer) {
    const VitLayer *L = &m->layers[layer];
    unsigned b = 0;
    for (int k = 0; k < VIT_NPROJ; k++) b |= (L->lora[k] ? 1u : 0u) << k;
    return b;
}

// peft's string target_modules: re.fullmatch against each module name
static int attach_regex(VitModel *m, const char *re) {
    load(m, GOLD "/tiny");
    Rng r = rng_new(1);
    VitLoraSpec s = {.r = 2, .alpha = 4};
    snprintf(s.target_regex, sizeof s.target_regex, "%s", re);
    return vit_attach_lora(m, &s, &r, err, sizeof err);
}

static void expect_regex(const char *re, unsigned mask0, unsigned mask1) {
    VitModel m;
    ck_assert_msg(attach_regex(&m, re) == 0, "%s: %s", re, err);
    ck_assert_msg(lora_mask(&m, 0) == mask0 && lora_mask(&m, 1) == mask1, "%s: layers %#x %#x, want %#x %#x", re, lora_mask(&m, 0),
                  lora_mask(&m, 1), mask0, mask1);
    vit_free(&m);
}

static void expect_regex_refused(const char *re, const char *want) {
    VitModel m;
    ck_assert_int_eq(attach_regex(&m, re), -1);
    ck_assert_msg(strstr(err, want) != NULL, "%s: got '%s', want '%s'", re, err, want);
    ck_assert(!m.has_lora && !lora_mask(&m, 0));
    vit_free(&m);
}

START_TEST(test_lora_target_regex) {
    enum { Q = 1, K = 2, V = 4, O = 8, F1 = 16, F2 = 32 };
    expect_regex(".*\\.(query|value)", Q | V, Q | V);
    expect_regex("vit\\.encoder\\.layer\\.\\d+\\.attention\\.attention\\.(query|value)", Q | V, Q | V);
    expect_regex(".*\\.layers\\.[0-9]+\\.attention\\.[qv]_proj", Q | V, Q | V); // transformers 5 names
    expect_regex(".*dense", O | F1 | F2, O | F1 | F2);
    expect_regex(".*?\\.layers?\\.1\\..*(key|fc2)", 0, K | F2);          // one layer only, either generation; a lazy quantifier
    expect_regex(".*query|.*\\.output\\.dense", Q | O | F2, Q | O | F2); // alternation across the whole pattern
    expect_regex("(.*\\.)?query", Q, Q);
    // full match, not search: a bare name matches no full module name
    expect_regex_refused("query", "matches no module of the model");
    expect_regex_refused(".*", "matches 'vit', which is not a linear layer");
    expect_regex_refused(".*classifier", "matches 'classifier'");
    expect_regex_refused(".*\\.attention", "matches 'vit.encoder.layer.0.attention'");
    // Python's syntax (PCRE2 reads it alike): non-capturing groups, \b, classes with escapes, {,n}
    expect_regex("(?:.*query)", Q, Q);
    expect_regex(".*\\bquery", Q, Q);
    expect_regex(".*\\.(?P<p>[\\w]+_proj|fc[\\d])", Q | K | V | O | F1 | F2, Q | K | V | O | F1 | F2);
    expect_regex(".*\\.val{,2}ue", V, V);
    expect_regex_refused(".*query)(", "target_modules regex '.*query)('");
    expect_regex_refused(".*[qv", "missing terminating ]");
    expect_regex_refused(".*??query", "target_modules regex"); // Python refuses it too
    expect_regex_refused("(*query)", "target_modules regex");
    expect_regex("\\\\*?.*value", V, V); // an escaped backslash, then a lazy star
    expect_regex_refused(".*query{2,1}", "target_modules regex '.*query{2,1}'");
    // bounded whatever the pattern: a pattern that expands too far, or backtracks without end
    expect_regex_refused("((a{1,100}){1,100}){1,100}", "too large");
    expect_regex_refused("(.*){1,200}(.*){1,200}(query|value)", "match limit");
}
END_TEST

// a regex survives saving and loading as peft's string form; convert-adapter cannot respell it
START_TEST(test_regex_adapter_roundtrip) {
    VitModel m;
    load(&m, GOLD "/tiny");
    Rng r = rng_new(5);
    VitLoraSpec s = {.r = 2, .alpha = 4, .save_classifier = true};
    snprintf(s.target_regex, sizeof s.target_regex, "%s", ".*\\.layer\\.0\\..*value");
    ck_assert_msg(vit_attach_lora(&m, &s, &r, err, sizeof err) == 0, "%s", err);
    rng_fill_normal(&r, m.layers[0].lora[VIT_V]->B, 0, 1); // peft's B starts at zero: make the round trip see values
    char d[400], f[500];
    snprintf(d, sizeof d, "%s/rx", tmpdir);
    ck_assert_msg(adapter_save(&m, d, PEFT_V4, "../tiny", err, sizeof err) == 0, "%s", err);
    char *txt = file_read_all(strcat(strcpy(f, d), "/adapter_config.json"), 1 << 20, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(txt);
    ck_assert_msg(strstr(txt, "\"target_modules\":\t\".*\\\\.layer\\\\.0\\\\..*value\"") != NULL, "%s", txt);
    free(txt);
    AdapterConfig ac;
    ck_assert_msg(adapter_config_load(&ac, f, err, sizeof err) == 0, "%s", err);
    ck_assert(ac.spec.ntargets == 0 && !strcmp(ac.spec.target_regex, s.target_regex));
    VitModel b;
    load(&b, GOLD "/tiny");
    ck_assert_msg(adapter_load(&b, d, err, sizeof err) == 0, "%s", err);
    ck_assert(lora_mask(&b, 0) == 4 && lora_mask(&b, 1) == 0);
    ck_assert(max_diff(b.layers[0].lora[VIT_V]->B, m.layers[0].lora[VIT_V]->B) == 0 &&
              max_diff(b.layers[0].lora[VIT_V]->A, m.layers[0].lora[VIT_V]->A) == 0);
    char o[400];
    snprintf(o, sizeof o, "%s/rx5", tmpdir);
    ck_assert_int_eq(adapter_convert(d, o, PEFT_V5, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "target_modules is a regex"));
    ck_assert(!dir_exists(o));
    vit_free(&m), vit_free(&b);
}
END_TEST

START_TEST(test_head_extension_recipe) {
    VitModel m;
    load(&m, GOLD "/tiny");
    Ctx *c = ctx_new(1 << 20);
    Tensor *w0 = tensor_clone(c, m.classifier.weight), *b0 = tensor_clone(c, m.classifier.bias);
    Rng r = rng_new(42);
    ck_assert_int_eq(vit_add_label(&m, "raccoon", &r, err, sizeof err), 10);
    ck_assert_int_eq(vit_add_label(&m, "raccoon", &r, err, sizeof err), 10); // already there
    ck_assert_int_eq(m.cfg.num_labels, 11);
    ck_assert_str_eq(m.cfg.id2label[10], "raccoon");
    ck_assert_int_eq(vit_config_label_id(&m.cfg, "raccoon"), 10);
    ck_assert_int_eq(m.classifier.weight->shape[0], 11);
    ck_assert(!memcmp(m.classifier.weight->data, w0->data, sizeof(float) * 480));
    ck_assert(!memcmp(m.classifier.bias->data, b0->data, sizeof(float) * 10));
    ck_assert(tensor_get_flat(m.classifier.bias, 10) == 0);
    double s2 = 0;
    for (int i = 0; i < 48; i++) s2 += pow(tensor_get_flat(m.classifier.weight, 480 + i), 2);
    double sd = sqrt(s2 / 48);
    ck_assert_msg(sd > 0.012 && sd < 0.03, "new row std %g", sd); // N(0, 0.02)
    ck_assert_ptr_eq(nn_params_get(&m.params, "classifier.weight"), m.classifier.weight);
    char *js = vit_config_to_json(&m.cfg);
    ck_assert_ptr_nonnull(strstr(js, "\"10\":\t\"raccoon\""));
    ck_assert_ptr_nonnull(strstr(js, "\"raccoon\":\t10"));
    free(js);
    ctx_free(c);
    vit_free(&m);
}
END_TEST

// ---------------------------------------------------------------- saving

static void same_tensors(const char *f1, const char *f2) {
    WFile a, b;
    ck_assert_msg(safetensors_open(&a, f1, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(safetensors_open(&b, f2, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        const WEntry *e = wfile_find(&b, a.e[i].name);
        ck_assert_msg(e != NULL, "%s: no tensor %s", f2, a.e[i].name);
        size_t nb = wdtype_size(e->dtype);
        for (int d = 0; d < e->ndim; d++) nb *= (size_t)e->shape[d];
        ck_assert(e->dtype == a.e[i].dtype && !memcmp(e->data, a.e[i].data, nb));
    }
    wfile_close(&a);
    wfile_close(&b);
}

START_TEST(test_save_load_roundtrip_model) {
    VitModel m, r;
    load(&m, GOLD "/tiny");
    Rng rng = rng_new(7);
    ck_assert(vit_add_label(&m, "new class", &rng, err, sizeof err) == 10);
    char d[400], f[500];
    snprintf(d, sizeof d, "%s/saved", tmpdir);
    ck_assert_msg(vit_save_pretrained(&m, d, err, sizeof err) == 0, "%s", err);
    load(&r, d);
    ck_assert_int_eq(r.cfg.num_labels, 11);
    ck_assert_str_eq(r.cfg.id2label[10], "new class");
    for (int i = 0; i < m.params.n; i++) {
        Tensor *t = nn_params_get(&r.params, m.params.p[i].name);
        ck_assert(t && !memcmp(t->data, tensor_contiguous(m.pc, m.params.p[i].t)->data, (size_t)tensor_numel(t) * 4));
    }
    snprintf(f, sizeof f, "%s/model.safetensors", d);
    char d2[400], f2[500];
    snprintf(d2, sizeof d2, "%s/saved2", tmpdir);
    ck_assert(vit_save_pretrained(&r, d2, err, sizeof err) == 0);
    snprintf(f2, sizeof f2, "%s/model.safetensors", d2);
    same_tensors(f, f2);
    ck_assert(!file_exists(strcat(f2, ".tmp"))); // atomic write left nothing behind
    vit_free(&m);
    vit_free(&r);
}
END_TEST

START_TEST(test_save_load_roundtrip_adapter) {
    VitModel m;
    load(&m, GOLD "/tiny");
    ck_assert(adapter_load(&m, GOLD "/tiny_lora", err, sizeof err) == 0);
    char d4[400], d5[400], f[500];
    snprintf(d4, sizeof d4, "%s/v4", tmpdir);
    snprintf(d5, sizeof d5, "%s/v5", tmpdir);
    ck_assert_msg(adapter_save(&m, d4, PEFT_V4, "../tiny", err, sizeof err) == 0, "%s", err);
    ck_assert(adapter_save(&m, d5, PEFT_V5, "../tiny", err, sizeof err) == 0);
    // the same names and bytes as peft wrote in each generation
    same_tensors(GOLD "/tiny_lora/adapter_v4/adapter_model.safetensors", strcat(strcpy(f, d4), "/adapter_model.safetensors"));
    same_tensors(GOLD "/tiny_lora/adapter_model.safetensors", strcat(strcpy(f, d5), "/adapter_model.safetensors"));
    AdapterConfig a4, a5;
    ck_assert(adapter_config_load(&a4, strcat(strcpy(f, d4), "/adapter_config.json"), err, sizeof err) == 0);
    ck_assert(adapter_config_load(&a5, strcat(strcpy(f, d5), "/adapter_config.json"), err, sizeof err) == 0);
    ck_assert_int_eq(a4.gen, PEFT_V4);
    ck_assert_str_eq(a4.spec.targets[0], "query");
    ck_assert_int_eq(a5.gen, PEFT_V5);
    ck_assert_str_eq(a5.spec.targets[1], "v_proj");
    ck_assert(a4.spec.r == 4 && a4.spec.alpha == 8 && a4.spec.save_classifier);
    // and it loads back
    VitModel r;
    load(&r, GOLD "/tiny");
    ck_assert_msg(adapter_load(&r, d4, err, sizeof err) == 0, "%s", err);
    vit_free(&r);
    vit_free(&m);
}
END_TEST

START_TEST(test_convert_adapter_between_generations) {
    char d4[400], d5[400], f[500];
    snprintf(d4, sizeof d4, "%s/c4", tmpdir);
    snprintf(d5, sizeof d5, "%s/c5", tmpdir);
    ck_assert_msg(adapter_convert(GOLD "/tiny_lora", d4, PEFT_V4, err, sizeof err) == 10, "%s", err);
    same_tensors(GOLD "/tiny_lora/adapter_v4/adapter_model.safetensors", strcat(strcpy(f, d4), "/adapter_model.safetensors"));
    ck_assert(adapter_convert(d4, d5, PEFT_V5, err, sizeof err) == 10); // and back
    same_tensors(GOLD "/tiny_lora/adapter_model.safetensors", strcat(strcpy(f, d5), "/adapter_model.safetensors"));
    AdapterConfig a4;
    ck_assert(adapter_config_load(&a4, strcat(strcpy(f, d4), "/adapter_config.json"), err, sizeof err) == 0);
    ck_assert(a4.gen == PEFT_V4 && a4.spec.ntargets == 2 && !strcmp(a4.spec.targets[0], "query") && !strcmp(a4.spec.targets[1], "value"));
    // targets: v4's "dense" is three v5 modules, and back; fc2 alone has no unambiguous v4 name
    char in[3][32] = {"query", "dense"}, out[8][32];
    int n;
    ck_assert_int_eq(adapter_spell_targets(in, 2, PEFT_V5, out, &n, err, sizeof err), 0);
    ck_assert(n == 4 && !strcmp(out[0], "q_proj") && !strcmp(out[1], "o_proj") && !strcmp(out[3], "fc2"));
    ck_assert_int_eq(adapter_spell_targets(out, 4, PEFT_V4, in, &n, err, sizeof err), 0);
    ck_assert(n == 2 && !strcmp(in[1], "dense"));
    char fc2[1][32] = {"fc2"};
    ck_assert_int_eq(adapter_spell_targets(fc2, 1, PEFT_V4, out, &n, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no unambiguous"));
}
END_TEST

// ---------------------------------------------------------------- bad inputs

static void write_st(const char *path, const char *header, size_t data_bytes) {
    size_t hl = strlen(header);
    unsigned char *buf = calloc(8 + hl + data_bytes, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_file(path, buf, 8 + hl + data_bytes);
    free(buf);
}

static void expect_st_error(const char *header, size_t data, const char *want) {
    char p[400];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    write_st(p, header, data);
    WFile f;
    ck_assert_int_eq(safetensors_open(&f, p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) && strstr(err, p), "got '%s', want '%s'", err, want);
}

START_TEST(test_corrupt_safetensors_refused) {
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the data");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "not a JSON object");
    expect_st_error("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'Q7'");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes");
    expect_st_error(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
        12, "overlap");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "bad size");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets must be");
    expect_st_error("[1,2]", 0, "not a JSON object");
    char p[400];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_file(p, big, 16);
    WFile f;
    ck_assert_int_eq(safetensors_open(&f, p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "above the limit"));
    unsigned char past[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    write_file(p, past, 12);
    ck_assert_int_eq(safetensors_open(&f, p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "runs past the end"));
    write_file(p, "abc", 3);
    ck_assert_int_eq(safetensors_open(&f, p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a safetensors file"));
    // truncated copy of a real file
    size_t n;
    char *full = file_read_all(GOLD "/tiny/model.safetensors", 1 << 24, &n, err, sizeof err);
    write_file(p, full, n / 2);
    free(full);
    ck_assert_int_eq(safetensors_open(&f, p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "outside the data"));
}
END_TEST

// the header parser is as strict as the reference reader (serde_json) and reads what it allows
START_TEST(test_safetensors_header_grammar) {
    const char *T = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";
    char h[512];
    snprintf(h, sizeof h, "{\"a\":{%s},}", T);
    expect_st_error(h, 8, "expected"); // trailing comma
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "bad size in shape");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", 8, "data_offsets must be");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8, "bad size in shape");
    expect_st_error("{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unpaired UTF-16 surrogate");
    expect_st_error("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "NUL character");
    expect_st_error("{\"a\tb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "control character");
    expect_st_error("{\"\xc3\x28\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not UTF-8");
    expect_st_error("{\"__metadata__\":{\"step\":3}}", 0, "a string expected");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "appears twice");
    snprintf(h, sizeof h, "{\"a\":{%s}} x", T);
    expect_st_error(h, 8, "text after the object");
    // deep nesting in an unknown field is refused, not recursed into without bound
    char deep[400] = "{\"a\":{\"x\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    expect_st_error(deep, 8, "nesting deeper");
    // many keys: the repeat is found by sorting, not by comparing every pair (300,000 keys took
    // minutes that way; the suite's timeout catches a return to it)
    enum { NKEYS = 300000 };
    char *big = malloc((size_t)NKEYS * 24 + 64);
    size_t at = (size_t)sprintf(big, "{\"__metadata__\":{");
    for (int i = 0; i < NKEYS; i++) at += (size_t)sprintf(big + at, "\"k%d\":\"v\",", i);
    sprintf(big + at, "\"k7\":\"v\"}}");
    expect_st_error(big, 0, "key 'k7' appears twice");
    free(big);
    // what it accepts: escapes decoded (é, a surrogate pair), unknown fields skipped, metadata kept
    const char *ok =
        "{\"__metadata__\":{\"format\":\"pt\",\"k\\\"q\":\"v\\n\"},"
        "\"caf\\u00e9\\ud83d\\ude00\":{\"dtype\":\"F32\",\"extra\":[{\"n\":-1.5e3},true,null],\"shape\":[2],\"data_offsets\":[0,8]}} ";
    char p[400];
    snprintf(p, sizeof p, "%s/ok.safetensors", tmpdir);
    write_st(p, ok, 8);
    WFile f;
    ck_assert_msg(safetensors_open(&f, p, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(f.n, 1);
    ck_assert_str_eq(f.e[0].name, "caf\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert_str_eq(wfile_metadata(&f, "format"), "pt");
    ck_assert_str_eq(wfile_metadata(&f, "k\"q"), "v\n");
    ck_assert_ptr_null(wfile_metadata(&f, "step"));
    // written back and read again: the same names, metadata and values
    Ctx *c = ctx_new(1 << 16);
    Tensor *t = wentry_tensor(c, &f.e[0], false);
    char q[400];
    snprintf(q, sizeof q, "%s/again.safetensors", tmpdir);
    StItem it = {f.e[0].name, t};
    ck_assert_msg(safetensors_save(q, &it, 1, (const char *const *)f.meta, err, sizeof err) == 0, "%s", err);
    WFile g;
    ck_assert_msg(safetensors_open(&g, q, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(g.e[0].name, f.e[0].name);
    ck_assert_str_eq(wfile_metadata(&g, "k\"q"), "v\n");
    ck_assert_int_eq(g.e[0].ndim, 1);
    ck_assert_int_eq(g.e[0].shape[0], 2);
    // a name twice, or __metadata__ as a tensor name, is refused when writing
    StItem two[2] = {{"w", t}, {"w", t}};
    ck_assert_int_eq(safetensors_save(q, two, 2, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "given twice"));
    StItem meta = {"__metadata__", t};
    ck_assert_int_eq(safetensors_save(q, &meta, 1, NULL, err, sizeof err), -1);
    wfile_close(&g), wfile_close(&f);
    ctx_free(c);
}
END_TEST

// writes a safetensors file of HEADER followed by N zero bytes of data; safetensors_open's result
static int open_raw_safetensors(const char *h, size_t n, WFile *f) {
    char p[400];
    snprintf(p, sizeof p, "%s/raw.safetensors", tmpdir);
    size_t hl = strlen(h);
    unsigned char buf[1024] = {0};
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h, hl);
    write_file(p, buf, 8 + hl + n);
    return safetensors_open(f, p, err, sizeof err);
}

START_TEST(test_safetensors_empty_spans) {
    // an empty tensor at [0, 0] beside one that starts at 0 overlaps nothing (the reference reader
    // takes it); an empty one between two that do overlap hides nothing
    WFile f;
    ck_assert_msg(open_raw_safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                       8, &f) == 0,
                  "%s", err);
    ck_assert_int_eq(f.n, 2);
    wfile_close(&f);
    ck_assert_int_eq(open_raw_safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                                          "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                                          16, &f),
                     -1);
    ck_assert_msg(strstr(err, "overlap") != NULL, "%s", err);
}
END_TEST

START_TEST(test_half_precision_converts) {
    char p[400];
    snprintf(p, sizeof p, "%s/half.safetensors", tmpdir);
    const char *h =
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
    size_t hl = strlen(h);
    unsigned char buf[512] = {0};
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h, hl);
    uint16_t vals[] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x3f80, 0xc0a0}; // 1, -2, 2^-24, inf | 1, -5
    memcpy(buf + 8 + hl, vals, sizeof vals);
    write_file(p, buf, 8 + hl + 12);
    WFile f;
    ck_assert_msg(safetensors_open(&f, p, err, sizeof err) == 0, "%s", err);
    Ctx *c = ctx_new(1 << 16);
    Tensor *t = wentry_tensor(c, wfile_find(&f, "h"), true), *b = wentry_tensor(c, wfile_find(&f, "b"), true);
    ck_assert(t->dtype == DT_F32);
    ck_assert(tensor_get_flat(t, 0) == 1 && tensor_get_flat(t, 1) == -2 && tensor_get_flat(t, 2) == ldexp(1, -24) &&
              isinf(tensor_get_flat(t, 3)));
    ck_assert(tensor_get_flat(b, 0) == 1 && tensor_get_flat(b, 1) == -5);
    ctx_free(c);
    wfile_close(&f);
}
END_TEST

static uint32_t zip_crc_flip;  // nonzero: the directory's CRC-32s are wrong by these bits
static bool zip_deflate_first; // the first entry deflated (method 8), as some zip writers store data.pkl

// raw deflate of DATA into a malloc'd buffer
static unsigned char *deflate_raw(const unsigned char *data, size_t n, size_t *out_n) {
    z_stream zs = {0};
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n);
    unsigned char *o = malloc(cap);
    zs.next_in = (unsigned char *)data, zs.avail_in = (uInt)n, zs.next_out = o, zs.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_n = zs.total_out;
    deflateEnd(&zs);
    return o;
}

// a stored zip holding NAME -> DATA entries (enough to fake torch.save archives)
static void write_zip(const char *path, const char **names, const unsigned char **datas, const size_t *lens, int n) {
    FILE *f = fopen(path, "wb");
    long offs[16];
    unsigned char *packed[16];
    size_t plen[16];
    for (int i = 0; i < n; i++) {
        packed[i] = i == 0 && zip_deflate_first ? deflate_raw(datas[i], lens[i], &plen[i]) : NULL;
        if (!packed[i]) plen[i] = lens[i];
    }
    for (int i = 0; i < n; i++) {
        offs[i] = ftell(f);
        unsigned char lh[30] = {0x50, 0x4b, 3, 4, 20};
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]), L = (uint32_t)lens[i], C = (uint32_t)plen[i];
        uint16_t nl = (uint16_t)strlen(names[i]), method = packed[i] ? 8 : 0;
        memcpy(lh + 8, &method, 2), memcpy(lh + 14, &crc, 4), memcpy(lh + 18, &C, 4), memcpy(lh + 22, &L, 4), memcpy(lh + 26, &nl, 2);
        fwrite(lh, 1, 30, f), fwrite(names[i], 1, nl, f), fwrite(packed[i] ? packed[i] : datas[i], 1, plen[i], f);
    }
    long cd = ftell(f);
    for (int i = 0; i < n; i++) {
        unsigned char ch[46] = {0x50, 0x4b, 1, 2, 20, 0, 20};
        uint32_t L = (uint32_t)lens[i], C = (uint32_t)plen[i], off = (uint32_t)offs[i];
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)lens[i]) ^ zip_crc_flip;
        uint16_t nl = (uint16_t)strlen(names[i]), method = packed[i] ? 8 : 0;
        memcpy(ch + 10, &method, 2), memcpy(ch + 16, &crc, 4), memcpy(ch + 20, &C, 4), memcpy(ch + 24, &L, 4), memcpy(ch + 28, &nl, 2);
        memcpy(ch + 42, &off, 4);
        fwrite(ch, 1, 46, f), fwrite(names[i], 1, nl, f);
        free(packed[i]);
    }
    long end = ftell(f);
    unsigned char eo[22] = {0x50, 0x4b, 5, 6};
    uint16_t cnt = (uint16_t)n;
    uint32_t sz = (uint32_t)(end - cd), o = (uint32_t)cd;
    memcpy(eo + 8, &cnt, 2), memcpy(eo + 10, &cnt, 2), memcpy(eo + 12, &sz, 4), memcpy(eo + 16, &o, 4);
    fwrite(eo, 1, 22, f);
    fclose(f);
}

static void expect_bin_error(const unsigned char *pkl, size_t n, const char *want) {
    char p[400];
    snprintf(p, sizeof p, "%s/pytorch_model.bin", tmpdir);
    const char *names[] = {"archive/data.pkl", "archive/data/0"};
    const unsigned char *datas[] = {pkl, (const unsigned char *)"\0\0\0\0\0\0\0\0"};
    size_t lens[] = {n, 8};
    write_zip(p, names, datas, lens, 2);
    WFile f;
    ck_assert_int_eq(torchbin_open(&f, p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "got '%s', want '%s'", err, want);
}

START_TEST(test_pickle_never_executes) {
    static const unsigned char sys[] = "\x80\x02"
                                       "cos\nsystem\nq\x00X\x05\x00\x00\x00touch\x85R.";
    expect_bin_error(sys, sizeof sys - 1, "refusing foreign global 'os.system'");
    static const unsigned char bi[] = "\x80\x02"
                                      "cbuiltins\neval\n.";
    expect_bin_error(bi, sizeof bi - 1, "refusing foreign global 'builtins.eval'");
    static const unsigned char inst[] = "\x80\x02(i__main__\nX\n.";
    expect_bin_error(inst, sizeof inst - 1, "opcode 0x69");
    static const unsigned char trunc[] = "\x80\x02X\xff\x00\x00\x00ab";
    expect_bin_error(trunc, sizeof trunc - 1, "truncated");
    static const unsigned char notdict[] = "\x80\x02K\x05.";
    expect_bin_error(notdict, sizeof notdict - 1, "not a state dict");
    // a tensor that reaches past its storage: 4 floats from a storage of 2
    static const unsigned char over[] = "\x80\x02}(X\x01\x00\x00\x00w"
                                        "ctorch._utils\n_rebuild_tensor_v2\n"
                                        "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
                                        "0X\x03\x00\x00\x00"
                                        "cpuK\x02tQK\x00K\x04\x85K\x01\x85\x89}tRu.";
    expect_bin_error(over, sizeof over - 1, "reaches element 3 of a storage of 2");
    char p[400];
    snprintf(p, sizeof p, "%s/pytorch_model.bin", tmpdir);
    static const char notzip[] = "PK\x03\x04 not really a zip at all, just bytes";
    write_file(p, notzip, sizeof notzip - 1);
    WFile f;
    ck_assert_int_eq(torchbin_open(&f, p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a zip archive"));
}
END_TEST

START_TEST(test_pickle_damage_and_bombs_refused) {
    // a flipped byte is caught by the zip directory's CRC-32 (it loaded silently once)
    static const unsigned char ok[] = "\x80\x02}.";
    zip_crc_flip = 0x10;
    expect_bin_error(ok, sizeof ok - 1, "fails its CRC-32 check");
    zip_crc_flip = 0;
    // a pickle bomb: a deflated data.pkl of empty tuples (a few KB of file for a million values) is
    // refused once the values made outnumber what the file's size allows, before memory grows
    size_t n = 1 << 20;
    unsigned char *b = malloc(n + 16);
    size_t k = 0;
    b[k++] = 0x80, b[k++] = 2, b[k++] = ']', b[k++] = 'q', b[k++] = 0;
    while (k + 4 < n) b[k++] = '(', b[k++] = ')', b[k++] = ')', b[k++] = 't';
    b[k++] = '.';
    zip_deflate_first = true;
    expect_bin_error(b, k, "builds more than");
    zip_deflate_first = false;
    // a memo index far beyond the values made so far
    static const unsigned char memo[] = "\x80\x02]r\x00\x00\x30\x00.";
    expect_bin_error(memo, sizeof memo - 1, "memo index");
    free(b);
}
END_TEST

START_TEST(test_model_dir_mismatches_refused) {
    char d[400], cmd[1500], p[500];
    snprintf(d, sizeof d, "%s/m", tmpdir);
    VitModel m;
    // a config that needs 3 layers: tensors for layer 2 are missing
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/tiny/model.safetensors %s/ && sed 's/\"num_hidden_layers\": 2/\"num_hidden_layers\": 3/' "
             "%s/tiny/config.json > %s/config.json",
             d, GOLD, d, GOLD, d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "lacks tensor 'vit.encoder.layer.2.attention.attention.query.weight'"));
    // a wider MLP than the weights
    snprintf(cmd, sizeof cmd, "sed 's/\"intermediate_size\": 96/\"intermediate_size\": 128/' %s/tiny/config.json > %s/config.json", GOLD,
             d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(
        strstr(err, "tensor 'vit.encoder.layer.0.intermediate.dense.weight' has shape [96, 48] but config.json needs [128, 48]"));
    // hidden size not divisible by the heads
    snprintf(cmd, sizeof cmd, "sed 's/\"num_attention_heads\": 3/\"num_attention_heads\": 5/' %s/tiny/config.json > %s/config.json", GOLD,
             d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "hidden_size 48 is not divisible by num_attention_heads 5"));
    // malformed JSON, negative size, num_labels disagreeing with id2label
    write_file(path_join(p, sizeof p, d, "config.json"), "{\"hidden_size\": 48,", 19);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "config.json: not a JSON object"));
    write_file(p, "{\"hidden_size\": -48}", 20);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "\"hidden_size\" must be an integer"));
    write_file(p, "{\"num_labels\": 3, \"id2label\": {\"0\": \"a\"}}", 41);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "num_labels 3 disagrees with the 1 entries of id2label"));
    // a sharded index naming a shard that is not there
    snprintf(cmd, sizeof cmd,
             "rm %s/model.safetensors && cp %s/tiny/config.json %s/ && printf '{\"weight_map\": {\"classifier.bias\": "
             "\"model-00001-of-00002.safetensors\"}}' > %s/model.safetensors.index.json",
             d, GOLD, d, d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "names shard 'model-00001-of-00002.safetensors', which is missing"));
    // no weights at all
    snprintf(cmd, sizeof cmd, "rm %s/model.safetensors.index.json", d);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(vit_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no weights"));
}
END_TEST

START_TEST(test_adapter_mismatches_refused) {
    char d[400], cmd[1500], p[500];
    snprintf(d, sizeof d, "%s/a", tmpdir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/tiny_lora/adapter_model.safetensors %s/ && sed 's/\"r\": 4/\"r\": 0/' %s/tiny_lora/adapter_config.json "
             "> %s/adapter_config.json",
             d, GOLD, d, GOLD, d);
    ck_assert_int_eq(system(cmd), 0);
    VitModel m;
    load(&m, GOLD "/tiny");
    ck_assert_int_eq(adapter_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "adapter_config.json: \"r\" must be a positive integer"));
    vit_free(&m);
    snprintf(cmd, sizeof cmd, "sed 's/\"r\": 4/\"r\": 8/' %s/tiny_lora/adapter_config.json > %s/adapter_config.json", GOLD, d);
    ck_assert_int_eq(system(cmd), 0);
    load(&m, GOLD "/tiny");
    ck_assert_int_eq(adapter_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "does not have the shape [8, 48] the model needs"));
    vit_free(&m);
    snprintf(cmd, sizeof cmd, "sed 's/\"v_proj\"/\"k_proj\"/' %s/tiny_lora/adapter_config.json > %s/adapter_config.json", GOLD, d);
    ck_assert_int_eq(system(cmd), 0);
    load(&m, GOLD "/tiny");
    ck_assert_int_eq(adapter_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "matches no LoRA module"));
    vit_free(&m);
    write_file(path_join(p, sizeof p, d, "adapter_config.json"), "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"query|value\"}", 58);
    load(&m, GOLD "/tiny");
    ck_assert_int_eq(adapter_load(&m, d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "target_modules regex 'query|value' matches no module")); // a full match, as peft's
    vit_free(&m);
}
END_TEST

// the ViT's patch embedding (its private fast path) is ag_conv2d with stride = kernel, laid out as
// tokens: the same values, a float64 gradient check, and a misfit named
static Tensor *fn_patch_embed(Ctx *c, Tensor **in, void *ud) {
    (void)ud;
    return vit_patch_embed(c, in[0], in[1], in[2]);
}

START_TEST(test_patch_embed_is_a_strided_conv) {
    Ctx *c = ctx_new(1 << 20);
    Rng r = rng_new(5);
    Tensor *x = tensor_new(c, DT_F64, 4, (int64_t[]){2, 2, 4, 6}), *w = tensor_new(c, DT_F64, 4, (int64_t[]){3, 2, 2, 2});
    Tensor *b = tensor_new(c, DT_F64, 1, (int64_t[]){3});
    rng_fill_uniform(&r, x, -1, 1), rng_fill_uniform(&r, w, -1, 1), rng_fill_uniform(&r, b, -1, 1);
    Tensor *tok = vit_patch_embed(c, x, w, b);                          // [B, N, D]
    Tensor *conv = ag_conv2d(c, x, w, b, (int[]){2, 2}, NULL, NULL, 1); // [B, D, 2, 3]
    Tensor *want = ag_contiguous(c, ag_transpose(c, ag_reshape(c, conv, 3, (int64_t[]){2, 3, 6}), 1, 2));
    ck_assert_int_eq(tok->shape[1], 6);
    for (int64_t i = 0; i < tensor_numel(want); i++) ck_assert_double_eq_tol(tensor_get_flat(tok, i), tensor_get_flat(want, i), 1e-12);
    char msg[512];
    ag_set_requires_grad(x, true), ag_set_requires_grad(w, true), ag_set_requires_grad(b, true);
    ck_assert_msg(ag_gradcheck(fn_patch_embed, NULL, (Tensor *[]){x, w, b}, 3, NULL, msg, sizeof msg), "%s", msg);
    ck_assert_ptr_null(
        vit_patch_embed(c, tensor_zeros(c, DT_F32, 4, (int64_t[]){1, 3, 5, 4}), tensor_zeros(c, DT_F32, 4, (int64_t[]){2, 3, 2, 2}), NULL));
    ck_assert_ptr_nonnull(strstr(ctx_error(c), "patch_embed: input [1, 3, 5, 4] and weight [2, 3, 2, 2]"));
    ctx_free(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("models");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_patch_embed_is_a_strided_conv"), test_patch_embed_is_a_strided_conv);
    tcase_add_test(check_case(s, "test_tiny_forward_backward_parity"), test_tiny_forward_backward_parity);
    tcase_add_test(check_case(s, "test_safetensors_header_grammar"), test_safetensors_header_grammar);
    tcase_add_test(check_case(s, "test_tiny_lora_both_spellings"), test_tiny_lora_both_spellings);
    tcase_add_test(check_case(s, "test_merged_equals_adapter"), test_merged_equals_adapter);
    tcase_add_test(check_case(s, "test_fused_layer_same_bits"), test_fused_layer_same_bits);
    tcase_add_test(check_case(s, "test_fused_layer_int8_same_bits"), test_fused_layer_int8_same_bits);
    tcase_add_test(check_case(s, "test_int8_close_to_float32"), test_int8_close_to_float32);
    tcase_add_test(check_case(s, "test_int8_attention_bf16"), test_int8_attention_bf16);
    tcase_add_test(check_case(s, "test_cls_only_last_layer_is_exact"), test_cls_only_last_layer_is_exact);
    tcase_add_test(check_case(s, "test_pytorch_bin_equals_safetensors"), test_pytorch_bin_equals_safetensors);
    tcase_add_test(check_case(s, "test_deit_tiny_random_sharded"), test_deit_tiny_random_sharded);
    tcase_add_test(check_case(s, "test_timm_directory_gives_tiny_logits"), test_timm_directory_gives_tiny_logits);
    tcase_add_test(check_case(s, "test_trainable_parameters_line_like_peft"), test_trainable_parameters_line_like_peft);
    tcase_add_test(check_case(s, "test_lora_targets_both_generations"), test_lora_targets_both_generations);
    tcase_add_test(check_case(s, "test_lora_target_regex"), test_lora_target_regex);
    tcase_add_test(check_case(s, "test_regex_adapter_roundtrip"), test_regex_adapter_roundtrip);
    tcase_add_test(check_case(s, "test_head_extension_recipe"), test_head_extension_recipe);
    tcase_add_test(check_case(s, "test_save_load_roundtrip_model"), test_save_load_roundtrip_model);
    tcase_add_test(check_case(s, "test_save_load_roundtrip_adapter"), test_save_load_roundtrip_adapter);
    tcase_add_test(check_case(s, "test_convert_adapter_between_generations"), test_convert_adapter_between_generations);
    tcase_add_test(check_case(s, "test_corrupt_safetensors_refused"), test_corrupt_safetensors_refused);
    tcase_add_test(check_case(s, "test_half_precision_converts"), test_half_precision_converts);
    tcase_add_test(check_case(s, "test_pickle_never_executes"), test_pickle_never_executes);
    tcase_add_test(check_case(s, "test_safetensors_empty_spans"), test_safetensors_empty_spans);
    tcase_add_test(check_case(s, "test_pickle_damage_and_bombs_refused"), test_pickle_damage_and_bombs_refused);
    tcase_add_test(check_case(s, "test_model_dir_mismatches_refused"), test_model_dir_mismatches_refused);
    tcase_add_test(check_case(s, "test_adapter_mismatches_refused"), test_adapter_mismatches_refused);
    return check_run(s);
}
