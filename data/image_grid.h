// image_grid.h: a batch of images as one PNG grid.
#ifndef CGRAD_IMAGE_GRID_H
#define CGRAD_IMAGE_GRID_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Writes x, a float tensor [B, C, H, W] (C 1 or 3) or [B, H, W] (gray), as one PNG (atomically):
// the images in rows of ncols (0: about square), 2 black pixels between them, values mapped from
// [lo, hi] to 0..255 and clamped (NaN black). 0, or -1 with "image_grid: ..." or the file's error.
int image_grid_save(const Tensor *x, int ncols, double lo, double hi, const char *path, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
