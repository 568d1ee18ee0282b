// nn.h: layers as plain structs of tensors, and a registry of named parameters.
// Names are Hugging Face's (vit.encoder.layer.0.attention.attention.query.weight); a model
// registers each tensor once, and everything by-name (counting, freezing, loading, saving)
// goes through the registry. Layers compute with ag_ ops, so they are differentiable.
#ifndef CGRAD_NN_H
#define CGRAD_NN_H

#include "../autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- named parameters ----
typedef struct {
    char *name;
    Tensor *t;
} NnParam;

typedef struct {
    NnParam *p;
    int n, cap;
} NnParams;

void nn_params_add(NnParams *ps, const char *name, Tensor *t);  // the registry owns a copy of name
Tensor *nn_params_get(const NnParams *ps, const char *name);
bool nn_params_replace(NnParams *ps, const char *name, Tensor *t);
int64_t nn_params_count(const NnParams *ps, bool trainable_only);
// Sets requires_grad on every parameter whose name matches the fnmatch(3) pattern (with '*'
// matching dots too); returns how many matched.
int nn_params_set_trainable(NnParams *ps, const char *pattern, bool on);
void nn_params_free(NnParams *ps);

// ---- LoRA (peft's LoraLayer on a Linear) ----
// y = x W^T + b + (alpha / r) * B(A(dropout(x))); A [r, in], B [out, r].
// peft's init: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
typedef struct {
    Tensor *A, *B;
    int r;
    double alpha, scale, dropout;
    bool enabled; // disable: the base layer alone
    bool merged;  // W holds W + scale B A; the branch is skipped
} NnLora;

typedef struct {
    Tensor *weight, *bias; // [out, in], [out] or NULL
    NnLora *lora;
} NnLinear;

typedef struct {
    Tensor *weight, *bias; // [C]
    double eps;
} NnLayerNorm;

Tensor *nn_linear(Ctx *c, const NnLinear *l, Tensor *x, Rng *rng, bool training);
Tensor *nn_linear_residual(Ctx *c, const NnLinear *l, Tensor *x, Tensor *res, Rng *rng, bool training); // res + l(x)
Tensor *nn_layernorm(Ctx *c, const NnLayerNorm *l, Tensor *x);
// ViT MLP with its residual: res + fc2(gelu(fc1(x))) (fused when the weights are frozen)
Tensor *nn_mlp_residual(Ctx *c, const NnLinear *fc1, const NnLinear *fc2, Tensor *x, Tensor *res, Rng *rng, bool training);
// self-attention with separate q, k, v projections and its residual: res + o(attention); queries
// from the rows xq (x itself, or a subset of its tokens with res to match), keys and values from x
Tensor *nn_self_attention_residual(Ctx *c, const NnLinear *q, const NnLinear *k, const NnLinear *v, const NnLinear *o,
                                   Tensor *xq, Tensor *x, Tensor *res, int NH, Rng *rng, bool training, Tensor **probs);

// Attach LoRA to l (tensors in pc, A initialised from rng); the adapter tensors are trainable.
NnLora *nn_lora_attach(Ctx *pc, NnLinear *l, int r, double alpha, double dropout, Rng *rng);
void nn_lora_merge(NnLinear *l);   // W += scale B A (W must be writable)
void nn_lora_unmerge(NnLinear *l); // W -= scale B A

#ifdef __cplusplus
}
#endif

#endif
