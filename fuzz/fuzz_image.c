// fuzz_image.c: the JPEG and PNG decoders (libjpeg's and libpng's errors must come back as values).
#include "fuzz_common.h"

#include "../data/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char err[512];
    Image im;
    if (image_decode(&im, data, n, "input", err, sizeof err) == 0) {
        Image r;
        if ((long)im.w * im.h <= 4000000 && image_resize(&r, &im, 13, 11, RESAMPLE_BICUBIC) == 0) image_free(&r);
        image_free(&im);
    }
    return 0;
}
