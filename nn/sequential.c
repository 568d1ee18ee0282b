// sequential.c: nn.Sequential: modules applied in order, named by their index in the set
// ("NAME.0.weight", "NAME.2.bias", as PyTorch's state_dict names them; modules without
// parameters, such as ReLU, take an index too).
#include "nn.h"

#include <stdio.h>
#include <string.h>

void nn_sequential_init(NnSequential *s, NnParams *ps, const char *name) {
    memset(s, 0, sizeof *s);
    s->ps = ps;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "");
}

const char *nn_sequential_next(NnSequential *s) {
    snprintf(s->next, sizeof s->next, "%s%s%d", s->name, s->name[0] ? "." : "", s->n);
    return s->next;
}

int nn_sequential_add(NnSequential *s, NnModuleForward forward, const void *module) {
    if (s->n == NN_SEQUENTIAL_MAX || !forward) {
        ctx_fail(s->ps->ctx, "sequential '%s': %s", s->name, forward ? "more than NN_SEQUENTIAL_MAX modules" : "a NULL forward");
        return -1;
    }
    s->items[s->n++] = (NnSequentialItem){forward, module};
    return 0;
}

// Under no-grad (inference) each module's intermediates, and its input once used, are given back as
// soon as the module is done: the arena holds one module's work, not the whole network's.
Tensor *nn_sequential(Ctx *c, const NnSequential *s, Tensor *x) {
    bool release = ag_is_no_grad(c);
    CtxMark m = ctx_mark(c);
    for (int i = 0; i < s->n && x; i++) {
        x = s->items[i].forward(c, s->items[i].module, x);
        if (release && x) x = ctx_release_keep(c, m, x);
    }
    return x;
}

// ---- the built-in modules: each made in the set under the next name, then added ----

// a copy of a layer struct in the set's context (it lives as long as the parameters)
static void *keep(NnSequential *s, const void *layer, size_t n) {
    void *p = ctx_alloc(s->ps->ctx, n);
    memcpy(p, layer, n);
    return p;
}

static Tensor *fw_linear(Ctx *c, const void *m, Tensor *x) { return nn_linear(c, m, x); }
static Tensor *fw_conv2d(Ctx *c, const void *m, Tensor *x) { return nn_conv2d(c, m, x); }
static Tensor *fw_batchnorm(Ctx *c, const void *m, Tensor *x) { return nn_batch_norm(c, m, x); }
static Tensor *fw_dropout(Ctx *c, const void *m, Tensor *x) { return nn_dropout(c, m, x); }
static Tensor *fw_relu(Ctx *c, const void *m, Tensor *x) { return (void)m, ag_relu(c, x); }
static Tensor *fw_gelu(Ctx *c, const void *m, Tensor *x) { return (void)m, ag_gelu(c, x); }
static Tensor *fw_tanh(Ctx *c, const void *m, Tensor *x) { return (void)m, ag_tanh(c, x); }
static Tensor *fw_flatten(Ctx *c, const void *m, Tensor *x) { // nn.Flatten(): [N, ...] -> [N, rest]
    (void)m;
    if (!x || x->ndim < 1) return x ? (ctx_fail(c, "flatten: a 0-d input"), NULL) : NULL;
    int64_t n = x->shape[0];
    return ag_reshape(c, x, 2, (int64_t[]){n, n ? tensor_numel(x) / n : 0});
}
static Tensor *fw_max_pool2d(Ctx *c, const void *m, Tensor *x) {
    const int *k = m;
    return ag_max_pool2d(c, x, (int[]){k[0], k[0]}, NULL, NULL);
}

int nn_seq_linear(NnSequential *s, int64_t in, int64_t out, bool bias) {
    NnLinear l = nn_linear_new(s->ps, nn_sequential_next(s), in, out, bias);
    return l.weight ? nn_sequential_add(s, fw_linear, keep(s, &l, sizeof l)) : -1;
}

int nn_seq_conv2d(NnSequential *s, NnConv2dOptions o) {
    NnConv2d l = nn_conv2d_make(s->ps, nn_sequential_next(s), o);
    return l.weight ? nn_sequential_add(s, fw_conv2d, keep(s, &l, sizeof l)) : -1;
}

int nn_seq_batch_norm(NnSequential *s, int64_t channels) {
    NnBatchNorm l = nn_batch_norm_new(s->ps, nn_sequential_next(s), channels, 1e-5, 0.1);
    return l.weight ? nn_sequential_add(s, fw_batchnorm, keep(s, &l, sizeof l)) : -1;
}

int nn_seq_dropout(NnSequential *s, double p) {
    NnDropout l = nn_dropout_new(s->ps, p);
    return ctx_ok(s->ps->ctx) ? nn_sequential_add(s, fw_dropout, keep(s, &l, sizeof l)) : -1;
}

int nn_seq_max_pool2d(NnSequential *s, int kernel) {
    if (kernel < 1) return ctx_fail(s->ps->ctx, "sequential '%s': max_pool2d kernel %d", s->name, kernel), -1;
    return nn_sequential_add(s, fw_max_pool2d, keep(s, &kernel, sizeof kernel));
}

int nn_seq_relu(NnSequential *s) { return nn_sequential_add(s, fw_relu, NULL); }
int nn_seq_gelu(NnSequential *s) { return nn_sequential_add(s, fw_gelu, NULL); }
int nn_seq_tanh(NnSequential *s) { return nn_sequential_add(s, fw_tanh, NULL); }
int nn_seq_flatten(NnSequential *s) { return nn_sequential_add(s, fw_flatten, NULL); }
