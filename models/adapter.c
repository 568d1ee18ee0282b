// adapter.c: reading and writing peft adapters.
#include "adapter.h"

#include "../tensor/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const V5_ALIASES[] = {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"};
static const char *const V4_NAMES[] = {"query", "key", "value", "dense", "dense", "dense"};

int adapter_config_load(AdapterConfig *ac, const char *path, char *err, size_t errn) {
    memset(ac, 0, sizeof *ac);
    char *txt = file_read_all(path, 16u << 20, NULL, err, errn);
    if (!txt) return -1;
    cJSON *o = cJSON_Parse(txt);
    free(txt);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) { snprintf(err, errn, "%s: not a JSON object (malformed JSON)", path); goto out; }
    cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))) {
        snprintf(err, errn, "%s: peft_type must be \"LORA\"", path);
        goto out;
    }
    cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "r"), *al = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha"),
          *dr = cJSON_GetObjectItemCaseSensitive(o, "lora_dropout"), *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules"),
          *ms = cJSON_GetObjectItemCaseSensitive(o, "modules_to_save"), *bias = cJSON_GetObjectItemCaseSensitive(o, "bias"),
          *rs = cJSON_GetObjectItemCaseSensitive(o, "use_rslora"), *dora = cJSON_GetObjectItemCaseSensitive(o, "use_dora"),
          *fifo = cJSON_GetObjectItemCaseSensitive(o, "fan_in_fan_out"), *bm = cJSON_GetObjectItemCaseSensitive(o, "base_model_name_or_path");
    if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) || r->valuedouble < 1 || r->valuedouble > 4096) {
        snprintf(err, errn, "%s: \"r\" must be a positive integer", path);
        goto out;
    }
    if (!cJSON_IsNumber(al) || !(al->valuedouble > 0)) { snprintf(err, errn, "%s: \"lora_alpha\" must be a positive number", path); goto out; }
    if (dr && !cJSON_IsNull(dr) && (!cJSON_IsNumber(dr) || !(dr->valuedouble >= 0 && dr->valuedouble < 1))) {
        snprintf(err, errn, "%s: \"lora_dropout\" must be in [0, 1)", path);
        goto out;
    }
    if (bias && cJSON_IsString(bias) && strcmp(bias->valuestring, "none")) {
        snprintf(err, errn, "%s: bias \"%s\" is not supported (only \"none\")", path, bias->valuestring);
        goto out;
    }
    if (cJSON_IsTrue(dora)) { snprintf(err, errn, "%s: use_dora is not supported", path); goto out; }
    if (cJSON_IsTrue(fifo)) { snprintf(err, errn, "%s: fan_in_fan_out is not supported for ViT linears", path); goto out; }
    if (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) < 1 || cJSON_GetArraySize(tm) > VIT_MAX_TARGETS) {
        snprintf(err, errn, "%s: \"target_modules\" must be a list of 1 to %d module names (a regex string is not supported)", path, VIT_MAX_TARGETS);
        goto out;
    }
    ac->spec.r = (int)r->valuedouble;
    ac->spec.alpha = al->valuedouble;
    ac->spec.dropout = dr && cJSON_IsNumber(dr) ? dr->valuedouble : 0.0;
    ac->spec.rslora = cJSON_IsTrue(rs);
    ac->gen = PEFT_V4;
    for (cJSON *t = tm->child; t; t = t->next) {
        if (!cJSON_IsString(t) || strlen(t->valuestring) >= sizeof ac->spec.targets[0]) {
            snprintf(err, errn, "%s: target_modules holds something that is not a module name", path);
            goto out;
        }
        for (size_t k = 0; k < sizeof V5_ALIASES / sizeof *V5_ALIASES; k++)
            if (!strcmp(t->valuestring, V5_ALIASES[k])) ac->gen = PEFT_V5;
        snprintf(ac->spec.targets[ac->spec.ntargets++], sizeof ac->spec.targets[0], "%s", t->valuestring);
    }
    if (ms && !cJSON_IsNull(ms)) {
        if (!cJSON_IsArray(ms)) { snprintf(err, errn, "%s: \"modules_to_save\" must be a list", path); goto out; }
        for (cJSON *t = ms->child; t; t = t->next) {
            if (!cJSON_IsString(t) || strcmp(t->valuestring, "classifier")) {
                snprintf(err, errn, "%s: modules_to_save may name only \"classifier\"", path);
                goto out;
            }
            ac->spec.save_classifier = true;
        }
    }
    if (cJSON_IsString(bm)) snprintf(ac->base_model, sizeof ac->base_model, "%s", bm->valuestring);
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int adapter_load(VitModel *m, const char *dir, char *err, size_t errn) {
    AdapterConfig ac;
    char p[4096];
    if (!dir_exists(dir)) {
        snprintf(err, errn, "%s: not a directory", dir);
        return -1;
    }
    if (adapter_config_load(&ac, path_join(p, sizeof p, dir, "adapter_config.json"), err, errn) != 0) return -1;
    Checkpoint ck;
    if (checkpoint_open_file(&ck, path_join(p, sizeof p, dir, "adapter_model.safetensors"), err, errn) != 0) return -1;
    int rc = -1;
    Rng rng = rng_new(0);
    // a classifier with more rows than the head: extend the head first
    const WEntry *cw = checkpoint_find(&ck, "classifier.weight"), *cb = checkpoint_find(&ck, "classifier.bias");
    if (ac.spec.save_classifier && (!cw || !cb)) {
        snprintf(err, errn, "%s: modules_to_save names the classifier but the adapter lacks its weight or bias", p);
        goto out;
    }
    if (cw) {
        if (cw->ndim != 2 || cw->shape[1] != m->cfg.hidden_size || cw->shape[0] < m->cfg.num_labels || cw->shape[0] > (1 << 20) ||
            !cb || cb->ndim != 1 || cb->shape[0] != cw->shape[0]) {
            snprintf(err, errn, "%s: the classifier [%lld, %lld] does not fit the model (hidden size %d, %d labels)", p,
                     (long long)cw->shape[0], cw->ndim > 1 ? (long long)cw->shape[1] : 0LL, m->cfg.hidden_size, m->cfg.num_labels);
            goto out;
        }
        int old = m->cfg.num_labels, rows = (int)cw->shape[0];
        if (rows > old) {
            if (vit_extend_head(m, rows, &rng, err, errn) != 0) goto out;
            char cp[4096];
            VitConfig lc;
            char e2[512];
            if (file_exists(path_join(cp, sizeof cp, dir, "config.json"))) {
                if (vit_config_load(&lc, cp, e2, sizeof e2) != 0) {
                    snprintf(err, errn, "%s", e2);
                    goto out;
                }
                for (int i = old; i < rows && i < lc.num_labels; i++) vit_config_set_label(&m->cfg, i, lc.id2label[i]);
                vit_config_free(&lc);
            }
        }
    }
    vit_freeze_all(m);
    if (vit_attach_lora(m, &ac.spec, &rng, err, errn) != 0) { // name the file the targets came from
        char e2[1024];
        snprintf(e2, sizeof e2, "%s", err);
        snprintf(err, errn, "%s/adapter_config.json: %s", dir, e2);
        goto out;
    }
    // every adapter tensor must land on a parameter of the same shape
    for (int i = 0; i < ck.n; i++) {
        Tensor *t = nn_params_get(&m->params, ck.canon[i]);
        const WEntry *e = ck.entries[i];
        bool is_lora = strstr(ck.canon[i], ".lora_A.") || strstr(ck.canon[i], ".lora_B.");
        if (!t || (!is_lora && strncmp(ck.canon[i], "classifier.", 11))) {
            snprintf(err, errn, "%s: tensor '%s' matches no LoRA module or saved module of the model", p, e->name);
            goto out;
        }
        bool ok = e->ndim == t->ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = e->shape[d] == t->shape[d];
        if (!ok) {
            char s[96];
            snprintf(err, errn, "%s: tensor '%s' does not have the shape %s the model needs", p, e->name, shape_str(t, s, sizeof s));
            goto out;
        }
        Tensor *src = wentry_tensor(m->pc, e, false);
        if (tensor_copy(t, src) != 0) goto out;
    }
    // and every LoRA tensor the config implies must have been in the file
    for (int i = 0; i < m->params.n; i++)
        if (strstr(m->params.p[i].name, ".lora_") && !checkpoint_find(&ck, m->params.p[i].name)) {
            snprintf(err, errn, "%s: missing tensor '%s' for target modules of adapter_config.json", p, m->params.p[i].name);
            goto out;
        }
    rc = 0;
out:
    checkpoint_close(&ck);
    return rc;
}

int adapter_save(const VitModel *m, const char *dir, PeftGen gen, const char *base_model, char *err, size_t errn) {
    if (!m->has_lora) {
        snprintf(err, errn, "the model has no LoRA adapter to save");
        return -1;
    }
    if (!dir_exists(dir) && mkdir(dir, 0755) != 0) {
        snprintf(err, errn, "%s: cannot create the directory", dir);
        return -1;
    }
    StItem *items = malloc(sizeof *items * (size_t)m->params.n);
    char **names = calloc((size_t)m->params.n, sizeof *names);
    int n = 0;
    for (int i = 0; i < m->params.n; i++) {
        const char *nm = m->params.p[i].name;
        bool lora = strstr(nm, ".lora_") != NULL, cls = m->lora.save_classifier && !strncmp(nm, "classifier.", 11);
        if (!lora && !cls) continue;
        char v[512], full[600];
        if (gen == PEFT_V5) vit_v5_name(nm, v, sizeof v);
        else snprintf(v, sizeof v, "%s", nm);
        snprintf(full, sizeof full, "base_model.model.%s", v);
        names[n] = strdup(full);
        items[n] = (StItem){names[n], m->params.p[i].t};
        n++;
    }
    char p[4096];
    int rc = safetensors_save(path_join(p, sizeof p, dir, "adapter_model.safetensors"), items, n, "{\"format\":\"pt\"}", err, errn);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(items);
    if (rc != 0) return rc;
    // adapter_config.json with the fields peft of that generation writes
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNullToObject(o, "alpha_pattern");
    cJSON_ReplaceItemInObject(o, "alpha_pattern", cJSON_CreateObject());
    cJSON *am = cJSON_AddObjectToObject(o, "auto_mapping");
    cJSON_AddStringToObject(am, "base_model_class", "ViTForImageClassification");
    cJSON_AddStringToObject(am, "parent_library", "transformers.models.vit.modeling_vit");
    cJSON_AddStringToObject(o, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddBoolToObject(o, "fan_in_fan_out", false);
    cJSON_AddBoolToObject(o, "inference_mode", true);
    cJSON_AddBoolToObject(o, "init_lora_weights", true);
    cJSON_AddNullToObject(o, "layer_replication");
    cJSON_AddNullToObject(o, "layers_pattern");
    cJSON_AddNullToObject(o, "layers_to_transform");
    cJSON_AddObjectToObject(o, "loftq_config");
    cJSON_AddNumberToObject(o, "lora_alpha", m->lora.alpha);
    cJSON_AddBoolToObject(o, "lora_bias", false);
    cJSON_AddNumberToObject(o, "lora_dropout", m->lora.dropout);
    cJSON_AddStringToObject(o, "megatron_config", "");
    cJSON_ReplaceItemInObject(o, "megatron_config", cJSON_CreateNull());
    cJSON_AddStringToObject(o, "megatron_core", "megatron.core");
    cJSON *ms = cJSON_AddArrayToObject(o, "modules_to_save");
    if (m->lora.save_classifier) cJSON_AddItemToArray(ms, cJSON_CreateString("classifier"));
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddStringToObject(o, "peft_version", gen == PEFT_V5 ? "0.21.0" : "0.17.1");
    cJSON_AddNumberToObject(o, "r", m->lora.r);
    cJSON_AddObjectToObject(o, "rank_pattern");
    cJSON_AddNullToObject(o, "revision");
    cJSON *tm = cJSON_AddArrayToObject(o, "target_modules");
    for (int t = 0; t < m->lora.ntargets; t++) {
        const char *name = m->lora.targets[t];
        for (int k = 0; k < 6; k++) { // spell the targets in the generation asked for
            if (gen == PEFT_V4 && !strcmp(name, V5_ALIASES[k])) name = V4_NAMES[k];
            else if (gen == PEFT_V5 && k < 3 && !strcmp(name, V4_NAMES[k])) name = V5_ALIASES[k];
        }
        bool dup = false;
        for (cJSON *x = tm->child; x; x = x->next) dup |= !strcmp(x->valuestring, name);
        if (!dup) cJSON_AddItemToArray(tm, cJSON_CreateString(name));
    }
    cJSON_AddNullToObject(o, "target_parameters");
    cJSON_AddNullToObject(o, "task_type");
    cJSON_AddNullToObject(o, "trainable_token_indices");
    cJSON_AddBoolToObject(o, "use_dora", false);
    cJSON_AddBoolToObject(o, "use_qalora", false);
    cJSON_AddBoolToObject(o, "use_rslora", m->lora.rslora);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    rc = file_write_atomic(path_join(p, sizeof p, dir, "adapter_config.json"), s, strlen(s), err, errn);
    free(s);
    return rc;
}
