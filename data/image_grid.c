// image_grid.c: a batch of images as one PNG grid (samples from a generative model, a batch to look
// at), with image.h's PNG writer.
#include "image_grid.h"
#include "../base/fileio.h"

#include "image.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int image_grid_save(const Tensor *x, int ncols, double lo, double hi, const char *path, char *err, size_t errn) {
    char s1[SHAPE_STR_BUF];
    if (!x || !path) return errorf(err, errn, "image_grid: %s is NULL", x ? "path" : "the tensor");
    bool gray3 = x->ndim == 3, chw = x->ndim == 4 && (x->shape[1] == 1 || x->shape[1] == 3);
    if ((!gray3 && !chw) || (x->dtype != DT_F32 && x->dtype != DT_F64) || !(hi > lo)) {
        return errorf(err, errn,
                      "image_grid: needs a float tensor [B, C, H, W] with C 1 or 3, or [B, H, W], and lo < hi; got %s %s, [%g, %g]",
                      dtype_name(x->dtype), shape_str(x, s1, sizeof s1), lo, hi);
    }
    int64_t B = x->shape[0], C = gray3 ? 1 : x->shape[1], H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1];
    if (B < 1 || H < 1 || W < 1) return errorf(err, errn, "image_grid: an empty batch %s", shape_str(x, s1, sizeof s1));
    if (ncols < 1) ncols = (int)ceil(sqrt((double)B));
    int64_t cols = ncols < B ? ncols : B, rows = (B + cols - 1) / cols, gap = 2;
    int64_t GW = cols * W + (cols + 1) * gap, GH = rows * H + (rows + 1) * gap;
    if (GW > IMAGE_MAX_SIDE || GH > IMAGE_MAX_SIDE || GW * GH > IMAGE_MAX_PIXELS)
        return errorf(err, errn, "image_grid: a %lld x %lld grid is larger than a PNG this writer makes", (long long)GW, (long long)GH);
    Image im = {0};
    if (image_alloc(&im, (int)GW, (int)GH) != 0) return errorf(err, errn, "image_grid: out of memory");
    memset(im.px, 0, (size_t)(GW * GH * 3)); // the gaps black
    for (int64_t b = 0; b < B; b++) {
        int64_t oy = gap + b / cols * (H + gap), ox = gap + b % cols * (W + gap);
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++)
                for (int k = 0; k < 3; k++) {
                    int64_t ch = C == 1 ? 0 : k;
                    double v = (tensor_get_flat(x, ((b * C + ch) * H + y) * W + xx) - lo) / (hi - lo);
                    v = v != v ? 0 : v < 0 ? 0 : v > 1 ? 1 : v; // NaN shows black
                    im.px[((oy + y) * GW + ox + xx) * 3 + k] = (uint8_t)lrint(v * 255);
                }
    }
    int rc = image_save_png(&im, path, err, errn);
    image_free(&im);
    return rc;
}
