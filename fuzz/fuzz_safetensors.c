// fuzz_safetensors.c: the safetensors reader (header length, JSON, dtypes, spans) and conversion.
#include "fuzz_common.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    WFile f;
    if (safetensors_open(&f, path, err, sizeof err) == 0) {
        fuzz_touch_tensors(&f);
        wfile_close(&f);
    }
    close(fd);
    return 0;
}
