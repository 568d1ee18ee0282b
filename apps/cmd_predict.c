// cmd_predict.c: `deit_lora predict`: the notebook's get_top5 for each image.
#include "deit_lora.h"
#include "results.h"

#include <math.h>
#include <string.h>

// one image's probabilities into p[0..K): 0, 1 when it cannot be read or preprocessed (message in
// err), 2 when the output is not finite
static int predict_one(Ctx *c, VitModel *m, ImageProcessor *ip, const char *path, float *pix, float *p, char *err, size_t errn) {
    Image im;
    if (image_load(&im, path, err, errn) != 0 || image_processor_prep(ip, &im, pix) != 0) {
        if (im.px) snprintf(err, errn, "%s: preprocessing failed", path);
        image_free(&im);
        return 1;
    }
    image_free(&im);
    int S = m->cfg.image_size, K = m->cfg.num_labels;
    ctx_reset(c);
    ag_no_grad(c, true);
    Tensor *pr = ag_softmax(c, vit_forward(c, m, tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, 3, S, S}, pix), NULL));
    if (!pr) {
        snprintf(err, errn, "%s", ctx_error(c));
        return 1;
    }
    for (int j = 0; j < K; j++) {
        p[j] = ((const float *)pr->data)[j];
        if (!isfinite(p[j])) return 2;
    }
    return 0;
}

static void print_result(const char *path, const float *p, int top, bool json, const VitConfig *cfg) {
    StrBuf b = {0};
    results_predict(&b, path, p, top, json, cfg);
    if (b.s) fputs(b.s, stdout);
    sb_free(&b);
}

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL;
    long top = 5, threads = 0;
    bool json = false, int8 = false;
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &adapter, 0, 0, "a peft adapter directory (labels of added classes from its config.json)"},
        {"--top", OPT_INT, &top, 1, 100000, "how many labels (5)"},
        {"--threads", OPT_INT, &threads, 1, 1024, "threads (all cores)"},
        APP_INT8_OPT(int8),
        {"--json", OPT_FLAG, &json, 0, 0, "one JSON line per image: {\"image\", \"top\": [{\"label\", \"id\", \"prob\"}]}"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora predict --model MODEL_DIR [--adapter DIR] [--top K] [--int8] [--json] IMAGE...";
    const char **pos = malloc(sizeof *pos * (size_t)argc);
    int np = cli_command(
        &(CliCommand){"predict", usage, "The top-K labels and their probabilities (softmax of the logits) for each image.", opts, NO}, argc,
        argv, pos, argc);
    if (np < 0) return free(pos), np == CLI_HELP ? 0 : 2;
    if (!model || np == 0) return free(pos), app_fail("predict", "needs --model and at least one IMAGE (see --help)");
    app_threads(threads);
    char err[FILE_ERR_BUF];
    VitModel m;
    ImageProcessor ip;
    if (app_load_model(&m, &ip, model, adapter, int8, err, sizeof err) != 0) return free(pos), app_fail("predict", err);
    int S = m.cfg.image_size, K = m.cfg.num_labels, rc = 0;
    if (top > K) top = K;
    float *pix = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    Ctx *c = ctx_new(16u << 20);
    // over MPI, image r0 + rank on each process in rounds of `size`; rank 0 gathers the
    // probabilities and prints every image's result in input order (alone: rounds of one)
    const Dist *d = dist_world();
    int R = d->size > 1 ? d->size : 1;
    size_t rec = (size_t)K + 1; // status (0 ok, 1 unreadable, 2 not finite, 3 none), then K probabilities
    float *mine = malloc(sizeof(float) * rec), *all = malloc(sizeof(float) * rec * (size_t)R);
    for (int r0 = 0; r0 < np && rc == 0; r0 += R) {
        int i = r0 + d->rank;
        mine[0] = 3;
        if (i < np) mine[0] = (float)predict_one(c, &m, &ip, pos[i], pix, mine + 1, err, sizeof err);
        if (dist_gather(d, mine, sizeof(float) * rec, all, err, sizeof err) != 0) {
            rc = app_fail("predict", err);
            break;
        }
        for (int j = 0; dist_root(d) && j < R && r0 + j < np && rc == 0; j++) {
            const float *q = all + (size_t)j * rec;
            int ii = r0 + j;
            // another process could not read it: the message from here (or which rank, if it reads here)
            if (q[0] == 1 && j != d->rank && predict_one(c, &m, &ip, pos[ii], pix, mine + 1, err, sizeof err) == 0)
                snprintf(err, sizeof err, "%s: unreadable on MPI rank %d", pos[ii], j);
            if (q[0] == 2)
                snprintf(err, sizeof err, "%s: the model's output is not finite (NaN or Inf in its weights or activations)", pos[ii]);
            if (q[0] != 0) {
                rc = app_fail("predict", err);
                break;
            }
            print_result(pos[ii], q + 1, (int)top, json, &m.cfg);
        }
        double stop = rc; // rank 0 decides: every process stops with it
        if (d->size > 1 && dist_broadcast(d, &stop, sizeof stop, err, sizeof err) != 0) stop = 2;
        rc = (int)stop;
    }
    free(mine), free(all);
    ctx_free(c);
    free(pix);
    free(pos);
    vit_free(&m);
    return rc;
}
