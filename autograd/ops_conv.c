// ops_conv.c: 2-d convolution (stride, padding, dilation, groups) and pooling, PyTorch's
// semantics; the kernels (im2col per image and group, then a GEMM) are in tensor/kernels.inc.
#include "extend.h"

#include <string.h>

// the geometry of x [B, C, H, W] under a KH x KW window; false with a message when it does not fit
static bool geometry(Ctx *c, const char *op, Tensor *x, int64_t OC, int64_t KH, int64_t KW, const int *stride, const int *padding,
                     const int *dilation, int groups, Conv2dGeom *g) {
    char s1[SHAPE_STR_BUF];
    if (x->ndim != 4) {
        ctx_fail(c, "%s: input %s is not [B, C, H, W]", op, shape_str(x, s1, sizeof s1));
        return false;
    }
    *g = (Conv2dGeom){.B = x->shape[0],
                      .C = x->shape[1],
                      .H = x->shape[2],
                      .W = x->shape[3],
                      .OC = OC,
                      .KH = KH,
                      .KW = KW,
                      .SH = stride ? stride[0] : 1,
                      .SW = stride ? stride[1] : 1,
                      .PH = padding ? padding[0] : 0,
                      .PW = padding ? padding[1] : 0,
                      .DH = dilation ? dilation[0] : 1,
                      .DW = dilation ? dilation[1] : 1,
                      .groups = groups};
    if (g->SH < 1 || g->SW < 1 || g->PH < 0 || g->PW < 0 || g->DH < 1 || g->DW < 1 || KH < 1 || KW < 1) {
        ctx_fail(c,
                 "%s: kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld, dilation %lldx%lld: sizes must be positive "
                 "(padding not negative)",
                 op, (long long)KH, (long long)KW, (long long)g->SH, (long long)g->SW, (long long)g->PH, (long long)g->PW, (long long)g->DH,
                 (long long)g->DW);
        return false;
    }
    g->OH = (g->H + 2 * g->PH - g->DH * (KH - 1) - 1) / g->SH + 1;
    g->OW = (g->W + 2 * g->PW - g->DW * (KW - 1) - 1) / g->SW + 1;
    if (g->H + 2 * g->PH < g->DH * (KH - 1) + 1 || g->W + 2 * g->PW < g->DW * (KW - 1) + 1) {
        ctx_fail(c, "%s: a %lldx%lld window (dilation %lldx%lld) does not fit the padded input %s", op, (long long)KH, (long long)KW,
                 (long long)g->DH, (long long)g->DW, shape_str(x, s1, sizeof s1));
        return false;
    }
    return true;
}

typedef struct {
    Conv2dGeom g;
    Tensor *x, *w; // contiguous copies the backward reads
} ConvSaved;

static void conv2d_bw(AgNode *n) {
    ConvSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]), *gw = ag_grad_buf(n->in[1]), *gb = n->nin > 2 ? ag_grad_buf(n->in[2]) : NULL;
    if (AG_DISPATCH(n->out->dtype, conv2d_backward, gx ? gx->data : NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data,
                    s->x->data, s->w->data, &s->g) != 0)
        ctx_fail(n->out->ctx, "conv2d: out of memory for the backward's columns");
}

Tensor *ag_conv2d(Ctx *c, Tensor *x, Tensor *w, Tensor *b, const int stride[2], const int padding[2], const int dilation[2], int groups) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "conv2d", "x", x) || !ag_arg(c, "conv2d", "w", w) || !ag_check_float(c, "conv2d", x, w) ||
        (b && !ag_check_float(c, "conv2d", x, b)))
        return NULL;
    if (groups < 1 || w->ndim != 4 || x->ndim != 4 || x->shape[1] % groups || w->shape[0] % groups || w->shape[1] * groups != x->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
        ctx_fail(c,
                 "conv2d: input %s, weight %s and %d groups do not fit ([B, C, H, W], [OC, C / groups, KH, KW], "
                 "groups dividing C and OC)",
                 shape_str(x, s1, sizeof s1), shape_str(w, s2, sizeof s2), groups);
        return NULL;
    }
    Conv2dGeom g;
    if (!geometry(c, "conv2d", x, w->shape[0], w->shape[2], w->shape[3], stride, padding, dilation, groups, &g)) return NULL;
    Tensor *xc = tensor_contiguous(c, x), *wc = tensor_contiguous(c, w), *bc = b ? tensor_contiguous(c, b) : NULL;
    Tensor *y = tensor_new(c, x->dtype, 4, (int64_t[]){g.B, g.OC, g.OH, g.OW});
    if (!y || AG_DISPATCH(x->dtype, conv2d_forward, y->data, xc->data, wc->data, bc ? bc->data : NULL, &g) != 0) {
        ctx_fail(c, "conv2d: out of memory for its columns");
        return NULL;
    }
    AgNode *n = ag_record(c, "conv2d", y, b ? 3 : 2, (Tensor *[]){x, w, b}, conv2d_bw);
    if (n) {
        ConvSaved *s = ctx_alloc(c, sizeof *s);
        *s = (ConvSaved){g, xc, wc};
        n->aux = s;
    }
    return y;
}

typedef struct {
    Conv2dGeom g;
    Tensor *arg; // max pooling: where each maximum came from
} PoolSaved;

static void maxpool_bw(AgNode *n) {
    PoolSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(n->out->dtype, maxpool2d_backward, gx->data, n->out->grad->data, s->arg->data, &s->g);
}

static void avgpool_bw(AgNode *n) {
    PoolSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]);
    AG_DISPATCH(n->out->dtype, avgpool2d_backward, gx->data, n->out->grad->data, &s->g);
}

static Tensor *pool(Ctx *c, const char *op, bool max, Tensor *x, const int kernel[2], const int stride[2], const int padding[2]) {
    if (!ag_arg(c, op, "x", x) || !ag_check_float(c, op, x, NULL)) return NULL;
    if (!kernel) {
        ctx_fail(c, "%s: argument kernel is NULL", op);
        return NULL;
    }
    Conv2dGeom g;
    const int *st = stride ? stride : kernel; // PyTorch: the stride defaults to the kernel size
    if (!geometry(c, op, x, x->ndim == 4 ? x->shape[1] : 0, kernel[0], kernel[1], st, padding, NULL, 1, &g)) return NULL;
    if (2 * g.PH > g.KH || 2 * g.PW > g.KW) {
        ctx_fail(c, "%s: padding %lldx%lld is more than half the %lldx%lld kernel", op, (long long)g.PH, (long long)g.PW, (long long)g.KH,
                 (long long)g.KW);
        return NULL;
    }
    Tensor *xc = tensor_contiguous(c, x), *y = tensor_new(c, x->dtype, 4, (int64_t[]){g.B, g.C, g.OH, g.OW});
    Tensor *arg = max ? tensor_new(c, DT_I64, 4, y->shape) : NULL;
    if (max)
        AG_DISPATCH(x->dtype, maxpool2d_forward, y->data, arg->data, xc->data, &g);
    else
        AG_DISPATCH(x->dtype, avgpool2d_forward, y->data, xc->data, &g);
    AgNode *n = ag_record(c, op, y, 1, &x, max ? maxpool_bw : avgpool_bw);
    if (n) {
        PoolSaved *s = ctx_alloc(c, sizeof *s);
        *s = (PoolSaved){g, arg};
        n->aux = s;
    }
    return y;
}

Tensor *ag_max_pool2d(Ctx *c, Tensor *x, const int kernel[2], const int stride[2], const int padding[2]) {
    return pool(c, "max_pool2d", true, x, kernel, stride, padding);
}

Tensor *ag_avg_pool2d(Ctx *c, Tensor *x, const int kernel[2], const int stride[2], const int padding[2]) {
    return pool(c, "avg_pool2d", false, x, kernel, stride, padding);
}

Tensor *ag_global_avg_pool2d(Ctx *c, Tensor *x) {
    char s1[SHAPE_STR_BUF];
    if (!ag_arg(c, "global_avg_pool2d", "x", x)) return NULL;
    if (x->ndim != 4) {
        ctx_fail(c, "global_avg_pool2d: input %s is not [B, C, H, W]", shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t B = x->shape[0], C = x->shape[1];
    Tensor *m = ag_mean(c, ag_reshape(c, x, 3, (int64_t[]){B, C, x->shape[2] * x->shape[3]}), 2, true);
    return ag_reshape(c, m, 4, (int64_t[]){B, C, 1, 1});
}
