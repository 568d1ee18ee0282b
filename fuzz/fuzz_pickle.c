// fuzz_pickle.c: pytorch_model.bin, the zip reader and the pickle machine (nothing may execute).
#include "fuzz_common.h"

#include "../models/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char path[64], err[512];
    int fd = fuzz_file(data, n, path, sizeof path);
    if (fd < 0) return 0;
    WFile f;
    if (torchbin_open(&f, path, err, sizeof err) == 0) {
        Ctx *c = ctx_new(1 << 16);
        for (int i = 0; i < f.n && i < 64; i++) {
            Tensor *t = wentry_tensor(c, &f.e[i], false);
            if (t && tensor_numel(t) > 0) (void)tensor_get_flat(t, tensor_numel(t) - 1);
        }
        ctx_free(c);
        wfile_close(&f);
    }
    close(fd);
    return 0;
}
