// cmd_predict.c: `deit_lora predict`: the notebook's get_top5 for each image.
#include "deit_lora.h"

#include <math.h>
#include <string.h>

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static const float *rank_p;
static int by_prob(const void *a, const void *b) { // descending; ties keep the lower id (torch.topk's order)
    int x = *(const int *)a, y = *(const int *)b;
    return rank_p[x] > rank_p[y] ? -1 : rank_p[x] < rank_p[y] ? 1 : x - y;
}

// the ids of p[0..n) from the largest down, in O(n log n)
static int *ranked(const float *p, int n) {
    int *id = malloc(sizeof *id * (size_t)n);
    for (int j = 0; j < n; j++) id[j] = j;
    rank_p = p;
    qsort(id, (size_t)n, sizeof *id, by_prob);
    return id;
}

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL;
    long top = 5, threads = 0;
    bool json = false;
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &adapter, 0, 0, "a peft adapter directory (labels of added classes from its config.json)"},
        {"--top", OPT_INT, &top, 1, 100000, "how many labels (5)"},
        {"--threads", OPT_INT, &threads, 1, 1024, "threads (all cores)"},
        {"--json", OPT_FLAG, &json, 0, 0, "one JSON line per image: {\"image\", \"top\": [{\"label\", \"id\", \"prob\"}]}"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora predict --model MODEL_DIR [--adapter DIR] [--top K] [--json] IMAGE...";
    if (cli_wants_help(argc, argv, 2)) {
        cli_help(stdout, usage, "The top-K labels and their probabilities (softmax of the logits) for each image.", opts, NO);
        return 0;
    }
    const char **pos = malloc(sizeof *pos * (size_t)argc);
    int np = cli_parse("deit_lora predict", argc, argv, 2, opts, NO, pos, argc);
    if (np < 0) return free(pos), 2;
    if (!model || np == 0) return free(pos), app_fail("predict", "needs --model and at least one IMAGE (see --help)");
    app_threads(threads);
    char err[2048];
    VitModel m;
    ImageProcessor ip;
    if (app_load_model(&m, &ip, model, adapter, err, sizeof err) != 0) return free(pos), app_fail("predict", err);
    int S = m.cfg.image_size, K = m.cfg.num_labels, rc = 0;
    if (top > K) top = K;
    float *pix = malloc(sizeof(float) * 3 * (size_t)S * (size_t)S);
    Ctx *c = ctx_new(16u << 20);
    for (int i = 0; i < np && rc == 0; i++) {
        Image im;
        if (image_load(&im, pos[i], err, sizeof err) != 0 || image_processor_prep(&ip, &im, pix) != 0) {
            if (im.px) snprintf(err, sizeof err, "%s: preprocessing failed", pos[i]);
            image_free(&im);
            rc = app_fail("predict", err);
            break;
        }
        image_free(&im);
        ctx_reset(c);
        ag_no_grad(c, true);
        Tensor *x = tensor_from_buffer(c, DT_F32, 4, (int64_t[]){1, 3, S, S}, pix);
        Tensor *pr = ag_softmax(c, vit_forward(c, &m, x, NULL));
        if (!pr) {
            rc = app_fail("predict", ctx_error(c));
            break;
        }
        const float *p = pr->data;
        for (int j = 0; j < K; j++)
            if (!isfinite(p[j])) {
                snprintf(err, sizeof err, "%s: the model's output is not finite (NaN or Inf in its weights or activations)", pos[i]);
                rc = app_fail("predict", err);
                break;
            }
        if (rc) break;
        int *best = ranked(p, K);
        if (json) {
            printf("{\"image\": ");
            json_str(pos[i]);
            printf(", \"top\": [");
            for (int k = 0; k < top; k++) {
                printf("%s{\"label\": ", k ? ", " : "");
                json_str(m.cfg.id2label[best[k]]);
                printf(", \"id\": %d, \"prob\": %.9g}", best[k], p[best[k]]);
            }
            printf("]}\n");
        } else {
            printf("%s\n", pos[i]);
            for (int k = 0; k < top; k++) printf("  %s  %.4f\n", m.cfg.id2label[best[k]], p[best[k]]);
        }
        free(best);
    }
    ctx_free(c);
    free(pix);
    free(pos);
    vit_free(&m);
    return rc;
}
