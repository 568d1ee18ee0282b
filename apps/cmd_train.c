// cmd_train.c: `deit_lora train`, the notebook end to end: model and processor, the folder of
// images, the head extended by every label the model lacks, the base frozen, LoRA attached,
// the trainable-parameter line, a seeded hold-out split, the Trainer, the saved adapter and
// configs, the loss plot, and the notebook's metrics on the held-out images.
#include "deit_lora.h"

#include "../base/fileio.h"
#include "../train/tboard.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

static void print_metrics(const Metrics *mt, const char *label) {
    printf("avg_loss:  %.4f  (n = %lld, target '%s': tp %lld fp %lld fn %lld tn %lld)\n", mt->avg_loss, (long long)mt->n, label,
           (long long)mt->tp, (long long)mt->fp, (long long)mt->fn, (long long)mt->tn);
    printf("Accuracy:  %.4f\nPrecision: %.4f\nRecall:    %.4f\nF1:        %.4f\n", mt->accuracy, mt->precision, mt->recall, mt->f1);
}

// the same LoRA targets (as sets, or the same regex)
static bool same_targets(const VitLoraSpec *a, const VitLoraSpec *b) {
    if (a->target_regex[0] || b->target_regex[0]) return !strcmp(a->target_regex, b->target_regex);
    if (a->ntargets != b->ntargets) return false;
    for (int i = 0; i < a->ntargets; i++) {
        bool found = false;
        for (int j = 0; j < b->ntargets && !found; j++) found = !strcmp(a->targets[i], b->targets[j]);
        if (!found) return false;
    }
    return true;
}

// the command line, with the notebook's defaults
typedef struct {
    const char *model, *data, *label, *output, *target, *target_regex, *init_adapter, *sched, *peft, *report_to;
    long epochs, batch, accum, r, logging, save_limit, save_steps, threads, seed, warmup, eval_steps;
    double lr, wd, max_norm, alpha, dropout, test_size, warmup_ratio;
    bool no_shuffle, resume, overwrite, no_cache, quiet;
    bool r_given, alpha_given, dropout_given; // LoRA settings given on the command line (else the defaults or the --init-adapter's)
    SchedKind sk;
    VitLoraSpec spec;
} TrainOpts;

// what the run holds between its steps (freed by run_free)
typedef struct {
    VitModel m;
    bool loaded;
    ImageProcessor ip;
    Dataset d;
    Loader L;
    int64_t *tr, *te;
    int ntr, nte, target; // the class precision, recall and F1 are for
    TrainState st;
    bool made_output;
    FILE *jsonl;  // the run's log as JSON lines
    TbWriter *tb; // and as TensorBoard events (--report-to tensorboard)
    char settings[8192];
    char err[FILE_ERR_BUF];
} TrainRun;

// the options into o; 0 to go on, 1 when --help was printed, 2 after a message (usage)
static int parse_options(TrainOpts *o, int argc, char **argv) {
    *o = (TrainOpts){.sched = "linear",
                     .peft = "v4",
                     .report_to = "none",
                     .epochs = 5,
                     .batch = 2,
                     .accum = 4,
                     .logging = 2,
                     .save_limit = 1,
                     .save_steps = 500,
                     .seed = 42,
                     .lr = 6e-4,
                     .wd = 0.01,
                     .max_norm = 1.0,
                     .test_size = 10};
    o->r = -1, o->alpha = -1, o->dropout = -1; // "not given": the defaults below, or the --init-adapter's
    const CliOpt opts[] = {
        {"--model", OPT_STR, &o->model, 0, 0, "model directory (config.json, weights, optional preprocessor_config.json)"},
        {"--data", OPT_STR, &o->data, 0, 0, "folder of images (with --label) or of class subfolders"},
        {"--label", OPT_STR, &o->label, 0, 0, "the label of every image in --data"},
        {"--output", OPT_STR, &o->output, 0, 0, "output folder (adapter, configs, trainer_state.json, loss.png, checkpoints)"},
        {"--epochs", OPT_INT, &o->epochs, 1, 100000, "epochs (5)"},
        {"--batch-size", OPT_INT, &o->batch, 1, 4096, "micro-batch size (2)"},
        {"--grad-accum", OPT_INT, &o->accum, 1, 4096, "gradient accumulation steps (4)"},
        {"--lr", OPT_DOUBLE, &o->lr, 1e-12, 10, "peak learning rate (6e-4)"},
        {"--weight-decay", OPT_DOUBLE, &o->wd, 0, 10, "AdamW weight decay, not for biases and norms (0.01)"},
        {"--max-grad-norm", OPT_DOUBLE, &o->max_norm, 0, 1e9, "clip the total gradient norm (1.0; 0 disables)"},
        {"--scheduler", OPT_STR, &o->sched, 0, 0, "linear, cosine or constant (linear)"},
        {"--warmup-steps", OPT_INT, &o->warmup, 0, 1000000000, "warm-up steps (0)"},
        {"--warmup-ratio", OPT_DOUBLE, &o->warmup_ratio, 0, 1, "warm-up as a fraction of the steps (0)"},
        {"--lora-r", OPT_INT, &o->r, 1, 4096, "LoRA rank (4)"},
        {"--lora-alpha", OPT_DOUBLE, &o->alpha, 1e-9, 1e9, "LoRA alpha (8)"},
        {"--lora-dropout", OPT_DOUBLE, &o->dropout, 0, 0.999, "dropout on the LoRA branch (0.2)"},
        {"--target", OPT_STR, &o->target, 0, 0, "LoRA target modules (query,value; also key, dense, q_proj, v_proj, fc1, ...)"},
        {"--target-regex", OPT_STR, &o->target_regex, 0, 0, "instead of --target: a regex full-matched against module names, as peft does"},
        {"--logging-steps", OPT_INT, &o->logging, 0, 1000000000, "log every N optimizer steps (2)"},
        {"--save-steps", OPT_INT, &o->save_steps, 0, 1000000000, "checkpoint every N steps, and at the end (500)"},
        {"--report-to", OPT_STR, &o->report_to, 0, 0, "tensorboard: the logs also as TensorBoard events in OUT/runs (none)"},
        {"--eval-steps", OPT_INT, &o->eval_steps, 0, 1000000000,
         "evaluate on the held-out images every N steps, logged (0: at the end only)"},
        {"--save-total-limit", OPT_INT, &o->save_limit, 0, 1000000, "checkpoints kept (1; 0 keeps all)"},
        {"--seed", OPT_INT, &o->seed, 0, 2147483647, "seed for the split, the order, the new head row and LoRA init (42)"},
        {"--test-size", OPT_DOUBLE, &o->test_size, 0, 1e9, "images held out for evaluation: a count, or a fraction < 1 (10)"},
        {"--threads", OPT_INT, &o->threads, 1, 1024, "threads (all cores)"},
        {"--no-shuffle", OPT_FLAG, &o->no_shuffle, 0, 0, "files in byte order of their names, no shuffling"},
        {"--init-adapter", OPT_STR, &o->init_adapter, 0, 0, "start from a saved adapter (its r, alpha, targets and labels)"},
        {"--resume", OPT_FLAG, &o->resume, 0, 0, "continue from the newest checkpoint in --output (bit for bit at the same --threads)"},
        {"--overwrite", OPT_FLAG, &o->overwrite, 0, 0, "write into a non-empty --output"},
        {"--peft-format", OPT_STR, &o->peft, 0, 0, "adapter key names: v4 (transformers 4, the notebook's) or v5"},
        {"--no-cache", OPT_FLAG, &o->no_cache, 0, 0, "decode images every epoch instead of keeping them in memory"},
        {"--quiet", OPT_FLAG, &o->quiet, 0, 0, "no progress bar"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora train --model MODEL_DIR --data DATA_DIR [--label NAME] --output OUT_DIR [options]";
    const char *pos[1];
    int npos = cli_command(
        &(CliCommand){"train", usage, "Fine-tunes the model with LoRA on a folder of images, as the seed notebook does.", opts, NO}, argc,
        argv, pos, 0);
    if (npos < 0) return npos == CLI_HELP ? 1 : 2;
    if (!o->model || !o->data || !o->output) return app_fail("train", "needs --model, --data and --output (see --help)");
    if (schedule_parse(o->sched, &o->sk) != 0) return app_fail("train", "--scheduler: must be linear, cosine or constant");
    if (strcmp(o->peft, "v4") && strcmp(o->peft, "v5")) return app_fail("train", "--peft-format: must be v4 or v5");
    if (strcmp(o->report_to, "none") && strcmp(o->report_to, "tensorboard"))
        return app_fail("train", "--report-to: must be tensorboard or none");
    o->r_given = o->r > 0, o->alpha_given = o->alpha > 0, o->dropout_given = o->dropout >= 0;
    if (!o->r_given) o->r = 4;
    if (!o->alpha_given) o->alpha = 8;
    if (!o->dropout_given) o->dropout = 0.2;
    o->spec = (VitLoraSpec){.r = (int)o->r, .alpha = o->alpha, .dropout = o->dropout, .save_classifier = true};
    if (o->target && o->target_regex) return app_fail("train", "--target and --target-regex exclude each other");
    char err[FILE_ERR_BUF];
    if (o->target_regex) {
        if (!*o->target_regex || strlen(o->target_regex) >= sizeof o->spec.target_regex) {
            snprintf(err, sizeof err, "--target-regex: must have 1 to %zu characters", sizeof o->spec.target_regex - 1);
            return app_fail("train", err);
        }
        snprintf(o->spec.target_regex, sizeof o->spec.target_regex, "%s", o->target_regex);
    } else if (app_target_list(o->target ? o->target : "query,value", &o->spec, err, sizeof err) != 0)
        return app_fail("train", err);
    if (app_output_dir("--output", o->output, o->overwrite, o->resume, (const char *[]){o->model, o->data, o->init_adapter, NULL}, err,
                       sizeof err) != 0)
        return app_fail("train", err);
    return 0;
}

// the model with every label of the data (a new head row each, the seed's recipe), LoRA attached
// (or the --init-adapter's), the split, and every image decoded once: a bad file stops the run
// before anything is trained or written; -1 with the message in run->err
static int prepare(TrainRun *run, const TrainOpts *o) {
    char *err = run->err;
    size_t errn = sizeof run->err;
    VitModel *m = &run->m;
    if (app_load_model(m, &run->ip, o->model, o->init_adapter, false, err, errn) != 0) return -1;
    run->loaded = true;
    if (dataset_from_folder(&run->d, o->data, o->label, err, errn) != 0) return -1;
    app_warn_skipped(&run->d, o->data);
    Rng rng = rng_new((uint64_t)o->seed);
    for (int c = 0; c < run->d.nclasses; c++)
        if (vit_add_label(m, run->d.class_names[c], &rng, err, errn) < 0) return -1;
    if (app_map_labels(&run->d, &m->cfg, o->data, err, errn) != 0) return -1;
    // with --init-adapter the adapter fixes the structure (r, alpha, targets: a conflicting flag is
    // refused); dropout is a training setting, so an explicit --lora-dropout wins
    if (o->init_adapter && ((o->r_given && o->r != m->lora.r) || (o->alpha_given && o->alpha != m->lora.alpha) ||
                            ((o->target || o->target_regex) && !same_targets(&o->spec, &m->lora))))
        return errorf(err, errn,
                      "--init-adapter %s has r %d, alpha %g%s; --lora-r, --lora-alpha, --target and --target-regex "
                      "must agree with it or be left out",
                      o->init_adapter, m->lora.r, m->lora.alpha, m->lora.target_regex[0] ? " and a target regex" : "");
    if (o->init_adapter && o->dropout_given) vit_set_lora_dropout(m, o->dropout);
    if (!o->init_adapter) {
        vit_freeze_all(m);
        if (vit_attach_lora(m, &o->spec, &rng, err, errn) != 0) return -1;
    }
    vit_print_trainable_parameters(m, stdout);
    if (dataset_split(run->d.n, (uint64_t)o->seed, !o->no_shuffle, o->test_size, &run->tr, &run->ntr, &run->te, &run->nte, err, errn) !=
        0) {
        char e2[FILE_ERR_BUF];
        snprintf(e2, sizeof e2, "%s", err);
        return errorf(err, errn, "%.1000s: %.1000s", o->data, e2);
    }
    printf("%d images: %d for training, %d held out; %d classes, %d labels in the model\n", run->d.n, run->ntr, run->nte, run->d.nclasses,
           m->cfg.num_labels);
    loader_init(&run->L, &run->d, image_processor_prep, &run->ip, m->cfg.image_size, m->cfg.image_size, !o->no_cache);
    if (loader_check_all(&run->L, err, errn) != 0) return -1;
    run->target = o->label ? vit_config_label_id(&m->cfg, o->label) : m->cfg.num_labels - 1;
    return 0;
}

// what --resume must find unchanged: the data (folder, files, labels), the split, the order and
// the optimisation (refused rather than applied midway: the result would match no single run)
static void describe_run(TrainRun *run, const TrainOpts *o) {
    char data_abs[PATH_MAX];
    if (!realpath(o->data, data_abs)) snprintf(data_abs, sizeof data_abs, "%s", o->data);
    uint64_t h = 1469598103934665603ull; // FNV-1a over the files' names (below --data) and labels
    for (int i = 0; i < run->d.n; i++) {
        for (const char *q = run->d.paths[i] + strlen(o->data); *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ull;
        h = (h ^ (uint64_t)run->d.labels[i]) * 1099511628211ull;
    }
    snprintf(run->settings, sizeof run->settings,
             "--data %s\nimages %d (names %016llx)\n--label %s\n--seed %ld\n--test-size %.17g\n--no-shuffle %d\n"
             "--batch-size %ld\n--grad-accum %ld\n--epochs %ld\n--lr %.17g\n--weight-decay %.17g\n--max-grad-norm %.17g\n"
             "--scheduler %s\n--warmup-steps %ld\n--warmup-ratio %.17g",
             data_abs, run->d.n, (unsigned long long)h, o->label ? o->label : "(class folders)", o->seed, o->test_size, o->no_shuffle,
             o->batch, o->accum, o->epochs, o->lr, o->wd, o->max_norm, o->sched, o->warmup, o->warmup_ratio);
}

// every rank trains the same thing (compared before anything is written; only rank 0 says so),
// then rank 0 alone makes, locks and opens the output folder's logs; the others wait for it.
// 0, or the exit status (2; -2: a quiet rank that is not 0)
static int prepare_output(TrainRun *run, const TrainOpts *o, const Dist *dist) {
    char *err = run->err;
    size_t errn = sizeof run->err;
    if (app_ranks_agree(dist, run->settings, &run->m, &run->d, err, errn) != 0) return dist_root(dist) ? 2 : -2;
    run->made_output = !dir_exists(o->output) && dist_root(dist);
    double made = 1;
    if (dist_root(dist) && (app_make_output_dir(o->output, err, errn) != 0 || app_lock_output(o->output, err, errn) != 0)) made = 0;
    if (dist->size > 1 && dist_allreduce_sum(dist, &made, 1, err, errn) != 0) return 2;
    if (made < dist->size) {
        if (!dist_root(dist)) snprintf(err, errn, "rank 0 could not prepare --output %s", o->output);
        return 2;
    }
    char jp[FILE_PATH_BUF]; // every log entry as a JSON line (a resume appends to the run's lines)
    if (dist_root(dist) && !(run->jsonl = log_open(path_join(jp, sizeof jp, o->output, "trainer_log.jsonl"), o->resume, err, errn)))
        return 2;
    if (dist_root(dist) && !strcmp(o->report_to, "tensorboard") &&
        !(run->tb = tb_open(path_join(jp, sizeof jp, o->output, "runs"), err, errn)))
        return 2;
    return 0;
}

// the Trainer's arguments from the options (the HF Trainer's names)
static void trainer_args(TrainArgs *a, const TrainOpts *o, TrainRun *run, const Dist *dist) {
    train_args_default(a);
    a->batch_size = (int)o->batch, a->grad_accum = (int)o->accum, a->epochs = (int)o->epochs, a->lr = o->lr, a->weight_decay = o->wd;
    a->max_grad_norm = o->max_norm, a->logging_steps = (int)o->logging, a->save_steps = (int)o->save_steps;
    a->save_total_limit = (int)o->save_limit;
    a->seed = a->data_seed = (uint64_t)o->seed, a->scheduler = o->sk, a->warmup_steps = o->warmup, a->warmup_ratio = o->warmup_ratio;
    a->shuffle = !o->no_shuffle, a->output_dir = o->output, a->resume = o->resume;
    a->eval_steps = run->nte > 0 ? o->eval_steps : 0, a->eval_items = run->te, a->neval = run->nte, a->eval_batch = (int)o->batch;
    a->eval_target = run->target;
    a->jsonl = run->jsonl, a->tb = run->tb;
    a->progress = !o->quiet && dist_root(dist);
    a->dist = dist;
    if (!dist_root(dist)) a->log = NULL;
    a->run_settings = run->settings;
}

// rank 0's outputs after training: the adapter (peft), the configs, the plot, the held-out
// metrics and the model card; 0, or the exit status (1)
static int write_outputs(TrainRun *run, const TrainOpts *o, const TrainArgs *a, TrainModel *tm, PeftGen peft_gen) {
    char *err = run->err, p[FILE_PATH_BUF];
    size_t errn = sizeof run->err;
    VitModel *m = &run->m;
    if (adapter_save(m, o->output, peft_gen, o->model, err, errn) != 0 ||
        vit_config_save(&m->cfg, path_join(p, sizeof p, o->output, "config.json"), err, errn) != 0 ||
        image_processor_save(&run->ip, path_join(p, sizeof p, o->output, "preprocessor_config.json"), err, errn) != 0 ||
        trainer_plot(&run->st, path_join(p, sizeof p, o->output, "loss.png"), err, errn) != 0)
        return 1;
    printf("saved the adapter, config.json, preprocessor_config.json, trainer_state.json, trainer_log.jsonl and loss.png in %s\n",
           o->output);
    Metrics mt = {0};
    if (run->nte > 0) {
        if (trainer_evaluate(tm, run->te, run->nte, (int)o->batch, run->target, &mt, err, errn) != 0) return 1;
        printf("evaluation on the %d held-out images:\n", run->nte);
        print_metrics(&mt, m->cfg.id2label[run->target]);
    }
    ModelCard card = {.base_model = o->model,
                      .data = o->data,
                      .label = m->cfg.id2label[run->target],
                      .args = a,
                      .state = &run->st,
                      .spec = &m->lora,
                      .ntrain = run->ntr,
                      .ntest = run->nte,
                      .metrics = run->nte > 0 ? &mt : NULL};
    int cr = model_card_write(&card, o->output, err, errn);
    metrics_free(&mt);
    return cr != 0 ? 1 : 0;
}

static void run_free(TrainRun *run, const TrainOpts *o, int rc) {
    if (run->jsonl) fclose(run->jsonl);
    tb_close(run->tb);
    app_unlock_output();
    if (rc != 0 && run->made_output) rmdir(o->output); // a folder this run made and left empty goes again
    train_state_free(&run->st);
    loader_free(&run->L);
    free(run->tr), free(run->te);
    dataset_free(&run->d);
    if (run->loaded) vit_free(&run->m);
}

int cmd_train(int argc, char **argv) {
    TrainOpts o;
    int rc = parse_options(&o, argc, argv);
    if (rc != 0) return rc == 1 ? 0 : rc;
    app_threads(o.threads);
    TrainRun *run = calloc(1, sizeof *run);
    if (!run) return app_fail("train", "out of memory");
    const Dist *dist = dist_world();
    TrainArgs a;
    VitTask task;
    PeftGen peft_gen = strcmp(o.peft, "v5") ? PEFT_V4 : PEFT_V5;
    rc = prepare(run, &o) != 0 ? 2 : 0;
    if (rc == 0) describe_run(run, &o), rc = prepare_output(run, &o, dist);
    if (rc == 0) {
        trainer_args(&a, &o, run, dist);
        TrainModel *tm = vit_task(&task, &run->m, &run->L, peft_gen);
        app_catch_signals();
        int t = trainer_train(tm, run->tr, run->ntr, &a, &run->st, run->err, sizeof run->err);
        if (t == 130) {
            fprintf(stderr, "deit_lora train: %s\n", run->err);
            rc = -130;
        } else if (t != 0) {
            rc = strstr(run->err, "training stopped") ? 1 : 2;
        } else {
            if (dist->size > 1 && dist_root(dist) && run->st.global_step > 0)
                fprintf(stderr, "MPI: %d ranks, %.3f s in communication over %lld steps (%.2f ms per step)\n", dist->size,
                        dist_comm_seconds(), (long long)run->st.global_step, 1e3 * dist_comm_seconds() / (double)run->st.global_step);
            if (dist_root(dist)) rc = write_outputs(run, &o, &a, tm, peft_gen); // rank 0 writes the outputs and evaluates
        }
    }
    if (rc > 0) fprintf(stderr, "deit_lora train: %s\n", run->err);
    rc = rc == -130 ? 130 : rc < 0 ? 2 : rc; // -2: a rank other than 0 refused quietly
    run_free(run, &o, rc);
    free(run);
    return app_exit_status(rc);
}
