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

int cmd_train(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *label = NULL, *output = NULL, *target = NULL, *target_regex = NULL, *init_adapter = NULL,
               *sched = "linear", *peft = "v4";
    long epochs = 5, batch = 2, accum = 4, r = 4, logging = 2, save_limit = 1, save_steps = 500, threads = 0, seed = 42, warmup = 0,
         eval_steps = 0;
    double lr = 6e-4, wd = 0.01, max_norm = 1.0, alpha = 8, dropout = 0.2, test_size = 10, warmup_ratio = 0;
    bool no_shuffle = false, resume = false, overwrite = false, no_cache = false, quiet = false;
    FILE *jsonl = NULL;  // the run's log as JSON lines
    TbWriter *tb = NULL; // and as TensorBoard events (--report-to tensorboard)
    const char *report_to = "none";
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory (config.json, weights, optional preprocessor_config.json)"},
        {"--data", OPT_STR, &data, 0, 0, "folder of images (with --label) or of class subfolders"},
        {"--label", OPT_STR, &label, 0, 0, "the label of every image in --data"},
        {"--output", OPT_STR, &output, 0, 0, "output folder (adapter, configs, trainer_state.json, loss.png, checkpoints)"},
        {"--epochs", OPT_INT, &epochs, 1, 100000, "epochs (5)"},
        {"--batch-size", OPT_INT, &batch, 1, 4096, "micro-batch size (2)"},
        {"--grad-accum", OPT_INT, &accum, 1, 4096, "gradient accumulation steps (4)"},
        {"--lr", OPT_DOUBLE, &lr, 1e-12, 10, "peak learning rate (6e-4)"},
        {"--weight-decay", OPT_DOUBLE, &wd, 0, 10, "AdamW weight decay, not for biases and norms (0.01)"},
        {"--max-grad-norm", OPT_DOUBLE, &max_norm, 0, 1e9, "clip the total gradient norm (1.0; 0 disables)"},
        {"--scheduler", OPT_STR, &sched, 0, 0, "linear, cosine or constant (linear)"},
        {"--warmup-steps", OPT_INT, &warmup, 0, 1000000000, "warm-up steps (0)"},
        {"--warmup-ratio", OPT_DOUBLE, &warmup_ratio, 0, 1, "warm-up as a fraction of the steps (0)"},
        {"--lora-r", OPT_INT, &r, 1, 4096, "LoRA rank (4)"},
        {"--lora-alpha", OPT_DOUBLE, &alpha, 1e-9, 1e9, "LoRA alpha (8)"},
        {"--lora-dropout", OPT_DOUBLE, &dropout, 0, 0.999, "dropout on the LoRA branch (0.2)"},
        {"--target", OPT_STR, &target, 0, 0, "LoRA target modules (query,value; also key, dense, q_proj, v_proj, fc1, ...)"},
        {"--target-regex", OPT_STR, &target_regex, 0, 0, "instead of --target: a regex full-matched against module names, as peft does"},
        {"--logging-steps", OPT_INT, &logging, 0, 1000000000, "log every N optimizer steps (2)"},
        {"--save-steps", OPT_INT, &save_steps, 0, 1000000000, "checkpoint every N steps, and at the end (500)"},
        {"--report-to", OPT_STR, &report_to, 0, 0, "tensorboard: the logs also as TensorBoard events in OUT/runs (none)"},
        {"--eval-steps", OPT_INT, &eval_steps, 0, 1000000000, "evaluate on the held-out images every N steps, logged (0: at the end only)"},
        {"--save-total-limit", OPT_INT, &save_limit, 0, 1000000, "checkpoints kept (1; 0 keeps all)"},
        {"--seed", OPT_INT, &seed, 0, 2147483647, "seed for the split, the order, the new head row and LoRA init (42)"},
        {"--test-size", OPT_DOUBLE, &test_size, 0, 1e9, "images held out for evaluation: a count, or a fraction < 1 (10)"},
        {"--threads", OPT_INT, &threads, 1, 1024, "threads (all cores)"},
        {"--no-shuffle", OPT_FLAG, &no_shuffle, 0, 0, "files in byte order of their names, no shuffling"},
        {"--init-adapter", OPT_STR, &init_adapter, 0, 0, "start from a saved adapter (its r, alpha, targets and labels)"},
        {"--resume", OPT_FLAG, &resume, 0, 0, "continue from the newest checkpoint in --output (bit for bit at the same --threads)"},
        {"--overwrite", OPT_FLAG, &overwrite, 0, 0, "write into a non-empty --output"},
        {"--peft-format", OPT_STR, &peft, 0, 0, "adapter key names: v4 (transformers 4, the notebook's) or v5"},
        {"--no-cache", OPT_FLAG, &no_cache, 0, 0, "decode images every epoch instead of keeping them in memory"},
        {"--quiet", OPT_FLAG, &quiet, 0, 0, "no progress bar"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    r = alpha = dropout = -1; // "not given": the defaults below, or the --init-adapter's
    const char *usage = "deit_lora train --model MODEL_DIR --data DATA_DIR [--label NAME] --output OUT_DIR [options]";
    if (cli_wants_help(argc, argv, 2)) {
        cli_help(stdout, usage, "Fine-tunes the model with LoRA on a folder of images, as the seed notebook does.", opts, NO);
        return 0;
    }
    const char *pos[1];
    if (cli_parse("deit_lora train", argc, argv, 2, opts, NO, pos, 0) < 0) return 2;
    char err[FILE_ERR_BUF];
    if (!model || !data || !output) return app_fail("train", "needs --model, --data and --output (see --help)");
    SchedKind sk;
    if (schedule_parse(sched, &sk) != 0) return app_fail("train", "--scheduler: must be linear, cosine or constant");
    if (strcmp(peft, "v4") && strcmp(peft, "v5")) return app_fail("train", "--peft-format: must be v4 or v5");
    if (strcmp(report_to, "none") && strcmp(report_to, "tensorboard")) return app_fail("train", "--report-to: must be tensorboard or none");
    VitLoraSpec spec = {.r = (int)r, .alpha = alpha, .dropout = dropout, .save_classifier = true};
    bool r_given = r > 0, alpha_given = alpha > 0, dropout_given = dropout >= 0;
    if (!r_given) r = 4;
    if (!alpha_given) alpha = 8;
    if (!dropout_given) dropout = 0.2;
    spec.r = (int)r, spec.alpha = alpha, spec.dropout = dropout;
    if (target && target_regex) return app_fail("train", "--target and --target-regex exclude each other");
    if (target_regex) {
        if (!*target_regex || strlen(target_regex) >= sizeof spec.target_regex) {
            snprintf(err, sizeof err, "--target-regex: must have 1 to %zu characters", sizeof spec.target_regex - 1);
            return app_fail("train", err);
        }
        snprintf(spec.target_regex, sizeof spec.target_regex, "%s", target_regex);
    } else if (app_target_list(target ? target : "query,value", &spec, err, sizeof err) != 0)
        return app_fail("train", err);
    if (app_output_dir("--output", output, overwrite, resume, (const char *[]){model, data, init_adapter, NULL}, err, sizeof err) != 0)
        return app_fail("train", err);
    app_threads(threads);

    int rc = 2;
    VitModel m;
    ImageProcessor ip;
    Dataset d = {0};
    Loader L = {0};
    int64_t *tr = NULL, *te = NULL;
    int ntr = 0, nte = 0;
    TrainState st = {0};
    bool made_output = false;
    if (app_load_model(&m, &ip, model, init_adapter, false, err, sizeof err) != 0) return app_fail("train", err);
    if (dataset_from_folder(&d, data, label, err, sizeof err) != 0) goto bad;
    app_warn_skipped(&d, data);
    // every label of the data that the model lacks gets a new head row (the seed's recipe)
    Rng rng = rng_new((uint64_t)seed);
    for (int c = 0; c < d.nclasses; c++)
        if (vit_add_label(&m, d.class_names[c], &rng, err, sizeof err) < 0) goto bad;
    if (app_map_labels(&d, &m.cfg, data, err, sizeof err) != 0) goto bad;
    // with --init-adapter the adapter fixes the structure (r, alpha, targets: a conflicting flag is
    // refused); dropout is a training setting, so an explicit --lora-dropout wins
    if (init_adapter && ((r_given && r != m.lora.r) || (alpha_given && alpha != m.lora.alpha) ||
                         ((target || target_regex) && !same_targets(&spec, &m.lora)))) {
        snprintf(err, sizeof err,
                 "--init-adapter %s has r %d, alpha %g%s; --lora-r, --lora-alpha, --target and --target-regex "
                 "must agree with it or be left out",
                 init_adapter, m.lora.r, m.lora.alpha, m.lora.target_regex[0] ? " and a target regex" : "");
        goto bad;
    }
    if (init_adapter && dropout_given) vit_set_lora_dropout(&m, dropout);
    if (!init_adapter) {
        vit_freeze_all(&m);
        if (vit_attach_lora(&m, &spec, &rng, err, sizeof err) != 0) goto bad;
    }
    vit_print_trainable_parameters(&m, stdout);
    if (dataset_split(d.n, (uint64_t)seed, !no_shuffle, test_size, &tr, &ntr, &te, &nte, err, sizeof err) != 0) {
        char e2[sizeof err];
        snprintf(e2, sizeof e2, "%s", err);
        snprintf(err, sizeof err, "%.1000s: %.1000s", data, e2);
        goto bad;
    }
    printf("%d images: %d for training, %d held out; %d classes, %d labels in the model\n", d.n, ntr, nte, d.nclasses, m.cfg.num_labels);
    loader_init(&L, &d, image_processor_prep, &ip, m.cfg.image_size, m.cfg.image_size, !no_cache);
    // every image is decoded once before the first step (into the cache when it is on): a bad
    // file stops the run before anything is trained or written
    if (loader_check_all(&L, err, sizeof err) != 0) goto bad;
    // what --resume must find unchanged: the data (folder, files, labels), the split, the order and
    // the optimisation (refused rather than applied midway: the result would match no single run)
    char data_abs[PATH_MAX], settings[8192];
    if (!realpath(data, data_abs)) snprintf(data_abs, sizeof data_abs, "%s", data);
    uint64_t h = 1469598103934665603ull; // FNV-1a over the files' names (below --data) and labels
    for (int i = 0; i < d.n; i++) {
        for (const char *q = d.paths[i] + strlen(data); *q; q++) h = (h ^ (unsigned char)*q) * 1099511628211ull;
        h = (h ^ (uint64_t)d.labels[i]) * 1099511628211ull;
    }
    snprintf(settings, sizeof settings,
             "--data %s\nimages %d (names %016llx)\n--label %s\n--seed %ld\n--test-size %.17g\n--no-shuffle %d\n"
             "--batch-size %ld\n--grad-accum %ld\n--epochs %ld\n--lr %.17g\n--weight-decay %.17g\n--max-grad-norm %.17g\n"
             "--scheduler %s\n--warmup-steps %ld\n--warmup-ratio %.17g",
             data_abs, d.n, (unsigned long long)h, label ? label : "(class folders)", seed, test_size, no_shuffle, batch, accum, epochs, lr,
             wd, max_norm, sched, warmup, warmup_ratio);
    const Dist *dist = dist_world();
    // every rank must train the same thing: compared before anything is written (only rank 0 says so)
    if (app_ranks_agree(dist, settings, &m, &d, err, sizeof err) != 0) {
        if (!dist_root(dist)) {
            rc = 2;
            goto out;
        }
        goto bad;
    }
    made_output = !dir_exists(output) && dist_root(dist);
    // rank 0 alone makes, locks and writes the output folder; the others wait for it
    double made = 1;
    if (dist_root(dist) && (app_make_output_dir(output, err, sizeof err) != 0 || app_lock_output(output, err, sizeof err) != 0)) made = 0;
    if (dist->size > 1 && dist_allreduce_sum(dist, &made, 1, err, sizeof err) != 0) goto bad;
    if (made < dist->size) {
        if (!dist_root(dist)) snprintf(err, sizeof err, "rank 0 could not prepare --output %s", output);
        goto bad;
    }
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = (int)batch, a.grad_accum = (int)accum, a.epochs = (int)epochs, a.lr = lr, a.weight_decay = wd;
    a.max_grad_norm = max_norm, a.logging_steps = (int)logging, a.save_steps = (int)save_steps, a.save_total_limit = (int)save_limit;
    a.seed = a.data_seed = (uint64_t)seed, a.scheduler = sk, a.warmup_steps = warmup, a.warmup_ratio = warmup_ratio;
    a.shuffle = !no_shuffle, a.output_dir = output, a.resume = resume;
    int tgt = label ? vit_config_label_id(&m.cfg, label) : m.cfg.num_labels - 1; // the class precision, recall and F1 are for
    a.eval_steps = nte > 0 ? eval_steps : 0, a.eval_items = te, a.neval = nte, a.eval_batch = (int)batch, a.eval_target = tgt;
    // every log entry as a JSON line (a resume appends to the run's lines)
    char jp[FILE_PATH_BUF];
    if (dist_root(dist) && !(jsonl = log_open(path_join(jp, sizeof jp, output, "trainer_log.jsonl"), resume, err, sizeof err))) goto bad;
    a.jsonl = jsonl;
    if (dist_root(dist) && !strcmp(report_to, "tensorboard") && !(tb = tb_open(path_join(jp, sizeof jp, output, "runs"), err, sizeof err)))
        goto bad;
    a.tb = tb;
    PeftGen peft_gen = strcmp(peft, "v5") ? PEFT_V4 : PEFT_V5;
    VitTask task;
    TrainModel *tm = vit_task(&task, &m, &L, peft_gen);
    a.progress = !quiet && dist_root(dist);
    a.dist = dist;
    if (!dist_root(dist)) a.log = NULL;
    a.run_settings = settings;
    app_catch_signals();
    int t = trainer_train(tm, tr, ntr, &a, &st, err, sizeof err);
    if (t == 130) {
        fprintf(stderr, "deit_lora train: %s\n", err);
        rc = 130;
        goto out;
    }
    if (t != 0) {
        rc = strstr(err, "training stopped") ? 1 : 2;
        goto bad_rc;
    }
    if (dist->size > 1 && dist_root(dist) && st.global_step > 0)
        fprintf(stderr, "MPI: %d ranks, %.3f s in communication over %lld steps (%.2f ms per step)\n", dist->size, dist_comm_seconds(),
                (long long)st.global_step, 1e3 * dist_comm_seconds() / (double)st.global_step);
    if (!dist_root(dist)) { // rank 0 writes the outputs and evaluates
        rc = 0;
        goto out;
    }
    // the outputs: adapter (peft), configs, plot
    char p[FILE_PATH_BUF];
    if (adapter_save(&m, output, peft_gen, model, err, sizeof err) != 0 ||
        vit_config_save(&m.cfg, path_join(p, sizeof p, output, "config.json"), err, sizeof err) != 0 ||
        image_processor_save(&ip, path_join(p, sizeof p, output, "preprocessor_config.json"), err, sizeof err) != 0 ||
        trainer_plot(&st, path_join(p, sizeof p, output, "loss.png"), err, sizeof err) != 0) {
        rc = 1;
        goto bad_rc;
    }
    printf("saved the adapter, config.json, preprocessor_config.json, trainer_state.json, trainer_log.jsonl and loss.png in %s\n", output);
    Metrics mt = {0};
    if (nte > 0) {
        if (trainer_evaluate(tm, te, nte, (int)batch, tgt, &mt, err, sizeof err) != 0) {
            rc = 1;
            goto bad_rc;
        }
        printf("evaluation on the %d held-out images:\n", nte);
        print_metrics(&mt, m.cfg.id2label[tgt]);
    }
    ModelCard card = {.base_model = model,
                      .data = data,
                      .label = m.cfg.id2label[tgt],
                      .args = &a,
                      .state = &st,
                      .spec = &m.lora,
                      .ntrain = ntr,
                      .ntest = nte,
                      .metrics = nte > 0 ? &mt : NULL};
    int cr = model_card_write(&card, output, err, sizeof err);
    metrics_free(&mt);
    if (cr != 0) {
        rc = 1;
        goto bad_rc;
    }
    rc = 0;
    goto out;
bad:
    rc = 2;
bad_rc:
    fprintf(stderr, "deit_lora train: %s\n", err);
out:
    if (jsonl) fclose(jsonl);
    tb_close(tb);
    app_unlock_output();
    if (rc != 0 && made_output) rmdir(output); // a folder this run made and left empty goes again
    rc = app_exit_status(rc);
    train_state_free(&st);
    loader_free(&L);
    free(tr), free(te);
    dataset_free(&d);
    vit_free(&m);
    return rc;
}
