// vit_ops.h: the ViT's fused fast paths (private to models/, not installed). The framework's
// public ops compute the same; these keep less memory or pass over the data fewer times.
#ifndef CGRAD_VIT_OPS_H
#define CGRAD_VIT_OPS_H

#include "../nn/nn.h"

// LoRA: x w^T + b + scale * (dropout_p(x) A^T) B^T; A [r, IC], B [OC, r]; the dropout mask comes from
// rng (advanced as ag_dropout would) and is kept as bits for the backward. !training: no dropout.
Tensor *vit_lora_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *A, Tensor *B, double scale, double p, Rng *rng, bool training);
Tensor *vit_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *res); // res + x w^T + b
// the patch embedding, ag_conv2d with stride = kernel written as im2col + one product: x [B, C, H, W],
// w [D, C, p, p] -> [B, H W / p^2, D] (the tokens in row-major patch order)
Tensor *vit_patch_embed(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
// res + gelu(x w1^T + b1) w2^T + b2 for frozen weights, computed in row blocks (x, res [.., D])
Tensor *vit_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, Tensor *w2, Tensor *b2, Tensor *res);

// A linear layer with its optional LoRA wrapper (lo NULL or inactive: the layer alone)
Tensor *vit_proj(Ctx *c, const NnLinear *l, const NnLora *lo, Tensor *x, Rng *rng, bool training);
Tensor *vit_proj_residual(Ctx *c, const NnLinear *l, const NnLora *lo, Tensor *x, Tensor *res, Rng *rng, bool training);
// res + fc2(gelu(fc1(x))), fused when the weights are frozen and carry no LoRA
Tensor *vit_mlp_block(Ctx *c, const NnLinear *fc1, const NnLora *lo1, const NnLinear *fc2, const NnLora *lo2, Tensor *x, Tensor *res,
                      Rng *rng, bool training);
// res + o(attention(q(xq), k(x), v(x))): proj and lora are q, k, v, o; probs as ag_attention's
Tensor *vit_attention_block(Ctx *c, const NnLinear *const proj[4], const NnLora *const lora[4], Tensor *xq, Tensor *x, Tensor *res, int NH,
                            Rng *rng, bool training, Tensor **probs);

// A whole encoder layer for inference in one parallel region (models/vit_kernels.h): ln the two
// norms, lin and lora q, k, v, o, fc1, fc2 (LoRA on q, k, v only); h [B, T, D] -> [B, T, D], or
// [B, 1, D] with cls_only (the [CLS] queries alone). False, doing nothing, where it does not apply
// (training, a gradient to record, another dtype or shape, int8 weights, no sgemm kernel); true
// with *out the result, or NULL when it failed (the context says why).
bool vit_layer_fused(Ctx *c, const NnLayerNorm *const ln[2], const NnLinear *const lin[6], const NnLora *const lora[6], Tensor *h, int NH,
                     bool cls_only, bool training, Tensor **out);

#endif
