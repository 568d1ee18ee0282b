// test_trainer.c: optimizers, schedules, decay groups and metrics against hand-computed values;
// the Trainer against golden/tiny_train and the real HF Trainer's runs (golden/trainer_hf);
// checkpoints: rotation, interrupted saves, bit-exact resume; NaN stops.
#include "../../base/fileio.h"
#include "../../data/image.h"
#include "../../models/vit_train.h"
#include "../../train/tboard.h"

#include "../check_util.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLD TEST_DATA "/golden"
static char err[1024], dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cgrad_tr_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

// ---------------------------------------------------------------- hand-computed

START_TEST(test_adamw_and_sgd_by_hand) {
    Ctx *c = ctx_new(1 << 16);
    Tensor *p = tensor_full(c, DT_F32, 1, (int64_t[]){1}, 1.0);
    ag_set_requires_grad(p, true);
    tensor_fill(p->grad, 0.5);
    OptimGroup g = {(Tensor *[]){p}, 1, 1.0, 0.01};
    Optim *o = optim_adamw(&g, 1, 0.9, 0.999, 1e-8);
    optim_step(o, 0.1);
    // p = 1 * (1 - 0.1 * 0.01) = 0.999; m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25; p -= 0.1 * 0.5 / (0.5 + 1e-8)
    ck_assert_msg(fabs(tensor_get_flat(p, 0) - (0.999 - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-7, "%g", tensor_get_flat(p, 0));
    optim_step(o, 0.1); // same gradient again: m_hat = v_hat^(1/2) = 0.5 -> another 0.1 step after decay
    double p1 = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), want = p1 * (1 - 0.001) - 0.1 * 0.5 / (0.5 + 1e-8);
    ck_assert_msg(fabs(tensor_get_flat(p, 0) - want) < 1e-6, "%g vs %g", tensor_get_flat(p, 0), want);
    optim_free(o);
    // SGD with momentum 0.9 and Nesterov: b1 = g; d = g + 0.9 b1 = 0.95; p = 1 - 0.1 * 0.95
    tensor_fill(p, 1.0);
    g.weight_decay = 0;
    Optim *s = optim_sgd(&g, 1, 0.9, 0, true);
    optim_step(s, 0.1);
    ck_assert(fabs(tensor_get_flat(p, 0) - (1 - 0.1 * 0.95)) < 1e-7);
    optim_step(s, 0.1); // b2 = 0.9 * 0.5 + 0.5 = 0.95; d = 0.5 + 0.9 * 0.95 = 1.355
    ck_assert(fabs(tensor_get_flat(p, 0) - (0.905 - 0.1355)) < 1e-6);
    optim_free(s);
    // clipping: grads (3, 4) -> norm 5, scaled to norm 1 (by 1 / (5 + 1e-6)); returns 5
    Tensor *q = tensor_new(c, DT_F32, 1, (int64_t[]){2});
    ag_set_requires_grad(q, true);
    ((float *)q->grad->data)[0] = 3, ((float *)q->grad->data)[1] = 4;
    ck_assert(fabs(optim_clip_grad_norm(&q, 1, 1.0) - 5.0) < 1e-9);
    ck_assert(fabs(tensor_get_flat(q->grad, 0) - 3 / (5 + 1e-6)) < 1e-7);
    ck_assert(fabs(optim_clip_grad_norm(&q, 1, 10.0) - 1.0) < 1e-6); // below the bound: unchanged
    ck_assert(fabs(tensor_get_flat(q->grad, 1) - 4 / (5 + 1e-6)) < 1e-7);
    ctx_free(c);
}
END_TEST

START_TEST(test_schedules_and_decay_groups) {
    Schedule lin = {SCHED_LINEAR, 45, 0};
    ck_assert(schedule_factor(&lin, 0) == 1.0);
    ck_assert(fabs(schedule_factor(&lin, 1) - 44.0 / 45) < 1e-15); // 0.0005867 at lr 6e-4, as HF logs
    ck_assert(fabs(schedule_factor(&lin, 44) - 1.0 / 45) < 1e-15);
    Schedule wl = {SCHED_LINEAR, 10, 4};
    ck_assert(schedule_factor(&wl, 0) == 0 && schedule_factor(&wl, 2) == 0.5 && schedule_factor(&wl, 4) == 1.0);
    ck_assert(fabs(schedule_factor(&wl, 7) - 0.5) < 1e-15);
    Schedule cs = {SCHED_COSINE, 10, 2};
    ck_assert(fabs(schedule_factor(&cs, 6) - 0.5) < 1e-12 && fabs(schedule_factor(&cs, 2) - 1) < 1e-12);
    Schedule cst = {SCHED_CONSTANT, 10, 5};
    ck_assert(schedule_factor(&cst, 1) == 0.2 && schedule_factor(&cst, 9) == 1.0);
    ck_assert_int_eq(schedule_warmup_steps(45, 0, 0.1), 5); // ceil(4.5)
    ck_assert_int_eq(schedule_warmup_steps(45, 3, 0.1), 3);
    ck_assert(optim_decays("vit.encoder.layer.0.attention.attention.query.lora_A.weight"));
    ck_assert(optim_decays("classifier.weight"));
    ck_assert(!optim_decays("classifier.bias"));
    ck_assert(!optim_decays("vit.encoder.layer.3.layernorm_before.weight"));
    ck_assert(!optim_decays("vit.layernorm.weight"));
    ck_assert(!optim_decays("blocks.0.norm1.weight") && !optim_decays("norm.weight") && optim_decays("normal_head.weight"));
}
END_TEST

// optim_hf_groups returns the group count that optim_adamw takes (it returned the parameter count,
// which crashed optim_adamw), and its groups are freed with optim_groups_free
START_TEST(test_hf_groups_feed_the_optimizer) {
    Ctx *pc = ctx_new(1 << 16);
    NnParams ps = {0};
    const char *names[] = {"fc.weight", "fc.bias", "norm.weight", "frozen.weight", "out.weight"};
    for (int i = 0; i < 5; i++) {
        Tensor *t = tensor_ones(pc, DT_F32, SHAPE(3));
        if (i != 3) ag_set_requires_grad(t, true);
        nn_params_add(&ps, names[i], t);
    }
    OptimGroup g[2];
    int ng = optim_hf_groups(&ps, 0.1, g);
    ck_assert_int_eq(ng, 2);
    ck_assert_int_eq(g[0].n, 2); // fc.weight, out.weight decay
    ck_assert_int_eq(g[1].n, 2); // fc.bias, norm.weight do not; frozen.weight is left out
    Optim *o = optim_adamw(g, ng, 0.9, 0.999, 1e-8);
    optim_groups_free(g, ng);
    ck_assert_ptr_null(g[0].params);
    ck_assert_int_eq(optim_nparams(o), 4);
    for (int i = 0; i < 4; i++) tensor_fill(optim_param(o, i)->grad, 1.0);
    optim_step(o, 0.01);
    ck_assert(tensor_get_flat(nn_params_get(&ps, "fc.weight"), 0) < tensor_get_flat(nn_params_get(&ps, "fc.bias"), 0)); // decayed more
    ck_assert(tensor_get_flat(nn_params_get(&ps, "frozen.weight"), 0) == 1.0);
    optim_free(o);
    nn_params_free(&ps);
    ctx_free(pc);
}
END_TEST

START_TEST(test_metrics_by_hand) {
    Metrics mt = {.nclasses = 3};
    int64_t conf[9] = {5, 1, 0, /* true 1: */ 2, 3, 1, /* true 2: */ 0, 0, 4};
    mt.confusion = conf;
    metrics_finish(&mt, 1);
    ck_assert(mt.n == 16 && mt.tp == 3 && mt.fp == 1 && mt.fn == 3 && mt.tn == 9);
    ck_assert(fabs(mt.accuracy - 12.0 / 16) < 1e-15 && fabs(mt.precision - 0.75) < 1e-15 && fabs(mt.recall - 0.5) < 1e-15);
    ck_assert(fabs(mt.f1 - 0.6) < 1e-15);
    int64_t none[9] = {4, 0, 0, 0, 0, 0, 0, 0, 2}; // the target never appears nor is predicted
    mt.confusion = none;
    metrics_finish(&mt, 1);
    ck_assert(mt.tp == 0 && mt.precision == 0 && mt.recall == 0 && mt.f1 == 0 && mt.accuracy == 1.0);
    int64_t zero[9] = {0};
    mt.confusion = zero;
    metrics_finish(&mt, 0);
    ck_assert(mt.n == 0 && mt.accuracy == 0);
}
END_TEST

// ---------------------------------------------------------------- golden training runs

typedef struct {
    WFile ref;
    int checked, params;
    double worst;
    const char *prefix; // "stepK.param." key prefix
    const VitModel *m;
} StepCheck;

static double rel(double a, double b) { return fabs(a - b) / (1e-7 / 1e-5 + fabs(b)); } // 1e-5 rel, 1e-7 abs

static void on_step(void *ud, int64_t step, double loss, double gn, double lr) {
    StepCheck *sc = ud;
    const VitModel *m = sc->m;
    char k[600];
    snprintf(k, sizeof k, "step%lld.loss", (long long)step);
    const WEntry *e = wfile_find(&sc->ref, k);
    Ctx *c = ctx_new(1 << 16);
    if (e) { // tiny_train has loss, grad_norm and lr per step
        Tensor *r = wentry_tensor(c, e, false);
        ck_assert_msg(fabs(loss - tensor_get_flat(r, 0)) <= 1e-5 * fabs(tensor_get_flat(r, 0)) + 1e-7, "step %lld loss %.9g vs %.9g",
                      (long long)step, loss, tensor_get_flat(r, 0));
        snprintf(k, sizeof k, "step%lld.grad_norm", (long long)step);
        double g = tensor_get_flat(wentry_tensor(c, wfile_find(&sc->ref, k), false), 0);
        ck_assert_msg(fabs(gn - g) <= 1e-5 * g + 1e-7, "step %lld grad_norm %.9g vs %.9g", (long long)step, gn, g);
        snprintf(k, sizeof k, "step%lld.lr", (long long)step);
        double l = tensor_get_flat(wentry_tensor(c, wfile_find(&sc->ref, k), false), 0);
        ck_assert_msg(fabs(lr - l) <= 1e-5 * l + 1e-12, "step %lld lr %.9g vs %.9g", (long long)step, lr, l);
    }
    // every trainable tensor after the step
    int found = 0;
    for (int i = 0; i < sc->ref.n; i++) {
        char pre[64], canon[600];
        snprintf(pre, sizeof pre, "step%lld.param.", (long long)step);
        if (strncmp(sc->ref.e[i].name, pre, strlen(pre))) continue;
        Tensor *p = nn_params_get(&m->params, vit_canonical_name(sc->ref.e[i].name + strlen(pre), canon, sizeof canon));
        ck_assert_msg(p != NULL, "no parameter %s", canon);
        Tensor *r = wentry_tensor(c, &sc->ref.e[i], false);
        for (int64_t j = 0; j < tensor_numel(r); j++) {
            double d = rel(tensor_get_flat(p, j), tensor_get_flat(r, j));
            sc->worst = fmax(sc->worst, d);
            ck_assert_msg(d <= 1e-5, "step %lld %s[%lld]: %.9g vs %.9g", (long long)step, canon, (long long)j, tensor_get_flat(p, j),
                          tensor_get_flat(r, j));
        }
        found++;
    }
    ck_assert_int_eq(found, 10);
    sc->checked++;
    ctx_free(c);
}

static void load_lora_model(VitModel *m) {
    ck_assert_msg(vit_load(m, GOLD "/tiny", err, sizeof err) == 0, "%s", err);
    ck_assert_msg(adapter_load(m, GOLD "/tiny_lora", err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < m->cfg.num_hidden_layers; i++) { // golden runs: lora_dropout 0
        if (m->layers[i].lora[VIT_Q]) m->layers[i].lora[VIT_Q]->dropout = 0;
        if (m->layers[i].lora[VIT_V]) m->layers[i].lora[VIT_V]->dropout = 0;
    }
}

static void data_from(WFile *f, Dataset *d) {
    Ctx *c = ctx_new(1 << 20);
    Tensor *x = wentry_tensor(c, wfile_find(f, "data.pixel_values"), false), *y = wentry_tensor(c, wfile_find(f, "data.labels"), false);
    dataset_from_tensors(d, x->data, 3 * 32 * 32, y->data, (int)x->shape[0], 10);
    ctx_free(c);
}

// golden/tiny_train started from lora_A tensors other than tiny_lora's saved ones (lora_B and the
// classifier start as saved: they moved by exactly lr in step 1). AdamW's first step moves each
// element by lr * g / (|g| + eps) after the decay, so the start is A0 = (A1 + lr u) / (1 - lr wd)
// with u from the gradient at A0: a fixed point our engine finds in a few iterations.
static void tiny_train_start(VitModel *m, WFile *ref, const Dataset *d) {
    Ctx *c = ctx_new(1 << 22);
    const double lr = 6e-4, wd = 0.01;
    for (int it = 0; it < 6; it++) {
        if (it > 0) {
            ctx_reset(c);
            for (int i = 0; i < m->params.n; i++)
                if (m->params.p[i].t->grad) ag_zero_grad(&m->params.p[i].t, 1);
            for (int mb = 0; mb < 2; mb++) { // the first window: samples 0..3 in two micro-batches
                Tensor *x = tensor_from_buffer(c, DT_F32, 4, (int64_t[]){2, 3, 32, 32}, d->pre + (size_t)mb * 2 * 3072);
                Tensor *y = tensor_from_buffer(c, DT_I64, 1, (int64_t[]){2}, d->labels + mb * 2);
                ck_assert_int_eq(ag_backward(c, ag_cross_entropy_scaled(c, vit_forward(c, m, x, NULL), y, 0.25)), 0);
            }
        }
        double ss = 0, clip = 1;
        for (int i = 0; it > 0 && i < m->params.n; i++)
            if (m->params.p[i].t->grad)
                for (int64_t j = 0; j < tensor_numel(m->params.p[i].t); j++) ss += pow(tensor_get_flat(m->params.p[i].t->grad, j), 2);
        if (sqrt(ss) > 1.0) clip = 1.0 / (sqrt(ss) + 1e-6); // the step saw clipped gradients
        for (int i = 0; i < m->params.n; i++) {
            const char *nm = m->params.p[i].name;
            if (!strstr(nm, ".lora_A.")) continue;
            char v5[600], key[700];
            vit_v5_name(nm, v5, sizeof v5);
            snprintf(key, sizeof key, "step1.param.base_model.model.%s", v5);
            char *dot = strstr(key, ".lora_A.weight");
            memmove(dot + 22, dot + 14, strlen(dot + 14) + 1), memcpy(dot, ".lora_A.default.weight", 22);
            Tensor *A1 = wentry_tensor(c, wfile_find(ref, key), false), *A = m->params.p[i].t;
            for (int64_t j = 0; j < tensor_numel(A); j++) {
                double g = it > 0 ? clip * tensor_get_flat(A->grad, j) : 0, u = g / (fabs(g) + 1e-8);
                tensor_set_flat(A, j, (tensor_get_flat(A1, j) + lr * u) / (1 - lr * wd));
            }
        }
    }
    for (int i = 0; i < m->params.n; i++)
        if (m->params.p[i].t->grad) ag_zero_grad(&m->params.p[i].t, 1);
    ctx_free(c);
}

START_TEST(test_tiny_train_golden) {
    VitModel m;
    load_lora_model(&m);
    StepCheck sc = {0};
    sc.m = &m;
    ck_assert(safetensors_open(&sc.ref, GOLD "/tiny_train/steps.safetensors", err, sizeof err) == 0);
    Dataset d;
    data_from(&sc.ref, &d);
    tiny_train_start(&m, &sc.ref, &d);
    Loader L;
    VitTask task;
    loader_init(&L, &d, NULL, NULL, 32, 32, false);
    int64_t items[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = 2, a.grad_accum = 2, a.epochs = 2, a.lr = 6e-4, a.weight_decay = 0.01, a.shuffle = false;
    a.logging_steps = 1, a.log = NULL, a.on_step = on_step, a.on_step_ud = &sc;
    TrainState st;
    ck_assert_msg(trainer_train(vit_task(&task, &m, &L, PEFT_V4), items, 8, &a, &st, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sc.checked, 4);
    ck_assert_int_eq(st.global_step, 4);
    printf("tiny_train: 4 steps, worst parameter deviation %.3g (of 1e-5 relative)\n", sc.worst);
    train_state_free(&st);
    loader_free(&L);
    dataset_free(&d);
    wfile_close(&sc.ref);
    vit_free(&m);
}
END_TEST

// replays the real HF Trainer's recorded order; compares every step's tensors and the log history
static void hf_run(const char *name, int expect_steps) {
    char p[512];
    snprintf(p, sizeof p, "%s/trainer_hf/%s/run.json", GOLD, name);
    char *txt = file_read_all(p, 1 << 24, NULL, err, sizeof err);
    cJSON *run = cJSON_Parse(txt);
    free(txt);
    int n = cJSON_GetObjectItem(run, "n")->valueint, epochs = cJSON_GetObjectItem(run, "epochs")->valueint;
    int64_t *order = malloc(sizeof *order * (size_t)(n * epochs)), k = 0;
    for (cJSON *mb = cJSON_GetObjectItem(run, "micro_batches_in_order")->child; mb; mb = mb->next)
        for (cJSON *x = mb->child; x; x = x->next) order[k++] = x->valueint;
    ck_assert_int_eq(k, n * epochs);
    VitModel m;
    load_lora_model(&m);
    StepCheck sc = {0};
    sc.m = &m;
    snprintf(p, sizeof p, "%s/trainer_hf/%s/steps.safetensors", GOLD, name);
    ck_assert(safetensors_open(&sc.ref, p, err, sizeof err) == 0);
    Dataset d;
    data_from(&sc.ref, &d);
    Loader L;
    VitTask task;
    loader_init(&L, &d, NULL, NULL, 32, 32, false);
    int64_t *items = malloc(sizeof *items * (size_t)n);
    for (int i = 0; i < n; i++) items[i] = i;
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = cJSON_GetObjectItem(run, "batch")->valueint, a.grad_accum = cJSON_GetObjectItem(run, "grad_accum")->valueint;
    a.epochs = epochs, a.lr = 6e-4, a.weight_decay = 0.01, a.fixed_order = order;
    a.logging_steps = cJSON_GetObjectItem(run, "logging_steps")->valueint, a.log = NULL;
    a.on_step = on_step, a.on_step_ud = &sc, a.output_dir = dir, a.save_total_limit = 1;
    TrainState st;
    ck_assert_msg(trainer_train(vit_task(&task, &m, &L, PEFT_V4), items, n, &a, &st, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(st.global_step, expect_steps);
    ck_assert_int_eq(sc.checked, expect_steps);
    printf("trainer_hf/%s: %d steps, worst parameter deviation %.3g (of 1e-5 relative)\n", name, expect_steps, sc.worst);
    // the log history: loss (mean since the last log), grad_norm, learning rate, epoch, step
    int li = 0;
    for (cJSON *e = cJSON_GetObjectItem(run, "log_history")->child; e; e = e->next) {
        if (!cJSON_GetObjectItem(e, "loss")) continue;
        ck_assert_int_lt(li, st.nlogs);
        TrainLog *l = &st.logs[li++];
        ck_assert_int_eq(l->step, cJSON_GetObjectItem(e, "step")->valueint);
        ck_assert_msg(rel(l->loss, cJSON_GetObjectItem(e, "loss")->valuedouble) < 1e-5, "log %d loss %.9g", li, l->loss);
        ck_assert(rel(l->grad_norm, cJSON_GetObjectItem(e, "grad_norm")->valuedouble) < 1e-5);
        ck_assert(fabs(l->learning_rate - cJSON_GetObjectItem(e, "learning_rate")->valuedouble) < 1e-12);
        ck_assert(fabs(l->epoch - cJSON_GetObjectItem(e, "epoch")->valuedouble) < 1e-12);
    }
    ck_assert_int_eq(li, st.nlogs);
    // the final checkpoint holds the HF checkpoint's adapter (names in our v4 spelling)
    char ck[600], mine[700];
    snprintf(ck, sizeof ck, "%s/trainer_hf/%s/checkpoint-%d/adapter_model.safetensors", GOLD, name, expect_steps);
    snprintf(mine, sizeof mine, "%s/checkpoint-%d/adapter_model.safetensors", dir, expect_steps);
    Checkpoint A, B;
    ck_assert(checkpoint_open_file(&A, ck, vit_canonical_name, err, sizeof err) == 0);
    ck_assert_msg(checkpoint_open_file(&B, mine, vit_canonical_name, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(A.n, B.n);
    Ctx *c = ctx_new(1 << 16);
    for (int i = 0; i < A.n; i++) {
        const WEntry *e = checkpoint_find(&B, A.canon[i]);
        ck_assert_msg(e != NULL, "%s missing", A.canon[i]);
        Tensor *x = wentry_tensor(c, e, false), *y = wentry_tensor(c, A.entries[i], false);
        for (int64_t j = 0; j < tensor_numel(x); j++) ck_assert(rel(tensor_get_flat(x, j), tensor_get_flat(y, j)) < 1e-5);
    }
    ctx_free(c);
    checkpoint_close(&A), checkpoint_close(&B);
    // save_total_limit 1: exactly one checkpoint is left, and trainer_state.json beside it
    char p2[600];
    snprintf(p2, sizeof p2, "%s/trainer_state.json", dir);
    ck_assert(file_exists(p2));
    snprintf(p2, sizeof p2, "%s/checkpoint-%d/trainer_state.json", dir, expect_steps);
    ck_assert(file_exists(p2));
    ck_assert_int_eq(trainer_latest_checkpoint(dir, p2, sizeof p2), expect_steps);
    cJSON_Delete(run);
    free(order), free(items);
    train_state_free(&st);
    loader_free(&L);
    dataset_free(&d);
    wfile_close(&sc.ref);
    vit_free(&m);
}

START_TEST(test_hf_trainer_partial_windows) { hf_run("partial_windows", 4); }
END_TEST
START_TEST(test_hf_trainer_seed_config) { hf_run("seed_config", 45); }
END_TEST

// ---------------------------------------------------------------- checkpoints and faults

static int run(const char *out, int save_steps, int limit, bool resume, int epochs, double dropout, char *final_path) {
    VitModel m;
    ck_assert(vit_load(&m, GOLD "/tiny", err, sizeof err) == 0);
    vit_freeze_all(&m);
    Rng r = rng_new(5);
    ck_assert(vit_add_label(&m, "new", &r, err, sizeof err) == 10);
    VitLoraSpec s = {.r = 4, .alpha = 8, .dropout = dropout, .targets = {"query", "value"}, .ntargets = 2, .save_classifier = true};
    ck_assert(vit_attach_lora(&m, &s, &r, err, sizeof err) == 0);
    WFile f;
    ck_assert(safetensors_open(&f, GOLD "/trainer_hf/partial_windows/steps.safetensors", err, sizeof err) == 0);
    Dataset d;
    data_from(&f, &d);
    for (int i = 0; i < d.n; i++) d.labels[i] = i % 3 == 0 ? 10 : d.labels[i];
    Loader L;
    VitTask task;
    loader_init(&L, &d, NULL, NULL, 32, 32, false);
    int64_t items[13];
    for (int i = 0; i < 13; i++) items[i] = i;
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = 2, a.grad_accum = 2, a.epochs = epochs, a.lr = 1e-3, a.weight_decay = 0.01, a.log = NULL;
    a.output_dir = out, a.save_steps = save_steps, a.save_total_limit = limit, a.resume = resume, a.logging_steps = 2;
    TrainState st;
    int rc = trainer_train(vit_task(&task, &m, &L, PEFT_V4), items, 13, &a, &st, err, sizeof err);
    if (final_path) { // the callers' buffers hold 600 bytes
        size_t n = strlen(st.last_checkpoint);
        ck_assert_uint_lt(n, 600);
        memcpy(final_path, st.last_checkpoint, n + 1);
    }
    train_state_free(&st);
    loader_free(&L);
    dataset_free(&d);
    wfile_close(&f);
    vit_free(&m);
    return rc;
}

static void same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = file_read_all(a, 1 << 26, &na, err, sizeof err), *y = file_read_all(b, 1 << 26, &nb, err, sizeof err);
    ck_assert_msg(x && y && na == nb && !memcmp(x, y, na), "%s and %s differ", a, b);
    free(x), free(y);
}

START_TEST(test_resume_is_bit_exact_and_rotation) {
    char full[128], part[128], fin1[600], fin2[600], cmd[700];
    snprintf(full, sizeof full, "%s/full", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    // uninterrupted, with LoRA dropout on (the generator's state must survive the resume)
    ck_assert_msg(run(full, 1, 0, false, 3, 0.2, fin1) == 0, "%s", err);
    // resume from a middle checkpoint (step 5 of 12), in another folder
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp -r %s/checkpoint-5 %s/", part, full, part);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(run(part, 1, 0, true, 3, 0.2, fin2) == 0, "%s", err);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/adapter_model.safetensors", fin1);
    snprintf(b, sizeof b, "%s/adapter_model.safetensors", fin2);
    same_file(a, b);
    snprintf(a, sizeof a, "%s/optimizer.safetensors", fin1);
    snprintf(b, sizeof b, "%s/optimizer.safetensors", fin2);
    same_file(a, b);
    // resuming with other settings is refused
    ck_assert_int_eq(run(part, 1, 0, true, 4, 0.2, NULL), -1);
    ck_assert_ptr_nonnull(strstr(err, "resume with the same settings"));
    // rotation keeps exactly save_total_limit checkpoints, the newest
    char rot[128];
    snprintf(rot, sizeof rot, "%s/rot", dir);
    ck_assert(run(rot, 1, 2, false, 2, 0.0, NULL) == 0);
    snprintf(cmd, sizeof cmd, "test $(ls -d %s/checkpoint-* | wc -l) -eq 2 && test -d %s/checkpoint-8 && test -d %s/checkpoint-7", rot, rot,
             rot);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_interrupted_save_and_stop_signal) {
    char out[128], p[600], cmd[800];
    snprintf(out, sizeof out, "%s/int", dir);
    // stop after the first step: a checkpoint is written, exit 130
    trainer_stop = 1;
    int rc = run(out, 500, 1, false, 2, 0.0, NULL);
    trainer_stop = 0;
    ck_assert_int_eq(rc, 130);
    ck_assert_ptr_nonnull(strstr(err, "continue with --resume"));
    ck_assert_int_eq(trainer_latest_checkpoint(out, p, sizeof p), 1);
    // a save that died half-way (temporary folder, or a checkpoint without trainer_state.json) is ignored
    snprintf(cmd, sizeof cmd, "mkdir -p %s/.checkpoint-2.tmp %s/checkpoint-3 && touch %s/checkpoint-3/adapter_model.safetensors", out, out,
             out);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(trainer_latest_checkpoint(out, p, sizeof p), 1);
    snprintf(cmd, sizeof cmd, "rm -rf %s/checkpoint-3", out);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(run(out, 500, 1, true, 2, 0.0, NULL) == 0, "%s", err); // and the run completes from it
    ck_assert_int_eq(trainer_latest_checkpoint(out, p, sizeof p), 8);
}
END_TEST

START_TEST(test_nan_stops_training) {
    VitModel m;
    ck_assert(vit_load(&m, GOLD "/tiny", err, sizeof err) == 0);
    vit_freeze_all(&m);
    Rng r = rng_new(1);
    VitLoraSpec s = {.r = 2, .alpha = 4, .targets = {"query"}, .ntargets = 1, .save_classifier = true};
    ck_assert(vit_attach_lora(&m, &s, &r, err, sizeof err) == 0);
    ((float *)m.classifier.weight->data)[3] = NAN;
    WFile f;
    ck_assert(safetensors_open(&f, GOLD "/tiny_train/steps.safetensors", err, sizeof err) == 0);
    Dataset d;
    data_from(&f, &d);
    Loader L;
    VitTask task;
    loader_init(&L, &d, NULL, NULL, 32, 32, false);
    int64_t items[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = 4, a.log = NULL, a.output_dir = dir;
    TrainState st;
    ck_assert_int_eq(trainer_train(vit_task(&task, &m, &L, PEFT_V4), items, 8, &a, &st, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "training stopped at step 1: the loss is NaN") != NULL, "%s", err);
    char p[600];
    ck_assert_int_eq(trainer_latest_checkpoint(dir, p, sizeof p), -1); // nothing written from a bad step
    train_state_free(&st);
    loader_free(&L);
    dataset_free(&d);
    wfile_close(&f);
    vit_free(&m);
}
END_TEST

// loss.png's step axis: ticks at whole steps where they are (never "2" at step 1.5), each point
// at its step's column, the first one on the image (not clipped) and drawn in the loss's blue;
// evaluation entries are not on the plot
START_TEST(test_plot_axis) {
    double t[16];
    int n = plot_ticks(6, t, 16);
    ck_assert_int_eq(n, 4);
    for (int k = 0; k < 4; k++) ck_assert_double_eq(t[k], 2.0 * k);
    n = plot_ticks(3, t, 16);
    ck_assert_int_eq(n, 4);
    ck_assert_double_eq(t[3], 3);
    n = plot_ticks(120, t, 16);
    ck_assert_double_eq(t[1], 50); // 120 / 5 = 24 -> 50 (1, 2 or 5 times a power of ten)
    for (int k = 0; k < n; k++) ck_assert_double_eq(t[k], floor(t[k]));
    ck_assert_uint_eq(tb_crc32c("123456789", 9), 0xE3069283u); // CRC-32C's check value (RFC 3720)
    ck_assert_int_eq(plot_x(0, 6, 70, 640), 70);
    ck_assert_int_eq(plot_x(6, 6, 70, 640), 640);
    ck_assert_int_eq(plot_x(1.5, 6, 70, 640), 70 + 143);
    TrainLog logs[3] = {{.loss = 2.0, .learning_rate = 1e-3, .step = 1},
                        {.step = 2, .eval = true, .eval_loss = 9},
                        {.loss = 1.0, .learning_rate = 5e-4, .step = 6}};
    TrainState st = {.logs = logs, .nlogs = 3};
    char path[] = "/tmp/cgrad-plot-XXXXXX.png", err[256];
    int fd = mkstemps(path, 4);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(trainer_plot(&st, path, err, sizeof err), 0);
    Image im;
    ck_assert_int_eq(image_load(&im, path, err, sizeof err), 0);
    // the first point (step 1, the highest loss): blue at its column, inside the frame, below its top
    int x = plot_x(1, 6, 70, im.w - 80), found = -1;
    for (int y = 40; y < im.h - 50 && found < 0; y++) {
        const uint8_t *px = im.px + ((size_t)y * im.w + x) * 3;
        if (px[0] == 31 && px[1] == 119 && px[2] == 180) found = y;
    }
    ck_assert_msg(found > 40, "the first point at column %d: row %d", x, found);
    image_free(&im);
    unlink(path);
}
END_TEST

int main(void) {
    Suite *s = suite_create("trainer");
    check_fixture(setup, teardown);
    tcase_add_test(check_case(s, "test_adamw_and_sgd_by_hand"), test_adamw_and_sgd_by_hand);
    tcase_add_test(check_case(s, "test_plot_axis"), test_plot_axis);
    tcase_add_test(check_case(s, "test_schedules_and_decay_groups"), test_schedules_and_decay_groups);
    tcase_add_test(check_case(s, "test_hf_groups_feed_the_optimizer"), test_hf_groups_feed_the_optimizer);
    tcase_add_test(check_case(s, "test_metrics_by_hand"), test_metrics_by_hand);
    tcase_add_test(check_case(s, "test_tiny_train_golden"), test_tiny_train_golden);
    tcase_add_test(check_case(s, "test_hf_trainer_partial_windows"), test_hf_trainer_partial_windows);
    tcase_add_test(check_case(s, "test_hf_trainer_seed_config"), test_hf_trainer_seed_config);
    tcase_add_test(check_case(s, "test_resume_is_bit_exact_and_rotation"), test_resume_is_bit_exact_and_rotation);
    tcase_add_test(check_case(s, "test_interrupted_save_and_stop_signal"), test_interrupted_save_and_stop_signal);
    tcase_add_test(check_case(s, "test_nan_stops_training"), test_nan_stops_training);
    return check_run(s);
}
