// cmd_preprocess.c: `deit_lora preprocess`: pixel_values exactly as the model will see them.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cmd_preprocess(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *png = NULL;
    bool overwrite = false;
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory (config.json, optional preprocessor_config.json)"},
        {"--out", OPT_STR, &out, 0, 0, "output .safetensors file with pixel_values [N, 3, H, W]"},
        {"--png", OPT_STR, &png, 0, 0, "also write each image, de-normalised, as DIR/NAME.png"},
        {"--overwrite", OPT_FLAG, &overwrite, 0, 0, "replace an existing --out file and files in --png DIR"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora preprocess --model MODEL_DIR --out FILE.safetensors [--png DIR] [--overwrite] IMAGE...";
    int maxpos = argc;
    // inputs[0] the model, then the images (pos), NULL-terminated: what no output may overlap
    const char **inputs = calloc((size_t)maxpos + 2, sizeof *inputs), **pos = inputs + 1;
    int np = cli_command(
        &(CliCommand){"preprocess", usage, "Decodes and preprocesses images with the model's image processor (Pillow-exact).", opts, NO},
        argc, argv, pos, maxpos);
    int rc = 2;
    char err[FILE_ERR_BUF];
    float *pix = NULL;
    VitConfig cfg = {0};
    Stage stage = {.fd = -1};
    bool staged = false;
    if (np < 0) {
        rc = np == CLI_HELP ? 0 : 2;
        goto done;
    }
    if (!model || !out || np == 0) {
        fprintf(stderr, "deit_lora preprocess: needs --model, --out and at least one IMAGE (usage: %s)\n", usage);
        goto done;
    }
    inputs[0] = model;
    if (app_output_file("--out", out, overwrite, inputs, err, sizeof err) != 0 ||
        (png && app_output_dir("--png", png, overwrite, false, inputs, err, sizeof err) != 0))
        goto bad;
    char p[FILE_PATH_BUF];
    if (vit_config_load(&cfg, path_join(p, sizeof p, model, "config.json"), err, sizeof err) != 0) goto bad;
    ImageProcessor ip;
    if (image_processor_for_model(&ip, model, cfg.image_size, err, sizeof err) != 0) goto bad;
    int H, W;
    if (image_processor_out_size(&ip, &H, &W) != 0) {
        snprintf(err, sizeof err, "%s: the image processor gives no fixed output size", model);
        goto bad;
    }
    if (H > VIT_MAX_IMAGE || W > VIT_MAX_IMAGE) {
        snprintf(err, sizeof err, "%s: the image processor's output %dx%d is above %dx%d", model, W, H, VIT_MAX_IMAGE, VIT_MAX_IMAGE);
        goto bad;
    }
    size_t per = 3 * (size_t)H * (size_t)W;
    pix = malloc(sizeof(float) * per * (size_t)np);
    if (!pix) {
        snprintf(err, sizeof err, "out of memory for %d images of %dx%d", np, H, W);
        goto bad;
    }
    // everything is decoded before anything is written: a bad image leaves no partial output
    for (int i = 0; i < np; i++) {
        Image im, g;
        if (image_load(&im, pos[i], err, sizeof err) != 0) goto bad;
        int r = image_processor_geometry(&ip, &im, &g);
        image_free(&im);
        if (r != 0) {
            snprintf(err, sizeof err, "%s: resize failed", pos[i]);
            goto bad;
        }
        image_processor_tensor(&ip, &g, pix + per * (size_t)i);
        image_free(&g);
    }
    // the PNGs go to a staged folder, moved into place once the tensor file is written too
    if (png && stage_begin(&stage, png, err, sizeof err) != 0) goto bad;
    staged = png != NULL;
    for (int i = 0; png && i < np; i++) {
        Image v;
        image_processor_denormalize(&ip, pix + per * (size_t)i, H, W, &v);
        char name[FILE_PATH_BUF], q[FILE_PATH_BUF];
        snprintf(name, sizeof name, "%s", pos[i]);
        snprintf(q, sizeof q, "%s/%03d_%s.png", stage.path, i, basename(name));
        int r = image_save_png(&v, q, err, sizeof err);
        image_free(&v);
        if (r != 0) goto bad;
    }
    Ctx *c = ctx_new(1 << 16);
    Tensor *t = tensor_from_buffer(c, DT_F32, 4, (int64_t[]){np, 3, H, W}, pix);
    StItem item = {"pixel_values", t};
    int w = t ? safetensors_write(out, &item, 1, NULL, overwrite, err, sizeof err) : -1;
    if (!t) snprintf(err, sizeof err, "out of memory");
    ctx_free(c);
    if (w != 0) goto bad;
    staged = false;
    if (png && stage_commit(&stage, STAGE_MERGE_FILES, err, sizeof err) != 0) goto bad;
    printf("wrote pixel_values [%d, 3, %d, %d] to %s (%s)\n", np, H, W, out, ip.kind);
    rc = 0;
    goto done;
bad:
    fprintf(stderr, "deit_lora preprocess: %s\n", err);
    if (staged) stage_abort(&stage);
    rc = app_exit_status(rc);
done:
    vit_config_free(&cfg);
    free(pix);
    free(inputs);
    return rc;
}
