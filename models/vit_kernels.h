// vit_kernels.h: the kernels behind the ViT's fused ops (vit_ops.c), for float (_f32) and double
// (_f64); private to models/, not installed.
#ifndef CGRAD_VIT_KERNELS_H
#define CGRAD_VIT_KERNELS_H

#include "../kernels/kernels.h"

#include <stddef.h>

// LoRA's rank-r products run in groups of LORA_G ranks; the MLP in blocks of MLP_ROWS rows (a block's
// pre-activation and GELU rows, 48 x 3072 bytes each at DeiT-Tiny's width, stay in L2 between the
// products; 48 was faster than 32 or 96 in alternating runs)
#define LORA_G   4
#define MLP_ROWS 48

#define EACH_REAL_INC "../models/vit_kernels_decl.inc"
#include "../kernels/each_real.inc"
#undef EACH_REAL_INC

// the fused MLP y = res + fc2(GELU(fc1(x))) with both products in int8 (tensor/qgemm.h), float32
// only, in row blocks across the threads; -1 when a block's buffers cannot be had
struct QWeight;
int vit_mlp_forward_int8(const struct QWeight *w1, const struct QWeight *w2, float *out, const float *x, const float *res, const float *b1,
                         const float *b2, int64_t N);

// self-attention of x's queries, keys and values [B, T, C] (NH heads) with the two products in bfloat16
// (kernels/bgemm.h; where bgemm_available()), for the int8 forward; -1 when it cannot run
int vit_attention_bf16(float *out, const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t C, int64_t NH);

// a block of the int8 MLP's rows on this thread: a [rows, F] = gelu(x w1^T + b1), out = res + a w2^T
// + b2; false when the quantized rows have no memory (shared with vit_layer.c)
bool mlp_rows_int8(const struct QWeight *w1, const struct QWeight *w2, float *out, float *a, const float *x, const float *res,
                   const float *b1, const float *b2, int64_t rows);
// one image's head for m of its queries: out [m, hs] (rows C apart, as q; k, v [T, ..] too) =
// softmax(q k^T scale) v with both products in bfloat16; s [m, T] and inv [m] scratch; false when
// bgemm declines (shared with vit_layer.c)
bool attention_head_bf16(float *out, const float *q, const float *k, const float *v, int64_t m, int64_t T, int64_t C, int64_t hs,
                         float scale, float *s, float *inv);

#endif
