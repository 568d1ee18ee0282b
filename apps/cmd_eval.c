// cmd_eval.c: `deit_lora eval`: the notebook's evaluation loop on a folder of images.
#include "deit_lora.h"

#include <math.h>

#include <string.h>

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *data = NULL, *label = NULL, *target = NULL;
    long batch = 8, threads = 0;
    bool json = false, int8 = false;
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &adapter, 0, 0, "a peft adapter directory"},
        {"--data", OPT_STR, &data, 0, 0, "folder of images (with --label) or of class subfolders"},
        {"--label", OPT_STR, &label, 0, 0, "the label of every image in --data (and the target class)"},
        {"--target", OPT_STR, &target, 0, 0, "the class precision/recall/F1 are for (default: --label, else the model's last label)"},
        {"--batch-size", OPT_INT, &batch, 1, 4096, "images per forward pass (8)"},
        {"--threads", OPT_INT, &threads, 1, 1024, "threads (all cores)"},
        APP_INT8_OPT(int8),
        {"--json", OPT_FLAG, &json, 0, 0, "one JSON object: n, avg_loss, accuracy, precision, recall, f1, tp, fp, fn, tn"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora eval --model MODEL_DIR [--adapter DIR] --data DATA_DIR [--label NAME] [--int8] [--json]";
    const char *pos[1];
    int npos =
        cli_command(&(CliCommand){"eval", usage,
                                  "Average loss (mean of -log(p_true + 1e-8)), accuracy (predictions equal to the label), and precision,\n"
                                  "recall, F1 and TP/FP/FN/TN for the target class, 0 where a denominator is 0.",
                                  opts, NO},
                    argc, argv, pos, 0);
    if (npos < 0) return npos == CLI_HELP ? 0 : 2;
    if (!model || !data) return app_fail("eval", "needs --model and --data (see --help)");
    app_threads(threads);
    char err[FILE_ERR_BUF];
    VitModel m;
    ImageProcessor ip;
    if (app_load_model(&m, &ip, model, adapter, int8, err, sizeof err) != 0) return app_fail("eval", err);
    Dataset d;
    int rc = 2;
    if (dataset_from_folder(&d, data, label, err, sizeof err) != 0) goto bad_model;
    app_warn_skipped(&d, data);
    if (app_map_labels(&d, &m.cfg, data, err, sizeof err) != 0) goto bad;
    const char *tname = target ? target : label;
    int tgt = tname ? vit_config_label_id(&m.cfg, tname) : m.cfg.num_labels - 1;
    if (tgt < 0) {
        snprintf(err, sizeof err, "--target: '%s' is not one of the model's labels", tname);
        goto bad;
    }
    Loader L;
    loader_init(&L, &d, image_processor_prep, &ip, m.cfg.image_size, m.cfg.image_size, false);
    int64_t *items = malloc(sizeof *items * (size_t)d.n);
    for (int i = 0; i < d.n; i++) items[i] = i;
    Metrics mt;
    VitTask task;
    int e = trainer_evaluate_dist(vit_task(&task, &m, &L, PEFT_V4), items, d.n, (int)batch, tgt, dist_world(), &mt, err, sizeof err);
    free(items);
    loader_free(&L);
    if (e != 0) goto bad;
    if (!isfinite(mt.avg_loss)) { // NaN logits compare false everywhere: the counts would look perfect
        metrics_free(&mt);
        dataset_free(&d);
        vit_free(&m);
        return app_fail("eval", "the model's outputs are not finite (NaN or Inf): no metrics to report");
    }
    if (json)
        printf("{\"n\": %lld, \"avg_loss\": %.9g, \"accuracy\": %.9g, \"precision\": %.9g, \"recall\": %.9g, \"f1\": %.9g, "
               "\"tp\": %lld, \"fp\": %lld, \"fn\": %lld, \"tn\": %lld}\n",
               (long long)mt.n, mt.avg_loss, mt.accuracy, mt.precision, mt.recall, mt.f1, (long long)mt.tp, (long long)mt.fp,
               (long long)mt.fn, (long long)mt.tn);
    else {
        printf("%lld images, target '%s': TP %lld FP %lld FN %lld TN %lld\n", (long long)mt.n, m.cfg.id2label[tgt], (long long)mt.tp,
               (long long)mt.fp, (long long)mt.fn, (long long)mt.tn);
        printf("avg_loss:  %.4f\nAccuracy:  %.4f\nPrecision: %.4f\nRecall:    %.4f\nF1:        %.4f\n", mt.avg_loss, mt.accuracy,
               mt.precision, mt.recall, mt.f1);
        if (d.nclasses > 1) { // per-class counts and the confusion matrix over the data's classes
            printf("confusion (rows: true class, columns: predicted; 'other' = any other label of the model):\n%-16s", "");
            for (int c = 0; c < d.nclasses; c++) printf(" %10.10s", d.class_names[c]);
            printf(" %10s %8s\n", "other", "recall");
            for (int t = 0; t < d.nclasses; t++) {
                int ti = vit_config_label_id(&m.cfg, d.class_names[t]);
                int64_t row = 0, other = 0;
                for (int p = 0; p < mt.nclasses; p++) row += mt.confusion[ti * mt.nclasses + p];
                printf("%-16.16s", d.class_names[t]);
                for (int c = 0; c < d.nclasses; c++) {
                    int64_t v = mt.confusion[ti * mt.nclasses + vit_config_label_id(&m.cfg, d.class_names[c])];
                    printf(" %10lld", (long long)v);
                    other -= v;
                }
                other += row;
                printf(" %10lld %7.1f%%\n", (long long)other, row ? 100.0 * mt.confusion[ti * mt.nclasses + ti] / (double)row : 0.0);
            }
        }
    }
    metrics_free(&mt);
    rc = 0;
    goto out;
bad:
    fprintf(stderr, "deit_lora eval: %s\n", err);
out:
    dataset_free(&d);
    vit_free(&m);
    return rc;
bad_model:
    vit_free(&m);
    return app_fail("eval", err);
}
