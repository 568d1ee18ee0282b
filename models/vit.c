// vit.c: the Vision Transformer: structure, loading, forward, head extension, LoRA, saving.
#include "vit.h"
#include "vit_targets.h"

#include "vit_ops.h"

#include "../base/fileio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---- building: one function walks every parameter in HF's order; `make` supplies each tensor ----

typedef Tensor *(*MakeFn)(void *ud, const char *name, int ndim, const int64_t *shape);

static bool add(VitModel *m, MakeFn make, void *ud, Tensor **slot, const char *name, int ndim, const int64_t *shape) {
    Tensor *t = make(ud, name, ndim, shape);
    if (!t) return false;
    *slot = t;
    nn_params_add(&m->params, name, t);
    return true;
}

static bool add_linear(VitModel *m, MakeFn make, void *ud, NnLinear *l, const char *prefix, int64_t out, int64_t in, bool bias) {
    char n[256];
    snprintf(n, sizeof n, "%s.weight", prefix);
    if (!add(m, make, ud, &l->weight, n, 2, (int64_t[]){out, in})) return false;
    if (!bias) return true;
    snprintf(n, sizeof n, "%s.bias", prefix);
    return add(m, make, ud, &l->bias, n, 1, &out);
}

static bool add_norm(VitModel *m, MakeFn make, void *ud, NnLayerNorm *l, const char *prefix, int64_t C) {
    char n[256];
    l->eps = m->cfg.layer_norm_eps;
    snprintf(n, sizeof n, "%s.weight", prefix);
    if (!add(m, make, ud, &l->weight, n, 1, &C)) return false;
    snprintf(n, sizeof n, "%s.bias", prefix);
    return add(m, make, ud, &l->bias, n, 1, &C);
}

static bool build(VitModel *m, MakeFn make, void *ud) {
    const VitConfig *c = &m->cfg;
    int64_t D = c->hidden_size, F = c->intermediate_size, p = c->patch_size, C = c->num_channels;
    int64_t N = (int64_t)(c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    m->layers = ctx_alloc(m->pc, sizeof *m->layers * (size_t)c->num_hidden_layers);
    if (!add(m, make, ud, &m->cls_token, "vit.embeddings.cls_token", 3, (int64_t[]){1, 1, D})) return false;
    if (!add(m, make, ud, &m->pos_emb, "vit.embeddings.position_embeddings", 3, (int64_t[]){1, N + 1, D})) return false;
    char n[256];
    if (!add(m, make, ud, &m->patch.weight, "vit.embeddings.patch_embeddings.projection.weight", 4, (int64_t[]){D, C, p, p}) ||
        !add(m, make, ud, &m->patch.bias, "vit.embeddings.patch_embeddings.projection.bias", 1, &D))
        return false;
    for (int i = 0; i < c->num_hidden_layers; i++) {
        VitLayer *L = &m->layers[i];
        char pre[128];
        snprintf(pre, sizeof pre, "vit.encoder.layer.%d", i);
#define SUB(s) (snprintf(n, sizeof n, "%s.%s", pre, s), n)
        if (!add_linear(m, make, ud, &L->q, SUB("attention.attention.query"), D, D, c->qkv_bias) ||
            !add_linear(m, make, ud, &L->k, SUB("attention.attention.key"), D, D, c->qkv_bias) ||
            !add_linear(m, make, ud, &L->v, SUB("attention.attention.value"), D, D, c->qkv_bias) ||
            !add_linear(m, make, ud, &L->o, SUB("attention.output.dense"), D, D, true) ||
            !add_linear(m, make, ud, &L->fc1, SUB("intermediate.dense"), F, D, true) ||
            !add_linear(m, make, ud, &L->fc2, SUB("output.dense"), D, F, true) ||
            !add_norm(m, make, ud, &L->ln_before, SUB("layernorm_before"), D) ||
            !add_norm(m, make, ud, &L->ln_after, SUB("layernorm_after"), D))
            return false;
#undef SUB
    }
    return add_norm(m, make, ud, &m->ln_f, "vit.layernorm", D) &&
           add_linear(m, make, ud, &m->classifier, "classifier", c->num_labels, D, true);
}

// ---- from a checkpoint ----

typedef struct {
    VitModel *m;
    const char *dir;
    char *err;
    size_t errn;
} LoadCtx;

// query/key/value of a timm checkpoint: rows of the fused attn.qkv (an entry that views a third)
static const WEntry *qkv_part(LoadCtx *lc, const char *name, WEntry *tmp) {
    static const char *const PART[] = {".attention.attention.query.", ".attention.attention.key.", ".attention.attention.value."};
    for (int k = 0; k < 3; k++) {
        const char *at = strstr(name, PART[k]);
        if (!at) continue;
        char fused[512];
        snprintf(fused, sizeof fused, "%.*s.attention.attention.qkv.%s", (int)(at - name), name, at + strlen(PART[k]));
        const WEntry *e = checkpoint_find(&lc->m->ck, fused);
        if (!e || e->shape[0] % 3 || (e->ndim != 1 && e->ndim != 2)) return NULL;
        *tmp = *e;
        tmp->shape[0] = e->shape[0] / 3;
        tmp->data = e->data + (size_t)(k * tmp->shape[0] * e->strides[0]) * wdtype_size(e->dtype);
        return tmp;
    }
    return NULL;
}

static Tensor *make_from_ckpt(void *ud, const char *name, int ndim, const int64_t *shape) {
    LoadCtx *lc = ud;
    WEntry part;
    const WEntry *e = checkpoint_find(&lc->m->ck, name);
    if (!e) e = qkv_part(lc, name, &part);
    if (!e) {
        snprintf(lc->err, lc->errn, "%s: the checkpoint lacks tensor '%s' that config.json needs", lc->dir, name);
        return NULL;
    }
    bool ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        char want[128] = "[", got[128] = "[";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %lld" : "%lld", (long long)shape[i]);
        for (int i = 0; i < e->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), i ? ", %lld" : "%lld", (long long)e->shape[i]);
        snprintf(lc->err, lc->errn, "%s: tensor '%s' has shape %s] but config.json needs %s]", lc->dir, name, got, want);
        return NULL;
    }
    if (e->dtype != WD_F32 && e->dtype != WD_F16 && e->dtype != WD_BF16 && e->dtype != WD_F64) {
        snprintf(lc->err, lc->errn, "%s: tensor '%s' has dtype %s, not a float type", lc->dir, name, wdtype_name(e->dtype));
        return NULL;
    }
    Tensor *t = wentry_tensor(lc->m->pc, e, true);
    if (t && !tensor_all_finite(t)) {
        snprintf(lc->err, lc->errn, "%s: tensor '%s' holds NaN or Inf values", lc->dir, name);
        return NULL;
    }
    return t;
}

int vit_load(VitModel *m, const char *dir, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    char p[FILE_PATH_BUF];
    if (!dir_exists(dir)) {
        return errorf(err, errn, "%s: not a directory", dir);
    }
    char *json = file_read_all(path_join(p, sizeof p, dir, "config.json"), 64u << 20, NULL, err, errn);
    if (!json) return -1;
    bool timm = vit_config_is_timm(json);
    if (!timm && vit_config_parse(&m->cfg, json, p, err, errn) != 0) {
        free(json);
        return -1;
    }
    if (checkpoint_open_dir(&m->ck, dir, vit_canonical_name, err, errn) != 0) {
        free(json);
        vit_config_free(&m->cfg);
        return -1;
    }
    if (timm && vit_config_from_timm(&m->cfg, json, &m->ck, p, err, errn) != 0) { // sizes from the weights
        free(json);
        checkpoint_close(&m->ck);
        return -1;
    }
    if (timm) {
        char f[sizeof m->ck.format];
        snprintf(f, sizeof f, "%s", m->ck.format);
        snprintf(m->ck.format, sizeof m->ck.format, "timm layout, %.30s", f);
    }
    free(json);
    m->pc = ctx_new(1 << 20);
    m->params.own_rng = rng_new(0), m->params.rng = &m->params.own_rng; // eval mode (params.training false)
    LoadCtx lc = {m, dir, err, errn};
    if (!build(m, make_from_ckpt, &lc)) {
        vit_free(m);
        return -1;
    }
    return 0;
}

// ---- random initialisation (HF's _init_weights) ----

typedef struct {
    VitModel *m;
    Rng *rng;
    double std;
} InitCtx;

static Tensor *make_random(void *ud, const char *name, int ndim, const int64_t *shape) {
    InitCtx *ic = ud;
    Tensor *t = tensor_zeros(ic->m->pc, DT_F32, ndim, shape);
    size_t L = strlen(name);
    bool is_bias = L > 5 && !strcmp(name + L - 5, ".bias");
    bool is_norm = strstr(name, "layernorm") != NULL;
    if (is_norm && !is_bias)
        tensor_fill(t, 1.0);
    else if (!is_bias)
        rng_fill_normal(ic->rng, t, 0.0, ic->std);
    return t;
}

int vit_init_random(VitModel *m, const VitConfig *cfg, uint64_t seed, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    vit_config_copy(&m->cfg, cfg);
    m->pc = ctx_new(1 << 20);
    m->params.own_rng = rng_new(seed ^ 0x5eedull), m->params.rng = &m->params.own_rng; // eval mode
    Rng r = rng_new(seed);
    InitCtx ic = {m, &r, 0.02};
    if (!build(m, make_random, &ic)) {
        snprintf(err, errn, "model initialisation failed");
        vit_free(m);
        return -1;
    }
    return 0;
}

void vit_free(VitModel *m) {
    nn_params_free(&m->params);
    checkpoint_close(&m->ck);
    vit_config_free(&m->cfg);
    ctx_free(m->pc);
    memset(m, 0, sizeof *m);
}

// ---- forward ----

// Attention computed op by op, its probabilities multiplied by gate (ones), so that a backward
// leaves attention * gradient in gate->grad: the explanations' path (the fused op keeps neither).
static Tensor *gated_attention_residual(Ctx *c, VitModel *m, VitLayer *L, Tensor *y, Tensor *res, Tensor *gate, Tensor **probs) {
    int64_t B = y->shape[0], T = y->shape[1], D = y->shape[2];
    int NH = m->cfg.num_attention_heads;
    int64_t hd = D / NH;
    const int split[] = {0, 2, 1, 3};
    Tensor *hq[3];
    const NnLinear *proj[3] = {&L->q, &L->k, &L->v};
    for (int i = 0; i < 3; i++)
        hq[i] =
            ag_permute(c, ag_reshape(c, vit_proj(c, proj[i], L->lora[i], y, m->params.rng, false), 4, (int64_t[]){B, T, NH, hd}), split);
    Tensor *scores = ag_mul_scalar(c, ag_matmul(c, hq[0], ag_transpose(c, hq[1], 2, 3)), 1.0 / sqrt((double)hd));
    Tensor *a = ag_softmax(c, scores);
    *probs = a;
    Tensor *ctx = ag_permute(c, ag_matmul(c, ag_mul(c, a, gate), hq[2]), split);
    return vit_proj_residual(c, &L->o, L->lora[VIT_O], ag_reshape(c, ctx, 3, (int64_t[]){B, T, D}), res, m->params.rng, false);
}

Tensor *vit_forward(Ctx *c, VitModel *m, Tensor *x, VitOutputs *out) {
    const VitConfig *cf = &m->cfg;
    char s[SHAPE_STR_BUF];
    if (!x) return NULL;
    if (x->ndim != 4 || x->shape[1] != cf->num_channels || x->shape[2] != cf->image_size || x->shape[3] != cf->image_size) {
        ctx_fail(c, "vit: pixel_values %s do not match the model's [B, %d, %d, %d]", shape_str(x, s, sizeof s), cf->num_channels,
                 cf->image_size, cf->image_size);
        return NULL;
    }
    int64_t B = x->shape[0], D = cf->hidden_size;
    bool tr = m->params.training;
    // embeddings: patches [B, N, D], cls in front, plus positions
    Tensor *patches = vit_patch_embed(c, x, m->patch.weight, m->patch.bias);
    Tensor *cls = ag_expand(c, m->cls_token, 3, (int64_t[]){B, 1, D});
    Tensor *h = ag_add(c, ag_concat(c, (Tensor *[]){cls, patches}, 2, 1), m->pos_emb);
    if (out && out->hidden_states) out->hidden_states[0] = h;
    // The logits read only the [CLS] token after the last layer: unless intermediates are asked for,
    // the last layer computes keys and values for all tokens, and everything else for [CLS] alone.
    bool prune = !(out && (out->hidden_states || out->attentions || out->attention_gates));
    for (int i = 0; i < cf->num_hidden_layers; i++) {
        VitLayer *L = &m->layers[i];
        Tensor *probs = NULL, *fused;
        bool last = prune && i == cf->num_hidden_layers - 1;
        if (!(out && (out->attentions || out->attention_gates)) && // inference: the layer in one parallel region
            vit_layer_fused(c, (const NnLayerNorm *const[]){&L->ln_before, &L->ln_after},
                            (const NnLinear *const[]){&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2}, (const NnLora *const *)L->lora, h,
                            cf->num_attention_heads, last, tr, &fused)) {
            h = fused;
            if (out && out->hidden_states) out->hidden_states[i + 1] = h;
            continue;
        }
        Tensor *y = nn_layer_norm(c, &L->ln_before, h), *yq = y;
        if (last) {
            yq = ag_narrow(c, y, 1, 0, 1);
            h = ag_narrow(c, h, 1, 0, 1);
        }
        if (out && out->attention_gates)
            h = gated_attention_residual(c, m, L, y, h, out->attention_gates[i], &probs);
        else
            h = vit_attention_block(c, (const NnLinear *const[]){&L->q, &L->k, &L->v, &L->o}, (const NnLora *const *)L->lora, yq, y, h,
                                    cf->num_attention_heads, m->params.rng, tr,
                                    out && out->attentions ? &probs : NULL); // unasked: not kept, recomputed in the backward
        y = nn_layer_norm(c, &L->ln_after, h);
        h = vit_mlp_block(c, &L->fc1, L->lora[VIT_FC1], &L->fc2, L->lora[VIT_FC2], y, h, m->params.rng, tr);
        if (out && out->hidden_states) out->hidden_states[i + 1] = h;
        if (out && out->attentions) out->attentions[i] = probs;
    }
    h = nn_layer_norm(c, &m->ln_f, h);
    Tensor *first = ag_reshape(c, ag_narrow(c, h, 1, 0, 1), 2, (int64_t[]){B, D}); // the [CLS] token
    return nn_linear(c, &m->classifier, first);
}

// ---- head extension, freezing, LoRA ----

int vit_extend_head(VitModel *m, int new_n, Rng *rng, char *err, size_t errn) {
    int old = m->cfg.num_labels;
    if (new_n < old) {
        return errorf(err, errn, "cannot shrink the classifier from %d to %d classes", old, new_n);
    }
    if (new_n == old) return 0;
    int64_t D = m->cfg.hidden_size;
    Tensor *w = tensor_new(m->pc, DT_F32, 2, (int64_t[]){new_n, D});
    Tensor *b = tensor_zeros(m->pc, DT_F32, 1, (int64_t[]){new_n});
    memcpy(w->data, tensor_contiguous(m->pc, m->classifier.weight)->data, sizeof(float) * (size_t)(old * D));
    memcpy(b->data, tensor_contiguous(m->pc, m->classifier.bias)->data, sizeof(float) * (size_t)old);
    Tensor *rows = tensor_from_buffer(m->pc, DT_F32, 2, (int64_t[]){new_n - old, D}, (float *)w->data + old * D);
    rng_fill_normal(rng, rows, 0.0, 0.02); // nn.init.normal_(std=0.02); the bias stays 0
    bool trainable = m->classifier.weight->requires_grad;
    m->classifier.weight = w;
    m->classifier.bias = b;
    nn_params_replace(&m->params, "classifier.weight", w);
    nn_params_replace(&m->params, "classifier.bias", b);
    if (trainable) {
        ag_set_requires_grad(w, true);
        ag_set_requires_grad(b, true);
    }
    vit_config_set_num_labels(&m->cfg, new_n);
    return 0;
}

int vit_add_label(VitModel *m, const char *label, Rng *rng, char *err, size_t errn) {
    int id = vit_config_label_id(&m->cfg, label);
    if (id >= 0) return id;
    id = m->cfg.num_labels;
    if (vit_extend_head(m, id + 1, rng, err, errn) != 0) return -1;
    vit_config_set_label(&m->cfg, id, label);
    return id;
}

void vit_freeze_all(VitModel *m) { nn_params_set_trainable(&m->params, "*", false); }

// A regex must name only the linears LoRA can wrap, as peft refuses any other module it matches.
// The other modules of ViTForImageClassification, per layer with %d; the vit.layers ones are
// transformers 5's containers, as far as the golden names show them.
static int regex_check_others(const VitModel *m, const VitTargetRe *re, const char *pat, char *err, size_t errn) {
    static const char *const OTHERS[] = {"vit",
                                         "vit.embeddings",
                                         "vit.embeddings.patch_embeddings",
                                         "vit.embeddings.patch_embeddings.projection",
                                         "vit.embeddings.dropout",
                                         "vit.encoder",
                                         "vit.encoder.layer",
                                         "vit.layernorm",
                                         "classifier",
                                         "vit.layers",
                                         "vit.encoder.layer.%d",
                                         "vit.encoder.layer.%d.attention",
                                         "vit.encoder.layer.%d.attention.attention",
                                         "vit.encoder.layer.%d.attention.attention.dropout",
                                         "vit.encoder.layer.%d.attention.output",
                                         "vit.encoder.layer.%d.attention.output.dropout",
                                         "vit.encoder.layer.%d.intermediate",
                                         "vit.encoder.layer.%d.intermediate.intermediate_act_fn",
                                         "vit.encoder.layer.%d.output",
                                         "vit.encoder.layer.%d.output.dropout",
                                         "vit.encoder.layer.%d.layernorm_before",
                                         "vit.encoder.layer.%d.layernorm_after",
                                         "vit.layers.%d",
                                         "vit.layers.%d.attention",
                                         "vit.layers.%d.mlp"};
    for (size_t i = 0; i < sizeof OTHERS / sizeof *OTHERS; i++) {
        bool per_layer = strstr(OTHERS[i], "%d") != NULL;
        for (int l = 0; l < (per_layer ? m->cfg.num_hidden_layers : 1); l++) {
            char name[256];
            snprintf(name, sizeof name, OTHERS[i], l); // a format without %d ignores l
            int hit = vit_target_re_match(re, name, err, errn);
            if (hit < 0) return -1;
            if (hit) {
                return errorf(err, errn, "target_modules regex '%s' matches '%s', which is not a linear layer LoRA can wrap here", pat,
                              name);
            }
        }
    }
    return 0;
}

int vit_attach_lora(VitModel *m, const VitLoraSpec *spec, Rng *rng, char *err, size_t errn) {
    bool use_re = spec->target_regex[0] != 0;
    if (spec->r <= 0 || spec->alpha <= 0 || !(spec->dropout >= 0 && spec->dropout < 1) || (spec->ntargets <= 0 && !use_re)) {
        return errorf(err, errn,
                      "LoRA needs r > 0, alpha > 0, dropout in [0, 1) and at least one target (got r %d, alpha %g, dropout %g, %d targets)",
                      spec->r, spec->alpha, spec->dropout, spec->ntargets);
    }
    static const char *const MOD[] = {"attention.attention.query", "attention.attention.key", "attention.attention.value",
                                      "attention.output.dense",    "intermediate.dense",      "output.dense"};
    int hits[VIT_MAX_TARGETS] = {0}, re_hits = 0;
    VitTargetRe *re = NULL;
    if (use_re) {
        if (!(re = vit_target_re_compile(spec->target_regex, err, errn))) return -1;
        if (regex_check_others(m, re, spec->target_regex, err, errn) != 0) {
            vit_target_re_free(re);
            return -1;
        }
    }
    Rng *own = m->params.rng;
    m->params.ctx = m->pc, m->params.rng = rng; // the adapters' A from the caller's generator
    bool failed = false;
    for (int i = 0; i < m->cfg.num_hidden_layers && !failed; i++) {
        VitLayer *L = &m->layers[i];
        for (int k = 0; k < VIT_NPROJ; k++) {
            char name[256];
            snprintf(name, sizeof name, "vit.encoder.layer.%d.%s", i, MOD[k]);
            bool hit = false;
            if (use_re) {
                int h = vit_target_re_match(re, name, err, errn);
                if (h < 0) {
                    failed = true;
                    break;
                }
                hit = h, re_hits += h;
            } else
                for (int t = 0; t < spec->ntargets; t++)
                    if (vit_target_matches(name, spec->targets[t])) hit = true, hits[t]++;
            if (!hit || L->lora[k]) continue;
            NnLora *lo = nn_lora_new(&m->params, name, vit_layer_proj(L, k), spec->r, spec->alpha, spec->dropout);
            if (!lo) {
                snprintf(err, errn, "%s", ctx_error(m->pc));
                failed = true;
                break;
            }
            if (spec->rslora) lo->scale = spec->alpha / sqrt((double)spec->r);
            L->lora[k] = lo;
        }
    }
    m->params.rng = own;
    vit_target_re_free(re);
    if (failed) return -1;
    if (use_re && !re_hits) {
        return errorf(
            err, errn,
            "target_modules regex '%s' matches no module of the model (names look like vit.encoder.layer.0.attention.attention.query)",
            spec->target_regex);
    }
    for (int t = 0; t < spec->ntargets && !use_re; t++)
        if (!hits[t]) {
            return errorf(
                err, errn,
                "LoRA target module '%s' matches no module of the model (known: query, key, value, dense, q_proj, k_proj, v_proj, "
                "o_proj, fc1, fc2)",
                spec->targets[t]);
        }
    if (spec->save_classifier) {
        ag_set_requires_grad(m->classifier.weight, true);
        ag_set_requires_grad(m->classifier.bias, true);
    }
    m->has_lora = true;
    m->lora = *spec;
    return 0;
}

void vit_merge_lora(VitModel *m) {
    for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
        VitLayer *L = &m->layers[i];
        for (int k = 0; k < VIT_NPROJ; k++) nn_lora_merge(L->lora[k]);
    }
}

int vit_quantize_int8(VitModel *m, char *err, size_t errn) {
    vit_merge_lora(m);
    for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
        VitLayer *L = &m->layers[i];
        for (int k = 0; k < VIT_NPROJ; k++)
            if (!nn_linear_quantize(vit_layer_proj(L, k)))
                return errorf(err, errn, "int8: layer %d: %s", i, ctx_error(m->params.ctx) ? ctx_error(m->params.ctx) : "failed");
    }
    if (!tensor_quantize_int8(m->patch.weight)) // the patch embedding's matrix [D, C p p]
        return errorf(err, errn, "int8: patch embedding: %s", ctx_error(m->params.ctx) ? ctx_error(m->params.ctx) : "failed");
    return 0;
}

void vit_set_lora_dropout(VitModel *m, double p) {
    m->lora.dropout = p;
    for (int i = 0; i < m->cfg.num_hidden_layers; i++) {
        VitLayer *L = &m->layers[i];
        for (int k = 0; k < VIT_NPROJ; k++)
            if (L->lora[k]) L->lora[k]->dropout = p;
    }
}

void vit_param_counts(const VitModel *m, int64_t *trainable, int64_t *all) {
    *trainable = nn_params_count(&m->params, true);
    *all = nn_params_count(&m->params, false);
    if (m->has_lora && m->lora.save_classifier) // peft keeps the original classifier and a trainable copy
        *all += tensor_numel(m->classifier.weight) + tensor_numel(m->classifier.bias);
}

static void commas(char *buf, size_t n, int64_t v) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t L = strlen(raw), k = 0;
    for (size_t i = 0; i < L && k + 1 < n; i++) {
        if (i && (L - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = 0;
}

void vit_print_trainable_parameters(const VitModel *m, FILE *f) {
    int64_t t, a;
    vit_param_counts(m, &t, &a);
    char ts[32], as[32];
    commas(ts, sizeof ts, t);
    commas(as, sizeof as, a);
    fprintf(f, "trainable params: %s || all params: %s || trainable%%: %.4f\n", ts, as, a ? 100.0 * (double)t / (double)a : 0.0);
}

int vit_save_pretrained(const VitModel *m, const char *dir, char *err, size_t errn) {
    if (!dir_exists(dir) && mkdir(dir, 0755) != 0) {
        return errorf(err, errn, "%s: cannot create the directory", dir);
    }
    StItem *items = malloc(sizeof *items * (size_t)m->params.n);
    int n = 0;
    for (int i = 0; i < m->params.n; i++)
        if (!strstr(m->params.p[i].name, ".lora_")) items[n++] = (StItem){m->params.p[i].name, m->params.p[i].t};
    char p[FILE_PATH_BUF];
    int rc = safetensors_save(path_join(p, sizeof p, dir, "model.safetensors"), items, n, (const char *const[]){"format", "pt", NULL}, err,
                              errn);
    free(items);
    if (rc == 0) rc = vit_config_save(&m->cfg, path_join(p, sizeof p, dir, "config.json"), err, errn);
    return rc;
}
