// results.c: the commands' results as text and pictures (results.h).
#include "results.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_prob(const void *a, const void *b) {
    const float *x = *(const float *const *)a, *y = *(const float *const *)b;
    return *x > *y ? -1 : *x < *y ? 1 : (x > y) - (x < y);
}

int *results_rank(const float *p, int n) {
    int *id = malloc(sizeof *id * (size_t)n);
    const float **ptr = malloc(sizeof *ptr * (size_t)n);
    if (!id || !ptr) return free(id), free(ptr), NULL;
    for (int j = 0; j < n; j++) ptr[j] = p + j;
    qsort(ptr, (size_t)n, sizeof *ptr, by_prob);
    for (int j = 0; j < n; j++) id[j] = (int)(ptr[j] - p);
    free(ptr);
    return id;
}

void results_predict(StrBuf *b, const char *image, const float *p, int top, bool json, const VitConfig *cfg) {
    int K = cfg->num_labels;
    int *best = results_rank(p, K);
    if (!best) {
        b->oom = true;
        return;
    }
    if (top > K) top = K;
    if (json) {
        sb_printf(b, "{\"image\": ");
        sb_json_str(b, image);
        sb_printf(b, ", \"top\": [");
        for (int k = 0; k < top; k++) {
            sb_printf(b, "%s{\"label\": ", k ? ", " : "");
            sb_json_str(b, cfg->id2label[best[k]]);
            sb_printf(b, ", \"id\": %d, \"prob\": %.9g}", best[k], p[best[k]]);
        }
        sb_printf(b, "]}\n");
    } else {
        sb_printf(b, "%s\n", image);
        for (int k = 0; k < top; k++) sb_printf(b, "  %s  %.4f\n", cfg->id2label[best[k]], p[best[k]]);
    }
    free(best);
}

void results_explain_json(StrBuf *b, const char *image, const char *method, const VitConfig *cfg, int id, double prob, const double *map,
                          int grid) {
    sb_printf(b, "{\"image\": ");
    sb_json_str(b, image);
    sb_printf(b, ", \"method\": \"%s\", \"label\": ", method);
    sb_json_str(b, cfg->id2label[id]);
    sb_printf(b, ", \"id\": %d, \"prob\": %.9g, \"grid\": [%d, %d], \"map\": [", id, prob, grid, grid);
    for (int i = 0; i < grid; i++) {
        sb_printf(b, "%s[", i ? ", " : "");
        for (int j = 0; j < grid; j++) sb_printf(b, "%s%.9g", j ? ", " : "", map[i * grid + j]);
        sb_printf(b, "]");
    }
    sb_printf(b, "]}\n");
}

// a blue-cyan-yellow-red ramp ("jet") for t in [0, 1]
static void ramp(double t, double rgb[3]) {
    double r = 1.5 - fabs(4 * t - 3), g = 1.5 - fabs(4 * t - 2), b = 1.5 - fabs(4 * t - 1);
    rgb[0] = fmin(fmax(r, 0), 1), rgb[1] = fmin(fmax(g, 0), 1), rgb[2] = fmin(fmax(b, 0), 1);
}

int results_explain_overlay(const Image *seen, const double *map, int grid, Image *out) {
    if (image_alloc(out, seen->w, seen->h) != 0) return -1;
    double lo = map[0], hi = map[0];
    for (int i = 1; i < grid * grid; i++) lo = fmin(lo, map[i]), hi = fmax(hi, map[i]);
    double span = hi > lo ? hi - lo : 1;
    for (int y = 0; y < seen->h; y++)
        for (int x = 0; x < seen->w; x++) {
            // the patch grid's centres, bilinear between them, clamped at the borders
            double gy = fmin(fmax((y + 0.5) * grid / seen->h - 0.5, 0), grid - 1);
            double gx = fmin(fmax((x + 0.5) * grid / seen->w - 0.5, 0), grid - 1);
            int y0 = (int)gy, x0 = (int)gx, y1 = y0 + (y0 < grid - 1), x1 = x0 + (x0 < grid - 1);
            double fy = gy - y0, fx = gx - x0;
            double v = (1 - fy) * ((1 - fx) * map[y0 * grid + x0] + fx * map[y0 * grid + x1]) +
                       fy * ((1 - fx) * map[y1 * grid + x0] + fx * map[y1 * grid + x1]);
            double rgb[3];
            ramp((v - lo) / span, rgb);
            const uint8_t *s = seen->px + ((size_t)y * seen->w + x) * 3;
            uint8_t *d = out->px + ((size_t)y * out->w + x) * 3;
            for (int ch = 0; ch < 3; ch++) d[ch] = (uint8_t)lrint(0.5 * s[ch] + 0.5 * 255 * rgb[ch]);
        }
    return 0;
}
