// ops_matmul.c: matmul (2-d, batched, vectors, transposed views without copies), linear, patch
// convolution (im2col + GEMM).
#include "extend.h"

#include "../kernels/kernels_ext.h"
#include "../kernels/qgemm.h"
#include "../kernels/sgemm.h"

#include <string.h>

// Is t's [.., R, Cc] a plain (trans = false) or transposed (trans = true) matrix stack with
// contiguous batches? Size-1 dimensions match any stride.
static bool mat_layout(const Tensor *t, bool *trans) {
    int nd = t->ndim;
    int64_t R = t->shape[nd - 2], Cc = t->shape[nd - 1], sr = t->strides[nd - 2], sc = t->strides[nd - 1];
    bool plain = (Cc == 1 || sc == 1) && (R == 1 || sr == Cc);
    bool tr = (R == 1 || sr == 1) && (Cc == 1 || sc == R);
    if (!plain && !tr) return false;
    int64_t want = R * Cc;
    for (int d = nd - 3; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != want) return false;
        want *= t->shape[d];
    }
    *trans = !plain;
    return true;
}

// what matmul's backward needs: the operands as multiplied (contiguous or transposed views) and
// the product's layout: Bn products of [M, Kd] by [Kd, N], operand batch strides sA, sB (0: broadcast)
typedef struct {
    Tensor *a, *b;
    int64_t Bn, sA, sB, M, Kd, N;
    bool ta, tb;
} MatmulSaved;

static void matmul_bw(AgNode *n) {
    const MatmulSaved *s = n->aux;
    Tensor *ga = ag_grad_buf(n->in[0]), *gb = ag_grad_buf(n->in[1]);
    AG_DISPATCH(s->a->dtype, matmul_backward, ga ? ga->data : NULL, gb ? gb->data : NULL, n->out->grad->data, s->a->data, s->b->data, s->Bn,
                s->sA, s->sB, s->M, s->Kd, s->N, s->ta, s->tb);
}

Tensor *ag_matmul(Ctx *c, Tensor *a0, Tensor *b0) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, "matmul", "a", a0) || !ag_arg(c, "matmul", "b", b0) || !ag_check_float(c, "matmul", a0, b0)) return NULL;
    if (a0->ndim == 0 || b0->ndim == 0) {
        ctx_fail(c, "matmul: 0-d operand (%s and %s)", shape_str(a0, s1, sizeof s1), shape_str(b0, s2, sizeof s2));
        return NULL;
    }
    // batch dimensions that differ broadcast (NumPy's rule): both operands expanded to them first
    if (a0->ndim >= 3 && b0->ndim >= 3 &&
        (a0->ndim != b0->ndim || memcmp(a0->shape, b0->shape, sizeof(int64_t) * (size_t)(a0->ndim - 2)))) {
        Tensor ba = {.ndim = a0->ndim - 2}, bb = {.ndim = b0->ndim - 2};
        memcpy(ba.shape, a0->shape, sizeof(int64_t) * (size_t)ba.ndim), memcpy(bb.shape, b0->shape, sizeof(int64_t) * (size_t)bb.ndim);
        int64_t bs[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
        int nb = broadcast_shapes(&ba, &bb, bs);
        if (nb < 0 || nb + 2 > TENSOR_MAX_DIMS) {
            ctx_fail(c, "matmul: batch dimensions of %s and %s do not broadcast", shape_str(a0, s1, sizeof s1),
                     shape_str(b0, s2, sizeof s2));
            return NULL;
        }
        memcpy(sa, bs, sizeof(int64_t) * (size_t)nb), memcpy(sb, bs, sizeof(int64_t) * (size_t)nb);
        sa[nb] = a0->shape[a0->ndim - 2], sa[nb + 1] = a0->shape[a0->ndim - 1];
        sb[nb] = b0->shape[b0->ndim - 2], sb[nb + 1] = b0->shape[b0->ndim - 1];
        return ag_matmul(c, ag_contiguous(c, ag_expand(c, a0, nb + 2, sa)), ag_contiguous(c, ag_expand(c, b0, nb + 2, sb)));
    }
    // vectors: [K] as [1, K] on the left, [K, 1] on the right; the extra dim is dropped after
    Tensor *a = a0, *b = b0;
    if (a->ndim == 1) a = tensor_reshape_view(c, tensor_contiguous(c, a0), 2, (int64_t[]){1, a0->shape[0]});
    if (b->ndim == 1) b = tensor_reshape_view(c, tensor_contiguous(c, b0), 2, (int64_t[]){b0->shape[0], 1});
    int64_t M = a->shape[a->ndim - 2], Kd = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    int64_t Ba = 1, Bb = 1;
    for (int d = 0; d < a->ndim - 2; d++) Ba *= a->shape[d];
    for (int d = 0; d < b->ndim - 2; d++) Bb *= b->shape[d];
    bool same_batch = a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)(a->ndim - 2));
    if (b->shape[b->ndim - 2] != Kd || !(same_batch || a->ndim == 2 || b->ndim == 2)) {
        ctx_fail(c, "matmul: shapes %s and %s do not multiply", shape_str(a0, s1, sizeof s1), shape_str(b0, s2, sizeof s2));
        return NULL;
    }
    bool ta = false, tb = false;
    if (!mat_layout(a, &ta)) a = tensor_clone(c, a);
    if (!mat_layout(b, &tb)) b = tensor_clone(c, b);
    int64_t Bn = Ba > Bb ? Ba : Bb, sA = a->ndim == 2 && Bn > 1 ? 0 : M * Kd, sB = b->ndim == 2 && Bn > 1 ? 0 : Kd * N;
    // output shape: batch dims of the batched operand, then M, N; vector dims dropped
    const Tensor *bt = a->ndim >= b->ndim ? a : b;
    int64_t shape[TENSOR_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < bt->ndim - 2; d++) shape[nd++] = bt->shape[d];
    if (a0->ndim != 1) shape[nd++] = M;
    if (b0->ndim != 1) shape[nd++] = N;
    Tensor *y = tensor_new(c, a->dtype, nd, shape);
    AG_DISPATCH(a->dtype, matmul_forward, y->data, a->data, b->data, Bn, sA, sB, M, Kd, N, ta, tb);
    AgNode *n = ag_record(c, "matmul", y, 2, (Tensor *[]){a0, b0}, matmul_bw);
    MatmulSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (MatmulSaved){a, b, Bn, sA, sB, M, Kd, N, ta, tb};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}

// ---- linear: y = x W^T + b ----

// what linear's backward needs: the contiguous input [N, IC] and weight [OC, IC]
typedef struct {
    Tensor *x, *w;
    int64_t N, IC, OC;
} LinearSaved;

static void linear_bw(AgNode *n) {
    const LinearSaved *s = n->aux;
    Tensor *gx = ag_grad_buf(n->in[0]), *gw = ag_grad_buf(n->in[1]), *gb = ag_grad_buf(n->in[2]);
    const void *wp = gx ? ag_weight_packed(n->in[1], false) : NULL; // a frozen weight's packing, kept
    if (gx) AG_DISPATCH(s->x->dtype, linear_backward_dx, wp, gx->data, 1.0, n->out->grad->data, s->w->data, s->N, s->IC, s->OC);
    ag_weight_release(wp);
    AG_DISPATCH(s->x->dtype, linear_backward, NULL, gw ? gw->data : NULL, gb ? gb->data : NULL, n->out->grad->data, s->x->data, s->w->data,
                s->N, s->IC, s->OC);
}

const void *ag_weight_packed(const Tensor *w, bool transposed) {
    if (!w || w->requires_grad || !w->id || w->dtype != DT_F32 || w->ndim != 2 || !tensor_is_contiguous(w)) return NULL;
    int64_t OC = w->shape[0], IC = w->shape[1];
    return transposed ? sgemm_kept(w->id, w->version, true, OC, IC, w->data, IC)
                      : sgemm_kept(w->id, w->version, false, IC, OC, w->data, IC);
}

void ag_weight_release(const void *wp) { sgemm_kept_release(wp); }

struct QWeight *ag_weight_int8(Ctx *c, int nin, Tensor *const *in, Tensor *w) {
    if (!w || !w->int8 || !in[0] || in[0]->dtype != DT_F32 || ag_will_record(c, nin, in)) return NULL;
    return tensor_int8_current(w);
}

Tensor *ag_qlinear(Ctx *c, const char *op, const struct QWeight *q, Tensor *y, const Tensor *x, const Tensor *bias, const Tensor *res) {
    if (!y || !x) return NULL; // the context says why
    if (qlinear(q, y->data, x->data, bias ? bias->data : NULL, res ? res->data : NULL, tensor_numel(x) / q->IC)) return y;
    ctx_fail(c, "%s: out of memory for the int8 input rows", op);
    return NULL;
}

Tensor *ag_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF], s3[SHAPE_STR_BUF] = "none";
    if (!ag_arg(c, "linear", "x", x) || !ag_arg(c, "linear", "w", w) || !ag_check_float(c, "linear", x, w) ||
        (b && !ag_check_float(c, "linear", x, b)))
        return NULL;
    int64_t IC = x->ndim ? x->shape[x->ndim - 1] : 0, OC = w->ndim == 2 ? w->shape[0] : -1;
    if (x->ndim == 0 || w->ndim != 2 || w->shape[1] != IC || (b && (b->ndim != 1 || b->shape[0] != OC))) {
        if (b) shape_str(b, s3, sizeof s3);
        ctx_fail(c, "linear: input %s, weight %s and bias %s do not fit", shape_str(x, s1, sizeof s1), shape_str(w, s2, sizeof s2), s3);
        return NULL;
    }
    int64_t N = IC ? tensor_numel(x) / IC : 0;
    Tensor *xc = tensor_contiguous(c, x), *wc = tensor_contiguous(c, w), *bc = b ? tensor_contiguous(c, b) : NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = OC;
    Tensor *y = tensor_new(c, x->dtype, x->ndim, shape);
    QWeight *q = ag_weight_int8(c, b ? 3 : 2, (Tensor *[]){x, w, b}, w);
    if (q) return ag_qlinear(c, "linear", q, y, xc, bc, NULL); // nothing is recorded: the int8 product, and done
    const void *wp = ag_weight_packed(w, true);
    AG_DISPATCH(x->dtype, linear_into, wp, y->data, xc->data, wc->data, bc ? bc->data : NULL, NULL, N, IC, OC);
    ag_weight_release(wp);
    AgNode *n = ag_record(c, "linear", y, b ? 3 : 2, (Tensor *[]){x, w, b}, linear_bw);
    LinearSaved *s = n ? ctx_alloc(c, sizeof *s) : NULL;
    if (s) *s = (LinearSaved){xc, wc, N, IC, OC};
    if (n && !(n->aux = s)) return NULL; // no memory for the saved state (the context says so)
    return y;
}
