// fuzz_safetensors.c: the safetensors reader (header length, JSON, dtypes, spans) and conversion.
#include "fuzz_common.h"

#include "../models/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    WFile f;
    if (safetensors_open(&f, path, err, sizeof err) == 0) {
        Ctx *c = ctx_new(1 << 16);
        for (int i = 0; i < f.n && i < 64; i++) { // touch every byte the header claims
            Tensor *t = wentry_tensor(c, &f.e[i], false);
            if (t && tensor_numel(t) > 0) (void)tensor_get_flat(t, tensor_numel(t) - 1);
        }
        ctx_free(c);
        wfile_close(&f);
    }
    close(fd);
    return 0;
}
