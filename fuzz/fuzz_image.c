// fuzz_image.c: the JPEG and PNG decoders (libjpeg's and libpng's errors must come back as values).
#include "fuzz_common.h"

#include "../data/image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char err[512];
    Image im;
    // the header probe (a server's admission by decoded size) agrees with the decoder on the size
    int pw = 0, ph = 0;
    size_t cost = 0;
    bool probed = image_probe(data, n, &pw, &ph, &cost, "input", err, sizeof err) == 0;
    if (probed && (pw <= 0 || ph <= 0 || cost < 3 * (size_t)pw * (size_t)ph)) abort();
    if (image_decode(&im, data, n, "input", err, sizeof err) == 0) {
        if (!probed || im.w != pw || im.h != ph) abort(); // whatever decodes was admitted at its real size
        Image r;
        if ((long)im.w * im.h <= 4000000 && image_resize(&r, &im, 13, 11, RESAMPLE_BICUBIC) == 0) image_free(&r);
        image_free(&im);
    }
    return 0;
}
