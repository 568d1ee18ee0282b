// image_processor.h: Hugging Face's ViTImageProcessor / DeiTImageProcessor from
// preprocessor_config.json, and timm's evaluation transform (pretrained_cfg): the same steps,
// resize -> center crop -> rescale -> normalise -> channels first, with each one's rules.
#ifndef CGRAD_IMAGE_PROCESSOR_H
#define CGRAD_IMAGE_PROCESSOR_H

#include "../data/image.h"
#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// HF: a short-side resize truncates the long side (int(S * long / short)) and crops at
// (h - ch) // 2. timm: the long side is rounded (ResizeKeepRatio) and the crop is torchvision's,
// at round((h - ch) / 2).
typedef enum { GEOM_HF, GEOM_TIMM } GeometryStyle;

typedef struct {
    bool do_resize;
    int size_h, size_w; // exact size, or 0 with shortest_edge
    int shortest_edge;  // resize the short side to this, keeping the aspect ratio; 0 if unused
    Resample resample;
    bool do_center_crop;
    int crop_h, crop_w;
    GeometryStyle style;
    bool do_rescale;
    double rescale_factor;
    bool do_normalize;
    float mean[3], std[3];
    char kind[32]; // "ViTImageProcessor", "DeiTImageProcessor", "timm", "default"
} ImageProcessor;

// ViTImageProcessor's defaults at image_size (resize to it with BILINEAR, rescale, mean/std 0.5).
void image_processor_default(ImageProcessor *p, int image_size);
// Reads preprocessor_config.json (both processor styles; size as an int or {height, width} or
// {shortest_edge}); errors name the file and the field.
int image_processor_load(ImageProcessor *p, const char *path, int image_size, char *err, size_t errn);
int image_processor_save(const ImageProcessor *p, const char *path, char *err, size_t errn);
// The 8-bit image after resize and crop (what the model sees before rescaling).
int image_processor_geometry(const ImageProcessor *p, const Image *in, Image *out);
// pixel values [3, H, W] (float32) into dst, rescaled and normalised as the Python stack does
// (x = float32(float64(v) * factor); (x - mean) / std in float32).
void image_processor_tensor(const ImageProcessor *p, const Image *im, float *dst);
int image_processor_out_size(const ImageProcessor *p, int *h, int *w); // fixed output size, or -1
// The inverse of normalisation, for looking at what the model sees.
void image_processor_denormalize(const ImageProcessor *p, const float *src, int h, int w, Image *out);

// MODEL_DIR/preprocessor_config.json when present, else ViTImageProcessor's defaults.
int image_processor_for_model(ImageProcessor *p, const char *model_dir, int image_size, char *err, size_t errn);
// A PrepFn for the loader (data/dataset.h): ud is the ImageProcessor; output [3, H, W].
int image_processor_prep(void *ud, const Image *im, float *dst);

#ifdef __cplusplus
}
#endif

#endif
