// plot.c: the training loss (blue, left axis) and learning rate (orange, right axis) against
// steps, drawn into RGB pixels with a 5x7 bitmap font for the labels, written as PNG (png_write.h:
// nothing else of the image pipeline).
#include "trainer.h"

#include "../data/png_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW 720
#define PH 420
#define ML 70 // margins
#define MR 80
#define MT 40
#define MB 50

static const struct {
    char c;
    uint8_t rows[7];
} FONT[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},
    {'3', {31, 2, 4, 2, 1, 17, 14}},     {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}},
    {'9', {14, 17, 17, 15, 1, 2, 12}},   {'.', {0, 0, 0, 0, 0, 12, 12}},      {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'+', {0, 4, 4, 31, 4, 4, 0}},       {'e', {0, 0, 14, 17, 31, 16, 14}},   {'l', {12, 4, 4, 4, 4, 4, 14}},
    {'o', {0, 0, 14, 17, 17, 17, 14}},   {'s', {0, 0, 15, 16, 14, 1, 30}},    {'a', {0, 0, 14, 1, 15, 17, 15}},
    {'r', {0, 0, 22, 25, 16, 16, 16}},   {'n', {0, 0, 22, 25, 17, 17, 17}},   {'i', {4, 0, 12, 4, 4, 4, 14}},
    {'g', {0, 15, 17, 17, 15, 1, 14}},   {'t', {8, 8, 28, 8, 8, 9, 6}},       {'p', {0, 0, 30, 17, 30, 16, 16}},
    {'(', {2, 4, 8, 8, 8, 4, 2}},        {')', {8, 4, 2, 2, 2, 4, 8}},        {',', {0, 0, 0, 0, 12, 4, 8}},
    {'b', {16, 16, 22, 25, 17, 17, 30}}, {'u', {0, 0, 17, 17, 17, 19, 13}},   {'d', {1, 1, 13, 19, 17, 17, 15}},
    {'c', {0, 0, 14, 16, 16, 17, 14}},   {'h', {16, 16, 22, 25, 17, 17, 17}}, {'m', {0, 0, 26, 21, 21, 17, 17}},
};

typedef struct {
    int w, h;
    uint8_t *px; // h rows of w RGB triples
} Canvas;

static void put(Canvas *im, int x, int y, const uint8_t *c) {
    if (x >= 0 && y >= 0 && x < im->w && y < im->h) memcpy(im->px + ((size_t)y * im->w + x) * 3, c, 3);
}

static void text(Canvas *im, int x, int y, const char *s, const uint8_t *c) {
    for (; *s; s++, x += 6)
        for (size_t g = 0; g < sizeof FONT / sizeof *FONT; g++)
            if (FONT[g].c == *s)
                for (int r = 0; r < 7; r++)
                    for (int b = 0; b < 5; b++)
                        if (FONT[g].rows[r] >> (4 - b) & 1) put(im, x + b, y + r, c);
}

static void line(Canvas *im, int x0, int y0, int x1, int y1, const uint8_t *c, int thick) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        for (int t = 0; t < thick; t++) put(im, x0, y0 + t, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

// ticks for an axis from 0 to max: whole steps of 1, 2 or 5 times a power of ten, at most about 6
// (a tick is a value the axis really has: never "2" at 1.5). How many, into t[0..n).
int plot_ticks(double max, double *t, int maxn) {
    if (!(max > 0)) max = 1;
    double raw = max / 5, p = pow(10, floor(log10(raw))), step = p;
    for (int k = 0; k < 3; k++) {
        double m = (double[]){1, 2, 5}[k] * p;
        if (m >= raw) {
            step = m;
            break;
        }
        step = 10 * p;
    }
    if (step < 1) step = 1; // steps are whole
    int n = 0;
    for (double v = 0; v <= max + 1e-9 && n < maxn; v += step) t[n++] = v;
    return n;
}

// the pixel column of step s on an axis [x0, x1] for steps 0..smax
int plot_x(double s, double smax, int x0, int x1) { return x0 + (int)lround((x1 - x0) * s / (smax > 0 ? smax : 1)); }

int trainer_plot(const TrainState *st, const char *path, char *err, size_t errn) {
    Canvas im = {PW, PH, malloc((size_t)PW * PH * 3)};
    if (!im.px) return errorf(err, errn, "%s: out of memory for the plot", path);
    memset(im.px, 255, (size_t)PW * PH * 3);
    const uint8_t black[3] = {40, 40, 40}, grey[3] = {225, 225, 225}, blue[3] = {31, 119, 180}, orange[3] = {255, 127, 14};
    int x0 = ML, x1 = PW - MR, y0 = PH - MB, y1 = MT;
    // the training entries (evaluations are not on this plot)
    int n = 0;
    const TrainLog **L = malloc(sizeof *L * (size_t)(st->nlogs ? st->nlogs : 1));
    for (int i = 0; L && i < st->nlogs; i++)
        if (!st->logs[i].eval) L[n++] = &st->logs[i];
    double smax = n ? (double)L[n - 1]->step : 1, lmin = INFINITY, lmax = -INFINITY, rmax = 0;
    for (int i = 0; i < n; i++) {
        lmin = fmin(lmin, L[i]->loss), lmax = fmax(lmax, L[i]->loss);
        rmax = fmax(rmax, L[i]->learning_rate);
    }
    if (!n) lmin = 0, lmax = 1;
    if (lmax - lmin < 1e-9) lmax = lmin + 1;
    double pad = 0.05 * (lmax - lmin); // room above and below: no point on the frame
    lmin -= pad, lmax += pad;
    if (rmax <= 0) rmax = 1;
    rmax *= 1.05;
    for (int k = 0; k <= 4; k++) { // horizontal grid, the two value axes' labels
        int y = y0 - (y0 - y1) * k / 4;
        line(&im, x0, y, x1, y, grey, 1);
        char b[32];
        snprintf(b, sizeof b, "%.3g", lmin + (lmax - lmin) * k / 4);
        text(&im, x0 - 6 * (int)strlen(b) - 6, y - 3, b, blue);
        snprintf(b, sizeof b, "%.2e", rmax * k / 4);
        text(&im, x1 + 6, y - 3, b, orange);
    }
    double ticks[16];
    int nt = plot_ticks(smax, ticks, 16);
    for (int k = 0; k < nt; k++) { // the step axis: whole steps where they are
        int x = plot_x(ticks[k], smax, x0, x1);
        char b[32];
        snprintf(b, sizeof b, "%.0f", ticks[k]);
        line(&im, x, y0, x, y0 + 4, black, 1);
        text(&im, x - 3 * (int)strlen(b), y0 + 8, b, black);
    }
    line(&im, x0, y0, x1, y0, black, 1), line(&im, x0, y0, x0, y1, black, 1), line(&im, x1, y0, x1, y1, black, 1);
    for (int i = 0; i < n; i++) { // each point a dot (one entry alone is seen), joined by lines
        int xb = plot_x((double)L[i]->step, smax, x0, x1);
        int lb = y0 - (int)lround((y0 - y1) * (L[i]->loss - lmin) / (lmax - lmin)),
            rb = y0 - (int)lround((y0 - y1) * L[i]->learning_rate / rmax);
        if (i > 0) {
            int xa = plot_x((double)L[i - 1]->step, smax, x0, x1);
            int la = y0 - (int)lround((y0 - y1) * (L[i - 1]->loss - lmin) / (lmax - lmin)),
                ra = y0 - (int)lround((y0 - y1) * L[i - 1]->learning_rate / rmax);
            line(&im, xa, ra, xb, rb, orange, 2);
            line(&im, xa, la, xb, lb, blue, 2);
        }
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++) put(&im, xb + dx, lb + dy, blue);
    }
    free(L);
    text(&im, x0, 14, "loss", blue);
    text(&im, x0 + 40, 14, "learning rate", orange);
    text(&im, (x0 + x1) / 2 - 12, PH - 18, "step", black);
    int rc = png_save_rgb(im.px, im.w, im.h, path, err, errn);
    free(im.px);
    return rc;
}
