// cmd_demo.c: `deit_lora demo`, the offline default job: the notebook's story on Fashion-MNIST.
// 1. pretrain a small ViT from scratch on nine classes: the "pretrained model" (an HF directory);
// 2. teach it the tenth class, "Ankle boot", with the notebook's exact recipe (head extension,
//    frozen base, LoRA on query/value, 65 training images, 10 held out, its hyperparameters);
// 3. again with images of the other classes mixed in (the practice the notebook recommends);
// and for each: the new class's held-out recall and precision and the 10-class test accuracy.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <string.h>
#include <sys/stat.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define NEW_CLASS  9 // "Ankle boot"

typedef struct {
    double recall, test_recall, precision, acc10, acc9;
} Outcome;

// held-out metrics for the new class, and accuracy on the test set (all ten classes; the nine)
static int evaluate(VitModel *m, Loader *Lt, const Dataset *test, const int64_t *held, int nheld, Loader *Lh, bool nine_only, Outcome *o,
                    char *err, size_t errn) {
    Metrics mt;
    VitTask task;
    if (nheld) {
        if (trainer_evaluate(vit_task(&task, m, Lh, PEFT_V4), held, nheld, 64, NEW_CLASS, &mt, err, errn) != 0) return -1;
        o->recall = mt.recall;
        metrics_free(&mt);
    }
    int64_t *all = malloc(sizeof *all * (size_t)test->n);
    int ntest = 0;
    for (int i = 0; i < test->n; i++)
        if (!nine_only || test->labels[i] != NEW_CLASS) all[ntest++] = i;
    int rc = trainer_evaluate(vit_task(&task, m, Lt, PEFT_V4), all, ntest, 128, nine_only ? 0 : NEW_CLASS, &mt, err, errn);
    free(all);
    if (rc != 0) return -1;
    o->acc10 = mt.accuracy;
    o->precision = mt.precision; // over the whole test set: how often "Ankle boot" is right
    o->test_recall = mt.recall;  // and how many of its 1000 ankle boots it finds
    int64_t c9 = 0, n9 = 0;
    for (int t = 0; t < mt.nclasses && t < 10; t++) {
        if (t == NEW_CLASS) continue;
        for (int p = 0; p < mt.nclasses; p++) n9 += mt.confusion[t * mt.nclasses + p];
        c9 += mt.confusion[t * mt.nclasses + t];
    }
    o->acc9 = n9 ? (double)c9 / (double)n9 : 0;
    metrics_free(&mt);
    return 0;
}

static void top5(VitModel *m, const Dataset *test, ImageProcessor *ip, const int *items, int n) {
    Ctx *c = ctx_new(1 << 22);
    int S = m->cfg.image_size, K = m->cfg.num_labels;
    float *pix = malloc(sizeof(float) * 3 * (size_t)S * S);
    char err[256];
    for (int k = 0; k < n; k++) {
        Image im;
        dataset_image(test, items[k], &im, err, sizeof err);
        image_processor_prep(ip, &im, pix);
        image_free(&im);
        ctx_reset(c);
        ag_no_grad(c, true);
        Tensor *p = ag_softmax(c, vit_forward(c, m, tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, 3, S, S}, pix), NULL));
        printf("  test image %d (a %s):", items[k], test->class_names[test->labels[items[k]]]);
        int kk = K < 5 ? K : 5;
        Tensor *ids = NULL, *best = ag_topk(c, p, kk, -1, true, &ids); // ties: the lower id first
        for (int t = 0; best && t < kk; t++) {
            int64_t b = ((const int64_t *)ids->data)[t];
            printf("%s %s %.4f", t ? "," : "", m->cfg.id2label[b], ((const float *)best->data)[t]);
        }
        printf("\n");
    }
    free(pix);
    ctx_free(c);
}

// the options, and what the story's three acts share
typedef struct {
    const char *work;
    long pre_epochs, threads, seed, mixed_per_class, pre_limit, mixed_epochs;
    double mixed_lr;
    bool quick, reuse;
} DemoOpts;

typedef struct {
    Dataset train, test;
    Loader L, Lt; // training and test images through the processor
    ImageProcessor ip;
    Rng rng;
    char base_dir[FILE_PATH_BUF];
    int64_t *boots, *others; // the new class's training images and the others', shuffled
    int nb, no;
    Outcome base, res[2], int8;
    char err[FILE_ERR_BUF];
} Demo;

// 0 to go on, 1 when --help was printed, 2 after a message
static int parse_options(DemoOpts *o, int argc, char **argv) {
    *o = (DemoOpts){.work = "deit_lora_demo", .pre_epochs = 3, .seed = 42, .mixed_per_class = 60, .mixed_epochs = 8, .mixed_lr = 2e-3};
    const CliOpt opts[] = {
        {"--work", OPT_STR, &o->work, 0, 0, "folder for the pretrained model and the adapters (deit_lora_demo)"},
        {"--pretrain-epochs", OPT_INT, &o->pre_epochs, 1, 100, "epochs of pretraining on the nine classes (3)"},
        {"--pretrain-limit", OPT_INT, &o->pre_limit, 0, 60000, "use only this many training images for pretraining (all)"},
        {"--mixed-per-class", OPT_INT, &o->mixed_per_class, 1, 5000, "images of each other class in the mixed recipe (60)"},
        {"--mixed-epochs", OPT_INT, &o->mixed_epochs, 1, 1000, "epochs of the mixed recipe (8)"},
        {"--mixed-lr", OPT_DOUBLE, &o->mixed_lr, 1e-9, 1, "learning rate of the mixed recipe (2e-3)"},
        {"--reuse-pretrained", OPT_FLAG, &o->reuse, 0, 0, "keep WORK/pretrained from an earlier run instead of pretraining"},
        {"--seed", OPT_INT, &o->seed, 0, 2147483647, "seed (42)"},
        {"--threads", OPT_INT, &o->threads, 1, 1024, "threads (all cores)"},
        {"--quick", OPT_FLAG, &o->quick, 0, 0, "a short version for tests: 6000 pretraining images, one epoch"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora demo [--work DIR] [--quick]";
    const char *pos[1];
    int npos = cli_command(
        &(CliCommand){"demo", usage,
                      "The notebook's story on Fashion-MNIST (Debian's dataset-fashion-mnist), offline: pretrain a small ViT on nine\n"
                      "classes, then teach it 'Ankle boot' with the notebook's LoRA recipe, and with other classes mixed in.",
                      opts, NO},
        argc, argv, pos, 0);
    if (npos < 0) return npos == CLI_HELP ? 1 : 2;
    if (o->quick) o->pre_limit = 6000, o->pre_epochs = 1;
    return 0;
}

// ---- 1. the "pretrained model": a small ViT on the nine classes other than Ankle boot (or an
// earlier run's, with --reuse-pretrained), saved as a Hugging Face directory; -1 with the message
static int pretrain(Demo *d, const DemoOpts *o) {
    printf("== 1. Pretraining a small ViT from scratch on nine Fashion-MNIST classes (all but '%s') ==\n",
           FASHION_MNIST_CLASSES[NEW_CLASS]);
    char *err = d->err, p[FILE_PATH_BUF];
    size_t errn = sizeof d->err;
    VitModel m;
    if (o->reuse && dir_exists(d->base_dir)) {
        if (vit_load(&m, d->base_dir, err, errn) != 0) return -1;
        printf("reusing %s\n", d->base_dir);
        int r = evaluate(&m, &d->Lt, &d->test, NULL, 0, NULL, true, &d->base, err, errn);
        vit_free(&m);
        return r;
    }
    VitConfig cfg;
    vit_config_init(&cfg);
    cfg.image_size = 28, cfg.patch_size = 7, cfg.hidden_size = 64, cfg.num_attention_heads = 4, cfg.num_hidden_layers = 4;
    cfg.intermediate_size = 128;
    vit_config_set_num_labels(&cfg, 9);
    for (int i = 0; i < 9; i++) vit_config_set_label(&cfg, i, FASHION_MNIST_CLASSES[i]);
    int r = vit_init_random(&m, &cfg, (uint64_t)o->seed, err, errn);
    vit_config_free(&cfg);
    if (r != 0) return -1;
    nn_params_set_trainable(&m.params, "*", true);
    int64_t *items = malloc(sizeof *items * (size_t)d->train.n);
    int n9 = 0;
    for (int i = 0; i < d->train.n; i++)
        if (d->train.labels[i] != NEW_CLASS) items[n9++] = i;
    rng_shuffle(&d->rng, items, n9);
    if (o->pre_limit && o->pre_limit < n9) n9 = (int)o->pre_limit;
    TrainArgs a;
    train_args_default(&a);
    a.batch_size = 128, a.epochs = (int)o->pre_epochs, a.lr = 2e-3, a.weight_decay = 0.05, a.warmup_ratio = 0.05;
    a.label_smoothing = 0.1; // as DeiT was trained: it keeps the head's logits moderate
    long steps = o->pre_epochs * ((n9 + 127) / 128);
    a.logging_steps = (int)(steps / 25 > 0 ? steps / 25 : 1);
    a.seed = a.data_seed = (uint64_t)o->seed, a.log = NULL, a.progress = true;
    printf("%d images, %d epochs, batch %d, AdamW lr %g (%d parameters)\n", n9, a.epochs, a.batch_size, a.lr,
           (int)nn_params_count(&m.params, false));
    TrainState st;
    VitTask task;
    r = trainer_train(vit_task(&task, &m, &d->L, PEFT_V4), items, n9, &a, &st, err, errn);
    printf("pretraining: %lld steps in %.0f s, loss %.3f at first, %.3f at the end\n", (long long)st.global_step, st.runtime_s,
           st.nlogs ? st.logs[0].loss : 0.0, st.nlogs ? st.logs[st.nlogs - 1].loss : 0.0);
    train_state_free(&st);
    free(items);
    if (r == 0) r = evaluate(&m, &d->Lt, &d->test, NULL, 0, NULL, true, &d->base, err, errn);
    if (r == 0)
        printf("base model: accuracy on the nine classes' test images %.2f%% (it has never seen an ankle boot)\n", 100 * d->base.acc9);
    if (r == 0) r = vit_save_pretrained(&m, d->base_dir, err, errn);
    if (r == 0) r = image_processor_save(&d->ip, path_join(p, sizeof p, d->base_dir, "preprocessor_config.json"), err, errn);
    if (r == 0) printf("saved the pretrained model as a Hugging Face directory: %s\n", d->base_dir);
    vit_free(&m);
    return r != 0 ? -1 : 0;
}

// ---- 2. the notebook's recipe (recipe 0); 3. with other classes mixed in (1): LoRA on the
// pretrained model, trained, saved, evaluated; the mixed one also as --int8 serves it
static int teach(Demo *d, const DemoOpts *o, int recipe) {
    printf("\n== %d. Teaching it '%s' with LoRA: %s ==\n", 2 + recipe, FASHION_MNIST_CLASSES[NEW_CLASS],
           recipe ? "the notebook's recipe with other classes mixed in" : "the notebook's exact recipe (65 images of the new class)");
    char *err = d->err, p[FILE_PATH_BUF];
    size_t errn = sizeof d->err;
    Outcome *res = &d->res[recipe];
    VitModel m;
    if (vit_load(&m, d->base_dir, err, errn) != 0) return -1;
    int r = vit_add_label(&m, FASHION_MNIST_CLASSES[NEW_CLASS], &d->rng, err, errn) != NEW_CLASS ? -1 : 0;
    VitLoraSpec s = {.r = 4, .alpha = 8, .dropout = 0.2, .targets = {"query", "value"}, .ntargets = 2, .save_classifier = true};
    if (r == 0) vit_freeze_all(&m), r = vit_attach_lora(&m, &s, &d->rng, err, errn);
    if (r != 0) {
        vit_free(&m);
        return -1;
    }
    vit_print_trainable_parameters(&m, stdout);
    int nmix = recipe ? (int)(9 * o->mixed_per_class) : 0, ntr = 65 + nmix;
    int64_t *tr = malloc(sizeof *tr * (size_t)ntr), held[10];
    for (int i = 0; i < 65; i++) tr[i] = d->boots[i];
    for (int i = 0; i < 10; i++) held[i] = d->boots[65 + i];
    for (int c = 0, k = 65; recipe && c < 9; c++) // mixed_per_class of each other class
        for (int i = 0, got = 0; i < d->no && got < o->mixed_per_class; i++)
            if (d->train.labels[d->others[i]] == c) tr[k++] = d->others[i], got++;
    Rng sh = rng_new((uint64_t)o->seed + 7);
    rng_shuffle(&sh, tr, ntr);
    TrainArgs la;
    train_args_default(&la);
    la.batch_size = 2, la.grad_accum = 4, la.epochs = 5, la.lr = 6e-4, la.weight_decay = 0.01, la.logging_steps = 2;
    la.seed = la.data_seed = (uint64_t)o->seed, la.log = NULL, la.progress = true;
    if (recipe) la.batch_size = 16, la.grad_accum = 1, la.lr = o->mixed_lr, la.epochs = (int)o->mixed_epochs; // 600 images
    snprintf(p, sizeof p, "%s/adapter_%s", o->work, recipe ? "mixed" : "notebook");
    la.output_dir = p, la.save_total_limit = 1;
    printf("%d training images (%d of '%s'), batch %d x accumulation %d, %d epochs, lr %g\n", ntr, 65, FASHION_MNIST_CLASSES[NEW_CLASS],
           la.batch_size, la.grad_accum, la.epochs, la.lr);
    TrainState st;
    VitTask task;
    r = trainer_train(vit_task(&task, &m, &d->L, PEFT_V4), tr, ntr, &la, &st, err, errn);
    if (r == 0)
        printf("trained %lld steps in %.0f s: loss %.3f at first, %.3f at the end\n", (long long)st.global_step, st.runtime_s,
               st.nlogs ? st.logs[0].loss : 0.0, st.nlogs ? st.logs[st.nlogs - 1].loss : 0.0);
    train_state_free(&st);
    free(tr);
    if (r == 0) r = adapter_save(&m, p, PEFT_V4, d->base_dir, err, errn);
    if (r == 0) {
        Loader Lh;
        loader_init(&Lh, &d->train, image_processor_prep, &d->ip, 28, 28, false);
        r = evaluate(&m, &d->Lt, &d->test, held, 10, &Lh, false, res, err, errn);
        loader_free(&Lh);
    }
    if (r == 0)
        printf("held-out '%s' recall %.0f%% (10 images); on the test set: recall %.1f%% (1000 images), precision %.1f%%; "
               "accuracy on all ten classes %.2f%% (the nine old ones: %.2f%%)\n",
               FASHION_MNIST_CLASSES[NEW_CLASS], 100 * res->recall, 100 * res->test_recall, 100 * res->precision, 100 * res->acc10,
               100 * res->acc9);
    if (r == 0 && recipe) {
        printf("top-5 predictions for a few test images:\n");
        int show[] = {0, 1, 2, 8};
        top5(&m, &d->test, &d->ip, show, 4);
        // the same model as --int8 serves it: the adapter merged, the encoder's products in int8
        r = vit_quantize_int8(&m, err, errn);
        if (r == 0) r = evaluate(&m, &d->Lt, &d->test, NULL, 0, NULL, false, &d->int8, err, errn);
        if (r == 0)
            printf("with --int8 (the adapter merged, int8 products, kernel %s, attention in %s): accuracy on all ten classes %.2f%% (%+.2f "
                   "points)\n",
                   tensor_int8_kernel(), app_int8_attention(), 100 * d->int8.acc10, 100 * (d->int8.acc10 - res->acc10));
    }
    vit_free(&m);
    return r != 0 ? -1 : 0;
}

static void summary(const Demo *d, double seconds) {
    printf("\n== Summary (%.0f s) ==\n", seconds);
    printf("base model, nine classes:            accuracy %.2f%%\n", 100 * d->base.acc9);
    for (int k = 0; k < 2; k++)
        printf("%s held-out recall %3.0f%%, test recall %5.1f%%, 10-class accuracy %.2f%%\n",
               k ? "mixed recipe (other classes mixed):  " : "notebook recipe (new class only):    ", 100 * d->res[k].recall,
               100 * d->res[k].test_recall, 100 * d->res[k].acc10);
    printf("mixed recipe with --int8:             10-class accuracy %.2f%% (%+.2f points)\n", 100 * d->int8.acc10,
           100 * (d->int8.acc10 - d->res[1].acc10));
    if (d->res[0].test_recall < 0.5)
        printf("With the notebook's 45 small steps, the new class's logit rises but stays below the old classes' on most\n"
               "ankle boots: a confident head needs the other classes in the data, as the mixed recipe shows.\n");
    printf("demo: base %s 85%%; mixed recipe recall %s 90%%, 10-class accuracy %s 80%%\n", d->base.acc9 >= 0.85 ? ">=" : "BELOW",
           d->res[1].recall >= 0.9 ? ">=" : "BELOW", d->res[1].acc10 >= 0.8 ? ">=" : "BELOW");
}

int cmd_demo(int argc, char **argv) {
    DemoOpts o;
    int rc = parse_options(&o, argc, argv);
    if (rc != 0) return rc == 1 ? 0 : rc;
    app_threads(o.threads);
    Demo *d = calloc(1, sizeof *d);
    if (!d) return app_fail("demo", "out of memory");
    if (dataset_fashion_mnist(&d->train, FMNIST_DIR, true, d->err, sizeof d->err) != 0 ||
        dataset_fashion_mnist(&d->test, FMNIST_DIR, false, d->err, sizeof d->err) != 0) {
        fprintf(stderr, "deit_lora demo: %s\n(install Debian's dataset-fashion-mnist: apt-get install dataset-fashion-mnist)\n", d->err);
        rc = 2;
    } else if (!dir_exists(o.work) && mkdir(o.work, 0755) != 0) {
        rc = app_fail("demo", "--work: cannot create the folder");
    } else {
        double t0 = app_seconds();
        d->rng = rng_new((uint64_t)o.seed);
        image_processor_default(&d->ip, 28);
        loader_init(&d->L, &d->train, image_processor_prep, &d->ip, 28, 28, false);
        loader_init(&d->Lt, &d->test, image_processor_prep, &d->ip, 28, 28, false);
        snprintf(d->base_dir, sizeof d->base_dir, "%s/pretrained", o.work);
        rc = pretrain(d, &o);
        if (rc == 0) { // the new class's images, shuffled: 75 for the notebook (65 train, 10 held out)
            d->boots = malloc(sizeof *d->boots * (size_t)d->train.n), d->others = malloc(sizeof *d->others * (size_t)d->train.n);
            for (int i = 0; i < d->train.n; i++) {
                if (d->train.labels[i] == NEW_CLASS)
                    d->boots[d->nb++] = i;
                else
                    d->others[d->no++] = i;
            }
            rng_shuffle(&d->rng, d->boots, d->nb);
            rng_shuffle(&d->rng, d->others, d->no);
        }
        for (int recipe = 0; rc == 0 && recipe < 2; recipe++) rc = teach(d, &o, recipe);
        if (rc == 0) summary(d, app_seconds() - t0);
        if (rc != 0) fprintf(stderr, "deit_lora demo: %s\n", d->err);
        rc = rc != 0 ? 1 : 0;
    }
    free(d->boots), free(d->others);
    loader_free(&d->L), loader_free(&d->Lt);
    dataset_free(&d->train), dataset_free(&d->test);
    free(d);
    return rc;
}
