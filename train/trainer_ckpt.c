// trainer_ckpt.c: checkpoints. OUT/checkpoint-N holds the model's part (what TrainModel.save
// writes, by default the trainable tensors as model.safetensors), optimizer.safetensors (AdamW's exp_avg and
// exp_avg_sq per parameter, step in the metadata), scheduler.json, rng_state.json,
// trainer_state.json (HF's layout) and cgrad_state.json (what resuming needs beyond HF's state).
// It is written as OUT/.checkpoint-N.tmp, every file fsynced, then renamed into place, so a
// crash at any moment leaves only complete checkpoints; older ones are removed afterwards.
#include "trainer_ckpt.h"

#include "../base/fileio.h"
#include "../formats/weights.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_json(const char *path, cJSON *o, char *err, size_t errn) {
    char *s = cJSON_Print(o);
    int rc = file_write_atomic(path, s, strlen(s), true, err, errn);
    free(s);
    return rc;
}

static cJSON *read_json(const char *path, char *err, size_t errn) {
    char *t = file_read_all(path, 64u << 20, NULL, err, errn);
    if (!t) return NULL;
    cJSON *o = cJSON_ParseWithOpts(t, NULL, 1);
    free(t);
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errn, "%s: not a JSON object (malformed JSON)", path);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

// a number that is a float in the JSON even when it is whole ("epoch": 1.0, as the Trainer writes it)
static void add_float(cJSON *o, const char *key, double v) {
    char b[40];
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
        snprintf(b, sizeof b, "%.1f", v);
        cJSON_AddRawToObject(o, key, b);
    } else
        cJSON_AddNumberToObject(o, key, v);
}

cJSON *trainer_state_json(const TrainArgs *a, const TrainState *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNullToObject(o, "best_global_step");
    cJSON_AddNullToObject(o, "best_metric");
    cJSON_AddNullToObject(o, "best_model_checkpoint");
    add_float(o, "epoch", st->epoch);
    cJSON_AddNumberToObject(o, "eval_steps", a->eval_steps ? (double)a->eval_steps : 500);
    cJSON_AddNumberToObject(o, "global_step", (double)st->global_step);
    cJSON_AddBoolToObject(o, "is_hyper_param_search", false);
    cJSON_AddBoolToObject(o, "is_local_process_zero", true);
    cJSON_AddBoolToObject(o, "is_world_process_zero", true);
    cJSON *lh = cJSON_AddArrayToObject(o, "log_history");
    for (int i = 0; i < st->nlogs; i++) {
        cJSON *e = cJSON_CreateObject();
        const TrainLog *l = &st->logs[i];
        add_float(e, "epoch", l->epoch);
        if (l->eval) { // as the Trainer logs an evaluation
            cJSON_AddNumberToObject(e, "eval_accuracy", l->eval_accuracy);
            cJSON_AddNumberToObject(e, "eval_f1", l->eval_f1);
            cJSON_AddNumberToObject(e, "eval_loss", l->eval_loss);
            cJSON_AddNumberToObject(e, "eval_precision", l->eval_precision);
            cJSON_AddNumberToObject(e, "eval_recall", l->eval_recall);
        } else {
            cJSON_AddNumberToObject(e, "grad_norm", l->grad_norm);
            cJSON_AddNumberToObject(e, "learning_rate", l->learning_rate);
            cJSON_AddNumberToObject(e, "loss", l->loss);
        }
        cJSON_AddNumberToObject(e, "step", (double)l->step);
        cJSON_AddItemToArray(lh, e);
    }
    if (st->global_step == st->max_steps && st->global_step > 0) { // HF's closing entry
        cJSON *e = cJSON_CreateObject();
        double rt = st->runtime_s > 0 ? st->runtime_s : 1e-9;
        add_float(e, "epoch", st->epoch);
        cJSON_AddNumberToObject(e, "step", (double)st->global_step);
        cJSON_AddNumberToObject(e, "total_flos", st->total_flos);
        cJSON_AddNumberToObject(e, "train_loss", st->total_loss / (double)st->global_step);
        cJSON_AddNumberToObject(e, "train_runtime", round(st->runtime_s * 1e4) / 1e4);
        cJSON_AddNumberToObject(e, "train_samples_per_second", round((double)st->samples / rt * 1e3) / 1e3);
        cJSON_AddNumberToObject(e, "train_steps_per_second", round((double)st->global_step / rt * 1e3) / 1e3);
        cJSON_AddItemToArray(lh, e);
    }
    cJSON_AddNumberToObject(o, "logging_steps", a->logging_steps);
    cJSON_AddNumberToObject(o, "max_steps", (double)st->max_steps);
    cJSON_AddNumberToObject(o, "num_input_tokens_seen", 0);
    cJSON_AddNumberToObject(o, "num_train_epochs", a->epochs);
    cJSON_AddNumberToObject(o, "save_steps", a->save_steps);
    cJSON *sc = cJSON_AddObjectToObject(o, "stateful_callbacks");
    cJSON *tc = cJSON_AddObjectToObject(sc, "TrainerControl");
    cJSON *ar = cJSON_AddObjectToObject(tc, "args");
    cJSON_AddBoolToObject(ar, "should_epoch_stop", false);
    cJSON_AddBoolToObject(ar, "should_evaluate", false);
    cJSON_AddBoolToObject(ar, "should_log", false);
    cJSON_AddBoolToObject(ar, "should_save", true);
    cJSON_AddBoolToObject(ar, "should_training_stop", st->global_step >= st->max_steps);
    cJSON_AddObjectToObject(tc, "attributes");
    cJSON_AddNumberToObject(o, "total_flos", st->total_flos);
    cJSON_AddNumberToObject(o, "train_batch_size", a->batch_size);
    cJSON_AddNullToObject(o, "trial_name");
    cJSON_AddNullToObject(o, "trial_params");
    return o;
}

static int save_trainables(const char *dir, const TrainModel *tm, char *err, size_t errn) {
    char p[FILE_PATH_BUF];
    if (tm->save) return tm->save(tm->self, dir, err, errn);
    return nn_params_save(tm->params, path_join(p, sizeof p, dir, "model.safetensors"), true, err, errn);
}

static int load_trainables(const char *dir, const TrainModel *tm, char *err, size_t errn) {
    char p[FILE_PATH_BUF];
    if (tm->load) return tm->load(tm->self, dir, err, errn);
    return nn_params_load(tm->params, path_join(p, sizeof p, dir, "model.safetensors"), true, err, errn);
}

static int checkpoint_step(const char *name) {
    int step, used = 0;
    if (sscanf(name, "checkpoint-%d%n", &step, &used) == 1 && name[used] == 0 && step >= 0) return step;
    return -1;
}

int trainer_latest_checkpoint(const char *out, char *path, size_t n) {
    DIR *d = out ? opendir(out) : NULL;
    if (!d) return -1;
    int best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        int s = checkpoint_step(de->d_name);
        char p[FILE_PATH_BUF], ts[FILE_PATH_BUF];
        snprintf(p, sizeof p, "%s/%s", out, de->d_name);
        path_join(ts, sizeof ts, p, "trainer_state.json");
        if (s > best && file_exists(ts)) { // complete: trainer_state.json is written last
            best = s;
            snprintf(path, n, "%s", p);
        }
    }
    closedir(d);
    return best;
}

static void rotate(const char *out, int limit) {
    if (limit <= 0) return;
    int steps[4096], k = 0;
    DIR *d = opendir(out);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) && k < 4096) {
        int s = checkpoint_step(de->d_name);
        if (s >= 0) steps[k++] = s;
    }
    closedir(d);
    for (int i = 0; i < k; i++) // newest first
        for (int j = i + 1; j < k; j++)
            if (steps[j] > steps[i]) {
                int t = steps[i];
                steps[i] = steps[j];
                steps[j] = t;
            }
    for (int i = limit; i < k; i++) { // a real folder only (a symlink of that name is left alone), moved aside, then removed
        char p[FILE_PATH_BUF], e[FILE_ERR_BUF];
        snprintf(p, sizeof p, "%s/checkpoint-%d", out, steps[i]);
        stage_remove_dir(p, e, sizeof e);
    }
}

int ckpt_save(const TrainArgs *a, const TrainModel *tm, const Rng *rng, const Optim *o, TrainState *st, char *err, size_t errn) {
    const char *out = a->output_dir;
    if (!dir_exists(out) && mkdir(out, 0755) != 0) {
        return errorf(err, errn, "%s: cannot create the output folder: %s", out, strerror(errno));
    }
    char fin[FILE_PATH_BUF], p[FILE_PATH_BUF];
    snprintf(fin, sizeof fin, "%s/checkpoint-%lld", out, (long long)st->global_step);
    Stage stage; // OUT/.checkpoint-N.tmp-PID-XXXXXX; the staging folders of runs that died are removed first
    if (stage_begin(&stage, fin, err, errn) != 0) return -1;
    const char *tmp = stage.path;
    int rc = -1;
    cJSON *j = NULL;
    if (save_trainables(tmp, tm, err, errn) != 0) goto fail;
    // optimizer state by parameter name
    int np = optim_nparams(o);
    StItem *items = malloc(sizeof *items * (size_t)(2 * np));
    char **names = malloc(sizeof *names * (size_t)(2 * np));
    for (int i = 0; i < np; i++) {
        const char *nm = optim_param(o, i)->name ? optim_param(o, i)->name : "?";
        names[2 * i] = malloc(strlen(nm) + 16), names[2 * i + 1] = malloc(strlen(nm) + 16);
        sprintf(names[2 * i], "exp_avg.%s", nm), sprintf(names[2 * i + 1], "exp_avg_sq.%s", nm);
        items[2 * i] = (StItem){names[2 * i], o->m[i]};
        items[2 * i + 1] = (StItem){names[2 * i + 1], o->v[i]};
    }
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)o->t);
    int w = safetensors_save(path_join(p, sizeof p, tmp, "optimizer.safetensors"), items, 2 * np, (const char *const[]){"step", step, NULL},
                             err, errn);
    for (int i = 0; i < 2 * np; i++) free(names[i]);
    free(names), free(items);
    if (w != 0) goto fail;
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "last_epoch", (double)st->global_step);
    cJSON_AddStringToObject(j, "schedule", schedule_name(a->scheduler));
    cJSON_AddNumberToObject(j, "max_steps", (double)st->max_steps);
    if (write_json(path_join(p, sizeof p, tmp, "scheduler.json"), j, err, errn) != 0) goto fail;
    cJSON_Delete(j);
    j = cJSON_CreateObject();
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)rng->seed);
    cJSON_AddStringToObject(j, "dropout_seed", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)rng->offset);
    cJSON_AddStringToObject(j, "dropout_offset", num);
    cJSON_AddStringToObject(j, "generator", "splitmix64-counter");
    if (write_json(path_join(p, sizeof p, tmp, "rng_state.json"), j, err, errn) != 0) goto fail;
    cJSON_Delete(j);
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "total_loss", st->total_loss);
    cJSON_AddNumberToObject(j, "tr_loss_since_log", st->tr_loss_since_log);
    cJSON_AddNumberToObject(j, "steps_since_log", st->steps_since_log);
    cJSON_AddNumberToObject(j, "runtime_s", st->runtime_s);
    cJSON_AddNumberToObject(j, "samples", (double)st->samples);
    cJSON_AddNumberToObject(j, "max_steps", (double)st->max_steps);
    cJSON_AddStringToObject(j, "run_settings", a->run_settings ? a->run_settings : "");
    if (write_json(path_join(p, sizeof p, tmp, "cgrad_state.json"), j, err, errn) != 0) goto fail;
    cJSON_Delete(j);
    j = trainer_state_json(a, st);
    if (write_json(path_join(p, sizeof p, tmp, "trainer_state.json"), j, err, errn) != 0) goto fail;
    // into place; a checkpoint of the same step (a resumed run) is replaced only now
    if (stage_commit(&stage, STAGE_REPLACE_DIR, err, errn) != 0) goto fail_kept;
    snprintf(st->last_checkpoint, sizeof st->last_checkpoint, "%s", fin);
    // trainer_state.json beside the checkpoints (what HF writes at the end of train())
    cJSON_Delete(j);
    j = trainer_state_json(a, st);
    if (write_json(path_join(p, sizeof p, out, "trainer_state.json"), j, err, errn) != 0) goto fail_kept;
    rotate(out, a->save_total_limit);
    rc = 0;
    goto done;
fail:
    stage_abort(&stage);
fail_kept:
done:
    cJSON_Delete(j);
    return rc;
}

static int64_t wentry_numel(const WEntry *e) {
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    return n;
}

static double num_field(const cJSON *o, const char *k, bool *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) {
        *ok = false;
        return 0;
    }
    return v->valuedouble;
}

// the first "name=value" line of want that got lacks or has otherwise; NULL when they agree
static const char *first_difference(const char *got, const char *want, char *line, size_t n) {
    for (const char *w = want; *w;) {
        size_t L = strcspn(w, "\n");
        snprintf(line, n, "%.*s", (int)L, w);
        bool found = false;
        for (const char *g = got; *g && !found;) {
            size_t M = strcspn(g, "\n");
            found = M == L && !strncmp(g, w, L);
            g += M + (g[M] == '\n');
        }
        if (!found) return line;
        w += L + (w[L] == '\n');
    }
    return NULL;
}

int ckpt_load(const char *dir, const TrainArgs *a, const TrainModel *tm, Rng *rng, Optim *o, TrainState *st, char *err, size_t errn) {
    char p[FILE_PATH_BUF];
    int rc = -1;
    cJSON *cs = NULL, *ts = NULL, *rs = NULL;
    WFile of = {0};
    // the settings that fix the data, its split and order: a change would train on held-out
    // images or in another order, so it is refused before anything is loaded
    if (!(cs = read_json(path_join(p, sizeof p, dir, "cgrad_state.json"), err, errn))) goto out;
    const cJSON *rset = cJSON_GetObjectItemCaseSensitive(cs, "run_settings");
    char line[512];
    const char *diff =
        cJSON_IsString(rset) && a->run_settings ? first_difference(rset->valuestring, a->run_settings, line, sizeof line) : NULL;
    if (diff) {
        snprintf(err, errn, "%s: made with other settings than %s: resume with the checkpoint's (its cgrad_state.json lists them)", dir,
                 diff);
        goto out;
    }
    if (load_trainables(dir, tm, err, errn) != 0) goto out;
    // optimizer
    if (safetensors_open(&of, path_join(p, sizeof p, dir, "optimizer.safetensors"), err, errn) != 0) goto out;
    for (int i = 0; i < optim_nparams(o); i++) {
        char k1[600], k2[600];
        snprintf(k1, sizeof k1, "exp_avg.%s", optim_param(o, i)->name);
        snprintf(k2, sizeof k2, "exp_avg_sq.%s", optim_param(o, i)->name);
        const WEntry *a1 = wfile_find(&of, k1), *a2 = wfile_find(&of, k2);
        size_t nb = (size_t)tensor_numel(o->m[i]) * 4;
        if (!a1 || !a2 || a1->dtype != WD_F32 || a2->dtype != WD_F32 || wentry_numel(a1) != tensor_numel(o->m[i]) ||
            wentry_numel(a2) != tensor_numel(o->m[i])) {
            snprintf(err, errn, "%s: optimizer state for '%s' is missing or mis-shaped", p, optim_param(o, i)->name);
            goto out;
        }
        memcpy(o->m[i]->data, a1->data, nb);
        memcpy(o->v[i]->data, a2->data, nb);
    }
    const char *stp = wfile_metadata(&of, "step");
    o->t = stp ? strtoll(stp, NULL, 10) : 0;
    // rng, trainer state, our counters
    if (!(rs = read_json(path_join(p, sizeof p, dir, "rng_state.json"), err, errn))) goto out;
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(rs, "dropout_offset");
    if (!cJSON_IsString(off)) {
        snprintf(err, errn, "%s: no dropout_offset", p);
        goto out;
    }
    rng->offset = strtoull(off->valuestring, NULL, 10);
    if (!(ts = read_json(path_join(p, sizeof p, dir, "trainer_state.json"), err, errn))) goto out;
    bool ok = true;
    int64_t gs = (int64_t)num_field(ts, "global_step", &ok), ms = (int64_t)num_field(cs, "max_steps", &ok);
    st->epoch = num_field(ts, "epoch", &ok);
    st->total_flos = num_field(ts, "total_flos", &ok);
    st->total_loss = num_field(cs, "total_loss", &ok);
    st->tr_loss_since_log = num_field(cs, "tr_loss_since_log", &ok);
    st->steps_since_log = (int)num_field(cs, "steps_since_log", &ok);
    st->runtime_s = num_field(cs, "runtime_s", &ok);
    st->samples = (int64_t)num_field(cs, "samples", &ok);
    if (!ok) {
        snprintf(err, errn, "%s: trainer_state.json or cgrad_state.json lacks a field", dir);
        goto out;
    }
    if (ms != st->max_steps || gs < 0 || gs > ms || o->t != gs) {
        snprintf(err, errn, "%s: made for %lld steps at step %lld, but these settings give %lld steps: resume with the same settings", dir,
                 (long long)ms, (long long)gs, (long long)st->max_steps);
        goto out;
    }
    st->global_step = gs;
    const cJSON *lh = cJSON_GetObjectItemCaseSensitive(ts, "log_history");
    for (const cJSON *e = lh ? lh->child : NULL; e; e = e->next) {
        bool k = true, ev = cJSON_GetObjectItemCaseSensitive(e, "eval_loss") != NULL;
        TrainLog l;
        if (ev) // an evaluation entry
            l = (TrainLog){.epoch = num_field(e, "epoch", &k),
                           .step = (int64_t)num_field(e, "step", &k),
                           .eval = true,
                           .eval_loss = num_field(e, "eval_loss", &k),
                           .eval_accuracy = num_field(e, "eval_accuracy", &k),
                           .eval_precision = num_field(e, "eval_precision", &k),
                           .eval_recall = num_field(e, "eval_recall", &k),
                           .eval_f1 = num_field(e, "eval_f1", &k)};
        else
            l = (TrainLog){.loss = num_field(e, "loss", &k),
                           .grad_norm = num_field(e, "grad_norm", &k),
                           .learning_rate = num_field(e, "learning_rate", &k),
                           .epoch = num_field(e, "epoch", &k),
                           .step = (int64_t)num_field(e, "step", &k)};
        if (!k) continue; // the closing summary entry
        st->logs = realloc(st->logs, sizeof *st->logs * (size_t)(st->nlogs + 1));
        st->logs[st->nlogs++] = l;
    }
    snprintf(st->last_checkpoint, sizeof st->last_checkpoint, "%s", dir);
    rc = 0;
out:
    cJSON_Delete(cs), cJSON_Delete(ts), cJSON_Delete(rs);
    wfile_close(&of);
    return rc;
}
