// tensor.c: dtypes, shapes, creation, element access and views.
#include "tensor.h"

#include "../kernels/kernels.h"

_Static_assert(TENSOR_MAX_DIMS == KERNELS_MAX_DIMS, "the kernels walk as many dimensions as a tensor has");

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t dtype_size(DType dt) {
    switch (dt) {
    case DT_F32: return 4;
    case DT_F64: return 8;
    case DT_I64: return 8;
    case DT_U8: return 1;
    }
    return 0;
}

const char *dtype_name(DType dt) {
    switch (dt) {
    case DT_F32: return "float32";
    case DT_F64: return "float64";
    case DT_I64: return "int64";
    case DT_U8: return "uint8";
    }
    return "?";
}

bool dtype_is_float(DType dt) { return dt == DT_F32 || dt == DT_F64; }

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bool tensor_is_contiguous(const Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int tensor_dim(const Tensor *t, int dim) {
    if (dim < 0) dim += t->ndim;
    return (dim < 0 || dim >= t->ndim) ? -1 : dim;
}

static void set_contiguous_strides(Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->shape[i];
    }
}

// the bytes of NUMEL elements of DT, or false when that does not fit in memory's address range
static bool bytes_of(int64_t numel, DType dt, size_t *bytes) {
    size_t es = dtype_size(dt);
    return numel >= 0 && (uint64_t)numel <= (uint64_t)(PTRDIFF_MAX / 2) / es && (*bytes = (size_t)numel * es, true);
}

static Tensor *header(Ctx *c, DType dt, int ndim, const int64_t *shape) {
    if (!c) return NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        ctx_fail(c, "tensor: %d dimensions (at most %d)", ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    if (ndim > 0 && !shape) {
        ctx_fail(c, "tensor: the shape is NULL");
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            ctx_fail(c, "tensor: negative size %lld in dimension %d", (long long)shape[i], i);
            return NULL;
        }
        if (__builtin_mul_overflow(numel, shape[i], &numel)) numel = -1;
    }
    size_t bytes;
    if (!bytes_of(numel, dt, &bytes)) {
        Tensor tmp = {.ndim = ndim};
        char b[SHAPE_STR_BUF];
        memcpy(tmp.shape, shape, sizeof(int64_t) * (size_t)ndim);
        ctx_fail(c, "tensor: %s elements of %zu bytes do not fit in memory", shape_str(&tmp, b, sizeof b), dtype_size(dt));
        return NULL;
    }
    Tensor *t = ctx_alloc(c, sizeof *t);
    static _Atomic uint64_t next_id;
    t->id = ++next_id;
    t->gen = c->gen;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    t->ctx = c;
    return t;
}

Tensor *tensor_new(Ctx *c, DType dt, int ndim, const int64_t *shape) {
    Tensor *t = header(c, dt, ndim, shape);
    if (!t) return NULL;
    t->data = ctx_try_alloc(c, (size_t)tensor_numel(t) * dtype_size(dt), false);
    return t->data ? t : NULL;
}

Tensor *tensor_zeros(Ctx *c, DType dt, int ndim, const int64_t *shape) {
    Tensor *t = header(c, dt, ndim, shape);
    if (!t) return NULL;
    t->data = ctx_try_alloc(c, (size_t)tensor_numel(t) * dtype_size(dt), true);
    return t->data ? t : NULL;
}

Tensor *tensor_full(Ctx *c, DType dt, int ndim, const int64_t *shape, double v) {
    Tensor *t = tensor_new(c, dt, ndim, shape);
    if (t) tensor_fill(t, v);
    return t;
}

Tensor *tensor_ones(Ctx *c, DType dt, int ndim, const int64_t *shape) { return tensor_full(c, dt, ndim, shape, 1.0); }

Tensor *tensor_arange(Ctx *c, DType dt, double start, double stop, double step) {
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        ctx_fail(c, "arange: bad range %g..%g step %g", start, stop, step);
        return NULL;
    }
    double nd = ceil((stop - start) / step);
    int64_t n = nd > 0 ? (int64_t)nd : 0;
    Tensor *t = tensor_new(c, dt, 1, &n);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) tensor_set_flat(t, i, start + (double)i * step);
    return t;
}

Tensor *tensor_from_buffer(Ctx *c, DType dt, int ndim, const int64_t *shape, void *data) {
    Tensor *t = header(c, dt, ndim, shape);
    if (t && !data && tensor_numel(t) > 0) {
        ctx_fail(c, "tensor_from_buffer: the data pointer is NULL");
        return NULL;
    }
    if (t) t->data = data;
    return t;
}

Tensor *tensor_from_data(Ctx *c, DType dt, int ndim, const int64_t *shape, const void *data) {
    Tensor *t = tensor_new(c, dt, ndim, shape);
    if (t && !data && tensor_numel(t) > 0) {
        ctx_fail(c, "tensor_from_data: the data pointer is NULL");
        return NULL;
    }
    if (t) memcpy(t->data, data, (size_t)tensor_numel(t) * dtype_size(dt));
    return t;
}

Tensor *tensor_clone(Ctx *c, const Tensor *t) { return tensor_to(c, t, t->dtype); }

Tensor *tensor_to(Ctx *c, const Tensor *t, DType dt) {
    Tensor *o = tensor_new(c, dt, t->ndim, t->shape);
    if (o) tensor_copy(o, t);
    return o;
}

// ---- element access ----

static int64_t offset_of_flat(const Tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return off;
}

static double load(const Tensor *t, int64_t off) {
    switch (t->dtype) {
    case DT_F32: return ((const float *)t->data)[off];
    case DT_F64: return ((const double *)t->data)[off];
    case DT_I64: return (double)((const int64_t *)t->data)[off];
    case DT_U8: return ((const uint8_t *)t->data)[off];
    }
    return 0;
}

static void store(Tensor *t, int64_t off, double v) {
    switch (t->dtype) {
    case DT_F32: ((float *)t->data)[off] = (float)v; break;
    case DT_F64: ((double *)t->data)[off] = v; break;
    case DT_I64: ((int64_t *)t->data)[off] = (int64_t)v; break;
    case DT_U8: ((uint8_t *)t->data)[off] = (uint8_t)v; break;
    }
}

double tensor_get(const Tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->strides[d];
    return load(t, off);
}

void tensor_set(Tensor *t, const int64_t *idx, double v) {
    t->version++;
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->strides[d];
    store(t, off, v);
}

double tensor_get_flat(const Tensor *t, int64_t i) { return load(t, offset_of_flat(t, i)); }
void tensor_set_flat(Tensor *t, int64_t i, double v) {
    t->version++;
    store(t, offset_of_flat(t, i), v);
}

void tensor_fill(Tensor *t, double v) {
    t->version++;
    int64_t n = tensor_numel(t);
    if (tensor_is_contiguous(t) && t->dtype == DT_F32) {
        float *p = t->data;
        for (int64_t i = 0; i < n; i++) p[i] = (float)v;
        return;
    }
    for (int64_t i = 0; i < n; i++) tensor_set_flat(t, i, v);
}

int tensor_copy(Tensor *dst, const Tensor *src) {
    if (!tensor_same_shape(dst, src)) return -1;
    dst->version++;
    int64_t n = tensor_numel(dst);
    if (dst->dtype == src->dtype && tensor_is_contiguous(dst) && tensor_is_contiguous(src)) {
        memmove(dst->data, src->data, (size_t)n * dtype_size(dst->dtype));
        return 0;
    }
    if (dst->dtype == DT_F32 && src->dtype == DT_F32 && tensor_is_contiguous(dst)) {
        // strided gather of one float tensor: the common case (contiguous() of a transpose)
        float *o = dst->data;
        const float *s = src->data;
        int nd = src->ndim;
        int64_t idx[TENSOR_MAX_DIMS] = {0}, off = 0;
        for (int64_t i = 0; i < n; i++) {
            o[i] = s[off];
            for (int d = nd - 1; d >= 0; d--) {
                off += src->strides[d];
                if (++idx[d] < src->shape[d]) break;
                off -= src->strides[d] * src->shape[d];
                idx[d] = 0;
            }
        }
        return 0;
    }
    for (int64_t i = 0; i < n; i++) tensor_set_flat(dst, i, tensor_get_flat(src, i));
    return 0;
}

// ---- views ----

Tensor *tensor_view(Ctx *c, const Tensor *t) {
    Tensor *v = ctx_alloc(c, sizeof *v);
    *v = *t;
    v->id = 0;      // its writes do not count in its base's version: never a cache key
    v->int8 = NULL; // nor an int8 copy (its shape may differ)
    v->ctx = c;
    v->gen = c->gen;
    v->grad = NULL;
    v->node = NULL;
    v->requires_grad = false;
    v->name = NULL;
    return v;
}

Tensor *tensor_reshape_view(Ctx *c, const Tensor *t, int ndim, const int64_t *shape) {
    char b1[SHAPE_STR_BUF], b2[SHAPE_STR_BUF];
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim > 0 && !shape)) {
        ctx_fail(c, "reshape: %d dimensions%s", ndim, shape ? "" : " and a NULL shape");
        return NULL;
    }
    int64_t sh[TENSOR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1 && infer < 0)
            infer = i;
        else if (sh[i] < 0) {
            ctx_fail(c, "reshape: bad size %lld", (long long)sh[i]);
            return NULL;
        } else if (__builtin_mul_overflow(known, sh[i], &known)) {
            ctx_fail(c, "reshape: the sizes overflow");
            return NULL;
        }
    }
    int64_t n = tensor_numel(t);
    if (infer >= 0) sh[infer] = known ? n / known : 0;
    int64_t total = 1;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(total, sh[i], &total)) total = -1;
    Tensor tmp = {.ndim = ndim};
    memcpy(tmp.shape, sh, sizeof(int64_t) * (size_t)ndim);
    if (total != n) {
        ctx_fail(c, "reshape: cannot view %s as %s", shape_str(t, b1, sizeof b1), shape_str(&tmp, b2, sizeof b2));
        return NULL;
    }
    if (!tensor_is_contiguous(t)) {
        ctx_fail(c, "reshape: view of non-contiguous %s (call contiguous first)", shape_str(t, b1, sizeof b1));
        return NULL;
    }
    Tensor *v = tensor_view(c, t);
    v->ndim = ndim;
    memcpy(v->shape, sh, sizeof(int64_t) * (size_t)ndim);
    set_contiguous_strides(v);
    return v;
}

Tensor *tensor_permute_view(Ctx *c, const Tensor *t, const int *perm) {
    int seen[TENSOR_MAX_DIMS] = {0};
    if (!perm) {
        ctx_fail(c, "permute: the permutation is NULL");
        return NULL;
    }
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= t->ndim || seen[p]++) {
            ctx_fail(c, "permute: invalid permutation for %d dimensions", t->ndim);
            return NULL;
        }
    }
    Tensor *v = tensor_view(c, t);
    for (int i = 0; i < t->ndim; i++) {
        v->shape[i] = t->shape[perm[i]];
        v->strides[i] = t->strides[perm[i]];
    }
    return v;
}

Tensor *tensor_transpose_view(Ctx *c, const Tensor *t, int d0, int d1) {
    int a = tensor_dim(t, d0), b = tensor_dim(t, d1);
    if (a < 0 || b < 0) {
        ctx_fail(c, "transpose: dimensions %d, %d out of range for %d-d tensor", d0, d1, t->ndim);
        return NULL;
    }
    int perm[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return tensor_permute_view(c, t, perm);
}

Tensor *tensor_narrow_view(Ctx *c, const Tensor *t, int dim, int64_t start, int64_t len) {
    char b1[SHAPE_STR_BUF];
    int d = tensor_dim(t, dim);
    if (d < 0 || start < 0 || len < 0 || start > t->shape[d] || len > t->shape[d] - start) { // no start + len: it may overflow
        ctx_fail(c, "narrow: dim %d start %lld length %lld out of range for %s", dim, (long long)start, (long long)len,
                 shape_str(t, b1, sizeof b1));
        return NULL;
    }
    Tensor *v = tensor_view(c, t);
    v->data = (char *)t->data + (size_t)(start * t->strides[d]) * dtype_size(t->dtype);
    v->shape[d] = len;
    return v;
}

Tensor *tensor_expand_view(Ctx *c, const Tensor *t, int ndim, const int64_t *shape) {
    char b1[SHAPE_STR_BUF];
    if (ndim < t->ndim || ndim > TENSOR_MAX_DIMS || !shape) {
        ctx_fail(c, "expand: cannot expand %s to %d dimensions%s", shape_str(t, b1, sizeof b1), ndim, shape ? "" : " (NULL shape)");
        return NULL;
    }
    int64_t numel = 1; // the view's element count must fit in int64 and in memory's address range
    for (int i = 0; i < ndim; i++) {
        int j = i - (ndim - t->ndim);
        int64_t want = shape[i] == -1 && j >= 0 ? t->shape[j] : shape[i];
        size_t bytes;
        if (want < 0 || __builtin_mul_overflow(numel, want, &numel) || !bytes_of(numel, t->dtype, &bytes)) {
            ctx_fail(c, "expand: %s to size %lld in dimension %d: too many elements", shape_str(t, b1, sizeof b1), (long long)shape[i], i);
            return NULL;
        }
    }
    Tensor *v = tensor_view(c, t);
    v->ndim = ndim;
    int off = ndim - t->ndim;
    for (int i = ndim - 1; i >= 0; i--) {
        int j = i - off;
        int64_t src = j >= 0 ? t->shape[j] : 1, want = shape[i];
        if (want == -1) {
            if (j < 0) {
                ctx_fail(c, "expand: -1 for a new dimension %d", i);
                return NULL;
            }
            want = src;
        }
        if (src == want) {
            v->shape[i] = src;
            v->strides[i] = j >= 0 ? t->strides[j] : 0;
        } else if (src == 1) {
            v->shape[i] = want;
            v->strides[i] = 0;
        } else {
            ctx_fail(c, "expand: size %lld of %s cannot become %lld in dimension %d", (long long)src, shape_str(t, b1, sizeof b1),
                     (long long)want, i);
            return NULL;
        }
    }
    return v;
}

Tensor *tensor_contiguous(Ctx *c, const Tensor *t) {
    if (tensor_is_contiguous(t)) return (Tensor *)t;
    return tensor_clone(c, t);
}

int broadcast_shapes(const Tensor *a, const Tensor *b, int64_t *out) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa == sb || sb == 1)
            out[i] = sa;
        else if (sa == 1)
            out[i] = sb;
        else
            return -1;
    }
    return nd;
}

bool tensor_all_finite(const Tensor *t) {
    if (!dtype_is_float(t->dtype)) return true;
    int64_t n = tensor_numel(t);
    if (tensor_is_contiguous(t) && t->dtype == DT_F32) {
        const float *p = t->data;
        bool ok = true;
        for (int64_t i = 0; i < n; i++) ok &= isfinite(p[i]) != 0;
        return ok;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(tensor_get_flat(t, i))) return false;
    return true;
}

// ---- giving back a stretch of work's memory, keeping its result ----

Tensor *ctx_release_keep(Ctx *c, CtxMark m, Tensor *t) {
    if (!c || m.gen != c->gen || c->nrecorded != m.nrecorded) return ctx_rewind(c, m), NULL; // refused: its message
    if (!ctx_ok(c)) return NULL;
    // t's elements, contiguous, aside while the memory after the mark is given back
    size_t bytes = t ? (size_t)tensor_numel(t) * dtype_size(t->dtype) : 0;
    bool move = t && (ctx_after_mark(c, m, t) || ctx_after_mark(c, m, t->data));
    void *aside = NULL;
    int ndim = t ? t->ndim : 0;
    int64_t shape[TENSOR_MAX_DIMS];
    DType dt = t ? t->dtype : DT_F32;
    const char *name = t ? t->name : NULL;
    if (move) {
        Tensor *tc = tensor_contiguous(c, t);
        if (!tc || !(aside = malloc(bytes ? bytes : 1))) {
            ctx_fail(c, "ctx_release_keep: out of memory for %zu bytes", bytes);
            return NULL;
        }
        memcpy(aside, tc->data, bytes);
        memcpy(shape, t->shape, sizeof(int64_t) * (size_t)ndim);
    }
    ctx_rewind(c, m);
    if (!move) return t;
    Tensor *k = tensor_new(c, dt, ndim, shape);
    if (k) memcpy(k->data, aside, bytes), k->name = name;
    free(aside);
    return k;
}
