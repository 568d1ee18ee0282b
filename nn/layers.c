// layers.c: the layers' constructors, with PyTorch's default initialisation, and their forwards.
#include "nn.h"

#include <string.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

// a new tensor of the set, registered as PREFIX.SUFFIX
static Tensor *param(NnParams *ps, const char *name, const char *suffix, bool buffer, DType dt, int ndim, const int64_t *shape) {
    char full[512];
    snprintf(full, sizeof full, "%s%s%s", name, name[0] ? "." : "", suffix);
    if (!ps->ctx || !ps->rng) { // no context to hold a message: said here, and the layer's tensors stay NULL
        fprintf(stderr, "nn: cannot create '%s': the parameter set has no context (call nn_params_init first)\n", full);
        return NULL;
    }
    Tensor *t = tensor_zeros(ps->ctx, dt, ndim, shape);
    if (!t) return NULL;
    if (buffer) {
        if (nn_params_add_buffer(ps, full, t) != 0) return NULL;
    } else {
        if (nn_params_add(ps, full, t) != 0) return NULL;
        ag_set_requires_grad(t, true);
    }
    return t;
}

static Tensor *uniform(NnParams *ps, const char *name, const char *suffix, int ndim, const int64_t *shape, double bound) {
    Tensor *t = param(ps, name, suffix, false, DT_F32, ndim, shape);
    if (t) rng_fill_uniform(ps->rng, t, -bound, bound);
    return t;
}

static Tensor *constant(NnParams *ps, const char *name, const char *suffix, int64_t n, double v) {
    Tensor *t = param(ps, name, suffix, false, DT_F32, 1, (int64_t[]){n});
    if (t) tensor_fill(t, v);
    return t;
}

// ---- Linear, Conv2d, Embedding ----

NnLinear nn_linear_new(NnParams *ps, const char *name, int64_t in, int64_t out, bool bias) {
    double bound = 1.0 / sqrt((double)in); // kaiming_uniform(a = sqrt(5)): gain sqrt(2 / 6) x sqrt(3 / in)
    NnLinear l = {uniform(ps, name, "weight", 2, (int64_t[]){out, in}, bound), NULL};
    if (bias) l.bias = uniform(ps, name, "bias", 1, (int64_t[]){out}, bound);
    return l;
}

// A failure inside a layer's forward names the layer before the op ("layer1.0.conv2: conv2d: ..."):
// the layer's name is its tensor's registered name less the last part (".weight"); an error that
// already names a layer (a layer inside another) is left as it is.
static Tensor *named(Ctx *c, bool was_ok, const Tensor *w, Tensor *y) {
    if (y || !was_ok || ctx_ok(c) || !w || !w->name) return y;
    const char *dot = strrchr(w->name, '.');
    int L = dot ? (int)(dot - w->name) : (int)strlen(w->name);
    if (L == 0 || (!strncmp(c->err, w->name, (size_t)L) && c->err[L] == ':')) return y;
    char msg[2 * sizeof c->err];
    snprintf(msg, sizeof msg, "%.*s: %s", L, w->name, c->err);
    memcpy(c->err, msg, sizeof c->err - 1); // cut to the context's message size
    c->err[sizeof c->err - 1] = 0;
    return y;
}

Tensor *nn_linear(Ctx *c, const NnLinear *l, Tensor *x) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_linear(c, x, l->weight, l->bias));
}

bool nn_linear_quantize(NnLinear *l) { return l && tensor_quantize_int8(l->weight); }

NnConv2d nn_conv2d_make(NnParams *ps, const char *name, NnConv2dOptions o) {
    if (o.in > INT32_MAX || o.out > INT32_MAX) { // nn_conv2d_new's ints
        ctx_fail(ps->ctx, "conv2d '%s': %lld in and %lld out channels are too many", name, (long long)o.in, (long long)o.out);
        return (NnConv2d){0};
    }
    return nn_conv2d_new(ps, name, (int)o.in, (int)o.out, o.kernel, o.stride ? o.stride : 1, o.padding, o.dilation ? o.dilation : 1,
                         o.groups ? o.groups : 1, !o.no_bias);
}

NnConv2d nn_conv2d_new(NnParams *ps, const char *name, int in, int out, int kernel, int stride, int padding, int dilation, int groups,
                       bool bias) {
    NnConv2d l = {NULL, NULL, {stride, stride}, {padding, padding}, {dilation, dilation}, groups};
    if (groups < 1 || in % groups || out % groups || kernel < 1) {
        ctx_fail(ps->ctx, "conv2d '%s': %d in and %d out channels in %d groups with kernel %d do not fit", name, in, out, groups, kernel);
        return l;
    }
    double bound = 1.0 / sqrt((double)(in / groups) * kernel * kernel);
    l.weight = uniform(ps, name, "weight", 4, (int64_t[]){out, in / groups, kernel, kernel}, bound);
    if (bias) l.bias = uniform(ps, name, "bias", 1, (int64_t[]){out}, bound);
    return l;
}

Tensor *nn_conv2d(Ctx *c, const NnConv2d *l, Tensor *x) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_conv2d(c, x, l->weight, l->bias, l->stride, l->padding, l->dilation, l->groups));
}

NnEmbedding nn_embedding_new(NnParams *ps, const char *name, int64_t num, int64_t dim) {
    NnEmbedding l = {param(ps, name, "weight", false, DT_F32, 2, (int64_t[]){num, dim})};
    if (l.weight) rng_fill_normal(ps->rng, l.weight, 0.0, 1.0);
    return l;
}

Tensor *nn_embedding(Ctx *c, const NnEmbedding *l, Tensor *ids) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_embedding(c, l->weight, ids));
}

// ---- normalisations ----

NnLayerNorm nn_layer_norm_new(NnParams *ps, const char *name, int64_t dim, double eps) {
    return (NnLayerNorm){constant(ps, name, "weight", dim, 1.0), constant(ps, name, "bias", dim, 0.0), eps};
}

Tensor *nn_layer_norm(Ctx *c, const NnLayerNorm *l, Tensor *x) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_layer_norm(c, x, 1, l->weight, l->bias, l->eps));
}

NnRMSNorm nn_rms_norm_new(NnParams *ps, const char *name, int64_t dim, double eps) {
    return (NnRMSNorm){constant(ps, name, "weight", dim, 1.0), eps > 0 ? eps : FLT_EPSILON};
}

Tensor *nn_rms_norm(Ctx *c, const NnRMSNorm *l, Tensor *x) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_rms_norm(c, x, l->weight, l->eps));
}

NnGroupNorm nn_group_norm_new(NnParams *ps, const char *name, int groups, int64_t channels, double eps) {
    return (NnGroupNorm){constant(ps, name, "weight", channels, 1.0), constant(ps, name, "bias", channels, 0.0), groups, eps};
}

Tensor *nn_group_norm(Ctx *c, const NnGroupNorm *l, Tensor *x) {
    bool ok = ctx_ok(c);
    return named(c, ok, l->weight, ag_group_norm(c, x, l->groups, l->weight, l->bias, l->eps));
}

NnBatchNorm nn_batch_norm_new(NnParams *ps, const char *name, int64_t channels, double eps, double momentum) {
    NnBatchNorm l = {
        constant(ps, name, "weight", channels, 1.0), constant(ps, name, "bias", channels, 0.0), NULL, NULL, NULL, eps, momentum, ps};
    l.running_mean = param(ps, name, "running_mean", true, DT_F32, 1, (int64_t[]){channels});
    l.running_var = param(ps, name, "running_var", true, DT_F32, 1, (int64_t[]){channels});
    if (l.running_var) tensor_fill(l.running_var, 1.0);
    l.num_batches_tracked = param(ps, name, "num_batches_tracked", true, DT_I64, 0, NULL);
    return l;
}

Tensor *nn_batch_norm(Ctx *c, const NnBatchNorm *l, Tensor *x) {
    bool tr = l->set && l->set->training, ok = ctx_ok(c);
    Tensor *y = named(c, ok, l->weight ? l->weight : l->running_mean,
                      ag_batch_norm(c, x, l->weight, l->bias, l->running_mean, l->running_var, tr, l->momentum, l->eps));
    if (y && tr && l->num_batches_tracked) ((int64_t *)l->num_batches_tracked->data)[0]++;
    return y;
}

// ---- dropout ----

NnDropout nn_dropout_new(NnParams *ps, double p) {
    if (!(p >= 0 && p < 1)) ctx_fail(ps->ctx, "dropout: p %g is outside [0, 1)", p);
    return (NnDropout){p, ps};
}

Tensor *nn_dropout(Ctx *c, const NnDropout *l, Tensor *x) {
    bool tr = l->set && l->set->training && l->p > 0;
    return ag_dropout(c, x, l->p, tr ? l->set->rng : NULL, tr);
}

// ---- multi-head self-attention ----

NnMultiheadAttention nn_mha_new(NnParams *ps, const char *name, int64_t E, int num_heads, bool causal) {
    NnMultiheadAttention l = {0};
    if (num_heads < 1 || E % num_heads) {
        ctx_fail(ps->ctx, "multihead attention '%s': embed_dim %lld is not a multiple of %d heads", name, (long long)E, num_heads);
        return l;
    }
    l.in_proj_weight = uniform(ps, name, "in_proj_weight", 2, (int64_t[]){3 * E, E}, sqrt(6.0 / (double)(E + 3 * E))); // xavier_uniform
    l.in_proj_bias = constant(ps, name, "in_proj_bias", 3 * E, 0.0);
    char sub[512];
    snprintf(sub, sizeof sub, "%s%sout_proj", name, name[0] ? "." : "");
    l.out_proj = nn_linear_new(ps, sub, E, E, true);
    if (l.out_proj.bias) tensor_fill(l.out_proj.bias, 0.0);
    l.num_heads = num_heads;
    l.causal = causal;
    return l;
}

Tensor *nn_mha(Ctx *c, const NnMultiheadAttention *l, Tensor *x, Tensor *mask) {
    bool ok = ctx_ok(c);
    Tensor *qkv = ag_linear(c, x, l->in_proj_weight, l->in_proj_bias), *part[3];
    if (!qkv) return named(c, ok, l->in_proj_weight, NULL);
    int64_t E = l->in_proj_weight->shape[1];
    if (ag_split(c, qkv, qkv->ndim - 1, (int64_t[]){E, E, E}, 3, part) != 0) return named(c, ok, l->in_proj_weight, NULL);
    Tensor *a = ag_attention_masked(c, part[0], part[1], part[2], l->num_heads, mask, l->causal, NULL);
    if (!a) return named(c, ok, l->in_proj_weight, NULL);
    return nn_linear(c, &l->out_proj, a);
}

// ---- recurrent layers ----

static NnRnn rnn_new(NnParams *ps, const char *name, NnRnnOptions o, bool lstm) {
    NnRnn l = {.o = o, .lstm = lstm};
    if (!l.o.num_layers) l.o.num_layers = 1;
    int D = o.bidirectional ? 2 : 1, G = lstm ? 4 : 3;
    if (l.o.num_layers < 1 || l.o.num_layers > NN_RNN_MAX_LAYERS || o.input_size < 1 || o.hidden_size < 1) {
        ctx_fail(ps->ctx, "%s: %s needs 1 to %d layers and positive sizes (got %d layers, input %lld, hidden %lld)", name,
                 lstm ? "lstm" : "gru", NN_RNN_MAX_LAYERS, l.o.num_layers, (long long)o.input_size, (long long)o.hidden_size);
        l.o.num_layers = 0; // the forward refuses it
        return l;
    }
    int64_t H = o.hidden_size;
    double bound = 1.0 / sqrt((double)H);
    for (int k = 0; k < l.o.num_layers; k++)
        for (int d = 0; d < D; d++) {
            char sfx[64];
            const char *rev = d ? "_reverse" : "";
            int64_t in = k == 0 ? o.input_size : D * H;
            int i = k * D + d;
            snprintf(sfx, sizeof sfx, "weight_ih_l%d%s", k, rev), l.w_ih[i] = uniform(ps, name, sfx, 2, (int64_t[]){G * H, in}, bound);
            snprintf(sfx, sizeof sfx, "weight_hh_l%d%s", k, rev), l.w_hh[i] = uniform(ps, name, sfx, 2, (int64_t[]){G * H, H}, bound);
            if (o.no_bias) continue;
            snprintf(sfx, sizeof sfx, "bias_ih_l%d%s", k, rev), l.b_ih[i] = uniform(ps, name, sfx, 1, (int64_t[]){G * H}, bound);
            snprintf(sfx, sizeof sfx, "bias_hh_l%d%s", k, rev), l.b_hh[i] = uniform(ps, name, sfx, 1, (int64_t[]){G * H}, bound);
        }
    return l;
}

NnGRU nn_gru_new(NnParams *ps, const char *name, NnRnnOptions o) { return rnn_new(ps, name, o, false); }
NnLSTM nn_lstm_new(NnParams *ps, const char *name, NnRnnOptions o) { return rnn_new(ps, name, o, true); }

// state [layers x directions, B, H] at index i, or NULL
static Tensor *state_at(Ctx *c, Tensor *s, int i) {
    return s ? ag_reshape(c, ag_narrow(c, s, 0, i, 1), 2, (int64_t[]){s->shape[1], s->shape[2]}) : NULL;
}

static Tensor *rnn_forward(Ctx *c, const NnRnn *l, Tensor *x, Tensor *h0, Tensor *c0, Tensor **h_n, Tensor **c_n) {
    const char *op = l->lstm ? "lstm" : "gru";
    bool ok = ctx_ok(c);
    int L = l->o.num_layers, D = l->o.bidirectional ? 2 : 1;
    if (!x) {
        if (ctx_ok(c)) ctx_fail(c, "%s: argument x is NULL", op);
        return named(c, ok, l->w_ih[0], NULL);
    }
    if (L < 1 || x->ndim != 3) {
        ctx_fail(c, "%s: %s", op,
                 L < 1 ? "the layer was not made (see its constructor's message)" : "x must be [T, B, I] or, batch_first, [B, T, I]");
        return named(c, ok, l->w_ih[0], NULL);
    }
    Tensor *h = l->o.batch_first ? ag_contiguous(c, ag_permute(c, x, (int[]){1, 0, 2})) : x; // [T, B, I]
    int64_t B = h ? h->shape[1] : 0, H = l->o.hidden_size;
    const Tensor *states[2] = {h0, c0};
    for (int k = 0; k < 2; k++)
        if (states[k] && (states[k]->ndim != 3 || states[k]->shape[0] != L * D || states[k]->shape[1] != B || states[k]->shape[2] != H)) {
            char s1[SHAPE_STR_BUF];
            ctx_fail(c, "%s: %s must be [%d, %lld, %lld], got %s", op, k ? "c0" : "h0", L * D, (long long)B, (long long)H,
                     shape_str(states[k], s1, sizeof s1));
            return named(c, ok, l->w_ih[0], NULL);
        }
    Tensor *hs[2 * NN_RNN_MAX_LAYERS], *cs[2 * NN_RNN_MAX_LAYERS];
    for (int k = 0; k < L && h; k++) {
        Tensor *outs[2];
        for (int d = 0; d < D; d++) {
            int i = k * D + d;
            int64_t T = h->shape[0];
            if (l->lstm) {
                Tensor *o = ag_lstm(c, h, state_at(c, h0, i), state_at(c, c0, i), l->w_ih[i], l->w_hh[i], l->b_ih[i], l->b_hh[i], d == 1);
                outs[d] = ag_narrow(c, o, 0, 0, T);
                cs[i] = o ? ag_reshape(c, ag_narrow(c, o, 0, T, 1), 2, (int64_t[]){B, H}) : NULL;
            } else
                outs[d] = ag_gru(c, h, state_at(c, h0, i), l->w_ih[i], l->w_hh[i], l->b_ih[i], l->b_hh[i], d == 1);
            // the final state: after the last step forward, after the first one in reverse
            hs[i] = outs[d] ? ag_reshape(c, ag_narrow(c, outs[d], 0, d ? 0 : T - 1, 1), 2, (int64_t[]){B, H}) : NULL;
        }
        h = D == 2 ? ag_concat(c, outs, 2, 2) : outs[0];
    }
    if (h && h_n) *h_n = ag_stack(c, hs, L * D, 0);
    if (h && c_n && l->lstm) *c_n = ag_stack(c, cs, L * D, 0);
    if (h && l->o.batch_first) h = ag_contiguous(c, ag_permute(c, h, (int[]){1, 0, 2}));
    return named(c, ok, l->w_ih[0], h);
}

Tensor *nn_gru(Ctx *c, const NnGRU *l, Tensor *x, Tensor *h0, Tensor **h_n) { return rnn_forward(c, l, x, h0, NULL, h_n, NULL); }
Tensor *nn_lstm(Ctx *c, const NnLSTM *l, Tensor *x, Tensor *h0, Tensor *c0, Tensor **h_n, Tensor **c_n) {
    return rnn_forward(c, l, x, h0, c0, h_n, c_n);
}

static NnRnnCell cell_new(NnParams *ps, const char *name, int64_t in, int64_t H, bool bias, bool lstm) {
    int G = lstm ? 4 : 3;
    double bound = 1.0 / sqrt((double)H);
    NnRnnCell l = {.lstm = lstm};
    l.weight_ih = uniform(ps, name, "weight_ih", 2, (int64_t[]){G * H, in}, bound);
    l.weight_hh = uniform(ps, name, "weight_hh", 2, (int64_t[]){G * H, H}, bound);
    if (bias) {
        l.bias_ih = uniform(ps, name, "bias_ih", 1, (int64_t[]){G * H}, bound);
        l.bias_hh = uniform(ps, name, "bias_hh", 1, (int64_t[]){G * H}, bound);
    }
    return l;
}

NnGRUCell nn_gru_cell_new(NnParams *ps, const char *name, int64_t in, int64_t H, bool bias) {
    return cell_new(ps, name, in, H, bias, false);
}
NnLSTMCell nn_lstm_cell_new(NnParams *ps, const char *name, int64_t in, int64_t H, bool bias) {
    return cell_new(ps, name, in, H, bias, true);
}

// a [B, I] step as a sequence of one
static Tensor *one_step(Ctx *c, Tensor *x) { return x && x->ndim == 2 ? ag_reshape(c, x, 3, (int64_t[]){1, x->shape[0], x->shape[1]}) : x; }

Tensor *nn_gru_cell(Ctx *c, const NnGRUCell *l, Tensor *x, Tensor *h) {
    bool ok = ctx_ok(c);
    Tensor *y = ag_gru(c, one_step(c, x), h, l->weight_ih, l->weight_hh, l->bias_ih, l->bias_hh, false);
    return named(c, ok, l->weight_ih, y ? ag_reshape(c, y, 2, (int64_t[]){y->shape[1], y->shape[2]}) : NULL);
}

Tensor *nn_lstm_cell(Ctx *c, const NnLSTMCell *l, Tensor *x, Tensor *h, Tensor *cell, Tensor **c_next) {
    bool ok = ctx_ok(c);
    Tensor *y = ag_lstm(c, one_step(c, x), h, cell, l->weight_ih, l->weight_hh, l->bias_ih, l->bias_hh, false); // [2, B, H]
    if (y && c_next) *c_next = ag_reshape(c, ag_narrow(c, y, 0, 1, 1), 2, (int64_t[]){y->shape[1], y->shape[2]});
    return named(c, ok, l->weight_ih, y ? ag_reshape(c, ag_narrow(c, y, 0, 0, 1), 2, (int64_t[]){y->shape[1], y->shape[2]}) : NULL);
}
