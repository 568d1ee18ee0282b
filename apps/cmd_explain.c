// cmd_explain.c: `deit_lora explain`: where the model looks, per image: attention rollout or
// gradient-weighted attention relevance (models/vit_explain.h) as a JSON map and a picture.
#include "../models/vit_explain.h"
#include "deit_lora.h"
#include "results.h"

#include "../base/fileio.h"

#include <libgen.h>
#include <string.h>

typedef struct {
    const char *model, *adapter, *method, *out, *cls;
    long threads;
    bool overwrite, int8;
} ExplainArgs;

// One image: its map (stdout: one JSON line) and, with a stage folder, IDX_NAME.png and .json in it.
static int explain_one(Ctx *c, VitModel *m, const ImageProcessor *ip, VitExplainMethod method, int target, const char *path, int idx,
                       const char *stage, char *err, size_t errn) {
    int S = m->cfg.image_size, grid = S / m->cfg.patch_size, label, rc = -1;
    double prob, *map = malloc(sizeof *map * (size_t)grid * (size_t)grid);
    float *pix = malloc(sizeof *pix * 3 * (size_t)S * (size_t)S);
    Image im = {0}, seen = {0}, over = {0};
    StrBuf js = {0};
    if (!map || !pix) {
        snprintf(err, errn, "%s: out of memory", path);
        goto done;
    }
    if (image_load(&im, path, err, errn) != 0) goto done;
    if (image_processor_geometry(ip, &im, &seen) != 0) {
        snprintf(err, errn, "%s: preprocessing failed", path);
        goto done;
    }
    image_processor_tensor(ip, &seen, pix);
    if (vit_explain(c, m, pix, method, target, map, &label, &prob, err, errn) != 0) goto done;
    results_explain_json(&js, path, vit_explain_method_name(method), &m->cfg, label, prob, map, grid);
    if (js.oom || results_explain_overlay(&seen, map, grid, &over) != 0) {
        snprintf(err, errn, "%s: out of memory", path);
        goto done;
    }
    fputs(js.s, stdout);
    if (stage) {
        char name[FILE_PATH_BUF], q[FILE_PATH_BUF];
        snprintf(name, sizeof name, "%s", path);
        snprintf(q, sizeof q, "%s/%03d_%s.png", stage, idx, basename(name));
        if (image_save_png(&over, q, err, errn) != 0) goto done;
        snprintf(q, sizeof q, "%s/%03d_%s.json", stage, idx, basename(name));
        if (file_write_atomic(q, js.s, js.n, true, err, errn) != 0) goto done;
    }
    rc = 0;
done:
    image_free(&im), image_free(&seen), image_free(&over);
    sb_free(&js);
    free(map), free(pix);
    return rc;
}

int cmd_explain(int argc, char **argv) {
    ExplainArgs a = {.method = "rollout"};
    const CliOpt opts[] = {
        {"--model", OPT_STR, &a.model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &a.adapter, 0, 0, "a peft adapter directory"},
        {"--method", OPT_STR, &a.method, 0, 0, "rollout (attention rollout, default) or relevance (attention x gradient)"},
        {"--class", OPT_STR, &a.cls, 0, 0, "explain this label (default: the predicted one)"},
        {"--out", OPT_STR, &a.out, 0, 0, "write DIR/NNN_NAME.png (the map over the image) and DIR/NNN_NAME.json"},
        {"--overwrite", OPT_FLAG, &a.overwrite, 0, 0, "write into an existing, non-empty --out folder"},
        {"--threads", OPT_INT, &a.threads, 1, 1024, "threads (all cores)"},
        APP_INT8_OPT(a.int8),
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora explain --model MODEL_DIR [--adapter DIR] [--method rollout|relevance] [--class LABEL] "
                        "[--out DIR] IMAGE...";
    // inputs[0..1] the model and adapter, then the images: what --out may not overlap
    const char **inputs = calloc((size_t)argc + 3, sizeof *inputs), **pos = inputs + 2;
    int np = cli_command(
        &(CliCommand){"explain", usage,
                      "Where the model looks: one value per image patch, printed as a JSON line per image\n"
                      "({\"image\", \"method\", \"label\", \"id\", \"prob\", \"grid\", \"map\"}), and with --out a picture of it.",
                      opts, NO},
        argc, argv, pos, argc);
    char err[FILE_ERR_BUF];
    Stage stage = {.fd = -1};
    int rc = 2, method = -1, target = -1;
    bool staged = false, loaded = false;
    VitModel m;
    ImageProcessor ip;
    Ctx *c = NULL;
    if (np < 0) {
        rc = np == CLI_HELP ? 0 : 2;
        goto done;
    }
    if (!a.model || np == 0) {
        snprintf(err, sizeof err, "needs --model and at least one IMAGE (see --help)");
        goto bad;
    }
    if ((method = vit_explain_method(a.method)) < 0) {
        snprintf(err, sizeof err, "--method: '%s' is not rollout or relevance", a.method);
        goto bad;
    }
    if (a.cls && method == VIT_EXPLAIN_ROLLOUT) { // rollout follows attention alone: the same map for every class
        snprintf(err, sizeof err, "--class: attention rollout does not depend on the class (use --method relevance to explain '%s')",
                 a.cls);
        goto bad;
    }
    if (a.int8 && method != VIT_EXPLAIN_ROLLOUT) { // its backward runs in float32: the map would mix both
        snprintf(err, sizeof err, "--int8: applies to --method rollout only (relevance needs gradients, which are float32)");
        goto bad;
    }
    inputs[0] = a.model, inputs[1] = a.adapter;
    if (!a.adapter) inputs[1] = a.model;
    if (a.out && app_output_dir("--out", a.out, a.overwrite, false, inputs, err, sizeof err) != 0) goto bad;
    app_threads(a.threads);
    if (app_load_model(&m, &ip, a.model, a.adapter, a.int8, err, sizeof err) != 0) goto bad;
    loaded = true;
    if (a.cls && (target = vit_config_label_id(&m.cfg, a.cls)) < 0) {
        snprintf(err, sizeof err, "--class: '%s' is not one of the model's labels", a.cls);
        goto bad;
    }
    if (a.out && stage_begin(&stage, a.out, err, sizeof err) != 0) goto bad;
    staged = a.out != NULL;
    c = ctx_new(16u << 20);
    for (int i = 0; i < np; i++)
        if (explain_one(c, &m, &ip, (VitExplainMethod)method, target, pos[i], i, staged ? stage.path : NULL, err, sizeof err) != 0)
            goto bad;
    if (staged) {
        staged = false;
        if (stage_commit(&stage, STAGE_MERGE_FILES, err, sizeof err) != 0) goto bad;
    }
    rc = 0;
    goto done;
bad:
    rc = app_exit_status(app_fail("explain", err));
    if (staged) stage_abort(&stage);
done:
    ctx_free(c);
    if (loaded) vit_free(&m);
    free(inputs);
    return rc;
}
