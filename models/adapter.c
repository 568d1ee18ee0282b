// adapter.c: reading and writing peft adapters.
#include "adapter.h"
#include "json_strict.h"

#include "../base/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const V5_ALIASES[] = {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"};
static const char *const V4_NAMES[] = {"query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"};

int adapter_spell_targets(char in[][32], int n, PeftGen to, char out[][32], int *nout, char *err, size_t errn) {
    bool want[6] = {0};
    for (int t = 0; t < n; t++) {
        int k = -1;
        for (int i = 0; i < 6; i++)
            if (!strcmp(in[t], V5_ALIASES[i]) || !strcmp(in[t], V4_NAMES[i])) k = i;
        if (!strcmp(in[t], "dense"))
            want[3] = want[4] = want[5] = true; // v4's one name for all three
        else if (k < 0) {
            return errorf(err, errn, "target module '%s' has no counterpart in the other generation", in[t]);
        } else
            want[k] = true;
    }
    *nout = 0;
    bool all_dense = want[3] && want[4] && want[5];
    if (to == PEFT_V4 && want[5] && !all_dense) { // "output.dense" would also match attention.output.dense
        return errorf(err, errn, "fc2 without o_proj and fc1 has no unambiguous transformers-4 target name");
    }
    for (int i = 0; i < 6; i++) {
        if (!want[i] || (to == PEFT_V4 && all_dense && i >= 3)) continue;
        snprintf(out[(*nout)++], 32, "%s", to == PEFT_V4 ? V4_NAMES[i] : V5_ALIASES[i]);
    }
    if (to == PEFT_V4 && all_dense) snprintf(out[(*nout)++], 32, "dense");
    return 0;
}

int adapter_config_load(AdapterConfig *ac, const char *path, char *err, size_t errn) {
    memset(ac, 0, sizeof *ac);
    char *txt = file_read_all(path, 16u << 20, NULL, err, errn);
    if (!txt) return -1;
    cJSON *o = cJSON_ParseWithOpts(txt, NULL, 1);
    free(txt);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errn, "%s: not a JSON object (malformed JSON)", path);
        goto out;
    }
    if (json_check_unique_keys(o, path, err, errn) != 0) goto out;
    cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))) {
        snprintf(err, errn, "%s: peft_type must be \"LORA\"", path);
        goto out;
    }
    cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "r"), *al = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha"),
          *dr = cJSON_GetObjectItemCaseSensitive(o, "lora_dropout"), *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules"),
          *ms = cJSON_GetObjectItemCaseSensitive(o, "modules_to_save"), *bias = cJSON_GetObjectItemCaseSensitive(o, "bias"),
          *rs = cJSON_GetObjectItemCaseSensitive(o, "use_rslora"), *dora = cJSON_GetObjectItemCaseSensitive(o, "use_dora"),
          *fifo = cJSON_GetObjectItemCaseSensitive(o, "fan_in_fan_out"),
          *bm = cJSON_GetObjectItemCaseSensitive(o, "base_model_name_or_path");
    if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) || r->valuedouble < 1 || r->valuedouble > 4096) {
        snprintf(err, errn, "%s: \"r\" must be a positive integer", path);
        goto out;
    }
    if (!cJSON_IsNumber(al) || !(al->valuedouble > 0)) {
        snprintf(err, errn, "%s: \"lora_alpha\" must be a positive number", path);
        goto out;
    }
    if (dr && !cJSON_IsNull(dr) && (!cJSON_IsNumber(dr) || !(dr->valuedouble >= 0 && dr->valuedouble < 1))) {
        snprintf(err, errn, "%s: \"lora_dropout\" must be in [0, 1)", path);
        goto out;
    }
    if (bias && cJSON_IsString(bias) && strcmp(bias->valuestring, "none")) {
        snprintf(err, errn, "%s: bias \"%s\" is not supported (only \"none\")", path, bias->valuestring);
        goto out;
    }
    if (cJSON_IsTrue(dora)) {
        snprintf(err, errn, "%s: use_dora is not supported", path);
        goto out;
    }
    // fields with which peft gives some modules another rank, alpha or no LoRA at all: refused
    // unless empty (peft writes {} and null), rather than silently applied to every module alike
    static const char *const PER_MODULE[] = {"alpha_pattern", "rank_pattern", "layers_to_transform", "layers_pattern", "exclude_modules"};
    for (size_t k = 0; k < sizeof PER_MODULE / sizeof *PER_MODULE; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, PER_MODULE[k]);
        if (v && !cJSON_IsNull(v) && !((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child)) {
            snprintf(err, errn, "%s: \"%s\" is not supported (it would change the LoRA of some modules); it must be empty or null", path,
                     PER_MODULE[k]);
            goto out;
        }
    }
    if (cJSON_IsTrue(fifo)) {
        snprintf(err, errn, "%s: fan_in_fan_out is not supported for ViT linears", path);
        goto out;
    }
    if (cJSON_IsString(tm)) { // a regex, full-matched against module names
        if (!tm->valuestring[0] || strlen(tm->valuestring) >= sizeof ac->spec.target_regex) {
            snprintf(err, errn, "%s: the target_modules regex must have 1 to %zu characters", path, sizeof ac->spec.target_regex - 1);
            goto out;
        }
        snprintf(ac->spec.target_regex, sizeof ac->spec.target_regex, "%s", tm->valuestring);
    } else if (!cJSON_IsArray(tm) || cJSON_GetArraySize(tm) < 1 || cJSON_GetArraySize(tm) > VIT_MAX_TARGETS) {
        snprintf(err, errn, "%s: \"target_modules\" must be a list of 1 to %d module names or a regex string", path, VIT_MAX_TARGETS);
        goto out;
    }
    ac->spec.r = (int)r->valuedouble;
    ac->spec.alpha = al->valuedouble;
    ac->spec.dropout = dr && cJSON_IsNumber(dr) ? dr->valuedouble : 0.0;
    ac->spec.rslora = cJSON_IsTrue(rs);
    ac->gen = PEFT_V4;
    for (cJSON *t = cJSON_IsArray(tm) ? tm->child : NULL; t; t = t->next) {
        if (!cJSON_IsString(t) || strlen(t->valuestring) >= sizeof ac->spec.targets[0]) {
            snprintf(err, errn, "%s: target_modules holds something that is not a module name", path);
            goto out;
        }
        for (size_t k = 0; k < sizeof V5_ALIASES / sizeof *V5_ALIASES; k++)
            if (!strcmp(t->valuestring, V5_ALIASES[k])) ac->gen = PEFT_V5;
        snprintf(ac->spec.targets[ac->spec.ntargets++], sizeof ac->spec.targets[0], "%s", t->valuestring);
    }
    if (ms && !cJSON_IsNull(ms)) {
        if (!cJSON_IsArray(ms)) {
            snprintf(err, errn, "%s: \"modules_to_save\" must be a list", path);
            goto out;
        }
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
    char p[FILE_PATH_BUF];
    if (!dir_exists(dir)) {
        return errorf(err, errn, "%s: not a directory", dir);
    }
    if (adapter_config_load(&ac, path_join(p, sizeof p, dir, "adapter_config.json"), err, errn) != 0) return -1;
    Checkpoint ck;
    if (checkpoint_open_file(&ck, path_join(p, sizeof p, dir, "adapter_model.safetensors"), vit_canonical_name, err, errn) != 0) return -1;
    int rc = -1;
    Rng rng = rng_new(0);
    // a classifier with more rows than the head: extend the head first
    const WEntry *cw = checkpoint_find(&ck, "classifier.weight"), *cb = checkpoint_find(&ck, "classifier.bias");
    if (ac.spec.save_classifier && (!cw || !cb)) {
        snprintf(err, errn, "%s: modules_to_save names the classifier but the adapter lacks its weight or bias", p);
        goto out;
    }
    if (cw) {
        if (cw->ndim != 2 || cw->shape[1] != m->cfg.hidden_size || cw->shape[0] < m->cfg.num_labels || cw->shape[0] > (1 << 20) || !cb ||
            cb->ndim != 1 || cb->shape[0] != cw->shape[0]) {
            snprintf(err, errn, "%s: the classifier [%lld, %lld] does not fit the model (hidden size %d, %d labels)", p,
                     (long long)cw->shape[0], cw->ndim > 1 ? (long long)cw->shape[1] : 0LL, m->cfg.hidden_size, m->cfg.num_labels);
            goto out;
        }
        int old = m->cfg.num_labels, rows = (int)cw->shape[0];
        if (rows > old) {
            if (vit_extend_head(m, rows, &rng, err, errn) != 0) goto out;
            char cp[FILE_PATH_BUF];
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
            char s[SHAPE_STR_BUF];
            snprintf(err, errn, "%s: tensor '%s' does not have the shape %s the model needs", p, e->name, shape_str(t, s, sizeof s));
            goto out;
        }
        Tensor *src = wentry_tensor(m->pc, e, false);
        if (!tensor_all_finite(src)) {
            snprintf(err, errn, "%s: tensor '%s' holds NaN or Inf values", p, e->name);
            goto out;
        }
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
        return errorf(err, errn, "the model has no LoRA adapter to save");
    }
    if (!dir_exists(dir) && mkdir(dir, 0755) != 0) {
        return errorf(err, errn, "%s: cannot create the directory", dir);
    }
    StItem *items = malloc(sizeof *items * (size_t)m->params.n);
    char **names = calloc((size_t)m->params.n, sizeof *names);
    int n = 0;
    for (int i = 0; i < m->params.n; i++) {
        const char *nm = m->params.p[i].name;
        bool lora = strstr(nm, ".lora_") != NULL, cls = m->lora.save_classifier && !strncmp(nm, "classifier.", 11);
        if (!lora && !cls) continue;
        char v[512], full[600];
        if (gen == PEFT_V5)
            vit_v5_name(nm, v, sizeof v);
        else
            snprintf(v, sizeof v, "%s", nm);
        snprintf(full, sizeof full, "base_model.model.%s", v);
        names[n] = strdup(full);
        items[n] = (StItem){names[n], m->params.p[i].t};
        n++;
    }
    char p[FILE_PATH_BUF];
    int rc = safetensors_save(path_join(p, sizeof p, dir, "adapter_model.safetensors"), items, n,
                              (const char *const[]){"format", "pt", NULL}, err, errn);
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
    if (m->lora.target_regex[0])
        cJSON_AddStringToObject(o, "target_modules", m->lora.target_regex); // as given: a regex names modules itself
    else {
        cJSON *tm = cJSON_AddArrayToObject(o, "target_modules");
        char spelled[VIT_MAX_TARGETS][32];
        int ns = 0;
        if (adapter_spell_targets((char(*)[32])m->lora.targets, m->lora.ntargets, gen, spelled, &ns, err, errn) != 0) {
            cJSON_Delete(o);
            return -1;
        }
        for (int t = 0; t < ns; t++) cJSON_AddItemToArray(tm, cJSON_CreateString(spelled[t]));
    }
    cJSON_AddNullToObject(o, "target_parameters");
    cJSON_AddNullToObject(o, "task_type");
    cJSON_AddNullToObject(o, "trainable_token_indices");
    cJSON_AddBoolToObject(o, "use_dora", false);
    cJSON_AddBoolToObject(o, "use_qalora", false);
    cJSON_AddBoolToObject(o, "use_rslora", m->lora.rslora);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    rc = file_write_atomic(path_join(p, sizeof p, dir, "adapter_config.json"), s, strlen(s), true, err, errn);
    free(s);
    return rc;
}

static int convert_targets(cJSON *tm, PeftGen to, const char *path, char *err, size_t errn) {
    if (cJSON_IsString(tm)) {
        return errorf(err, errn, "%s: target_modules is a regex ('%s'); it cannot be respelled for the other generation: edit it by hand",
                      path, tm->valuestring);
    }
    char in[VIT_MAX_TARGETS][32], out[VIT_MAX_TARGETS][32], e2[512];
    int n = 0, nout = 0;
    for (cJSON *t = tm ? tm->child : NULL; t && n < VIT_MAX_TARGETS; t = t->next) snprintf(in[n++], 32, "%s", t->valuestring);
    if (adapter_spell_targets(in, n, to, out, &nout, e2, sizeof e2) != 0) {
        return errorf(err, errn, "%s: %s", path, e2);
    }
    while (cJSON_GetArraySize(tm)) cJSON_DeleteItemFromArray(tm, 0);
    for (int i = 0; i < nout; i++) cJSON_AddItemToArray(tm, cJSON_CreateString(out[i]));
    return 0;
}

int adapter_convert(const char *in, const char *out, PeftGen to, char *err, size_t errn) {
    char cp[FILE_PATH_BUF], wp[FILE_PATH_BUF];
    AdapterConfig ac; // validates the config as a whole
    if (adapter_config_load(&ac, path_join(cp, sizeof cp, in, "adapter_config.json"), err, errn) != 0) return -1;
    char *txt = file_read_all(cp, 16u << 20, NULL, err, errn);
    cJSON *o = txt ? cJSON_ParseWithOpts(txt, NULL, 1) : NULL;
    free(txt);
    WFile f = {0};
    StItem *items = NULL;
    char **names = NULL;
    int rc = -1, n = 0;
    Ctx *c = ctx_new(1 << 20);
    if (!o || convert_targets(cJSON_GetObjectItemCaseSensitive(o, "target_modules"), to, cp, err, errn) != 0) goto done;
    if (safetensors_open(&f, path_join(wp, sizeof wp, in, "adapter_model.safetensors"), err, errn) != 0) goto done;
    items = calloc((size_t)(f.n ? f.n : 1), sizeof *items);
    names = calloc((size_t)(f.n ? f.n : 1), sizeof *names);
    for (int i = 0; i < f.n; i++) {
        char canon[1024], spelled[1024];
        vit_canonical_name(f.e[i].name, canon, sizeof canon); // v4 names, prefix and .default removed
        if (to == PEFT_V5)
            vit_v5_name(canon, spelled, sizeof spelled);
        else
            snprintf(spelled, sizeof spelled, "%s", canon);
        names[n] = malloc(strlen(spelled) + 32);
        sprintf(names[n], "base_model.model.%s", spelled);
        if (f.e[i].dtype != WD_F32) {
            snprintf(err, errn, "%s: tensor '%s' is not float32", wp, f.e[i].name);
            n++;
            goto done;
        }
        items[n] = (StItem){names[n], wentry_tensor(c, &f.e[i], true)}; // unchanged bytes
        n++;
    }
    if (!dir_exists(out) && mkdir(out, 0755) != 0) {
        snprintf(err, errn, "%s: cannot create the directory", out);
        goto done;
    }
    if (safetensors_save(path_join(wp, sizeof wp, out, "adapter_model.safetensors"), items, n, (const char *const *)f.meta, err, errn) != 0)
        goto done;
    char *s = cJSON_Print(o);
    int w = file_write_atomic(path_join(cp, sizeof cp, out, "adapter_config.json"), s, strlen(s), true, err, errn);
    free(s);
    if (w != 0) goto done;
    char lp[FILE_PATH_BUF], lq[FILE_PATH_BUF]; // the labels of added classes travel with the adapter
    if (file_exists(path_join(lp, sizeof lp, in, "config.json"))) {
        size_t L;
        char *cfg = file_read_all(lp, 64u << 20, &L, err, errn);
        w = cfg ? file_write_atomic(path_join(lq, sizeof lq, out, "config.json"), cfg, L, true, err, errn) : -1;
        free(cfg);
        if (w != 0) goto done;
    }
    rc = n;
done:
    for (int i = 0; i < n; i++) free(names[i]);
    free(names), free(items);
    wfile_close(&f);
    cJSON_Delete(o);
    ctx_free(c);
    return rc;
}
