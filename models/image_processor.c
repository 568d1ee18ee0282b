// image_processor.c: see image_processor.h.
#include "image_processor.h"
#include "json_strict.h"

#include "../base/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void image_processor_default(ImageProcessor *p, int image_size) {
    memset(p, 0, sizeof *p);
    p->do_resize = true;
    p->size_h = p->size_w = image_size;
    p->resample = RESAMPLE_BILINEAR;
    p->do_rescale = true;
    p->rescale_factor = 1.0 / 255.0;
    p->do_normalize = true;
    for (int i = 0; i < 3; i++) p->mean[i] = 0.5f, p->std[i] = 0.5f;
    snprintf(p->kind, sizeof p->kind, "ViTImageProcessor");
}

static int size_field(const cJSON *o, const char *key, int *h, int *w, int *se, const char *path, char *err, size_t errn) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!s || cJSON_IsNull(s)) return 0;
    if (cJSON_IsNumber(s)) {
        if (s->valuedouble < 1 || s->valuedouble > 16384 || s->valuedouble != floor(s->valuedouble)) goto bad;
        *h = *w = (int)s->valuedouble;
        if (se) *se = 0;
        return 0;
    }
    if (cJSON_IsObject(s)) {
        const cJSON *hh = cJSON_GetObjectItemCaseSensitive(s, "height"), *ww = cJSON_GetObjectItemCaseSensitive(s, "width"),
                    *sh = cJSON_GetObjectItemCaseSensitive(s, "shortest_edge");
        if (cJSON_IsNumber(hh) && cJSON_IsNumber(ww)) {
            if (hh->valuedouble < 1 || ww->valuedouble < 1 || hh->valuedouble > 16384 || ww->valuedouble > 16384) goto bad;
            *h = (int)hh->valuedouble, *w = (int)ww->valuedouble;
            if (se) *se = 0;
            return 0;
        }
        if (se && cJSON_IsNumber(sh) && sh->valuedouble >= 1 && sh->valuedouble <= 16384) {
            *se = (int)sh->valuedouble;
            *h = *w = 0;
            return 0;
        }
    }
bad:
    return errorf(err, errn, "%s: \"%s\" must be a positive size, {\"height\", \"width\"}%s", path, key,
                  se ? " or {\"shortest_edge\"}" : "");
}

static int get_bool(const cJSON *o, const char *k, bool *out, const char *path, char *err, size_t errn) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        return errorf(err, errn, "%s: \"%s\" must be true or false", path, k);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_triple(const cJSON *o, const char *k, float *out, bool positive, const char *path, char *err, size_t errn) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < 3; i++) out[i] = (float)v->valuedouble;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3) {
        int i = 0;
        for (const cJSON *x = v->child; x; x = x->next, i++) {
            if (!cJSON_IsNumber(x)) goto bad;
            out[i] = (float)x->valuedouble;
        }
    } else
        goto bad;
    for (int i = 0; i < 3; i++)
        if (!isfinite(out[i]) || (positive && !(out[i] > 0))) goto bad;
    return 0;
bad:
    return errorf(err, errn, "%s: \"%s\" must be three %snumbers", path, k, positive ? "positive " : "");
}

int image_processor_load(ImageProcessor *p, const char *path, int image_size, char *err, size_t errn) {
    image_processor_default(p, image_size);
    char *txt = file_read_all(path, 1u << 20, NULL, err, errn);
    if (!txt) return -1;
    cJSON *o = cJSON_ParseWithOpts(txt, NULL, 1);
    free(txt);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errn, "%s: not a JSON object (malformed JSON)", path);
        goto out;
    }
    if (json_check_unique_keys(o, path, err, errn) != 0) goto out;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "image_processor_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(o, "feature_extractor_type");
    if (cJSON_IsString(t)) snprintf(p->kind, sizeof p->kind, "%s", t->valuestring);
    // DeiTImageProcessor's defaults differ: 256 -> crop 224, BICUBIC, ImageNet mean/std
    if (strstr(p->kind, "DeiT")) {
        p->size_h = p->size_w = 256, p->resample = RESAMPLE_BICUBIC;
        p->do_center_crop = true, p->crop_h = p->crop_w = 224;
        const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
        memcpy(p->mean, m, sizeof m), memcpy(p->std, s, sizeof s);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "resample");
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsNumber(rs) || rs->valuedouble < 0 || rs->valuedouble > 5 || rs->valuedouble != floor(rs->valuedouble)) {
            snprintf(err, errn, "%s: \"resample\" must be a Pillow filter code 0 to 5", path);
            goto out;
        }
        p->resample = (Resample)(int)rs->valuedouble;
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(o, "rescale_factor");
    if (rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsNumber(rf) || !(rf->valuedouble > 0)) {
            snprintf(err, errn, "%s: \"rescale_factor\" must be a positive number", path);
            goto out;
        }
        p->rescale_factor = rf->valuedouble;
    }
    if (get_bool(o, "do_resize", &p->do_resize, path, err, errn) || get_bool(o, "do_center_crop", &p->do_center_crop, path, err, errn) ||
        get_bool(o, "do_rescale", &p->do_rescale, path, err, errn) || get_bool(o, "do_normalize", &p->do_normalize, path, err, errn) ||
        size_field(o, "size", &p->size_h, &p->size_w, &p->shortest_edge, path, err, errn) ||
        size_field(o, "crop_size", &p->crop_h, &p->crop_w, NULL, path, err, errn) ||
        get_triple(o, "image_mean", p->mean, false, path, err, errn) || get_triple(o, "image_std", p->std, true, path, err, errn))
        goto out;
    if (p->do_center_crop && (p->crop_h <= 0 || p->crop_w <= 0)) {
        snprintf(err, errn, "%s: do_center_crop needs \"crop_size\"", path);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int image_processor_save(const ImageProcessor *p, const char *path, char *err, size_t errn) {
    cJSON *o = cJSON_CreateObject();
    if (p->do_center_crop) {
        cJSON *c = cJSON_AddObjectToObject(o, "crop_size");
        cJSON_AddNumberToObject(c, "height", p->crop_h);
        cJSON_AddNumberToObject(c, "width", p->crop_w);
    }
    cJSON_AddBoolToObject(o, "do_center_crop", p->do_center_crop);
    cJSON_AddBoolToObject(o, "do_normalize", p->do_normalize);
    cJSON_AddBoolToObject(o, "do_rescale", p->do_rescale);
    cJSON_AddBoolToObject(o, "do_resize", p->do_resize);
    double m[3], s[3];
    for (int i = 0; i < 3; i++) m[i] = p->mean[i], s[i] = p->std[i];
    cJSON_AddItemToObject(o, "image_mean", cJSON_CreateDoubleArray(m, 3));
    cJSON_AddStringToObject(o, "image_processor_type",
                            strcmp(p->kind, "timm") && strcmp(p->kind, "default") ? p->kind : "ViTImageProcessor");
    cJSON_AddItemToObject(o, "image_std", cJSON_CreateDoubleArray(s, 3));
    cJSON_AddNumberToObject(o, "resample", p->resample);
    cJSON_AddNumberToObject(o, "rescale_factor", p->rescale_factor);
    cJSON *sz = cJSON_AddObjectToObject(o, "size");
    if (p->shortest_edge)
        cJSON_AddNumberToObject(sz, "shortest_edge", p->shortest_edge);
    else {
        cJSON_AddNumberToObject(sz, "height", p->size_h);
        cJSON_AddNumberToObject(sz, "width", p->size_w);
    }
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = file_write_atomic(path, txt, strlen(txt), true, err, errn);
    free(txt);
    return rc;
}

int image_processor_geometry(const ImageProcessor *p, const Image *in, Image *out) {
    Image r = {0};
    const Image *cur = in;
    if (p->do_resize) {
        int h = p->size_h, w = p->size_w;
        if (p->shortest_edge) { // short side to S; the long side truncated (HF) or rounded (timm)
            int S = p->shortest_edge, shorter = in->w <= in->h ? in->w : in->h, longer = in->w <= in->h ? in->h : in->w;
            double L = (double)S * longer / shorter;
            int Li = p->style == GEOM_TIMM ? (int)rint(L) : (int)L;
            if (in->w <= in->h)
                w = S, h = Li;
            else
                h = S, w = Li;
        }
        // the decompression-bomb bound holds for what a resize makes too (shortest_edge on a thin image)
        if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (long long)w * h > IMAGE_MAX_PIXELS) return -1;
        if (image_resize(&r, in, w, h, p->resample) != 0) return -1;
        cur = &r;
    }
    int rc = 0;
    if (p->do_center_crop) {
        rc = p->style == GEOM_TIMM ? image_center_crop_tv(out, cur, p->crop_w, p->crop_h)
                                   : image_center_crop_hf(out, cur, p->crop_w, p->crop_h);
        image_free(&r);
    } else if (cur == &r) {
        *out = r;
    } else {
        rc = image_alloc(out, in->w, in->h);
        if (rc == 0) memcpy(out->px, in->px, (size_t)in->w * (size_t)in->h * 3);
    }
    return rc;
}

int image_processor_out_size(const ImageProcessor *p, int *h, int *w) {
    if (p->do_center_crop) {
        *h = p->crop_h, *w = p->crop_w;
        return 0;
    }
    if (p->do_resize && !p->shortest_edge) {
        *h = p->size_h, *w = p->size_w;
        return 0;
    }
    return -1;
}

void image_processor_tensor(const ImageProcessor *p, const Image *im, float *dst) {
    size_t HW = (size_t)im->w * (size_t)im->h;
    for (int c = 0; c < 3; c++) {
        float m = p->do_normalize ? p->mean[c] : 0.0f, s = p->do_normalize ? p->std[c] : 1.0f;
        for (size_t i = 0; i < HW; i++) {
            float x = p->do_rescale ? (float)((double)im->px[3 * i + c] * p->rescale_factor) : (float)im->px[3 * i + c];
            dst[c * HW + i] = p->do_normalize ? (x - m) / s : x;
        }
    }
}

void image_processor_denormalize(const ImageProcessor *p, const float *src, int h, int w, Image *out) {
    image_alloc(out, w, h);
    size_t HW = (size_t)w * (size_t)h;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < HW; i++) {
            double x = src[c * HW + i];
            if (p->do_normalize) x = x * p->std[c] + p->mean[c];
            if (p->do_rescale) x /= p->rescale_factor;
            long v = lround(x);
            out->px[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

// timm's evaluation transform from pretrained_cfg: the short side to floor(size / crop_pct) with its
// interpolation, a center crop of the input size (torchvision's rounding), its mean and std
static int timm_processor(ImageProcessor *p, const cJSON *pc, int image_size, const char *path, char *err, size_t errn) {
    image_processor_default(p, image_size);
    snprintf(p->kind, sizeof p->kind, "timm");
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(pc, "crop_pct"), *in = cJSON_GetObjectItemCaseSensitive(pc, "interpolation");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(pc, "crop_mode");
    double crop_pct = cJSON_IsNumber(cp) ? cp->valuedouble : 0.875;
    if (!(crop_pct > 0.1 && crop_pct <= 1.0) || (mode && (!cJSON_IsString(mode) || strcmp(mode->valuestring, "center")))) {
        return errorf(err, errn, "%s: pretrained_cfg needs crop_pct in (0.1, 1] and crop_mode \"center\"", path);
    }
    const char *interp = cJSON_IsString(in) ? in->valuestring : "bicubic";
    p->resample = !strcmp(interp, "bilinear")  ? RESAMPLE_BILINEAR
                  : !strcmp(interp, "nearest") ? RESAMPLE_NEAREST
                  : !strcmp(interp, "lanczos") ? RESAMPLE_LANCZOS
                                               : RESAMPLE_BICUBIC;
    p->shortest_edge = (int)floor(image_size / crop_pct), p->size_h = p->size_w = 0;
    p->do_center_crop = true, p->crop_h = p->crop_w = image_size, p->style = GEOM_TIMM;
    if (get_triple(pc, "mean", p->mean, false, path, err, errn) || get_triple(pc, "std", p->std, true, path, err, errn)) return -1;
    return 0;
}

int image_processor_for_model(ImageProcessor *p, const char *model_dir, int image_size, char *err, size_t errn) {
    char path[FILE_PATH_BUF];
    path_join(path, sizeof path, model_dir, "config.json");
    char *cfg = file_exists(path) ? file_read_all(path, 64u << 20, NULL, err, errn) : NULL;
    cJSON *co = cfg ? cJSON_ParseWithOpts(cfg, NULL, 1) : NULL;
    free(cfg);
    const cJSON *pc = co ? cJSON_GetObjectItemCaseSensitive(co, "pretrained_cfg") : NULL;
    if (cJSON_IsObject(pc) && !file_exists(path_join(path, sizeof path, model_dir, "preprocessor_config.json"))) {
        int rc = timm_processor(p, pc, image_size, path, err, errn);
        cJSON_Delete(co);
        return rc;
    }
    cJSON_Delete(co);
    path_join(path, sizeof path, model_dir, "preprocessor_config.json");
    if (!file_exists(path)) {
        image_processor_default(p, image_size);
        return 0;
    }
    return image_processor_load(p, path, image_size, err, errn);
}

int image_processor_prep(void *ud, const Image *im, float *dst) {
    const ImageProcessor *p = ud;
    Image g;
    if (image_processor_geometry(p, im, &g) != 0) return -1;
    image_processor_tensor(p, &g, dst);
    image_free(&g);
    return 0;
}
