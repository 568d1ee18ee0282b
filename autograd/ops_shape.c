// ops_shape.c: recorded views (reshape, permute, transpose, narrow, expand), contiguous, concat,
// index_select and gather. A view's backward applies the same view to the input's gradient and
// adds the output's gradient into it: expand's stride-0 dimensions make that a sum.
#include "extend.h"

#include <string.h>

// dst (any strides, may alias itself through stride 0) += src (contiguous, same shape), a row of the
// last dimension at a time: a contiguous dst is one vector pass, a row of stride 1 a vector add, a
// broadcast row (stride 0) a sum. fresh: dst is a new, unzeroed, contiguous buffer (written, not added).
#define ACCUM_ROWS(real)                                                                                                                   \
    do {                                                                                                                                   \
        real *d = dst->data;                                                                                                               \
        const real *s = src->data;                                                                                                         \
        if (contiguous) {                                                                                                                  \
            if (fresh)                                                                                                                     \
                memcpy(d, s, sizeof(real) * (size_t)n);                                                                                    \
            else {                                                                                                                         \
                _Pragma("omp parallel for simd if (n > 65536)") for (int64_t i = 0; i < n; i++) d[i] += s[i];                              \
            }                                                                                                                              \
            break;                                                                                                                         \
        }                                                                                                                                  \
        for (int64_t r = 0; r < rows; r++, s += L) {                                                                                       \
            real *dr = d + off;                                                                                                            \
            if (st == 1) {                                                                                                                 \
                _Pragma("omp simd") for (int64_t j = 0; j < L; j++) dr[j] += s[j];                                                         \
            } else if (st == 0) {                                                                                                          \
                real acc = 0;                                                                                                              \
                for (int64_t j = 0; j < L; j++) acc += s[j];                                                                               \
                dr[0] += acc;                                                                                                              \
            } else                                                                                                                         \
                for (int64_t j = 0; j < L; j++) dr[j * st] += s[j];                                                                        \
            for (int k = nd - 2; k >= 0; k--) { /* the next row's offset */                                                                \
                off += dst->strides[k];                                                                                                    \
                if (++idx[k] < dst->shape[k]) break;                                                                                       \
                off -= dst->strides[k] * dst->shape[k];                                                                                    \
                idx[k] = 0;                                                                                                                \
            }                                                                                                                              \
        }                                                                                                                                  \
    } while (0)

static void accum_into(Tensor *dst, const Tensor *src, bool fresh) {
    int64_t n = tensor_numel(src), idx[TENSOR_MAX_DIMS] = {0}, off = 0;
    int nd = dst->ndim;
    if (n == 0) return;
    bool contiguous = tensor_is_contiguous(dst);
    if (nd == 0) contiguous = true;
    int64_t L = nd ? dst->shape[nd - 1] : 1, st = nd ? dst->strides[nd - 1] : 1, rows = n / (L ? L : 1);
    if (dst->dtype == DT_F32)
        ACCUM_ROWS(float);
    else
        ACCUM_ROWS(double);
}

enum { V_RESHAPE, V_PERMUTE, V_NARROW, V_EXPAND, V_CONTIG };

static void view_bw(AgNode *n) {
    Tensor *g = n->out->grad;
    Ctx *c = n->out->ctx;
    bool whole = n->i[0] == V_RESHAPE || n->i[0] == V_CONTIG, fresh = false;
    // a reshape's gradient is the output's, copied into a new buffer (not zeroed and then added)
    Tensor *gx = whole ? ag_grad_fresh(n->in[0], &fresh) : ag_grad_buf(n->in[0]);
    if (!gx) return;
    Tensor *dst = NULL;
    switch (n->i[0]) {
    case V_RESHAPE:
    case V_CONTIG: dst = tensor_reshape_view(c, gx, g->ndim, g->shape); break;
    case V_PERMUTE: {
        int perm[TENSOR_MAX_DIMS];
        for (int i = 0; i < gx->ndim; i++) perm[i] = (int)n->i[1 + i];
        dst = tensor_permute_view(c, gx, perm);
        break;
    }
    case V_NARROW: dst = tensor_narrow_view(c, gx, (int)n->i[1], n->i[2], n->i[3]); break;
    case V_EXPAND: dst = tensor_expand_view(c, gx, g->ndim, g->shape); break;
    }
    if (dst) accum_into(dst, tensor_contiguous(c, g), fresh && whole);
}

static Tensor *record_view(Ctx *c, const char *op, Tensor *x, Tensor *v, int kind) {
    if (!v) return NULL;
    AgNode *n = ag_record(c, op, v, 1, &x, view_bw);
    if (n) n->i[0] = kind;
    return v;
}

Tensor *ag_reshape(Ctx *c, Tensor *x, int ndim, const int64_t *shape) {
    if (!ag_arg(c, "reshape", "x", x)) return NULL;
    Tensor *src = tensor_contiguous(c, x);
    return record_view(c, "reshape", x, tensor_reshape_view(c, src, ndim, shape), V_RESHAPE);
}

Tensor *ag_permute(Ctx *c, Tensor *x, const int *perm) {
    if (!ag_arg(c, "permute", "x", x)) return NULL;
    Tensor *v = tensor_permute_view(c, x, perm);
    if (!v) return NULL;
    AgNode *n = ag_record(c, "permute", v, 1, &x, view_bw);
    if (n) {
        n->i[0] = V_PERMUTE;
        for (int i = 0; i < x->ndim; i++) n->i[1 + i] = perm[i];
    }
    return v;
}

Tensor *ag_transpose(Ctx *c, Tensor *x, int d0, int d1) {
    if (!ag_arg(c, "transpose", "x", x)) return NULL;
    int a = tensor_dim(x, d0), b = tensor_dim(x, d1);
    if (a < 0 || b < 0) {
        ctx_fail(c, "transpose: dimensions %d, %d out of range for %d-d tensor", d0, d1, x->ndim);
        return NULL;
    }
    int perm[TENSOR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return ag_permute(c, x, perm);
}

Tensor *ag_narrow(Ctx *c, Tensor *x, int dim, int64_t start, int64_t len) {
    if (!ag_arg(c, "narrow", "x", x)) return NULL;
    Tensor *v = tensor_narrow_view(c, x, dim, start, len);
    if (!v) return NULL;
    AgNode *n = ag_record(c, "narrow", v, 1, &x, view_bw);
    if (n) {
        n->i[0] = V_NARROW;
        n->i[1] = tensor_dim(x, dim), n->i[2] = start, n->i[3] = len;
    }
    return v;
}

Tensor *ag_expand(Ctx *c, Tensor *x, int ndim, const int64_t *shape) {
    if (!ag_arg(c, "expand", "x", x)) return NULL;
    return record_view(c, "expand", x, tensor_expand_view(c, x, ndim, shape), V_EXPAND);
}

Tensor *ag_contiguous(Ctx *c, Tensor *x) {
    if (!ag_arg(c, "contiguous", "x", x)) return NULL;
    if (tensor_is_contiguous(x)) return x;
    return record_view(c, "contiguous", x, tensor_clone(c, x), V_CONTIG);
}

// ---- concat ----

static void concat_bw(AgNode *n) {
    void *gp[AG_MAX_IN];
    int64_t Nj[AG_MAX_IN];
    for (int j = 0; j < n->nin; j++) {
        Tensor *g = ag_grad_buf(n->in[j]);
        gp[j] = g ? g->data : NULL;
        Nj[j] = n->in[j]->shape[n->i[0]];
    }
    if (n->out->dtype == DT_F32)
        concat_backward_f32((float *const *)gp, n->out->grad->data, Nj, n->nin, n->i[1], n->i[2]);
    else
        concat_backward_f64((double *const *)gp, n->out->grad->data, Nj, n->nin, n->i[1], n->i[2]);
}

static Tensor *concat_few(Ctx *c, Tensor *const *parts, int k, int dim);

// any number of parts: groups of at most AG_MAX_IN (an op's inputs) concatenated, then the groups'
// results, as a tree; the values and gradients are those of one concatenation
Tensor *ag_concat(Ctx *c, Tensor *const *parts, int k, int dim) {
    if (k < 1 || !parts) {
        ctx_fail(c, "concat: %d parts (at least 1)", k);
        return NULL;
    }
    if (k <= AG_MAX_IN) return concat_few(c, parts, k, dim);
    int ng = (k + AG_MAX_IN - 1) / AG_MAX_IN;
    Tensor **g = ctx_alloc(c, sizeof *g * (size_t)ng);
    for (int i = 0; i < ng; i++) {
        int n = k - i * AG_MAX_IN < AG_MAX_IN ? k - i * AG_MAX_IN : AG_MAX_IN;
        if (!(g[i] = concat_few(c, parts + (size_t)i * AG_MAX_IN, n, dim))) return NULL;
    }
    return ag_concat(c, g, ng, dim);
}

static Tensor *concat_few(Ctx *c, Tensor *const *parts, int k, int dim) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    for (int j = 0; j < k; j++) {
        if (!parts[j] && !c->failed) ctx_fail(c, "concat: argument parts[%d] is NULL", j);
        if (!parts[j] || !ag_check_float(c, "concat", parts[j], parts[0])) return NULL;
    }
    Tensor *p0 = parts[0];
    int d = tensor_dim(p0, dim);
    if (d < 0) {
        ctx_fail(c, "concat: dimension %d out of range for %s", dim, shape_str(p0, s1, sizeof s1));
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS], Nj[AG_MAX_IN];
    memcpy(shape, p0->shape, sizeof shape);
    shape[d] = 0;
    const void *data[AG_MAX_IN];
    for (int j = 0; j < k; j++) {
        Tensor *p = parts[j];
        bool ok = p->ndim == p0->ndim;
        for (int i = 0; ok && i < p0->ndim; i++) ok = i == d || p->shape[i] == p0->shape[i];
        if (!ok) {
            ctx_fail(c, "concat: shapes %s and %s differ outside dimension %d", shape_str(p0, s1, sizeof s1), shape_str(p, s2, sizeof s2),
                     dim);
            return NULL;
        }
        const Tensor *pc = tensor_contiguous(c, p);
        if (!pc) return NULL;
        data[j] = pc->data;
        Nj[j] = p->shape[d];
        if (__builtin_add_overflow(shape[d], Nj[j], &shape[d])) {
            ctx_fail(c, "concat: the sizes along dimension %d overflow", dim);
            return NULL;
        }
    }
    int64_t O = 1, I = 1;
    for (int i = 0; i < d; i++) O *= shape[i];
    for (int i = d + 1; i < p0->ndim; i++) I *= shape[i];
    Tensor *y = tensor_new(c, p0->dtype, p0->ndim, shape);
    if (!y) return NULL;
    if (y->dtype == DT_F32)
        concat_forward_f32(y->data, (const float *const *)data, Nj, k, O, I);
    else
        concat_forward_f64(y->data, (const double *const *)data, Nj, k, O, I);
    AgNode *n = ag_record(c, "concat", y, k, parts, concat_bw);
    if (n) n->i[0] = d, n->i[1] = O, n->i[2] = I;
    return y;
}

// ---- index_select and gather ----

static bool check_index(Ctx *c, const char *op, Tensor *x, Tensor *idx, int64_t N) {
    char s1[SHAPE_STR_BUF];
    if (idx->dtype != DT_I64) {
        ctx_fail(c, "%s: indices must be int64, got %s %s", op, dtype_name(idx->dtype), shape_str(idx, s1, sizeof s1));
        return false;
    }
    int64_t n = tensor_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = (int64_t)tensor_get_flat(idx, i);
        if (v < 0 || v >= N) {
            ctx_fail(c, "%s: index %lld outside [0, %lld) for %s", op, (long long)v, (long long)N, shape_str(x, s1, sizeof s1));
            return false;
        }
    }
    return true;
}

static void index_bw(AgNode *n) {
    Tensor *gx = ag_grad_buf(n->in[0]), *idx = n->saved[0];
    if (n->i[4])
        AG_DISPATCH(gx->dtype, gather_backward, gx->data, n->out->grad->data, idx->data, n->i[0], n->i[1], n->i[2], n->i[3]);
    else
        AG_DISPATCH(gx->dtype, index_select_backward, gx->data, n->out->grad->data, idx->data, n->i[0], n->i[1], n->i[2], n->i[3]);
}

static Tensor *index_impl(Ctx *c, const char *op, Tensor *x, int dim, Tensor *idx, bool gather) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "x", x) || !ag_arg(c, op, "idx", idx) || !ag_check_float(c, op, x, NULL)) return NULL;
    int d = tensor_dim(x, dim);
    if (d < 0) {
        ctx_fail(c, "%s: dimension %d out of range for %s", op, dim, shape_str(x, s1, sizeof s1));
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS], M;
    memcpy(shape, x->shape, sizeof shape);
    if (gather) {
        bool ok = idx->ndim == x->ndim;
        for (int i = 0; ok && i < x->ndim; i++) ok = i == d || idx->shape[i] == x->shape[i];
        if (!ok) {
            ctx_fail(c, "gather: index %s does not fit input %s along dimension %d", shape_str(idx, s1, sizeof s1),
                     shape_str(x, s2, sizeof s2), dim);
            return NULL;
        }
        M = idx->shape[d];
    } else {
        if (idx->ndim != 1) {
            ctx_fail(c, "index_select: index must be 1-d, got %s", shape_str(idx, s1, sizeof s1));
            return NULL;
        }
        M = idx->shape[0];
    }
    if (!check_index(c, op, x, idx, x->shape[d])) return NULL;
    shape[d] = M;
    int64_t O = 1, I = 1;
    for (int i = 0; i < d; i++) O *= x->shape[i];
    for (int i = d + 1; i < x->ndim; i++) I *= x->shape[i];
    Tensor *xc = tensor_contiguous(c, x), *ic = tensor_contiguous(c, idx);
    Tensor *y = tensor_new(c, x->dtype, x->ndim, shape);
    if (gather)
        AG_DISPATCH(x->dtype, gather_forward, y->data, xc->data, ic->data, O, x->shape[d], I, M);
    else
        AG_DISPATCH(x->dtype, index_select_forward, y->data, xc->data, ic->data, O, x->shape[d], I, M);
    AgNode *n = ag_record(c, op, y, 1, &x, index_bw);
    if (n) {
        n->saved[0] = ic;
        n->i[0] = O, n->i[1] = x->shape[d], n->i[2] = I, n->i[3] = M, n->i[4] = gather;
    }
    return y;
}

Tensor *ag_index_select(Ctx *c, Tensor *x, int dim, Tensor *idx) { return index_impl(c, "index_select", x, dim, idx, false); }
Tensor *ag_gather(Ctx *c, Tensor *x, int dim, Tensor *idx) { return index_impl(c, "gather", x, dim, idx, true); }
