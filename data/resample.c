// resample.c: Pillow's Image.resize for 8-bit RGB (Resample.c semantics): a separable convolution,
// horizontal pass first then vertical, whose support grows with the downscale factor
// (antialiasing); coefficients normalised to sum 1, turned into 22-bit fixed point
// (round half away from zero), accumulated from 1 << 21 and shifted back with clipping.
// NEAREST follows Pillow's affine nearest sampling: source = (int)(scale * (x + 0.5)), with the
// position accumulated in double as Pillow does.
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double f_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
static double f_bilinear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}
static double f_hamming(double x) {
    x = fabs(x);
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x *= M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x)); // 0.54f/0.46f: Pillow's float constants
}
static double f_bicubic(double x) { // a = -0.5
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}
static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}
static double f_lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

typedef struct {
    double (*f)(double);
    double support;
} Filter;

static Filter filter_of(Resample r) {
    switch (r) {
    case RESAMPLE_BOX: return (Filter){f_box, 0.5};
    case RESAMPLE_BILINEAR: return (Filter){f_bilinear, 1.0};
    case RESAMPLE_HAMMING: return (Filter){f_hamming, 1.0};
    case RESAMPLE_BICUBIC: return (Filter){f_bicubic, 2.0};
    case RESAMPLE_LANCZOS: return (Filter){f_lanczos, 3.0};
    default: return (Filter){f_bilinear, 1.0};
    }
}

// coefficients for one axis: bounds[2*i] = first input, bounds[2*i+1] = count; kk fixed point
static int coeffs(int in_size, int out_size, Filter fl, int **bounds_out, int32_t **kk_out) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = fl.support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = malloc(sizeof(double) * (size_t)out_size * (size_t)ksize);
    int *bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    int32_t *kk = malloc(sizeof(int32_t) * (size_t)out_size * (size_t)ksize);
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &pre[(size_t)xx * (size_t)ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = fl.f((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++)
        kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS)) : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline uint8_t clip8(int v) {
    v >>= PRECISION_BITS; // arithmetic shift, as Pillow's lookup index
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int image_resize(Image *out, const Image *in, int w, int h, Resample f) {
    memset(out, 0, sizeof *out);
    if (w <= 0 || h <= 0 || in->w <= 0 || in->h <= 0) return -1;
    if (f == RESAMPLE_NEAREST) {
        if (image_alloc(out, w, h) != 0) return -1;
        double ax = (double)in->w / w, ay = (double)in->h / h;
        int *xs = malloc(sizeof(int) * (size_t)w);
        double xo = ax * 0.5;
        for (int x = 0; x < w; x++, xo += ax) xs[x] = xo < 0 ? -1 : (int)xo;
        double yo = ay * 0.5;
        for (int y = 0; y < h; y++, yo += ay) {
            int yi = yo < 0 ? -1 : (int)yo;
            uint8_t *o = out->px + (size_t)y * (size_t)w * 3;
            for (int x = 0; x < w; x++) {
                if (yi < 0 || yi >= in->h || xs[x] < 0 || xs[x] >= in->w)
                    memset(o + 3 * x, 0, 3);
                else
                    memcpy(o + 3 * x, in->px + ((size_t)yi * (size_t)in->w + (size_t)xs[x]) * 3, 3);
            }
        }
        free(xs);
        return 0;
    }
    if (w == in->w && h == in->h) { // Pillow copies
        if (image_alloc(out, w, h) != 0) return -1;
        memcpy(out->px, in->px, (size_t)w * (size_t)h * 3);
        return 0;
    }
    Filter fl = filter_of(f);
    int *bv, *bh = NULL;
    int32_t *kv, *kh = NULL;
    int ksv = coeffs(in->h, h, fl, &bv, &kv);
    int yfirst = bv[0], ylast = bv[2 * h - 2] + bv[2 * h - 1];
    Image tmp = {0};
    const Image *src = in;
    if (w != in->w) { // horizontal pass over the rows the vertical pass will use
        int ksh = coeffs(in->w, w, fl, &bh, &kh);
        for (int i = 0; i < h; i++) bv[2 * i] -= yfirst;
        if (image_alloc(&tmp, w, ylast - yfirst) != 0) return -1;
#pragma omp parallel for if ((long)w * (ylast - yfirst) > 65536)
        for (int yy = 0; yy < ylast - yfirst; yy++) {
            const uint8_t *r = in->px + (size_t)(yy + yfirst) * (size_t)in->w * 3;
            uint8_t *o = tmp.px + (size_t)yy * (size_t)w * 3;
            for (int xx = 0; xx < w; xx++) {
                int xmin = bh[2 * xx], xmax = bh[2 * xx + 1];
                const int32_t *k = &kh[(size_t)xx * (size_t)ksh];
                int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < xmax; x++) {
                    const uint8_t *p = r + (size_t)(x + xmin) * 3;
                    s0 += p[0] * k[x], s1 += p[1] * k[x], s2 += p[2] * k[x];
                }
                o[3 * xx] = clip8(s0), o[3 * xx + 1] = clip8(s1), o[3 * xx + 2] = clip8(s2);
            }
        }
        src = &tmp;
    }
    if (h != in->h) {
        if (image_alloc(out, src->w, h) != 0) return -1;
        int W = src->w;
#pragma omp parallel for if ((long)W * h > 65536)
        for (int yy = 0; yy < h; yy++) {
            int ymin = bv[2 * yy], ymax = bv[2 * yy + 1];
            const int32_t *k = &kv[(size_t)yy * (size_t)ksv];
            uint8_t *o = out->px + (size_t)yy * (size_t)W * 3;
            for (int xx = 0; xx < W * 3; xx++) {
                int s = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < ymax; y++) s += src->px[(size_t)(y + ymin) * (size_t)W * 3 + (size_t)xx] * k[y];
                o[xx] = clip8(s);
            }
        }
        image_free(&tmp);
    } else {
        *out = tmp; // only the horizontal pass was needed (ylast - yfirst == h then)
    }
    free(bv), free(kv), free(bh), free(kh);
    return 0;
}

// ---- crops ----

static int crop_pad(Image *out, const Image *in, int cw, int ch, int top, int left) {
    // out(y, x) = in(y + top, x + left) where inside, else 0
    if (cw <= 0 || ch <= 0 || image_alloc(out, cw, ch) != 0) return -1;
    memset(out->px, 0, (size_t)cw * (size_t)ch * 3);
    for (int y = 0; y < ch; y++) {
        int sy = y + top;
        if (sy < 0 || sy >= in->h) continue;
        int x0 = left < 0 ? -left : 0, x1 = in->w - left < cw ? in->w - left : cw;
        if (x1 > x0)
            memcpy(out->px + ((size_t)y * (size_t)cw + (size_t)x0) * 3, in->px + ((size_t)sy * (size_t)in->w + (size_t)(x0 + left)) * 3,
                   (size_t)(x1 - x0) * 3);
    }
    return 0;
}

static int floordiv2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

int image_center_crop_hf(Image *out, const Image *in, int cw, int ch) {
    // HF: top = (h - ch) // 2; when padding, the image sits at ceil((new - old) / 2) and the
    // crop window moves with it, which is the same as a window at floor((h - ch) / 2)
    int top = floordiv2(in->h - ch), left = floordiv2(in->w - cw);
    if (top < 0) top = -((ch - in->h + 1) / 2);
    if (left < 0) left = -((cw - in->w + 1) / 2);
    return crop_pad(out, in, cw, ch, top, left);
}

static int round_half_even_div2(int v) { // round(v / 2) with ties to even, as Python's round()
    if (v % 2 == 0) return v / 2;
    int lo = floordiv2(v), hi = lo + 1;
    return (lo % 2 == 0) ? lo : hi;
}

int image_center_crop_tv(Image *out, const Image *in, int cw, int ch) {
    // torchvision pads (left/top = (c - size) // 2) to at least the crop, then crops at round((h - ch) / 2)
    int ph = in->h < ch ? (ch - in->h) / 2 : 0, pw = in->w < cw ? (cw - in->w) / 2 : 0;
    int H = in->h < ch ? ch : in->h, W = in->w < cw ? cw : in->w;
    int top = round_half_even_div2(H - ch) - ph, left = round_half_even_div2(W - cw) - pw;
    return crop_pad(out, in, cw, ch, top, left);
}
