// vit_layer.h: a whole ViT encoder layer for inference in one OpenMP parallel region, float32 and
// int8 (the fast path behind vit_layer_fused, vit_ops.h); private to models/, not installed.
#ifndef CGRAD_VIT_LAYER_H
#define CGRAD_VIT_LAYER_H

#include <stddef.h>
#include <stdint.h>

// One encoder layer for inference (float32, nothing recorded), in one parallel region instead of
// one per op: each thread takes blocks of rows through LN1 and the key and value products; after
// a barrier the per-head packings of keys and values; after another, blocks of query rows through
// their query product, the attention, the output projection with the residual, LN2 and the MLP.
// The same bits as the ops it replaces (the products give each row the same bits however many rows
// they have). A linear layer: w [OC, IC] with wp its packing for x w^T (sgemm_kept), bias (may be
// NULL), and a LoRA branch A [r, IC], B [OC, r] (A NULL: none; inference: no dropout).
typedef struct {
    const float *w, *wp, *bias, *A, *B;
    int64_t r;
    double scale;
} VitLinearF32;
typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    double eps1, eps2;
    VitLinearF32 q, k, v, o, fc1, fc2; // o, fc1, fc2 with biases and without LoRA
    int64_t D, F, NH;
} VitLayerF32;
// the floats of work space vit_layer_forward_f32 takes for B images of T tokens (0: no sgemm kernel)
size_t vit_layer_work_floats(const VitLayerF32 *L, int64_t B, int64_t T);
// out [B, Tq, D] = the layer applied to h [B, T, D]; Tq = T, or 1 for the [CLS] queries alone (the
// keys and values still from all tokens). work: vit_layer_work_floats floats, 64-byte aligned.
// -1 when a thread's buffers cannot be had or the LoRA factors cannot be padded.
int vit_layer_forward_f32(const VitLayerF32 *L, float *out, const float *h, int64_t B, int64_t T, int64_t Tq, float *work);

// The same layer with int8 products (--int8: every projection has an int8 copy, no LoRA branch), as
// the ops run it: LN1, query, key and value with the rows quantized once; each head's attention
// (bfloat16 products where bgemm_available(), for all queries; else, and for the [CLS]-only layer,
// float32); the output projection with the residual, LN2 and the int8 MLP. The same bits as the
// ops. bq, bk, bv, bo may be NULL; b1, b2 not.
typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    double eps1, eps2;
    const struct QWeight *q, *k, *v, *o, *fc1, *fc2;
    const float *bq, *bk, *bv, *bo, *b1, *b2;
    int64_t D, F, NH;
} VitLayerInt8;
size_t vit_layer_int8_work_floats(const VitLayerInt8 *L, int64_t B, int64_t T, int64_t Tq);
// -1 when a thread's buffers cannot be had
int vit_layer_forward_int8(const VitLayerInt8 *L, float *out, const float *h, int64_t B, int64_t T, int64_t Tq, float *work);

#endif
