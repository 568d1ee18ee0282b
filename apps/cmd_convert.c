// cmd_convert.c: `deit_lora convert-adapter IN OUT --to v4|v5`: a peft adapter in the other
// generation's spelling (transformers 4 + peft 0.17: attention.attention.query; transformers 5 +
// peft 0.21: attention.q_proj). Tensors are copied unchanged; key names and target_modules are
// rewritten; every other field of adapter_config.json is kept.
#include "deit_lora.h"

#include "../base/fileio.h"

#include <string.h>

int cmd_convert_adapter(int argc, char **argv) {
    const char *to_s = NULL, *pos[2];
    bool overwrite = false;
    const CliOpt opts[] = {
        {"--to", OPT_STR, &to_s, 0, 0, "v4 (transformers 4 + peft 0.17, the notebook's) or v5 (transformers 5 + peft 0.21)"},
        {"--overwrite", OPT_FLAG, &overwrite, 0, 0, "write into a non-empty OUT_DIR"},
    };
    const char *usage = "deit_lora convert-adapter IN_DIR OUT_DIR --to v4|v5";
    int np =
        cli_command(&(CliCommand){"convert-adapter", usage,
                                  "Rewrites a peft adapter's key names and target_modules for the other transformers generation.", opts, 2},
                    argc, argv, pos, 2);
    if (np < 0) return np == CLI_HELP ? 0 : 2;
    if (np != 2 || !to_s) return app_fail("convert-adapter", "needs IN_DIR, OUT_DIR and --to v4|v5 (see --help)");
    if (strcmp(to_s, "v4") && strcmp(to_s, "v5")) return app_fail("convert-adapter", "--to: must be v4 or v5");
    PeftGen to = strcmp(to_s, "v4") ? PEFT_V5 : PEFT_V4;
    char err[FILE_ERR_BUF];
    if (app_output_dir("OUT_DIR", pos[1], overwrite, false, (const char *[]){pos[0], NULL}, err, sizeof err) != 0)
        return app_fail("convert-adapter", err);
    Stage stage;
    if (stage_begin(&stage, pos[1], err, sizeof err) != 0) return app_exit_status(app_fail("convert-adapter", err));
    int n = adapter_convert(pos[0], stage.path, to, err, sizeof err);
    if (n < 0) stage_abort(&stage);
    if (n < 0 || stage_commit(&stage, STAGE_MERGE_FILES, err, sizeof err) != 0) return app_exit_status(app_fail("convert-adapter", err));
    printf("converted %s (%d tensors) to %s spelling in %s\n", pos[0], n,
           to == PEFT_V4 ? "transformers-4 / peft 0.17" : "transformers-5 / peft 0.21", pos[1]);
    return 0;
}
