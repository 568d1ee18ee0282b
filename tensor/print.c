// print.c: tensors printed as PyTorch prints them (the notebook's matrices):
// four decimals, a common width, "1." for whole numbers, scientific notation for wide ranges,
// rows wrapped at 80 columns, and "..." summaries above 1000 elements.
#include "tensor.h"

#include <math.h>
#include <string.h>

typedef struct {
    int mode; // 0 integer dtype, 1 whole floats, 2 fixed, 3 scientific
    int width;
    bool summarize;
} Fmt;

static void fmt_value(const Fmt *f, double v, char *buf, size_t n) {
    switch (f->mode) {
    case 0: snprintf(buf, n, "%lld", (long long)v); break;
    case 1: snprintf(buf, n, "%.0f.", v); break;
    case 2: snprintf(buf, n, "%.4f", v); break;
    default: snprintf(buf, n, "%.4e", v); break;
    }
    if (isnan(v))
        snprintf(buf, n, "nan");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
}

static Fmt choose_format(const Tensor *t) {
    Fmt f = {0};
    int64_t n = tensor_numel(t);
    f.summarize = n > 1000;
    if (!dtype_is_float(t->dtype))
        f.mode = 0;
    else {
        bool whole = true;
        double amax = 0, amin = INFINITY;
        for (int64_t i = 0; i < n; i++) {
            double v = tensor_get_flat(t, i);
            if (!isfinite(v)) continue;
            if (v != floor(v)) whole = false;
            double a = fabs(v);
            if (a > amax) amax = a;
            if (a > 0 && a < amin) amin = a;
        }
        if (whole)
            f.mode = amax >= 1e8 ? 3 : 1;
        else if (amax > 0 && (amax / amin > 1000.0 || amax > 1e8 || amin < 1e-4))
            f.mode = 3;
        else
            f.mode = 2;
    }
    char buf[64];
    for (int64_t i = 0; i < n; i++) {
        fmt_value(&f, tensor_get_flat(t, i), buf, sizeof buf);
        int w = (int)strlen(buf);
        if (w > f.width) f.width = w;
    }
    return f;
}

static void print_dim(FILE *out, const Tensor *t, const Fmt *f, int d, int64_t *idx, int indent) {
    int64_t n = t->shape[d];
    bool cut = f->summarize && n > 6;
    fputc('[', out);
    if (d == t->ndim - 1) {
        int per_line = (80 - indent) / (f->width + 2);
        if (per_line < 1) per_line = 1;
        int col = 0;
        for (int64_t i = 0; i < n; i++) {
            if (cut && i == 3) {
                fputs(" ..., ", out);
                i = n - 3;
            }
            idx[d] = i;
            char buf[64];
            fmt_value(f, tensor_get(t, idx), buf, sizeof buf);
            if (col == per_line) {
                fprintf(out, "\n%*s", indent + 1, "");
                col = 0;
            }
            fprintf(out, "%*s%s", f->width, buf, i + 1 < n ? (col + 1 == per_line ? "," : ", ") : "");
            col++;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (cut && i == 3) {
                fprintf(out, "%*s...,\n", indent + 1, "");
                for (int k = d + 1; k < t->ndim - 1; k++) fputc('\n', out);
                i = n - 3;
            }
            idx[d] = i;
            if (i > 0 && !(cut && i == n - 3))
                fprintf(out, "%*s", indent + 1, "");
            else if (i > 0)
                fprintf(out, "%*s", indent + 1, "");
            print_dim(out, t, f, d + 1, idx, indent + 1);
            if (i + 1 < n) {
                fputc(',', out);
                for (int k = d; k < t->ndim - 1; k++) fputc('\n', out);
            }
        }
    }
    fputc(']', out);
}

void tensor_fprint(FILE *out, const Tensor *t) {
    Fmt f = choose_format(t);
    int64_t idx[TENSOR_MAX_DIMS] = {0};
    fputs("tensor(", out);
    if (t->ndim == 0) {
        char buf[64];
        fmt_value(&f, tensor_get_flat(t, 0), buf, sizeof buf);
        fputs(buf, out);
    } else {
        print_dim(out, t, &f, 0, idx, 7);
    }
    if (t->dtype == DT_F64)
        fputs(", dtype=torch.float64", out);
    else if (t->dtype == DT_U8)
        fputs(", dtype=torch.uint8", out);
    fputs(")\n", out);
}

void tensor_print(const Tensor *t) { tensor_fprint(stdout, t); }
