// fuzz_pickle.c: pytorch_model.bin, the zip reader and the pickle machine (nothing may execute).
#include "fuzz_common.h" // first: it sets _GNU_SOURCE

#include "../models/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    WFile f;
    if (torchbin_open(&f, path, err, sizeof err) == 0) {
        fuzz_touch_tensors(&f);
        wfile_close(&f);
    }
    close(fd);
    return 0;
}
