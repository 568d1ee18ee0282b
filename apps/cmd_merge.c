// cmd_merge.c: `deit_lora merge`: W + (alpha / r) B A folded into the weights; an HF model directory.
#include "deit_lora.h"

#include "../base/fileio.h"

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *output = NULL;
    bool overwrite = false;
    const CliOpt opts[] = {
        {"--model", OPT_STR, &model, 0, 0, "model directory"},
        {"--adapter", OPT_STR, &adapter, 0, 0, "a peft adapter directory"},
        {"--output", OPT_STR, &output, 0, 0, "the merged model directory (config.json, model.safetensors, preprocessor_config.json)"},
        {"--overwrite", OPT_FLAG, &overwrite, 0, 0, "write into a non-empty --output"},
    };
    const int NO = (int)(sizeof opts / sizeof *opts);
    const char *usage = "deit_lora merge --model MODEL_DIR --adapter DIR --output OUT_DIR";
    const char *pos[1];
    int npos = cli_command(&(CliCommand){"merge", usage,
                                         "Writes a model that predicts what the adapter predicts, loadable by transformers without peft.",
                                         opts, NO},
                           argc, argv, pos, 0);
    if (npos < 0) return npos == CLI_HELP ? 0 : 2;
    if (!model || !adapter || !output) return app_fail("merge", "needs --model, --adapter and --output (see --help)");
    char err[FILE_ERR_BUF], p[FILE_PATH_BUF];
    if (app_output_dir("--output", output, overwrite, false, (const char *[]){model, adapter, NULL}, err, sizeof err) != 0)
        return app_fail("merge", err);
    VitModel m;
    ImageProcessor ip;
    if (app_load_model(&m, &ip, model, adapter, false, err, sizeof err) != 0) return app_fail("merge", err);
    vit_merge_lora(&m); // the classifier already is the adapter's (modules_to_save)
    Stage stage;
    int rc = stage_begin(&stage, output, err, sizeof err) != 0;
    if (!rc) {
        rc = vit_save_pretrained(&m, stage.path, err, sizeof err) != 0 ||
             image_processor_save(&ip, path_join(p, sizeof p, stage.path, "preprocessor_config.json"), err, sizeof err) != 0;
        if (rc)
            stage_abort(&stage);
        else
            rc = stage_commit(&stage, STAGE_MERGE_FILES, err, sizeof err) != 0;
    }
    vit_free(&m);
    if (rc) return app_exit_status(app_fail("merge", err));
    printf("merged %s into %s (%s)\n", adapter, model, output);
    return 0;
}
