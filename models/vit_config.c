// vit_config.c: config.json in and out (cJSON).
#include "vit_config.h"
#include "json_strict.h"

#include "../base/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_int(const cJSON *o, const char *k, int *out, int dflt, int lo, int hi, const char *path, char *err, size_t errn) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        return errorf(err, errn, "%s: \"%s\" must be an integer in [%d, %d]", path, k, lo, hi);
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *k, double *out, double dflt, double lo, double hi, const char *path, char *err,
                   size_t errn) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        return errorf(err, errn, "%s: \"%s\" must be a number in [%g, %g]", path, k, lo, hi);
    }
    *out = v->valuedouble;
    return 0;
}

void vit_config_init(VitConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden_size = 192, cfg->num_hidden_layers = 12, cfg->num_attention_heads = 3, cfg->intermediate_size = 768;
    cfg->image_size = 224, cfg->patch_size = 16, cfg->num_channels = 3;
    cfg->layer_norm_eps = 1e-12;
    cfg->qkv_bias = true;
    snprintf(cfg->hidden_act, sizeof cfg->hidden_act, "gelu");
    cfg->raw = cJSON_CreateObject();
    cJSON_AddItemToObject(cfg->raw, "architectures", cJSON_CreateStringArray((const char *[]){"ViTForImageClassification"}, 1));
    cJSON_AddStringToObject(cfg->raw, "model_type", "vit");
    vit_config_set_num_labels(cfg, 2);
}

int vit_config_set_num_labels(VitConfig *cfg, int n) {
    char **l = realloc(cfg->id2label, sizeof *l * (size_t)(n ? n : 1));
    if (!l) return -1;
    for (int i = cfg->num_labels; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "LABEL_%d", i);
        l[i] = strdup(b);
    }
    for (int i = n; i < cfg->num_labels; i++) free(l[i]);
    cfg->id2label = l;
    cfg->num_labels = n;
    return 0;
}

void vit_config_set_label(VitConfig *cfg, int id, const char *label) {
    free(cfg->id2label[id]);
    cfg->id2label[id] = strdup(label);
}

int vit_config_label_id(const VitConfig *cfg, const char *label) {
    for (int i = 0; i < cfg->num_labels; i++)
        if (!strcmp(cfg->id2label[i], label)) return i;
    return -1;
}

int vit_config_parse(VitConfig *cfg, const char *json, const char *path, char *err, size_t errn) {
    memset(cfg, 0, sizeof *cfg);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(json, &end, 1);
    if (!o && (o = cJSON_ParseWithOpts(json, &end, 0)) != NULL) { // whole as a value, then something after it
        snprintf(err, errn, "%s: text after the JSON value (at byte %td)", path, end - json);
        cJSON_Delete(o);
        return -1;
    }
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errn, "%s: not a JSON object (malformed JSON)", path);
        cJSON_Delete(o);
        return -1;
    }
    cfg->raw = o;
    if (json_check_unique_keys(o, path, err, errn) != 0) goto fail;
    const int BIG = 1 << 20;
    if (get_int(o, "hidden_size", &cfg->hidden_size, 768, 1, BIG, path, err, errn) ||
        get_int(o, "num_hidden_layers", &cfg->num_hidden_layers, 12, 1, 1024, path, err, errn) ||
        get_int(o, "num_attention_heads", &cfg->num_attention_heads, 12, 1, BIG, path, err, errn) ||
        get_int(o, "intermediate_size", &cfg->intermediate_size, 3072, 1, BIG, path, err, errn) ||
        get_int(o, "image_size", &cfg->image_size, 224, 1, 1 << 15, path, err, errn) ||
        get_int(o, "patch_size", &cfg->patch_size, 16, 1, 1 << 15, path, err, errn) ||
        get_int(o, "num_channels", &cfg->num_channels, 3, 1, 64, path, err, errn) ||
        get_num(o, "layer_norm_eps", &cfg->layer_norm_eps, 1e-12, 0, 1, path, err, errn) ||
        get_num(o, "hidden_dropout_prob", &cfg->hidden_dropout_prob, 0, 0, 1, path, err, errn) ||
        get_num(o, "attention_probs_dropout_prob", &cfg->attention_probs_dropout_prob, 0, 0, 1, path, err, errn))
        goto fail;
    if (vit_config_validate(cfg, path, err, errn)) goto fail;
    if (cfg->layer_norm_eps <= 0) {
        snprintf(err, errn, "%s: layer_norm_eps must be positive", path);
        goto fail;
    }
    const cJSON *qb = cJSON_GetObjectItemCaseSensitive(o, "qkv_bias");
    if (qb && !cJSON_IsBool(qb)) {
        snprintf(err, errn, "%s: \"qkv_bias\" must be true or false", path);
        goto fail;
    }
    cfg->qkv_bias = !qb || cJSON_IsTrue(qb);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    snprintf(cfg->hidden_act, sizeof cfg->hidden_act, "%s", act && cJSON_IsString(act) ? act->valuestring : "gelu");
    if (strcmp(cfg->hidden_act, "gelu")) {
        snprintf(err, errn, "%s: hidden_act \"%s\" is not supported (only \"gelu\", the exact erf GELU)", path, cfg->hidden_act);
        goto fail;
    }
    // labels: id2label keys are strings "0".."n-1"; num_labels must agree when present
    const cJSON *i2l = cJSON_GetObjectItemCaseSensitive(o, "id2label");
    int nl = 0;
    if (i2l) {
        if (!cJSON_IsObject(i2l)) {
            snprintf(err, errn, "%s: \"id2label\" must be an object", path);
            goto fail;
        }
        nl = cJSON_GetArraySize(i2l);
    }
    int declared = -1;
    if (get_int(o, "num_labels", &declared, -1, 1, BIG, path, err, errn)) goto fail;
    if (!i2l) nl = declared > 0 ? declared : 2;
    if (declared > 0 && i2l && declared != nl) {
        snprintf(err, errn, "%s: num_labels %d disagrees with the %d entries of id2label", path, declared, nl);
        goto fail;
    }
    if (nl < 1 || nl > BIG) {
        snprintf(err, errn, "%s: \"id2label\" is empty", path);
        goto fail;
    }
    cfg->id2label = calloc((size_t)nl, sizeof *cfg->id2label);
    cfg->num_labels = nl;
    for (const cJSON *it = i2l ? i2l->child : NULL; it; it = it->next) {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (*end || end == it->string || id < 0 || id >= nl || !cJSON_IsString(it)) {
            snprintf(err, errn, "%s: id2label key \"%s\" is not an id in [0, %d) with a string label", path, it->string, nl);
            goto fail;
        }
        if (cfg->id2label[id]) {
            snprintf(err, errn, "%s: id2label has id %ld twice", path, id);
            goto fail;
        }
        if (!text_is_utf8(it->valuestring)) {
            snprintf(err, errn, "%s: label %ld is not valid UTF-8", path, id);
            goto fail;
        }
        cfg->id2label[id] = strdup(it->valuestring);
    }
    for (int i = 0; i < nl; i++)
        if (!cfg->id2label[i]) {
            char b[32];
            snprintf(b, sizeof b, "LABEL_%d", i);
            cfg->id2label[i] = strdup(b);
        }
    return 0;
fail:
    vit_config_free(cfg);
    return -1;
}

int vit_config_validate(const VitConfig *c, const char *path, char *err, size_t errn) {
    const struct {
        const char *name;
        int v, lo, hi;
    } r[] = {{"hidden_size", c->hidden_size, 1, VIT_MAX_SIZE},
             {"num_hidden_layers", c->num_hidden_layers, 1, 1024},
             {"num_attention_heads", c->num_attention_heads, 1, VIT_MAX_SIZE},
             {"intermediate_size", c->intermediate_size, 1, 4 * VIT_MAX_SIZE},
             {"image_size", c->image_size, 1, VIT_MAX_IMAGE},
             {"patch_size", c->patch_size, 1, VIT_MAX_IMAGE}};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi) {
            return errorf(err, errn, "%s: %s %d is outside [%d, %d]", path, r[i].name, r[i].v, r[i].lo, r[i].hi);
        }
    if (c->num_channels != 3) {
        return errorf(err, errn, "%s: num_channels %d is not supported (the image pipeline makes 3-channel RGB)", path, c->num_channels);
    }
    if (c->hidden_size % c->num_attention_heads) {
        return errorf(err, errn, "%s: hidden_size %d is not divisible by num_attention_heads %d", path, c->hidden_size,
                      c->num_attention_heads);
    }
    if (c->image_size % c->patch_size) {
        return errorf(err, errn, "%s: image_size %d is not divisible by patch_size %d", path, c->image_size, c->patch_size);
    }
    int64_t side = c->image_size / c->patch_size;
    if (side * side > VIT_MAX_TOKENS) {
        return errorf(err, errn, "%s: image_size %d with patch_size %d makes %lld patches, above %d", path, c->image_size, c->patch_size,
                      (long long)(side * side), VIT_MAX_TOKENS);
    }
    return 0;
}

int vit_config_load(VitConfig *cfg, const char *path, char *err, size_t errn) {
    memset(cfg, 0, sizeof *cfg);
    char *txt = file_read_all(path, 64u << 20, NULL, err, errn);
    if (!txt) return -1;
    int rc = vit_config_parse(cfg, txt, path, err, errn);
    free(txt);
    return rc;
}

char *vit_config_to_json(const VitConfig *cfg) {
    cJSON *o = cJSON_Duplicate(cfg->raw, true);
    const char *drop[] = {"id2label",
                          "label2id",
                          "num_labels",
                          "hidden_size",
                          "num_hidden_layers",
                          "num_attention_heads",
                          "intermediate_size",
                          "image_size",
                          "patch_size",
                          "num_channels",
                          "layer_norm_eps",
                          "hidden_act",
                          "qkv_bias",
                          "hidden_dropout_prob",
                          "attention_probs_dropout_prob"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) cJSON_DeleteItemFromObjectCaseSensitive(o, drop[i]);
    cJSON_AddNumberToObject(o, "attention_probs_dropout_prob", cfg->attention_probs_dropout_prob);
    cJSON_AddStringToObject(o, "hidden_act", cfg->hidden_act);
    cJSON_AddNumberToObject(o, "hidden_dropout_prob", cfg->hidden_dropout_prob);
    cJSON_AddNumberToObject(o, "hidden_size", cfg->hidden_size);
    cJSON *i2l = cJSON_AddObjectToObject(o, "id2label");
    for (int i = 0; i < cfg->num_labels; i++) {
        char k[32];
        snprintf(k, sizeof k, "%d", i);
        cJSON_AddStringToObject(i2l, k, cfg->id2label[i]);
    }
    cJSON_AddNumberToObject(o, "image_size", cfg->image_size);
    cJSON_AddNumberToObject(o, "intermediate_size", cfg->intermediate_size);
    cJSON *l2i = cJSON_AddObjectToObject(o, "label2id");
    for (int i = 0; i < cfg->num_labels; i++)
        if (!cJSON_GetObjectItemCaseSensitive(l2i, cfg->id2label[i])) cJSON_AddNumberToObject(l2i, cfg->id2label[i], i);
    cJSON_AddNumberToObject(o, "layer_norm_eps", cfg->layer_norm_eps);
    cJSON_AddNumberToObject(o, "num_attention_heads", cfg->num_attention_heads);
    cJSON_AddNumberToObject(o, "num_channels", cfg->num_channels);
    cJSON_AddNumberToObject(o, "num_hidden_layers", cfg->num_hidden_layers);
    cJSON_AddNumberToObject(o, "patch_size", cfg->patch_size);
    cJSON_AddBoolToObject(o, "qkv_bias", cfg->qkv_bias);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

int vit_config_save(const VitConfig *cfg, const char *path, char *err, size_t errn) {
    char *s = vit_config_to_json(cfg);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    t[n] = '\n', t[n + 1] = 0;
    int rc = file_write_atomic(path, t, n + 1, true, err, errn);
    free(t);
    return rc;
}

int vit_config_copy(VitConfig *dst, const VitConfig *src) {
    *dst = *src;
    dst->raw = cJSON_Duplicate(src->raw, true);
    dst->id2label = calloc((size_t)src->num_labels, sizeof *dst->id2label);
    for (int i = 0; i < src->num_labels; i++) dst->id2label[i] = strdup(src->id2label[i]);
    return 0;
}

void vit_config_free(VitConfig *cfg) {
    if (cfg->id2label)
        for (int i = 0; i < cfg->num_labels; i++) free(cfg->id2label[i]);
    free(cfg->id2label);
    cJSON_Delete(cfg->raw);
    memset(cfg, 0, sizeof *cfg);
}

// ---- timm ----

#include "checkpoint.h"

bool vit_config_is_timm(const char *json) {
    cJSON *o = cJSON_ParseWithOpts(json, NULL, 1);
    bool t = o && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "architecture")) &&
             !cJSON_GetObjectItemCaseSensitive(o, "model_type") && !cJSON_GetObjectItemCaseSensitive(o, "hidden_size");
    cJSON_Delete(o);
    return t;
}

int vit_config_from_timm(VitConfig *cfg, const char *json, const Checkpoint *ck, const char *path, char *err, size_t errn) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *o = cJSON_ParseWithOpts(json, NULL, 1);
    if (json_check_unique_keys(o, path, err, errn) != 0) {
        cJSON_Delete(o);
        return -1;
    }
    const char *arch = cJSON_GetObjectItemCaseSensitive(o, "architecture")->valuestring;
    cJSON *pc = cJSON_GetObjectItemCaseSensitive(o, "pretrained_cfg"), *ma = cJSON_GetObjectItemCaseSensitive(o, "model_args");
    const WEntry *cls = checkpoint_find(ck, "vit.embeddings.cls_token"),
                 *pe = checkpoint_find(ck, "vit.embeddings.patch_embeddings.projection.weight");
    const WEntry *fc1 = checkpoint_find(ck, "vit.encoder.layer.0.intermediate.dense.weight"),
                 *head = checkpoint_find(ck, "classifier.weight");
    int rc = -1;
    if (strstr(arch, "distilled") || checkpoint_find(ck, "dist_token")) {
        snprintf(err, errn, "%s: '%s' is a distilled DeiT (dist_token, head_dist): not supported", path, arch);
        goto out;
    }
    if (!cls || cls->ndim != 3 || !pe || pe->ndim != 4 || pe->shape[2] != pe->shape[3] || !fc1 || fc1->ndim != 2 || !head ||
        head->ndim != 2) {
        snprintf(err, errn, "%s: a timm config, but the weights are not a ViT's (cls_token, patch_embed.proj, blocks.0.mlp.fc1, head)",
                 path);
        goto out;
    }
    // the sizes come from the weights' shapes: bounded before anything is derived or allocated from them
    if (cls->shape[2] < 1 || cls->shape[2] > VIT_MAX_SIZE || fc1->shape[0] < 1 || fc1->shape[0] > 4 * VIT_MAX_SIZE || pe->shape[1] < 1 ||
        pe->shape[1] > 64 || pe->shape[2] < 1 || pe->shape[2] > VIT_MAX_IMAGE || pe->shape[0] != cls->shape[2] || head->shape[0] < 1 ||
        head->shape[0] > VIT_MAX_LABELS || head->shape[1] != cls->shape[2]) {
        snprintf(err, errn,
                 "%s: timm weights of unusable shapes: cls_token [%lld], patch_embed.proj [%lld, %lld, %lld, %lld], "
                 "head [%lld, %lld]",
                 path, (long long)cls->shape[2], (long long)pe->shape[0], (long long)pe->shape[1], (long long)pe->shape[2],
                 (long long)pe->shape[3], (long long)head->shape[0], (long long)head->shape[1]);
        goto out;
    }
    int layers = 0;
    for (char k[128];; layers++) {
        snprintf(k, sizeof k, "vit.encoder.layer.%d.layernorm_before.weight", layers);
        if (!checkpoint_find(ck, k)) break;
    }
    vit_config_init(cfg);
    cfg->hidden_size = (int)cls->shape[2], cfg->num_hidden_layers = layers, cfg->intermediate_size = (int)fc1->shape[0];
    cfg->patch_size = (int)pe->shape[2], cfg->num_channels = (int)pe->shape[1], cfg->layer_norm_eps = 1e-6; // timm's LayerNorm
    const cJSON *nh = ma ? cJSON_GetObjectItemCaseSensitive(ma, "num_heads") : NULL;
    cfg->num_attention_heads = cJSON_IsNumber(nh) ? nh->valueint : strstr(arch, "huge") ? 16 : cfg->hidden_size / 64;
    const cJSON *in = pc ? cJSON_GetObjectItemCaseSensitive(pc, "input_size") : NULL;
    cfg->image_size = cJSON_IsArray(in) && cJSON_GetArraySize(in) == 3 && cJSON_IsNumber(cJSON_GetArrayItem(in, 2))
                          ? cJSON_GetArrayItem(in, 2)->valueint
                          : 224;
    if (cfg->num_attention_heads <= 0 || cfg->image_size <= 0 || layers == 0 || vit_config_validate(cfg, path, err, errn)) {
        if (cfg->num_attention_heads <= 0 || cfg->image_size <= 0 || layers == 0)
            snprintf(err, errn, "%s: cannot derive a ViT from '%s' (hidden %d, %d heads, image %d, patch %d, %d blocks)", path, arch,
                     cfg->hidden_size, cfg->num_attention_heads, cfg->image_size, cfg->patch_size, layers);
        vit_config_free(cfg);
        goto out;
    }
    vit_config_set_num_labels(cfg, (int)head->shape[0]);
    const cJSON *ln = cJSON_GetObjectItemCaseSensitive(o, "label_names");
    int i = 0;
    for (const cJSON *l = cJSON_IsArray(ln) ? ln->child : NULL; l && i < cfg->num_labels; l = l->next, i++)
        if (cJSON_IsString(l)) vit_config_set_label(cfg, i, l->valuestring);
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}
