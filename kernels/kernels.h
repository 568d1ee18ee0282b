// kernels.h: the compute kernels, llm.c style: plain functions on contiguous arrays, outputs
// first, then inputs, then sizes. Each forward has its backward beside it; backward kernels
// accumulate (+=) into the gradients they are given and skip the ones passed as NULL.
// Every kernel exists for float (suffix _f32) and double (_f64); kernels_decl.inc lists them.
#ifndef CGRAD_KERNELS_H
#define CGRAD_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#define KERNELS_MAX_DIMS 8 // the most dimensions a strided kernel walks (tensor.h's TENSOR_MAX_DIMS is the same)

#ifdef __cplusplus
extern "C" {
#endif

// Sets OpenBLAS to one thread, once: cgrad parallelises with OpenMP around it.
void kernels_blas_init(void);

// binary ops; the comparisons give 1 or 0 and have no gradient; minimum/maximum split a tie's
// gradient in halves (PyTorch's rule)
typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MIN, BIN_MAX, BIN_EQ, BIN_NE, BIN_LT, BIN_LE, BIN_GT, BIN_GE } BinaryOp;
// unary ops; p0, p1 are their scalars: UN_SCALE / UN_ADD_SCALAR s, UN_SOFTPLUS beta and threshold,
// UN_LEAKY_RELU the slope, UN_POW the exponent, UN_CLAMP the bounds (+-inf: none)
typedef enum {
    UN_NEG,
    UN_EXP,
    UN_LOG,
    UN_SQRT,
    UN_TANH,
    UN_GELU,
    UN_RELU,
    UN_SCALE,
    UN_ADD_SCALAR,
    UN_SIGMOID,
    UN_SILU,
    UN_SOFTPLUS,
    UN_LEAKY_RELU,
    UN_GELU_TANH,
    UN_POW,
    UN_ABS,
    UN_CLAMP
} UnaryOp;

// the geometry of a 2-d convolution or pooling (kernels_decl.inc); C and OC are per image, groups
// divide both (pooling: groups = 1, OC = C)
typedef struct {
    int64_t B, C, H, W, OC, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, groups;
} Conv2dGeom;

// Strided broadcast iteration: `shape` is the output's (nd dims); sa/sb are the element strides
// of a and b against that shape (0 on broadcast dimensions). Gradient buffers use the strides
// sga/sgb (contiguous strides of a/b placed on the output shape, 0 where broadcast).
#define EACH_REAL_INC "kernels_decl.inc"
#include "each_real.inc"
#undef EACH_REAL_INC

#ifdef __cplusplus
}
#endif

#endif
