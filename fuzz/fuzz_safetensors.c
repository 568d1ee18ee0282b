// fuzz_safetensors.c: the safetensors reader (header length, JSON, dtypes, spans) and conversion;
// then the file as a timm checkpoint, whose shapes give the model's sizes (a zero patch kernel or a
// head of 10^8 rows of nothing must be refused before anything is derived or allocated from them).
#include "fuzz_common.h"

#include "../models/checkpoint.h"
#include "../models/vit_config.h"
#include "../models/vit_names.h"

static const char TIMM_CONFIG[] = "{\"architecture\": \"vit_tiny_patch8_16\", \"model_args\": {\"num_heads\": 2}, "
                                  "\"pretrained_cfg\": {\"input_size\": [3, 16, 16]}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    WFile f;
    if (safetensors_open(&f, path, err, sizeof err) == 0) {
        fuzz_touch_tensors(&f);
        wfile_close(&f);
    }
    Checkpoint ck;
    if (checkpoint_open_file(&ck, path, vit_canonical_name, err, sizeof err) == 0) {
        VitConfig cfg;
        if (vit_config_from_timm(&cfg, TIMM_CONFIG, &ck, "config.json", err, sizeof err) == 0) vit_config_free(&cfg);
        checkpoint_close(&ck);
    }
    close(fd);
    return 0;
}
