// trainer.c: the training loop (see trainer.h). Checkpoint files are in trainer_ckpt.c.
#include "trainer.h"
#include "tboard.h"

#include "trainer_ckpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t trainer_stop = 0;

void train_args_default(TrainArgs *a) {
    memset(a, 0, sizeof *a);
    a->batch_size = 8, a->grad_accum = 1, a->epochs = 3;
    a->lr = 5e-5, a->weight_decay = 0.0, a->max_grad_norm = 1.0;
    a->adam_beta1 = 0.9, a->adam_beta2 = 0.999, a->adam_eps = 1e-8;
    a->logging_steps = 500, a->save_steps = 500, a->save_total_limit = 0;
    a->seed = 42, a->data_seed = 42;
    a->scheduler = SCHED_LINEAR;
    a->shuffle = true;
    a->log = stdout;
}

void train_state_free(TrainState *st) {
    free(st->logs);
    st->logs = NULL;
    st->nlogs = 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// HF prints numbers with 4 significant digits: {'loss': '2.52', 'learning_rate': '0.0005867'}
static void fmt4(char *b, size_t n, double v) { snprintf(b, n, "%.4g", v); }

static void print_log(FILE *f, const TrainLog *l) {
    if (!f) return;
    char a[32], b[32], c[32], d[32], e[32];
    fmt4(d, sizeof d, l->epoch);
    if (l->eval) {
        fmt4(a, sizeof a, l->eval_loss), fmt4(b, sizeof b, l->eval_accuracy), fmt4(c, sizeof c, l->eval_f1);
        fmt4(e, sizeof e, l->eval_precision);
        fprintf(f, "{'eval_loss': '%s', 'eval_accuracy': '%s', 'eval_precision': '%s', 'eval_f1': '%s', 'epoch': '%s'}\n", a, b, e, c, d);
        return;
    }
    fmt4(a, sizeof a, l->loss), fmt4(b, sizeof b, l->grad_norm), fmt4(c, sizeof c, l->learning_rate);
    fprintf(f, "{'loss': '%s', 'grad_norm': '%s', 'learning_rate': '%s', 'epoch': '%s'}\n", a, b, c, d);
}

// a log entry as one JSON line (the jsonl log), numbers with enough digits to be read back the same
static void jsonl_log(FILE *f, const TrainLog *l) {
    if (!f) return;
    if (l->eval)
        fprintf(f,
                "{\"step\": %lld, \"epoch\": %.17g, \"eval_loss\": %.17g, \"eval_accuracy\": %.17g, \"eval_precision\": %.17g, "
                "\"eval_recall\": %.17g, \"eval_f1\": %.17g}\n",
                (long long)l->step, l->epoch, l->eval_loss, l->eval_accuracy, l->eval_precision, l->eval_recall, l->eval_f1);
    else
        fprintf(f, "{\"step\": %lld, \"epoch\": %.17g, \"loss\": %.17g, \"grad_norm\": %.17g, \"learning_rate\": %.17g}\n",
                (long long)l->step, l->epoch, l->loss, l->grad_norm, l->learning_rate);
    fflush(f);
}

// a log entry as TensorBoard scalars, named as the Trainer's TensorBoard callback names them
static void tb_log(struct TbWriter *tb, const TrainLog *l) {
    if (!tb) return;
    if (l->eval) {
        tb_scalar(tb, "eval/loss", l->step, l->eval_loss), tb_scalar(tb, "eval/accuracy", l->step, l->eval_accuracy);
        tb_scalar(tb, "eval/precision", l->step, l->eval_precision), tb_scalar(tb, "eval/recall", l->step, l->eval_recall);
        tb_scalar(tb, "eval/f1", l->step, l->eval_f1);
    } else {
        tb_scalar(tb, "train/loss", l->step, l->loss), tb_scalar(tb, "train/grad_norm", l->step, l->grad_norm);
        tb_scalar(tb, "train/learning_rate", l->step, l->learning_rate);
    }
    tb_scalar(tb, "train/epoch", l->step, l->epoch);
}

static void add_log(TrainState *st, const TrainArgs *a, const TrainLog *l) {
    st->logs = realloc(st->logs, sizeof *st->logs * (size_t)(st->nlogs + 1));
    if (!st->logs) abort();
    st->logs[st->nlogs++] = *l;
    print_log(a->log, l);
    jsonl_log(a->jsonl, l);
    tb_log(a->tb, l);
}

static void hms(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(b, n, "%02ld:%02ld", t / 60, t % 60);
}

typedef struct {
    bool tty, on;
    double t0, last_print;
    int64_t first_step;
} Progress;

static void progress(Progress *p, int64_t step, int64_t total, double loss, bool last) {
    if (!p->on) return;
    double el = now_s() - p->t0, rate = (double)(step - p->first_step) / (el > 0 ? el : 1e-9);
    double rem = rate > 0 ? (double)(total - step) / rate : 0;
    char e[32], r[32];
    hms(e, sizeof e, el), hms(r, sizeof r, rem);
    int pct = (int)(100 * step / (total ? total : 1));
    if (p->tty) {
        int w = 30, fill = (int)(w * step / (total ? total : 1));
        char bar[64];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : ' ';
        bar[w] = 0;
        fprintf(stderr, "\r%3d%%|%s| %lld/%lld [%s<%s, %.2f it/s, loss %.4g]%s", pct, bar, (long long)step, (long long)total, e, r, rate,
                loss, last ? "\n" : "");
        fflush(stderr);
    } else if (last || el - p->last_print >= 10.0 || step == p->first_step + 1) { // plain periodic lines
        fprintf(stderr, "step %lld/%lld (%d%%) elapsed %s remaining %s %.2f it/s loss %.4g\n", (long long)step, (long long)total, pct, e, r,
                rate, loss);
        p->last_print = el;
    }
}

// the order of epoch e: a permutation of positions 0..n-1 (Fisher-Yates seeded by data_seed and e)
static void epoch_order(const TrainArgs *a, int e, int n, int64_t *ord) {
    if (a->fixed_order) {
        memcpy(ord, a->fixed_order + (size_t)e * (size_t)n, sizeof *ord * (size_t)n);
        return;
    }
    for (int i = 0; i < n; i++) ord[i] = i;
    if (a->shuffle) {
        Rng r = rng_new(a->data_seed + (uint64_t)(e + 1) * 0x9E3779B97F4A7C15ull);
        rng_shuffle(&r, ord, n);
    }
}

// The model's random draws per sample of a training forward (dropout masks grow with the batch):
// counted on one sample, the generator put back; 0 without a generator. Draws must not depend on
// the data, only on the batch's size.
static int draws_per_item(const TrainModel *tm, Ctx *c, int64_t item, uint64_t *d, char *err, size_t errn) {
    *d = 0;
    Rng *rng = tm->params->rng;
    if (!rng) return 0;
    uint64_t off0 = rng->offset;
    ctx_reset(c);
    bool prev = ag_no_grad(c, true);
    Tensor *l = tm->loss(tm->self, c, &item, 1, 1.0, 0.0, err, errn);
    ag_no_grad(c, prev);
    *d = rng->offset - off0;
    rng->offset = off0;
    ctx_reset(c);
    return l ? 0 : -1;
}

static int check_args(const TrainArgs *a, int n, char *err, size_t errn) {
    const char *bad = a->batch_size < 1      ? "batch size must be at least 1"
                      : a->grad_accum < 1    ? "gradient accumulation must be at least 1"
                      : a->epochs < 1        ? "epochs must be at least 1"
                      : !(a->lr > 0)         ? "learning rate must be positive"
                      : a->weight_decay < 0  ? "weight decay must not be negative"
                      : a->logging_steps < 0 ? "logging steps must not be negative"
                      : n < 1                ? "no training samples"
                                             : NULL;
    if (bad) snprintf(err, errn, "trainer: %s", bad);
    return bad ? -1 : 0;
}

// one training run's working set, shared by its steps
typedef struct {
    const TrainModel *tm;
    const int64_t *items;
    int n;
    const TrainArgs *a;
    TrainState *st;
    char *err;
    size_t errn;
    Optim *o;
    Tensor **ps; // the optimizer's parameters
    int np;
    Schedule sch;
    Ctx *c;             // each micro-batch's tensors
    int64_t *ord, *idx; // the epoch's order; a micro-batch's samples
    Rng *rng;           // the model's dropout generator
    const Dist *dist;   // NULL alone
    uint64_t draws;     // the generator's draws per sample (MPI: each rank's micro-batches draw as one process would)
    int64_t all_params, sample_numel;
} Run;

// the optimizer (AdamW over HF's decay groups), the schedule and buffers; -1 with a message
static int run_setup(Run *r) {
    const TrainArgs *a = r->a;
    TrainState *st = r->st;
    st->micro_per_epoch = (r->n + a->batch_size - 1) / a->batch_size;
    st->steps_per_epoch = (st->micro_per_epoch + a->grad_accum - 1) / a->grad_accum;
    st->max_steps = (int64_t)a->epochs * st->steps_per_epoch;
    OptimGroup groups[2];
    int ng = optim_hf_groups(r->tm->params, a->weight_decay, groups);
    if (groups[0].n + groups[1].n == 0) {
        optim_groups_free(groups, ng);
        return errorf(r->err, r->errn, "trainer: the model has no trainable parameters");
    }
    r->o = optim_adamw(groups, ng, a->adam_beta1, a->adam_beta2, a->adam_eps);
    optim_groups_free(groups, ng);
    r->np = optim_nparams(r->o);
    r->ps = malloc(sizeof *r->ps * (size_t)r->np);
    for (int i = 0; i < r->np; i++) r->ps[i] = optim_param(r->o, i);
    r->sch = (Schedule){a->scheduler, st->max_steps, schedule_warmup_steps(st->max_steps, a->warmup_steps, a->warmup_ratio)};
    r->all_params = nn_params_count(r->tm->params, false), r->sample_numel = r->tm->input_numel;
    r->ord = malloc(sizeof *r->ord * (size_t)r->n), r->idx = malloc(sizeof *r->idx * (size_t)a->batch_size);
    r->c = ctx_new(64u << 20);
    return 0;
}

// the newest checkpoint of the output folder, with --resume; -1 with a message
static int run_resume(Run *r) {
    char ck[FILE_PATH_BUF];
    if (trainer_latest_checkpoint(r->a->output_dir, ck, sizeof ck) < 0)
        return errorf(r->err, r->errn, "%s: no checkpoint to resume from", r->a->output_dir);
    if (ckpt_load(ck, r->a, r->tm, r->rng, r->o, r->st, r->err, r->errn) != 0) return -1;
    if (r->a->log)
        fprintf(r->a->log, "resuming from %s (step %lld of %lld)\n", ck, (long long)r->st->global_step, (long long)r->st->max_steps);
    return 0;
}

// One accumulation window (step s of the epoch): its micro-batches' losses (each sum / N_window)
// and backward passes, summed over the processes under MPI. Its loss, sample count and last
// micro-batch into *loss, *Nw, *mb1; -1 with a message.
static int run_window(Run *r, int64_t s, double *loss, double *Nw, int64_t *mb1_out) {
    const TrainArgs *a = r->a;
    TrainState *st = r->st;
    int n = r->n;
    int64_t mb0 = s * a->grad_accum, mb1 = mb0 + a->grad_accum;
    if (mb1 > st->micro_per_epoch) mb1 = st->micro_per_epoch;
    int64_t hi_w = mb1 * a->batch_size < n ? mb1 * a->batch_size : n;
    double nw = (double)(hi_w - mb0 * a->batch_size), window_loss = 0; // samples in the window
    uint64_t win_off = r->rng->offset;
    for (int64_t mb = mb0; mb < mb1; mb++) {
        int64_t lo = mb * a->batch_size, hi = lo + a->batch_size < n ? lo + a->batch_size : n;
        int nb = (int)(hi - lo);
        if (r->dist) { // this process's micro-batches, with the draws one process would give them
            if ((mb - mb0) % r->dist->size != r->dist->rank) continue;
            r->rng->offset = win_off + r->draws * (uint64_t)(lo - mb0 * a->batch_size);
        }
        for (int k = 0; k < nb; k++) r->idx[k] = r->items[r->ord[lo + k]];
        ctx_reset(r->c);
        r->err[0] = 0;
        Tensor *l = r->tm->loss(r->tm->self, r->c, r->idx, nb, 1.0 / nw, a->label_smoothing, r->err, r->errn); // sum / N_window
        if (!l || tensor_numel(l) != 1 || ag_backward(r->c, l) != 0) {
            if (!l && r->err[0]) return -1;
            return errorf(r->err, r->errn, "trainer: %s", l && tensor_numel(l) != 1 ? "the model's loss is not a scalar" : ctx_error(r->c));
        }
        window_loss += tensor_get_flat(l, 0);
        if (!r->dist) st->samples += nb;
    }
    if (r->dist) { // the window's gradients and loss summed over the processes; a stop seen by any
        double v[2] = {window_loss, trainer_stop ? 1.0 : 0.0};
        if (dist_allreduce_grads(r->dist, r->ps, r->np, false, r->err, r->errn) != 0 ||
            dist_allreduce_sum(r->dist, v, 2, r->err, r->errn) != 0)
            return -1;
        window_loss = v[0];
        if (v[1] > 0) trainer_stop = 1;
        r->rng->offset = win_off + r->draws * (uint64_t)nw;
        st->samples += (int64_t)nw;
    }
    *loss = window_loss, *Nw = nw, *mb1_out = mb1;
    return 0;
}

// the optimizer's step after a window: clipping, a finite check, the scheduled rate, the state's
// counters; -1 (a message) when the loss or the gradient norm is not finite
static int run_update(Run *r, int e, int64_t mb1, double window_loss, double Nw, double *norm_out, double *lr_out) {
    const TrainArgs *a = r->a;
    TrainState *st = r->st;
    double norm = a->max_grad_norm > 0 ? optim_clip_grad_norm(r->ps, r->np, a->max_grad_norm) : 0;
    if (!isfinite(window_loss) || !isfinite(norm))
        return errorf(r->err, r->errn, "training stopped at step %lld: the %s is %s (the last good checkpoint is kept)",
                      (long long)st->global_step + 1, isfinite(window_loss) ? "gradient norm" : "loss",
                      isnan(isfinite(window_loss) ? norm : window_loss) ? "NaN" : "infinite");
    double lr_t = a->lr * schedule_factor(&r->sch, st->global_step);
    optim_step(r->o, lr_t);
    optim_zero_grad(r->o);
    st->global_step++;
    st->epoch = e + (double)mb1 / (double)st->micro_per_epoch;
    st->total_loss += window_loss;
    st->tr_loss_since_log += window_loss;
    st->steps_since_log++;
    st->total_flos += 6.0 * (double)r->sample_numel * (double)r->all_params * Nw;
    if (a->on_step) a->on_step(a->on_step_ud, st->global_step, window_loss, norm, lr_t);
    *norm_out = norm, *lr_out = lr_t;
    return 0;
}

// the step's log line every logging_steps, and an evaluation every eval_steps; -1 with a message
static int run_log(Run *r, const Progress *pg, double norm, double lr_t) {
    const TrainArgs *a = r->a;
    TrainState *st = r->st;
    if (a->logging_steps && st->global_step % a->logging_steps == 0) {
        TrainLog l = {.loss = st->tr_loss_since_log / st->steps_since_log,
                      .grad_norm = norm,
                      .learning_rate = lr_t,
                      .epoch = st->epoch,
                      .step = st->global_step};
        st->tr_loss_since_log = 0, st->steps_since_log = 0;
        if (pg->on && pg->tty) fputc('\n', stderr);
        add_log(st, a, &l);
    }
    if (a->eval_steps && a->eval_items && a->neval > 0 && st->global_step % a->eval_steps == 0) {
        Metrics mt; // evaluation switches to eval mode and back; it draws nothing from the generator
        if (trainer_evaluate_dist(r->tm, a->eval_items, a->neval, a->eval_batch > 0 ? a->eval_batch : a->batch_size, a->eval_target,
                                  r->dist, &mt, r->err, r->errn) != 0)
            return -1;
        TrainLog l = {.epoch = st->epoch,
                      .step = st->global_step,
                      .eval = true,
                      .eval_loss = mt.avg_loss,
                      .eval_accuracy = mt.accuracy,
                      .eval_precision = mt.precision,
                      .eval_recall = mt.recall,
                      .eval_f1 = mt.f1};
        metrics_free(&mt);
        if (pg->on && pg->tty) fputc('\n', stderr);
        add_log(st, a, &l);
    }
    return 0;
}

// the Trainer's closing line (HF's train_runtime, samples and steps per second, mean loss)
static void run_summary(const Run *r) {
    const TrainState *st = r->st;
    char rt_s[32], sps[32], tps[32], tl[32], ep[32];
    double rt = st->runtime_s > 0 ? st->runtime_s : 1e-9;
    fmt4(rt_s, sizeof rt_s, st->runtime_s), fmt4(sps, sizeof sps, (double)r->n * r->a->epochs / rt);
    fmt4(tps, sizeof tps, (double)st->max_steps / rt), fmt4(tl, sizeof tl, st->total_loss / (double)st->global_step);
    fmt4(ep, sizeof ep, st->epoch);
    fprintf(r->a->log,
            "{'train_runtime': '%s', 'train_samples_per_second': '%s', 'train_steps_per_second': '%s', 'train_loss': '%s', 'epoch': "
            "'%s'}\n",
            rt_s, sps, tps, tl, ep);
}

// the epochs' steps from where the state is (0, or a checkpoint's); 0, 130 when stopped by a
// signal (a checkpoint written), -1 with a message
static int run_epochs(Run *r) {
    const TrainArgs *a = r->a;
    TrainState *st = r->st;
    Progress pg = {isatty(fileno(stderr)), a->progress, now_s(), 0, st->global_step};
    double t0 = now_s();
    for (int e = (int)(st->global_step / st->steps_per_epoch); e < a->epochs; e++) {
        epoch_order(a, e, r->n, r->ord);
        for (int64_t s = st->global_step - (int64_t)e * st->steps_per_epoch; s < st->steps_per_epoch; s++) {
            double window_loss = 0, Nw = 0, norm = 0, lr_t = 0;
            int64_t mb1 = 0;
            if (run_window(r, s, &window_loss, &Nw, &mb1) != 0 || run_update(r, e, mb1, window_loss, Nw, &norm, &lr_t) != 0 ||
                run_log(r, &pg, norm, lr_t) != 0)
                return -1;
            progress(&pg, st->global_step, st->max_steps, window_loss, st->global_step == st->max_steps);
            bool last = st->global_step == st->max_steps, stop = trainer_stop;
            st->runtime_s += now_s() - t0;
            t0 = now_s();
            if (a->output_dir && dist_root(r->dist) && ((a->save_steps && st->global_step % a->save_steps == 0) || last || stop)) {
                if (ckpt_save(a, r->tm, r->rng, r->o, st, r->err, r->errn) != 0) return -1;
            }
            if (stop && !last) {
                snprintf(r->err, r->errn, "interrupted after step %lld; checkpoint %s written (continue with --resume)",
                         (long long)st->global_step, st->last_checkpoint[0] ? st->last_checkpoint : "(no output directory)");
                return 130;
            }
        }
    }
    return 0;
}

int trainer_train(const TrainModel *tm, const int64_t *items, int n, const TrainArgs *a, TrainState *st, char *err, size_t errn) {
    memset(st, 0, sizeof *st);
    if (check_args(a, n, err, errn) != 0) return -1;
    if (!tm || !tm->params || !tm->loss)
        return errorf(err, errn, "trainer: the model gives no %s", !tm || !tm->params ? "parameters" : "loss function");
    Run r = {.tm = tm, .items = items, .n = n, .a = a, .st = st, .err = err, .errn = errn};
    if (run_setup(&r) != 0) return -1;
    bool was_training = tm->params->training;
    nn_params_train(tm->params, true);
    if (!tm->params->rng) tm->params->rng = &tm->params->own_rng; // a set started as {0}
    r.rng = tm->params->rng;
    *r.rng = rng_new(a->seed);
    r.dist = a->dist && a->dist->size > 1 ? a->dist : NULL;
    int64_t start_step = 0;
    int rc = a->resume ? run_resume(&r) : 0;
    start_step = st->global_step;
    if (rc == 0 && r.dist) rc = draws_per_item(tm, r.c, items[0], &r.draws, err, errn);
    if (rc == 0) rc = run_epochs(&r);
    if (rc == 0 && a->log && st->global_step > start_step) run_summary(&r);
    nn_params_train(tm->params, was_training);
    optim_free(r.o);
    ctx_free(r.c);
    free(r.ps), free(r.ord), free(r.idx);
    return rc;
}

// ---- evaluation ----

void metrics_free(Metrics *mt) {
    free(mt->confusion);
    mt->confusion = NULL;
}

void metrics_finish(Metrics *mt, int target) {
    int K = mt->nclasses;
    int64_t correct = 0, tp = 0, fp = 0, fn = 0, tn = 0, n = 0;
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            int64_t v = mt->confusion[t * K + p];
            n += v;
            if (t == p) correct += v;
            if (t == target && p == target)
                tp += v;
            else if (t != target && p == target)
                fp += v;
            else if (t == target && p != target)
                fn += v;
            else
                tn += v;
        }
    mt->n = n, mt->tp = tp, mt->fp = fp, mt->fn = fn, mt->tn = tn;
    mt->accuracy = n ? (double)correct / (double)n : 0.0;
    mt->precision = tp + fp ? (double)tp / (double)(tp + fp) : 0.0;
    mt->recall = tp + fn ? (double)tp / (double)(tp + fn) : 0.0;
    mt->f1 = mt->precision + mt->recall > 0 ? 2 * mt->precision * mt->recall / (mt->precision + mt->recall) : 0.0;
}

int trainer_evaluate(const TrainModel *tm, const int64_t *items, int n, int batch, int target, Metrics *out, char *err, size_t errn) {
    return trainer_evaluate_dist(tm, items, n, batch, target, NULL, out, err, errn);
}

int trainer_evaluate_dist(const TrainModel *tm, const int64_t *items, int n, int batch, int target, const Dist *dist, Metrics *out,
                          char *err, size_t errn) {
    if (dist && dist->size <= 1) dist = NULL;
    memset(out, 0, sizeof *out);
    if (!tm || !tm->logits || tm->nclasses < 1 || batch < 1) {
        return errorf(err, errn, "evaluate: %s", batch < 1 ? "batch size must be at least 1" : "the model gives no class scores");
    }
    int K = tm->nclasses;
    out->nclasses = K;
    out->confusion = calloc((size_t)K * (size_t)K, sizeof *out->confusion);
    int64_t *lab = malloc(sizeof *lab * (size_t)batch);
    Ctx *c = ctx_new(16u << 20);
    bool was = tm->params->training;
    nn_params_train(tm->params, false); // eval mode: dropout off, BatchNorm's running statistics
    double loss = 0;
    int rc = 0;
    for (int lo = 0; lo < n && rc == 0; lo += batch) {
        if (dist && (lo / batch) % dist->size != dist->rank) continue; // batches dealt round-robin
        int nb = n - lo < batch ? n - lo : batch;
        ctx_reset(c);
        ag_no_grad(c, true);
        err[0] = 0;
        Tensor *lg = tm->logits(tm->self, c, items + lo, nb, lab, err, errn);
        if (!lg && err[0]) {
            rc = -1;
            break;
        }
        Tensor *pr = ag_softmax(c, lg);
        if (!pr || pr->ndim != 2 || pr->shape[0] != nb || pr->shape[1] != K) {
            snprintf(err, errn, "evaluate: %s", pr ? "the model's scores are not [batch, classes]" : ctx_error(c));
            rc = -1;
            break;
        }
        const float *p = pr->data;
        for (int b = 0; b < nb; b++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (p[b * K + k] > p[b * K + best]) best = k;
            int64_t t = lab[b];
            if (t < 0 || t >= K) {
                snprintf(err, errn, "evaluate: label %lld outside the model's %d classes", (long long)t, K);
                rc = -1;
                break;
            }
            loss += -log((double)(p[b * K + t] + 1e-8f)); // the notebook's NLL with +1e-8
            out->confusion[t * K + best]++;
        }
    }
    nn_params_train(tm->params, was);
    ctx_free(c);
    free(lab);
    if (dist) { // counts and the loss summed over the processes (a failure anywhere fails all)
        size_t KK = (size_t)K * (size_t)K;
        double *v = calloc(KK + 2, sizeof *v);
        for (size_t i = 0; i < KK; i++) v[i] = (double)out->confusion[i];
        v[KK] = loss, v[KK + 1] = rc != 0;
        char e2[256];
        if (dist_allreduce_sum(dist, v, (int)KK + 2, e2, sizeof e2) != 0) {
            if (rc == 0) snprintf(err, errn, "%s", e2);
            rc = -1;
        } else if (v[KK + 1] > 0 && rc == 0) {
            snprintf(err, errn, "evaluate: another process failed");
            rc = -1;
        }
        for (size_t i = 0; i < KK; i++) out->confusion[i] = (int64_t)v[i];
        loss = v[KK];
        free(v);
    }
    if (rc != 0) {
        metrics_free(out);
        return -1;
    }
    metrics_finish(out, target);
    out->avg_loss = n ? loss / n : 0.0;
    return 0;
}
