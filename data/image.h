// image.h: 8-bit RGB images as Pillow's convert("RGB") makes them, decoded with libjpeg and
// libpng, resized with Pillow's resampling (same filters, supports, fixed-point rounding), cropped,
// and written as PNG. Errors are values: "PATH: what is wrong".
#ifndef CGRAD_IMAGE_H
#define CGRAD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Decompression-bomb limit: Pillow's MAX_IMAGE_PIXELS (it warns above it; cgrad refuses).
#define IMAGE_MAX_PIXELS 89478485ll
#define IMAGE_MAX_SIDE   65535

typedef struct {
    int w, h;
    uint8_t *px; // h * w * 3, row-major RGB
} Image;

// Pillow's resampling filter codes (PIL.Image.Resampling)
typedef enum {
    RESAMPLE_NEAREST = 0,
    RESAMPLE_LANCZOS = 1,
    RESAMPLE_BILINEAR = 2,
    RESAMPLE_BICUBIC = 3,
    RESAMPLE_BOX = 4,
    RESAMPLE_HAMMING = 5
} Resample;

// Decodes a file (format from its first bytes: JPEG, PNG) into RGB. `what` names it in messages.
int image_load(Image *im, const char *path, char *err, size_t errn);
int image_decode(Image *im, const uint8_t *data, size_t n, const char *what, char *err, size_t errn);
bool image_sniff(const uint8_t *head, size_t n); // JPEG or PNG signature
// The size of an encoded image from its header alone (nothing is decoded), checked against the
// bomb limit, and *decode_bytes, an upper bound of the memory image_decode will need for it: so a
// server can admit images by their decoded size. 0, or -1 with a message.
int image_probe(const uint8_t *data, size_t n, int *w, int *h, size_t *decode_bytes, const char *what, char *err, size_t errn);
void image_free(Image *im);
int image_alloc(Image *im, int w, int h);

// Pillow's Image.resize(size, resample) with reducing_gap None: horizontal pass, then vertical,
// each rounded to 8 bits; NEAREST as Pillow's affine nearest sampling.
int image_resize(Image *out, const Image *in, int w, int h, Resample f);
// Hugging Face's center_crop: top = (h - ch) // 2 (floor), zero padding when the crop is larger.
int image_center_crop_hf(Image *out, const Image *in, int cw, int ch);
// torchvision's CenterCrop: top = round((h - ch) / 2) (half to even), zero padding as torchvision.
int image_center_crop_tv(Image *out, const Image *in, int cw, int ch);

// An RGB PNG in memory: *out (malloc'd, the caller frees) of *n bytes.
int image_encode_png(const Image *im, uint8_t **out, size_t *n, char *err, size_t errn);
// Writes an RGB PNG atomically (PATH.tmp, fsync, rename).
int image_save_png(const Image *im, const char *path, char *err, size_t errn);

#ifdef __cplusplus
}
#endif

#endif
