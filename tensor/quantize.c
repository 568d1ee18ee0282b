// quantize.c: a tensor's int8 copy for inference products (tensor.h; the arithmetic is qgemm.c's).
#include "../kernels/qgemm.h"
#include "tensor.h"

bool tensor_quantize_int8(Tensor *w) {
    char s[SHAPE_STR_BUF];
    if (!w) return false;
    int64_t in = 1;
    for (int d = 1; d < w->ndim; d++) in *= w->shape[d];
    if (w->dtype != DT_F32 || w->ndim < 2 || !w->id || !tensor_is_contiguous(w) || in < 1 || in > QGEMM_MAX_IC) {
        ctx_fail(w->ctx, "quantize_int8: weight %s %s is not a float32 tensor [out, ...] of its own with 1 to %d elements per output",
                 w->name ? w->name : "", shape_str(w, s, sizeof s), QGEMM_MAX_IC);
        return false;
    }
    if (w->int8 && w->int8->OC == w->shape[0] && w->int8->IC == in) return tensor_int8_current(w) != NULL;
    QWeight *q = ctx_alloc(w->ctx, sizeof *q);
    void *mem = q ? ctx_alloc_uninit(w->ctx, qweight_bytes(w->shape[0], in)) : NULL;
    if (!mem) return false; // the context says it is out of memory
    qweight_init(q, mem, w->data, w->shape[0], in, w->version);
    w->int8 = q;
    return true;
}

struct QWeight *tensor_int8_current(Tensor *w) {
    if (w && w->int8 && w->int8->version != w->version) qweight_update(w->int8, w->data, w->version);
    return w ? w->int8 : NULL;
}

const char *tensor_int8_kernel(void) { return qgemm_isa(); }
