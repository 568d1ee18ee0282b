// ops_recurrent.c: GRU and LSTM over a whole sequence as fused ops, one direction of one layer each
// (nn_gru / nn_lstm stack them into layers and directions): the forward kernel runs every step, the
// backward walks them back (tensor/kernels.inc).
#include "extend.h"

#include <stdio.h>
#include <string.h>

// what the backward needs
typedef struct {
    Tensor *x, *h0, *c0, *w_ih, *w_hh; // contiguous; h0, c0 may be NULL
    Tensor *y, *cs, *gates;            // the states after each step (LSTM: and the cells'), the gates
    int64_t T, B, I, H;
    bool reverse, lstm;
    int slot[7]; // x, h0, c0, w_ih, w_hh, b_ih, b_hh: their place among the node's inputs, -1 absent
} RnnSaved;

enum { IX, IH0, IC0, IWIH, IWHH, IBIH, IBHH };

static Tensor *grad_of(AgNode *n, const RnnSaved *s, int which) { return s->slot[which] < 0 ? NULL : ag_grad_buf(n->in[s->slot[which]]); }

static void *data_of(Tensor *t) { return t ? t->data : NULL; }

static void rnn_bw(AgNode *n) {
    const RnnSaved *s = n->aux;
    int64_t T = s->T, B = s->B, H = s->H, G = s->lstm ? 4 : 3;
    Ctx *c = n->out->ctx;
    Tensor *gx = grad_of(n, s, IX), *gh0 = grad_of(n, s, IH0), *gc0 = grad_of(n, s, IC0), *gwi = grad_of(n, s, IWIH),
           *gwh = grad_of(n, s, IWHH), *gbi = grad_of(n, s, IBIH), *gbh = grad_of(n, s, IBHH);
    DType dt = s->x->dtype;
    int64_t tbg = T * B * G * H, bh = B * H;
    Tensor *dgi = tensor_new(c, dt, 1, &tbg), *dgh = tensor_new(c, dt, 1, &tbg), *dh = tensor_new(c, dt, 1, &bh),
           *dc = tensor_new(c, dt, 1, &bh);
    if (!dgi || !dgh || !dh || !dc) return; // the context's error says out of memory
    Tensor *dout = tensor_contiguous(c, n->out->grad);
    if (!s->lstm)
        AG_DISPATCH(dt, gru_backward, data_of(gx), data_of(gh0), data_of(gwi), data_of(gwh), data_of(gbi), data_of(gbh), dout->data,
                    s->y->data, s->gates->data, s->x->data, data_of(s->h0), s->w_ih->data, s->w_hh->data, dgi->data, dgh->data, dh->data, T,
                    B, s->I, H, s->reverse);
    else {
        size_t es = dt == DT_F32 ? sizeof(float) : sizeof(double);
        const void *dc_n = (const char *)dout->data + (size_t)(T * B * H) * es; // the last row: the cell state's gradient
        AG_DISPATCH(dt, lstm_backward, data_of(gx), data_of(gh0), data_of(gc0), data_of(gwi), data_of(gwh), data_of(gbi), data_of(gbh),
                    dout->data, dc_n, s->y->data, s->cs->data, s->gates->data, s->x->data, data_of(s->h0), data_of(s->c0), s->w_ih->data,
                    s->w_hh->data, dgi->data, dgh->data, dh->data, dc->data, T, B, s->I, H, s->reverse);
    }
}

static bool rnn_args(Ctx *c, const char *op, int G, Tensor *const *t) {
    static const char *const names[7] = {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"};
    char s1[SHAPE_STR_BUF], s2[SHAPE_STR_BUF];
    if (!ag_arg(c, op, "x", t[IX]) || !ag_arg(c, op, "w_ih", t[IWIH]) || !ag_arg(c, op, "w_hh", t[IWHH]) ||
        !ag_check_float(c, op, t[IX], NULL))
        return false;
    Tensor *x = t[IX], *wi = t[IWIH];
    if (x->ndim != 3 || wi->ndim != 2 || wi->shape[0] % G || wi->shape[1] != x->shape[2]) {
        ctx_fail(c, "%s: x must be [T, B, I] and w_ih [%d H, I], got %s and %s", op, G, shape_str(x, s1, sizeof s1),
                 shape_str(wi, s2, sizeof s2));
        return false;
    }
    int64_t B = x->shape[1], H = wi->shape[0] / G;
    const int64_t want[7][2] = {{0, 0}, {B, H}, {B, H}, {0, 0}, {G * H, H}, {G * H, 0}, {G * H, 0}};
    for (int k = 1; k < 7; k++) {
        const Tensor *v = t[k];
        if (!v || k == IWIH) continue;
        bool ok = v->dtype == x->dtype && v->ndim == (want[k][1] ? 2 : 1) && v->shape[0] == want[k][0] &&
                  (!want[k][1] || v->shape[1] == want[k][1]);
        if (!ok) {
            char w[64];
            if (want[k][1])
                snprintf(w, sizeof w, "[%lld, %lld]", (long long)want[k][0], (long long)want[k][1]);
            else
                snprintf(w, sizeof w, "[%lld]", (long long)want[k][0]);
            ctx_fail(c, "%s: %s must be %s %s, got %s %s", op, names[k], dtype_name(x->dtype), w, dtype_name(v->dtype),
                     shape_str(v, s1, sizeof s1));
            return false;
        }
    }
    return true;
}

static Tensor *rnn(Ctx *c, const char *op, bool lstm, Tensor *const *t, bool reverse) {
    int G = lstm ? 4 : 3;
    if (!rnn_args(c, op, G, t)) return NULL;
    Tensor *x = t[IX];
    int64_t T = x->shape[0], B = x->shape[1], I = x->shape[2], H = t[IWIH]->shape[0] / G;
    if (T < 1) {
        ctx_fail(c, "%s: an empty sequence (T = 0)", op);
        return NULL;
    }
    RnnSaved *s = ctx_alloc(c, sizeof *s);
    if (!s) return NULL;
    *s = (RnnSaved){.T = T, .B = B, .I = I, .H = H, .reverse = reverse, .lstm = lstm};
    s->x = tensor_contiguous(c, x);
    s->h0 = t[IH0] ? tensor_contiguous(c, t[IH0]) : NULL;
    s->c0 = lstm && t[IC0] ? tensor_contiguous(c, t[IC0]) : NULL;
    s->w_ih = tensor_contiguous(c, t[IWIH]), s->w_hh = tensor_contiguous(c, t[IWHH]);
    Tensor *bi = t[IBIH] ? tensor_contiguous(c, t[IBIH]) : NULL, *bh = t[IBHH] ? tensor_contiguous(c, t[IBHH]) : NULL;
    // LSTM: one more row after the states, the last cell state (c_n)
    Tensor *out = tensor_new(c, x->dtype, 3, (int64_t[]){T + lstm, B, H});
    int64_t tbg = T * B * G * H, bg = B * G * H;
    s->gates = tensor_new(c, x->dtype, 3, (int64_t[]){T, B, 4 * H});
    s->cs = lstm ? tensor_new(c, x->dtype, 3, (int64_t[]){T, B, H}) : NULL;
    Tensor *gi = tensor_new(c, x->dtype, 1, &tbg), *gh = tensor_new(c, x->dtype, 1, &bg);
    if (!out || !s->gates || (lstm && !s->cs) || !gi || !gh || !s->x || !s->w_ih || !s->w_hh) return NULL;
    s->y = tensor_narrow_view(c, out, 0, 0, T);
    if (!s->y) return NULL;
    if (!lstm)
        AG_DISPATCH(x->dtype, gru_forward, out->data, s->gates->data, gi->data, gh->data, s->x->data, data_of(s->h0), s->w_ih->data,
                    s->w_hh->data, data_of(bi), data_of(bh), T, B, I, H, reverse);
    else {
        AG_DISPATCH(x->dtype, lstm_forward, out->data, s->cs->data, s->gates->data, gi->data, gh->data, s->x->data, data_of(s->h0),
                    data_of(s->c0), s->w_ih->data, s->w_hh->data, data_of(bi), data_of(bh), T, B, I, H, reverse);
        size_t es = x->dtype == DT_F32 ? sizeof(float) : sizeof(double);
        int64_t last = reverse ? 0 : T - 1; // the step processed last
        memcpy((char *)out->data + (size_t)(T * B * H) * es, (char *)s->cs->data + (size_t)(last * B * H) * es, (size_t)(B * H) * es);
    }
    Tensor *in[7];
    int nin = 0;
    for (int k = 0; k < 7; k++) {
        s->slot[k] = -1;
        if (t[k] && (lstm || k != IC0)) s->slot[k] = nin, in[nin++] = t[k];
    }
    AgNode *n = ag_record(c, op, out, nin, in, rnn_bw);
    if (n) n->aux = s;
    return out;
}

Tensor *ag_gru(Ctx *c, Tensor *x, Tensor *h0, Tensor *w_ih, Tensor *w_hh, Tensor *b_ih, Tensor *b_hh, bool reverse) {
    return rnn(c, "gru", false, (Tensor *[]){x, h0, NULL, w_ih, w_hh, b_ih, b_hh}, reverse);
}

Tensor *ag_lstm(Ctx *c, Tensor *x, Tensor *h0, Tensor *c0, Tensor *w_ih, Tensor *w_hh, Tensor *b_ih, Tensor *b_hh, bool reverse) {
    return rnn(c, "lstm", true, (Tensor *[]){x, h0, c0, w_ih, w_hh, b_ih, b_hh}, reverse);
}
